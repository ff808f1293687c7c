//! Snapshotters: a container's root filesystem from a chain of layer
//! directories (each in the overlay form [`crate::ApplyMode::Overlay`] writes).
//!
//! Layer chains are given bottom-most first, the order of an image
//! manifest's `layers`. A snapshot has a key (a container id, say) naming
//! its private directory below the snapshotter's root.
//!
//! As in containerd, the snapshotter owns what it knows about a snapshot: it
//! records each one (its kind, parents and options) in the snapshot's own
//! directory, so a caller keeps only the key — [`Snapshotter::mounts`],
//! [`Snapshotter::mount_key`], [`Snapshotter::usage`] and
//! [`Snapshotter::commit`] need nothing else, and nobody outside this module
//! knows where a snapshot's files are.

mod changes;
mod copy;
mod diff;
mod fuse;
mod meta;
mod overlay;

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use changes::{Change, ChangeKind};
pub use copy::CopySnapshotter;
pub use fuse::{FUSE_OVERLAY_FSTYPE, FuseOverlaySnapshotter};
pub use meta::{SnapshotInfo, SnapshotKind, Usage};
pub use overlay::{MAX_LOWER_DIRS, OverlaySnapshotter};

/// Errors of the snapshotters. Messages name the path or key concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A snapshot key that cannot name a directory.
    #[error("invalid snapshot key `{0}` (use letters, digits, `_`, `-` and `.`, not first)")]
    InvalidKey(String),
    /// A snapshot with this key already exists.
    #[error("snapshot `{0}` already exists")]
    Exists(String),
    /// No snapshot with this key.
    #[error("snapshot `{0}` does not exist")]
    NotFound(String),
    /// A filesystem operation failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// mount(2) failed.
    #[error("cannot mount {fstype} on {} (options `{options}`)", target.display())]
    Mount {
        /// Filesystem type.
        fstype: String,
        /// Mount point.
        target: PathBuf,
        /// The option string given.
        options: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A snapshotter directory could not be made private to its owner (what
    /// [`Snapshotter::init`] does to directories an older version made wider).
    #[error("setting the mode of {} to {mode:04o}", path.display())]
    Mode {
        /// The directory.
        path: PathBuf,
        /// The mode it was to get.
        mode: u32,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// umount(2) failed.
    #[error("cannot unmount {}", target.display())]
    Unmount {
        /// Mount point.
        target: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The lower directories do not fit in a mount option string even with
    /// short links (the snapshotter's root path is too long).
    #[error(
        "the overlay mount of {0} lower directories does not fit in one page even with \
         short links: use a snapshotter root with a shorter path"
    )]
    TooManyLayers(usize),
    /// More lower directories than overlayfs stacks in one mount: merge the
    /// bottom ones into one first ([`merge_layers`]).
    #[error(
        "{0} layers are more than overlayfs stacks in one mount ({MAX_LOWER_DIRS} lower \
         directories): merge the bottom ones into one directory first"
    )]
    TooManyLowerDirs(usize),
    /// Unknown snapshotter name.
    #[error("unknown snapshotter `{0}` (expected `overlay`, `fuse-overlayfs` or `copy`)")]
    UnknownKind(String),
    /// The snapshot's directory exists but holds no record: an older version
    /// prepared it. Remove it and prepare it again.
    #[error(
        "snapshot `{0}` has no record (made by an older version): remove it and prepare it again"
    )]
    NoMetadata(String),
    /// A snapshot's record cannot be read.
    #[error("snapshot record {} is unreadable: {reason}", path.display())]
    Metadata {
        /// The record file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The operation needs another kind of snapshot (committing a view,
    /// mounting a committed snapshot, ...).
    #[error("snapshot `{key}` is {kind:?}; this needs {wanted}")]
    WrongKind {
        /// The snapshot.
        key: String,
        /// What it is.
        kind: SnapshotKind,
        /// What the operation needs.
        wanted: &'static str,
    },
    /// The snapshot is mounted somewhere; unmount it first.
    #[error("snapshot `{0}` is mounted: unmount it first")]
    Busy(String),
    /// The `fuse-overlayfs` program did not mount a snapshot.
    #[error("fuse-overlayfs cannot mount {} (options `{options}`): {reason}", target.display())]
    FuseOverlay {
        /// Mount point.
        target: PathBuf,
        /// The option string given.
        options: String,
        /// What went wrong: the program's own words, or that it is missing.
        reason: String,
    },
    /// The mount table could not be read.
    #[error("reading the mount table")]
    MountTable(#[source] basic_mountinfo::Error),
}

pub(crate) fn io_err<'p>(
    op: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> SnapshotError + 'p {
    move |source| SnapshotError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// One mount that makes up a snapshot's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Filesystem type (`overlay`), `bind` for a bind mount, or
    /// [`FUSE_OVERLAY_FSTYPE`] for one the `fuse-overlayfs` program makes.
    pub fstype: String,
    /// The mount source (`overlay`, or the directory bound).
    pub source: PathBuf,
    /// Options as mount(8) takes them (`lowerdir=...`, `ro`, ...).
    pub options: Vec<String>,
    /// Set when the paths in `options` are relative to this directory (the
    /// absolute form did not fit in the one page mount(2) accepts): the
    /// mount must be made from a process whose working directory is this.
    pub relative_to: Option<PathBuf>,
}

