//! The attach directory: private to its owner, holding the supervisor's socket, the
//! sockets of clients waiting for a start, and the lock that orders the two.
//!
//! A unix socket's path must fit in 108 bytes (`sun_path`), and a state directory under a
//! long temporary path does not. Sockets are therefore bound and connected through the
//! directory's own descriptor, as `/proc/self/fd/N/NAME`, whatever the directory's path.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, UnixAddr, bind, connect, listen, socket,
};

/// The directories: the owner's only (the socket gives control of the container's stdin).
pub(crate) const DIR_MODE: u32 = 0o700;

/// The sockets and the lock file: the owner's only.
pub(crate) const SOCKET_MODE: u32 = 0o600;

/// The supervisor's socket.
pub(crate) const SOCKET: &str = "attach";

/// Where clients wait for the next start, one socket each.
pub(crate) const PENDING: &str = "pending";

/// Held while the supervisor binds its socket or takes the waiting clients, and while a
/// client decides between connecting and waiting: so no client waits for a start that
/// has already taken the others.
const LOCK: &str = "lock";

/// An open attach directory.
#[derive(Debug)]
pub(crate) struct Dir {
    path: PathBuf,
    /// `O_PATH`: the handle sockets are reached through.
    fd: OwnedFd,
}

impl Dir {
    /// Opens `path`, creating it and `pending/` (`0700`, and its missing parents too) when
    /// new, and narrowing them to `0700` when they are wider.
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        for dir in [path.to_path_buf(), path.join(PENDING)] {
            DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(&dir)?;
            let meta = std::fs::symlink_metadata(&dir)?;
            if !meta.is_dir() {
                return Err(io::Error::other(format!(
                    "{} is not a directory",
                    dir.display()
                )));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(DIR_MODE))?;
            }
        }
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC
                | nix::fcntl::OFlag::O_NOFOLLOW,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        Ok(Dir {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// `NAME` inside the directory, short enough for `sun_path` whatever the directory's
    /// own path.
    pub(crate) fn short(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}/{name}", self.fd.as_raw_fd()))
    }

    /// The real path of `name` (for messages and for removing files).
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory's path.
    pub(crate) fn root(&self) -> &Path {
        &self.path
    }

    /// Takes the directory's lock, released when the guard is dropped.
    pub(crate) fn lock(&self) -> io::Result<File> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(SOCKET_MODE)
            .open(self.short(LOCK))?;
        file.lock()?;
        Ok(file)
    }

    /// A listening socket at `name` (`0600`), replacing a stale one left there.
    pub(crate) fn listen(&self, name: &str, backlog: i32) -> io::Result<OwnedFd> {
        let fd = seqpacket(true)?;
        match std::fs::remove_file(self.short(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let addr = UnixAddr::new(&self.short(name)).map_err(io::Error::from)?;
        bind(fd.as_raw_fd(), &addr).map_err(io::Error::from)?;
        // bind made it as the umask allowed; nobody else can reach it meanwhile, as the
        // directory is the owner's only.
        std::fs::set_permissions(
            self.short(name),
            std::fs::Permissions::from_mode(SOCKET_MODE),
        )?;
        let backlog = Backlog::new(backlog).map_err(io::Error::from)?;
        listen(&fd, backlog).map_err(io::Error::from)?;
        Ok(fd)
    }

    /// A socket connected to `name` (close-on-exec; non-blocking when asked: a full
    /// backlog is then `EAGAIN` instead of a wait).
    pub(crate) fn connect(&self, name: &str, nonblocking: bool) -> io::Result<OwnedFd> {
        let fd = seqpacket(nonblocking)?;
        let addr = UnixAddr::new(&self.short(name)).map_err(io::Error::from)?;
        connect(fd.as_fd().as_raw_fd(), &addr).map_err(io::Error::from)?;
        Ok(fd)
    }

    /// Removes file `name`; a missing one is fine.
    pub(crate) fn remove(&self, name: &str) {
        let _ = std::fs::remove_file(self.short(name));
    }
}

/// A close-on-exec SOCK_SEQPACKET unix socket.
pub(crate) fn seqpacket(nonblocking: bool) -> io::Result<OwnedFd> {
    let mut flags = SockFlag::SOCK_CLOEXEC;
    if nonblocking {
        flags |= SockFlag::SOCK_NONBLOCK;
    }
    socket(AddressFamily::Unix, SockType::SeqPacket, flags, None).map_err(io::Error::from)
}

/// A name for a waiting client's socket under `pending/`, unique on this host.
pub(crate) fn pending_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{PENDING}/{}-{}-{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A directory whose path alone is longer than `sun_path` allows.
    pub(crate) fn long_dir(base: &Path) -> PathBuf {
        let long = base
            .join("a".repeat(60))
            .join("b".repeat(60))
            .join("attach");
        assert!(long.as_os_str().len() > 120);
        long
    }

    #[test]
    fn sockets_in_a_long_path_are_reached_through_the_directory() {
        let base = tempfile::tempdir().unwrap();
        let path = long_dir(base.path());
        let dir = Dir::open(&path).unwrap();
        let listener = dir.listen(SOCKET, 4).unwrap();
        let client = dir.connect(SOCKET, false).unwrap();
        let accepted = nix::sys::socket::accept(listener.as_raw_fd()).unwrap();
        assert!(accepted >= 0);
        drop(client);
        // SAFETY: accept returned a new descriptor that nothing else owns.
        drop(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(accepted) });
        for (p, mode) in [
            (path.clone(), DIR_MODE),
            (path.join(PENDING), DIR_MODE),
            (path.join(SOCKET), SOCKET_MODE),
        ] {
            let got = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(got, mode, "{}", p.display());
        }
    }

    #[test]
    fn a_directory_left_wide_is_narrowed() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("wide");
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        Dir::open(&path).unwrap();
        let got = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(got, DIR_MODE);
    }
}
