//! A container's live state, from what survives and what does not.
//!
//! The store's record says what must outlive a crash: created, last start,
//! last exit. What is true right now comes from the machine: the supervisor
//! holds an exclusive `flock` on `containers/<id>/supervisor.lock` for as long
//! as it lives (the kernel drops it when the process dies, however it dies),
//! and the runtime's `/run/basic-docker/<id>/state.json` names the init, which
//! must still be alive with the start time recorded there. A wiped `/run`
//! or a killed supervisor therefore reads as exited, never as a running
//! container nobody tracks.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use basic_image_store::ContainerRecord;
use basic_runtime::{StateRoot, Status as RuntimeStatus};

use super::containers::STATE_DIR;

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

/// Paths of one container.
#[derive(Debug, Clone)]
pub struct Paths {
    /// `<root>/containers/<id>`.
    pub dir: PathBuf,
    /// The merged root mount point.
    pub rootfs: PathBuf,
    /// The runtime's state directory `/run/basic-docker/<id>`.
    pub state: PathBuf,
}

impl Paths {
    /// The paths of container `id` under `root`.
    pub fn new(root: &Path, id: &str) -> Self {
        let dir = root.join("containers").join(id);
        Paths {
            rootfs: dir.join("rootfs"),
            state: Path::new(STATE_DIR).join(id),
            dir,
        }
    }

    /// The runtime spec.
    pub fn spec(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The json-file log, named as docker names it.
    pub fn log(&self) -> PathBuf {
        let id = self.dir.file_name().unwrap_or_default().to_string_lossy();
        self.dir.join(format!("{id}-json.log"))
    }

    /// The mounts that make the root, saved at create.
    pub fn mounts(&self) -> PathBuf {
        self.dir.join("mounts.json")
    }

    /// Held by the supervisor while it lives.
    pub fn supervisor_lock(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }

    /// Present while a stop was asked for: no restart follows the exit.
    pub fn stop_marker(&self) -> PathBuf {
        self.state.with_extension("stop")
    }

    /// Why the last start failed, written by the supervisor.
    pub fn start_error(&self) -> PathBuf {
        self.dir.join("start-error")
    }
}

/// The container's status now.
pub fn status(root: &Path, record: &ContainerRecord) -> Status {
    let paths = Paths::new(root, &record.id);
    match runtime_state(&record.id) {
        Some(state) if state.status == RuntimeStatus::Paused => return Status::Paused(state.pid),
        Some(state) if state.status == RuntimeStatus::Running => return Status::Running(state.pid),
        _ => {}
    }
    if supervisor_alive(&paths) {
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

/// The runtime's view of container `id`, its status computed now (a recycled
/// init pid does not count: the runtime checks the init's start time).
pub fn runtime_state(id: &str) -> Option<basic_runtime::State> {
    runtime().state(id).ok()
}

/// The runtime's state directory, where `Container::run` records its containers.
pub fn runtime() -> StateRoot {
    StateRoot::new(STATE_DIR)
}

/// The init's PID while the container runs (or is paused).
pub fn live_init(paths: &Paths) -> Option<i32> {
    let id = paths.state.file_name()?.to_string_lossy().into_owned();
    runtime_state(&id)
        .filter(|s| matches!(s.status, RuntimeStatus::Running | RuntimeStatus::Paused))
        .map(|s| s.pid)
}

/// Whether a supervisor holds the container's lock.
pub fn supervisor_alive(paths: &Paths) -> bool {
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
pub fn lock_supervisor(paths: &Paths) -> anyhow::Result<Option<File>> {
    let path = paths.supervisor_lock();
    let file = super::privacy::open_private(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Waits until `done` holds or `timeout` passes; returns whether it held.
pub fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
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