/// How to prepare a writable snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrepareOptions {
    /// Let the snapshot's writes skip syncing: overlayfs' `volatile` (Linux
    /// 5.10; dropped where the kernel does not know it; the copy snapshotter
    /// has nothing to skip). For throwaway roots (`run --rm`): their writes are
    /// deleted at exit, so the sync unmounting would do (tens of milliseconds
    /// on ext4) is wasted. After a crash the snapshot's contents are undefined,
    /// and overlayfs mounts a volatile upper directory only once: remove the
    /// snapshot rather than mounting it again.
    pub volatile: bool,
}

impl PrepareOptions {
    /// The defaults: a durable snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`volatile`](Self::volatile).
    pub fn volatile(mut self, volatile: bool) -> Self {
        self.volatile = volatile;
        self
    }
}

/// A prepared snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Its key.
    pub key: String,
    /// Its private directory (upper and work directories, or the copy).
    pub dir: PathBuf,
    /// What to mount, in order, on the root mount point.
    pub mounts: Vec<Mount>,
    /// Whether the root is read-only.
    pub readonly: bool,
}

/// Builds container roots from layer directories.
///
/// Snapshots are private to the snapshotter's owner: `snapshots/` and each
/// snapshot's directory are `0700`, so no other user reaches a container's
/// files through them. The root of a writable snapshot (the container's `/`)
/// takes the owner and mode of the top layer's root, as the image says. A
/// view is mounted `nosuid,nodev`: it is meant to be looked at from the host,
/// where a setuid program or a device node of an image must not count.
///
/// Every snapshot is recorded where it lives; after [`prepare_with`] or
/// [`view`] a caller needs only the key ([`mounts`], [`mount_key`],
/// [`usage`], [`commit`], [`remove`]).
///
/// [`prepare_with`]: Snapshotter::prepare_with
/// [`view`]: Snapshotter::view
/// [`mounts`]: Snapshotter::mounts
/// [`mount_key`]: Snapshotter::mount_key
/// [`usage`]: Snapshotter::usage
/// [`commit`]: Snapshotter::commit
/// [`remove`]: Snapshotter::remove
pub trait Snapshotter: Send + Sync + fmt::Debug {
    /// Creates the snapshotter's directories, owner-only, and tightens those
    /// an older version made wider (nothing inside snapshots changes). Cheap
    /// and idempotent: engines call it whenever they open their store.
    fn init(&self) -> Result<(), SnapshotError> {
        Ok(())
    }
    /// A writable snapshot `key` on top of `parents`: layer directories in
    /// overlay form (an image store's layers, or what [`commit`](Self::commit)
    /// returned), bottom-most first.
    fn prepare_with(
        &self,
        key: &str,
        parents: &[PathBuf],
        options: &PrepareOptions,
    ) -> Result<Snapshot, SnapshotError>;
    /// [`prepare_with`](Self::prepare_with) with the default options.
    fn prepare(&self, key: &str, layers: &[PathBuf]) -> Result<Snapshot, SnapshotError> {
        self.prepare_with(key, layers, &PrepareOptions::default())
    }
    /// Records the writable snapshot `key` that an older version prepared
    /// (it has a directory and no record: [`SnapshotError::NoMetadata`]) on
    /// `parents` with `options`, as it was prepared; from then on it is like
    /// any other. Fails with [`SnapshotError::Exists`] when it has a record.
    fn adopt(
        &self,
        key: &str,
        parents: &[PathBuf],
        options: &PrepareOptions,
    ) -> Result<Snapshot, SnapshotError>;
    /// A read-only snapshot `key` of `layers` (bottom-most first), e.g. to
    /// look at an image's root; mounted `nosuid,nodev`.
    fn view(&self, key: &str, layers: &[PathBuf]) -> Result<Snapshot, SnapshotError>;
    /// Keeps the changes of the active snapshot `key` as the read-only
    /// snapshot `name`, and removes `key`. Returns the directory of the
    /// committed layer, in overlay form: a parent for later snapshots, or a
    /// tree to export as an image layer. `key` must not be mounted.
    fn commit(&self, key: &str, name: &str) -> Result<PathBuf, SnapshotError>;
    /// What is recorded about `key`.
    fn stat(&self, key: &str) -> Result<SnapshotInfo, SnapshotError>;
    /// Every recorded snapshot, by key (snapshots an older version made,
    /// which have no record, are not listed; [`remove`](Self::remove) takes them).
    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, SnapshotError>;
    /// The mounts that make the root of the active snapshot or view `key`,
    /// derived from its record (so they are right after a reboot too).
    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError>;
    /// Mounts `key` on the existing directory `target`. A `volatile` snapshot
    /// is mounted without `volatile` where the kernel does not know it.
    fn mount_key(&self, key: &str, target: &Path) -> Result<(), SnapshotError> {
        mount_all_volatile_or_not(&self.mounts(key)?, target)
    }
    /// Disk use of the snapshot's own files: an active snapshot's writes, a
    /// committed snapshot's layer (a view has none of its own).
    fn usage(&self, key: &str) -> Result<Usage, SnapshotError>;
    /// Mount `snapshot` on the existing directory `target`.
    fn mount(&self, snapshot: &Snapshot, target: &Path) -> Result<(), SnapshotError> {
        mount_all(&snapshot.mounts, target)
    }
    /// Unmount what [`Snapshotter::mount`] or [`Snapshotter::mount_key`]
    /// mounted on `target`.
    fn unmount(&self, target: &Path) -> Result<(), SnapshotError> {
        unmount(target)
    }
    /// Whether something is mounted on `target` (in the calling thread's
    /// mount namespace).
    fn is_mounted(&self, target: &Path) -> Result<bool, SnapshotError> {
        is_mount_point(target)
    }
    /// Delete snapshot `key` and its private directory (unmount it first).
    fn remove(&self, key: &str) -> Result<(), SnapshotError>;
    /// Which kind this is.
    fn kind(&self) -> SnapshotterKind;
    /// What the active snapshot `key` changed compared with its parents
    /// (`docker diff`), read from the directories, mounted or not, with
    /// docker's rules (see [`Change`]). `mount_points`: where a runtime
    /// mounts things on the snapshot's root (absolute paths inside it); the
    /// empty files and directories it added there are not reported.
    fn changes(&self, key: &str, mount_points: &[PathBuf]) -> Result<Vec<Change>, SnapshotError>;
    /// A directory holding the changes of the active snapshot `key` in
    /// overlay form (whiteouts, opaque directories), to be written as an image
    /// layer ([`crate::export::write_layer`]), mounted or not: the overlay
    /// snapshotter's upper directory itself, or, where the changes have to be
    /// found by comparing trees, a new directory made at `scratch` (which must
    /// not exist; the caller removes it when done).
    fn changes_dir(&self, key: &str, scratch: &Path) -> Result<PathBuf, SnapshotError>;
}

