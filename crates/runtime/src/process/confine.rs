//! The last steps before a container process execs, shared by a container's init and an
//! exec, in the one order that keeps each property:
//!
//! 0. every signal's disposition back to its default and none blocked
//!    ([`default_signals`]): first, so nothing of the caller's handling reaches the
//!    container;
//! 1. rlimits, then `oom_score_adj`: while the process still has the privileges to set
//!    them;
//! 2. the seccomp filter when `noNewPrivileges` is not set: loading one needs
//!    `CAP_SYS_ADMIN` or `no_new_privs`, so it goes in before the capabilities are dropped
//!    (see [`crate::seccomp`]);
//! 3. the bounding set, user and groups, capability sets and `no_new_privs`
//!    ([`security::switch_user_and_caps`]);
//! 4. the umask;
//! 5. every inherited descriptor above stderr closed, except the ones named: *before* the
//!    working directory is entered, so that a `cwd` of `/proc/self/fd/N` cannot lead out of
//!    the container (CVE-2024-21626);
//! 6. the working directory, resolved inside the root and checked with `getcwd`
//!    ([`enter_cwd`]);
//! 7. the command, looked up on the container's `PATH`;
//! 8. the seccomp filter when `noNewPrivileges` is set: as late as possible, so the setup
//!    above is not subject to it.
//!
//! What comes before (namespaces, root filesystem, terminal or stdio) and after (the
//! init's wait for start, the exec itself) differs between the two callers.

use std::os::fd::RawFd;
use std::path::Path;

use oci_spec::runtime::Process;

use super::exec::Command;
use super::{ChildError, io, security, sys};

/// Which inherited descriptors survive step 5: everything below `first`, and `keep`.
pub(crate) struct KeepFds<'a> {
    /// The first descriptor closed (3, or above runc's `--preserve-fds`).
    pub first: u32,
    /// The runtime's own descriptors above it (close-on-exec).
    pub keep: &'a [RawFd],
}

/// Steps 1 to 8 (see the module's documentation) for `process`; returns the command,
/// ready to exec.
pub(crate) fn confine(
    process: &Process,
    seccomp: Option<&crate::seccomp::Program>,
    fds: KeepFds<'_>,
) -> Result<Command, ChildError> {
    default_signals()?;
    security::apply_rlimits(process)?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(io("writing /proc/self/oom_score_adj"))?;
    }
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    if !no_new_privs {
        load_seccomp(seccomp)?;
    }
    security::switch_user_and_caps(process)?;
    let umask = process.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    close_inherited_fds(fds.first, fds.keep);
    enter_cwd(process.cwd())?;
    let cmd = Command::new(process)?;
    if no_new_privs {
        load_seccomp(seccomp)?;
    }
    Ok(cmd)
}

/// Step 0: runc and docker start every container process with default signal
/// dispositions and an empty signal mask, and so must we. The caller may ignore SIGHUP
/// (`nohup`, some service managers) or SIGPIPE, or block signals, and a fork inherits all
/// of it; `exec` resets caught signals but keeps ignored ones ignored and the mask as it is,
/// and the spec has no field for it. The runtime's own handlers, inherited from the
/// runner, go too.
///
/// The kernel's `rt_sigaction` is called directly: the C library's `signal`/`sigaction`
/// refuse the two real-time signals it reserves for its threads (32 and 33 with glibc),
/// yet a caller that is not a C program (cargo is one) may leave them ignored, and the
/// container's own C library would then find them so.
fn default_signals() -> Result<(), ChildError> {
    for sig in 1..=KERNEL_NSIG {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // The kernel's `struct sigaction` (its layout differs between architectures):
        // all zeros is SIG_DFL (0), no flags and an empty mask on every one of them.
        let default = [0u64; 8];
        // SAFETY: rt_sigaction reads a kernel `struct sigaction` from `default` (zeroed and
        // larger than any architecture's), writes nothing back (null), and installs no
        // handler; this process is a single-threaded fork child about to exec.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                KERNEL_SIGSET_SIZE,
            )
        };
        if rc != 0 {
            return Err(sys(format!("resetting the disposition of signal {sig}"))(
                nix::Error::last(),
            ));
        }
    }
    nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    )
    .map_err(sys("unblocking every signal"))
}

/// The kernel's number of signals (`_NSIG`), and the size of its signal set in bytes.
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const KERNEL_NSIG: i32 = 128;
#[cfg(not(any(target_arch = "mips", target_arch = "mips64")))]
const KERNEL_NSIG: i32 = 64;
const KERNEL_SIGSET_SIZE: usize = KERNEL_NSIG as usize / 8;

fn load_seccomp(program: Option<&crate::seccomp::Program>) -> Result<(), ChildError> {
    match program {
        Some(p) => p.load().map_err(sys("loading the seccomp filter")),
        None => Ok(()),
    }
}

/// Closes every descriptor from `first` up except those in `keep`. Not close-on-exec: a
/// descriptor still open when the working directory is entered would let a `cwd` of
/// `/proc/self/fd/N` land on the host (CVE-2024-21626).
fn close_inherited_fds(first: u32, keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|fd| u32::try_from(*fd).ok())
        .filter(|fd| *fd >= first)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut low = first;
    for fd in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if fd > low {
            close_range(low, fd - 1);
        }
        low = fd.saturating_add(1);
    }
}

fn close_range(low: u32, high: u32) {
    // SAFETY: close_range only closes descriptors of this process; nothing in this
    // single-threaded child uses the ones in the range afterwards.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, low, high, 0u32) };
    if ret == 0 {
        return;
    }
    // Kernels before 5.9: one by one, up to the descriptor limit.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    let top = u32::try_from(limit.rlim_cur).unwrap_or(u32::MAX).min(high);
    for fd in low..=top {
        // SAFETY: as above; closing a descriptor that is not open is harmless.
        unsafe { libc::close(fd as i32) };
    }
}

/// Enters the working directory, resolved inside the root and never through a `/proc`
/// magic link, then checks that it is reachable from the root, as runc does since
/// CVE-2024-21626.
fn enter_cwd(cwd: &Path) -> Result<(), ChildError> {
    let cwd = if cwd.as_os_str().is_empty() {
        Path::new("/")
    } else {
        cwd
    };
    let what = || format!("changing directory to {}", cwd.display());
    let root = crate::in_root::Root::open(Path::new("/")).map_err(io(what()))?;
    let dir = root
        .open_file(
            cwd,
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
        )
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => ChildError::Spec(format!(
                "{}: the path goes through a /proc magic link or a symlink loop",
                what()
            )),
            _ => io(what())(e),
        })?;
    nix::unistd::fchdir(&dir).map_err(sys(what()))?;
    match nix::unistd::getcwd() {
        Ok(now) if now.is_absolute() => Ok(()),
        _ => Err(ChildError::Spec(format!(
            "{}: the working directory is outside the container",
            what()
        ))),
    }
}
