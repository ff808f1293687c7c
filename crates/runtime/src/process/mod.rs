//! What runs on the container side of the fork, read top-down:
//! [`stage1`] enters/creates namespaces and clones the init; [`init`] waits for the runner,
//! builds the root filesystem, drops privileges and execs the command.

mod confine;
mod exec;
mod keyring;
mod rootfs;
mod security;
mod tenant;
mod tiny_init;

pub(crate) use rootfs::root_is_ramfs;
pub(crate) use security::{rlimit_resource, to_caps};
pub(crate) use tenant::{TenantConfig, join_container};

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::channel::{self, FailureKind, Message};
use confine::{KeepFds, confine};

/// Errors on the container side, before exec. They travel to the runner as text.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// A syscall failed; `what` says which and on what.
    #[error("{what}")]
    Sys {
        /// The operation and its arguments.
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A file operation failed.
    #[error("{what}")]
    Io {
        /// The operation and its path.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The spec asks for something impossible.
    #[error("{0}")]
    Spec(String),
    /// The command cannot be found in the container.
    #[error("exec {0:?}: executable file not found in $PATH")]
    NotFound(String),
    /// The command exists but cannot be executed.
    #[error("exec {cmd:?}: permission denied")]
    PermissionDenied {
        /// The command.
        cmd: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// Talking to the runner failed.
    #[error("talking to the runner")]
    Channel(#[from] channel::ChannelError),
    /// Setting up the terminal failed.
    #[error("setting up the terminal")]
    Console(#[from] crate::console::ConsoleError),
    /// The runner is gone and the exec fifo failed.
    #[error("waiting for start on the exec fifo")]
    Fifo(#[source] nix::Error),
    /// A `createContainer` or `startContainer` hook failed.
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    /// Setting capabilities failed.
    #[error("{what}")]
    Caps {
        /// Which set.
        what: String,
        /// The cause.
        #[source]
        source: caps::errors::CapsError,
    },
}

/// Shorthand for a failed syscall with context.
pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ChildError {
    let what = what.into();
    move |source| ChildError::Sys { what, source }
}

/// Shorthand for a failed file operation with context.
pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ChildError {
    let what = what.into();
    move |source| ChildError::Io { what, source }
}

/// Everything the container side needs; a fork copy of the runner's memory.
pub(crate) struct ChildConfig<'a> {
    pub spec: &'a Spec,
    pub rootfs: PathBuf,
    pub init: bool,
    /// Ends of the sync pipes.
    pub to_parent: File,
    pub from_parent: File,
    pub opts: InitOptions<'a>,
}

/// What the init does beyond the spec: how it waits for start, and the runner's
/// preparations it consumes.
pub(crate) struct InitOptions<'a> {
    /// The state directory (`O_PATH`): wait on its `exec.fifo` instead of the sync pipe,
    /// for a `start` that may come from another process.
    pub exec_fifo: Option<BorrowedFd<'a>>,
    /// Connected console socket, for `process.terminal`.
    pub console: Option<BorrowedFd<'a>>,
    pub seccomp: Option<&'a crate::seccomp::Program>,
    pub no_pivot: bool,
    /// Name of a new session keyring to join.
    pub session_keyring: Option<&'a str>,
    pub preserve_fds: u32,
}

fn namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .into_iter()
        .map(|n| (n.typ(), n.path().clone()))
        .collect()
}

pub(crate) fn wants_new(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    namespaces(spec)
        .iter()
        .any(|(t, p)| *t == typ && p.is_none())
}

pub(crate) fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_truncate(typ as i32)
}

/// Runs in the first forked child and never returns: errors go to the runner.
pub(crate) fn stage1(mut cfg: ChildConfig<'_>) -> ! {
    let result = stage1_inner(&mut cfg);
    let e = match result {
        // SAFETY: _exit in a forked child, skipping the caller's atexit handlers.
        Ok(()) => unsafe { libc::_exit(0) },
        Err(e) => e,
    };
    report(&mut cfg.to_parent, &e);
    // SAFETY: _exit in a forked child, skipping the caller's atexit handlers.
    unsafe { libc::_exit(1) }
}

fn report(to_parent: &mut File, e: &ChildError) {
    let kind = match e {
        ChildError::NotFound(_) => FailureKind::NotFound,
        ChildError::PermissionDenied { .. } => FailureKind::PermissionDenied,
        _ => FailureKind::Setup,
    };
    let _ = channel::send(to_parent, &Message::Failure(kind, chain(e)));
}

/// "a: b: c" from an error and its sources, so the runner can print one line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

fn stage1_inner(cfg: &mut ChildConfig<'_>) -> Result<(), ChildError> {
    let ns = namespaces(cfg.spec);
    // Joining comes first (user first: it decides what the others may do).
    let mut ordered: Vec<_> = ns.iter().filter(|(_, p)| p.is_some()).collect();
    ordered.sort_by_key(|(t, _)| *t != LinuxNamespaceType::User);
    for (typ, path) in ordered {
        let path = path.as_ref().expect("filtered");
        let f = File::open(path).map_err(io(format!("opening namespace {}", path.display())))?;
        nix::sched::setns(f, clone_flag(*typ))
            .map_err(sys(format!("joining {typ} namespace {}", path.display())))?;
    }
    if wants_new(cfg.spec, LinuxNamespaceType::User) {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER)
            .map_err(sys("creating the user namespace"))?;
        channel::send(&mut cfg.to_parent, &Message::NeedIdMaps)?;
        channel::wait(&mut cfg.from_parent)?;
        become_namespace_root(cfg.spec)?;
    }
    // The cgroup namespace waits until init is in its cgroup (see `init`), and the user
    // namespace was done above; everything else is created here so it is owned by it.
    let mut flags = CloneFlags::empty();
    for (typ, path) in &ns {
        if path.is_none() && !matches!(typ, LinuxNamespaceType::User | LinuxNamespaceType::Cgroup) {
            flags |= clone_flag(*typ);
        }
    }
    if !flags.is_empty() {
        nix::sched::unshare(flags).map_err(sys(format!("creating namespaces {flags:?}")))?;
    }
    // CLONE_PARENT makes init the runner's child, so the runner waits on it directly and
    // this intermediate process can exit now.
    // SAFETY: a fork-like clone (no new stack, no shared memory) from a single-threaded
    // process (a fork child: the fork rule holds here by construction).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match pid {
        -1 => Err(sys("cloning the container init")(nix::Error::last())),
        0 => init(cfg),
        pid => {
            channel::send(&mut cfg.to_parent, &Message::InitPid(pid as i32))?;
            Ok(())
        }
    }
}

