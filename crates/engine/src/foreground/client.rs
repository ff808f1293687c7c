//! The caller's ends of an attachment (pipes, or a pty and a pipe) and relaying them
//! until the supervisor exits.

use std::fs::File;
use std::os::fd::{AsFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

use basic_runtime::signals::FORWARDED_SIGNALS;
use basic_runtime::terminal::{Console, RawMode, TerminalError, window_size};

use super::SupervisorStdio;
use super::pump::Pump;
use super::signals::SignalPipe;
use crate::error::EngineError;
use crate::paths::EnginePaths;
use crate::status;

/// How long a signal that arrived before the container's init waits between looks for it.
const PENDING_SIGNAL_RETRY: u16 = 10;

/// Why relaying failed; the container goes on regardless.
#[derive(Debug, thiserror::Error)]
pub(super) enum RelayError {
    /// Plumbing of this process failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The user's terminal could not be relayed.
    #[error("relaying the terminal")]
    Terminal(#[from] TerminalError),
}

/// The signals this process receives, passed on to a container's init (docker's
/// `--sig-proxy`).
pub(super) struct Proxy<'a> {
    paths: &'a EnginePaths,
    id: String,
    signals: SignalPipe,
}

impl<'a> Proxy<'a> {
    /// Catches the signals docker passes on, from now until dropped.
    pub(super) fn install(paths: &'a EnginePaths, id: &str) -> crate::error::Result<Proxy<'a>> {
        let signals =
            SignalPipe::install(FORWARDED_SIGNALS).map_err(|source| EngineError::Foreground {
                id: id.to_string(),
                what: "catching the signals to pass on".into(),
                source,
            })?;
        Ok(Proxy {
            paths,
            id: id.to_string(),
            signals,
        })
    }

    /// Sends `signal` to the container's init; false while it has none (not started yet,
    /// or between restarts).
    fn forward(&self, signal: Signal) -> bool {
        match status::live_init(self.paths, &self.id) {
            Some(pid) => {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
                true
            }
            None => false,
        }
    }
}

/// This process's side of an attachment.
pub(super) enum Client {
    /// Without a terminal: the supervisor's stdin (with `-i`), stdout and stderr pipes.
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// With a terminal: the master of the pty that is the supervisor's stdin and stdout,
    /// and its stderr pipe.
    Terminal {
        master: OwnedFd,
        stdin: bool,
        stderr: OwnedFd,
    },
}

impl Client {
    /// The ends for container `id`, and the supervisor's.
    pub(super) fn new(
        id: &str,
        tty: bool,
        stdin: bool,
    ) -> crate::error::Result<(Client, SupervisorStdio)> {
        let err = |what: &str| {
            let (id, what) = (id.to_string(), what.to_string());
            move |source| EngineError::Foreground { id, what, source }
        };
        let (stderr, their_stderr) = pipe().map_err(err("making the stderr pipe"))?;
        if tty {
            let (master, slave) = raw_pty().map_err(err("making the terminal"))?;
            let stdio = SupervisorStdio {
                stdin: Stdio::from(slave.try_clone().map_err(err("making the terminal"))?),
                stdout: Stdio::from(slave),
                stderr: Stdio::from(their_stderr),
                terminal: true,
                attached: true,
            };
            return Ok((
                Client::Terminal {
                    master,
                    stdin,
                    stderr,
                },
                stdio,
            ));
        }
        let (stdout, their_stdout) = pipe().map_err(err("making the stdout pipe"))?;
        let (ours_in, their_stdin) = match stdin {
            true => {
                let (read, write) = pipe().map_err(err("making the stdin pipe"))?;
                (Some(write), Stdio::from(read))
            }
            false => (None, Stdio::null()),
        };
        let stdio = SupervisorStdio {
            stdin: their_stdin,
            stdout: Stdio::from(their_stdout),
            stderr: Stdio::from(their_stderr),
            terminal: false,
            attached: true,
        };
        let client = Client::Pipes {
            stdin: ours_in,
            stdout,
            stderr,
        };
        Ok((client, stdio))
    }

    /// Relays until `supervisor` has exited and its output is copied; with `proxy`, the
    /// signals this process receives go to the container's init meanwhile. A relay that
    /// fails is reported; the container is not affected by it.
    pub(super) fn relay(self, id: &str, supervisor: &Child, proxy: Option<Proxy<'_>>) {
        let relayed = match self {
            Client::Pipes {
                stdin,
                stdout,
                stderr,
            } => relay_pipes(supervisor, stdin, [stdout, stderr], proxy),
            Client::Terminal {
                master,
                stdin,
                stderr,
            } => relay_terminal(supervisor, master, stdin, stderr),
        };
        if let Err(e) = relayed {
            tracing::warn!(
                "attached to container {}: {}",
                basic_image_store::short_id(id),
                crate::supervise::chain(&e)
            );
        }
    }
}

fn relay_pipes(
    supervisor: &Child,
    stdin: Option<OwnedFd>,
    [stdout, stderr]: [OwnedFd; 2],
    proxy: Option<Proxy<'_>>,
) -> Result<(), RelayError> {
    let pump = Pump::start(vec![(stdout, stdio(1)), (stderr, stdio(2))], None)
        .map_err(io("starting the output relay"))?;
    if let Some(pipe) = stdin {
        feed_stdin(pipe).map_err(io("starting the input relay"))?;
    }
    let waited = match &proxy {
        Some(proxy) => wait_exit(supervisor, Some(&proxy.signals), |s| proxy.forward(s)),
        None => wait_exit(supervisor, None, |_| false),
    };
    drop(proxy);
    pump.finish();
    waited
}

fn relay_terminal(
    supervisor: &Child,
    master: OwnedFd,
    stdin: bool,
    stderr: OwnedFd,
) -> Result<(), RelayError> {
    let user = std::io::stdin();
    let raw = RawMode::enable(user.as_fd())?;
    // The supervisor's own messages wait while the terminal is raw (a line break would not
    // return the cursor there), and come once it is restored.
    let hold = Arc::new(AtomicBool::new(raw.is_some()));
    let pump = Pump::start(vec![(stderr, stdio(2))], Some(hold.clone()))
        .map_err(io("starting the output relay"))?;
    let relayed = Console::from_master(master)
        .watch_process(supervisor_pid(supervisor))
        .and_then(|console| {
            let input = stdin.then(|| user.as_fd());
            console.relay(input, std::io::stdout().as_fd())
        });
    drop(raw);
    hold.store(false, Ordering::SeqCst);
    if relayed.is_err() {
        // The user's terminal is gone: the supervisor goes on without it.
        let _ = wait_exit(supervisor, None, |_| false);
    }
    pump.finish();
    relayed.map_err(RelayError::from)
}

/// Waits until the supervisor has exited, passing the signals `signals` catches to
/// `forward` (which says whether it could: one that arrives before the container's init
/// runs is passed on once it does).
fn wait_exit(
    supervisor: &Child,
    signals: Option<&SignalPipe>,
    forward: impl Fn(Signal) -> bool,
) -> Result<(), RelayError> {
    let exit = pidfd_open(supervisor_pid(supervisor)).map_err(io("watching the supervisor"))?;
    let mut pending: Vec<Signal> = Vec::new();
    loop {
        let mut fds = vec![PollFd::new(exit.as_fd(), PollFlags::POLLIN)];
        fds.extend(signals.map(|s| PollFd::new(s.fd(), PollFlags::POLLIN)));
        let timeout = match pending.is_empty() {
            true => PollTimeout::NONE,
            false => PollTimeout::from(PENDING_SIGNAL_RETRY),
        };
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(io("waiting for the supervisor")(e.into())),
        }
        let exited = fds[0].revents().is_some_and(|r| !r.is_empty());
        if exited {
            return Ok(());
        }
        if let Some(s) = signals {
            pending.extend(s.take());
        }
        pending.retain(|signal| !forward(*signal));
    }
}

/// This process's stdout (1) or stderr (2).
fn stdio(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: the standard descriptors stay open for the whole life of the process (the
    // standard library assumes the same of them).
    unsafe { BorrowedFd::borrow_raw(fd) }
}

fn supervisor_pid(child: &Child) -> i32 {
    i32::try_from(child.id()).unwrap_or(i32::MAX)
}

/// Copies this process's stdin into the supervisor's until either ends, in a thread that
/// is never joined: it may be blocked reading a terminal when the container is done.
fn feed_stdin(pipe: OwnedFd) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("attach-stdin".into())
        .spawn(move || {
            // Once the supervisor has closed its end, a write fails with EPIPE instead of
            // raising SIGPIPE, which would end this whole process.
            let mut set = nix::sys::signal::SigSet::empty();
            set.add(Signal::SIGPIPE);
            let _ = set.thread_block();
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut File::from(pipe));
        })
        .map(drop)
}

/// A pty for the supervisor: raw (the container's own terminal does the line discipline),
/// as big as the user's terminal, both ends close-on-exec (the slave is made the
/// supervisor's stdio, which clears the flag there).
fn raw_pty() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let size = window_size(std::io::stdin()).or_else(|| window_size(std::io::stdout()));
    let size = size.map(|s| nix::pty::Winsize {
        ws_row: s.rows,
        ws_col: s.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    });
    let pty = nix::pty::openpty(size.as_ref(), None)?;
    for fd in [&pty.master, &pty.slave] {
        close_on_exec(fd.as_fd())?;
    }
    let mut termios = tcgetattr(&pty.slave)?;
    cfmakeraw(&mut termios);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &termios)?;
    Ok((pty.master, pty.slave))
}

fn close_on_exec(fd: BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// A pipe as `(read end, write end)`, both close-on-exec.
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// A descriptor that becomes readable when process `pid` exits.
fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> RelayError {
    let what = what.to_string();
    move |source| RelayError::Io { what, source }
}
