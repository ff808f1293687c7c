//! Signals: [`parse_signal`] for what users type (`docker kill -s`, `runc kill`),
//! forwarding the runner's signals to running containers' inits, [`Caught`] signals
//! handled in a program's own loop, and [`die_on_broken_pipe`] for command-line programs.
//!
//! A signal handler may only do async-signal-safe work, so the forwarding registry is a
//! fixed array of atomics the handler walks, calling kill(2) for each registered pid.

use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// Restores SIGPIPE's default action (Rust programs start with it ignored), so a
/// command-line program whose output pipe closes (`… | head`) ends quietly, as other
/// tools do, instead of reporting "Broken pipe" as an error. Call it first in `main`,
/// before any thread starts.
pub fn die_on_broken_pipe() {
    // SAFETY: SIG_DFL installs no handler; nothing else changes the disposition meanwhile
    // (the caller runs it before any thread starts).
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Ignores SIGPIPE again (as Rust programs start): a write to a peer that went away then
/// fails with EPIPE instead of ending the process. For a server, whose clients may hang up
/// while it writes to them; after [`die_on_broken_pipe`], before any thread starts.
pub fn survive_broken_pipe() {
    // SAFETY: SIG_IGN installs no handler; the caller runs it before any thread starts.
    let _ = unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) };
}

/// A signal name or number that names no signal.
#[derive(Debug, thiserror::Error)]
#[error("invalid signal {0:?}: give a name (SIGTERM, TERM or term) or a number (15)")]
pub struct InvalidSignal(String);

/// A signal by number (`15`) or by name, with or without `SIG` and in any case (`SIGTERM`,
/// `TERM`, `term`), as docker and runc accept them.
pub fn parse_signal(text: &str) -> Result<Signal, InvalidSignal> {
    let invalid = || InvalidSignal(text.to_string());
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| invalid());
    }
    let upper = text.to_ascii_uppercase();
    let name = match upper.starts_with("SIG") {
        true => upper,
        false => format!("SIG{upper}"),
    };
    Signal::from_str(&name).map_err(|_| invalid())
}

/// Signals a foreground runner forwards (what docker forwards with `--sig-proxy`).
pub const FORWARDED_SIGNALS: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

const SLOTS: usize = 64;
static PIDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

/// Previous handlers, restored when the last container stops forwarding.
struct Installed {
    count: usize,
    previous: Vec<(Signal, SigAction)>,
}
static STATE: Mutex<Installed> = Mutex::new(Installed {
    count: 0,
    previous: Vec::new(),
});

extern "C" fn forward(sig: libc::c_int) {
    for slot in &PIDS {
        let pid = slot.load(Ordering::Relaxed);
        if pid > 0 {
            // SAFETY: kill(2) is async-signal-safe and takes plain integers.
            unsafe { libc::kill(pid, sig) };
        }
    }
}

/// While alive, the runner's forwarded signals also go to `pid`.
#[derive(Debug)]
pub struct ForwardGuard {
    slot: Option<usize>,
}

/// Starts forwarding to `pid`. With more than 64 containers at once in one process the
/// extra ones are simply not forwarded to.
pub fn forward_to(pid: i32) -> ForwardGuard {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let slot = PIDS.iter().position(|s| {
        s.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    });
    if slot.is_some() {
        if state.count == 0 {
            let action = SigAction::new(
                SigHandler::Handler(forward),
                SaFlags::SA_RESTART,
                SigSet::empty(),
            );
            for sig in FORWARDED_SIGNALS {
                // SAFETY: the handler only reads atomics and calls kill(2), both
                // async-signal-safe.
                if let Ok(prev) = unsafe { sigaction(*sig, &action) } {
                    state.previous.push((*sig, prev));
                }
            }
        }
        state.count += 1;
    }
    ForwardGuard { slot }
}

