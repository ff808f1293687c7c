//! A view of a container's files from the host, for `cp`, `export` and their API
//! routes: its root filesystem, with its bind mounts (`-v /host:/ctr` and the `/etc`
//! files the engine provides) mounted where the container sees them, as docker's
//! `cp` sees them. `/proc`, `/sys`, `/dev` and tmpfs mounts are not in it (nor are
//! they in docker's).
//!
//! The view lives in a mount namespace of one thread of its own (private, so
//! nothing mounted there is seen by anything else), on the container's root:
//! a running container's root mount (the one its supervisor made, copied with
//! the namespace), or, for a stopped one, its snapshot mounted for the call
//! (`nosuid,nodev`). Everything is unmounted before the call returns.
//!
//! Races with a start: the view holds a shared lock on the container's
//! `view.lock` for its whole life, and a supervisor takes it exclusively (for
//! a bounded time) before it mounts the root. So a container stopped when the
//! view is made stays unmounted by anyone else until the view is gone (its
//! start waits for the copy, as docker's waits for the container's lock), and
//! an overlay snapshot is never mounted twice at once. A running container
//! may stop meanwhile; its root then stays mounted in the view's namespace
//! only, until the view ends.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

use basic_image_store::short_id;
use basic_rootfs::snapshot::{PrepareOptions, Snapshot, SnapshotError, Snapshotter};
use basic_runtime::in_root::{Leaf, Root, fd_path};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::paths::ContainerPaths;

/// How long a supervisor waits for the views of a container to end before it
/// mounts the container's root.
const VIEW_WAIT: Duration = Duration::from_secs(60);

/// What the view is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reading only: the root and every volume are mounted read-only in the view.
    Read,
    /// Writing into it (`cp` into the container); read-only volumes stay read-only.
    Write,
}

/// A container's files as the view shows them.
pub(crate) struct View {
    /// The container's root, with its bind mounts, held open: resolve every path
    /// inside it.
    pub root: Root,
    /// The paths (inside the container) where bind mounts are, and whether each is
    /// read-only; in mount order.
    pub mounts: Vec<(PathBuf, bool)>,
}

impl View {
    /// Whether writing at `path` (resolved, inside the container) would write into a
    /// read-only place: a read-only volume, or the root of a container created with
    /// `--read-only` when no volume holds the path.
    pub fn read_only_at(&self, path: &Path, readonly_rootfs: bool) -> bool {
        self.mounts
            .iter()
            .rev()
            .find(|(dest, _)| path.starts_with(dest))
            .map_or(readonly_rootfs, |(_, ro)| *ro)
    }
}

impl Engine {
    /// Runs `f` on a view of container `c`'s files (see the module's documentation);
    /// `volumes`: with its bind mounts (without, only the root filesystem).
    pub(crate) fn with_view<T: Send>(
        &self,
        c: &Container,
        access: Access,
        volumes: bool,
        f: impl FnOnce(&View) -> Result<T> + Send,
    ) -> Result<T> {
        let _lock = lock_shared(&c.paths)?;
        let snapshotter = self.snapshotter();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    private_mount_namespace()?;
                    let mut mounted = Mounted::default();
                    let result = self
                        .view_in_namespace(snapshotter.as_ref(), c, access, volumes, &mut mounted)
                        .and_then(|view| f(&view));
                    mounted.undo(snapshotter.as_ref());
                    result
                })
                .join()
                .unwrap_or_else(|_| {
                    Err(EngineError::Conflict(format!(
                        "reading the files of {} panicked",
                        short_id(c.id())
                    )))
                })
        })
    }

    fn view_in_namespace(
        &self,
        snapshotter: &dyn Snapshotter,
        c: &Container,
        access: Access,
        volumes: bool,
        mounted: &mut Mounted,
    ) -> Result<View> {
        let paths = &c.paths;
        let running = snapshotter.is_mounted(&paths.rootfs)?;
        if !running {
            let mounts = match snapshotter.mounts(c.id()) {
                Err(SnapshotError::NoMetadata(_)) => {
                    let parents =
                        crate::rootfs::layer_stack(snapshotter, &self.store, &c.record.image_id)?
                            .paths;
                    snapshotter.adopt(c.id(), &parents, &PrepareOptions::new())?;
                    snapshotter.mounts(c.id())?
                }
                other => other?,
            };
            // Looked at from the host: no setuid bit or device node counts here. Written
            // through, so mount points for the volumes can be made; made read-only after.
            let view = Snapshot {
                key: c.id().to_string(),
                dir: paths.dir.clone(),
                mounts: mounts
                    .into_iter()
                    .map(|mut m| {
                        m.options.retain(|o| o != "volatile");
                        m.options.extend(["nosuid", "nodev"].map(String::from));
                        m
                    })
                    .collect(),
                readonly: false,
            };
            snapshotter.mount(&view, &paths.rootfs)?;
        }
        // Unmounted at the end either way: a copy of the supervisor's mount must not
        // keep the snapshot mounted once the view is done.
        mounted.root = Some(paths.rootfs.clone());
        let mut binds = Vec::new();
        if volumes {
            let root = Root::open(&paths.rootfs)
                .map_err(EngineError::io("opening the root of", &paths.rootfs))?;
            for bind in bind_mounts(paths)? {
                let ro = bind.readonly || access == Access::Read;
                if let Some(at) = mount_bind(&root, &bind, ro, c)? {
                    mounted.binds += 1;
                    binds.push((at, bind.readonly));
                }
            }
        }
        if access == Access::Read {
            remount(&paths.rootfs, MsFlags::MS_RDONLY)?;
        }
        let root = Root::open(&paths.rootfs)
            .map_err(EngineError::io("opening the root of", &paths.rootfs))?;
        Ok(View {
            root,
            mounts: binds,
        })
    }
}

