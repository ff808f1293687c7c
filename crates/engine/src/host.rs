//! Facts about the host that every `run` needs but that cost milliseconds to find out
//! (forks, probe mounts, probe cgroups): found once and kept.
//!
//! - The snapshotter is chosen once per store and recorded in `<root>/snapshotter`, as
//!   docker keeps its storage driver: the store's layout depends on it.
//! - The runtime's [`Environment`] is kept in `<state>/environment.json` for the rest of
//!   the boot (the state directory is a tmpfs); [`environment`] with `refresh` probes
//!   afresh and records that.

use std::path::Path;

use basic_rootfs::snapshot::{Snapshotter, SnapshotterKind};
use basic_runtime::{Environment, detect};

use crate::paths::EnginePaths;
use crate::privacy;

/// The variable that overrides the snapshotter (`overlay` or `copy`).
pub const SNAPSHOTTER_VARIABLE: &str = "BASIC_DOCKER_SNAPSHOTTER";

/// The snapshotter for the store: [`SNAPSHOTTER_VARIABLE`] when set, else the one recorded
/// for this store, else detected now and recorded.
pub fn snapshotter(paths: &EnginePaths) -> Box<dyn Snapshotter> {
    snapshotter_kind(paths).create(&paths.root)
}

/// The kind [`snapshotter`] uses.
pub fn snapshotter_kind(paths: &EnginePaths) -> SnapshotterKind {
    if let Some(kind) = std::env::var(SNAPSHOTTER_VARIABLE)
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return kind;
    }
    let record = paths.snapshotter_record();
    if let Some(kind) = std::fs::read_to_string(&record)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return kind;
    }
    let kind = basic_rootfs::snapshot::detect(&paths.root);
    if paths.root.is_dir() {
        write_atomically(&record, kind.to_string().as_bytes());
    }
    kind
}

/// The host's isolation features, from this boot's record or probed now.
pub fn environment(paths: &EnginePaths, refresh: bool) -> Environment {
    let record = paths.environment_record();
    if !refresh {
        let cached = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(env) = cached {
            return env;
        }
    }
    let env = detect();
    if privacy::private_dir(&paths.state, privacy::STATE_DIR_MODE).is_ok()
        && let Ok(bytes) = serde_json::to_vec(&env)
    {
        write_atomically(&record, &bytes);
    }
    env
}

/// A failure only means probing again next time, so it is logged, not reported.
fn write_atomically(path: &Path, bytes: &[u8]) {
    if let Err(e) = privacy::write_private(path, bytes) {
        tracing::debug!(path = %path.display(), error = %e, "not recording host facts");
    }
}
