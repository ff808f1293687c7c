//! Overlay mode with the layers below in view: looking a path up as the
//! merged overlay would, so a hard link to a lower file can copy it up and
//! an implicitly created directory can take its lower metadata.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use crate::fsutil::is_opaque;
use crate::sys;

/// Lower layer directories, top-most first.
pub(crate) struct Lowers {
    layers: Vec<OwnedFd>,
}

/// A path found in a lower layer.
pub(crate) struct Found {
    /// Its parent directory in that layer.
    pub dir: OwnedFd,
    /// Its name there.
    pub name: CString,
    /// Its lstat.
    pub st: libc::stat,
}

enum Lookup {
    Found(Found),
    /// Not in this layer; lower layers may have it.
    Absent,
    /// Not in this layer, and hidden from the layers below (opaque directory
    /// on the way).
    AbsentOpaque,
    /// Hidden: a whiteout or a non-directory on the way.
    Hidden,
}

impl Lowers {
    /// Open `paths` (bottom-most first, as images list layers).
    pub(crate) fn open(paths: &[PathBuf]) -> Result<Lowers, (PathBuf, io::Error)> {
        let mut layers = Vec::with_capacity(paths.len());
        for p in paths.iter().rev() {
            let c = crate::snapshot::cpath(p);
            let fd = sys::openat(
                // SAFETY: AT_FDCWD is valid for *at calls.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(libc::AT_FDCWD) },
                &c,
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )
            .map_err(|e| (p.clone(), e))?;
            layers.push(fd);
        }
        Ok(Lowers { layers })
    }

    /// `path` (normalized, non-empty) as the merged view of the lower layers shows it.
    pub(crate) fn find(&self, path: &[u8]) -> io::Result<Option<Found>> {
        for layer in &self.layers {
            match lookup(layer, path)? {
                Lookup::Found(f) => return Ok(Some(f)),
                Lookup::Absent => {}
                Lookup::AbsentOpaque | Lookup::Hidden => return Ok(None),
            }
        }
        Ok(None)
    }
}

fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

fn lookup(layer: &OwnedFd, path: &[u8]) -> io::Result<Lookup> {
    let mut dir = sys::openat(layer.as_fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let mut opaque = false;
    let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
    for (i, comp) in comps.iter().enumerate() {
        let name = sys::cstr(comp)?;
        let st = match sys::lstatat(dir.as_fd(), &name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Ok(if opaque {
                    Lookup::AbsentOpaque
                } else {
                    Lookup::Absent
                });
            }
            Err(e) => return Err(e),
        };
        if is_whiteout(&st) {
            return Ok(Lookup::Hidden);
        }
        if i + 1 == comps.len() {
            return Ok(Lookup::Found(Found { dir, name, st }));
        }
        if !sys::is_dir(&st) {
            return Ok(Lookup::Hidden);
        }
        let sub = sys::openat(
            dir.as_fd(),
            &name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        opaque |= is_opaque(sub.as_fd());
        dir = sub;
    }
    Ok(Lookup::Absent)
}
