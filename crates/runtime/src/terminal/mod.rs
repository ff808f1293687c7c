//! Terminals: a pseudo-terminal for a container's process (`process.terminal = true`, docker's
//! `-t`) and the helpers the caller's side needs to put a user in front of it.
//!
//! The container side opens `/dev/ptmx` inside the container (so the process sees a
//! `/dev/pts/N` of its own devpts instance), makes the slave its controlling terminal and
//! stdin/stdout/stderr, and hands the master to the caller over a socket. The caller gets the
//! master as a [`Console`]: [`Console::relay`] copies the user's input to it and its output
//! to the user until the process exits, following window size changes; [`RawMode`] puts the
//! user's terminal in raw mode so that keys such as Ctrl-C reach the container's terminal
//! (where they become SIGINT for its foreground process group) and restores it afterwards.
//!
//! `docker run -it`, in a few lines: the container sends its terminal over a socket pair
//! during [`Container::start`](crate::Container::start); once that has returned (the
//! container's processes are forked, see [the fork rule](crate::fork_rule)) the terminal is
//! relayed until the container's init exits, then the container is waited for.
//!
//! ```no_run
//! use basic_runtime::terminal::{ConsoleSocket, RawMode};
//! use basic_runtime::{Container, default_spec};
//!
//! let mut spec = default_spec(vec!["sh".into()], vec![], "/")?;
//! spec.process_mut().as_mut().unwrap().set_terminal(Some(true));
//! let (socket, container_end) = ConsoleSocket::pair()?;
//! let container = Container::builder("demo", spec, "/path/to/rootfs")
//!     .console_socket_fd(container_end)
//!     // With a terminal, keys signal the container (docker's --sig-proxy does not apply
//!     // to -t): SIGTERM or SIGHUP end this process, and the container with its terminal.
//!     .forward_signals(false)
//!     .build()?;
//! // Raw until dropped: also on a panic, and on SIGTERM, SIGHUP, SIGINT, SIGQUIT.
//! let raw = RawMode::enable(std::io::stdin())?;
//! let running = container.start()?;
//! // stdin -> container, container -> stdout, window size kept in step, until it exits.
//! let console = socket.receive()?.watch_process(running.pid())?;
//! if let Err(e) = console.relay_stdio(true) {
//!     eprintln!("terminal: {e}");
//! }
//! let status = running.wait();
//! drop(raw);
//! std::process::exit(status?.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! `exec -it` is the same with [`Exec`](crate::exec::Exec), whose foreground run hands the
//! [`Console`] to a closure instead (see [`crate::exec`]).

mod child;
mod raw;
pub(crate) mod relay;

