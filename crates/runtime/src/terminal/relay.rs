//! The relay loop: one poll over the user's input, the pty master, the process's exit and
//! SIGWINCH notifications.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use super::{Console, TerminalError, is_terminal, sys};

/// Input waiting for the terminal is capped: past this, input is not read until the
/// container reads some of what it was sent.
const MAX_PENDING: usize = 64 * 1024;

pub(super) struct Relay<'a> {
    console: &'a Console,
    input: Option<BorrowedFd<'a>>,
    output: BorrowedFd<'a>,
    size_source: Option<BorrowedFd<'a>>,
    pending: Vec<u8>,
}

/// What one read of the master found.
enum Drained {
    /// Nothing more for now.
    Empty,
    /// Every holder of the slave closed it.
    Closed,
}

impl<'a> Relay<'a> {
    pub(super) fn new(
        console: &'a Console,
        input: Option<BorrowedFd<'a>>,
        output: BorrowedFd<'a>,
    ) -> Self {
        let size_source = input
            .filter(|fd| is_terminal(fd))
            .or(Some(output).filter(|fd| is_terminal(fd)));
        Relay {
            console,
            input,
            output,
            size_source,
            pending: Vec::new(),
        }
    }

    pub(super) fn run(mut self) -> Result<(), TerminalError> {
        let master = self.console.master();
        let flags = fcntl(master, FcntlArg::F_GETFL).map_err(sys("reading the pty's flags"))?;
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        fcntl(master, FcntlArg::F_SETFL(flags)).map_err(sys("making the pty non-blocking"))?;
        let winch = match self.size_source {
            Some(src) => {
                self.console.copy_size_from(src)?;
                Some(WinchWatch::new()?)
            }
            None => None,
        };
        loop {
            let ready = self.wait(winch.as_ref())?;
            if ready.winch {
                if let Some(w) = &winch {
                    w.clear();
                }
                if let Some(src) = self.size_source {
                    // The user's terminal may be gone already; the relay goes on regardless.
                    let _ = self.console.copy_size_from(src);
                }
            }
            if ready.input {
                self.read_input()?;
            }
            if ready.master_out {
                self.write_pending()?;
            }
            if ready.master_in && matches!(self.drain()?, Drained::Closed) {
                return Ok(());
            }
            if ready.exited {
                self.drain()?;
                return Ok(());
            }
        }
    }

    fn wait(&self, winch: Option<&WinchWatch>) -> Result<Ready, TerminalError> {
        let mut master_events = PollFlags::POLLIN;
        if !self.pending.is_empty() {
            master_events |= PollFlags::POLLOUT;
        }
        let mut fds = vec![PollFd::new(self.console.master(), master_events)];
        let input_at = slot(
            self.input.filter(|_| self.pending.len() < MAX_PENDING),
            &mut fds,
        );
        let winch_at = slot(winch.map(|w| w.read.as_fd()), &mut fds);
        let exit_at = slot(self.console.process.as_ref().map(|p| p.as_fd()), &mut fds);
        loop {
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => break,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(sys("waiting on the terminal")(e)),
            }
        }
        let any = PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR;
        let fired = |at: Option<usize>, flags: PollFlags| {
            at.and_then(|i| fds[i].revents())
                .is_some_and(|r| r.intersects(flags))
        };
        Ok(Ready {
            master_in: fired(Some(0), any),
            master_out: fired(Some(0), PollFlags::POLLOUT),
            input: fired(input_at, any),
            winch: fired(winch_at, PollFlags::POLLIN),
            exited: fired(exit_at, PollFlags::POLLIN),
        })
    }

    fn read_input(&mut self) -> Result<(), TerminalError> {
        let Some(input) = self.input else {
            return Ok(());
        };
        let mut buf = [0u8; 4096];
        match nix::unistd::read(input, &mut buf) {
            // End of input (or the user's terminal hung up): nothing more to send.
            Ok(0) | Err(nix::Error::EIO) => self.input = None,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                self.write_pending()?;
            }
            Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
            Err(e) => return Err(sys("reading the input")(e)),
        }
        Ok(())
    }

    fn write_pending(&mut self) -> Result<(), TerminalError> {
        while !self.pending.is_empty() {
            match nix::unistd::write(self.console.master(), &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(nix::Error::EINTR) => {}
                Err(nix::Error::EAGAIN) => break,
                // The terminal is closing: the input has nowhere to go.
                Err(nix::Error::EIO) => self.pending.clear(),
                Err(e) => return Err(sys("writing to the container's terminal")(e)),
            }
        }
        Ok(())
    }

    /// Copies everything the terminal holds now to the output.
    fn drain(&mut self) -> Result<Drained, TerminalError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match nix::unistd::read(self.console.master(), &mut buf) {
                Ok(0) | Err(nix::Error::EIO) => return Ok(Drained::Closed),
                Ok(n) => write_all(self.output, &buf[..n])?,
                Err(nix::Error::EINTR) => {}
                Err(nix::Error::EAGAIN) => return Ok(Drained::Empty),
                Err(e) => return Err(sys("reading the container's terminal")(e)),
            }
        }
    }
}

