//! Raw mode for the user's terminal, restored on drop, on unwinding, and on the signals
//! that would otherwise end the process with the terminal left raw.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};

use super::{TerminalError, is_terminal, sys};

/// Signals whose default action ends the process: the terminal is restored first.
const RESTORED_ON: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGHUP, libc::SIGINT, libc::SIGQUIT];

/// What the signal handler needs, readable without locks: the terminal, its saved
/// settings, and the dispositions it replaced. Written only while no handler of ours is
/// installed (see `RawMode::enable`).
struct Saved {
    fd: AtomicI32,
    termios: UnsafeCell<MaybeUninit<libc::termios>>,
    previous: UnsafeCell<MaybeUninit<[libc::sigaction; RESTORED_ON.len()]>>,
}
// SAFETY: the cells are written before the handlers that read them are installed and
// after they are removed; `ACTIVE` keeps a second writer out.
unsafe impl Sync for Saved {}

static SAVED: Saved = Saved {
    fd: AtomicI32::new(-1),
    termios: UnsafeCell::new(MaybeUninit::uninit()),
    previous: UnsafeCell::new(MaybeUninit::uninit()),
};
static ACTIVE: AtomicBool = AtomicBool::new(false);

extern "C" fn restore_then_resend(sig: libc::c_int) {
    let fd = SAVED.fd.load(Ordering::SeqCst);
    if fd < 0 {
        return;
    }
    // SAFETY: tcsetattr, sigaction and raise are async-signal-safe; the cells were
    // written before this handler was installed.
    unsafe {
        libc::tcsetattr(fd, libc::TCSANOW, (*SAVED.termios.get()).as_ptr());
        if let Some(i) = RESTORED_ON.iter().position(|s| *s == sig) {
            let previous = &(*(*SAVED.previous.get()).as_ptr())[i];
            libc::sigaction(sig, previous, std::ptr::null_mut());
        }
        // Blocked while we run: delivered to the previous disposition when we return.
        libc::raise(sig);
    }
}

/// The user's terminal in raw mode (no echo, no line editing, keys such as Ctrl-C passed
/// on as bytes) until this guard is dropped.
///
/// The settings are also restored when the owning thread unwinds from a panic (the guard is
/// dropped), and on SIGTERM, SIGHUP, SIGINT or SIGQUIT: a handler restores the terminal
/// and hands the signal to whatever disposition it had before (by default, the process
/// ends). One terminal at a time per process.
#[derive(Debug)]
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Switches terminal `fd` to raw mode; `Ok(None)` when `fd` is not a terminal (input
    /// from a pipe or file needs no raw mode).
    pub fn enable(fd: impl AsFd) -> Result<Option<RawMode>, TerminalError> {
        if !is_terminal(&fd) {
            return Ok(None);
        }
        if ACTIVE.swap(true, Ordering::SeqCst) {
            return Err(TerminalError::RawModeActive);
        }
        match Self::switch(fd.as_fd()) {
            Ok(mode) => Ok(Some(mode)),
            Err(e) => {
                ACTIVE.store(false, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    fn switch(fd: std::os::fd::BorrowedFd<'_>) -> Result<RawMode, TerminalError> {
        let fd = fd
            .try_clone_to_owned()
            .map_err(|source| TerminalError::Io {
                what: "duplicating the terminal's descriptor".into(),
                source,
            })?;
        let saved = tcgetattr(&fd).map_err(sys("reading the terminal's settings"))?;
        // SAFETY: no handler of ours is installed (ACTIVE was false), so nothing reads
        // the cells while they are written.
        unsafe {
            (*SAVED.termios.get()).write(libc::termios::from(saved.clone()));
            let previous = &mut *(*SAVED.previous.get()).as_mut_ptr();
            for (i, sig) in RESTORED_ON.iter().enumerate() {
                libc::sigaction(*sig, std::ptr::null(), &mut previous[i]);
            }
        }
        SAVED.fd.store(fd.as_raw_fd(), Ordering::SeqCst);
        install_handlers();
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        if let Err(e) = tcsetattr(&fd, SetArg::TCSANOW, &raw) {
            uninstall_handlers();
            return Err(sys("switching the terminal to raw mode")(e));
        }
        Ok(RawMode { fd, saved })
    }
}

/// Our handler for each signal that is not ignored (an ignored one cannot end us).
fn install_handlers() {
    // SAFETY: the previous dispositions were saved in `SAVED.previous` just before.
    unsafe {
        let previous = &*(*SAVED.previous.get()).as_ptr();
        for (i, sig) in RESTORED_ON.iter().enumerate() {
            if previous[i].sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = restore_then_resend as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(*sig, &action, std::ptr::null_mut());
        }
    }
}

fn uninstall_handlers() {
    // SAFETY: puts back the dispositions saved in `switch`.
    unsafe {
        let previous = &*(*SAVED.previous.get()).as_ptr();
        for (i, sig) in RESTORED_ON.iter().enumerate() {
            let mut current: libc::sigaction = std::mem::zeroed();
            libc::sigaction(*sig, std::ptr::null(), &mut current);
            // Leave alone a handler someone installed over ours since.
            if current.sa_sigaction == restore_then_resend as *const () as libc::sighandler_t {
                libc::sigaction(*sig, &previous[i], std::ptr::null_mut());
            }
        }
    }
    SAVED.fd.store(-1, Ordering::SeqCst);
    ACTIVE.store(false, Ordering::SeqCst);
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(&self.fd, SetArg::TCSANOW, &self.saved);
        uninstall_handlers();
    }
}
