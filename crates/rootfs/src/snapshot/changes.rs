//! What a writable snapshot changed compared with its parents: `docker diff`.
//!
//! Both trees are read as overlayfs would merge them, from the layer
//! directories themselves (nothing is mounted): the old tree is the parents,
//! the new one the snapshot's own directory on top of them (overlay: its
//! upper directory; copy: its full copy, which hides every parent). A
//! whiteout (a 0/0 character device) hides a name of the layers below, an
//! opaque directory (`trusted.overlay.opaque=y`, its `user.` form, or
//! fuse-overlayfs' marks) hides their directory.
//!
//! The rules are docker's (its `ChangesDirs`, which `docker diff` uses on
//! overlay2 where the kernel has redirect_dir, and on vfs): an entry only in
//! the new tree is added (`A`), and so is everything below it; one only in
//! the old tree is deleted (`D`), itself only; one in both is modified (`C`)
//! when its type or mode bits, owner, device number, or, for a
//! non-directory, its size or modification time differ. A directory with a
//! change anywhere below it that is not itself added or modified is
//! reported modified, just before the first change inside it (the root is
//! never reported). docker's own order follows Go's map iteration (random);
//! here each directory's names are sorted by bytes, so the list is stable.
//!
//! Everything is opened relative to directory descriptors with `O_NOFOLLOW`:
//! the trees are a container's.

use std::collections::{BTreeSet, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{SnapshotError, io_err};
use crate::fsutil::is_opaque;
use crate::sys;

/// What happened to a path (docker's `ChangeType`: 0, 1, 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// `C`: it was there and differs.
    Modified,
    /// `A`: it was not there.
    Added,
    /// `D`: it is gone.
    Deleted,
}

impl ChangeKind {
    /// The letter `docker diff` prints: `C`, `A` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }

