//! The container side: a pty from the container's own devpts, made the controlling
//! terminal and stdio of the calling process, its master sent to the runner.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};

use super::{TerminalError, WindowSize, set_window_size, sys};

/// A connected pair for passing the master: (runner's end, container's end), both
/// close-on-exec.
pub(crate) fn socket_pair() -> Result<(OwnedFd, OwnedFd), TerminalError> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(sys("creating the console socket pair"))
}

/// Runs in the container's process before it drops privileges: opens a pty through the
/// container's `/dev/ptmx`, sizes it (so the command's first look at it is right), gives the
/// slave to `uid`, sends the master over `socket`, then starts a new session with the slave
/// as controlling terminal and stdin, stdout, stderr.
pub(crate) fn attach_new_pty(
    socket: BorrowedFd<'_>,
    uid: u32,
    size: Option<WindowSize>,
) -> Result<(), TerminalError> {
    let master = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open("/dev/ptmx")
        .map_err(|source| TerminalError::Io {
            what: "opening /dev/ptmx in the container".into(),
            source,
        })?;
    let master = OwnedFd::from(master);
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } != 0 {
        return Err(sys("unlocking the pty")(nix::Error::last()));
    }
    if let Some(size) = size {
        set_window_size(&master, size)?;
    }
    // The slave through the master itself, not a path the container's files could redirect.
    // SAFETY: TIOCGPTPEER takes open flags and returns a new descriptor or -1.
    let slave = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if slave < 0 {
        return Err(sys("opening the pty slave")(nix::Error::last()));
    }
    // SAFETY: the kernel just returned this descriptor to us.
    let slave = unsafe { OwnedFd::from_raw_fd(slave as RawFd) };
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(uid)), None)
        .map_err(sys(format!("giving the pty slave to uid {uid}")))?;
    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) } != 0 {
        return Err(sys("reading the pty number")(nix::Error::last()));
    }
    crate::console::send_fd(socket, master.as_fd(), &format!("/dev/pts/{number}"))?;
    drop(master);
    nix::unistd::setsid().map_err(sys("starting a new session"))?;
    // SAFETY: TIOCSCTTY takes an int argument (0: do not steal from another session).
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(sys("making the pty the controlling terminal")(
            nix::Error::last(),
        ));
    }
    for target in 0..3 {
        // SAFETY: dup2 onto the standard descriptors, which this process owns; a copy
        // onto itself keeps close-on-exec, so clear it in every case.
        let ok = unsafe {
            libc::dup2(slave.as_raw_fd(), target) >= 0 && libc::fcntl(target, libc::F_SETFD, 0) == 0
        };
        if !ok {
            return Err(sys(format!("making the pty descriptor {target}"))(
                nix::Error::last(),
            ));
        }
    }
    if slave.as_raw_fd() <= 2 {
        // It is one of the standard descriptors now: keep it open.
        let _ = std::os::fd::IntoRawFd::into_raw_fd(slave);
    }
    Ok(())
}
