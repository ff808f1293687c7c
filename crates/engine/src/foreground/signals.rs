//! Signals this process receives, as bytes on a pipe that a `poll` loop reads: a handler
//! may only do async-signal-safe work, and writing one byte is.

use std::os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::fcntl::OFlag;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

/// The pipe's write end while a [`SignalPipe`] is installed; -1 otherwise.
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

extern "C" fn note(sig: libc::c_int) {
    let fd = WRITE_END.load(Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    let byte = u8::try_from(sig).unwrap_or(0);
    // SAFETY: write(2) is async-signal-safe; errno is saved and restored around it so the
    // interrupted code does not see it change.
    unsafe {
        let errno = *libc::__errno_location();
        libc::write(fd, (&byte as *const u8).cast(), 1);
        *libc::__errno_location() = errno;
    }
}

/// While alive, the given signals are caught and queued on a pipe; one per process.
pub(super) struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
    previous: Vec<(Signal, SigAction)>,
}

impl SignalPipe {
    /// Catches `signals` until dropped.
    pub(super) fn install(signals: &[Signal]) -> std::io::Result<SignalPipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        let claimed =
            WRITE_END.compare_exchange(-1, write.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst);
        if claimed.is_err() {
            return Err(std::io::Error::other(
                "signals are already being passed on by this process",
            ));
        }
        let action = SigAction::new(
            SigHandler::Handler(note),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        let mut previous = Vec::new();
        for signal in signals {
            // SAFETY: the handler only reads an atomic and calls write(2).
            if let Ok(prev) = unsafe { sigaction(*signal, &action) } {
                previous.push((*signal, prev));
            }
        }
        Ok(SignalPipe {
            read,
            _write: write,
            previous,
        })
    }

    /// Readable when signals are queued.
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The signals queued since the last call, in the order they came.
    pub(super) fn take(&self) -> Vec<Signal> {
        let mut buf = [0u8; 64];
        let mut signals = Vec::new();
        while let Ok(n @ 1..) = nix::unistd::read(&self.read, &mut buf) {
            signals.extend(
                buf[..n]
                    .iter()
                    .filter_map(|b| Signal::try_from(i32::from(*b)).ok()),
            );
        }
        signals
    }
}

impl Drop for SignalPipe {
    fn drop(&mut self) {
        for (signal, previous) in self.previous.drain(..) {
            // SAFETY: puts back the disposition that was there before `install`.
            let _ = unsafe { sigaction(signal, &previous) };
        }
        WRITE_END.store(-1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_signal_is_queued_and_the_old_disposition_comes_back() {
        let pipe = SignalPipe::install(&[Signal::SIGUSR2]).unwrap();
        assert!(
            SignalPipe::install(&[Signal::SIGUSR1]).is_err(),
            "one per process"
        );
        nix::sys::signal::raise(Signal::SIGUSR2).unwrap();
        assert_eq!(pipe.take(), vec![Signal::SIGUSR2]);
        assert!(pipe.take().is_empty());
        drop(pipe);
        // SAFETY: SIG_DFL, which it was before the test; returns what is there now.
        let now = unsafe {
            sigaction(
                Signal::SIGUSR2,
                &SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()),
            )
        }
        .unwrap();
        assert!(
            matches!(now.handler(), SigHandler::SigDfl),
            "the old disposition is back"
        );
    }
}
