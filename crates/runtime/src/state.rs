//! A created container on disk: `<root>/<id>/state.json` and `<root>/<id>/start/exec.fifo`,
//! and its status computed from the live system.
//!
//! The file holds the OCI state (`runc state` prints exactly [`State`]) plus what the later
//! commands need: the init's start time (so a reused pid is not taken for the init), and
//! where its cgroup is.
//!
//! The state is private to whoever runs the runtime: the root is [`ROOT_MODE`] (others may
//! pass through, as through runc's and containerd's, but not list it), each container's
//! directory [`CONTAINER_DIR_MODE`], `state.json` [`STATE_FILE_MODE`]. The fifo sits in a
//! directory of its own, [`START_DIR`], which the init reaches through a descriptor opened
//! before it left the host's view, so an init that already switched to another user can
//! still open it although nobody but the owner can reach it by path.

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The OCI state version written.
pub const OCI_VERSION: &str = "1.0.2";

/// The state file's name inside `<root>/<id>/`.
pub const STATE_FILE: &str = "state.json";

/// The fifo the created init blocks on until `start`, in [`START_DIR`].
pub const EXEC_FIFO: &str = "exec.fifo";

/// The directory inside `<root>/<id>/` that holds [`EXEC_FIFO`] until `start`. Unlike its
/// parent it is `0711`: the init, whatever user it became, must be able to open the fifo in
/// it (through a descriptor of it, never by path, since the parent is owner-only).
pub const START_DIR: &str = "start";

/// The mode of a state root (`/run/basic-docker`, runc's `--root`): no listing by others.
pub const ROOT_MODE: u32 = 0o711;

/// The mode of a container's state directory `<root>/<id>/`: the owner's only.
pub const CONTAINER_DIR_MODE: u32 = 0o700;

/// The mode of `state.json` (it names the bundle, the root filesystem and annotations).
pub const STATE_FILE_MODE: u32 = 0o600;

/// Errors reading or writing a container's state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing or renaming the file failed.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state directory or file could not be given its owner-only mode.
    #[error("setting the mode of {path} to {mode:04o}")]
    Mode {
        /// The directory or file.
        path: PathBuf,
        /// The mode it was to get.
        mode: u32,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a state we wrote.
    #[error("parsing {path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// A container's status, as the OCI runtime spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created: the init is forked but has not executed the command yet (a
    /// container started in process is recorded so until the exec).
    Creating,
    /// Set up; the init waits for `start` before exec'ing the command.
    Created,
    /// The command runs.
    Running,
    /// Frozen with the freezer cgroup.
    Paused,
    /// The init has exited.
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// The OCI state of a container, in runc's field order and spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    /// The OCI runtime spec version of this state.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// The init's pid (0 once stopped, as runc prints it).
    pub pid: i32,
    /// Status at the time this value was made.
    pub status: Status,
    /// The bundle directory (empty when the container was not made from a bundle).
    pub bundle: PathBuf,
    /// The root filesystem.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339 with nanoseconds.
    pub created: String,
    /// The creating user for rootless containers; empty for root (runc's convention).
    pub owner: String,
    /// The spec's annotations.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// What is saved: the OCI state plus what `start`/`kill`/`delete` need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Saved {
    #[serde(flatten)]
    pub state: State,
    /// `/proc/<pid>/stat` field 22 of the init when it was created.
    pub init_start_time: u64,
    /// The cgroup, relative to each hierarchy's root; none when cgroups were off.
    pub cgroup_path: Option<PathBuf>,
    /// Where the hierarchies are mounted.
    pub cgroup_root: PathBuf,
    /// The spec's `poststart` and `poststop` hooks, which `start` and `delete` run from
    /// other processes than the one that created the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

impl Saved {
    pub(crate) fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Atomic write: readers see the old file or the new one.
    pub(crate) fn save(&self, dir: &Path) -> Result<(), StateError> {
        let path = Self::path(dir);
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let json = serde_json::to_vec(self).expect("a state always serialises");
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { what, path, source }
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(STATE_FILE_MODE)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &json))
            .map_err(io("writing", &tmp))?;
        // A temp file an older version left may be wider than a new one would be.
        tighten(&tmp, STATE_FILE_MODE)?;
        std::fs::rename(&tmp, &path).map_err(io("renaming into", &path))
    }

    pub(crate) fn load(dir: &Path) -> Result<Self, StateError> {
        let path = Self::path(dir);
        let bytes = std::fs::read(&path).map_err(|source| StateError::Io {
            what: "reading",
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Parse { path, source })
    }

    /// Whether the init recorded here still runs (a zombie counts as gone).
    pub(crate) fn init_alive(&self) -> bool {
        self.state.pid > 0
            && proc_stat(self.state.pid).is_some_and(|(state, start)| {
                start == self.init_start_time && state != 'Z' && state != 'X'
            })
    }
}

