//! `init: true`: we stay PID 1, fork the command, forward signals to it, reap every zombie
//! that gets reparented to us, and exit with the command's status (128+signal if killed).

use std::fs::File;
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

use super::exec::Command;
use super::{ChildError, report};

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes plain integers.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Signals a PID 1 forwards (SIGKILL/SIGSTOP cannot be caught anyway).
pub(crate) const FORWARDED: &[Signal] = &[
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

pub(crate) fn run(
    cmd: Command,
    to_parent: &mut File,
) -> Result<std::convert::Infallible, ChildError> {
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in FORWARDED {
        // SAFETY: the handler only reads an atomic and calls kill(2), both
        // async-signal-safe.
        unsafe { nix::sys::signal::sigaction(*sig, &action) }
            .map_err(super::sys(format!("installing a handler for {sig}")))?;
    }
    // SAFETY: the init is single-threaded (a fork child: the fork rule holds here by
    // construction); the child only execs or reports and exits.
    match unsafe { fork() }.map_err(super::sys("forking the command from the init"))? {
        ForkResult::Child => {
            // The command must not inherit our handlers' disposition (exec resets handled
            // signals to default anyway, but ignored ones would stay ignored).
            let e = cmd.exec();
            report(to_parent, &e);
            // SAFETY: _exit in a forked child, skipping the init's atexit handlers.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            // This init stays the engine's own program inside the container for the
            // container's whole life: its processes must not open /proc/1/exe, /proc/1/mem
            // or ptrace it. (The command's exec resets the flag for itself.)
            nix::sys::prctl::set_dumpable(false)
                .map_err(super::sys("prctl(PR_SET_DUMPABLE, 0) in the init"))?;
            CHILD.store(child.as_raw(), Ordering::Relaxed);
            // Only the command holds the pipe now: its exec closes it, which tells the runner
            // the container started.
            let _ = nix::unistd::close(std::os::fd::AsRawFd::as_raw_fd(to_parent));
            reap_until(child)
        }
    }
}

fn reap_until(child: Pid) -> ! {
    let code = loop {
        match waitpid(Pid::from_raw(-1), None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => break code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => break 128 + sig as i32,
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => break 1,
        }
    };
    // SAFETY: PID 1 of the container ends with its command's status; nothing of the
    // caller's is left to run in this process.
    unsafe { libc::_exit(code) }
}
