//! A container run in the foreground: builder, the runner's side of the start protocol,
//! waiting, cleanup.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::cgroups::{self, CgroupError, CgroupManager};
use crate::channel::{self, ChannelError, FailureKind, Message};
use crate::hooks::HookKind;
use crate::process::{self, ChildConfig, InitOptions};
use crate::signals;

/// Errors running a container. [`ContainerError::exit_code`] maps them to docker's codes.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The work given to [`ContainerBuilder::before_exec`] failed; the container's
    /// processes were killed.
    #[error("container {id}: before its command ran: {message}")]
    BeforeExec {
        /// The container.
        id: String,
        /// What failed.
        message: String,
    },
    /// The container id is empty or has characters that do not belong in a path.
    #[error("invalid container id {0:?}: use letters, digits, '_', '-' and '.'")]
    InvalidId(String),
    /// The root filesystem does not exist.
    #[error("root filesystem {0} is not a directory")]
    NoRootfs(PathBuf),
    /// The spec is unusable as given.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// Loading a bundle's config.json failed.
    #[error("loading {path}")]
    LoadSpec {
        /// The config file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// Setting up the cgroup failed.
    #[error("container {id}: cgroup setup")]
    Cgroup {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: CgroupError,
    },
    /// The sync pipes failed.
    #[error("container {id}: talking to the container's processes")]
    Channel {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: ChannelError,
    },
    /// A syscall on the runner's side failed.
    #[error("container {id}: {what}")]
    Sys {
        /// The container.
        id: String,
        /// The operation.
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// Writing run-time state or id maps failed.
    #[error("container {id}: writing {path}")]
    Io {
        /// The container.
        id: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The container's processes failed before exec (the message comes from them).
    #[error("container {id}: {message}")]
    Start {
        /// The container.
        id: String,
        /// What kind of failure: not found, permission denied, or setup.
        kind: FailureKind,
        /// The whole error chain, as text.
        message: String,
    },
    /// The spec's seccomp profile cannot be compiled.
    #[error("container {id}: seccomp")]
    Seccomp {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: crate::seccomp::SeccompError,
    },
    /// This program runs from a file a container could overwrite (see
    /// [`crate::sealed_exe`]).
    #[error("container {id}: refusing to start")]
    ExposedBinary {
        /// The container.
        id: String,
        /// Why the program is not sealed, or could not be checked.
        #[source]
        source: crate::sealed_exe::SealError,
    },
    /// This process has other threads (see [`crate::fork_rule`]).
    #[error("container {id}: refusing to fork")]
    ForkRule {
        /// The container.
        id: String,
        /// How many threads, or why they could not be counted.
        #[source]
        source: crate::fork_rule::ForkRuleError,
    },
    /// The console socket could not be reached.
    #[error("container {id}: console")]
    Console {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: crate::console::ConsoleError,
    },
    /// A `prestart` or `createRuntime` hook failed (the container was stopped).
    #[error("container {id}")]
    Hook {
        /// The container.
        id: String,
        /// Which hook, and how it failed.
        #[source]
        source: crate::hooks::HookError,
    },
    /// The spec sets resource limits, but this process (rootless) cannot create a cgroup
    /// to enforce them (see [`crate::cgroups::unprivileged`]).
    #[error("container {id}: {message}")]
    RootlessLimits {
        /// The container.
        id: String,
        /// Which limits, and what the host would need.
        message: String,
    },
    /// `newuidmap` or `newgidmap` refused the spec's id mappings (ids the user was not
    /// given in `/etc/subuid` or `/etc/subgid`) or could not run.
    #[error("container {id}: {helper} refused the spec's id mappings: {message}")]
    IdMap {
        /// The container.
        id: String,
        /// `newuidmap` or `newgidmap`.
        helper: String,
        /// What it said.
        message: String,
    },
    /// Something failed, and so did removing the cgroup afterwards.
    #[error("{error}; cleaning up also failed: {cleanup}")]
    Cleanup {
        /// The first failure.
        #[source]
        error: Box<ContainerError>,
        /// The cleanup failure.
        cleanup: CgroupError,
    },
}

impl ContainerError {
    /// docker's convention: 127 command not found, 126 cannot execute, 125 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ContainerError::Start {
                kind: FailureKind::NotFound,
                ..
            } => 127,
            ContainerError::Start {
                kind: FailureKind::PermissionDenied,
                ..
            } => 126,
            ContainerError::Cleanup { error, .. } => error.exit_code(),
            _ => 125,
        }
    }
}

/// How the container's init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
    /// Whether the kernel OOM-killed a process of the container.
    pub oom_killed: bool,
}

impl ExitStatus {
    /// The shell's convention: the exit code, or 128 + the signal number.
    pub fn exit_code(&self) -> i32 {
        self.code.unwrap_or_else(|| 128 + self.signal.unwrap_or(0))
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exited with code {c}")?,
            (_, Some(s)) => write!(f, "killed by signal {s}")?,
            _ => write!(f, "ended")?,
        }
        if self.oom_killed {
            write!(f, " (OOM killed)")?;
        }
        Ok(())
    }
}

/// runc's rule for `root.path`: it must name the root itself, not a symlink to it nor a
/// path through one (a bundle's `rootfs -> /` would otherwise run the container on the
/// host's root).
fn refuse_symlinked_root(rootfs: &Path) -> Result<(), ContainerError> {
    let Ok(real) = rootfs.canonicalize() else {
        return Err(ContainerError::NoRootfs(rootfs.to_path_buf()));
    };
    if real != crate::in_root::lexical(rootfs) {
        return Err(ContainerError::InvalidSpec(format!(
            "root.path {} is a symlink or goes through one (to {}): give the real path",
            rootfs.display(),
            real.display()
        )));
    }
    Ok(())
}

