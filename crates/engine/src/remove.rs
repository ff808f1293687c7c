//! Taking a stopped container apart: its root mount, snapshot, leftover runtime state
//! and cgroup, network attachment, directory, its record (which lets go of the image),
//! and when asked its anonymous volumes.

use std::path::{Path, PathBuf};

use basic_image_store::short_id;

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::paths::ContainerPaths;
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
        // Anonymous volumes go before the record: once it is gone (what a wait for the
        // container's removal looks for), all of the container is, as with docker.
        let _volumes = match volumes {
            true => self.remove_anonymous_volumes(c),
            false => None,
        };
        self.store.remove_container(c.id())?;
        self.event(c, "destroy", &[]);
        Ok(())
    }
}

/// What a runtime killed with its supervisor leaves: its state directory and its cgroup
/// (removed by the runtime itself after a normal exit), the stop marker; and the attach
/// directory, which lasts as long as the container.
fn remove_runtime_leftovers(c: &Container) {
    remove_runtime_state(&c.paths);
    let _ = std::fs::remove_dir_all(c.paths.attach_dir());
}

/// Removes container `paths`'s run-time state: the runtime's record (killing an init that
/// still runs, and removing the cgroup it names), the container's cgroup at its default
/// path, the stop marker (not the attach directory, where clients may wait for a start).
pub(crate) fn remove_runtime_state(paths: &ContainerPaths) {
    let id = paths.id();
    if let Some(state) = paths.state.parent() {
        let _ = basic_runtime::StateRoot::new(state).delete(&id, true);
    }
    let _ = std::fs::remove_dir_all(&paths.state);
    let _ = std::fs::remove_file(paths.stop_marker());
    let manager = cgroup(&id);
    if cgroup_exists(manager.as_ref())
        && let Err(e) = manager.remove()
    {
        tracing::warn!("removing the cgroup of {}: {e}", short_id(&id));
    }
}

/// Container `id`'s cgroup, where the runtime puts it when the spec names none.
pub(crate) fn cgroup(id: &str) -> Box<dyn basic_runtime::CgroupManager> {
    basic_runtime::cgroups::manager_for(
        Path::new(basic_runtime::cgroups::DEFAULT_ROOT),
        &cgroup_path(id),
    )
}

/// Container `id`'s cgroup path below each hierarchy's root.
pub(crate) fn cgroup_path(id: &str) -> PathBuf {
    Path::new("basic-docker").join(id)
}

/// Whether the cgroup has a directory in any of the hierarchies containers always use.
pub(crate) fn cgroup_exists(manager: &dyn basic_runtime::CgroupManager) -> bool {
    ["pids", "memory", "cpu"].iter().any(|controller| {
        manager
            .controller_path(controller)
            .is_some_and(|p| p.exists())
    })
}