/// What a view mounted, to be unmounted in reverse.
#[derive(Default)]
struct Mounted {
    root: Option<PathBuf>,
    /// Volumes mounted on the root: they go with it (a lazy unmount of the root
    /// takes every mount below it).
    binds: usize,
}

impl Mounted {
    fn undo(&mut self, snapshotter: &dyn Snapshotter) {
        let Some(root) = self.root.take() else {
            return;
        };
        let plain = self.binds == 0 && snapshotter.unmount(&root).is_ok();
        if !plain && let Err(e) = nix::mount::umount2(&root, MntFlags::MNT_DETACH) {
            tracing::debug!("unmounting the view of {}: {e}", root.display());
        }
    }
}

/// A bind mount of the container's spec.
struct Bind {
    source: PathBuf,
    destination: PathBuf,
    readonly: bool,
}

/// The spec's bind mounts, in order.
fn bind_mounts(paths: &ContainerPaths) -> Result<Vec<Bind>> {
    let spec_path = paths.spec();
    let spec = basic_runtime::Spec::load(&spec_path).map_err(|e| EngineError::Corrupt {
        what: spec_path.display().to_string(),
        message: e.to_string(),
    })?;
    let mut binds = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let options = m.options().clone().unwrap_or_default();
        let is_bind = m.typ().as_deref() == Some("bind")
            || options.iter().any(|o| o == "bind" || o == "rbind");
        let Some(source) = m.source().clone().filter(|_| is_bind) else {
            continue;
        };
        binds.push(Bind {
            source,
            destination: m.destination().clone(),
            readonly: options.iter().any(|o| o == "ro"),
        });
    }
    Ok(binds)
}

/// Binds `bind.source` (a host path from the user or the engine: trusted) at its
/// destination resolved inside `root` (made when missing, as a start makes it), through
/// the descriptor of what was resolved, so a symlink swapped in meanwhile changes
/// nothing. Returns where, inside the container; `None` when the source is gone (the
/// `/etc` files of a container never started).
fn mount_bind(root: &Root, bind: &Bind, readonly: bool, c: &Container) -> Result<Option<PathBuf>> {
    let Ok(meta) = std::fs::metadata(&bind.source) else {
        tracing::debug!(
            "bind source {} of {} is missing: not in the view",
            bind.source.display(),
            short_id(c.id())
        );
        return Ok(None);
    };
    let leaf = if meta.is_dir() { Leaf::Dir } else { Leaf::File };
    let target = root.create(&bind.destination, leaf).map_err(|e| {
        EngineError::io(
            "making the mount point inside the container",
            &bind.destination,
        )(e)
    })?;
    let at = fd_path(std::os::fd::AsFd::as_fd(&target.fd));
    nix::mount::mount(
        Some(&bind.source),
        &at,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(EngineError::sys(format!(
        "mounting volume {} at {} for the copy",
        bind.source.display(),
        bind.destination.display()
    )))?;
    // The new mount's root, found as the mount point was (a path joined on the host
    // would follow what the container swaps in): remounting it through its descriptor
    // changes that mount and no other.
    let mounted = root.resolve(&target.path).map_err(|e| {
        EngineError::io(
            "opening the volume mounted inside the container",
            &bind.destination,
        )(e)
    })?;
    let extra = if readonly {
        MsFlags::MS_RDONLY
    } else {
        MsFlags::empty()
    };
    remount(&fd_path(std::os::fd::AsFd::as_fd(&mounted.fd)), extra)?;
    Ok(Some(target.path))
}

/// Remounts the mount at `at` (the view's own) `nosuid,nodev` and `extra`.
fn remount(at: &Path, extra: MsFlags) -> Result<()> {
    nix::mount::mount(
        None::<&str>,
        at,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | extra,
        None::<&str>,
    )
    .map_err(EngineError::sys(format!(
        "remounting {} for the copy",
        at.display()
    )))
}

/// A mount namespace of this thread's own, its mounts private: what is mounted for the
/// view is seen by nothing else and goes with the thread.
pub(crate) fn private_mount_namespace() -> Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(EngineError::sys(
        "creating a private mount namespace for the container's files",
    ))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(EngineError::sys(
        "making the view's mount namespace private",
    ))
}

fn open_lock(paths: &ContainerPaths) -> Result<File> {
    let path = paths.view_lock();
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(EngineError::io("opening", &path))
}

/// A view's hold on the container: shared, so views do not wait for each other.
pub(crate) fn lock_shared(paths: &ContainerPaths) -> Result<File> {
    let file = open_lock(paths)?;
    file.lock_shared()
        .map_err(EngineError::io("locking", paths.view_lock()))?;
    Ok(file)
}

/// Waits (for a bounded time) until no view of the container is open, and keeps any
/// from opening while the returned lock is held: taken by a supervisor around mounting
/// the root, and by a removal.
pub(crate) fn lock_exclusive(paths: &ContainerPaths) -> Result<File> {
    let file = open_lock(paths)?;
    let mut locked = Ok(());
    let done = crate::status::wait_for(VIEW_WAIT, || match file.try_lock() {
        Ok(()) => true,
        Err(std::fs::TryLockError::WouldBlock) => false,
        Err(std::fs::TryLockError::Error(e)) => {
            locked = Err(e);
            true
        }
    });
    locked.map_err(EngineError::io("locking", paths.view_lock()))?;
    if !done {
        return Err(EngineError::Conflict(format!(
            "the files of container {} are in use by a copy or an export that did not end within {}s: try again when it has",
            short_id(&paths.id()),
            VIEW_WAIT.as_secs()
        )));
    }
    Ok(file)
}
