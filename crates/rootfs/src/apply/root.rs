//! The target directory, seen only through its fd: every lookup below it is
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so `..` and symlinks
//! (absolute or relative, planted by this layer or a lower one) resolve
//! inside the root and never outside it.

use std::collections::HashMap;
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use crate::sys::{self, AsFdRef};

/// Directories looked up recently, by their member path. Bounded: parallel
/// extractions must not run the process out of descriptors.
const CACHE_MAX: usize = 128;

/// An open directory below the root.
pub(crate) struct Dir {
    pub fd: OwnedFd,
    /// New entries inherit the group of a setgid directory.
    pub setgid: bool,
    pub gid: u32,
}

impl Dir {
    pub(crate) fn from_fd(fd: OwnedFd) -> io::Result<Dir> {
        let st = sys::fstat(fd.as_fd_ref())?;
        Ok(Dir {
            fd,
            setgid: st.st_mode & libc::S_ISGID != 0,
            gid: st.st_gid,
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// The root directory of one extraction.
pub(crate) struct Root {
    root: Rc<Dir>,
    cache: HashMap<Vec<u8>, Rc<Dir>>,
    pub euid: u32,
    pub egid: u32,
}

impl Root {
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Root> {
        Ok(Root {
            root: Rc::new(Dir::from_fd(fd)?),
            cache: HashMap::new(),
            // SAFETY: getters without preconditions.
            euid: unsafe { libc::geteuid() },
            // SAFETY: as above.
            egid: unsafe { libc::getegid() },
        })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.root.fd()
    }

    /// Forget cached directories: something on a cached path was removed
    /// or replaced.
    pub(crate) fn invalidate(&mut self) {
        self.cache.clear();
    }

    /// Remember a directory just created or opened at `path`.
    pub(crate) fn remember(&mut self, path: &[u8], dir: Rc<Dir>) {
        if self.cache.len() >= CACHE_MAX {
            self.cache.clear();
        }
        self.cache.insert(path.to_vec(), dir);
    }

    /// Open the directory at member path `path` (`""` is the root itself),
    /// resolved inside the root. With `create`, missing directories on the
    /// way are made (mode 0755, like `mkdir -p`); their paths are passed to
    /// `created` so the caller can count them as part of the layer.
    pub(crate) fn dir(
        &mut self,
        path: &[u8],
        create: bool,
        created: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Rc<Dir>> {
        if path.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some(d) = self.cache.get(path) {
            return Ok(d.clone());
        }
        let dir = match self.open_in_root(path) {
            Ok(fd) => Rc::new(Dir::from_fd(fd)?),
            Err(e) if create && e.raw_os_error() == Some(libc::ENOENT) => {
                self.make_dirs(path, created)?
            }
            Err(e) => return Err(e),
        };
        self.remember(path, dir.clone());
        Ok(dir)
    }

    /// Like [`Root::dir`] without creating anything; `Ok(None)` when a
    /// component is missing or is not a directory.
    pub(crate) fn existing_dir(&mut self, path: &[u8]) -> io::Result<Option<Rc<Dir>>> {
        match self.dir(path, false, &mut |_| {}) {
            Ok(d) => Ok(Some(d)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_in_root(&self, path: &[u8]) -> io::Result<OwnedFd> {
        let c = sys::cstr(path)?;
        sys::openat2(
            self.root.fd(),
            &c,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            sys::RESOLVE_IN_ROOT,
        )
    }

    fn make_dirs(&mut self, path: &[u8], created: &mut dyn FnMut(&[u8])) -> io::Result<Rc<Dir>> {
        let mut parent = self.root.clone();
        let mut end = 0;
        for comp in path.split(|&b| b == b'/') {
            end += comp.len();
            let prefix = &path[..end];
            end += 1;
            let dir = match self.open_in_root(prefix) {
                Ok(fd) => Dir::from_fd(fd)?,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    let name = sys::cstr(comp)?;
                    match sys::mkdirat(parent.fd(), &name, 0o755) {
                        Ok(()) => created(prefix),
                        // A dangling symlink: refuse to create its target
                        // rather than guess (the retry below fails).
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                        Err(e) => return Err(e),
                    }
                    Dir::from_fd(self.open_in_root(prefix)?)?
                }
                Err(e) => return Err(e),
            };
            parent = Rc::new(dir);
        }
        Ok(parent)
    }

    /// Remove `name` in `dir`, recursively when it is a directory.
    /// Returns whether anything was there.
    pub(crate) fn remove_all(&mut self, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
        let st = match sys::lstatat(dir, name) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
            Err(e) => return Err(e),
        };
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFDIR || kind == libc::S_IFLNK {
            // Cached lookups may go through what is about to vanish.
            self.invalidate();
        }
        if kind == libc::S_IFDIR {
            let sub = sys::openat(
                dir,
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            remove_contents(sub.as_fd())?;
            sys::unlinkat(dir, name, true)?;
        } else {
            sys::unlinkat(dir, name, false)?;
        }
        Ok(true)
    }
}

/// Empty the directory `dir` (never following symlinks inside it).
pub(crate) fn remove_contents(dir: BorrowedFd<'_>) -> io::Result<()> {
    for name in sys::read_dir_names(dir)? {
        match sys::unlinkat(dir, &name, false) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR | libc::EPERM)) => {
                let sub = sys::openat(
                    dir,
                    &name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                remove_contents(sub.as_fd())?;
                sys::unlinkat(dir, &name, true)?;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