/// The snapshotters of this crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SnapshotterKind {
    /// [`OverlaySnapshotter`].
    Overlay,
    /// [`CopySnapshotter`].
    Copy,
    /// [`FuseOverlaySnapshotter`].
    FuseOverlay,
}

impl fmt::Display for SnapshotterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SnapshotterKind::Overlay => "overlay",
            SnapshotterKind::Copy => "copy",
            SnapshotterKind::FuseOverlay => "fuse-overlayfs",
        })
    }
}

impl FromStr for SnapshotterKind {
    type Err = SnapshotError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "overlay" | "overlayfs" | "overlay2" => Ok(SnapshotterKind::Overlay),
            "copy" | "vfs" | "native" => Ok(SnapshotterKind::Copy),
            "fuse-overlayfs" => Ok(SnapshotterKind::FuseOverlay),
            _ => Err(SnapshotError::UnknownKind(s.to_owned())),
        }
    }
}

impl SnapshotterKind {
    /// A snapshotter of this kind keeping its snapshots below `root`.
    pub fn create(self, root: impl Into<PathBuf>) -> Box<dyn Snapshotter> {
        match self {
            SnapshotterKind::Overlay => Box::new(OverlaySnapshotter::new(root)),
            SnapshotterKind::Copy => Box::new(CopySnapshotter::new(root)),
            SnapshotterKind::FuseOverlay => Box::new(FuseOverlaySnapshotter::new(root)),
        }
    }
}

