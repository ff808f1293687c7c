//! `events`: what happened to containers, as docker prints it; without `--until`, it
//! follows until interrupted.

use std::collections::HashMap;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::bail;
use basic_engine::EventOptions;
use basic_engine::events::EventMessage;

use super::engine;
use super::format::parse_time;
use crate::cli::{EventsArgs, GlobalOptions};

/// Prints the events asked for, one per line.
pub fn events(global: &GlobalOptions, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let mut filters: HashMap<String, Vec<String>> = HashMap::new();
    for f in &args.filter {
        let Some((key, value)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value): {f}");
        };
        if !["container", "event", "type"].contains(&key) {
            bail!("invalid filter '{key}': use container, event or type");
        }
        filters
            .entry(key.to_string())
            .or_default()
            .push(value.to_string());
    }
    let json = match args.format.as_deref() {
        None => false,
        Some("json" | "{{json .}}") => true,
        Some(other) => bail!("unsupported --format {other:?}: use json or leave it out"),
    };
    let options = EventOptions {
        since: args.since.as_deref().map(nanos).transpose()?,
        until: args.until.as_deref().map(nanos).transpose()?,
        filters,
        follow: args.until.is_none(),
    };
    engine(global)?.events(&options, |event| {
        let line = if json {
            serde_json::to_string(event).unwrap_or_default()
        } else {
            text(event)
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|source| basic_engine::EngineError::Io {
                what: "writing events to",
                path: "standard output".into(),
                source,
            })
    })?;
    Ok(ExitCode::SUCCESS)
}

/// docker's line: `TIME container ACTION ID (key=value, ...)`.
fn text(event: &EventMessage) -> String {
    let at = event
        .time_nano
        .and_then(|n| u64::try_from(n).ok())
        .map(|n| humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(n)).to_string())
        .unwrap_or_default();
    let typ = event.typ.map(|t| t.to_string()).unwrap_or_default();
    let action = event.action.clone().unwrap_or_default();
    let actor = event.actor.clone().unwrap_or_default();
    let mut attributes: Vec<(String, String)> =
        actor.attributes.unwrap_or_default().into_iter().collect();
    attributes.sort();
    let attributes = attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{at} {typ} {action} {} ({attributes})",
        actor.id.unwrap_or_default()
    )
}

/// [`parse_time`] in unix nanoseconds.
fn nanos(text: &str) -> anyhow::Result<i64> {
    let since_epoch = parse_time(text)?
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Ok(i64::try_from(since_epoch.as_nanos()).unwrap_or(i64::MAX))
}
