//! `export`: a container's root filesystem as a tarball, running or stopped.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use basic_image_store::{ImageStore, short_id};
use basic_rootfs::snapshot::{PrepareOptions, Snapshot, SnapshotError, Snapshotter};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::paths::ContainerPaths;

impl Engine {
    /// Writes container `query`'s root filesystem to `out` as a rootfs tarball. A running
    /// container's root is read as it is; a stopped one's is mounted read-only (nosuid,
    /// nodev) in a private mount namespace of a thread of its own, and stays stopped while
    /// it is read.
    pub fn export(&self, query: &str, out: impl Write + Send) -> Result<()> {
        let c = self.container(query)?;
        // While this is held no supervisor can take its lock, so a stopped container stays
        // stopped (its upper directory unchanged) until the end.
        let _stopped = hold_stopped(&c.paths)?;
        let snapshotter = self.snapshotter();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    private_mount_namespace()?;
                    export_in_namespace(snapshotter.as_ref(), &self.store, &c, out)
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(EngineError::Conflict(format!(
                        "the export of {} panicked",
                        short_id(c.id())
                    )))
                })
        })
    }
}

/// A shared lock on the supervisor's lock file: held by an export, it keeps a stopped
/// container from starting. `None` when a supervisor holds it (the container runs).
fn hold_stopped(paths: &ContainerPaths) -> Result<Option<File>> {
    let path = paths.supervisor_lock();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(EngineError::io("opening", &path))?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => Err(EngineError::io("locking", &path)(e)),
    }
}

/// A mount namespace of this thread's own, its mounts private: what is mounted for the
/// export is seen by nothing else and goes with the thread.
fn private_mount_namespace() -> Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(EngineError::sys(
        "creating a private mount namespace for the export",
    ))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(EngineError::sys(
        "making the export's mount namespace private",
    ))
}

fn export_in_namespace(
    snapshotter: &dyn Snapshotter,
    store: &ImageStore,
    c: &Container,
    out: impl Write,
) -> Result<()> {
    let paths = &c.paths;
    let mounted =
        basic_mountinfo::is_mount_point(&paths.rootfs).map_err(|e| EngineError::Corrupt {
            what: "this thread's mount table".into(),
            message: e.to_string(),
        })?;
    let _unmount = if mounted {
        None
    } else {
        let mounts = match snapshotter.mounts(c.id()) {
            Err(SnapshotError::NoMetadata(_)) => {
                let parents =
                    crate::rootfs::layer_stack(snapshotter, store, &c.record.image_id)?.paths;
                snapshotter.adopt(c.id(), &parents, &PrepareOptions::new())?;
                snapshotter.mounts(c.id())?
            }
            other => other?,
        };
        // Only read from: not the container's root, so no setuid bit or device counts.
        let view = Snapshot {
            key: c.id().to_string(),
            dir: paths.dir.clone(),
            mounts: mounts
                .into_iter()
                .map(|mut m| {
                    m.options.retain(|o| o != "volatile");
                    m.options
                        .extend(["ro", "nosuid", "nodev"].map(String::from));
                    m
                })
                .collect(),
            readonly: true,
        };
        snapshotter.mount(&view, &paths.rootfs)?;
        Some(Unmount(snapshotter, &paths.rootfs))
    };
    basic_rootfs::export::write_tree(&paths.rootfs, out)?;
    Ok(())
}

/// Unmounts on drop. The namespace dies with the thread anyway; unmounting first lets go
/// of the snapshot's upper directory at once.
struct Unmount<'a>(&'a dyn Snapshotter, &'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.unmount(self.1) {
            tracing::debug!("unmounting the export's view of {}: {e}", self.1.display());
        }
    }
}
