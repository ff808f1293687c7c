//! Taking a stopped container apart: its root mount, snapshot, leftover
//! runtime state and cgroup, its directory, and last its record (which lets
//! go of the image).

use std::path::Path;

use anyhow::Context as _;
use basic_image_store::{ContainerRecord, ImageStore};

use basic_image_store::short_id;

use super::create::{Settings, is_mounted};
use super::host;
use super::live::Paths;

/// Unmounts the container's root when it is mounted (a stopped container's is not).
pub fn unmount(root: &Path, paths: &Paths) {
    if !is_mounted(paths) {
        return;
    }
    if let Err(e) = host::snapshotter(root).unmount(&paths.rootfs) {
        eprintln!("Warning: unmounting {}: {e}", paths.rootfs.display());
    }
}

/// Removes a container that is not running. The record goes last: while any
/// file is left the image stays held, so its layers stay under the snapshot.
pub fn remove(root: &Path, store: &ImageStore, record: &ContainerRecord) -> anyhow::Result<()> {
    let paths = Paths::new(root, &record.id);
    unmount(root, &paths);
    let snapshotter = host::snapshotter(root);
    if let Err(e) = snapshotter.remove(&record.id) {
        // A container whose create failed half-way may have no snapshot.
        if paths.dir.exists() {
            tracing::debug!("removing the snapshot of {}: {e}", short_id(&record.id));
        }
    }
    remove_runtime_leftovers(&record.id, &paths);
    // Normally detached at the final exit; not when the supervisor was killed.
    // A record whose settings cannot be read is detached as a bridge one would be.
    let network = Settings::of(record).map(|s| s.network).unwrap_or_default();
    super::container_network::detach(root, &record.id, &network);
    match std::fs::remove_dir_all(&paths.dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing {}", paths.dir.display()));
        }
    }
    store
        .remove_container(&record.id)
        .with_context(|| format!("removing the record of {}", short_id(&record.id)))?;
    Ok(())
}

/// What a runtime killed with its supervisor leaves: its state directory and
/// its cgroup (removed by the runtime itself after a normal exit).
fn remove_runtime_leftovers(id: &str, paths: &Paths) {
    let _ = std::fs::remove_dir_all(&paths.state);
    let _ = std::fs::remove_file(paths.stop_marker());
    let cgroup = Path::new("basic-docker").join(id);
    let manager = basic_runtime::cgroups::manager_for(
        Path::new(basic_runtime::cgroups::DEFAULT_ROOT),
        &cgroup,
    );
    let exists = ["pids", "memory", "cpu"]
        .iter()
        .any(|c| manager.controller_path(c).is_some_and(|p| p.exists()));
    if exists && let Err(e) = manager.remove() {
        eprintln!("Warning: removing the cgroup of {}: {e}", short_id(id));
    }
}

/// Bytes in the container's writable layer (docker's SIZE), 0 when unknown.
pub fn writable_size(root: &Path, id: &str) -> u64 {
    let upper = root.join("snapshots").join(id).join("upper");
    tree_size(&upper)
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
