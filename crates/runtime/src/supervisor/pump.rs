//! The supervisor's one loop, from a start of the container to its exit: a single thread
//! around one `poll` over everything that moves while a container runs (conmon's design).
//!
//! - the container's output: its stdout and stderr pipes, or its terminal's master, read
//!   into the json-file log line by line, echoed to this process's stdout and stderr in
//!   the foreground, and broadcast to the attach clients;
//! - its input: this process's stdin copied into the container's stdin pipe (`-i` in the
//!   foreground) or onto its terminal (`-it`), and the attach clients' input;
//! - SIGWINCH, which copies this process's terminal size onto the container's;
//! - the init's exit, through a pidfd, seen without reaping it (`waitid(WNOWAIT)`), so
//!   that whoever holds the [`Running`](crate::Running) still reaps it and cleans up.
//!
//! No thread, so the fork rule holds at every restart and the steady state costs one
//! stack. The loop ends once the init has exited and its output pipes are at end of file
//! (every process that held them is gone).

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::time::SystemTime;

use crate::attach::Session;
use crate::logfile::{LogWriter, Stream};
use crate::poll_set::PollSet;
use crate::terminal::relay::WinchWatch;

/// The longest line kept whole; longer output is logged in pieces, as docker does.
const MAX_LINE: usize = 16 * 1024;

/// Input waiting for the container, at most; past it, input is not read until the
/// container reads.
const MAX_PENDING: usize = 64 * 1024;

/// How often the exit is looked for when the kernel has no pidfd (before Linux 5.3).
const EXIT_POLL_MS: i32 = 100;

/// One stream of the container's output.
#[derive(Debug)]
pub(crate) struct Out {
    fd: OwnedFd,
    stream: Stream,
    /// The terminal's master: read until the init exits, then drained (a process left
    /// behind in the host's pid namespace may keep it open for ever).
    terminal: bool,
    line: Vec<u8>,
}

impl Out {
    /// The read end of an output pipe of the container.
    pub(crate) fn pipe(fd: OwnedFd, stream: Stream) -> io::Result<Out> {
        set_nonblocking(fd.as_raw_fd())?;
        Ok(Out {
            fd,
            stream,
            terminal: false,
            line: Vec::new(),
        })
    }

    /// The container's terminal (its master), logged as stdout.
    pub(crate) fn terminal(master: OwnedFd) -> io::Result<Out> {
        set_nonblocking(master.as_raw_fd())?;
        Ok(Out {
            fd: master,
            stream: Stream::Stdout,
            terminal: true,
            line: Vec::new(),
        })
    }
}

/// Bytes copied one way, from a descriptor we may only read when poll says so (it may be
/// the caller's, whose blocking mode is not ours to change) into one of ours.
#[derive(Debug)]
pub(crate) struct Copy {
    from: Option<OwnedFd>,
    to: Option<OwnedFd>,
    pending: Vec<u8>,
    /// End of input closes `to` (a pipe: the container sees end of file); a terminal's
    /// master stays open.
    close_at_end: bool,
}

impl Copy {
    /// Copies `from` into `to` (made non-blocking: it is the supervisor's own).
    pub(crate) fn new(from: OwnedFd, to: OwnedFd, close_at_end: bool) -> io::Result<Copy> {
        set_nonblocking(to.as_raw_fd())?;
        Ok(Copy {
            from: Some(from),
            to: Some(to),
            pending: Vec::new(),
            close_at_end,
        })
    }

    fn read(&mut self, buf: &mut [u8]) {
        let Some(from) = &self.from else { return };
        // SAFETY: reads into a buffer of its length from a descriptor we hold; poll said it
        // is readable, so this does not block.
        let n = unsafe { libc::read(from.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match n {
            n if n > 0 => {
                self.pending.extend_from_slice(&buf[..n as usize]);
                self.write();
            }
            n if n < 0 && is_transient(&io::Error::last_os_error()) => {}
            // End of input (or the user's terminal hung up).
            _ => {
                self.from = None;
                if self.pending.is_empty() && self.close_at_end {
                    self.to = None;
                }
            }
        }
    }

    fn write(&mut self) {
        let Some(to) = &self.to else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match nix::unistd::write(to, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(nix::Error::EINTR) => {}
                Err(nix::Error::EAGAIN) => return,
                // The container closed its input: what it will never read is dropped.
                Err(_) => {
                    self.to = None;
                    self.pending.clear();
                    return;
                }
            }
        }
        if self.from.is_none() && self.close_at_end {
            self.to = None;
        }
    }
}

/// The container's terminal size, kept equal to this process's own terminal's.
#[derive(Debug)]
pub(crate) struct SizeFollower {
    source: OwnedFd,
    master: OwnedFd,
    winch: WinchWatch,
}

impl std::fmt::Debug for WinchWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WinchWatch")
    }
}

