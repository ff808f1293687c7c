//! Temporary paths that clean up after themselves, and durable renames.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::StoreError;

/// A file or directory under `tmp/` that is removed when dropped, unless kept.
///
/// Dropping is what makes an interrupted pull (an error, a dropped future)
/// leave nothing behind; a killed process is covered by [`sweep_tmp`].
#[derive(Debug)]
pub(crate) struct TempPath {
    path: Option<PathBuf>,
}

impl TempPath {
    pub(crate) fn new(path: PathBuf) -> Self {
        TempPath { path: Some(path) }
    }

    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().expect("TempPath used after keep")
    }

    /// Hands the path over: it is no longer removed on drop.
    pub(crate) fn keep(mut self) -> PathBuf {
        self.path.take().expect("TempPath kept twice")
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            remove_any(&path);
        }
    }
}

/// Removes a file or a tree, ignoring what is already gone.
pub(crate) fn remove_any(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(_) => return,
    };
    if let Err(e) = result {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove temporary path");
    }
}

/// A fresh name in `tmp`, prefixed with our pid so a later process can tell
/// whether its owner is still alive.
pub(crate) fn temp_name(tmp: &Path, kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    tmp.join(format!("{}-{nanos:x}-{n}.{kind}", std::process::id()))
}

/// Whether a process with this pid exists (a zombie counts as gone).
pub(crate) fn pid_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 is the state; "Z" (zombie) and "X" (dead) own nothing any more.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Removes what processes that no longer exist left in `tmp` (a `kill -9`
/// in the middle of a pull, a power cut).
pub(crate) fn sweep_tmp(tmp: &Path) -> Result<(), StoreError> {
    let entries = fs::read_dir(tmp).map_err(StoreError::io("list", tmp))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let owner = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        let stale = match owner {
            Some(pid) => !pid_alive(pid),
            // Not a name we make: nothing in tmp/ is content, so it goes.
            None => true,
        };
        if stale {
            remove_any(&entry.path());
        }
    }
    Ok(())
}

/// fsyncs a directory, so that a rename into it survives a crash.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), StoreError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::io("fsync directory", dir))
}

/// Seconds since the epoch, for records.
pub(crate) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The store's root: others may pass through it (to reach what is shared with
/// them on purpose, as containerd's root is) but not list it.
pub(crate) const ROOT_MODE: u32 = 0o711;
/// Directories that hold images' and containers' contents: the owner's only.
pub(crate) const PRIVATE_DIR: u32 = 0o700;
/// Files that hold records (the database, the lock): the owner's only.
pub(crate) const PRIVATE_FILE: u32 = 0o600;

/// Makes sure the directory `path` exists and gives nobody more than `mode`:
/// created with `mode` from the start (its parents with the usual modes), or,
/// when it exists, tightened to at most `mode` (what an older store made wider).
pub(crate) fn private_dir(path: &Path, mode: u32) -> Result<(), StoreError> {
    let created = match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(StoreError::io("create directory", parent))?;
            }
            match fs::DirBuilder::new().mode(mode).create(path) {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(StoreError::io("create directory", path)(e)),
            }
        }
        Err(e) => return Err(StoreError::io("create directory", path)(e)),
    };
    // mkdir's mode is only ever narrowed by the umask: a new one is private already.
    if created { Ok(()) } else { tighten(path, mode) }
}

/// Removes from the permission bits of `path` those `mode` does not grant;
/// nothing else changes (owner, special bits), and nothing is written when
/// there is nothing to remove, so it is cheap to run on every open.
pub(crate) fn tighten(path: &Path, mode: u32) -> Result<(), StoreError> {
    let current = match fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io("read the mode of", path)(e)),
    };
    let wanted = current & !(0o777 & !mode);
    if wanted == current {
        return Ok(());
    }
    match fs::set_permissions(path, fs::Permissions::from_mode(wanted)) {
        Ok(()) => Ok(()),
        // A read-only store (a mounted backup) can still be read; it is
        // tightened the first time it is opened writable.
        Err(e) if e.kind() == io::ErrorKind::ReadOnlyFilesystem => {
            tracing::warn!(path = %path.display(), "read-only: its mode stays {current:04o}");
            Ok(())
        }
        Err(source) => Err(StoreError::Mode {
            path: path.to_path_buf(),
            mode: wanted,
            source,
        }),
    }
}

/// Makes sure the file `path` exists and gives nobody more than `mode`:
/// created empty with `mode` (never truncated), or tightened when it exists.
pub(crate) fn private_file(path: &Path, mode: u32) -> Result<(), StoreError> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten(path, mode),
        Err(e) => Err(StoreError::io("create", path)(e)),
    }
}

/// ext2/3/4's "top of a directory hierarchy" inode flag (`chattr +T`, `FS_TOPDIR_FL`).
const FS_TOPDIR_FL: libc::c_int = 0x0002_0000;

/// Marks `dir` as the top of directory hierarchies (`chattr +T`), so that ext4
/// places each directory made in it (a layer being extracted) in a block group
/// of its own choosing, with free inodes, instead of the group of `dir`.
///
/// Why: ext4 does not reuse an inode freed in the last few seconds, and skips
/// it by reading its inode table block (`recently_deleted`). In the group of a
/// directory where files come and go (a store under `/var/tmp` on a machine
/// running builds and tests), every file a pull creates paid that scan: perf
/// showed 40 % of a pull's processor time there, 2.8 s of system time against
/// 0.6 s with the flag for the 14,000-entry bench image (docs/performance.md).
/// Only a placement hint: where the filesystem has no such flag (tmpfs, xfs,
/// btrfs) or refuses it, nothing changes.
pub(crate) fn spread_subdirectories(dir: &Path) {
    use std::os::fd::AsRawFd as _;
    let Ok(file) = fs::File::open(dir) else {
        return;
    };
    let mut flags: libc::c_int = 0;
    // SAFETY: FS_IOC_GETFLAGS writes one int (the kernel's `get_user`/`put_user` of an
    // int) into `flags`, which lives for the call; the descriptor is open.
    if unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_GETFLAGS, &mut flags) } != 0
        || flags & FS_TOPDIR_FL != 0
    {
        return;
    }
    flags |= FS_TOPDIR_FL;
    // SAFETY: FS_IOC_SETFLAGS reads one int from `flags`; the descriptor is open.
    let _ = unsafe { libc::ioctl(file.as_raw_fd(), libc::FS_IOC_SETFLAGS, &flags) };
}
