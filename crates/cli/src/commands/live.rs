//! A container's live state, from what survives and what does not.
//!
//! The store's record says what must outlive a crash: created, last start,
//! last exit. What is true right now comes from the machine: the supervisor
//! holds an exclusive `flock` on `containers/<id>/supervisor.lock` for as long
//! as it lives (the kernel drops it when the process dies, however it dies),
//! and the runtime's `/run/basic-docker/<id>/state.json` names the init, which
//! must still be alive with the container's root as its root. A wiped `/run`
//! or a killed supervisor therefore reads as exited, never as a running
//! container nobody tracks.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use basic_image_store::ContainerRecord;
use serde_json::Value;

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
    if let Some(pid) = live_init(&paths) {
        return if frozen(&record.id) {
            Status::Paused(pid)
        } else {
            Status::Running(pid)
        };
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

/// The init's PID, when the runtime's state names a live process that is
/// still the one it started (a PID reused by another process has another start
/// time).
pub fn live_init(paths: &Paths) -> Option<i32> {
    let text = std::fs::read_to_string(paths.state.join("state.json")).ok()?;
    let state: Value = serde_json::from_str(&text).ok()?;
    let pid = i32::try_from(state.get("pid")?.as_i64()?).ok()?;
    let started = start_time(pid)?;
    let id = paths.state.file_name()?.to_string_lossy().into_owned();
    let same = match state.get("init_start_time").and_then(Value::as_u64) {
        Some(recorded) => recorded == started,
        // Without a recorded start time: the process must be in the container's cgroup.
        None => {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| c.contains(&id))
        }
    };
    (pid > 0 && same).then_some(pid)
}

/// Field 22 of `/proc/PID/stat`: when the process started, in clock ticks after boot.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after its end.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
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
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Whether the container's freezer cgroup is frozen (v1 or v2).
pub fn frozen(id: &str) -> bool {
    let v1 = Path::new("/sys/fs/cgroup/freezer/basic-docker")
        .join(id)
        .join("freezer.state");
    if let Ok(state) = std::fs::read_to_string(v1) {
        return state.trim() != "THAWED";
    }
    let v2 = Path::new("/sys/fs/cgroup/basic-docker")
        .join(id)
        .join("cgroup.freeze");
    std::fs::read_to_string(v2).is_ok_and(|s| s.trim() == "1")
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
