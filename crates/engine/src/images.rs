//! `image mount` / `image unmount`, as podman has them: a read-only view of what a pull
//! built, at a path the user can look around in.

use std::path::PathBuf;

use basic_image_store::HolderKind;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::privacy::{PRIVATE_DIR, private_dir};

/// Where an image's view is mounted, and the snapshot key behind it.
struct ImageView {
    key: String,
    target: PathBuf,
    id: String,
}

impl Engine {
    fn image_view(&self, image: &str) -> Result<ImageView> {
        let record = self.store.resolve(image)?;
        let hex = record.id.trim_start_matches("sha256:").to_string();
        Ok(ImageView {
            key: format!("image-{hex}"),
            target: self.paths.image_mounts().join(&hex),
            id: record.id,
        })
    }

    /// Mounts the image's layers read-only (`nosuid`, `nodev`) under the store's
    /// `image-mounts/` and returns where (once: a second call returns the same path). The
    /// image is held while mounted, so no removal or prune takes its layers away.
    pub fn mount_image(&self, image: &str) -> Result<PathBuf> {
        let view = self.image_view(image)?;
        let snapshotter = self.snapshotter();
        if snapshotter.is_mounted(&view.target)? {
            return Ok(view.target);
        }
        self.store.hold(HolderKind::Mount, &view.id, &view.id)?;
        // Owner-only: the view is for the engine's user to look at.
        let mounted = private_dir(&self.paths.image_mounts(), PRIVATE_DIR)
            .and_then(|()| private_dir(&view.target, PRIVATE_DIR))
            .and_then(|()| {
                let _ = snapshotter.remove(&view.key);
                let layers =
                    crate::rootfs::layer_stack(snapshotter.as_ref(), &self.store, &view.id)?.paths;
                let snapshot = snapshotter.view(&view.key, &layers)?;
                Ok(snapshotter.mount(&snapshot, &view.target)?)
            });
        if let Err(e) = mounted {
            if let Err(release) = self.store.release(HolderKind::Mount, &view.id) {
                tracing::warn!("releasing image {}: {release}", view.id);
            }
            return Err(e);
        }
        Ok(view.target)
    }

    /// Unmounts what [`Engine::mount_image`] mounted, removes its snapshot and lets go of
    /// the image; returns the image's id.
    pub fn unmount_image(&self, image: &str) -> Result<String> {
        let view = self.image_view(image)?;
        let snapshotter = self.snapshotter();
        if !snapshotter.is_mounted(&view.target)? {
            return Err(EngineError::Conflict(format!(
                "image {image} is not mounted"
            )));
        }
        snapshotter.unmount(&view.target)?;
        snapshotter.remove(&view.key)?;
        let _ = std::fs::remove_dir(&view.target);
        self.store.release(HolderKind::Mount, &view.id)?;
        Ok(view.id)
    }
}
