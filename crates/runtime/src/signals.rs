//! Signals: [`parse_signal`] for what users type (`docker kill -s`, `runc kill`),
//! forwarding the runner's signals to running containers' inits, and
//! [`die_on_broken_pipe`] for command-line programs.
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

#[cfg(test)]
mod tests {
    use super::*;

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