/// Options shared by every way of starting a container.
#[derive(Debug, Clone)]
pub struct ContainerBuilder {
    pub(crate) id: String,
    pub(crate) spec: Spec,
    pub(crate) rootfs: PathBuf,
    pub(crate) state_dir: PathBuf,
    pub(crate) cgroup_root: PathBuf,
    pub(crate) use_cgroups: bool,
    pub(crate) init: bool,
    pub(crate) forward_signals: bool,
    pub(crate) bundle: Option<PathBuf>,
    pub(crate) console_socket: Option<ConsoleSocket>,
    pub(crate) no_pivot: bool,
    pub(crate) new_keyring: bool,
    pub(crate) preserve_fds: u32,
    pub(crate) require_sealed_exe: bool,
    pub(crate) allow_multithreaded_fork: bool,
    pub(crate) seccomp_cache: Option<PathBuf>,
    pub(crate) before_exec: BeforeExec,
}

/// What [`ContainerBuilder::before_exec`] was given: run at most once, by whichever start
/// comes first (the builder is cloned into the container).
#[derive(Clone, Default)]
pub(crate) struct BeforeExec(Arc<std::sync::Mutex<Option<BeforeExecFn>>>);

type BeforeExecFn = Box<dyn FnOnce() -> Result<(), String> + Send>;

impl BeforeExec {
    /// Runs the work if it has not run yet.
    fn run(&self) -> Result<(), String> {
        let work = match self.0.lock() {
            Ok(mut slot) => slot.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        work.map_or(Ok(()), |f| f())
    }
}

impl std::fmt::Debug for BeforeExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pending = self.0.lock().map(|s| s.is_some()).unwrap_or(false);
        f.debug_struct("BeforeExec")
            .field("pending", &pending)
            .finish()
    }
}

/// Where the pty master of a `process.terminal` container goes.
#[derive(Debug, Clone)]
pub(crate) enum ConsoleSocket {
    /// A listening unix socket to connect to.
    Path(PathBuf),
    /// An already connected socket.
    Fd(Arc<OwnedFd>),
}

/// A container ready to run.
#[derive(Debug)]
pub struct Container {
    pub(crate) b: ContainerBuilder,
    /// Whether the create hooks' moment was reached: a failure after it is followed by
    /// the `poststop` hooks, as the spec's lifecycle says.
    pub(crate) hooks_ran: std::sync::atomic::AtomicBool,
    /// Set when [`Container::setup_cgroup`] decided to run without a cgroup of its own
    /// (rootless, no writable hierarchy, no limits): the state then names none.
    pub(crate) without_cgroup: std::sync::atomic::AtomicBool,
}

/// The init, set up and parked before exec, with the pipes to it.
pub(crate) struct Spawned {
    pub init: Pid,
    pub from_child: File,
    pub to_child: File,
}

/// What is prepared in the runner before the fork: the compiled seccomp filter and the
/// connected console socket.
pub(crate) struct Prepared {
    seccomp: Option<crate::seccomp::Program>,
    console: Option<Arc<OwnedFd>>,
}

impl Container {
    /// Starts building container `id` from `spec`, with its root filesystem at `rootfs`
    /// (the spec's `root.path` is ignored; see [`Container::from_bundle`] for bundles).
    pub fn builder(
        id: impl Into<String>,
        spec: Spec,
        rootfs: impl Into<PathBuf>,
    ) -> ContainerBuilder {
        ContainerBuilder {
            id: id.into(),
            spec,
            rootfs: rootfs.into(),
            state_dir: PathBuf::from("/run/basic-docker"),
            cgroup_root: PathBuf::from(cgroups::DEFAULT_ROOT),
            use_cgroups: true,
            init: false,
            forward_signals: true,
            bundle: None,
            console_socket: None,
            no_pivot: false,
            new_keyring: true,
            preserve_fds: 0,
            require_sealed_exe: true,
            allow_multithreaded_fork: false,
            seccomp_cache: None,
            before_exec: BeforeExec::default(),
        }
    }

    /// A builder for an OCI bundle: `<bundle>/config.json`, rootfs relative to the bundle.
    pub fn from_bundle(
        id: impl Into<String>,
        bundle: &Path,
    ) -> Result<ContainerBuilder, ContainerError> {
        let path = bundle.join("config.json");
        let spec = Spec::load(&path).map_err(|source| ContainerError::LoadSpec {
            path: path.clone(),
            source,
        })?;
        let root = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| PathBuf::from("rootfs"));
        // The bundle directory is the caller's; what is inside it may come from anyone.
        let bundle_dir = bundle.canonicalize().map_err(|source| ContainerError::Io {
            id: String::new(),
            path: bundle.to_path_buf(),
            source,
        })?;
        let rootfs = if root.is_absolute() {
            root
        } else {
            bundle_dir.join(root)
        };
        refuse_symlinked_root(&rootfs)?;
        let mut b = Container::builder(id, spec, rootfs);
        b.bundle = Some(
            bundle
                .canonicalize()
                .unwrap_or_else(|_| bundle.to_path_buf()),
        );
        Ok(b)
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.b.id
    }

    /// The cgroup path (relative to the hierarchy root) this container uses.
    pub fn cgroup_path(&self) -> PathBuf {
        self.b
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .unwrap_or_else(|| PathBuf::from(format!("basic-docker/{}", self.b.id)))
    }
}