/// Our host uid is usually unmapped in the new user namespace (we would be "nobody"):
/// switch to the namespace's root when the maps have one, so mounts and file ownership
/// inside work as the container's root.
fn become_namespace_root(spec: &Spec) -> Result<(), ChildError> {
    let linux = spec.linux().as_ref();
    let maps_zero = |m: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| {
        m.is_some_and(|m| m.iter().any(|e| e.container_id() == 0 && e.size() > 0))
    };
    if maps_zero(linux.and_then(|l| l.gid_mappings().as_ref())) {
        let _ = nix::unistd::setgroups(&[]);
        let root = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(root, root, root).map_err(sys("setgid(0) in the user namespace"))?;
    }
    if maps_zero(linux.and_then(|l| l.uid_mappings().as_ref())) {
        let root = nix::unistd::Uid::from_raw(0);
        nix::unistd::setresuid(root, root, root).map_err(sys("setuid(0) in the user namespace"))?;
    }
    Ok(())
}

/// The container's init: never returns (exec, or exit after reporting the error).
fn init(cfg: &mut ChildConfig<'_>) -> ! {
    let mut started = false;
    let e = match init_inner(cfg, &mut started) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    if started && cfg.opts.exec_fifo.is_some() {
        // `start` came from another process and the runner that created us is gone: the
        // container's stderr is the only one left to tell, with docker's exit codes.
        let _ = writeln!(std::io::stderr(), "basic-runtime: {}", chain(&e));
        let code = match e {
            ChildError::NotFound(_) => 127,
            ChildError::PermissionDenied { .. } => 126,
            _ => 1,
        };
        // SAFETY: _exit in the container's init, before anything of the caller's runs.
        unsafe { libc::_exit(code) }
    }
    report(&mut cfg.to_parent, &e);
    // SAFETY: _exit in a forked child, skipping the caller's atexit handlers.
    unsafe { libc::_exit(1) }
}

