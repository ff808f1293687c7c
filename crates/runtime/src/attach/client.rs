//! The client's side: connecting to a supervisor, or waiting under `pending/` for the
//! next start, then reading output and sending input.

use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, Shutdown, getsockopt, recv, send, shutdown, sockopt};

use super::dir::{Dir, SOCKET};
use super::{AttachError, Event, Request, wire};
use crate::logfile::Stream;
use crate::terminal::WindowSize;

/// An attachment to a container's supervisor.
///
/// Cloning gives another handle on the same attachment, so that one thread can read
/// ([`Client::recv`]) while others send input, resize or signal; every method takes
/// `&self`. [`Client::shutdown`] ends it from any thread. The connection closes when the
/// last handle is dropped; a client still waiting for a start then stops waiting.
#[derive(Debug, Clone)]
pub struct Client {
    conn: Arc<Conn>,
}

#[derive(Debug)]
struct Conn {
    dir: PathBuf,
    request: Request,
    socket: OnceLock<OwnedFd>,
    /// Until the start connects to us: our listening socket under `pending/`.
    waiting: Mutex<Option<Waiting>>,
    /// Written by [`Client::shutdown`] to wake a thread waiting for the start.
    cancel: (OwnedFd, OwnedFd),
    cancelled: AtomicBool,
    /// The supervisor's hello flags, once read; [`NO_HELLO`] until then.
    hello: AtomicU8,
}

const NO_HELLO: u8 = 0xff;

#[derive(Debug)]
struct Waiting {
    dir: Dir,
    name: String,
    listener: OwnedFd,
}

impl Client {
    /// Connects to the supervisor serving at `dir` now.
    pub(crate) fn connect(dir: &Path, request: Request) -> Result<Client, AttachError> {
        let opened = Dir::open(dir).map_err(io_err(dir, "opening the attach directory"))?;
        let fd = connect_live(&opened)?;
        Client::established(dir, request, fd)
    }

    /// Connects to the supervisor serving at `dir`, or, when none does, waits under
    /// `pending/` for the next start to connect to us.
    pub(crate) fn connect_or_wait(dir: &Path, request: Request) -> Result<Client, AttachError> {
        let opened = Dir::open(dir).map_err(io_err(dir, "opening the attach directory"))?;
        let lock = opened
            .lock()
            .map_err(io_err(dir, "locking the attach directory"))?;
        match connect_live(&opened) {
            Ok(fd) => {
                drop(lock);
                Client::established(dir, request, fd)
            }
            Err(AttachError::NotServing { .. }) => {
                let name = super::dir::pending_name();
                let listener = opened
                    .listen(&name, 1)
                    .map_err(io_err(dir, "creating a socket to wait for the start"))?;
                drop(lock);
                let conn = Conn::new(dir, request, None)?;
                *conn.waiting.lock().unwrap_or_else(|p| p.into_inner()) = Some(Waiting {
                    dir: opened,
                    name,
                    listener,
                });
                Ok(Client {
                    conn: Arc::new(conn),
                })
            }
            Err(e) => Err(e),
        }
    }

    fn established(dir: &Path, request: Request, fd: OwnedFd) -> Result<Client, AttachError> {
        let conn = Conn::new(dir, request, Some(fd))?;
        conn.greet()?;
        Ok(Client {
            conn: Arc::new(conn),
        })
    }

