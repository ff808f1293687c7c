//! The container side of an exec, read top-down: [`join_container`] enters the init's
//! cgroups and namespaces and forks again (a pid namespace applies to children only);
//! the child sets up the terminal or stdio, the limits, user and capabilities, and execs.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};

use oci_spec::runtime::Process;

use super::confine::{KeepFds, confine};
use super::{ChildError, clone_flag, io, report, sys};
use crate::channel::{self, Message};
use crate::exec::Joined;
use crate::terminal::{TerminalError, WindowSize};

/// What the forked side of an exec needs; a fork copy of the caller's memory.
pub(crate) struct TenantConfig<'a> {
    pub joined: &'a Joined,
    pub process: &'a Process,
    /// Descriptors to become stdin, stdout, stderr (unset: inherited).
    pub stdio: [Option<BorrowedFd<'a>>; 3],
    /// Where to send the terminal's master, for `process.terminal`.
    pub console: Option<BorrowedFd<'a>>,
    pub seccomp: Option<&'a crate::seccomp::Program>,
    pub to_parent: File,
    /// Detached: the process is not made the caller's child.
    pub detach: bool,
}

/// Runs in the forked child and never returns: errors go to the caller over the pipe.
pub(crate) fn join_container(mut cfg: TenantConfig<'_>) -> ! {
    let e = match join(&mut cfg) {
        // SAFETY: _exit in a forked child, skipping the caller's atexit handlers.
        Ok(()) => unsafe { libc::_exit(0) },
        Err(e) => e,
    };
    report(&mut cfg.to_parent, &e);
    // SAFETY: _exit in a forked child, skipping the caller's atexit handlers.
    unsafe { libc::_exit(1) }
}

fn join(cfg: &mut TenantConfig<'_>) -> Result<(), ChildError> {
    // Until exec this process holds the caller's memory and binary: processes of the
    // container must not be able to open it through /proc (exec resets the flag).
    nix::sys::prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE, 0)"))?;
    // Cgroups first: the paths are the host's, and after joining a user namespace the
    // cgroup files may no longer be ours to write.
    let me = std::process::id().to_string();
    for procs in &cfg.joined.cgroup_procs {
        std::fs::write(procs, &me).map_err(io(format!(
            "joining cgroup {}",
            procs.parent().unwrap_or(procs).display()
        )))?;
    }
    for (typ, file) in &cfg.joined.namespaces {
        nix::sched::setns(file, clone_flag(*typ)).map_err(sys(format!(
            "joining the {typ} namespace of pid {}",
            cfg.joined.init
        )))?;
    }
    // In the foreground the process becomes the caller's own child, so it can wait for it;
    // detached, it is orphaned when we exit.
    let parent = if cfg.detach { 0 } else { libc::CLONE_PARENT };
    // SAFETY: a fork-like clone (no new stack, no shared memory) from a single-threaded
    // process (a fork child: the fork rule holds here by construction).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (parent | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match pid {
        -1 => Err(sys("forking the process in the container")(
            nix::Error::last(),
        )),
        0 => exec_process(cfg),
        pid => Ok(channel::send(
            &mut cfg.to_parent,
            &Message::InitPid(pid as i32),
        )?),
    }
}

fn exec_process(cfg: &mut TenantConfig<'_>) -> ! {
    let e = match prepare_and_exec(cfg) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report(&mut cfg.to_parent, &e);
    // SAFETY: _exit in a forked child, skipping the caller's atexit handlers.
    unsafe { libc::_exit(1) }
}

fn prepare_and_exec(cfg: &mut TenantConfig<'_>) -> Result<std::convert::Infallible, ChildError> {
    let process = cfg.process;
    match cfg.console {
        Some(socket) => {
            let size = process.console_size().as_ref().map(|b| WindowSize {
                rows: u16::try_from(b.height()).unwrap_or(u16::MAX),
                cols: u16::try_from(b.width()).unwrap_or(u16::MAX),
            });
            crate::terminal::attach_new_pty(socket, process.user().uid(), size)
                .map_err(terminal_error)?
        }
        None => {
            redirect_stdio(&cfg.stdio)?;
            super::new_session()?;
        }
    }
    // Descriptors the caller left open must not reach the container; only the pipe to
    // the caller stays (close-on-exec). Unlike a container's first process, an exec does
    // not create its working directory: a missing one is the caller's mistake, reported as
    // docker does.
    let fds = KeepFds {
        first: 3,
        keep: &[cfg.to_parent.as_raw_fd()],
    };
    let cmd = confine(process, cfg.seccomp, fds)?;
    Err(cmd.exec())
}

/// Makes the given descriptors 0, 1, 2. Each is first copied above 2, so that one source
/// numbered 0..2 is not overwritten by another's copy before it is used.
fn redirect_stdio(stdio: &[Option<BorrowedFd<'_>>; 3]) -> Result<(), ChildError> {
    let mut moved = Vec::new();
    for (target, fd) in stdio.iter().enumerate() {
        if let Some(fd) = fd {
            let high = fd
                .try_clone_to_owned()
                .map_err(io(format!("duplicating the descriptor for fd {target}")))?;
            moved.push((target as i32, high));
        }
    }
    for (target, fd) in &moved {
        // SAFETY: dup2 onto a standard descriptor of this process; clears close-on-exec.
        if unsafe { libc::dup2(fd.as_raw_fd(), *target) } < 0 {
            return Err(sys(format!("making fd {target} of the process"))(
                nix::Error::last(),
            ));
        }
    }
    Ok(())
}

fn terminal_error(e: TerminalError) -> ChildError {
    match e {
        TerminalError::Sys { what, source } => ChildError::Sys { what, source },
        TerminalError::Io { what, source } => ChildError::Io { what, source },
        TerminalError::Console(c) => ChildError::Console(c),
        other => ChildError::Spec(other.to_string()),
    }
}