impl ContainerBuilder {
    /// Directory for run-time state (`<dir>/<id>/state.json`); default `/run/basic-docker`.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Root of the cgroup hierarchies; default `/sys/fs/cgroup`.
    pub fn cgroup_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cgroup_root = dir.into();
        self
    }

    /// Whether to put the container in its own cgroup (default true). A rootless caller
    /// need not turn it off: where the hierarchy is not writable to it, a container
    /// without limits runs without one anyway (see [`crate::cgroups::unprivileged`]).
    pub fn cgroups(mut self, on: bool) -> Self {
        self.use_cgroups = on;
        self
    }

    /// Run a tiny init as PID 1 that reaps zombies and forwards signals (docker `--init`).
    pub fn init(mut self, on: bool) -> Self {
        self.init = on;
        self
    }

    /// Work to finish before the container's command runs, overlapping the creation of
    /// its processes: `work` runs once, at the first [`Container::start`], after the
    /// container's init has joined its namespaces and set up its root and before the
    /// command is executed — e.g. waiting for a user-mode network helper to configure the
    /// network namespace the init joined. An error stops that start: the init is killed
    /// and the start fails with [`ContainerError::BeforeExec`]. Dropped unrun when no
    /// start gets that far. Runs in the starting process, which may not start threads
    /// that outlive `work` (the fork rule, [`crate::fork_rule`]).
    pub fn before_exec(self, work: impl FnOnce() -> Result<(), String> + Send + 'static) -> Self {
        *self
            .before_exec
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(work));
        self
    }

    /// Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 received by this process to the
    /// container while it runs (default true). This replaces the process's handlers for
    /// that time.
    pub fn forward_signals(mut self, on: bool) -> Self {
        self.forward_signals = on;
        self
    }

    /// The bundle directory reported in the container's state (set by
    /// [`Container::from_bundle`]).
    pub fn bundle(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bundle = Some(dir.into());
        self
    }

    /// The unix socket to send the pty master to when `process.terminal` is true (runc's
    /// `--console-socket`). A terminal without a console socket is refused.
    pub fn console_socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.console_socket = Some(ConsoleSocket::Path(path.into()));
        self
    }

    /// Like [`ContainerBuilder::console_socket`], with an already connected socket (one end
    /// of a socketpair, say, for a caller that proxies the terminal itself; receive the
    /// master with [`crate::console::recv_master`]).
    pub fn console_socket_fd(mut self, socket: OwnedFd) -> Self {
        self.console_socket = Some(ConsoleSocket::Fd(Arc::new(socket)));
        self
    }

    /// Enter the root with `MS_MOVE` and `chroot` instead of `pivot_root` (runc's
    /// `--no-pivot`, for roots on a ramfs). Default false.
    pub fn no_pivot(mut self, on: bool) -> Self {
        self.no_pivot = on;
        self
    }

    /// Give the container a new session keyring named after its id, so containers do not
    /// share kernel keys (default true; runc's `--no-new-keyring` turns it off).
    pub fn new_keyring(mut self, on: bool) -> Self {
        self.new_keyring = on;
        self
    }

    /// Pass file descriptors 3 to 3+n-1 of this process on to the container's command
    /// (runc's `--preserve-fds`). Default 0: everything above stderr is closed.
    pub fn preserve_fds(mut self, n: u32) -> Self {
        self.preserve_fds = n;
        self
    }

    /// Whether to refuse to start the container's processes unless this program runs from a
    /// sealed copy of itself (default true; see [`crate::sealed_exe`]). Turn it off only for
    /// a program whose file does not matter once it has run, such as a test binary.
    pub fn require_sealed_exe(mut self, on: bool) -> Self {
        self.require_sealed_exe = on;
        self
    }

    /// Fork even when this process has other threads, against [the fork
    /// rule](crate::fork_rule) (default false: refused with [`ContainerError::ForkRule`]).
    /// Only for a caller that accepts that a lock held by another thread at the moment of
    /// the fork can hang the container's setup: a test harness, whose other threads are
    /// other tests.
    pub fn allow_multithreaded_fork(mut self, on: bool) -> Self {
        self.allow_multithreaded_fork = on;
        self
    }

    /// A directory (private to this program's user) where compiled seccomp programs are
    /// kept for the next container with the same profile (see
    /// [`crate::seccomp::Program::compile_cached`]). Default: none, compile every time.
    pub fn seccomp_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.seccomp_cache = Some(dir.into());
        self
    }

    /// Validates and returns the container.
    pub fn build(self) -> Result<Container, ContainerError> {
        let ok = !self.id.is_empty()
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            && !self.id.starts_with('.');
        if !ok {
            return Err(ContainerError::InvalidId(self.id));
        }
        if !self.rootfs.is_dir() {
            return Err(ContainerError::NoRootfs(self.rootfs));
        }
        let last_is_link =
            std::fs::symlink_metadata(&self.rootfs).is_ok_and(|m| m.file_type().is_symlink());
        if last_is_link {
            return Err(ContainerError::InvalidSpec(format!(
                "the root filesystem {} is a symlink: give the real path",
                self.rootfs.display()
            )));
        }
        if self.spec.process().is_none() {
            return Err(ContainerError::InvalidSpec("no process".into()));
        }
        let rootfs = self
            .rootfs
            .canonicalize()
            .map_err(|source| ContainerError::Io {
                id: self.id.clone(),
                path: self.rootfs.clone(),
                source,
            })?;
        Ok(Container {
            b: ContainerBuilder { rootfs, ..self },
            hooks_ran: std::sync::atomic::AtomicBool::new(false),
            without_cgroup: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

impl Container {
    /// Whether this process forwards the signals it gets to the init (see
    /// [`ContainerBuilder::forward_signals`]).
    pub fn forwards_signals(&self) -> bool {
        self.b.forward_signals
    }

    /// The container whose init `pid` this process started in an earlier program image of
    /// itself (a supervisor re-executes itself while the container runs; see
    /// [`crate::supervisor`]): [`Running::wait`] reaps it and cleans up as after
    /// [`Container::start`]. `pid` must be this process's child, not yet reaped.
    pub fn adopt(&self, pid: i32) -> Running<'_> {
        // The earlier image decided as this one would: the same user, the same hierarchy.
        let created = !crate::cgroups::unprivileged::runtime_is_unprivileged()
            || crate::cgroups::unprivileged::writable(&self.b.cgroup_root, &self.cgroup_path());
        let cgroup = (self.b.use_cgroups && created)
            .then(|| cgroups::manager_for(&self.b.cgroup_root, &self.cgroup_path()));
        Running {
            container: self,
            init: Pid::from_raw(pid),
            cgroup,
            forward: self.b.forward_signals.then(|| signals::forward_to(pid)),
            finished: false,
        }
    }

    /// Runs the container in the foreground until its init exits; the cgroup and the state
    /// directory are removed before returning. The same as [`Container::start`] then
    /// [`Running::wait`], and under the same [fork rule](crate::fork_rule): the calling
    /// process must be single-threaded.
    pub fn run(&self) -> Result<ExitStatus, ContainerError> {
        self.start()?.wait()
    }

    /// Starts the container and returns once its command runs (the init has exec'd): the
    /// cgroup is set up, the processes are forked, the state file says `running`, and
    /// signals are forwarded when [`ContainerBuilder::forward_signals`] says so.
    ///
    /// **The fork rule** (see [`crate::fork_rule`]): the calling process must be
    /// single-threaded, or this returns [`ContainerError::ForkRule`] before anything is set
    /// up. Once this has returned the forks are done, and the caller may start threads
    /// (to relay the container's stdio, say) until it calls [`Running::wait`].
    pub fn start(&self) -> Result<Running<'_>, ContainerError> {
        self.enforce_fork_rule()?;
        let cgroup = self.setup_cgroup()?;
        match self.start_in(cgroup.as_deref()) {
            Ok((init, forward)) => Ok(Running {
                container: self,
                init,
                cgroup,
                forward,
                finished: false,
            }),
            Err(e) => {
                self.remove_state();
                self.poststop_after_failure(None);
                Err(match cgroup {
                    Some(m) => with_cleanup(e, m.remove()),
                    None => e,
                })
            }
        }
    }

    /// Refuses to go on from a threaded process unless the caller accepted the risk.
    pub(crate) fn enforce_fork_rule(&self) -> Result<(), ContainerError> {
        crate::fork_rule::enforce(self.b.allow_multithreaded_fork).map_err(|source| {
            ContainerError::ForkRule {
                id: self.b.id.clone(),
                source,
            }
        })
    }

    fn remove_state(&self) {
        let _ = std::fs::remove_dir_all(self.b.state_dir.join(&self.b.id));
    }

    /// Creates the cgroup and writes the limits, before anything runs in it.
    pub(crate) fn setup_cgroup(&self) -> Result<Option<Box<dyn CgroupManager>>, ContainerError> {
        if !self.b.use_cgroups {
            return Ok(None);
        }
        if !self.may_create_cgroup()? {
            self.without_cgroup
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return Ok(None);
        }
        let m = cgroups::manager_for(&self.b.cgroup_root, &self.cgroup_path());
        let cgerr = |source| ContainerError::Cgroup {
            id: self.b.id.clone(),
            source,
        };
        let setup = m.create().and_then(|()| match self.resources() {
            Some(r) => {
                let listed = self
                    .b
                    .spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.devices().as_deref());
                m.apply(&with_default_devices(r, listed.unwrap_or_default()))
            }
            None => Ok(()),
        });
        if let Err(e) = setup {
            return Err(with_cleanup(cgerr(e), m.remove()));
        }
        Ok(Some(m))
    }

    /// runc's rootless rule: a runtime that is not the host's root and cannot write the
    /// hierarchy runs a container without limits in its own cgroup (false), and refuses
    /// one with limits; everyone else creates the container's cgroup (true).
    fn may_create_cgroup(&self) -> Result<bool, ContainerError> {
        use crate::cgroups::unprivileged;
        if !unprivileged::runtime_is_unprivileged()
            || unprivileged::writable(&self.b.cgroup_root, &self.cgroup_path())
        {
            return Ok(true);
        }
        let limits = self
            .resources()
            .map(unprivileged::limits_in)
            .unwrap_or_default();
        if limits.is_empty() {
            return Ok(false);
        }
        Err(ContainerError::RootlessLimits {
            id: self.b.id.clone(),
            message: unprivileged::no_cgroup_for_limits(
                &limits,
                cgroups::detect_version(&self.b.cgroup_root),
            ),
        })
    }

    /// Whether the container has a cgroup of its own.
    fn has_cgroup(&self) -> bool {
        self.b.use_cgroups
            && !self
                .without_cgroup
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn resources(&self) -> Option<&oci_spec::runtime::LinuxResources> {
        self.b
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
    }

    fn sys(&self, what: impl Into<String>) -> impl FnOnce(nix::Error) -> ContainerError {
        let (id, what) = (self.b.id.clone(), what.into());
        move |source| ContainerError::Sys { id, what, source }
    }

    fn chan(&self) -> impl FnOnce(ChannelError) -> ContainerError {
        let id = self.b.id.clone();
        move |source| ContainerError::Channel { id, source }
    }

    /// Forks the container's processes into `cg`, records them running and lets the init
    /// exec; returns the init with the signal forwarding that lasts until it is waited for.
    fn start_in(
        &self,
        cg: Option<&dyn CgroupManager>,
    ) -> Result<(Pid, Option<signals::ForwardGuard>), ContainerError> {
        let prepared = self.prepare()?;
        let mut sp = self.spawn(cg, &prepared, None)?;
        let init = sp.init;
        // Recorded before it runs (a runner that dies now leaves a state naming the init),
        // and said running only once the command was executed: until then the init is
        // still this program, and whoever waits for the start (`docker start`, then `top`
        // or `exec`) must not find it so.
        self.write_state(init, crate::state::Status::Creating)
            .map_err(|e| kill_init(init, e))?;
        let forward = self
            .b
            .forward_signals
            .then(|| signals::forward_to(init.as_raw()));
        self.b.before_exec.run().map_err(|message| {
            kill_init(
                init,
                ContainerError::BeforeExec {
                    id: self.b.id.clone(),
                    message,
                },
            )
        })?;
        channel::signal(&mut sp.to_child).map_err(|e| kill_init(init, self.chan()(e)))?;
        self.expect_exec(&mut sp)?;
        self.write_state(init, crate::state::Status::Running)
            .map_err(|e| kill_init(init, e))?;
        let kind = HookKind::Poststart;
        let hooks = kind.of(self.b.spec.hooks().as_ref());
        if !hooks.is_empty() {
            let json = self.state_json(init, crate::state::Status::Running);
            crate::hooks::run_warning(kind, hooks, &json);
        }
        Ok((init, forward))
    }

    /// Refuses what the spec asks and we do not implement, compiles the seccomp profile
    /// and connects the console socket.
    pub(crate) fn prepare(&self) -> Result<Prepared, ContainerError> {
        let id = &self.b.id;
        crate::spec_check::refuse_unsupported(&self.b.spec).map_err(ContainerError::InvalidSpec)?;
        crate::spec_check::refuse_escapes(&self.b.spec).map_err(ContainerError::InvalidSpec)?;
        crate::spec_check::refuse_bad_version(&self.b.spec).map_err(ContainerError::InvalidSpec)?;
        crate::hooks::validate(&self.b.spec).map_err(ContainerError::InvalidSpec)?;
        refuse_ordinary_user_without_user_namespace(&self.b.spec)
            .map_err(ContainerError::InvalidSpec)?;
        if self.b.require_sealed_exe {
            crate::sealed_exe::check().map_err(|source| ContainerError::ExposedBinary {
                id: id.clone(),
                source,
            })?;
        }
        let seccomp = match self
            .b
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
        {
            Some(profile) => Some(
                crate::seccomp::Program::compile_in(profile, self.b.seccomp_cache.as_deref())
                    .map_err(|source| ContainerError::Seccomp {
                        id: id.clone(),
                        source,
                    })?,
            ),
            None => None,
        };
        let terminal = self
            .b
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let console = match (&self.b.console_socket, terminal) {
            (None, false) => None,
            (Some(_), false) => {
                return Err(ContainerError::InvalidSpec(
                    "a console socket was given but process.terminal is false".into(),
                ));
            }
            (None, true) => {
                return Err(ContainerError::InvalidSpec(
                    "process.terminal is true but no console socket was given to send the terminal to (--console-socket)".into(),
                ));
            }
            (Some(ConsoleSocket::Fd(fd)), true) => Some(fd.clone()),
            (Some(ConsoleSocket::Path(p)), true) => {
                Some(Arc::new(crate::console::connect(p).map_err(|source| {
                    ContainerError::Console {
                        id: id.clone(),
                        source,
                    }
                })?))
            }
        };
        Ok(Prepared { seccomp, console })
    }

    /// Forks the container's processes, puts the init in `cg`, and returns once the init is
    /// set up and parked before exec: on the sync pipe, or on the exec fifo opened relative
    /// to `fifo_dir` when that is given.
    pub(crate) fn spawn(
        &self,
        cg: Option<&dyn CgroupManager>,
        prepared: &Prepared,
        fifo_dir: Option<BorrowedFd<'_>>,
    ) -> Result<Spawned, ContainerError> {
        let (mut from_child, to_parent) = channel::pipe().map_err(self.chan())?;
        let (from_parent, mut to_child) = channel::pipe().map_err(self.chan())?;
        let keyring = self.b.new_keyring.then(|| format!("_ses.{}", self.b.id));
        // SAFETY: `start` and `create`, the only callers, enforced the fork rule (this process
        // is single-threaded, or the caller accepted the risk): the child may run ordinary
        // code. It never returns from `process::stage1`.
        let stage1 = match unsafe { fork() }.map_err(self.sys("fork"))? {
            ForkResult::Child => {
                drop(from_child);
                drop(to_child);
                process::stage1(ChildConfig {
                    spec: &self.b.spec,
                    rootfs: self.b.rootfs.clone(),
                    init: self.b.init,
                    to_parent,
                    from_parent,
                    opts: InitOptions {
                        exec_fifo: fifo_dir,
                        console: prepared.console.as_deref().map(|fd| fd.as_fd()),
                        seccomp: prepared.seccomp.as_ref(),
                        no_pivot: self.b.no_pivot,
                        session_keyring: keyring.as_deref(),
                        preserve_fds: self.b.preserve_fds,
                    },
                })
            }
            ForkResult::Parent { child } => child,
        };
        drop(to_parent);
        drop(from_parent);

        let init = loop {
            match channel::recv(&mut from_child).map_err(self.chan())? {
                Message::NeedIdMaps => {
                    self.write_id_maps(stage1)?;
                    channel::signal(&mut to_child).map_err(self.chan())?;
                }
                Message::InitPid(pid) => break Pid::from_raw(pid),
                Message::Failure(kind, message) => {
                    let _ = waitpid(stage1, None);
                    return Err(self.start_error(kind, message));
                }
                _ => {
                    let _ = waitpid(stage1, None);
                    return Err(self.start_error(
                        FailureKind::Setup,
                        "the container's first process exited before starting init".into(),
                    ));
                }
            }
        };
        let _ = waitpid(stage1, None);
        // From here on the init must not outlive a failure of ours.
        if let Some(cg) = cg {
            cg.add_task(init.as_raw()).map_err(|source| {
                kill_init(
                    init,
                    ContainerError::Cgroup {
                        id: self.b.id.clone(),
                        source,
                    },
                )
            })?;
        }
        channel::signal(&mut to_child).map_err(|e| kill_init(init, self.chan()(e)))?;
        let mut message =
            channel::recv(&mut from_child).map_err(|e| kill_init(init, self.chan()(e)))?;
        if let Message::Hooks = message {
            // The mounts are made and the init waits before pivot_root.
            self.hooks_ran
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let json = self.state_json(init, crate::state::Status::Created);
            let hooks = self.b.spec.hooks().as_ref();
            for kind in [HookKind::Prestart, HookKind::CreateRuntime] {
                crate::hooks::run(kind, kind.of(hooks), &json).map_err(|source| {
                    kill_init(
                        init,
                        ContainerError::Hook {
                            id: self.b.id.clone(),
                            source,
                        },
                    )
                })?;
            }
            channel::send_state(&mut to_child, &json)
                .map_err(|e| kill_init(init, self.chan()(e)))?;
            message =
                channel::recv(&mut from_child).map_err(|e| kill_init(init, self.chan()(e)))?;
        }
        match message {
            Message::Ready => Ok(Spawned {
                init,
                from_child,
                to_child,
            }),
            Message::Failure(kind, message) => {
                Err(kill_init(init, self.start_error(kind, message)))
            }
            Message::Eof => Err(kill_init(
                init,
                self.start_error(
                    FailureKind::Setup,
                    "the container's init exited during setup".into(),
                ),
            )),
            other => Err(kill_init(
                init,
                self.start_error(
                    FailureKind::Setup,
                    format!("unexpected message {other:?} from the container"),
                ),
            )),
        }
    }

    /// After "go": end-of-file on the close-on-exec pipe means the exec worked.
    fn expect_exec(&self, sp: &mut Spawned) -> Result<(), ContainerError> {
        let init = sp.init;
        match channel::recv(&mut sp.from_child).map_err(|e| kill_init(init, self.chan()(e)))? {
            Message::Eof => Ok(()),
            Message::Failure(kind, message) => {
                Err(kill_init(init, self.start_error(kind, message)))
            }
            other => Err(kill_init(
                init,
                self.start_error(
                    FailureKind::Setup,
                    format!("unexpected message {other:?} from the container"),
                ),
            )),
        }
    }

    fn wait(&self, init: Pid) -> Result<ExitStatus, ContainerError> {
        wait_exit(init).map_err(self.sys(format!("waiting for init {init}")))
    }

    fn start_error(&self, kind: FailureKind, message: String) -> ContainerError {
        ContainerError::Start {
            id: self.b.id.clone(),
            kind,
            message,
        }
    }

    /// uid_map/gid_map of the first child's new user namespace. Root writes them itself; so
    /// does an ordinary user whose map is its own id alone (the kernel allows that after
    /// setgroups is denied, a rule since 3.19). Any other map of an ordinary user goes
    /// through the setuid `newuidmap`/`newgidmap` (shadow's `uidmap`), which grant only the
    /// ranges `/etc/subuid` and `/etc/subgid` give the user, as podman does.
    fn write_id_maps(&self, pid: Pid) -> Result<(), ContainerError> {
        let linux = self.b.spec.linux().as_ref();
        let uid = linux.and_then(|l| l.uid_mappings().as_ref());
        let gid = linux.and_then(|l| l.gid_mappings().as_ref());
        let root = nix::unistd::geteuid().is_root();
        let own = |maps: &[LinuxIdMapping], id: u32| {
            root || (maps.len() == 1 && maps[0].host_id() == id && maps[0].size() == 1)
        };
        let direct_uid = uid.is_none_or(|m| own(m, nix::unistd::geteuid().as_raw()));
        let direct_gid = gid.is_none_or(|m| own(m, nix::unistd::getegid().as_raw()));
        if let Some(u) = uid {
            match direct_uid {
                true => self.write_proc_map(pid, "uid_map", u)?,
                false => self.helper_map(pid, "newuidmap", u)?,
            }
        }
        if !root && direct_gid {
            self.write_proc(pid, "setgroups", "deny")?;
        }
        if let Some(g) = gid {
            match direct_gid {
                true => self.write_proc_map(pid, "gid_map", g)?,
                false => self.helper_map(pid, "newgidmap", g)?,
            }
        }
        Ok(())
    }

    fn write_proc(&self, pid: Pid, file: &str, content: &str) -> Result<(), ContainerError> {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, content).map_err(|source| ContainerError::Io {
            id: self.b.id.clone(),
            path,
            source,
        })
    }

    fn write_proc_map(
        &self,
        pid: Pid,
        file: &str,
        maps: &[LinuxIdMapping],
    ) -> Result<(), ContainerError> {
        let content = maps
            .iter()
            .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
            .collect::<String>();
        self.write_proc(pid, file, &content)
    }

    /// `newuidmap PID inside outside count ...`: it checks the ranges against the user's
    /// subordinate ids and says which one it refused.
    fn helper_map(
        &self,
        pid: Pid,
        helper: &str,
        maps: &[LinuxIdMapping],
    ) -> Result<(), ContainerError> {
        let mut cmd = std::process::Command::new(helper);
        cmd.arg(pid.to_string());
        for m in maps {
            cmd.args([
                m.container_id().to_string(),
                m.host_id().to_string(),
                m.size().to_string(),
            ]);
        }
        let failed = |message: String| ContainerError::IdMap {
            id: self.b.id.clone(),
            helper: helper.to_string(),
            message,
        };
        let out = cmd
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                failed(format!(
                    "could not run it ({e}): mapping more than your own id needs it \
                     (Debian: apt install uidmap)"
                ))
            })?;
        if !out.status.success() {
            return Err(failed(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// The state file (runc's fields) other tools read to find the init.
    pub(crate) fn write_state(
        &self,
        init: Pid,
        status: crate::state::Status,
    ) -> Result<crate::state::State, ContainerError> {
        let dir = self.b.state_dir.join(&self.b.id);
        let io = |path: PathBuf| {
            let id = self.b.id.clone();
            move |source| ContainerError::Io { id, path, source }
        };
        let state_err = |e| match e {
            crate::state::StateError::Io { path, source, .. } => io(path)(source),
            other => io(dir.clone())(std::io::Error::other(other)),
        };
        // Owner-only from the start: the state names the bundle and the root filesystem.
        crate::state::create_root(&self.b.state_dir).map_err(state_err)?;
        crate::state::create_container_dir(&dir).map_err(state_err)?;
        let saved = self.saved_state(init, status);
        saved.save(&dir).map_err(state_err)?;
        Ok(saved.state)
    }

    /// The OCI state as the hooks get it on stdin.
    pub(crate) fn state_json(&self, init: Pid, status: crate::state::Status) -> Vec<u8> {
        serde_json::to_vec(&self.saved_state(init, status).state)
            .expect("a state always serialises")
    }

    /// The `poststop` hooks after a failure that followed the create hooks (the spec's
    /// lifecycle goes on with the delete and its poststop hooks); warnings only.
    pub(crate) fn poststop_after_failure(&self, init: Option<Pid>) {
        if !self.hooks_ran.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let json = self.state_json(
            init.unwrap_or(Pid::from_raw(0)),
            crate::state::Status::Stopped,
        );
        let kind = HookKind::Poststop;
        crate::hooks::run_warning(kind, kind.of(self.b.spec.hooks().as_ref()), &json);
    }

    fn saved_state(&self, init: Pid, status: crate::state::Status) -> crate::state::Saved {
        use crate::state::{OCI_VERSION, Saved, State, now_rfc3339, proc_stat};
        Saved {
            state: State {
                oci_version: OCI_VERSION.into(),
                id: self.b.id.clone(),
                pid: init.as_raw(),
                status,
                bundle: self.b.bundle.clone().unwrap_or_default(),
                rootfs: self.b.rootfs.clone(),
                created: now_rfc3339(),
                owner: owner(),
                annotations: self
                    .b
                    .spec
                    .annotations()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .collect(),
            },
            init_start_time: proc_stat(init.as_raw()).map(|s| s.1).unwrap_or(0),
            cgroup_path: self.has_cgroup().then(|| self.cgroup_path()),
            cgroup_root: self.b.cgroup_root.clone(),
            hooks: self.b.spec.hooks().as_ref().and_then(|h| {
                let kept = oci_spec::runtime::HooksBuilder::default()
                    .poststart(h.poststart().clone().unwrap_or_default())
                    .poststop(h.poststop().clone().unwrap_or_default())
                    .build()
                    .ok()?;
                let any = !HookKind::Poststart.of(Some(&kept)).is_empty()
                    || !HookKind::Poststop.of(Some(&kept)).is_empty();
                any.then_some(kept)
            }),
        }
    }
}

/// An ordinary user in the host's user namespace can create the other namespaces only
/// from a user namespace of its own: say so, rather than let `unshare` fail with EPERM.
fn refuse_ordinary_user_without_user_namespace(spec: &Spec) -> Result<(), String> {
    let euid = nix::unistd::geteuid();
    let has_user_namespace = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    if euid.is_root() || crate::rootless::active() || has_user_namespace {
        return Ok(());
    }
    Err(format!(
        "running as uid {euid} (not root), the spec needs a user namespace to create the \
         others in: give it one with uid/gid mappings (`basic-runtime spec --rootless` writes \
         such a spec), or run this inside a user namespace where you are root (a rootless \
         engine's)"
    ))
}

/// runc's `owner`: empty for root, the uid's name otherwise (here the number).
fn owner() -> String {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        String::new()
    } else {
        uid.to_string()
    }
}

/// Kills the init after a failure of ours, so it does not outlive it.
pub(crate) fn kill_init(init: Pid, e: ContainerError) -> ContainerError {
    let _ = nix::sys::signal::kill(init, nix::sys::signal::Signal::SIGKILL);
    let _ = waitpid(init, None);
    e
}

/// runc's rule: whatever the spec's device rules say, the standard nodes every container
/// gets (`/dev/null`, `/dev/zero`, `/dev/full`, `/dev/tty`, `/dev/urandom`, `/dev/random`,
/// the pty multiplexer and pts) stay usable; engines such as podman send only "deny all"
/// and rely on it. So do the nodes the spec lists in `linux.devices` that no rule of its
/// own names (an `rwm` rule each): the spec asks for them to exist in the container, which
/// is of no use if the device cgroup refuses them (and their mknod). A device the rules
/// name keeps the access they give (docker's `--device X:Y:r` is read-only).
fn with_default_devices(
    r: &oci_spec::runtime::LinuxResources,
    listed: &[oci_spec::runtime::LinuxDevice],
) -> oci_spec::runtime::LinuxResources {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
    let Some(rules) = r.devices().as_ref().filter(|d| !d.is_empty()) else {
        return r.clone();
    };
    let rule = |typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>| {
        let mut d = LinuxDeviceCgroup::default();
        d.set_allow(true);
        d.set_typ(Some(typ));
        d.set_major(major);
        d.set_minor(minor);
        d.set_access(Some("rwm".into()));
        d
    };
    let allow = |major: Option<i64>, minor: Option<i64>| rule(LinuxDeviceType::C, major, minor);
    let mut all = rules.clone();
    for dev in listed {
        // A fifo is no device to the cgroup; "u" (unbuffered character) is a "c" to it.
        let typ = match dev.typ() {
            LinuxDeviceType::B => LinuxDeviceType::B,
            LinuxDeviceType::C | LinuxDeviceType::U => LinuxDeviceType::C,
            _ => continue,
        };
        let named = rules.iter().any(|r| {
            r.major() == Some(dev.major())
                && r.minor() == Some(dev.minor())
                && r.typ().is_none_or(|t| t == typ || t == LinuxDeviceType::A)
        });
        if !named {
            all.push(rule(typ, Some(dev.major()), Some(dev.minor())));
        }
    }
    for (major, minor) in [
        (Some(1), Some(3)),
        (Some(1), Some(5)),
        (Some(1), Some(7)),
        (Some(5), Some(0)),
        (Some(1), Some(9)),
        (Some(1), Some(8)),
        (Some(5), Some(2)),
        (Some(136), None),
    ] {
        all.push(allow(major, minor));
    }
    let mut out = r.clone();
    out.set_devices(Some(all));
    out
}

/// Waits for child `pid` to end (through EINTR and stops) and says how it ended.
pub(crate) fn wait_exit(pid: Pid) -> nix::Result<ExitStatus> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => {
                return Ok(ExitStatus {
                    code: Some(code),
                    signal: None,
                    oom_killed: false,
                });
            }
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return Ok(ExitStatus {
                    code: None,
                    signal: Some(sig as i32),
                    oom_killed: false,
                });
            }
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn with_cleanup(error: ContainerError, cleanup: Result<(), CgroupError>) -> ContainerError {
    match cleanup {
        Ok(()) => error,
        Err(cleanup) => ContainerError::Cleanup {
            error: Box::new(error),
            cleanup,
        },
    }
}