    /// The next thing from the container: output (of the streams asked for), then its
    /// exit; `None` once the attachment is over (after the exit, or when the supervisor
    /// closed it, or after [`Client::shutdown`]). Blocks, waiting first for the start when
    /// the client waits for one.
    pub fn recv(&self) -> Result<Option<Event>, AttachError> {
        let mut buf = vec![0u8; wire::MAX_PACKET];
        let mut reset = false;
        loop {
            let Some(fd) = self.conn.socket()? else {
                return Ok(None);
            };
            let n = match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_CMSG_CLOEXEC) {
                Ok(0) => return Ok(None),
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                // The supervisor closed its end before reading everything we sent (our
                // hello, input). The kernel reports that ahead of what the supervisor sent
                // before closing (the output, the exit), which is still queued: read on.
                // The error is reported once.
                Err(Errno::ECONNRESET) if !reset => {
                    reset = true;
                    continue;
                }
                Err(Errno::ECONNRESET | Errno::EPIPE) => return Ok(None),
                Err(e) => return Err(self.conn.sys("reading from the supervisor")(e)),
            };
            let payload = &buf[1..n];
            let request = self.conn.request;
            match buf[0] {
                wire::SERVER_HELLO => {
                    if let Some(flags) = wire::parse_hello(payload) {
                        self.conn.hello.store(flags, Ordering::SeqCst);
                    }
                }
                wire::STDOUT if request.stdout => {
                    return Ok(Some(Event::Output(Stream::Stdout, payload.to_vec())));
                }
                wire::STDERR if request.stderr => {
                    return Ok(Some(Event::Output(Stream::Stderr, payload.to_vec())));
                }
                wire::EXIT => {
                    if let Some(code) = wire::parse_i32(payload) {
                        return Ok(Some(Event::Exit(code)));
                    }
                }
                // Output not asked for (sent before our hello was read), or a newer kind.
                _ => {}
            }
        }
    }

    /// Sends `bytes` to the container's stdin (when it was asked for, and the container
    /// reads what clients send; otherwise the supervisor drops them). Blocks while the
    /// container does not read.
    pub fn send_stdin(&self, bytes: &[u8]) -> Result<(), AttachError> {
        for chunk in bytes.chunks(wire::MAX_PAYLOAD) {
            self.conn.send(&wire::packet(wire::STDIN, chunk))?;
        }
        Ok(())
    }

    /// This client's input ended: with docker's `StdinOnce` and no terminal the
    /// container's stdin is closed; otherwise the supervisor ends this attachment.
    pub fn close_stdin(&self) -> Result<(), AttachError> {
        self.conn.send(&[wire::CLOSE_STDIN])
    }

    /// Resizes the container's terminal (nothing without one).
    pub fn resize(&self, size: WindowSize) -> Result<(), AttachError> {
        self.conn.send(&wire::resize(size))
    }

    /// Sends `signal` to the container's init.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<(), AttachError> {
        self.conn.send(&wire::with_i32(wire::SIGNAL, signal as i32))
    }

    /// Ends the attachment, from any thread: [`Client::recv`] returns `None` and sends
    /// fail. The container goes on (with `StdinOnce` and no terminal, a client with stdin
    /// leaving closes the container's stdin, as docker's does).
    pub fn shutdown(&self) {
        self.conn.cancel();
    }

    /// What the supervisor said of the container once its hello was read: whether its
    /// stdio is a terminal, and whether it reads what clients send.
    pub fn container_has(&self) -> Option<(bool, bool)> {
        match self.conn.hello.load(Ordering::SeqCst) {
            NO_HELLO => None,
            flags => Some((flags & wire::HAS_TTY != 0, flags & wire::HAS_STDIN != 0)),
        }
    }

    /// Whether this client still waits for the container's start.
    pub fn is_waiting(&self) -> bool {
        self.conn.socket.get().is_none()
    }
}

/// A connection to the supervisor's socket, or [`AttachError::NotServing`] when no
/// supervisor listens there.
fn connect_live(dir: &Dir) -> Result<OwnedFd, AttachError> {
    match dir.connect(SOCKET, false) {
        Ok(fd) => {
            check_peer(&fd, dir.root())?;
            Ok(fd)
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ECONNREFUSED)) => {
            Err(AttachError::NotServing {
                dir: dir.root().to_path_buf(),
            })
        }
        Err(e) => Err(io_err(dir.root(), "connecting to the supervisor")(e)),
    }
}

/// The other end must run as this user (the directory allows no one else).
fn check_peer(fd: &OwnedFd, dir: &Path) -> Result<(), AttachError> {
    let creds = getsockopt(fd, sockopt::PeerCredentials)
        .map_err(|e| io_err(dir, "reading the supervisor's credentials")(e.into()))?;
    if creds.uid() != nix::unistd::geteuid().as_raw() {
        return Err(AttachError::Foreign {
            dir: dir.to_path_buf(),
            uid: creds.uid(),
        });
    }
    Ok(())
}