    /// docker's API number: 0 modified, 1 added, 2 deleted.
    pub fn code(self) -> u8 {
        match self {
            ChangeKind::Modified => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    /// The absolute path inside the snapshot (`/etc/passwd`).
    pub path: PathBuf,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// The changes from the tree of `old` layers to the tree of `new` layers
/// (each list top-most first, overlay form). `new` may end with the same
/// directories as `old` (an overlay snapshot: its upper directory, then its
/// parents): subtrees whose layers are the same in both are not walked.
pub(crate) fn changes(
    new: &[PathBuf],
    old: &[PathBuf],
    mount_points: &[PathBuf],
) -> Result<Vec<Change>, SnapshotError> {
    let mut ids: Vec<PathBuf> = Vec::new();
    let mut open = |layers: &[PathBuf]| -> Result<View, SnapshotError> {
        let mut view = View::default();
        for layer in layers {
            let abs = std::path::absolute(layer).map_err(io_err("resolve", layer))?;
            let id = match ids.iter().position(|p| *p == abs) {
                Some(i) => i,
                None => {
                    ids.push(abs);
                    ids.len() - 1
                }
            };
            let fd = File::open(layer).map_err(io_err("open the layer", layer))?;
            view.layers.push((id, fd.into()));
        }
        Ok(view)
    };
    let (new_view, old_view) = (open(new)?, open(old)?);
    let mut ignore = HashSet::new();
    for point in mount_points {
        // The point and the directories made to hold it.
        for dir in point.ancestors().filter(|p| *p != Path::new("/")) {
            ignore.insert(dir.to_path_buf());
        }
    }
    let mut walk = Walk {
        out: Vec::new(),
        ignore,
    };
    walk.dir(&new_view, Some(&old_view), Path::new("/"), true)
        .map_err(|(path, source)| SnapshotError::Io {
            op: "compare",
            path,
            source,
        })?;
    Ok(walk.out)
}

/// One directory of a merged tree: the layers' directories at that path, top
/// first, cut below an opaque one. The numbers name the layers, so two views
/// made of the same layers compare equal.
#[derive(Default)]
struct View {
    layers: Vec<(usize, OwnedFd)>,
}

impl View {
    fn ids(&self) -> Vec<usize> {
        self.layers.iter().map(|(id, _)| *id).collect()
    }

    /// The merged directory's names (whiteouts hide, and are not names).
    fn names(&self) -> io::Result<BTreeSet<CString>> {
        let mut seen = BTreeSet::new();
        let mut names = BTreeSet::new();
        for (_, fd) in &self.layers {
            for name in sys::read_dir_names(fd.as_fd())? {
                if seen.contains(&name) || crate::overlay_xattr::is_fuse_marker(name.to_bytes()) {
                    continue;
                }
                let st = sys::lstatat(fd.as_fd(), &name)?;
                if !is_whiteout(&st) {
                    names.insert(name.clone());
                }
                seen.insert(name);
            }
        }
        Ok(names)
    }

    /// The merged entry `name`: its stat (the top-most layer's) and, for a
    /// directory, its own view. `None` when absent or whited out.
    fn lookup(&self, name: &CStr) -> io::Result<Option<(libc::stat, Option<View>)>> {
        let mut found: Option<libc::stat> = None;
        let mut sub = View::default();
        for (id, fd) in &self.layers {
            let st = match sys::lstatat(fd.as_fd(), name) {
                Ok(st) => st,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            if is_whiteout(&st) || (found.is_some() && !sys::is_dir(&st)) {
                // Hides what lies below (a file under a directory is hidden too).
                break;
            }
            if !sys::is_dir(&st) {
                return Ok(Some((st, None)));
            }
            let dir = sys::openat(
                fd.as_fd(),
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            let opaque = is_opaque(dir.as_fd());
            sub.layers.push((*id, dir));
            found.get_or_insert(st);
            if opaque {
                break;
            }
        }
        Ok(found.map(|st| (st, Some(sub))))
    }
}

fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// docker's `statDifferent`.
fn differs(old: &libc::stat, new: &libc::stat) -> bool {
    old.st_mode != new.st_mode
        || old.st_uid != new.st_uid
        || old.st_gid != new.st_gid
        || old.st_rdev != new.st_rdev
        || (!sys::is_dir(old)
            && (old.st_mtime != new.st_mtime
                || old.st_mtime_nsec != new.st_mtime_nsec
                || old.st_size != new.st_size))
}

type WalkResult = Result<(), (PathBuf, io::Error)>;

struct Walk {
    out: Vec<Change>,
    /// Mount points and their parents: not reported when added empty.
    ignore: HashSet<PathBuf>,
}

impl Walk {
    fn push(&mut self, path: PathBuf, kind: ChangeKind) {
        self.out.push(Change { path, kind });
    }

    /// Compares the directory `path` of the new tree with the old one's
    /// (`None`: it is new, so everything below is added). `reported`: the
    /// directory itself is in the list already (or is the root).
    fn dir(&mut self, new: &View, old: Option<&View>, path: &Path, reported: bool) -> WalkResult {
        let at = |e| (path.to_path_buf(), e);
        if old.is_some_and(|old| old.ids() == new.ids()) {
            return Ok(());
        }
        let mark = self.out.len();
        let names = new.names().map_err(at)?;
        let old_names = match old {
            Some(old) => old.names().map_err(at)?,
            None => BTreeSet::new(),
        };
        for name in names.union(&old_names) {
            let child = path.join(OsStr::from_bytes(name.to_bytes()));
            if !names.contains(name) {
                self.push(child, ChangeKind::Deleted);
                continue;
            }
            let cat = |e| (child.clone(), e);
            let (st, sub) = new.lookup(name).map_err(cat)?.ok_or_else(|| {
                let gone = io::Error::from_raw_os_error(libc::ENOENT);
                (child.clone(), gone)
            })?;
            let before = match old {
                Some(old) => old.lookup(name).map_err(cat)?,
                None => None,
            };
            let (kind, old_sub) = match before {
                None => (Some(ChangeKind::Added), None),
                Some((old_st, old_sub)) => (
                    differs(&old_st, &st).then_some(ChangeKind::Modified),
                    old_sub,
                ),
            };
            let at = self.out.len();
            if let Some(kind) = kind {
                self.push(child.clone(), kind);
            }
            let is_dir = sub.is_some();
            if let Some(sub) = sub {
                // A directory that was not one before: everything in it is new.
                let old_sub = old_sub.filter(|_| kind != Some(ChangeKind::Added));
                self.dir(&sub, old_sub.as_ref(), &child, kind.is_some())?;
            }
            let empty = is_dir || (st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_size == 0);
            if kind == Some(ChangeKind::Added)
                && empty
                && self.out.len() == at + 1
                && self.ignore.contains(&child)
            {
                self.out.truncate(at);
            }
        }
        if !reported && self.out.len() > mark {
            self.out.insert(
                mark,
                Change {
                    path: path.to_path_buf(),
                    kind: ChangeKind::Modified,
                },
            );
        }
        Ok(())
    }
}
