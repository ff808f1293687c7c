//! Cgroups: one [`CgroupManager`] trait, a v1 and a v2 implementation, picked at run time.
//!
//! We write the cgroup files ourselves instead of using `libcgroups`: the subset a container
//! needs (memory, memory+swap, CPU quota/period/shares, cpuset, pids, v1 devices, OOM counter,
//! CPU usage) is a few dozen file writes, and doing it here avoids libcgroups' traps on this
//! project's machines (nix 0.29 `Pid` in its API, `apply()` only after `add_task()`, no v1 OOM
//! counter, hugetlb on the hybrid v2 mount) and keeps the dependency tree small. Both
//! implementations take the hierarchy root as a path, so they are unit-tested on a tempdir.

pub mod unprivileged;
mod v1;
mod v2;
mod warm;

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

pub use v1::V1Manager;
pub use v2::V2Manager;
pub(crate) use warm::finish as finish_warm_up;
pub use warm::warm_up_migration;

/// Where the cgroup hierarchies are mounted on a normal system.
pub const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Errors from cgroup operations; each names the file or directory involved.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Creating a cgroup directory failed.
    #[error("creating cgroup directory {path}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing a cgroup control file failed.
    #[error("writing {value:?} to {path}")]
    Write {
        /// The control file.
        path: PathBuf,
        /// What we tried to write.
        value: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Reading a cgroup control file failed.
    #[error("reading {path}")]
    Read {
        /// The control file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Removing the cgroup directory failed (even after killing what was left in it).
    #[error("removing cgroup directory {path}")]
    Remove {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A control file did not hold what we expected.
    #[error("unexpected content in {path}: {content:?}")]
    Parse {
        /// The control file.
        path: PathBuf,
        /// What it held.
        content: String,
    },
    /// The spec asks for something this hierarchy cannot do.
    #[error("cgroup {version}: {what} is not supported")]
    Unsupported {
        /// "v1" or "v2".
        version: &'static str,
        /// The resource.
        what: String,
    },
}

/// Cgroup version of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CgroupVersion {
    /// Per-controller hierarchies (also the "hybrid" layout: v1 controllers plus an almost
    /// empty cgroup2 mount at `unified/`).
    V1,
    /// The unified hierarchy.
    V2,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "v1",
            CgroupVersion::V2 => "v2",
        })
    }
}

/// One container's cgroup, whatever the hierarchy looks like.
pub trait CgroupManager: Send + Sync + std::fmt::Debug {
    /// The version this manager drives.
    fn version(&self) -> CgroupVersion;
    /// Create the cgroup directories (parents included).
    fn create(&self) -> Result<(), CgroupError>;
    /// Write the limits of `resources`. Works before any task is in the cgroup.
    fn apply(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Move a process into the cgroup.
    fn add_task(&self, pid: i32) -> Result<(), CgroupError>;
    /// Whether the kernel OOM-killed something in this cgroup.
    fn oom_killed(&self) -> Result<bool, CgroupError>;
    /// CPU time consumed by the cgroup so far.
    fn cpu_usage(&self) -> Result<Duration, CgroupError>;
    /// Pids currently in the cgroup.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Kill what is left and remove the cgroup directories (not the shared parents).
    fn remove(&self) -> Result<(), CgroupError>;
    /// The directory of `controller` (v1) or the unified directory (v2); for tests and metrics.
    fn controller_path(&self, controller: &str) -> Option<PathBuf>;
}

/// Which version the hierarchy at `root` is: cgroup2fs mounted right there means v2.
pub fn detect_version(root: &Path) -> CgroupVersion {
    match nix::sys::statfs::statfs(root) {
        Ok(st) if st.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => {
            CgroupVersion::V2
        }
        _ => CgroupVersion::V1,
    }
}

/// A manager for the relative cgroup path `path` (e.g. `basic-docker/<id>`) on this host.
pub fn manager_for(root: &Path, path: &Path) -> Box<dyn CgroupManager> {
    let rel = path.strip_prefix("/").unwrap_or(path).to_path_buf();
    match detect_version(root) {
        CgroupVersion::V2 => Box::new(V2Manager::new(root, &rel)),
        CgroupVersion::V1 => Box::new(V1Manager::new(root, &rel)),
    }
}

// --- small file helpers shared by both versions -------------------------------------------

fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

fn read_file(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn create_dir(path: &Path) -> Result<(), CgroupError> {
    std::fs::create_dir_all(path).map_err(|source| CgroupError::Create {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads `key value` lines (memory.events, memory.oom_control, cpu.stat).
fn keyed_value(path: &Path, key: &str) -> Result<Option<u64>, CgroupError> {
    let content = read_file(path)?;
    for line in content.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some(key) {
            return it
                .next()
                .and_then(|v| v.parse().ok())
                .map(Some)
                .ok_or_else(|| CgroupError::Parse {
                    path: path.to_path_buf(),
                    content: line.to_string(),
                });
        }
    }
    Ok(None)
}

fn read_pids(path: &Path) -> Result<Vec<i32>, CgroupError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Removes a cgroup directory, killing leftovers: processes outside the container's pid
/// namespace (or still exiting) keep it busy for a moment after the init exited.
fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let mut last = None;
    for attempt in 0..200 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                for pid in read_pids(&dir.join("cgroup.procs"))? {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                last = Some(e);
                std::thread::sleep(Duration::from_millis(if attempt < 20 { 1 } else { 10 }));
            }
        }
    }
    Err(CgroupError::Remove {
        path: dir.to_path_buf(),
        source: last.unwrap_or_else(|| std::io::Error::other("cgroup stayed busy")),
    })
}

/// Whether the hierarchies at `root` offer hugetlb limits: a v1 `hugetlb` hierarchy, or
/// hugetlb in the cgroup2 mount (v2, or the hybrid layout's `unified/`).
pub fn hugetlb_available(root: &Path) -> bool {
    let offers = |dir: &Path| {
        std::fs::read_to_string(dir.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"))
    };
    root.join("hugetlb").is_dir() || offers(root) || offers(&root.join("unified"))
}

/// `hugetlb.<size>.<suffix>` and the limit for each of the spec's hugepage limits. The page
/// size is the kernel's spelling (`2MB`, `1GB`, `64KB`); anything else, `..` or a `/`
/// included, is refused before it becomes part of a path.
fn hugetlb_files(
    limits: &[oci_spec::runtime::LinuxHugepageLimit],
    suffix: &str,
) -> Result<Vec<(String, i64)>, CgroupError> {
    limits
        .iter()
        .map(|l| {
            let size = l.page_size();
            let digits = size.trim_end_matches(['K', 'M', 'G', 'T', 'P', 'B']);
            let unit = &size[digits.len()..];
            let ok = !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit())
                && ["KB", "MB", "GB", "TB", "PB"].contains(&unit);
            if !ok {
                return Err(CgroupError::Unsupported {
                    version: "v1/v2",
                    what: format!(
                        "hugepage size {size:?} (write it as the kernel does: 2MB, 1GB, 64KB)"
                    ),
                });
            }
            Ok((format!("hugetlb.{size}.{suffix}"), l.limit()))
        })
        .collect()
}

/// The `cpu.shares` (v1, 2..262144) to `cpu.weight` (v2, 1..10000) conversion runc and the
/// kernel documentation use.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

#[cfg(test)]
mod tests;