impl Drop for ForwardGuard {
    fn drop(&mut self) {
        let Some(slot) = self.slot else { return };
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        PIDS[slot].store(0, Ordering::SeqCst);
        state.count -= 1;
        if state.count == 0 {
            for (sig, prev) in state.previous.drain(..) {
                // SAFETY: puts back the disposition that was there before `forward_to`.
                let _ = unsafe { sigaction(sig, &prev) };
            }
        }
    }
}

// --- Catching signals into a pipe ------------------------------------------------------

/// The write end of the pipe of the live [`Caught`], or -1.
static CATCH_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn catch(sig: libc::c_int) {
    let fd = CATCH_FD.load(Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    // SAFETY: only async-signal-safe calls; errno is saved and restored around them.
    unsafe {
        let errno = *libc::__errno_location();
        let byte = sig as u8;
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

/// While alive, the given signals are not acted on when this process receives them but
/// queued: [`Caught::fd`] turns readable and [`Caught::take`] returns them, for a program
/// that handles them in its own loop (an attached client forwards them to the container
/// and follows its terminal's size). One at a time per process.
#[derive(Debug)]
pub struct Caught {
    read: std::os::fd::OwnedFd,
    _write: std::os::fd::OwnedFd,
    previous: Vec<(Signal, SigAction)>,
}

impl Caught {
    /// Starts catching `signals` (dispositions put back on drop).
    pub fn new(signals: &[Signal]) -> std::io::Result<Caught> {
        use std::os::fd::AsRawFd as _;
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        if CATCH_FD
            .compare_exchange(-1, write.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(std::io::Error::other(
                "signals are already being caught in this process",
            ));
        }
        let action = SigAction::new(
            SigHandler::Handler(catch),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut previous = Vec::new();
        for sig in signals {
            // SAFETY: the handler only writes one byte to a pipe (async-signal-safe).
            if let Ok(prev) = unsafe { sigaction(*sig, &action) } {
                previous.push((*sig, prev));
            }
        }
        Ok(Caught {
            read,
            _write: write,
            previous,
        })
    }

    /// Readable when signals are waiting.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.read)
    }

    /// The signals received since the last call, in order (without waiting).
    pub fn take(&self) -> Vec<Signal> {
        let mut buf = [0u8; 64];
        let mut got = Vec::new();
        while let Ok(n) = nix::unistd::read(&self.read, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend(
                buf[..n]
                    .iter()
                    .filter_map(|b| Signal::try_from(i32::from(*b)).ok()),
            );
        }
        got
    }
}

impl Drop for Caught {
    fn drop(&mut self) {
        for (sig, prev) in self.previous.drain(..) {
            // SAFETY: puts back the disposition that was there before `Caught::new`.
            let _ = unsafe { sigaction(sig, &prev) };
        }
        CATCH_FD.store(-1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caught_signals_are_queued_not_acted_on() {
        let caught = Caught::new(&[Signal::SIGWINCH, Signal::SIGUSR2]).unwrap();
        assert!(Caught::new(&[Signal::SIGUSR1]).is_err(), "one at a time");
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        nix::sys::signal::raise(Signal::SIGWINCH).unwrap();
        assert_eq!(caught.take(), [Signal::SIGUSR2, Signal::SIGWINCH]);
        assert!(caught.take().is_empty());
        drop(caught);
        // Another may catch now.
        drop(Caught::new(&[Signal::SIGWINCH]).unwrap());
    }

    #[test]
    fn signals_by_number_and_every_spelling_of_the_name() {
        for s in ["9", "KILL", "SIGKILL", "kill", "sigkill", "Kill"] {
            assert_eq!(parse_signal(s).unwrap(), Signal::SIGKILL, "{s}");
        }
        assert_eq!(parse_signal("15").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("term").unwrap(), Signal::SIGTERM);
        for bad in ["NOPE", "99", "0", "-9", "", "SIG"] {
            let e = parse_signal(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("{bad:?}")) && e.contains("SIGTERM"),
                "{e}"
            );
        }
    }
}
