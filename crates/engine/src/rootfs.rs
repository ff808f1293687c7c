//! A container's root filesystem: its snapshot (keyed by the container's id; the
//! snapshotter records how it was prepared, so every start mounts the same) and whether
//! it is mounted now.

use std::path::PathBuf;

use basic_image_store::{ImageStore, LayerStack};
use basic_rootfs::MAX_LOWER_DIRS;
use basic_rootfs::snapshot::{PrepareOptions, SnapshotError, Snapshotter, SnapshotterKind};

use crate::engine::{Container, Engine};
use crate::error::Result;
use crate::paths::ContainerPaths;

/// The layers of image `image_id` as `snapshotter` stacks them: for overlay, an image
/// of more layers than one mount stacks has its bottom ones merged into one directory
/// (once: the store keeps it by chain ID); a copy snapshot has no such limit.
pub(crate) fn layer_stack(
    snapshotter: &dyn Snapshotter,
    store: &ImageStore,
    image_id: &str,
) -> Result<LayerStack> {
    let max = match snapshotter.kind() {
        // fuse-overlayfs stacks more, but its snapshots are overlay's (the same merged
        // bottom layers serve both).
        SnapshotterKind::Overlay | SnapshotterKind::FuseOverlay => MAX_LOWER_DIRS,
        SnapshotterKind::Copy => usize::MAX,
    };
    Ok(store.stackable_layer_paths(image_id, max)?)
}

/// Prepares container `id`'s snapshot on `layers` (not mounted). `volatile` lets its
/// writes skip syncing: for a container removed at its exit whose root stays mounted
/// from create to start (overlayfs mounts a volatile snapshot only once).
pub(crate) fn prepare(
    snapshotter: &dyn Snapshotter,
    id: &str,
    layers: &[PathBuf],
    volatile: bool,
) -> Result<()> {
    snapshotter.prepare_with(id, layers, &PrepareOptions::new().volatile(volatile))?;
    Ok(())
}

/// Mounts the container's root unless it is mounted already. A snapshot an older version
/// prepared (without a record) is adopted first.
pub(crate) fn ensure_mounted(
    snapshotter: &dyn Snapshotter,
    store: &ImageStore,
    c: &Container,
) -> Result<()> {
    if snapshotter.is_mounted(&c.paths.rootfs)? {
        return Ok(());
    }
    match snapshotter.mount_key(c.id(), &c.paths.rootfs) {
        Err(SnapshotError::NoMetadata(_)) => {
            let parents = layer_stack(snapshotter, store, &c.record.image_id)?.paths;
            snapshotter.adopt(c.id(), &parents, &PrepareOptions::new())?;
            Ok(snapshotter.mount_key(c.id(), &c.paths.rootfs)?)
        }
        other => Ok(other?),
    }
}

/// Unmounts the root when it is mounted (a stopped container's is not); a failure is
/// logged, as the rest of a teardown must still happen.
pub(crate) fn unmount(snapshotter: &dyn Snapshotter, paths: &ContainerPaths) {
    if !snapshotter.is_mounted(&paths.rootfs).unwrap_or(true) {
        return;
    }
    if let Err(e) = snapshotter.unmount(&paths.rootfs) {
        tracing::warn!("unmounting {}: {e}", paths.rootfs.display());
    }
}

impl Engine {
    /// Bytes in the container's writable layer (docker's `SizeRw`), 0 when unknown.
    pub fn writable_size(&self, c: &Container) -> u64 {
        self.snapshotter()
            .usage(c.id())
            .map_or(0, |usage| usage.bytes)
    }
}
