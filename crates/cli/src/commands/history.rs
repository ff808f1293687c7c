//! `history` and `tag`.

use std::process::ExitCode;

use basic_image_store::short_id;

use super::engine;
use super::format::{go_time, human_size, time_ago};
use super::template::{self, ErrorWords, Listing, ListingFormat, print_listing};
use crate::cli::{GlobalOptions, HistoryArgs, TagArgs};

/// docker's history columns (`formatter.HistoryContext`).
const HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

const HISTORY: Listing = Listing {
    default_table: "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    headers: HEADERS,
    errors: ErrorWords::Formatter,
};

/// Width of `CREATED BY` when truncated, as docker's.
const CREATED_BY_WIDTH: usize = 45;

/// `history [-q] [--no-trunc] [-H=BOOL] [--format F] IMAGE`.
pub fn history(global: &GlobalOptions, args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let format = match ListingFormat::new(HISTORY, args.format.as_deref()) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let items = engine(global)?.image_history(&args.image)?;
    let id = |id: &str| {
        if args.no_trunc || id == "<missing>" {
            id.to_string()
        } else {
            short_id(id).to_string()
        }
    };
    if args.quiet {
        for item in &items {
            println!("{}", id(&item.id));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<template::Row> = items
        .iter()
        .map(|item| {
            let created_by = item.created_by.replace('\t', " ");
            let size = u64::try_from(item.size).unwrap_or(0);
            let created_at = go_time(item.created.saturating_mul(1_000_000_000), false);
            template::Row::new()
                .text("ID", id(&item.id))
                .text(
                    "CreatedSince",
                    if args.human {
                        time_ago(item.created)
                    } else {
                        created_at.clone()
                    },
                )
                .text("CreatedAt", created_at)
                .text(
                    "CreatedBy",
                    if args.no_trunc {
                        created_by
                    } else {
                        ellipsis(&created_by, CREATED_BY_WIDTH)
                    },
                )
                .text(
                    "Size",
                    if args.human {
                        human_size(size)
                    } else {
                        size.to_string()
                    },
                )
                .text("Comment", item.comment.clone())
        })
        .collect();
    Ok(print_listing(&format, &rows))
}

/// `text` cut to `width` characters, the last one `…` when cut (docker's `Ellipsis`).
fn ellipsis(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// `tag SOURCE TARGET`.
pub fn tag(global: &GlobalOptions, args: TagArgs) -> anyhow::Result<ExitCode> {
    engine(global)?.tag_image(&args.source, &args.target)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::ellipsis;

    #[test]
    fn long_commands_are_cut_with_an_ellipsis() {
        assert_eq!(ellipsis("short", 45), "short");
        let long = "x".repeat(50);
        let cut = ellipsis(&long, 45);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with('…'));
    }
}