/// The best snapshotter for `root`: overlay when an overlay mount with an
/// upper directory on `root`'s filesystem actually works here (tried in a
/// temporary directory below `root`); else, in a user namespace (rootless mode,
/// where the kernel's overlayfs needs Linux 5.11), fuse-overlayfs when the program
/// is installed and its mount works (tried the same way), as podman falls back to
/// it; copy otherwise. To override, build the one you want
/// ([`SnapshotterKind::create`]).
pub fn detect(root: &Path) -> SnapshotterKind {
    let overlay = match overlay::probe(root) {
        Ok(()) => return SnapshotterKind::Overlay,
        Err(e) => e,
    };
    if crate::overlay_xattr::in_user_namespace() {
        match fuse::probe(root) {
            Ok(()) => {
                tracing::info!(root = %root.display(), error = %overlay, "overlayfs unusable; using fuse-overlayfs");
                return SnapshotterKind::FuseOverlay;
            }
            Err(e) => {
                tracing::info!(root = %root.display(), error = %e, "fuse-overlayfs unusable");
            }
        }
    }
    tracing::info!(root = %root.display(), error = %overlay, "overlayfs unusable; using the copy snapshotter");
    SnapshotterKind::Copy
}

/// The mode of `snapshots/`, of each snapshot's directory and of `l/`.
pub(crate) const PRIVATE_DIR: u32 = 0o700;

/// Mount options for what is looked at from the host rather than run as a
/// container's root: setuid bits and device nodes of an image mean nothing there.
pub(crate) const HOST_VIEW_OPTIONS: [&str; 2] = ["nosuid", "nodev"];

/// Merges overlay-form `layers` (bottom-most first) into the new directory
/// `target`, which must not exist: each applied onto the ones below as
/// overlayfs would show them (whiteouts and opaque directories remove what they
/// hide, and are not kept). The result stands for all of them as the bottom
/// lower directory of a snapshot, for stacks of more than [`MAX_LOWER_DIRS`].
/// Symlinks in the layers are never followed: a layer's directory replaces a
/// lower layer's symlink of the same name, as overlayfs shows it. The result is
/// synced to disk before this returns, so a caller that renames it into place
/// never finds half of it after a crash.
pub fn merge_layers(layers: &[PathBuf], target: &Path) -> Result<(), SnapshotError> {
    copy::flatten(layers, target)?;
    let dir = std::fs::File::open(target).map_err(io_err("open", target))?;
    crate::sys::syncfs(std::os::fd::AsFd::as_fd(&dir)).map_err(io_err("sync", target))
}