/// A container whose command runs, from [`Container::start`]. [`Running::wait`] waits
/// for its init and cleans up (the state directory, the cgroup after reading its OOM
/// counter); dropped without waiting, the container is killed and cleaned up the same way.
#[derive(Debug)]
#[must_use = "dropping a running container kills it"]
pub struct Running<'a> {
    container: &'a Container,
    init: Pid,
    cgroup: Option<Box<dyn CgroupManager>>,
    forward: Option<signals::ForwardGuard>,
    finished: bool,
}

impl Running<'_> {
    /// The init's pid, as this process sees it.
    pub fn pid(&self) -> i32 {
        self.init.as_raw()
    }

    /// Waits until the init exits and says how it ended; the cgroup and the state
    /// directory are removed before returning.
    pub fn wait(mut self) -> Result<ExitStatus, ContainerError> {
        let status = self.container.wait(self.init);
        self.finish(status)
    }

    fn finish(
        &mut self,
        status: Result<ExitStatus, ContainerError>,
    ) -> Result<ExitStatus, ContainerError> {
        self.finished = true;
        // The pid may be reused from now on: stop forwarding to it first.
        self.forward = None;
        self.container.remove_state();
        let kind = HookKind::Poststop;
        let hooks = kind.of(self.container.b.spec.hooks().as_ref());
        if !hooks.is_empty() {
            // After the cleanup below, as the spec has it ("after the container is
            // deleted"), whichever way that goes.
            let json = self
                .container
                .state_json(self.init, crate::state::Status::Stopped);
            let result = self.cleanup(status);
            crate::hooks::run_warning(kind, hooks, &json);
            return result;
        }
        self.cleanup(status)
    }

    fn cleanup(
        &mut self,
        status: Result<ExitStatus, ContainerError>,
    ) -> Result<ExitStatus, ContainerError> {
        match (status, self.cgroup.take()) {
            (Ok(mut status), Some(m)) => {
                status.oom_killed = m.oom_killed().unwrap_or(false);
                m.remove().map_err(|source| ContainerError::Cgroup {
                    id: self.container.b.id.clone(),
                    source,
                })?;
                Ok(status)
            }
            (Err(e), Some(m)) => Err(with_cleanup(e, m.remove())),
            (r, None) => r,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let _ = nix::sys::signal::kill(self.init, nix::sys::signal::Signal::SIGKILL);
        let status = self.container.wait(self.init);
        let _ = self.finish(status);
    }
}

