//! Handing a teardown to a background process, so that a caller about to
//! exit (a `run --rm` whose container is done) does not wait for it.
//!
//! A teardown costs about 30 ms that no caller can shorten: the bridge
//! plugin's `DEL` deletes the container's veth, and the kernel's device
//! unregistration waits in `rcu_barrier()` (about 20 ms here), plus two
//! plugin starts. It is handed off only when that is safe:
//!
//! - the process has a single thread, so `fork` gives the child a consistent
//!   copy with every lock free and it may run any code;
//! - the child takes over the locks the caller hands it (the container's
//!   teardown lock, which tells others the teardown is in flight, and the
//!   networks lock until it lets go of it), so operations that depend on the
//!   teardown wait for it as they would have waited for the caller;
//! - the child keeps standard output and error, so a caller that reads a
//!   command's output to its end still sees the teardown finished, and its
//!   warnings, and closes every other descriptor, so it holds none of the
//!   caller's other locks;
//! - it runs in a session of its own, so the terminal's signals do not stop
//!   it half-way; a teardown that fails or is killed leaves the record, and a
//!   later `detach` finishes it.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::{AsRawFd as _, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, setsid};

/// Teardowns this process handed off, by cache directory and container ID:
/// a later `detach` of the same container here returns at once instead of
/// waiting for the lock the child holds.
static HANDED_OFF: Mutex<BTreeSet<(PathBuf, String)>> = Mutex::new(BTreeSet::new());

/// True when this process handed off the teardown of `container_id`.
pub(crate) fn handed_off(cache_dir: &Path, container_id: &str) -> bool {
    let key = (cache_dir.to_path_buf(), container_id.to_string());
    HANDED_OFF
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&key)
}

/// What became of a teardown offered to [`run_detached`].
pub(crate) enum Handoff {
    /// A background process has it, and the locks.
    Taken,
    /// It could not be handed off: here are the locks back, for the caller to do it.
    Refused(Vec<File>),
}

/// Runs `work` in a detached grandchild that is given `locks` (its own
/// descriptors of the same open files, so the locks stay held until it
/// drops them or exits) and returns at once; refuses (having run nothing)
/// when this process has more than one thread or cannot fork.
pub(crate) fn run_detached(
    locks: Vec<File>,
    cache_dir: &Path,
    container_id: &str,
    work: impl FnOnce(Vec<File>) -> Result<(), String>,
) -> Handoff {
    if !single_threaded() {
        return Handoff::Refused(locks);
    }
    // SAFETY: this process has one thread (checked just above, and only this
    // thread could start another), so the child starts with every lock free.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { child }) => {
            // The first child only starts the second and exits: nothing is left to reap later.
            let _ = waitpid(child, None);
            let key = (cache_dir.to_path_buf(), container_id.to_string());
            HANDED_OFF
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key);
            drop(locks);
            Handoff::Taken
        }
        Ok(ForkResult::Child) => in_child(locks, container_id, work),
        Err(_) => Handoff::Refused(locks),
    }
}

/// The first child: a new session, then the grandchild does the work. Never returns.
fn in_child(
    locks: Vec<File>,
    container_id: &str,
    work: impl FnOnce(Vec<File>) -> Result<(), String>,
) -> ! {
    let _ = setsid();
    // SAFETY: single-threaded, as the parent was.
    if let Ok(ForkResult::Child) = unsafe { fork() } {
        // Background work yields the processors to what callers wait for (the
        // supervisor finishing, the next container starting): the plugins it runs
        // inherit this. Measured under load, a teardown and pool refill at the
        // default priority made the supervisor's last steps 20 ms slower.
        // SAFETY: nice(2) only changes this process's scheduling priority.
        let _ = unsafe { libc::nice(19) };
        let mut keep: Vec<RawFd> = locks.iter().map(|l| l.as_raw_fd()).collect();
        keep.extend([0, 1, 2]);
        close_all_but(&keep);
        let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(locks)));
        let code = match done {
            Ok(Ok(())) => 0,
            Ok(Err(message)) => {
                eprintln!("Warning: detaching {container_id} from its networks: {message}");
                1
            }
            Err(_) => 2,
        };
        exit_now(code);
    }
    // The first child's copies of the locks go with it; the grandchild holds its own.
    exit_now(0)
}

/// Ends the process without running the caller's exit handlers or flushing
/// buffers it copied from the parent (they are the parent's to flush).
fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

fn single_threaded() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .is_some_and(|n| n.trim() == "1")
    })
}

/// Closes every descriptor not in `keep` (what the caller had open: its
/// other locks, its image store, its terminal's extra ends).
fn close_all_but(keep: &[RawFd]) {
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => return,
    };
    for fd in open.into_iter().filter(|fd| !keep.contains(fd)) {
        // SAFETY: closing a descriptor this process owns; the directory's own one is gone already.
        unsafe { libc::close(fd) };
    }
}
