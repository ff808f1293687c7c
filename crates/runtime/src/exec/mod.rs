//! `exec`: one more process in a running container, with docker exec's semantics.
//!
//! The process joins the namespaces of the container's init (the user namespace first,
//! then mount, pid, ipc, uts, network and cgroup, from `/proc/<init>/ns/*` opened while
//! `/proc` is still the host's) and every cgroup the init is in; a second fork makes the
//! pid namespace apply; then it takes its user, capabilities, rlimits, working directory
//! and environment from its OCI [`Process`], and execs the command found on the
//! container's `PATH`.
//!
//! **The fork rule** (see [`crate::fork_rule`]): starting the process forks, so the calling
//! process must be single-threaded; otherwise [`ExecError::ForkRule`] is returned before
//! anything happens. The thread that relays the process's stdio starts after the fork.
//!
//! The builder changes type by role: the shared options first, then [`ExecBuilder::foreground`]
//! (wait for the process, like `docker exec`) or [`ExecBuilder::detached`] (return its pid,
//! like `docker exec -d` and `runc exec --detach`), each with the options only that role has.
//!
//! ```no_run
//! use basic_runtime::exec::{Exec, process_from};
//! # let spec = basic_runtime::default_spec(vec!["sleep".into(), "100".into()], vec![], "/")?;
//! // The container's own process settings (user, env, capabilities, ...), another command.
//! let process = process_from(&spec, vec!["sh".into(), "-c".into(), "echo $GREETING; id -u".into()])?;
//! let status = Exec::in_container("web", process)
//!     .state_dir("/run/basic-docker")
//!     .env(["GREETING=hello"])
//!     .foreground()
//!     .build()?
//!     .run()?;
//! std::process::exit(status.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With `process.terminal` set, the process gets a pty of the container's devpts as its
//! controlling terminal, `process.consoleSize` big from the start (set it to the user's
//! window size: the command may look before the caller gets the terminal);
//! [`Exec::run_with_console`] hands its master to the caller, which relays it (see
//! [`crate::terminal`]):
//!
//! ```no_run
//! use basic_runtime::exec::{Exec, process_from};
//! use basic_runtime::terminal::RawMode;
//! # let spec = basic_runtime::default_spec(vec!["sleep".into(), "100".into()], vec![], "/")?;
//! let mut process = process_from(&spec, vec!["sh".into()])?;
//! process.set_terminal(Some(true));
//! if let Some(size) = basic_runtime::terminal::window_size(std::io::stdout()) {
//!     process.set_console_size(Some(size.into()));
//! }
//! let exec = Exec::in_container("web", process).foreground().forward_signals(false).build()?;
//! let raw = RawMode::enable(std::io::stdin())?;
//! let status = exec.run_with_console(|console| {
//!     let _ = console.relay_stdio(true);
//! })?;
//! drop(raw);
//! std::process::exit(status.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod target;

pub(crate) use target::Joined;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::{LinuxSeccomp, Process, Spec};

use crate::channel::{self, ChannelError, FailureKind, Message};
use crate::container::ExitStatus;
use crate::pipes::{Link, Relay};
use crate::process::{self, TenantConfig};
use crate::signals;
use crate::terminal::{self, Console, TerminalError};

