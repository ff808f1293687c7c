//! `images` and `system df`.

use std::collections::HashSet;
use std::process::ExitCode;

use basic_image_store::{ImageRecord, short_id};
use basic_registry::Reference;

use super::format::{
    go_time, human_size, human_size_with_precision, parse_rfc3339, table, time_ago,
};
use super::template::{self, ErrorWords, Listing, ListingFormat, print_listing};
use super::{engine, image_store};
use crate::cli::{GlobalOptions, ImagesArgs};

/// One row of `images`: an image under one of its names.
struct Row<'a> {
    repository: String,
    tag: String,
    digest: String,
    image: &'a ImageRecord,
}

/// docker's image columns (`formatter.ImageContext`).
const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("VirtualSize", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

/// `images`' default table.
const IMAGES: Listing = Listing {
    default_table: "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
    headers: HEADERS,
    errors: ErrorWords::Formatter,
};

/// `images --digests`' default table.
const IMAGES_WITH_DIGESTS: Listing = Listing {
    default_table: "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
    ..IMAGES
};

/// `images [-a] [-q] [--digests] [--format FORMAT] [REPOSITORY[:TAG]]`.
pub fn images(global: &GlobalOptions, args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let listing = if args.digests {
        IMAGES_WITH_DIGESTS
    } else {
        IMAGES
    };
    let format = match ListingFormat::new(listing, args.format.as_deref()) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let store = image_store(global)?;
    let mut records = store.images()?;
    if !args.all {
        records.retain(|image| !image.is_intermediate());
    }
    let mut rows: Vec<Row<'_>> = records.iter().flat_map(rows_of).collect();
    if let Some(filter) = &args.reference {
        rows.retain(|r| matches_filter(r, filter));
    }
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for row in &rows {
            if seen.insert(&row.image.id) {
                println!("{}", short_id(&row.image.id));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<template::Row> = rows.iter().map(template_row).collect();
    Ok(print_listing(&format, &rows))
}

/// Docker lists an image once per tag; untagged ones once, as `<none>`,
/// with the repository of a repo digest when there is one.
fn rows_of(image: &ImageRecord) -> Vec<Row<'_>> {
    let digest_of = |repo: &str| {
        image
            .repo_digests
            .iter()
            .find_map(|d| {
                d.split_once('@')
                    .filter(|(r, _)| *r == repo)
                    .map(|(_, d)| d.to_string())
            })
            .unwrap_or_else(|| "<none>".to_string())
    };
    let mut rows: Vec<Row<'_>> = image
        .repo_tags
        .iter()
        .filter_map(|t| t.rsplit_once(':'))
        .map(|(repo, tag)| Row {
            repository: repo.to_string(),
            tag: tag.to_string(),
            digest: digest_of(repo),
            image,
        })
        .collect();
    if rows.is_empty() {
        let repo = image
            .repo_digests
            .first()
            .and_then(|d| d.split_once('@'))
            .map_or("<none>".to_string(), |(r, _)| r.to_string());
        rows.push(Row {
            digest: digest_of(&repo),
            repository: repo,
            tag: "<none>".to_string(),
            image,
        });
    }
    rows
}

fn matches_filter(row: &Row<'_>, filter: &str) -> bool {
    let Ok(reference) = Reference::parse(filter) else {
        return row.repository == filter;
    };
    let familiar = reference.familiar();
    let (repo, tag) = familiar.rsplit_once(':').unwrap_or((&familiar, ""));
    let explicit_tag = filter
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    row.repository == repo && (!explicit_tag || row.tag == tag)
}

fn created_secs(image: &ImageRecord) -> i64 {
    image
        .created
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or(image.added)
}

/// One image under one name, with docker's fields.
fn template_row(row: &Row<'_>) -> template::Row {
    let created = created_secs(row.image);
    template::Row::new()
        .text("ID", short_id(&row.image.id))
        .text("Repository", row.repository.clone())
        .text("Tag", row.tag.clone())
        .text("Digest", row.digest.clone())
        .text("CreatedSince", time_ago(created))
        .text(
            "CreatedAt",
            go_time(created.saturating_mul(1_000_000_000), false),
        )
        .text("Size", human_size(row.image.size))
        .text("Containers", "N/A")
        .text("VirtualSize", human_size_with_precision(row.image.size, 4))
        .text("SharedSize", "N/A")
        .text("UniqueSize", "N/A")
}

/// `system df`.
pub fn system_df(global: &GlobalOptions) -> anyhow::Result<ExitCode> {
    let engine = engine(global)?;
    let store = engine.store();
    let usage = store.disk_usage()?;
    let reclaimable = |part: u64, whole: u64| {
        let pct = (part * 100).checked_div(whole).unwrap_or(0);
        format!("{} ({pct}%)", human_size(part))
    };
    let containers = engine.containers()?;
    // An image is active while a container (running or not) uses it, as docker counts.
    let active_images: HashSet<&str> = containers
        .iter()
        .map(|c| c.record.image_id.as_str())
        .collect();
    let mut used_layers = HashSet::new();
    for image in store.images()? {
        if active_images.contains(image.id.as_str()) {
            used_layers.extend(image.layers.into_iter().map(|l| (l.chain_id, l.size)));
        }
    }
    let used_size: u64 = used_layers.iter().map(|(_, size)| size).sum();
    let (mut running, mut size, mut idle_size) = (0, 0, 0);
    for c in &containers {
        let writable = engine.writable_size(c);
        size += writable;
        if engine.status(c).is_up() {
            running += 1;
        } else {
            idle_size += writable;
        }
    }
    let rows = vec![
        vec![
            "Images".to_string(),
            usage.images.to_string(),
            active_images.len().to_string(),
            human_size(usage.layers_size),
            reclaimable(
                usage.layers_size.saturating_sub(used_size),
                usage.layers_size,
            ),
        ],
        vec![
            "Containers".to_string(),
            containers.len().to_string(),
            running.to_string(),
            human_size(size),
            reclaimable(idle_size, size),
        ],
        vec![
            "Blobs".to_string(),
            usage.blobs.to_string(),
            usage.blobs.to_string(),
            human_size(usage.blobs_size),
            "0B (0%)".to_string(),
        ],
    ];
    print!(
        "{}",
        table(&["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}