/// Adds `fd` (when given) to the poll set; returns its index.
fn slot<'f>(fd: Option<BorrowedFd<'f>>, fds: &mut Vec<PollFd<'f>>) -> Option<usize> {
    fd.map(|fd| {
        fds.push(PollFd::new(fd, PollFlags::POLLIN));
        fds.len() - 1
    })
}

struct Ready {
    master_in: bool,
    master_out: bool,
    input: bool,
    winch: bool,
    exited: bool,
}

/// Writes all of `buf`, waiting when `fd` is non-blocking and full.
fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> Result<(), TerminalError> {
    while !buf.is_empty() {
        match nix::unistd::write(fd, buf) {
            Ok(n) => buf = &buf[n..],
            Err(nix::Error::EINTR) => {}
            Err(nix::Error::EAGAIN) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLOUT)];
                match poll(&mut fds, PollTimeout::NONE) {
                    Ok(_) | Err(nix::Error::EINTR) => {}
                    Err(e) => return Err(sys("waiting on the output")(e)),
                }
            }
            Err(e) => return Err(sys("writing the output")(e)),
        }
    }
    Ok(())
}

// --- SIGWINCH: a handler that writes one byte to the pipe of every relay watching ---------

const SLOTS: usize = 32;
static WINCH_PIPES: [AtomicI32; SLOTS] = [const { AtomicI32::new(-1) }; SLOTS];
/// Watchers alive, and the handler that was there before the first.
static WINCH_STATE: Mutex<(usize, Option<SigAction>)> = Mutex::new((0, None));

extern "C" fn on_winch(_: libc::c_int) {
    // SAFETY: only async-signal-safe calls; errno is saved and restored around them.
    unsafe {
        let errno = *libc::__errno_location();
        for slot in &WINCH_PIPES {
            let fd = slot.load(Ordering::Relaxed);
            if fd >= 0 {
                libc::write(fd, b"w".as_ptr().cast(), 1);
            }
        }
        *libc::__errno_location() = errno;
    }
}

/// While alive, a SIGWINCH received by this process makes `read` readable.
/// SIGWINCH, as a readable pipe (for a poll).
pub(crate) struct WinchWatch {
    pub(crate) read: OwnedFd,
    /// The end the handler writes to, kept open while registered.
    _write: OwnedFd,
    slot: Option<usize>,
}

impl WinchWatch {
    /// Starts watching; every SIGWINCH this process gets makes `read` readable.
    pub(crate) fn new() -> Result<Self, TerminalError> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
            .map_err(sys("creating the SIGWINCH pipe"))?;
        let mut state = WINCH_STATE.lock().unwrap_or_else(|e| e.into_inner());
        let raw = write.as_raw_fd();
        let slot = WINCH_PIPES.iter().position(|s| {
            s.compare_exchange(-1, raw, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        });
        if slot.is_some() {
            if state.0 == 0 {
                let action = SigAction::new(
                    SigHandler::Handler(on_winch),
                    SaFlags::SA_RESTART,
                    SigSet::empty(),
                );
                // SAFETY: the handler only does async-signal-safe work.
                state.1 = unsafe { sigaction(Signal::SIGWINCH, &action) }.ok();
            }
            state.0 += 1;
        }
        Ok(WinchWatch {
            read,
            _write: write,
            slot,
        })
    }

    /// Empties the pipe, after a poll said it was readable.
    pub(crate) fn clear(&self) {
        let mut buf = [0u8; 64];
        while matches!(nix::unistd::read(&self.read, &mut buf), Ok(n) if n > 0) {}
    }
}

impl Drop for WinchWatch {
    fn drop(&mut self) {
        let Some(slot) = self.slot else { return };
        let mut state = WINCH_STATE.lock().unwrap_or_else(|e| e.into_inner());
        WINCH_PIPES[slot].store(-1, Ordering::SeqCst);
        state.0 -= 1;
        if state.0 == 0
            && let Some(previous) = state.1.take()
        {
            // SAFETY: puts back the disposition that was there before.
            let _ = unsafe { sigaction(Signal::SIGWINCH, &previous) };
        }
    }
}
