//! `ps`: docker's container table, or one JSON object per line.

use std::process::ExitCode;

use basic_image_store::ContainerRecord;
use serde_json::json;

use basic_image_store::short_id;

use super::create::Settings;
use super::format::{table, time_ago};
use super::live::{self, Status};
use super::{container_network, image_store};
use crate::cli::{GlobalOptions, PortArgs, PsArgs};

/// One container as `ps` shows it.
struct Row {
    record: ContainerRecord,
    status: Status,
    command: String,
    ports: String,
}

/// Lists running containers (all with `-a`), newest first.
pub fn ps(global: &GlobalOptions, args: PsArgs) -> anyhow::Result<ExitCode> {
    let filters = Filters::parse(&args.filter)?;
    // docker: filtering on a status shows stopped containers too.
    let all = args.all || filters.has_status();
    let store = image_store(global)?;
    let networks = container_network::networks(&global.root)?;
    let mut rows: Vec<Row> = store
        .containers()?
        .into_iter()
        .map(|record| {
            let status = live::status(&global.root, &record);
            let command = Settings::of(&record)
                .map(|s| s.command.join(" "))
                .unwrap_or_default();
            let ports = if status.is_up() {
                container_network::ports_display(&networks, &record.id)
            } else {
                String::new()
            };
            Row {
                record,
                status,
                command,
                ports,
            }
        })
        .filter(|r| all || r.status.is_up())
        .filter(|r| filters.matches(&r.record, r.status))
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.record.created));
    if args.quiet {
        for r in &rows {
            println!("{}", id_column(&r.record.id, args.no_trunc));
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

fn as_table(rows: &[Row], no_trunc: bool) -> String {
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let command = if no_trunc {
                format!("\"{}\"", r.command)
            } else {
                format!("\"{}\"", truncate(&r.command, 20))
            };
            vec![
                id_column(&r.record.id, no_trunc).to_string(),
                r.record.image.clone(),
                command,
                time_ago(r.record.created / 1_000_000_000),
                status_text(&r.record, r.status),
                r.ports.clone(),
                r.record.name.clone(),
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

fn as_json(r: &Row) -> serde_json::Value {
    json!({
        "ID": short_id(&r.record.id),
        "Image": r.record.image,
        "Command": format!("\"{}\"", r.command),
        "CreatedAt": live::rfc3339(Some(r.record.created)),
        "RunningFor": time_ago(r.record.created / 1_000_000_000).trim_end_matches(" ago"),
        "Status": status_text(&r.record, r.status),
        "State": r.status.word(),
        "Ports": r.ports,
        "Names": r.record.name,
    })
}

/// `--filter` conditions: a container shows when, for every key given, one of
/// that key's values matches (docker's rule).
#[derive(Debug, Default)]
struct Filters {
    by_key: std::collections::BTreeMap<String, Vec<String>>,
}

impl Filters {
    fn parse(filters: &[String]) -> anyhow::Result<Self> {
        let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for f in filters {
            let Some((key, value)) = f.split_once('=') else {
                anyhow::bail!("bad format of filter (expected name=value): {f}");
            };
            if !["status", "name", "id", "ancestor", "exited"].contains(&key) {
                anyhow::bail!("invalid filter '{key}': use status, name, id, ancestor or exited");
            }
            by_key
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
        Ok(Filters { by_key })
    }

    fn has_status(&self) -> bool {
        self.by_key.contains_key("status") || self.by_key.contains_key("exited")
    }

    fn matches(&self, record: &ContainerRecord, status: Status) -> bool {
        self.by_key.iter().all(|(key, values)| {
            values.iter().any(|v| match key.as_str() {
                "status" => status.word() == v,
                // docker matches names as a substring (a regular expression, really).
                "name" => record.name.contains(v.as_str()),
                "id" => record.id.starts_with(v.as_str()),
                "ancestor" => {
                    record.image == *v
                        || record
                            .image_id
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                }
                "exited" => matches!(status, Status::Exited(code) if code.to_string() == *v),
                _ => false,
            })
        })
    }
}

/// `port CONTAINER`: one line per published port, as docker prints them.
pub fn port(global: &GlobalOptions, args: PortArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let record = store.container(&args.container)?;
    let networks = container_network::networks(&global.root)?;
    if let Some(att) = networks.attachment(&record.id)? {
        for p in &att.ports {
            let ip = p.host_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string());
            println!(
                "{}/{} -> {ip}:{}",
                p.container_port, p.protocol, p.host_port
            );
        }
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

/// "Up 5 seconds", "Exited (0) 2 minutes ago", "Created", "Up 1 second (Paused)".
pub fn status_text(record: &ContainerRecord, status: Status) -> String {
    let since = |nanos: Option<i64>| {
        time_ago(nanos.unwrap_or(record.created) / 1_000_000_000)
            .trim_end_matches(" ago")
            .to_string()
    };
    match status {
        Status::Created => "Created".to_string(),
        Status::Running(_) => format!("Up {}", since(record.started)),
        Status::Paused(_) => format!("Up {} (Paused)", since(record.started)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            record.exit.map_or(0, |e| e.code),
            since(record.exit.map(|e| e.finished))
        ),
        Status::Exited(code) => {
            let finished = record.exit.map(|e| e.finished).or(record.started);
            format!("Exited ({code}) {} ago", since(finished))
        }
    }
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
