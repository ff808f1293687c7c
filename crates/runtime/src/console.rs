//! Terminals for containers whose `process.terminal` is true, the way runc hands them out.
//!
//! The pseudo-terminal is opened inside the container, after `/dev/pts` (a new devpts
//! instance) is mounted, so the slave is `/dev/pts/N` of the container's own devpts and
//! `tty` works there. The slave becomes the init's controlling terminal and its stdin, stdout
//! and stderr (and is bind-mounted on `/dev/console`); the master goes to whoever listens on
//! the console socket, sent as `SCM_RIGHTS` over a unix stream socket (conmon, containerd's
//! shim and `recvtty` all read it that way). [`connect`] is the runner's side, [`recv_master`]
//! the listener's, and [`send_fd`] the transfer itself.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
    connect as sock_connect, recvmsg, sendmsg, socket,
};

/// Errors setting up a container's terminal or talking to the console socket.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Connecting to the console socket failed.
    #[error("connecting to console socket {path}")]
    Connect {
        /// The socket.
        path: PathBuf,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A pty or socket operation failed.
    #[error("{what}")]
    Sys {
        /// The operation.
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// The peer sent no file descriptor.
    #[error("the console socket peer sent no file descriptor")]
    NoFd,
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ConsoleError {
    let what = what.into();
    move |source| ConsoleError::Sys { what, source }
}

/// Connects to the listener at `path` (runner side, before the fork). The socket is
/// close-on-exec, so the container's command never inherits it.
pub fn connect(path: &Path) -> Result<OwnedFd, ConsoleError> {
    let err = |source| ConsoleError::Connect {
        path: path.to_path_buf(),
        source,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(err)?;
    let addr = UnixAddr::new(path).map_err(err)?;
    sock_connect(fd.as_raw_fd(), &addr).map_err(err)?;
    Ok(fd)
}

/// Sends `fd` over the unix socket `socket` with `name` as the message body (runc sends the
/// terminal's name along with the master).
pub fn send_fd(socket: BorrowedFd<'_>, fd: BorrowedFd<'_>, name: &str) -> Result<(), ConsoleError> {
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let body = if name.is_empty() { "pty" } else { name };
    let iov = [IoSlice::new(body.as_bytes())];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(sys("sending the pty master over the console socket"))?;
    Ok(())
}

/// Receives one file descriptor sent with [`send_fd`] (the listener's side): the fd and the
/// message body (the terminal's name).
pub fn recv_master(socket: BorrowedFd<'_>) -> Result<(OwnedFd, String), ConsoleError> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(sys("receiving from the console socket"))?;
    let mut fd = None;
    for c in msg.cmsgs().map_err(sys("reading the control message"))? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            fd = fds.first().copied();
        }
    }
    let len = msg.bytes;
    let fd = fd.ok_or(ConsoleError::NoFd)?;
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    // SAFETY: recvmsg handed us this descriptor; nothing else owns it.
    Ok((unsafe { OwnedFd::from_raw_fd(fd) }, name))
}

/// Container side, after the root filesystem is in place: opens a pty on the container's
/// devpts, sends the master over `socket`, and makes the slave this process's controlling
/// terminal and stdio. `owner` becomes the slave's owner (the process's uid).
pub(crate) fn setup_in_container(
    socket: BorrowedFd<'_>,
    owner: u32,
    size: Option<(u16, u16)>,
) -> Result<(), ConsoleError> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(sys("opening /dev/ptmx in the container"))?;
    nix::pty::grantpt(&master).map_err(sys("grantpt"))?;
    nix::pty::unlockpt(&master).map_err(sys("unlockpt"))?;
    let name = nix::pty::ptsname_r(&master).map_err(sys("ptsname"))?;
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize struct, which `ws` is, from an open pty.
        if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
            return Err(sys("setting the terminal size")(nix::Error::last()));
        }
    }
    let slave = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(sys(format!("opening {name}")))?;
    nix::unistd::fchown(&slave, Some(nix::unistd::Uid::from_raw(owner)), None)
        .map_err(sys(format!("chown {name}")))?;
    mount_console(&name)?;
    send_fd(socket, master.as_fd(), &name)?;
    drop(master);
    nix::unistd::setsid().map_err(sys("setsid"))?;
    // SAFETY: TIOCSCTTY takes an integer argument; the slave is an open terminal.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(sys(format!("making {name} the controlling terminal"))(
            nix::Error::last(),
        ));
    }
    for target in 0..3 {
        // SAFETY: replaces this process's stdio with the open slave, on purpose.
        if unsafe { libc::dup2(slave.as_raw_fd(), target) } < 0 {
            return Err(sys(format!("dup2 {name} to fd {target}"))(
                nix::Error::last(),
            ));
        }
    }
    Ok(())
}

/// `/dev/console` is the container's terminal too (what runc gives the init).
fn mount_console(slave: &str) -> Result<(), ConsoleError> {
    let console = Path::new("/dev/console");
    if !console.exists() {
        nix::fcntl::open(
            console,
            OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .map_err(sys("creating /dev/console"))?;
    }
    nix::mount::mount(
        Some(slave),
        console,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys(format!("bind-mounting {slave} on /dev/console")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_crosses_a_socket_pair_with_its_name() {
        let (a, b) = nix::sys::socket::socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send_fd(a.as_fd(), w.as_fd(), "/dev/pts/7").unwrap();
        drop(w);
        let (got, name) = recv_master(b.as_fd()).unwrap();
        assert_eq!(name, "/dev/pts/7");
        nix::unistd::write(&got, b"x").unwrap();
        let mut buf = [0u8; 1];
        nix::unistd::read(&r, &mut buf).unwrap();
        assert_eq!(&buf, b"x");
    }

    #[test]
    fn connecting_to_a_missing_socket_names_it() {
        let e = connect(Path::new("/nonexistent/console.sock")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/console.sock"), "{e}");
    }
}
