//! A container's json-file log, read back and followed.

use std::time::{Duration, SystemTime};

use basic_runtime::logfile::{self, LogEntry, LogFollower};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::status;

/// Which entries, and whether to wait for more.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Only the last this many entries of what is there (docker's `--tail`).
    pub tail: Option<usize>,
    /// Only entries at or after this time.
    pub since: Option<SystemTime>,
    /// Only entries before this time.
    pub until: Option<SystemTime>,
    /// After what is there, what follows, until the container stops (`-f`).
    pub follow: bool,
}

impl Engine {
    /// Calls `on_entry` with each entry of container `query`'s log that `options` asks
    /// for, in order; with `follow`, keeps going until the container stops (or
    /// `on_entry` fails, which ends the stream with its error).
    pub fn logs(
        &self,
        query: &str,
        options: &LogOptions,
        mut on_entry: impl FnMut(&LogEntry) -> Result<()>,
    ) -> Result<()> {
        let c = self.container(query)?;
        let path = c.paths.log();
        let wanted = |entry: &LogEntry| {
            let at = logfile::entry_time(entry);
            options.since.is_none_or(|s| at.is_some_and(|t| t >= s))
                && options.until.is_none_or(|u| at.is_some_and(|t| t < u))
        };
        // Following starts before reading, so no line falls between the two.
        let mut follower = match options.follow {
            true => Some(
                LogFollower::from_end(path.clone()).map_err(EngineError::io("following", &path))?,
            ),
            false => None,
        };
        let entries: Vec<LogEntry> = logfile::read_all(&path)
            .map_err(EngineError::io("reading", &path))?
            .into_iter()
            .filter(|e| wanted(e))
            .collect();
        let skip = options.tail.map_or(0, |n| entries.len().saturating_sub(n));
        for entry in &entries[skip..] {
            on_entry(entry)?;
        }
        let Some(follower) = follower.as_mut() else {
            return Ok(());
        };
        loop {
            let record = self.stored(c.id())?;
            let up =
                status::status(&self.paths, &record).is_up() || status::supervisor_alive(&c.paths);
            let batch = follower
                .poll()
                .map_err(EngineError::io("following", &path))?;
            for entry in batch.iter().filter(|e| wanted(e)) {
                on_entry(entry)?;
            }
            if !up {
                return Ok(());
            }
            std::thread::sleep(logfile::FOLLOW_INTERVAL.max(Duration::from_millis(20)));
        }
    }
}
