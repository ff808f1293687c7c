//! `logs`: a container's json-file log, to stdout and stderr as it was written.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use basic_runtime::logfile::{self, LogEntry, LogFollower, Stream};

use super::image_store;
use super::live::{self, Paths};
use crate::cli::{GlobalOptions, LogsArgs};

/// Prints the log (the last `--tail` lines); with `-f`, then what follows
/// until the container stops.
pub fn logs(global: &GlobalOptions, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let record = store.container(&args.container)?;
    let paths = Paths::new(&global.root, &record.id);
    let tail = parse_tail(&args.tail)?;
    let since = args.since.as_deref().map(parse_time).transpose()?;
    let until = args.until.as_deref().map(parse_time).transpose()?;
    let wanted = |entry: &LogEntry| {
        let at = logfile::entry_time(entry);
        since.is_none_or(|s| at.is_some_and(|t| t >= s))
            && until.is_none_or(|u| at.is_some_and(|t| t < u))
    };
    // Following starts before reading, so no line falls between the two.
    let mut follower = if args.follow {
        Some(LogFollower::from_end(paths.log()).context("following the log")?)
    } else {
        None
    };
    let entries: Vec<LogEntry> = logfile::read_all(&paths.log())
        .with_context(|| format!("reading {}", paths.log().display()))?
        .into_iter()
        .filter(|e| wanted(e))
        .collect();
    let skip = tail.map_or(0, |n| entries.len().saturating_sub(n));
    for entry in &entries[skip..] {
        print_entry(entry, args.timestamps)?;
    }
    let Some(follower) = follower.as_mut() else {
        return Ok(ExitCode::SUCCESS);
    };
    loop {
        let up = live::status(&global.root, &store.container(&record.id)?).is_up()
            || live::supervisor_alive(&paths);
        for entry in follower.poll()?.iter().filter(|e| wanted(e)) {
            print_entry(entry, args.timestamps)?;
        }
        if !up {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(logfile::FOLLOW_INTERVAL.max(Duration::from_millis(20)));
    }
}

/// docker's `--since`/`--until`: an RFC 3339 time, unix seconds, or a duration ago.
fn parse_time(text: &str) -> anyhow::Result<SystemTime> {
    if let Ok(at) = humantime::parse_rfc3339_weak(text) {
        return Ok(at);
    }
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds));
    }
    let ago = humantime::parse_duration(text).with_context(|| {
        format!("invalid time {text:?}: an RFC 3339 time, unix seconds, or a duration such as 10m")
    })?;
    Ok(SystemTime::now() - ago)
}

fn parse_tail(text: &str) -> anyhow::Result<Option<usize>> {
    if text == "all" {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .with_context(|| format!("invalid --tail {text:?}: a number of lines, or \"all\""))
}

fn print_entry(entry: &LogEntry, timestamps: bool) -> anyhow::Result<()> {
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