impl SizeFollower {
    /// Follows the size of `source` (a terminal) onto `master`; copies it now.
    pub(crate) fn new(source: OwnedFd, master: OwnedFd) -> io::Result<SizeFollower> {
        let winch = WinchWatch::new().map_err(io::Error::other)?;
        let follower = SizeFollower {
            source,
            master,
            winch,
        };
        follower.copy();
        Ok(follower)
    }

    fn copy(&self) {
        if let Some(size) = crate::terminal::window_size(&self.source) {
            let _ = crate::terminal::set_window_size(&self.master, size);
        }
    }
}

/// Everything one start of the container moves, and the loop that moves it.
#[derive(Debug)]
pub(crate) struct Pump<'a> {
    /// The init, until its exit is seen.
    init: Option<Exit>,
    exit: Option<i32>,
    outs: Vec<Out>,
    log: Option<&'a mut LogWriter>,
    echo: bool,
    inputs: Vec<Copy>,
    size: Option<SizeFollower>,
    session: Option<&'a mut Session>,
}

/// How the init's exit is seen: a pidfd, or (old kernels) a periodic look.
#[derive(Debug)]
struct Exit {
    pid: i32,
    pidfd: Option<OwnedFd>,
}

impl<'a> Pump<'a> {
    /// A pump for a container whose init is `init` (`None`: it never started, only what
    /// its processes wrote is left to read; `exit` is then the code to report).
    pub(crate) fn new(init: Option<i32>, exit: i32) -> Pump<'a> {
        Pump {
            init: init.map(|pid| Exit {
                pid,
                pidfd: crate::terminal::pidfd_open(pid).ok(),
            }),
            exit: init.is_none().then_some(exit),
            outs: Vec::new(),
            log: None,
            echo: false,
            inputs: Vec::new(),
            size: None,
            session: None,
        }
    }

    /// Reads `out` too.
    pub(crate) fn output(mut self, out: Out) -> Self {
        self.outs.push(out);
        self
    }

    /// Logs the output into `log`.
    pub(crate) fn log(mut self, log: Option<&'a mut LogWriter>) -> Self {
        self.log = log;
        self
    }

    /// Also copies the output to this process's stdout and stderr.
    pub(crate) fn echo(mut self, echo: bool) -> Self {
        self.echo = echo;
        self
    }

    /// Copies an input into the container.
    pub(crate) fn input(mut self, copy: Copy) -> Self {
        self.inputs.push(copy);
        self
    }

    /// Keeps the container's terminal the size of this process's.
    pub(crate) fn size(mut self, size: Option<SizeFollower>) -> Self {
        self.size = size;
        self
    }

    /// Serves the attach clients of this start.
    pub(crate) fn session(mut self, session: Option<&'a mut Session>) -> Self {
        self.session = session;
        self
    }

    /// Runs until the init has exited and the output has ended; returns the exit code to
    /// report (the init is left unreaped).
    pub(crate) fn run(mut self) -> i32 {
        let _sigpipe = SigpipeBlocked::new();
        let mut polls = PollSet::default();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            if let Some(code) = self.exit
                && self.outs.is_empty()
            {
                return code;
            }
            polls.clear();
            let exit_at = self
                .init
                .as_ref()
                .and_then(|e| e.pidfd.as_ref())
                .map(|fd| polls.add(fd.as_raw_fd(), libc::POLLIN));
            let outs_at: Vec<usize> = self
                .outs
                .iter()
                .map(|o| polls.add(o.fd.as_raw_fd(), libc::POLLIN))
                .collect();
            let mut inputs_at = Vec::new();
            for copy in &self.inputs {
                let from = copy
                    .from
                    .as_ref()
                    .filter(|_| copy.pending.len() < MAX_PENDING)
                    .map(|fd| polls.add(fd.as_raw_fd(), libc::POLLIN));
                let to = copy
                    .to
                    .as_ref()
                    .filter(|_| !copy.pending.is_empty())
                    .map(|fd| polls.add(fd.as_raw_fd(), libc::POLLOUT));
                inputs_at.push((from, to));
            }
            let winch_at = self
                .size
                .as_ref()
                .map(|s| polls.add(s.winch.read.as_raw_fd(), libc::POLLIN));
            if let Some(session) = self.session.as_deref_mut() {
                session.register(&mut polls);
            }
            let timeout = match (&self.init, exit_at) {
                (Some(_), None) => EXIT_POLL_MS,
                _ => -1,
            };
            if let Err(e) = polls.wait(timeout) {
                // Nothing can be watched: wait for the exit alone, and lose the rest.
                let _ = writeln!(io::stderr(), "supervisor: poll failed: {e}");
                let code = self.init.as_ref().map_or(125, |e| wait_nowait(e.pid, true));
                return self.exit.unwrap_or(code);
            }
            let exited = match (&self.init, exit_at) {
                (Some(_), Some(at)) => polls.readable(at),
                (Some(e), None) => exit_code(e.pid, false).is_some(),
                (None, _) => false,
            };
            for (i, at) in outs_at.iter().enumerate().rev() {
                if polls.readable(*at) && !self.read_out(i, &mut buf) {
                    self.end_out(i);
                }
            }
            for (copy, (from, to)) in self.inputs.iter_mut().zip(&inputs_at) {
                if to.is_some_and(|at| polls.revents(at) != 0) {
                    copy.write();
                }
                if from.is_some_and(|at| polls.readable(at)) {
                    copy.read(&mut buf);
                }
            }
            if let (Some(size), Some(at)) = (&self.size, winch_at)
                && polls.readable(at)
            {
                size.winch.clear();
                size.copy();
            }
            if let Some(session) = self.session.as_deref_mut() {
                session.dispatch(&polls);
            }
            if exited && let Some(init) = self.init.take() {
                self.exit = Some(wait_nowait(init.pid, true));
                self.after_exit(&mut buf);
            }
        }
    }

    /// The init is gone: input has nowhere to go, and a terminal gives what it holds.
    fn after_exit(&mut self, buf: &mut [u8]) {
        self.inputs.clear();
        self.size = None;
        for i in (0..self.outs.len()).rev() {
            if self.outs[i].terminal {
                while self.read_out(i, buf) {}
                self.end_out(i);
            }
        }
    }

    /// Reads what output `i` has; false at its end (or when nothing is left, for a
    /// terminal after the exit).
    fn read_out(&mut self, i: usize, buf: &mut [u8]) -> bool {
        let out = &self.outs[i];
        // SAFETY: reads into a buffer of its length from a non-blocking descriptor we own.
        let n = unsafe { libc::read(out.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            // EAGAIN on a terminal after the exit: drained.
            return is_transient(&e) && !(self.exit.is_some() && out.terminal);
        }
        if n == 0 {
            return false;
        }
        let bytes = &buf[..n as usize];
        let stream = out.stream;
        if self.echo {
            // The terminal may be gone (the user's CLI was killed): keep logging.
            let fd = match stream {
                Stream::Stdout => 1,
                Stream::Stderr => 2,
            };
            // SAFETY: fds 1 and 2 are this process's stdout and stderr, open for its life.
            let mut to = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
            if to.write_all(bytes).is_err() {
                self.echo = false;
            }
        }
        // Never blocks: a slow client is dropped, not waited for.
        if let Some(session) = self.session.as_deref() {
            session.sink().broadcast(stream, bytes);
        }
        let out = &mut self.outs[i];
        out.line.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(end) = out.line[start..].iter().position(|&b| b == b'\n') {
            log(&mut self.log, stream, &out.line[start..start + end + 1]);
            start += end + 1;
        }
        while out.line.len() - start >= MAX_LINE {
            log(&mut self.log, stream, &out.line[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        out.line.drain(..start);
        true
    }

    /// Output `i` ended: its last partial line is logged.
    fn end_out(&mut self, i: usize) {
        let out = self.outs.remove(i);
        if !out.line.is_empty() {
            log(&mut self.log, out.stream, &out.line);
        }
    }
}

/// The pump of one start of container init `pid`: its outputs, the pipe this process's
/// stdin is copied into (`relayed`), its terminal (`master`; with `terminal_input` and
/// `echo`, this process's stdin is copied onto it), this process's stdout and stderr as
/// copies of the output with `echo`, and its log.
pub(crate) fn for_start<'a>(
    pid: i32,
    outs: Vec<Out>,
    relayed: Option<OwnedFd>,
    master: Option<OwnedFd>,
    terminal_input: bool,
    echo: bool,
    log: Option<&'a mut LogWriter>,
) -> io::Result<Pump<'a>> {
    let mut pump = Pump::new(Some(pid), 0).log(log).echo(echo);
    for out in outs {
        pump = pump.output(out);
    }
    if let Some(to) = relayed {
        pump = pump.input(Copy::new(dup_stdio(0)?, to, true)?);
    }
    if let Some(master) = master {
        // Detached, attach clients write the terminal (see `Session`).
        if echo && terminal_input {
            pump = pump.input(Copy::new(dup_stdio(0)?, master.try_clone()?, false)?);
        }
        pump = pump.size(terminal_size(&master)?);
        pump = pump.output(Out::terminal(master)?);
    }
    Ok(pump)
}

/// Follows this process's terminal size (stdin's, else stdout's) onto `master`, when
/// either is a terminal.
fn terminal_size(master: &OwnedFd) -> io::Result<Option<SizeFollower>> {
    // SAFETY: fds 0 and 1 are open for the life of the process; only borrowed here.
    let is_terminal = |fd| crate::terminal::is_terminal(unsafe { BorrowedFd::borrow_raw(fd) });
    match [0, 1].into_iter().find(|fd| is_terminal(*fd)) {
        Some(fd) => Ok(Some(SizeFollower::new(
            dup_stdio(fd)?,
            master.try_clone()?,
        )?)),
        None => Ok(None),
    }
}

fn log(log: &mut Option<&mut LogWriter>, stream: Stream, line: &[u8]) {
    if let Some(log) = log {
        // A full disk must not stop the container: its output is dropped.
        let _ = log.write(stream, line, SystemTime::now());
    }
}

/// The exit code of child `pid` once it has exited, without reaping it: docker's code
/// (the status, or 128 + the signal). With `block`, waits for it.
pub(crate) fn wait_nowait(pid: i32, block: bool) -> i32 {
    loop {
        match exit_code(pid, block) {
            Some(code) => return code,
            None if block => continue,
            None => return 125,
        }
    }
}

/// Whether child `pid` exits within `wait` (it is not reaped).
pub(crate) fn exits_within(pid: i32, wait: std::time::Duration) -> bool {
    let Ok(pidfd) = crate::terminal::pidfd_open(pid) else {
        return exit_code(pid, false).is_some();
    };
    let until = std::time::Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        let mut polls = PollSet::default();
        let at = polls.add(pidfd.as_raw_fd(), libc::POLLIN);
        if polls.wait(left.as_millis() as i32).is_err() || polls.readable(at) {
            return true;
        }
        if left.is_zero() {
            return false;
        }
    }
}

