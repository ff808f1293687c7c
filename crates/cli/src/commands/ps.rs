//! `ps`: docker's container table, or one JSON object per line.

use std::process::ExitCode;

use basic_engine::status::{rfc3339, status_text};
use basic_engine::{Filters, Listed};
use basic_image_store::short_id;
use serde_json::json;

use super::engine;
use super::format::{table, time_ago};
use crate::cli::{GlobalOptions, PortArgs, PsArgs};

/// Lists running containers (all with `-a`), newest first.
pub fn ps(global: &GlobalOptions, args: PsArgs) -> anyhow::Result<ExitCode> {
    let filters = Filters::parse(&args.filter)?;
    let rows = engine(global)?.list(args.all, &filters)?;
    if args.quiet {
        for r in &rows {
            println!("{}", id_column(r.container.id(), args.no_trunc));
        }
    } else if args.format.as_deref() == Some("json") {
        for r in &rows {
            println!("{}", as_json(r));
        }
    } else if let Some(other) = args.format {
        anyhow::bail!("unsupported --format {other:?}: use json or leave it out for the table");
    } else {
        print!("{}", as_table(&rows, args.no_trunc));
    }
    Ok(ExitCode::SUCCESS)
}

fn id_column(id: &str, no_trunc: bool) -> &str {
    if no_trunc { id } else { short_id(id) }
}

fn as_table(rows: &[Listed], no_trunc: bool) -> String {
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let command = r.container.config.command.join(" ");
            let command = if no_trunc {
                format!("\"{command}\"")
            } else {
                format!("\"{}\"", truncate(&command, 20))
            };
            vec![
                id_column(r.container.id(), no_trunc).to_string(),
                r.container.record.image.clone(),
                command,
                time_ago(r.container.record.created / 1_000_000_000),
                status_text(&r.container.record, r.status),
                r.ports.clone(),
                r.container.name().to_string(),
            ]
        })
        .collect();
    table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &lines,
    )
}

fn as_json(r: &Listed) -> serde_json::Value {
    let record = &r.container.record;
    json!({
        "ID": short_id(&record.id),
        "Image": record.image,
        "Command": format!("\"{}\"", r.container.config.command.join(" ")),
        "CreatedAt": rfc3339(Some(record.created)),
        "RunningFor": time_ago(record.created / 1_000_000_000).trim_end_matches(" ago"),
        "Status": status_text(record, r.status),
        "State": r.status.word(),
        "Ports": r.ports,
        "Names": record.name,
    })
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
