//! A container's live state, from what survives and what does not.
//!
//! The store's record says what must outlive a crash: created, last start, last exit.
//! What is true right now comes from the machine: the supervisor holds an exclusive
//! `flock` on `containers/<id>/supervisor.lock` for as long as it lives (the kernel drops
//! it when the process dies, however it dies), and the runtime's `<state>/<id>/state.json`
//! names the init, which must still be alive with the start time recorded there. A wiped
//! state directory or a killed supervisor therefore reads as exited, never as a running
//! container nobody tracks.

use std::fs::File;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use basic_image_store::ContainerRecord;
use basic_runtime::{StateRoot, Status as RuntimeStatus};

use crate::error::{EngineError, Result};
use crate::paths::{ContainerPaths, EnginePaths};

/// docker's exit code for a container whose supervisor vanished (a crash).
pub const LOST_EXIT_CODE: i32 = 255;

/// What a container is doing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Created, never started.
    Created,
    /// Its init runs, with this host PID.
    Running(i32),
    /// Running but frozen.
    Paused(i32),
    /// Its supervisor waits to start it again.
    Restarting,
    /// Ended with this code.
    Exited(i32),
}

impl Status {
    /// docker's `State.Status` word.
    pub fn word(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running(_) => "running",
            Status::Paused(_) => "paused",
            Status::Restarting => "restarting",
            Status::Exited(_) => "exited",
        }
    }

    /// The init's PID while it runs.
    pub fn pid(self) -> Option<i32> {
        match self {
            Status::Running(pid) | Status::Paused(pid) => Some(pid),
            _ => None,
        }
    }

    /// Whether something of the container is alive (running, paused or restarting).
    pub fn is_up(self) -> bool {
        matches!(
            self,
            Status::Running(_) | Status::Paused(_) | Status::Restarting
        )
    }
}

/// The runtime's state directory, where containers' inits are recorded.
pub(crate) fn runtime(paths: &EnginePaths) -> StateRoot {
    StateRoot::new(&paths.state)
}

/// The container's status now.
pub(crate) fn status(paths: &EnginePaths, record: &ContainerRecord) -> Status {
    let container = paths.container(&record.id);
    match runtime(paths).state(&record.id).ok() {
        Some(state) if state.status == RuntimeStatus::Paused => return Status::Paused(state.pid),
        Some(state) if state.status == RuntimeStatus::Running => return Status::Running(state.pid),
        _ => {}
    }
    if supervisor_alive(&container) {
        return match record.exit {
            Some(_) => Status::Restarting,
            // Between the supervisor's start and the init's.
            None => Status::Created,
        };
    }
    match (record.started, record.exit) {
        (None, _) => Status::Created,
        (Some(_), Some(exit)) => Status::Exited(exit.code),
        (Some(_), None) => Status::Exited(LOST_EXIT_CODE),
    }
}

/// The init's PID while container `id` runs (or is paused); a recycled pid does not count
/// (the runtime checks the init's start time).
pub(crate) fn live_init(paths: &EnginePaths, id: &str) -> Option<i32> {
    runtime(paths)
        .state(id)
        .ok()
        .filter(|s| matches!(s.status, RuntimeStatus::Running | RuntimeStatus::Paused))
        .map(|s| s.pid)
}

/// Whether a supervisor holds the container's lock.
pub(crate) fn supervisor_alive(paths: &ContainerPaths) -> bool {
    let Ok(file) = File::open(paths.supervisor_lock()) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => false,
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// Takes the supervisor's lock, or `None` when another supervisor has it.
pub(crate) fn lock_supervisor(paths: &ContainerPaths) -> Result<Option<File>> {
    let path = paths.supervisor_lock();
    let file = crate::privacy::open_private(&path).map_err(EngineError::io("opening", &path))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(EngineError::io("locking", &path)(e)),
    }
}

/// Waits until `done` holds or `timeout` passes; returns whether it held.
pub(crate) fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    loop {
        if done() {
            return true;
        }
        if started.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(poll_pause(started.elapsed()));
    }
}

/// The pause between two looks at something that changes when another process gets to it
/// (an init appearing, a container exiting or going): a start or a short command's end
/// comes within milliseconds, and every millisecond waited past it is added to a user's
/// `docker run`; a look costs a few syscalls. So look every millisecond at first, then
/// less and less often.
pub(crate) fn poll_pause(waited: Duration) -> Duration {
    match waited.as_millis() {
        0..100 => Duration::from_millis(1),
        100..2000 => Duration::from_millis(5),
        _ => Duration::from_millis(50),
    }
}

/// docker's `Status` text of a listed container: "Up 5 seconds", "Exited (0) 2 minutes
/// ago", "Created", "Up 1 second (Paused)", "Restarting (1) 3 seconds ago".
pub fn status_text(record: &ContainerRecord, status: Status) -> String {
    let since = |nanos: Option<i64>| {
        let at = nanos.unwrap_or(record.created) / 1_000_000_000;
        human_duration(now_nanos() / 1_000_000_000 - at)
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

/// docker's `units.HumanDuration`: "Less than a second", "2 minutes", "About an hour".
pub fn human_duration(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = (seconds as f64 / 3600.0 + 0.5) as i64;
    if seconds < 1 {
        "Less than a second".to_string()
    } else if seconds == 1 {
        "1 second".to_string()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".to_string()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".to_string()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// Now, in unix nanoseconds.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Unix nanoseconds as docker's RFC 3339 (`0001-01-01T00:00:00Z` for never).
pub fn rfc3339(nanos: Option<i64>) -> String {
    match nanos.and_then(|n| u64::try_from(n).ok()) {
        Some(n) => {
            humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(n)).to_string()
        }
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basic_image_store::ContainerExit;

    fn record(started: Option<i64>, exit: Option<i32>) -> ContainerRecord {
        ContainerRecord {
            id: "c0ffee".into(),
            name: "web".into(),
            image_id: "sha256:x".into(),
            image: "busybox".into(),
            created: 1,
            config: serde_json::Value::Null,
            started,
            exit: exit.map(|code| ContainerExit {
                code,
                finished: 2,
                oom_killed: false,
            }),
            restart_count: 0,
        }
    }

    #[test]
    fn without_a_supervisor_or_an_init_the_record_decides() {
        let dir = tempfile::tempdir().unwrap();
        let paths = EnginePaths {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
        };
        assert_eq!(status(&paths, &record(None, None)), Status::Created);
        assert_eq!(status(&paths, &record(Some(1), Some(3))), Status::Exited(3));
        // Started, no exit recorded, nothing alive: the supervisor was lost.
        assert_eq!(
            status(&paths, &record(Some(1), None)),
            Status::Exited(LOST_EXIT_CODE)
        );
    }

    #[test]
    fn a_held_lock_is_a_live_supervisor() {
        let dir = tempfile::tempdir().unwrap();
        let paths = EnginePaths {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
        };
        let container = paths.container("c0ffee");
        std::fs::create_dir_all(&container.dir).unwrap();
        assert!(!supervisor_alive(&container));
        let held = lock_supervisor(&container).unwrap().unwrap();
        assert!(
            lock_supervisor(&container).unwrap().is_none(),
            "second lock"
        );
        assert!(supervisor_alive(&container));
        assert_eq!(
            status(&paths, &record(Some(1), Some(0))),
            Status::Restarting
        );
        drop(held);
        assert!(!supervisor_alive(&container));
    }
}