fn exit_code(pid: i32, block: bool) -> Option<i32> {
    // SAFETY: a zeroed siginfo_t is a valid buffer for waitid to fill.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let mut flags = libc::WEXITED | libc::WNOWAIT;
    if !block {
        flags |= libc::WNOHANG;
    }
    // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child to be reaped by
    // whoever holds its `Running`.
    let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
    if r < 0 {
        return match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => None,
            // Not our child any more (or never was): nothing to wait for.
            _ => Some(125),
        };
    }
    // SAFETY: waitid succeeded and filled `info` for a child (or left si_pid 0 with
    // WNOHANG when none has exited).
    let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
    if child == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => status,
        _ => 128 + status,
    })
}

/// SIGPIPE blocked in this thread while it lives (a write to a reader that left fails
/// with EPIPE instead of killing the process); as it was afterwards, with a SIGPIPE raised
/// meanwhile discarded.
struct SigpipeBlocked {
    previous: nix::sys::signal::SigSet,
}

impl SigpipeBlocked {
    fn new() -> SigpipeBlocked {
        use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
        let mut previous = SigSet::empty();
        let _ = pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&SigSet::from(Signal::SIGPIPE)),
            Some(&mut previous),
        );
        SigpipeBlocked { previous }
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        use nix::sys::signal::{SigmaskHow, Signal, pthread_sigmask};
        if self.previous.contains(Signal::SIGPIPE) {
            return;
        }
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let pipe = nix::sys::signal::SigSet::from(Signal::SIGPIPE);
        // SAFETY: sigtimedwait with a zero timeout takes a pending SIGPIPE off this thread
        // (or returns at once); the set and timeout are valid for the call.
        while unsafe { libc::sigtimedwait(pipe.as_ref(), std::ptr::null_mut(), &timeout) } > 0 {}
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.previous), None);
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EINTR))
}

pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we hold change only its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A close-on-exec copy of `fd`.
pub(crate) fn dup(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    fd.try_clone_to_owned()
}

/// A close-on-exec copy of this process's descriptor `fd` (0, 1 or 2).
pub(crate) fn dup_stdio(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: fds 0-2 are open for the life of the process; we only borrow it to copy it.
    dup(unsafe { BorrowedFd::borrow_raw(fd) })
}