/// Whether `spec` asks for a new namespace of this type (no `path`).
pub fn wants_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    process::wants_new(spec, typ)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: serde_json::Value) -> Vec<String> {
        let linux: oci_spec::runtime::Linux = serde_json::from_value(json).unwrap();
        let out = with_default_devices(
            linux.resources().as_ref().unwrap(),
            linux.devices().as_deref().unwrap_or_default(),
        );
        out.devices()
            .as_deref()
            .unwrap()
            .iter()
            .map(|r| format!("{} {r}", if r.allow() { "allow" } else { "deny" }))
            .collect()
    }

    #[test]
    fn listed_devices_get_rwm_unless_a_rule_names_them() {
        let got = rules(serde_json::json!({
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                {"path": "/dev/sdz", "type": "b", "major": 8, "minor": 666},
                {"path": "/dev/ro", "type": "c", "major": 10, "minor": 200},
                {"path": "/dev/fifo", "type": "p", "major": 0, "minor": 0}
            ],
            "resources": {"devices": [
                {"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 10, "minor": 200, "access": "r"}
            ]}
        }));
        assert!(got.contains(&"allow c 10:229 rwm".to_string()), "{got:?}");
        assert!(got.contains(&"allow b 8:666 rwm".to_string()), "{got:?}");
        // The spec's own rule for 10:200 stands alone: read-only.
        let ro: Vec<_> = got.iter().filter(|r| r.contains("10:200")).collect();
        assert_eq!(ro, ["allow c 10:200 r"], "{got:?}");
        assert!(!got.iter().any(|r| r.contains(" 0:0 ")), "{got:?}");
    }
}