/// Makes sure the state root `dir` exists with at most [`ROOT_MODE`]: created with it (its
/// parents with the usual modes), or tightened when it is wider.
pub(crate) fn create_root(dir: &Path) -> Result<(), StateError> {
    private_dir(dir, ROOT_MODE, true)
}

/// Makes sure a container's directory `dir` exists with at most [`CONTAINER_DIR_MODE`]
/// (its root must exist).
pub(crate) fn create_container_dir(dir: &Path) -> Result<(), StateError> {
    private_dir(dir, CONTAINER_DIR_MODE, false)
}

fn private_dir(dir: &Path, mode: u32, parents: bool) -> Result<(), StateError> {
    let create = || std::fs::DirBuilder::new().mode(mode).create(dir);
    let creating = |source| StateError::Io {
        what: "creating",
        path: dir.to_path_buf(),
        source,
    };
    let created = match create() {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound && parents => {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent).map_err(|source| StateError::Io {
                    what: "creating",
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            match create() {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(creating(e)),
            }
        }
        Err(e) => return Err(creating(e)),
    };
    // mkdir's mode is only narrowed by the umask: a new directory is private already.
    if created { Ok(()) } else { tighten(dir, mode) }
}

/// Removes from the permission bits of `path` (when it exists) those `mode` does not grant;
/// writes nothing when there is nothing to remove, so it is cheap to repeat.
pub(crate) fn tighten(path: &Path, mode: u32) -> Result<(), StateError> {
    let current = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(StateError::Io {
                what: "reading the mode of",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let wanted = current & !(0o777 & !mode);
    if wanted == current {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)).map_err(|source| {
        StateError::Mode {
            path: path.to_path_buf(),
            mode: wanted,
            source,
        }
    })
}

/// `(state letter, start time)` from `/proc/<pid>/stat`. The command name may hold spaces
/// and parentheses, so fields are counted after its last `)`.
pub(crate) fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state come fields 4..; start time is field 22, the 20th after the state.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Now as RFC 3339 UTC with nanoseconds, as runc writes `created`.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_reads_our_own_start_time() {
        let (state, start) = proc_stat(std::process::id() as i32).unwrap();
        assert!(state == 'R' || state == 'S', "{state}");
        assert!(start > 0);
        assert_eq!(proc_stat(std::process::id() as i32).unwrap().1, start);
    }

    #[test]
    fn state_serialises_with_runc_field_names() {
        let s = State {
            oci_version: OCI_VERSION.into(),
            id: "c1".into(),
            pid: 42,
            status: Status::Created,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2024-01-01T00:00:00.000000000Z".into(),
            owner: String::new(),
            annotations: Default::default(),
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["ociVersion"], "1.0.2");
        assert_eq!(v["status"], "created");
        assert_eq!(v["pid"], 42);
        assert!(v.get("annotations").is_none());
        let back: State = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn saved_state_round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let saved = Saved {
            state: State {
                oci_version: OCI_VERSION.into(),
                id: "c2".into(),
                pid: std::process::id() as i32,
                status: Status::Running,
                bundle: PathBuf::new(),
                rootfs: "/r".into(),
                created: now_rfc3339(),
                owner: String::new(),
                annotations: [("a".to_string(), "b".to_string())].into(),
            },
            init_start_time: proc_stat(std::process::id() as i32).unwrap().1,
            cgroup_path: Some("x/c2".into()),
            cgroup_root: "/sys/fs/cgroup".into(),
            hooks: None,
        };
        saved.save(dir.path()).unwrap();
        let back = Saved::load(dir.path()).unwrap();
        assert_eq!(back.state, saved.state);
        assert!(back.init_alive(), "our own process is alive");
        let reused = Saved {
            init_start_time: back.init_start_time + 1,
            ..back
        };
        assert!(
            !reused.init_alive(),
            "same pid, other start time: not the init"
        );
    }
}
