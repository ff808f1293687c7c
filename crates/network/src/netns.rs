//! Named network namespaces, made the way `ip netns add` makes them: a thread
//! unshares its network namespace and bind-mounts `/proc/thread-self/ns/net`
//! onto a file, which keeps the namespace alive with no process in it. The
//! same thread brings `lo` up first, so a new namespace needs no `loopback`
//! plugin run (2.6 ms each for `ADD` and `DEL`).
//!
//! The directory holding the files is made a shared mount point (as
//! `/run/netns` is), so that removing a namespace also reaches the copies
//! that mount namespaces created meanwhile hold.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use crate::error::{Error, Result};

/// Creates a network namespace and mounts it at `dir/name`. Fails if that file exists.
/// `dir` is made (or tightened to) owner-only: which containers exist, and handles on
/// their namespaces, are nobody else's business.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let fail = |what, source| Error::Netns {
        path: path.clone(),
        what,
        source,
    };
    crate::error::private_dir(dir, crate::error::PRIVATE_DIR)?;
    make_shared_mount_point(dir).map_err(|e| fail("making its directory a shared mount", e))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| fail("creating the mount point", e))?;
    let target = path.clone();
    // A new thread: unsharing changes the calling thread's namespace, and this one must
    // not be left inside; the thread ends right after the bind mount.
    let made = std::thread::spawn(move || unshare_and_mount(&target))
        .join()
        .unwrap_or_else(|_| Err(("unsharing", io::Error::other("the thread panicked"))));
    if let Err((what, e)) = made {
        let _ = std::fs::remove_file(&path);
        return Err(fail(what, e));
    }
    Ok(path)
}

/// Run on a thread of its own: a new network namespace with `lo` up, kept
/// alive by a bind mount on `target`. Errors name the step.
fn unshare_and_mount(target: &Path) -> std::result::Result<(), (&'static str, io::Error)> {
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| ("unsharing", e.into()))?;
    loopback_up().map_err(|e| ("bringing up lo", e))?;
    mount(
        Some("/proc/thread-self/ns/net"),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| ("bind-mounting", e.into()))
}

/// Brings `lo` up in the calling thread's network namespace, as
/// `ip link set lo up` does.
fn loopback_up() -> io::Result<()> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero ifreq is valid (empty name, zero flags).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (to, from) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *to = *from as libc::c_char;
    }
    // SAFETY: `request` is an ifreq naming lo; SIOCGIFFLAGS writes its flags member.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS just set the flags member of the union.
    unsafe { request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS reads the name and flags.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `target` (a new file) refer to the namespace mounted at `source`, with a bind
/// mount: a second name for the same namespace, which outlives the first one's removal.
pub(crate) fn bind(source: &Path, target: &Path) -> Result<()> {
    let fail = |what, source| Error::Netns {
        path: target.to_path_buf(),
        what,
        source,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
        .map_err(|e| fail("creating the mount point", e))?;
    if let Err(e) = mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = std::fs::remove_file(target);
        return Err(fail("bind-mounting", e.into()));
    }
    Ok(())
}

/// Unmounts and deletes a namespace file. A missing file is not an error.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Netns {
                path: path.into(),
                what: "unmounting",
                source: e.into(),
            });
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Netns {
            path: path.into(),
            what: "deleting",
            source: e,
        }),
    }
}

/// True when `path` is a mounted namespace file (an `nsfs` mount).
pub fn is_mounted(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

use nix::sys::statfs::NSFS_MAGIC;

fn make_shared_mount_point(dir: &Path) -> io::Result<()> {
    // Check-and-bind under a lock on the directory: two creators must not both bind it.
    let guard = std::fs::File::open(dir)?;
    guard.lock()?;
    if !is_mount_point(dir)? {
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
    }
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// True when `dir` is the mount point of some mount in this thread's namespace.
fn is_mount_point(dir: &Path) -> io::Result<bool> {
    basic_mountinfo::is_mount_point(dir).map_err(io::Error::other)
}
