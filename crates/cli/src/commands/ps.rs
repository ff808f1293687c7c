//! `ps`: docker's container table, or its `--format` (a Go template per container,
//! `table ...`, or `json`).

use std::process::ExitCode;

use basic_engine::network::Mode;
use basic_engine::status::status_text;
use basic_engine::{Engine, Filters, Listed};
use basic_image_store::short_id;

use super::engine;
use super::format::{go_time, human_size, time_ago};
use super::template::{ErrorWords, Listing, ListingFormat, Row, print_listing};
use crate::cli::{GlobalOptions, PortArgs, PsArgs};

/// docker's container columns (`formatter.ContainerContext`).
const HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Names", "NAMES"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
];

/// `ps`'s default table.
const CONTAINERS: Listing = Listing {
    default_table: "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
    headers: HEADERS,
    errors: ErrorWords::Check,
};

/// `ps -s`'s default table: the size last.
const CONTAINERS_WITH_SIZE: Listing = Listing {
    default_table: "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}",
    ..CONTAINERS
};

/// Lists running containers (all with `-a`), newest first.
pub fn ps(global: &GlobalOptions, args: PsArgs) -> anyhow::Result<ExitCode> {
    let filters = Filters::parse(&args.filter)?;
    // The format is checked before anything is listed, as docker does.
    let listing = if args.size {
        CONTAINERS_WITH_SIZE
    } else {
        CONTAINERS
    };
    let format = match ListingFormat::new(listing, args.format.as_deref()) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let engine = engine(global)?;
    let listed = engine.list(args.all, &filters)?;
    if args.quiet {
        for r in &listed {
            println!("{}", id_column(r.container.id(), args.no_trunc));
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Sizes walk each container's writable layer: only when they are shown.
    let sizes = args.size || format.mentions("Size") || args.format.as_deref() == Some("json");
    let rows: Vec<Row> = listed
        .iter()
        .map(|r| row(&engine, r, !args.no_trunc, sizes))
        .collect();
    Ok(print_listing(&format, &rows))
}

fn id_column(id: &str, no_trunc: bool) -> &str {
    if no_trunc { id } else { short_id(id) }
}

/// One container as docker's `ps` formatter sees it; `trunc` shortens ids, commands
/// and mount names as docker does without `--no-trunc`.
fn row(engine: &Engine, r: &Listed, trunc: bool, sizes: bool) -> Row {
    let c = &r.container;
    let record = &c.record;
    let command = c.config.command.join(" ");
    let command = if trunc {
        truncate(&command, 20)
    } else {
        command
    };
    let size = if sizes {
        let writable = engine.writable_size(c);
        let image = engine.store().image(&record.image_id).map_or(0, |i| i.size);
        format!(
            "{} (virtual {})",
            human_size(writable),
            human_size(writable + image)
        )
    } else {
        "0B".to_string()
    };
    let host = c.config.host();
    let mounts: Vec<String> = host
        .binds
        .unwrap_or_default()
        .iter()
        .map(|b| {
            let source = b.split(':').next().unwrap_or_default();
            if trunc {
                truncate(source, 15)
            } else {
                source.to_string()
            }
        })
        .collect();
    let networks = match Mode::parse(&c.config.network_mode()) {
        Mode::None => "none".to_string(),
        Mode::Host => "host".to_string(),
        Mode::Network(name) => name,
        Mode::Container(_) => String::new(),
    };
    Row::new()
        .text(
            "ID",
            if trunc {
                short_id(&record.id)
            } else {
                &record.id
            },
        )
        .text("Names", record.name.clone())
        .text("Image", record.image.clone())
        // Go's strconv.Quote.
        .text("Command", format!("{command:?}"))
        .text("CreatedAt", go_time(record.created, false))
        .text("RunningFor", time_ago(record.created / 1_000_000_000))
        .text("Ports", r.ports.clone())
        .text("State", r.status.word())
        .text("Status", status_text(record, r.status))
        .text("Size", size)
        .text("Mounts", mounts.join(","))
        .text("LocalVolumes", "0")
        .text("Networks", networks)
        .labels(c.config.config.labels.iter().flatten())
}

/// `port CONTAINER`: one line per published port, as docker prints them.
pub fn port(global: &GlobalOptions, args: PortArgs) -> anyhow::Result<ExitCode> {
    for p in engine(global)?.ports(&args.container)? {
        let ip = p.host_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string());
        println!(
            "{}/{} -> {ip}:{}",
            p.container_port, p.protocol, p.host_port
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// docker's `…` truncation, counted in characters.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_commands_are_cut_as_docker_cuts_them() {
        assert_eq!(truncate("sleep 1000", 20), "sleep 1000");
        assert_eq!(
            truncate("sh -c 'while true; do sleep 1; done'", 20),
            "sh -c 'while true; …"
        );
    }
}