pub(crate) use child::attach_new_pty;
pub(crate) use child::socket_pair;
pub use raw::RawMode;

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Errors setting up or driving a terminal; each says which operation on what failed.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    /// A syscall on a terminal, socket or pipe failed.
    #[error("{what}")]
    Sys {
        /// The operation and its object.
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// Opening a terminal device failed.
    #[error("{what}")]
    Io {
        /// The operation and its path.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The other end of a console socket closed without sending a descriptor: the
    /// container's process ended (or failed) before its terminal was ready.
    #[error("the container's process ended before sending its terminal")]
    NoMaster,
    /// Passing the terminal over the console socket failed.
    #[error("passing the terminal")]
    Console(#[from] crate::console::ConsoleError),
    /// [`RawMode`] is on for a terminal already; this process can restore only one.
    #[error("raw mode is already on for another terminal in this process")]
    RawModeActive,
}

pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> TerminalError {
    let what = what.into();
    move |source| TerminalError::Sys { what, source }
}

/// Rows and columns of a terminal, as `stty size` prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

impl From<WindowSize> for oci_spec::runtime::Box {
    /// As `process.consoleSize` (height and width).
    fn from(size: WindowSize) -> Self {
        oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(size.rows))
            .width(u64::from(size.cols))
            .build()
            // Every field has a value: the builder cannot fail.
            .unwrap_or_default()
    }
}

/// The window size of terminal `fd`, or `None` when `fd` is not a terminal.
pub fn window_size(fd: impl AsFd) -> Option<WindowSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`.
    let ret = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    (ret == 0).then_some(WindowSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Sets the window size of terminal `fd`; the kernel sends SIGWINCH to its foreground
/// process group when the size changes.
pub fn set_window_size(fd: impl AsFd, size: WindowSize) -> Result<(), TerminalError> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from `ws`.
    if unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(sys(format!(
            "setting the terminal size to {}x{}",
            size.rows, size.cols
        ))(nix::Error::last()));
    }
    Ok(())
}

/// Whether `fd` is a terminal.
pub fn is_terminal(fd: impl AsFd) -> bool {
    nix::unistd::isatty(fd).unwrap_or(false)
}

/// The caller's end of a container process's terminal: the pty master, and a handle on the
/// process so that [`Console::relay`] knows when it has exited.
#[derive(Debug)]
pub struct Console {
    master: OwnedFd,
    process: Option<OwnedFd>,
}

impl Console {
    /// A console for an already open pty master.
    pub fn from_master(master: OwnedFd) -> Self {
        Console {
            master,
            process: None,
        }
    }

    /// Makes [`Console::relay`] end once process `pid` has exited (after draining what it
    /// wrote), even when a process it left behind keeps the terminal open. `pid` must not
    /// have been reaped yet. Without it the relay ends when every holder of the terminal
    /// has closed it.
    pub fn watch_process(mut self, pid: i32) -> Result<Self, TerminalError> {
        let fd = pidfd_open(pid).map_err(sys(format!("pidfd_open({pid})")))?;
        self.process = Some(fd);
        Ok(self)
    }

    /// [`Console::watch_process`] for a process that is not this process's child: its
    /// parent (a subreaper such as conmon) may already have reaped it, and then there is
    /// nothing left to watch; the relay ends when every holder has closed the terminal.
    pub(crate) fn watch_unless_gone(mut self, pid: i32) -> Result<Self, TerminalError> {
        match pidfd_open(pid) {
            Ok(fd) => self.process = Some(fd),
            Err(nix::Error::ESRCH) => {}
            Err(e) => return Err(sys(format!("pidfd_open({pid})"))(e)),
        }
        Ok(self)
    }

    /// The pty master.
    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// The pty master, for a caller that relays by itself or passes it on (e.g. to a
    /// console socket, with [`crate::console::send_fd`]).
    pub fn into_master(self) -> OwnedFd {
        self.master
    }

    /// The terminal's current window size.
    pub fn size(&self) -> Result<WindowSize, TerminalError> {
        window_size(&self.master)
            .ok_or_else(|| sys("reading the size of the container's terminal")(nix::Error::last()))
    }

    /// Resizes the container's terminal (its foreground process group gets SIGWINCH).
    pub fn set_size(&self, size: WindowSize) -> Result<(), TerminalError> {
        set_window_size(&self.master, size)
    }

    /// Gives the container's terminal the size of terminal `user`; does nothing when
    /// `user` is not a terminal.
    pub fn copy_size_from(&self, user: impl AsFd) -> Result<(), TerminalError> {
        match window_size(user) {
            Some(size) => self.set_size(size),
            None => Ok(()),
        }
    }

    /// Copies `input` (when given) to the container's terminal and the terminal's output to
    /// `output`, until the process has exited (see [`Console::watch_process`]) or every
    /// holder of the terminal has closed it; what the process wrote before exiting is
    /// drained to `output` first. When `input` or else `output` is a terminal, its window
    /// size is copied now and again on every SIGWINCH this process receives. End of file on
    /// `input` stops copying input, not the relay.
    pub fn relay(
        &self,
        input: Option<BorrowedFd<'_>>,
        output: BorrowedFd<'_>,
    ) -> Result<(), TerminalError> {
        relay::Relay::new(self, input, output).run()
    }

    /// [`Console::relay`] between this process's stdin (when `attach_stdin`) and stdout.
    pub fn relay_stdio(&self, attach_stdin: bool) -> Result<(), TerminalError> {
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        self.relay(attach_stdin.then(|| stdin.as_fd()), stdout.as_fd())
    }
}

pub(crate) fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The caller's end of a console socket pair, for a container started with
/// [`ContainerBuilder::console_socket_fd`](crate::ContainerBuilder::console_socket_fd): the
/// container's process sends its pty master over it (see [`crate::console`]).
#[derive(Debug)]
pub struct ConsoleSocket {
    socket: OwnedFd,
}

impl ConsoleSocket {
    /// A connected pair: ours, and the end to give the container (both close-on-exec).
    pub fn pair() -> Result<(ConsoleSocket, OwnedFd), TerminalError> {
        let (ours, theirs) = socket_pair()?;
        Ok((ConsoleSocket { socket: ours }, theirs))
    }

    /// Waits for the container's terminal; [`TerminalError::NoMaster`] when every copy of
    /// the other end closed first (the container failed before its terminal was ready).
    pub fn receive(&self) -> Result<Console, TerminalError> {
        receive_master(&self.socket).map(Console::from_master)
    }

    /// In a new thread: waits for the terminal, then [`Console::relay_stdio`] until the
    /// container's processes have all closed it. Drop the container (and with it the other
    /// end of the pair) before joining, so that a container that failed before sending its
    /// terminal does not leave the thread waiting.
    ///
    /// The thread must not exist while the container's processes are forked ([the fork
    /// rule](crate::fork_rule)): call this after [`Container::start`](crate::Container::start),
    /// or relay in the caller's thread as the module's example does.
    pub fn relay_stdio_in_background(
        self,
        attach_stdin: bool,
    ) -> std::thread::JoinHandle<Result<(), TerminalError>> {
        std::thread::spawn(move || self.receive()?.relay_stdio(attach_stdin))
    }
}

/// The master sent over `socket` by the container side.
pub(crate) fn receive_master(socket: impl AsFd) -> Result<OwnedFd, TerminalError> {
    match crate::console::recv_master(socket.as_fd()) {
        Ok((master, _name)) => Ok(master),
        Err(crate::console::ConsoleError::NoFd) => Err(TerminalError::NoMaster),
        Err(e) => Err(e.into()),
    }
}