fn init_inner(
    cfg: &mut ChildConfig<'_>,
    started: &mut bool,
) -> Result<std::convert::Infallible, ChildError> {
    // Until exec this process is the engine's program: processes already in namespaces we
    // join must not open its /proc/<pid>/exe or memory (exec resets the flag).
    nix::sys::prctl::set_dumpable(false).map_err(sys("prctl(PR_SET_DUMPABLE, 0)"))?;
    // The runner adds us to the cgroup, then says go.
    channel::wait(&mut cfg.from_parent)?;
    let spec = cfg.spec;
    if wants_new(spec, LinuxNamespaceType::Cgroup) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .map_err(sys("creating the cgroup namespace"))?;
    }
    if wants_new(spec, LinuxNamespaceType::Uts) {
        if let Some(h) = spec.hostname() {
            nix::unistd::sethostname(h).map_err(sys(format!("setting hostname {h:?}")))?;
        }
        if let Some(d) = spec.domainname() {
            // SAFETY: nix has no setdomainname; it reads `d.len()` bytes of `d`.
            let ret = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
            if ret != 0 {
                return Err(sys(format!("setting domainname {d:?}"))(nix::Error::last()));
            }
        }
    }
    // A mount namespace joined by path (stage1 did) is the container's, as the spec says;
    // with none at all the root filesystem would be built in the runtime's own.
    if !namespaces(spec)
        .iter()
        .any(|(t, _)| *t == LinuxNamespaceType::Mount)
    {
        return Err(ChildError::Spec(
            "a mount namespace (new, or joined by path) is required to set up the root filesystem"
                .into(),
        ));
    }
    if let Some(name) = cfg.opts.session_keyring {
        keyring::join_session(name)?;
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| ChildError::Spec("the spec has no process".into()))?;
    // The hooks of create run once the mounts are made, before pivot_root: the runner's
    // (prestart, createRuntime) first, then ours (createContainer), all with the state the
    // runner sends, which startContainer gets too.
    let hooks = spec.hooks().as_ref();
    let mut state_json = None;
    let (to_parent, from_parent) = (&mut cfg.to_parent, &mut cfg.from_parent);
    let mut before_pivot = || -> Result<(), ChildError> {
        if !crate::hooks::any_in_container_setup(spec) {
            return Ok(());
        }
        channel::send(to_parent, &Message::Hooks)?;
        let json = channel::recv_state(from_parent)?;
        let kind = crate::hooks::HookKind::CreateContainer;
        crate::hooks::run(kind, kind.of(hooks), &json)?;
        state_json = Some(json);
        Ok(())
    };
    rootfs::setup(spec, &cfg.rootfs, cfg.opts.no_pivot, &mut before_pivot)?;
    match cfg.opts.console {
        Some(socket) => {
            let size = process
                .console_size()
                .as_ref()
                .map(|b| (b.height() as u16, b.width() as u16));
            crate::console::setup_in_container(socket, process.user().uid(), size)?;
        }
        None => new_session()?,
    }
    // Descriptors the embedding program left open must not reach the container; the
    // preserved ones are passed on on purpose; the sync pipes and the exec fifo's directory
    // are ours and close on exec.
    let mut keep = vec![cfg.to_parent.as_raw_fd(), cfg.from_parent.as_raw_fd()];
    keep.extend(cfg.opts.exec_fifo.map(|fd| fd.as_raw_fd()));
    let fds = KeepFds {
        first: 3u32.saturating_add(cfg.opts.preserve_fds),
        keep: &keep,
    };
    let cmd = confine(process, cfg.opts.seccomp, fds)?;
    channel::send(&mut cfg.to_parent, &Message::Ready)?;
    let start_hooks = || -> Result<(), ChildError> {
        let kind = crate::hooks::HookKind::StartContainer;
        match &state_json {
            Some(json) => Ok(crate::hooks::run(kind, kind.of(hooks), json)?),
            None => Ok(()),
        }
    };
    wait_for_start(cfg, start_hooks)?;
    *started = true;
    if cfg.init {
        tiny_init::run(cmd, &mut cfg.to_parent)
    } else {
        Err(cmd.exec())
    }
}

/// Parks the set-up init until it may exec: the runner's "go" on the sync pipe, or a reader
/// on the exec fifo (`start`); then runs the `startContainer` hooks. Opening the fifo for
/// writing blocks until `start` opens it for reading; the byte written tells `start` the
/// init got there (`0`), or, after a failed hook, `1` and the error, which `start` reports.
fn wait_for_start(
    cfg: &mut ChildConfig<'_>,
    start_hooks: impl FnOnce() -> Result<(), ChildError>,
) -> Result<(), ChildError> {
    let Some(dir) = cfg.opts.exec_fifo else {
        channel::wait(&mut cfg.from_parent)?;
        return start_hooks();
    };
    let fd = nix::fcntl::openat(
        dir,
        crate::state::EXEC_FIFO,
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(ChildError::Fifo)?;
    if let Err(e) = start_hooks() {
        let _ = nix::unistd::write(&fd, format!("1{}", chain(&e)).as_bytes());
        return Err(e);
    }
    nix::unistd::write(&fd, b"0").map_err(ChildError::Fifo)?;
    Ok(())
}

/// A session of its own: the container must not share the caller's controlling terminal
/// (through `/dev/tty` it could otherwise type into it with TIOCSTI).
pub(crate) fn new_session() -> Result<(), ChildError> {
    nix::unistd::setsid()
        .map(drop)
        .map_err(sys("starting a new session"))
}