/// Makes sure the directory `path` exists with at most `mode`: created with it
/// (parents with the usual modes), or tightened when an older version made it wider.
pub(crate) fn private_dir(path: &Path, mode: u32) -> Result<(), SnapshotError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let create = || std::fs::DirBuilder::new().mode(mode).create(path);
    let created = match create() {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io_err("create", parent))?;
            }
            match create() {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(io_err("create", path)(e)),
            }
        }
        Err(e) => return Err(io_err("create", path)(e)),
    };
    // mkdir's mode is only narrowed by the umask: a new directory is private already.
    if created { Ok(()) } else { tighten(path, mode) }
}

/// Removes from the permission bits of `path` (when it exists) those `mode`
/// does not grant; writes nothing when there is nothing to remove.
pub(crate) fn tighten(path: &Path, mode: u32) -> Result<(), SnapshotError> {
    use std::os::unix::fs::PermissionsExt as _;
    let current = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("read the mode of", path)(e)),
    };
    let wanted = current & !(0o777 & !mode);
    if wanted == current {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)).map_err(|source| {
        SnapshotError::Mode {
            path: path.to_owned(),
            mode: wanted,
            source,
        }
    })
}

/// Creates a snapshot's own directory `parent/key`, owner-only, failing with
/// [`SnapshotError::Exists`] when it is there already.
pub(crate) fn new_snapshot_dir(parent: &Path, key: &str) -> Result<PathBuf, SnapshotError> {
    use std::os::unix::fs::DirBuilderExt as _;
    check_key(key)?;
    private_dir(parent, PRIVATE_DIR)?;
    let dir = parent.join(key);
    match std::fs::DirBuilder::new().mode(PRIVATE_DIR).create(&dir) {
        Ok(()) => Ok(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(SnapshotError::Exists(key.to_owned()))
        }
        Err(e) => Err(io_err("create", &dir)(e)),
    }
}

/// Gives `dir`, the root of a snapshot, the owner and mode of the top layer's
/// root (`0755` and this process's owner when there are no layers): the
/// container's `/` is as the image made it, whatever the umask.
pub(crate) fn root_like_top_layer(dir: &Path, layers: &[PathBuf]) -> Result<(), SnapshotError> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let (mode, owner) = match layers.last() {
        Some(top) => {
            let meta = std::fs::metadata(top).map_err(io_err("read the root of", top))?;
            (meta.mode() & 0o7777, Some((meta.uid(), meta.gid())))
        }
        None => (0o755, None),
    };
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io_err("chown", dir))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        SnapshotError::Mode {
            path: dir.to_owned(),
            mode,
            source,
        }
    })
}

/// Keys name directories: keep them to one plain component.
pub(crate) fn check_key(key: &str) -> Result<(), SnapshotError> {
    let ok = !key.is_empty()
        && key.len() <= 128
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(SnapshotError::InvalidKey(key.to_owned()))
    }
}

pub(crate) fn cpath(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

/// Mount each of `mounts` on `target`.
pub(crate) fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), SnapshotError> {
    for m in mounts {
        match m.fstype.as_str() {
            FUSE_OVERLAY_FSTYPE => fuse::mount(m, target)?,
            _ => overlay::do_mount(m, target)?,
        }
    }
    Ok(())
}

/// [`mount_all`]; where the kernel refuses an overlay's `volatile` (before
/// 5.10 it fails with EINVAL), again without it.
fn mount_all_volatile_or_not(mounts: &[Mount], target: &Path) -> Result<(), SnapshotError> {
    let first = match mount_all(mounts, target) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let volatile = |m: &Mount| m.options.iter().any(|o| o == "volatile");
    let einval = matches!(&first, SnapshotError::Mount { source, .. }
        if source.raw_os_error() == Some(libc::EINVAL));
    if !einval || !mounts.iter().any(volatile) {
        return Err(first);
    }
    let mut plain = mounts.to_vec();
    for m in &mut plain {
        m.options.retain(|o| o != "volatile");
    }
    mount_all(&plain, target)
}

/// Whether `target` is the root of a mount in this thread's namespace.
pub(crate) fn is_mount_point(target: &Path) -> Result<bool, SnapshotError> {
    basic_mountinfo::is_mount_point(target).map_err(SnapshotError::MountTable)
}

