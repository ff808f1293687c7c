//! Facts about the host that every `run` needs but that cost milliseconds to find
//! out (forks, probe mounts, probe cgroups): found once and kept.
//!
//! - The snapshotter is chosen once per store and recorded in `<root>/snapshotter`,
//!   as docker keeps its storage driver: the store's layout depends on it.
//! - The runtime's [`Environment`] is kept in `/run/basic-docker/environment.json`
//!   for the rest of the boot (`/run` is a tmpfs); `info` always probes afresh and
//!   refreshes it.

use std::path::{Path, PathBuf};

use basic_rootfs::snapshot::{Snapshotter, SnapshotterKind};
use basic_runtime::{Environment, detect};

use super::privacy;

/// Run-time state, as docker's `/run/docker`.
const STATE_DIR: &str = "/run/basic-docker";

/// The snapshotter for the store at `root`: `BASIC_DOCKER_SNAPSHOTTER` when set,
/// else the one recorded for this store, else detected now and recorded.
pub fn snapshotter(root: &Path) -> Box<dyn Snapshotter> {
    snapshotter_kind(root).create(root)
}

/// The kind [`snapshotter`] uses.
pub fn snapshotter_kind(root: &Path) -> SnapshotterKind {
    if let Some(kind) = std::env::var("BASIC_DOCKER_SNAPSHOTTER")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return kind;
    }
    let record = root.join("snapshotter");
    if let Some(kind) = std::fs::read_to_string(&record)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return kind;
    }
    let kind = basic_rootfs::snapshot::detect(root);
    if root.is_dir() {
        write_atomically(&record, kind.to_string().as_bytes());
    }
    kind
}

/// The host's isolation features, from this boot's record or probed now.
pub fn environment(refresh: bool) -> Environment {
    let record = PathBuf::from(STATE_DIR).join("environment.json");
    if !refresh {
        let cached = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(env) = cached {
            return env;
        }
    }
    let env = detect();
    if privacy::private_dir(Path::new(STATE_DIR), privacy::STATE_DIR_MODE).is_ok()
        && let Ok(bytes) = serde_json::to_vec(&env)
    {
        write_atomically(&record, &bytes);
    }
    env
}

/// Temp file (owner-only, as everything the engine writes) and rename: a reader sees the
/// old record or the new one. A failure only means probing again next time, so it is
/// logged, not reported.
fn write_atomically(path: &Path, bytes: &[u8]) {
    if let Err(e) = privacy::write_private(path, bytes) {
        tracing::debug!(path = %path.display(), error = %e, "not recording host facts");
    }
}
