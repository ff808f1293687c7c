//! When the store's filesystem refuses a change: it is full, or it is mounted
//! read-only. Both must reach the user as what they are, naming the filesystem,
//! whatever layer found them (a `write(2)`, SQLite's journal, a `mkdir`).

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::statvfs::{FsFlags, statvfs};

use crate::error::StoreError;

/// Why a filesystem refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// `ENOSPC`: no blocks (or no inodes) left.
    NoSpace,
    /// `EROFS`: mounted read-only (a backup, a read-only bind mount).
    ReadOnly,
}

/// Below this many free bytes a filesystem counts as full when SQLite reports
/// an I/O error without saying why: a page or two is all it takes to fail.
const NEARLY_FULL: u64 = 1 << 20;

impl StorageFault {
    /// The fault an I/O error stands for, if it is one of these.
    pub fn of(error: &io::Error) -> Option<StorageFault> {
        match error.kind() {
            io::ErrorKind::StorageFull => Some(StorageFault::NoSpace),
            io::ErrorKind::ReadOnlyFilesystem => Some(StorageFault::ReadOnly),
            _ => None,
        }
    }

    /// The fault behind `error`: an `io::Error` or an errno with it anywhere in the
    /// chain of sources.
    pub fn within(error: &(dyn Error + 'static)) -> Option<StorageFault> {
        chain(error).find_map(|e| {
            let io = e.downcast_ref::<io::Error>().and_then(StorageFault::of);
            let errno = e
                .downcast_ref::<nix::Error>()
                .and_then(|errno| StorageFault::of(&io::Error::from(*errno)));
            io.or(errno)
        })
    }

    /// What `error`'s message lacks, if anything: the fault behind it (see
    /// [`within`](Self::within)) and the mount point of the filesystem holding
    /// the first of `dirs` that is in that state now. `None` when nothing in the
    /// chain is such a fault, when a [`StoreError::Storage`] in it says so already,
    /// or when none of `dirs` is on a full or read-only filesystem (the fault was
    /// somewhere else, which its own message names).
    pub fn diagnose(
        error: &(dyn Error + 'static),
        dirs: &[&Path],
    ) -> Option<(StorageFault, PathBuf)> {
        let said = chain(error).any(|e| {
            matches!(
                e.downcast_ref::<StoreError>(),
                Some(StoreError::Storage { .. })
            )
        });
        let fault = StorageFault::within(error).filter(|_| !said)?;
        let dir = dirs
            .iter()
            .find(|d| StorageFault::probe(d) == Some(fault))?;
        Some((fault, filesystem_of(dir)))
    }

    /// What the filesystem holding `path` is like now: read-only, full (less
    /// than a megabyte or no inode left), or neither (`None`). Used where the
    /// error itself does not say (SQLite's I/O errors keep `errno` to themselves).
    pub fn probe(path: &Path) -> Option<StorageFault> {
        let stat = statvfs(path).ok()?;
        if stat.flags().contains(FsFlags::ST_RDONLY) {
            return Some(StorageFault::ReadOnly);
        }
        let free = Self::free_bytes(path)?;
        let no_inodes = stat.files() > 0 && stat.files_available() == 0;
        (free < NEARLY_FULL || no_inodes).then_some(StorageFault::NoSpace)
    }

    /// Bytes the filesystem holding `path` has free for unprivileged writers.
    pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
        let stat = statvfs(path).ok()?;
        // fsblkcnt_t is 32 bits wide on some targets.
        #[allow(clippy::useless_conversion)]
        Some(u64::from(stat.blocks_available()).saturating_mul(stat.fragment_size()))
    }

    /// How the filesystem is, after its mount point: "is full", "is mounted read-only".
    pub fn state(self) -> &'static str {
        match self {
            StorageFault::NoSpace => "is full",
            StorageFault::ReadOnly => "is mounted read-only",
        }
    }
}

impl fmt::Display for StorageFault {
    /// The system's words, lower case as docker prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageFault::NoSpace => "no space left on device",
            StorageFault::ReadOnly => "read-only file system",
        })
    }
}

/// `error` and its sources, outermost first.
fn chain<'a>(error: &'a (dyn Error + 'static)) -> impl Iterator<Item = &'a (dyn Error + 'static)> {
    std::iter::successors(Some(error), |&e| e.source())
}

/// The mount point of the filesystem holding `path`, to name it in a message;
/// `path` itself when the mount table cannot be read.
pub fn filesystem_of(path: &Path) -> PathBuf {
    basic_mountinfo::mount_of(path).map_or_else(|_| path.to_path_buf(), |m| m.mount_point)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_the_fault() {
        let full = io::Error::from_raw_os_error(nix::libc::ENOSPC);
        let ro = io::Error::from_raw_os_error(nix::libc::EROFS);
        let other = io::Error::from_raw_os_error(nix::libc::EACCES);
        assert_eq!(StorageFault::of(&full), Some(StorageFault::NoSpace));
        assert_eq!(StorageFault::of(&ro), Some(StorageFault::ReadOnly));
        assert_eq!(StorageFault::of(&other), None);
        assert_eq!(StorageFault::NoSpace.to_string(), "no space left on device");
        assert_eq!(StorageFault::ReadOnly.to_string(), "read-only file system");
    }

    #[test]
    fn a_filesystem_with_room_is_not_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        // The test machines' temporary directories have far more than a megabyte.
        assert_eq!(StorageFault::probe(dir.path()), None);
        let holder = filesystem_of(&dir.path().join("not/yet"));
        assert!(dir.path().canonicalize().unwrap().starts_with(holder));
    }
}