/// Errors joining a container. [`ExecError::exit_code`] maps them to docker's codes.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The process cannot be run as given (no args, a malformed environment entry, ...).
    #[error("invalid process: {0}")]
    InvalidProcess(String),
    /// There is no running container (or process) to join.
    #[error("{target} is not running: {reason}")]
    NotRunning {
        /// "container ID" or "process PID".
        target: String,
        /// Why not.
        reason: String,
    },
    /// The container's state file could not be read.
    #[error("reading {path}")]
    State {
        /// The state file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The container's state file holds something else than a container state.
    #[error("{path} is not a container state: {reason}")]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A namespace of the init could not be opened.
    #[error("opening namespace {path}")]
    Namespace {
        /// The `/proc/<pid>/ns/<type>` file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The init's cgroups could not be found.
    #[error("finding the cgroups of pid {pid}: reading {path}")]
    Cgroups {
        /// The init.
        pid: i32,
        /// The file read.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The container's seccomp profile cannot be compiled.
    #[error("compiling the container's seccomp profile")]
    Seccomp(#[source] crate::seccomp::SeccompError),
    /// A syscall on the caller's side failed.
    #[error("{what}")]
    Sys {
        /// The operation.
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// The sync pipe to the new process failed.
    #[error("talking to the process being started")]
    Channel(#[source] ChannelError),
    /// The process failed before exec (the message comes from it).
    #[error("{target}: {message}")]
    Start {
        /// "container ID" or "process PID".
        target: String,
        /// Not found, permission denied, or setup.
        kind: FailureKind,
        /// The whole error chain, as text.
        message: String,
    },
    /// Setting up the process's terminal failed.
    #[error("the process's terminal")]
    Terminal(#[source] TerminalError),
    /// This program runs from a file a container could overwrite (see
    /// [`crate::sealed_exe`]).
    #[error("refusing to enter the container")]
    ExposedBinary(#[source] crate::sealed_exe::SealError),
    /// This process has other threads (see [`crate::fork_rule`]).
    #[error("refusing to fork into the container")]
    ForkRule(#[source] crate::fork_rule::ForkRuleError),
    /// The thread relaying the process's stdio could not start.
    #[error("relaying the process's stdio")]
    Relay(#[source] std::io::Error),
    /// A pipe or `/dev/null` for the process's stdio could not be made.
    #[error("setting up the process's {what}")]
    Stdio {
        /// "stdin", "stdout" or "stderr".
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the pid file failed.
    #[error("writing pid file {path}")]
    PidFile {
        /// The pid file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl ExecError {
    /// docker's convention: 127 command not found, 126 cannot execute, 125 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::Start {
                kind: FailureKind::NotFound,
                ..
            } => 127,
            ExecError::Start {
                kind: FailureKind::PermissionDenied,
                ..
            } => 126,
            _ => 125,
        }
    }
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> ExecError {
    let what = what.into();
    move |source| ExecError::Sys { what, source }
}

/// The container's process settings for another command, as docker exec starts from them:
/// user, environment, working directory, capabilities, `noNewPrivileges`, rlimits. No
/// terminal unless the caller sets one.
pub fn process_from(spec: &Spec, args: Vec<String>) -> Result<Process, ExecError> {
    let mut process = spec
        .process()
        .clone()
        .ok_or_else(|| ExecError::InvalidProcess("the container's spec has no process".into()))?;
    process.set_args(Some(args));
    process.set_terminal(Some(false));
    process.set_console_size(None);
    Ok(process)
}

/// Which process's namespaces and cgroups to join.
#[derive(Debug, Clone)]
enum Target {
    Container { id: String, state_dir: PathBuf },
    Pid(i32),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Container { id, .. } => write!(f, "container {id}"),
            Target::Pid(pid) => write!(f, "process {pid}"),
        }
    }
}

/// Role not chosen yet: call [`ExecBuilder::foreground`] or [`ExecBuilder::detached`].
#[derive(Debug)]
pub struct Undecided;

/// Role: wait for the process and return its exit status.
#[derive(Debug)]
pub struct Foreground {
    forward_signals: bool,
}

/// Role: start the process and return its pid; it outlives the caller.
#[derive(Debug)]
pub struct Detached {
    pid_file: Option<PathBuf>,
}

/// Options for an exec; the type parameter is its role.
#[derive(Debug)]
pub struct ExecBuilder<R = Undecided> {
    target: Target,
    process: Process,
    env: Vec<String>,
    stdio: [Option<OwnedFd>; 3],
    seccomp: Option<LinuxSeccomp>,
    seccomp_cache: Option<PathBuf>,
    require_sealed_exe: bool,
    allow_multithreaded_fork: bool,
    role: R,
}

/// An exec ready to start: the container was found running and its namespaces are open.
#[derive(Debug)]
pub struct Exec<R> {
    target: Target,
    joined: Joined,
    process: Process,
    stdio: [Option<OwnedFd>; 3],
    seccomp: Option<crate::seccomp::Program>,
    allow_multithreaded_fork: bool,
    role: R,
}

/// A detached process that started.
#[derive(Debug)]
pub struct Started {
    /// Its pid, as the host sees it.
    pub pid: i32,
    /// Its terminal's master, when `process.terminal` is set.
    pub console: Option<Console>,
}

impl Exec<Undecided> {
    /// An exec into container `id`, found by its state file (`<state dir>/<id>/state.json`,
    /// see [`ExecBuilder::state_dir`]).
    pub fn in_container(id: impl Into<String>, process: Process) -> ExecBuilder {
        Self::with_target(
            Target::Container {
                id: id.into(),
                state_dir: PathBuf::from("/run/basic-docker"),
            },
            process,
        )
    }

    /// An exec into the namespaces and cgroups of process `pid` (a container's init, for a
    /// caller that tracks containers itself).
    pub fn in_process(pid: i32, process: Process) -> ExecBuilder {
        Self::with_target(Target::Pid(pid), process)
    }

    fn with_target(target: Target, process: Process) -> ExecBuilder {
        ExecBuilder {
            target,
            process,
            env: Vec::new(),
            stdio: [None, None, None],
            seccomp: None,
            seccomp_cache: None,
            require_sealed_exe: true,
            allow_multithreaded_fork: false,
            role: Undecided,
        }
    }
}

impl<R> ExecBuilder<R> {
    /// Where containers' state directories are (default `/run/basic-docker`); for
    /// [`Exec::in_container`].
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Target::Container { state_dir, .. } = &mut self.target {
            *state_dir = dir.into();
        }
        self
    }

    /// `KEY=VALUE` entries set over the process's environment (docker's `-e`), later ones
    /// winning.
    pub fn env<I, S>(mut self, entries: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.env.extend(entries.into_iter().map(Into::into));
        self
    }

    /// The process's stdin, passed as it is. Default: in the foreground a pipe fed from this
    /// process's stdin (the process never holds the caller's own descriptor), detached
    /// `/dev/null`. Ignored with a terminal.
    pub fn stdin(mut self, fd: OwnedFd) -> Self {
        self.stdio[0] = Some(fd);
        self
    }

    /// The process's stdout, passed as it is. Default: in the foreground a pipe copied to
    /// this process's stdout, detached `/dev/null`. Ignored with a terminal.
    pub fn stdout(mut self, fd: OwnedFd) -> Self {
        self.stdio[1] = Some(fd);
        self
    }

    /// The process's stderr, passed as it is. Default: in the foreground a pipe copied to
    /// this process's stderr, detached `/dev/null`. Ignored with a terminal.
    pub fn stderr(mut self, fd: OwnedFd) -> Self {
        self.stdio[2] = Some(fd);
        self
    }

    /// The container's seccomp profile (`linux.seccomp` of its spec), which its other
    /// processes run under; the exec'd one then does too.
    pub fn seccomp(mut self, profile: Option<LinuxSeccomp>) -> Self {
        self.seccomp = profile;
        self
    }

    /// A directory where the compiled seccomp program is kept for the next exec (see
    /// [`crate::seccomp::Program::compile_cached`]). Default: none, compile every time.
    pub fn seccomp_cache(mut self, dir: impl Into<PathBuf>) -> Self {
        self.seccomp_cache = Some(dir.into());
        self
    }

    /// Whether to refuse to enter the container unless this program runs from a sealed copy
    /// of itself (default true; see [`crate::sealed_exe`]). Turn it off only for a program
    /// whose file does not matter once it has run, such as a test binary.
    pub fn require_sealed_exe(mut self, on: bool) -> Self {
        self.require_sealed_exe = on;
        self
    }

    /// Fork even when this process has other threads, against [the fork
    /// rule](crate::fork_rule) (default false: refused with [`ExecError::ForkRule`]). Only
    /// for a caller that accepts that a lock held by another thread at the moment of the
    /// fork can hang the process before it execs: a test harness, whose other threads are
    /// other tests.
    pub fn allow_multithreaded_fork(mut self, on: bool) -> Self {
        self.allow_multithreaded_fork = on;
        self
    }

    fn with_role<S>(self, role: S) -> ExecBuilder<S> {
        ExecBuilder {
            target: self.target,
            process: self.process,
            env: self.env,
            stdio: self.stdio,
            seccomp: self.seccomp,
            seccomp_cache: self.seccomp_cache,
            require_sealed_exe: self.require_sealed_exe,
            allow_multithreaded_fork: self.allow_multithreaded_fork,
            role,
        }
    }

    /// Finds the running container, opens its namespaces, and checks the process.
    fn resolve(self) -> Result<Exec<R>, ExecError> {
        if self.require_sealed_exe {
            crate::sealed_exe::check().map_err(ExecError::ExposedBinary)?;
        }
        let process = with_env(self.process, &self.env)?;
        crate::spec_check::refuse_unchanged_ids(&process).map_err(ExecError::InvalidProcess)?;
        let cwd = process.cwd();
        if !cwd.as_os_str().is_empty() && !cwd.is_absolute() {
            return Err(ExecError::InvalidProcess(format!(
                "the working directory {:?} is invalid, it needs to be an absolute path",
                cwd.display().to_string()
            )));
        }
        let (pid, in_container) = match &self.target {
            Target::Container { id, state_dir } => (target::init_of(state_dir, id)?, true),
            Target::Pid(pid) => {
                target::check_alive(*pid)?;
                (*pid, false)
            }
        };
        let joined = target::join_targets(Path::new("/proc"), pid, in_container)?;
        let seccomp = self
            .seccomp
            .as_ref()
            .map(|p| crate::seccomp::Program::compile_in(p, self.seccomp_cache.as_deref()))
            .transpose()
            .map_err(ExecError::Seccomp)?;
        Ok(Exec {
            target: self.target,
            joined,
            process,
            stdio: self.stdio,
            seccomp,
            allow_multithreaded_fork: self.allow_multithreaded_fork,
            role: self.role,
        })
    }
}

impl ExecBuilder<Undecided> {
    /// Wait for the process, as `docker exec` does.
    pub fn foreground(self) -> ExecBuilder<Foreground> {
        self.with_role(Foreground {
            forward_signals: true,
        })
    }

    /// Start the process and return its pid without waiting, as `docker exec -d` does. It
    /// is not the caller's child: it is reparented to the host's init (or the nearest
    /// subreaper) and ends at the latest with the container.
    pub fn detached(self) -> ExecBuilder<Detached> {
        self.with_role(Detached { pid_file: None })
    }
}

impl ExecBuilder<Foreground> {
    /// Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 received by this process to the
    /// exec'd one while it runs (default true; docker does not with a terminal, where keys
    /// do the signalling).
    pub fn forward_signals(mut self, on: bool) -> Self {
        self.role.forward_signals = on;
        self
    }

    /// Finds the container running and checks the process.
    pub fn build(self) -> Result<Exec<Foreground>, ExecError> {
        self.resolve()
    }
}

impl ExecBuilder<Detached> {
    /// Write the process's pid (as the host sees it) to `path` once it runs (runc's
    /// `--pid-file`).
    pub fn pid_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.role.pid_file = Some(path.into());
        self
    }

    /// Finds the container running and checks the process.
    pub fn build(self) -> Result<Exec<Detached>, ExecError> {
        self.resolve()
    }
}

/// `entries` (`KEY=VALUE`) set over the process's environment.
fn with_env(mut process: Process, entries: &[String]) -> Result<Process, ExecError> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(ExecError::InvalidProcess(
            "no command given (args is empty)".into(),
        ));
    }
    if entries.is_empty() {
        return Ok(process);
    }
    let mut env = process.env().clone().unwrap_or_default();
    for entry in entries {
        let Some((key, _)) = entry.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(ExecError::InvalidProcess(format!(
                "environment entry {entry:?} is not KEY=VALUE"
            )));
        };
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        env.push(entry.clone());
    }
    process.set_env(Some(env));
    Ok(process)
}

impl<R> Exec<R> {
    /// The pid (as the host sees it) of the process whose namespaces are joined: the
    /// container's init.
    pub fn init_pid(&self) -> i32 {
        self.joined.init
    }

    /// Forks the process into the container and returns once it has exec'd: its pid, with a
    /// terminal the console, and the links to relay for the stdio the caller did not give.
    fn spawn(&mut self, detach: bool) -> Result<Spawned, ExecError> {
        crate::fork_rule::enforce(self.allow_multithreaded_fork).map_err(ExecError::ForkRule)?;
        let (mut from_child, to_parent) = channel::pipe().map_err(ExecError::Channel)?;
        let terminal = self.process.terminal().unwrap_or(false);
        let (ours, theirs) = match terminal {
            true => {
                let (a, b) = terminal::socket_pair().map_err(ExecError::Terminal)?;
                (Some(a), Some(b))
            }
            false => (None, None),
        };
        let mut stdio = self.stdio.each_mut().map(Option::take);
        let links = match terminal {
            true => Vec::new(),
            false => fill_stdio(&mut stdio, detach)?,
        };
        // SAFETY: the fork rule was enforced above (this process is single-threaded, or the
        // caller accepted the risk), so the child may run ordinary code; it only runs
        // `process::join_container`, which never returns.
        let middle = match unsafe { fork() }.map_err(sys("fork"))? {
            ForkResult::Child => {
                drop(from_child);
                process::join_container(TenantConfig {
                    joined: &self.joined,
                    process: &self.process,
                    stdio: stdio.each_ref().map(|f| f.as_ref().map(|f| f.as_fd())),
                    console: theirs.as_ref().map(|s| s.as_fd()),
                    seccomp: self.seccomp.as_ref(),
                    to_parent,
                    detach,
                })
            }
            ForkResult::Parent { child } => child,
        };
        drop((to_parent, stdio, theirs));
        let pid = match channel::recv(&mut from_child) {
            Ok(Message::InitPid(pid)) => pid,
            other => {
                reap(middle);
                return Err(self.failure(other));
            }
        };
        reap(middle);
        let give_up = |e: ExecError| {
            if !detach {
                let _ =
                    nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                reap(Pid::from_raw(pid));
            }
            e
        };
        let master = match ours.map(|s| terminal::receive_master(&s)).transpose() {
            Ok(m) => m,
            // It failed before its terminal was ready: the pipe says why.
            Err(e) => {
                return Err(give_up(match channel::recv(&mut from_child) {
                    Ok(Message::Failure(kind, message)) => self.start_error(kind, message),
                    _ => ExecError::Terminal(e),
                }));
            }
        };
        match channel::recv(&mut from_child) {
            // The sync pipe is close-on-exec: end of file means the exec worked.
            Ok(Message::Eof) => {}
            other => return Err(give_up(self.failure(other))),
        }
        let console = master
            .map(|m| match detach {
                // Our child: it stays until we wait for it.
                false => Console::from_master(m).watch_process(pid),
                // Orphaned: its new parent may reap it as soon as it exits.
                true => Console::from_master(m).watch_unless_gone(pid),
            })
            .transpose()
            .map_err(|e| give_up(ExecError::Terminal(e)))?;
        Ok(Spawned {
            pid,
            console,
            links,
        })
    }

    fn failure(&self, got: Result<Message, ChannelError>) -> ExecError {
        match got {
            Ok(Message::Failure(kind, message)) => self.start_error(kind, message),
            Ok(Message::Eof) => self.start_error(
                FailureKind::Setup,
                "the process exited before it was started".into(),
            ),
            Ok(other) => self.start_error(
                FailureKind::Setup,
                format!("unexpected message {other:?} from the process being started"),
            ),
            Err(e) => ExecError::Channel(e),
        }
    }

    fn start_error(&self, kind: FailureKind, message: String) -> ExecError {
        ExecError::Start {
            target: self.target.to_string(),
            kind,
            message,
        }
    }
}

impl Exec<Foreground> {
    /// Runs the process until it exits and returns how it ended. With `process.terminal`,
    /// its terminal is relayed to this process's stdin and stdout (without raw mode; use
    /// [`Exec::run_with_console`] to drive it). The calling process must be
    /// single-threaded ([the fork rule](crate::fork_rule)).
    pub fn run(self) -> Result<ExitStatus, ExecError> {
        self.run_with_console(|console| {
            // A relay that fails leaves the process to end on its terminal's hangup.
            let _ = console.relay_stdio(true);
        })
    }

    /// Runs the process; with `process.terminal`, calls `attach` with its terminal once it
    /// runs (typically to relay it until the process exits), then waits for it. `attach` is
    /// not called without a terminal. The terminal is closed when `attach` returns. The
    /// calling process must be single-threaded ([the fork rule](crate::fork_rule)); `attach`
    /// runs after the fork and may start threads.
    pub fn run_with_console(
        mut self,
        attach: impl FnOnce(Console),
    ) -> Result<ExitStatus, ExecError> {
        let Spawned {
            pid,
            console,
            links,
        } = self.spawn(false)?;
        let _guard = self.role.forward_signals.then(|| signals::forward_to(pid));
        // Started only now that the fork is done: the process was forked without threads.
        let relay = match links.is_empty() {
            true => None,
            false => Some(Relay::start(links).map_err(|e| {
                let _ =
                    nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                reap(Pid::from_raw(pid));
                ExecError::Relay(e)
            })?),
        };
        if let Some(console) = console {
            attach(console);
        }
        let status = wait(Pid::from_raw(pid));
        if let Some(relay) = relay {
            relay.finish();
        }
        status
    }
}

impl Exec<Detached> {
    /// Starts the process and returns once it runs the command. The calling process must
    /// be single-threaded ([the fork rule](crate::fork_rule)).
    pub fn start(mut self) -> Result<Started, ExecError> {
        let Spawned { pid, console, .. } = self.spawn(true)?;
        if let Some(path) = &self.role.pid_file {
            write_pid_file(path, pid)?;
        }
        Ok(Started { pid, console })
    }
}

/// A forked process that exec'd.
struct Spawned {
    pid: i32,
    console: Option<Console>,
    links: Vec<Link>,
}

/// Gives every stdio slot the caller left empty something that is not the caller's own
/// descriptor: in the foreground a pipe relayed to and from the caller's, detached
/// `/dev/null` (as `docker exec -d`). Returns the links to relay.
fn fill_stdio(stdio: &mut [Option<OwnedFd>; 3], detach: bool) -> Result<Vec<Link>, ExecError> {
    let io = |what: &'static str| move |source| ExecError::Stdio { what, source };
    let mut links = Vec::new();
    for (i, slot) in stdio.iter_mut().enumerate() {
        if slot.is_some() {
            continue;
        }
        let name = ["stdin", "stdout", "stderr"][i];
        // SAFETY: 0, 1 and 2 are this process's stdio; they are only borrowed for a dup.
        let caller = unsafe { BorrowedFd::borrow_raw(i as i32) };
        let caller_open = nix::fcntl::fcntl(caller, nix::fcntl::FcntlArg::F_GETFD).is_ok();
        if detach || !caller_open {
            let null = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(io(name))?;
            *slot = Some(OwnedFd::from(null));
            continue;
        }
        let (read, write) = crate::pipes::pipe().map_err(io(name))?;
        let (child, link) = match i {
            0 => (read, Link::input(caller, write)),
            _ => (write, Link::output(read, caller)),
        };
        links.push(link.map_err(io(name))?);
        *slot = Some(child);
    }
    Ok(links)
}

/// Reaps a child we no longer need.
fn reap(pid: Pid) {
    while let Err(nix::Error::EINTR) = waitpid(pid, None) {}
}

fn wait(pid: Pid) -> Result<ExitStatus, ExecError> {
    crate::container::wait_exit(pid).map_err(sys(format!("waiting for pid {pid}")))
}

/// Temp file and rename: a reader never sees a half-written pid.
fn write_pid_file(path: &Path, pid: i32) -> Result<(), ExecError> {
    let err = |source| ExecError::PidFile {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, pid.to_string()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(env: &[&str]) -> Process {
        let mut p = Process::default();
        p.set_args(Some(vec!["true".into()]));
        p.set_env(Some(env.iter().map(|s| s.to_string()).collect()));
        p
    }

    #[test]
    fn overrides_replace_the_containers_variables_and_keep_the_rest() {
        let p = with_env(
            process(&["PATH=/bin", "A=1", "B=2"]),
            &["A=x".into(), "C=3".into(), "A=y".into()],
        )
        .unwrap();
        assert_eq!(
            p.env().as_ref().unwrap(),
            &["PATH=/bin", "B=2", "C=3", "A=y"]
        );
    }

    #[test]
    fn malformed_entries_and_empty_commands_are_refused() {
        let e = with_env(process(&[]), &["NOEQUALS".into()]).unwrap_err();
        assert!(
            e.to_string().contains("\"NOEQUALS\" is not KEY=VALUE"),
            "{e}"
        );
        let mut p = process(&[]);
        p.set_args(Some(vec![]));
        let e = with_env(p, &[]).unwrap_err();
        assert!(e.to_string().contains("no command"), "{e}");
        assert_eq!(e.exit_code(), 125);
    }

    #[test]
    fn a_container_without_state_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let e = Exec::in_container("nope", process(&[]))
            .require_sealed_exe(false)
            .state_dir(dir.path())
            .foreground()
            .build()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("container nope is not running: no such container"),
            "{e}"
        );
    }

    #[test]
    fn a_stopped_or_stale_state_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        let write = |id: &str, json: serde_json::Value| {
            std::fs::create_dir_all(dir.path().join(id)).unwrap();
            std::fs::write(dir.path().join(id).join("state.json"), json.to_string()).unwrap();
        };
        write(
            "stopped",
            serde_json::json!({"id": "stopped", "pid": 0, "status": "stopped"}),
        );
        write(
            "gone",
            serde_json::json!({"id": "gone", "pid": i32::MAX - 1, "status": "running"}),
        );
        // Our own pid, but not our start time: a recycled pid.
        let me = std::process::id() as i32;
        write(
            "reused",
            serde_json::json!({"id": "reused", "pid": me, "status": "running", "init_start_time": 1}),
        );
        // Our own pid and start time: alive, but no container (no mount namespace of its own).
        write(
            "host",
            serde_json::json!({"id": "host", "pid": me, "status": "running"}),
        );
        let err = |id: &str| {
            Exec::in_container(id, process(&[]))
                .require_sealed_exe(false)
                .state_dir(dir.path())
                .detached()
                .build()
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("stopped").contains("its status is stopped"),
            "{}",
            err("stopped")
        );
        assert!(err("gone").contains("has exited"), "{}", err("gone"));
        assert!(
            err("reused").contains("belongs to another process"),
            "{}",
            err("reused")
        );
        assert!(
            err("host").contains("no container's init"),
            "{}",
            err("host")
        );
    }
}
