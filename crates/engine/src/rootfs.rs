//! A container's root filesystem: its snapshot, the mounts that make it (saved at
//! create, so every start mounts the same), and whether it is mounted now.

use std::path::{Path, PathBuf};

use basic_rootfs::snapshot::{Mount, Snapshot, Snapshotter};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::paths::ContainerPaths;
use crate::privacy;

#[derive(Serialize, Deserialize)]
struct SavedMount {
    fstype: String,
    source: PathBuf,
    options: Vec<String>,
    relative_to: Option<PathBuf>,
}

/// Prepares the container's snapshot on `layers`. For a container removed at its exit the
/// overlay is mounted `volatile`: its upper directory is deleted at exit, so the sync of
/// it that unmounting would otherwise do (tens of milliseconds on ext4) is wasted.
pub(crate) fn prepare(
    snapshotter: &dyn Snapshotter,
    id: &str,
    layers: &[PathBuf],
    throwaway: bool,
) -> Result<Vec<Mount>> {
    let mut snapshot = snapshotter.prepare(id, layers)?;
    if throwaway {
        for m in snapshot.mounts.iter_mut().filter(|m| m.fstype == "overlay") {
            m.options.push("volatile".to_string());
        }
    }
    Ok(snapshot.mounts)
}

/// Records the mounts of the container's root.
pub(crate) fn save_mounts(paths: &ContainerPaths, mounts: &[Mount]) -> Result<()> {
    let saved: Vec<SavedMount> = mounts
        .iter()
        .map(|m| SavedMount {
            fstype: m.fstype.clone(),
            source: m.source.clone(),
            options: m.options.clone(),
            relative_to: m.relative_to.clone(),
        })
        .collect();
    let bytes = serde_json::to_vec(&saved).map_err(|e| EngineError::Corrupt {
        what: "the root's mounts".into(),
        message: e.to_string(),
    })?;
    privacy::write_private(&paths.mounts(), &bytes)
}

/// The mounts saved at create.
pub(crate) fn load_mounts(paths: &ContainerPaths) -> Result<Vec<Mount>> {
    let path = paths.mounts();
    let text = std::fs::read(&path).map_err(EngineError::io("reading", &path))?;
    let saved: Vec<SavedMount> =
        serde_json::from_slice(&text).map_err(|e| EngineError::Corrupt {
            what: path.display().to_string(),
            message: e.to_string(),
        })?;
    Ok(saved
        .into_iter()
        .map(|m| Mount {
            fstype: m.fstype,
            source: m.source,
            options: m.options,
            relative_to: m.relative_to,
        })
        .collect())
}

/// Mounts the container's root from its saved mounts (at create, and at each start after
/// an unmount or a reboot).
pub(crate) fn mount(
    snapshotter: &dyn Snapshotter,
    paths: &ContainerPaths,
    mounts: &[Mount],
) -> Result<()> {
    let snapshot = Snapshot {
        key: String::new(),
        dir: paths.dir.clone(),
        mounts: mounts.to_vec(),
        readonly: false,
    };
    if snapshotter.mount(&snapshot, &paths.rootfs).is_ok() {
        return Ok(());
    }
    // Kernels before 5.10 do not know `volatile`: mount without it there.
    let mut plain = snapshot.clone();
    for m in &mut plain.mounts {
        m.options.retain(|o| o != "volatile");
    }
    Ok(snapshotter.mount(&plain, &paths.rootfs)?)
}

/// Mounts the root unless it is mounted already.
pub(crate) fn ensure_mounted(snapshotter: &dyn Snapshotter, paths: &ContainerPaths) -> Result<()> {
    if is_mounted(&paths.rootfs) {
        return Ok(());
    }
    mount(snapshotter, paths, &load_mounts(paths)?)
}

/// Unmounts the root when it is mounted (a stopped container's is not); a failure is
/// logged, as the rest of a teardown must still happen.
pub(crate) fn unmount(snapshotter: &dyn Snapshotter, paths: &ContainerPaths) {
    if !is_mounted(&paths.rootfs) {
        return;
    }
    if let Err(e) = snapshotter.unmount(&paths.rootfs) {
        tracing::warn!("unmounting {}: {e}", paths.rootfs.display());
    }
}

/// Whether something is mounted at `path` now.
pub fn is_mounted(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mount_point| mount_point == want)
}

/// Bytes in the container's writable layer (docker's `SizeRw`), 0 when unknown.
pub fn writable_size(root: &Path, id: &str) -> u64 {
    tree_size(&root.join("snapshots").join(id).join("upper"))
}

fn tree_size(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.blocks() * 512;
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum::<u64>())
        .unwrap_or(0)
}