/// The record of `key`, which must be of kind `wanted`.
pub(crate) fn recorded(
    dir: &Path,
    key: &str,
    wanted: &[SnapshotKind],
    what: &'static str,
) -> Result<SnapshotInfo, SnapshotError> {
    check_key(key)?;
    let info = meta::read(dir, key)?;
    if !wanted.contains(&info.kind) {
        return Err(SnapshotError::WrongKind {
            key: key.to_owned(),
            kind: info.kind,
            wanted: what,
        });
    }
    Ok(info)
}

/// A snapshot that could not be made leaves no directory behind (so its key
/// can be used again).
pub(crate) fn discard_on_error<T>(
    dir: &Path,
    r: Result<T, SnapshotError>,
) -> Result<T, SnapshotError> {
    if r.is_err() {
        let _ = remove_tree(dir);
    }
    r
}

/// Writes the record of the unrecorded writable snapshot `key`, whose
/// directory `dir` must hold `own` (its upper directory, or its copy).
pub(crate) fn adopt_in(
    dir: &Path,
    own: &str,
    key: &str,
    parents: &[PathBuf],
    options: &PrepareOptions,
) -> Result<SnapshotInfo, SnapshotError> {
    match stat_in(dir, key) {
        Err(SnapshotError::NoMetadata(_)) => {}
        Ok(_) => return Err(SnapshotError::Exists(key.to_owned())),
        Err(e) => return Err(e),
    }
    if !dir.join(own).is_dir() {
        return Err(SnapshotError::Metadata {
            path: dir.join(own),
            reason: "missing: this is not a writable snapshot of this snapshotter".into(),
        });
    }
    let info = SnapshotInfo {
        key: key.to_owned(),
        kind: SnapshotKind::Active,
        parents: absolute_all(parents)?,
        volatile: options.volatile,
    };
    meta::write(dir, &info)?;
    Ok(info)
}

/// Parents are recorded absolute: a record must not depend on the working
/// directory of whoever reads it.
pub(crate) fn absolute_all(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SnapshotError> {
    paths
        .iter()
        .map(|p| std::path::absolute(p).map_err(io_err("resolve", p)))
        .collect()
}

/// What is recorded about `key`, whose directory is `dir`.
pub(crate) fn stat_in(dir: &Path, key: &str) -> Result<SnapshotInfo, SnapshotError> {
    check_key(key)?;
    meta::read(dir, key)
}

/// Every recorded snapshot in `snapshots/`.
pub(crate) fn list_in(snapshots: &Path) -> Result<Vec<SnapshotInfo>, SnapshotError> {
    meta::list(snapshots)
}

/// Deletes the snapshot `key` whose directory is `dir`.
pub(crate) fn remove_in(dir: &Path, key: &str) -> Result<(), SnapshotError> {
    check_key(key)?;
    if !dir.exists() {
        return Err(SnapshotError::NotFound(key.to_owned()));
    }
    remove_tree(dir)
}

/// The usage of the tree at `dir` (nothing when it is absent).
pub(crate) fn usage_of(dir: &Path) -> Result<Usage, SnapshotError> {
    meta::usage(dir)
}

/// The changes of the active snapshot `info`, whose own directory (top of
/// the new tree) is `own`.
pub(crate) fn changes_of(
    info: &SnapshotInfo,
    own: PathBuf,
    mount_points: &[PathBuf],
) -> Result<Vec<Change>, SnapshotError> {
    let old: Vec<PathBuf> = info.parents.iter().rev().cloned().collect();
    let new: Vec<PathBuf> = std::iter::once(own).chain(old.iter().cloned()).collect();
    changes::changes(&new, &old, mount_points)
}

/// Unmount `target`.
pub(crate) fn unmount(target: &Path) -> Result<(), SnapshotError> {
    nix::mount::umount2(target, nix::mount::MntFlags::empty()).map_err(|e| SnapshotError::Unmount {
        target: target.to_owned(),
        source: io::Error::from(e),
    })
}

/// Remove a directory tree without following symlinks.
pub(crate) fn remove_tree(path: &Path) -> Result<(), SnapshotError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}
