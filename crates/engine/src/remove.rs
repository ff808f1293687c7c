//! Taking a stopped container apart: its root mount, snapshot, leftover runtime state
//! and cgroup, network attachment, directory, its record (which lets go of the image),
//! and when asked its anonymous volumes.

use std::path::Path;

use basic_image_store::short_id;

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::{network, rootfs};

impl Engine {
    /// Removes a container that is not running, and with `volumes` its anonymous volumes
    /// no other container uses. The record goes before the volumes (it is what makes them
    /// in use) and after everything else: while any file is left the image stays held, so
    /// its layers stay under the snapshot.
    pub(crate) fn remove_stopped(&self, c: &Container, volumes: bool) -> Result<()> {
        // Not from under a copy or an export (of a container whose create failed half-way
        // there may be no directory to lock in).
        let _no_views = match c.paths.dir.exists() {
            true => Some(crate::view::lock_exclusive(&c.paths)?),
            false => None,
        };
        let snapshotter = self.snapshotter();
        rootfs::unmount(snapshotter.as_ref(), &c.paths);
        if let Err(e) = snapshotter.remove(c.id()) {
            // A container whose create failed half-way may have no snapshot.
            if c.paths.dir.exists() {
                tracing::debug!("removing the snapshot of {}: {e}", short_id(c.id()));
            }
        }
        remove_runtime_leftovers(c);
        // Normally detached at the final exit; not when the supervisor was killed.
        network::detach(&self.paths, c.id(), &c.config.network_mode());
        match std::fs::remove_dir_all(&c.paths.dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(EngineError::io("removing", &c.paths.dir)(e)),
        }
        self.store.remove_container(c.id())?;
        self.event(c, "destroy", &[]);
        if volumes {
            self.remove_anonymous_volumes(c);
        }
        Ok(())
    }
}

/// What a runtime killed with its supervisor leaves: its state directory and its cgroup
/// (removed by the runtime itself after a normal exit); and the attach directory, which
/// lasts as long as the container.
fn remove_runtime_leftovers(c: &Container) {
    let _ = std::fs::remove_dir_all(&c.paths.state);
    let _ = std::fs::remove_dir_all(c.paths.attach_dir());
    let _ = std::fs::remove_file(c.paths.stop_marker());
    let cgroup = Path::new("basic-docker").join(c.id());
    let manager = basic_runtime::cgroups::manager_for(
        Path::new(basic_runtime::cgroups::DEFAULT_ROOT),
        &cgroup,
    );
    let exists = ["pids", "memory", "cpu"].iter().any(|controller| {
        manager
            .controller_path(controller)
            .is_some_and(|p| p.exists())
    });
    if exists && let Err(e) = manager.remove() {
        tracing::warn!("removing the cgroup of {}: {e}", short_id(c.id()));
    }
}
