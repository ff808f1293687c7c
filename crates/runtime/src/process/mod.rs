//! What runs on the container side of the fork, read top-down:
//! [`stage1`] enters/creates namespaces and clones the init; [`init`] waits for the runner,
//! builds the root filesystem, drops privileges and execs the command.

mod exec;
mod rootfs;
mod security;
mod tiny_init;

pub(crate) use rootfs::root_is_ramfs;
pub(crate) use security::{rlimit_resource, to_caps};

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::channel::{self, FailureKind, Message};

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
        Ok(()) => unsafe { libc::_exit(0) },
        Err(e) => e,
    };
    report(&mut cfg.to_parent, &e);
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
    // this intermediate process can exit now. We are single-threaded (a fork child), so a
    // raw clone is as safe as fork here.
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
    let e = match init_inner(cfg) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    report(&mut cfg.to_parent, &e);
    unsafe { libc::_exit(1) }
}

fn init_inner(cfg: &mut ChildConfig<'_>) -> Result<std::convert::Infallible, ChildError> {
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
            // nix has no setdomainname; the syscall is trivial.
            let ret = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
            if ret != 0 {
                return Err(sys(format!("setting domainname {d:?}"))(nix::Error::last()));
            }
        }
    }
    if !wants_new(spec, LinuxNamespaceType::Mount) {
        return Err(ChildError::Spec(
            "a new mount namespace is required to set up the root filesystem".into(),
        ));
    }
    rootfs::setup(spec, &cfg.rootfs)?;
    security::apply_sysctl(spec)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| ChildError::Spec("the spec has no process".into()))?;
    security::apply_rlimits(process)?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(io("writing /proc/self/oom_score_adj"))?;
    }
    security::switch_user_and_caps(process)?;
    let umask = process.user().umask().unwrap_or(0o022);
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
    enter_cwd(process.cwd())?;
    let cmd = exec::Command::new(process)?;
    // Descriptors the embedding program left open must not leak into the container.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if cfg.init {
        tiny_init::run(cmd, &mut cfg.to_parent)
    } else {
        Err(cmd.exec())
    }
}

fn enter_cwd(cwd: &Path) -> Result<(), ChildError> {
    let cwd = if cwd.as_os_str().is_empty() {
        Path::new("/")
    } else {
        cwd
    };
    // Like runc: a missing working directory is created rather than refused.
    if !cwd.exists() {
        let _ = std::fs::create_dir_all(cwd);
    }
    nix::unistd::chdir(cwd).map_err(sys(format!("changing directory to {}", cwd.display())))
}
