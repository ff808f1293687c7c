//! Forwarding the runner's signals to running containers' inits.
//!
//! A signal handler may only do async-signal-safe work, so the registry is a fixed array of
//! atomics the handler walks, calling kill(2) for each registered pid.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

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
                let _ = unsafe { sigaction(sig, &prev) };
            }
        }
    }
}
