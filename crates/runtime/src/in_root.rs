//! Paths inside a container's root filesystem, resolved inside it.
//!
//! A root filesystem comes from an image or a bundle, and both are untrusted: any directory
//! on the way to a mount point, and the mount point itself, may be a symlink — absolute,
//! `../../..`, or dangling — that a plain `open("<rootfs>/etc/hosts")` follows on the host.
//! [`Root`] resolves every path as if the root were `/`: symlinks are followed *inside* the
//! root (what docker does: `/etc/hosts -> /x/y` puts the mount at `<rootfs>/x/y`), `..`
//! stops at the root, and `/proc` magic links (`/proc/self/fd/N`, `/proc/self/exe`) are
//! never followed as the kernel would (they are read as the strings they print, which then
//! resolve inside the root too).
//!
//! Existing files are opened with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`. For
//! paths that must be created (mount points, device nodes, a missing working directory) the
//! kernel offers no "create inside a root", so [`Root::create`] walks the path itself one
//! component at a time with `O_NOFOLLOW` handles, reading symlinks and `..` in userspace;
//! what it creates gets mode 0755 (directories) or 0644 (files). The result is a handle
//! (`O_PATH`): mount onto [`fd_path`] of it so that nothing swapped in after resolution can
//! redirect the mount.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};

/// How many symlinks one resolution may follow, as the kernel's limit.
const MAX_SYMLINKS: usize = 40;

/// What [`Root::create`] makes when the last component is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// A directory (mode 0755).
    Dir,
    /// An empty regular file (mode 0644), e.g. the mount point of a bind-mounted file.
    File,
}

/// A container's root filesystem, held open.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// A resolved path: the handle (`O_PATH`) and where it is inside the root.
#[derive(Debug)]
pub struct Resolved {
    /// The file, as an `O_PATH` descriptor.
    pub fd: OwnedFd,
    /// Its path from the root, without symlinks (`/x/y` for `/etc/hosts -> /x/y`).
    pub path: PathBuf,
}

