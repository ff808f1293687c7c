//! The changes from one tree to another, written as a layer in overlay form:
//! what the copy snapshotter commits. (overlayfs keeps a snapshot's changes
//! apart by itself, in its upper directory; a copy has to be compared.)
//!
//! As docker's `vfs` driver does, a file counts as unchanged when its type,
//! mode, owner, size and modification time (and a link's target, a device's
//! number) are the same: contents are not read. A directory is written when
//! it is new, its mode or owner changed, or something below it changed;
//! what the new tree lacks becomes a whiteout. Hard links between changed
//! files become separate copies. Everything is opened relative to directory
//! descriptors without following symlinks, as the trees are a container's.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::{SnapshotError, io_err};
use crate::fsutil::{copy_entry, copy_meta_fd, readlinkat};
use crate::sys;

/// Writes into the new directory `out` what turns `base` into `changed`.
pub(crate) fn write_changes(base: &Path, changed: &Path, out: &Path) -> Result<(), SnapshotError> {
    let open = |p: &Path| File::open(p).map_err(io_err("open", p));
    let (base_fd, changed_fd) = (open(base)?, open(changed)?);
    std::fs::create_dir(out).map_err(io_err("create", out))?;
    let out_fd = open(out)?;
    diff_dir(Some(base_fd.as_fd()), changed_fd.as_fd(), out_fd.as_fd()).map_err(
        |(path, source)| SnapshotError::Io {
            op: "compare",
            path: changed.join(String::from_utf8_lossy(&path).as_ref()),
            source,
        },
    )?;
    // The root's own mode and owner are the changed tree's.
    let st = sys::fstat(changed_fd.as_fd()).map_err(io_err("stat", changed))?;
    copy_meta_fd(changed_fd.as_fd(), out_fd.as_fd(), &st).map_err(io_err("copy metadata to", out))
}

type DiffResult = Result<(), (Vec<u8>, io::Error)>;

/// Compares the directory `changed` with `base` (absent: everything is new),
/// writing the differences into `out`.
fn diff_dir(
    base: Option<BorrowedFd<'_>>,
    changed: BorrowedFd<'_>,
    out: BorrowedFd<'_>,
) -> DiffResult {
    fn at(name: &CStr) -> impl FnOnce(io::Error) -> (Vec<u8>, io::Error) + '_ {
        move |e| (name.to_bytes().to_vec(), e)
    }
    let names = sys::read_dir_names(changed).map_err(|e| (Vec::new(), e))?;
    let present: HashSet<CString> = names.iter().cloned().collect();
    for name in &names {
        let st = sys::lstatat(changed, name).map_err(at(name))?;
        let old = base.and_then(|b| sys::lstatat(b, name).ok());
        if sys::is_dir(&st) {
            diff_subdir(base, old.as_ref(), changed, out, name, &st).map_err(|(p, e)| {
                let mut path = name.to_bytes().to_vec();
                if !p.is_empty() {
                    path.push(b'/');
                    path.extend(p);
                }
                (path, e)
            })?;
        } else if !old.is_some_and(|old| same_entry(base, changed, name, &old, &st)) {
            copy_entry(changed, name, &st, out, name).map_err(at(name))?;
        }
    }
    if let Some(base) = base {
        for name in sys::read_dir_names(base).map_err(|e| (Vec::new(), e))? {
            if !present.contains(&name) {
                // A 0/0 character device: overlay form's whiteout.
                sys::mknodat(out, &name, libc::S_IFCHR, 0).map_err(at(&name))?;
            }
        }
    }
    Ok(())
}

/// The directory `name`: written with what changed below it, and removed
/// again when nothing did and it was there, alike, before.
fn diff_subdir(
    base: Option<BorrowedFd<'_>>,
    old: Option<&libc::stat>,
    changed: BorrowedFd<'_>,
    out: BorrowedFd<'_>,
    name: &CStr,
    st: &libc::stat,
) -> DiffResult {
    let e = |err| (Vec::new(), err);
    let changed_sub = open_dir(changed, name).map_err(e)?;
    let base_sub = match (base, old) {
        (Some(b), Some(old)) if sys::is_dir(old) => Some(open_dir(b, name).map_err(e)?),
        _ => None,
    };
    sys::mkdirat(out, name, 0o700).map_err(e)?;
    let out_sub = open_dir(out, name).map_err(e)?;
    diff_dir(
        base_sub.as_ref().map(OwnedFd::as_fd),
        changed_sub.as_fd(),
        out_sub.as_fd(),
    )?;
    let unchanged = base_sub.is_some()
        && old.is_some_and(|old| same_owner_and_mode(old, st))
        && sys::read_dir_names(out_sub.as_fd()).map_err(e)?.is_empty();
    if unchanged {
        return sys::unlinkat(out, name, true).map_err(e);
    }
    copy_meta_fd(changed_sub.as_fd(), out_sub.as_fd(), st).map_err(e)
}

fn same_owner_and_mode(a: &libc::stat, b: &libc::stat) -> bool {
    a.st_mode == b.st_mode && a.st_uid == b.st_uid && a.st_gid == b.st_gid
}

/// Whether the non-directory `name` is the same in both trees, by metadata.
fn same_entry(
    base: Option<BorrowedFd<'_>>,
    changed: BorrowedFd<'_>,
    name: &CStr,
    old: &libc::stat,
    new: &libc::stat,
) -> bool {
    let same_meta = same_owner_and_mode(old, new)
        && old.st_size == new.st_size
        && old.st_mtime == new.st_mtime
        && old.st_mtime_nsec == new.st_mtime_nsec
        && old.st_rdev == new.st_rdev;
    if !same_meta {
        return false;
    }
    if new.st_mode & libc::S_IFMT != libc::S_IFLNK {
        return true;
    }
    let Some(base) = base else { return false };
    match (readlinkat(base, name), readlinkat(changed, name)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    sys::openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}