impl Conn {
    fn new(dir: &Path, request: Request, socket: Option<OwnedFd>) -> Result<Conn, AttachError> {
        let cancel =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| io_err(dir, "creating a pipe")(e.into()))?;
        let cell = OnceLock::new();
        if let Some(fd) = socket {
            let _ = cell.set(fd);
        }
        Ok(Conn {
            dir: dir.to_path_buf(),
            request,
            socket: cell,
            waiting: Mutex::new(None),
            cancel,
            cancelled: AtomicBool::new(false),
            hello: AtomicU8::new(NO_HELLO),
        })
    }

    /// Our hello: what this client attaches.
    fn greet(&self) -> Result<(), AttachError> {
        self.send(&self.hello_packet())
    }

    fn hello_packet(&self) -> Vec<u8> {
        let r = self.request;
        let flags = if r.stdin { wire::WANTS_STDIN } else { 0 }
            | if r.stdout { wire::WANTS_STDOUT } else { 0 }
            | if r.stderr { wire::WANTS_STDERR } else { 0 };
        wire::hello(wire::HELLO, flags)
    }

    /// The connection, waiting for the start first when it has not come; `None` once
    /// shut down.
    fn socket(&self) -> Result<Option<BorrowedFd<'_>>, AttachError> {
        if let Some(fd) = self.socket.get() {
            return Ok(Some(fd.as_fd()));
        }
        let mut waiting = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        // Another thread may have taken the start while this one waited for the lock.
        if let Some(fd) = self.socket.get() {
            return Ok(Some(fd.as_fd()));
        }
        let Some(w) = waiting.as_ref() else {
            return Ok(None);
        };
        let Some(fd) = self.accept(w)? else {
            return Ok(None);
        };
        w.dir.remove(&w.name);
        *waiting = None;
        // Our hello goes first, before the connection is published: another thread's
        // input sent ahead of it would reach a supervisor that does not yet know this
        // client attaches stdin, and be dropped (with the close of the input).
        match send_on(fd.as_raw_fd(), &self.hello_packet()) {
            // The start is over already: what it sent is still there to read.
            Ok(()) | Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) => {}
            Err(e) => return Err(self.sys("writing to the supervisor")(e)),
        }
        let _ = self.socket.set(fd);
        if self.cancelled.load(Ordering::SeqCst) {
            self.shut();
        }
        drop(waiting);
        Ok(self.socket.get().map(|fd| fd.as_fd()))
    }

    /// Waits for the supervisor's connection to our waiting socket, or a shutdown.
    fn accept(&self, w: &Waiting) -> Result<Option<OwnedFd>, AttachError> {
        loop {
            if self.cancelled.load(Ordering::SeqCst) {
                return Ok(None);
            }
            let mut fds = [
                libc::pollfd {
                    fd: w.listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: self.cancel.0.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: a valid array of two pollfd over descriptors we own.
            if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
                match Errno::last() {
                    Errno::EINTR => continue,
                    e => return Err(self.sys("waiting for the container's start")(e)),
                }
            }
            if fds[1].revents != 0 {
                return Ok(None);
            }
            match nix::sys::socket::accept4(
                w.listener.as_raw_fd(),
                nix::sys::socket::SockFlag::SOCK_CLOEXEC,
            ) {
                Ok(fd) => {
                    // SAFETY: accept4 returned a new descriptor that nothing else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    // Non-blocking was the listener's: reads and writes here wait.
                    set_blocking(fd.as_raw_fd());
                    check_peer(&fd, &self.dir)?;
                    return Ok(Some(fd));
                }
                Err(Errno::EINTR | Errno::EAGAIN | Errno::ECONNABORTED) => continue,
                Err(e) => return Err(self.sys("accepting the supervisor's connection")(e)),
            }
        }
    }

    fn send(&self, packet: &[u8]) -> Result<(), AttachError> {
        let Some(fd) = self.socket()? else {
            return Err(AttachError::Closed);
        };
        match send_on(fd.as_raw_fd(), packet) {
            Ok(()) => Ok(()),
            Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN) => Err(AttachError::Closed),
            Err(e) => Err(self.sys("writing to the supervisor")(e)),
        }
    }

    fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        let _ = nix::unistd::write(&self.cancel.1, b"x");
        self.shut();
    }

    fn shut(&self) {
        if let Some(fd) = self.socket.get() {
            let _ = shutdown(fd.as_raw_fd(), Shutdown::Both);
        }
    }

    fn sys(&self, what: &'static str) -> impl FnOnce(Errno) -> AttachError + '_ {
        move |e| io_err(&self.dir, what)(e.into())
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let waiting = self.waiting.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = waiting.take() {
            w.dir.remove(&w.name);
        }
    }
}

/// Sends one whole message on `fd`, retrying when interrupted.
fn send_on(fd: RawFd, packet: &[u8]) -> Result<(), Errno> {
    loop {
        match send(fd, packet, MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn set_blocking(fd: RawFd) {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we own change only its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    }
}

fn io_err(dir: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> AttachError {
    let dir = dir.to_path_buf();
    move |source| AttachError::Io { dir, what, source }
}