impl Root {
    /// Opens the root directory `path` (a host path, trusted).
    pub fn open(path: &Path) -> io::Result<Root> {
        let fd = nix::fcntl::open(
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The root's host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens an existing file inside the root with `flags` (`O_CLOEXEC` is added).
    ///
    /// The kernel answers `EAGAIN` when a rename or mount anywhere on the machine
    /// raced its walk of a `..`; the lookup is retried, a bounded number of times so
    /// that a container renaming files in a loop cannot hold the caller forever
    /// (`EAGAIN` comes back then, and [`Root::resolve`] is the fallback).
    pub fn open_file(&self, path: &Path, flags: OFlag) -> io::Result<File> {
        const ATTEMPTS: usize = 256;
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let mut attempt = 1;
        loop {
            match openat2(&self.fd, relative(path), how) {
                Err(nix::errno::Errno::EAGAIN) if attempt < ATTEMPTS => attempt += 1,
                other => return Ok(File::from(other?)),
            }
        }
    }

    /// Reads a whole file inside the root, e.g. the image's `/etc/passwd`.
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        use std::io::Read as _;
        let mut file = self.open_file(path, OFlag::O_RDONLY)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    /// Resolves `path` inside the root without creating anything.
    pub fn resolve(&self, path: &Path) -> io::Result<Resolved> {
        self.walk(path, None)
    }

    /// Resolves `path` inside the root, creating what is missing: directories on the way,
    /// and the last component as `leaf`. An existing last component is returned as it is,
    /// whatever its type.
    pub fn create(&self, path: &Path, leaf: Leaf) -> io::Result<Resolved> {
        self.walk(path, Some(leaf))
    }

    fn walk(&self, path: &Path, create: Option<Leaf>) -> io::Result<Resolved> {
        let mut pending: VecDeque<OsString> = components(path)?;
        // The directories from the root down to the current one, with their names.
        let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            if name == ".." {
                stack.pop();
                continue;
            }
            let last = pending.is_empty();
            let dir = stack.last().map_or(self.fd.as_fd(), |(fd, _)| fd.as_fd());
            let fd = match open_nofollow(dir, &name) {
                Ok(fd) => fd,
                Err(nix::Error::ENOENT) if create.is_some() => {
                    let leaf = if last { create } else { Some(Leaf::Dir) };
                    make(dir, &name, leaf.unwrap_or(Leaf::Dir))?;
                    pending.push_front(name);
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let kind = SFlag::from_bits_truncate(fstat(&fd)?.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFLNK {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let target = nix::fcntl::readlinkat(&fd, "")?;
                if Path::new(&target).is_absolute() {
                    stack.clear();
                }
                for (i, c) in components(Path::new(&target))?.into_iter().enumerate() {
                    pending.insert(i, c);
                }
                continue;
            }
            if last {
                let mut resolved: PathBuf = stack.iter().map(|(_, n)| n.as_os_str()).collect();
                resolved.push(&name);
                return Ok(Resolved {
                    fd,
                    path: Path::new("/").join(resolved),
                });
            }
            if kind != SFlag::S_IFDIR {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            stack.push((fd, name));
        }
        // Nothing but "/", "." or ".." components: the root itself (or a directory the
        // walk ended in, after a trailing "..").
        match stack.pop() {
            Some((fd, name)) => {
                let mut resolved: PathBuf = stack.iter().map(|(_, n)| n.as_os_str()).collect();
                resolved.push(name);
                Ok(Resolved {
                    fd,
                    path: Path::new("/").join(resolved),
                })
            }
            None => Ok(Resolved {
                fd: self.fd.try_clone()?,
                path: PathBuf::from("/"),
            }),
        }
    }
}

/// The path through which a mount (or any path-taking call) reaches the file behind `fd`
/// exactly, whatever is swapped in at its old path meanwhile.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// `path` made absolute with `.` and `..` taken lexically (`..` at `/` stays there), as a
/// path inside a root is meant before any symlink is read.
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// The components of `path` as names and `..`, without `/` and `.`.
fn components(path: &Path) -> io::Result<VecDeque<OsString>> {
    let mut out = VecDeque::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => out.push_back(OsString::from("..")),
            Component::Normal(n) => out.push_back(n.to_os_string()),
            Component::Prefix(_) => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }
    Ok(out)
}

/// `path` without its leading `/`, for lookups relative to the root's descriptor.
fn relative(path: &Path) -> &Path {
    match path.strip_prefix("/").unwrap_or(path) {
        p if p.as_os_str().is_empty() => Path::new("."),
        p => p,
    }
}

fn open_nofollow(dir: BorrowedFd<'_>, name: &OsStr) -> nix::Result<OwnedFd> {
    openat(
        dir,
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// Creates `name` in `dir`; losing a race to another creator is not an error.
fn make(dir: BorrowedFd<'_>, name: &OsStr, leaf: Leaf) -> io::Result<()> {
    if name.as_bytes().contains(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let made = match leaf {
        Leaf::Dir => nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o755)),
        Leaf::File => openat(
            dir,
            name,
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map(drop),
    };
    match made {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        (dir, root, outside)
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn absolute_and_dotdot_symlinks_resolve_inside_the_root() {
        let (_d, root, outside) = tree();
        symlink(&outside, root.join("etc/hosts")).unwrap();
        symlink("../../../../outside/x", root.join("data")).unwrap();
        let r = Root::open(&root).unwrap();
        let made = r.create(Path::new("/etc/hosts"), Leaf::File).unwrap();
        assert_eq!(made.path, outside);
        let made = r.create(Path::new("/data/sub"), Leaf::Dir).unwrap();
        assert_eq!(made.path, Path::new("/outside/x/sub"));
        assert!(listing(&outside).is_empty(), "nothing created on the host");
        let inside = root.join(outside.strip_prefix("/").unwrap());
        let mode = std::fs::metadata(&inside).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o644);
        let mode = std::fs::metadata(root.join("outside/x/sub"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777;
        assert_eq!(mode, 0o755);
    }

    #[test]
    fn magic_links_are_read_as_strings_not_followed() {
        let (_d, root, outside) = tree();
        let held = File::open(&outside).unwrap();
        symlink(
            format!("/proc/self/fd/{}", held.as_raw_fd()),
            root.join("etc/cwd"),
        )
        .unwrap();
        let r = Root::open(&root).unwrap();
        // /proc does not exist in this root: the link leads nowhere inside it.
        assert!(r.resolve(Path::new("/etc/cwd")).is_err());
        let made = r.create(Path::new("/etc/cwd/x"), Leaf::Dir).unwrap();
        assert!(made.path.starts_with("/proc/self/fd"), "{:?}", made.path);
        assert!(listing(&outside).is_empty());
        // Where /proc is real, the kernel's resolver refuses magic links outright.
        let host = Root::open(Path::new("/")).unwrap();
        let magic = format!("/proc/self/fd/{}", held.as_raw_fd());
        let err = host
            .open_file(Path::new(&magic), OFlag::O_RDONLY)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn reads_follow_symlinks_inside_the_root_only() {
        let (_d, root, outside) = tree();
        std::fs::write(outside.join("passwd"), "host:x:1:1::/:/bin/sh\n").unwrap();
        symlink(outside.join("passwd"), root.join("etc/passwd")).unwrap();
        let r = Root::open(&root).unwrap();
        let err = r.read(Path::new("/etc/passwd")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        std::fs::create_dir_all(root.join(outside.strip_prefix("/").unwrap())).unwrap();
        std::fs::write(
            root.join(outside.strip_prefix("/").unwrap()).join("passwd"),
            "inside:x:2:2::/:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(
            r.read(Path::new("/etc/passwd")).unwrap(),
            b"inside:x:2:2::/:/bin/sh\n"
        );
    }

    #[test]
    fn symlink_loops_end_with_eloop() {
        let (_d, root, _outside) = tree();
        symlink("/b", root.join("a")).unwrap();
        symlink("/a", root.join("b")).unwrap();
        let r = Root::open(&root).unwrap();
        let err = r.create(Path::new("/a/x"), Leaf::Dir).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn dotdot_stops_at_the_root() {
        let (_d, root, _outside) = tree();
        let r = Root::open(&root).unwrap();
        let made = r.create(Path::new("/../../etc/../x"), Leaf::Dir).unwrap();
        assert_eq!(made.path, Path::new("/x"));
        assert!(root.join("x").is_dir());
        assert_eq!(r.resolve(Path::new("/..")).unwrap().path, Path::new("/"));
    }

    /// Any rename on the machine makes the kernel's in-root walk of `..` answer EAGAIN
    /// ("could not ensure `..` did not escape"); a container renaming files in a loop
    /// must not make the engine's lookups of its paths fail.
    #[test]
    fn lookups_through_dotdot_survive_renames_racing_them() {
        let (_d, root, _outside) = tree();
        symlink("../../../..", root.join("up")).unwrap();
        let churn = root.join("churn");
        std::fs::write(&churn, "").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let renamer = {
            let stop = stop.clone();
            let (a, b) = (churn.clone(), root.join("churned"));
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::fs::rename(&a, &b).unwrap();
                    std::fs::rename(&b, &a).unwrap();
                }
            })
        };
        let r = Root::open(&root).unwrap();
        let failures = (0..20_000)
            .filter(|_| {
                r.open_file(Path::new("/up/etc/"), OFlag::O_PATH | OFlag::O_DIRECTORY)
                    .is_err()
            })
            .count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        renamer.join().unwrap();
        assert_eq!(failures, 0, "lookups of /up/etc/ failed while renames ran");
    }
}
