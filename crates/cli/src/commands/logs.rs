//! `logs`: a container's json-file log, to stdout and stderr as it was written.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use basic_engine::LogOptions;
use basic_runtime::logfile::{LogEntry, Stream};

use super::engine;
use super::format::parse_time;
use crate::cli::{GlobalOptions, LogsArgs};

/// Prints the log (the last `--tail` lines); with `-f`, then what follows
/// until the container stops.
pub fn logs(global: &GlobalOptions, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let options = LogOptions {
        tail: parse_tail(&args.tail)?,
        since: args.since.as_deref().map(parse_time).transpose()?,
        until: args.until.as_deref().map(parse_time).transpose()?,
        follow: args.follow,
    };
    engine(global)?.logs(&args.container, &options, |entry| {
        print_entry(entry, args.timestamps).map_err(|source| basic_engine::EngineError::Io {
            what: "writing the log to",
            path: "standard output".into(),
            source,
        })
    })?;
    Ok(ExitCode::SUCCESS)
}

fn parse_tail(text: &str) -> anyhow::Result<Option<usize>> {
    if text == "all" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .with_context(|| format!("invalid --tail {text:?}: a number of lines, or \"all\""))
}

fn print_entry(entry: &LogEntry, timestamps: bool) -> std::io::Result<()> {
    let prefix = if timestamps {
        format!("{} ", entry.time)
    } else {
        String::new()
    };
    let text = format!("{prefix}{}", entry.log);
    match entry.stream {
        Stream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Stream::Stderr => std::io::stderr().write_all(text.as_bytes())?,
    }
    Ok(())
}
