//! Running a container under [`basic_runtime::supervisor`]: in a process of its own (see
//! [`crate::SupervisorCommand`]), detached or with a caller attached to it (see
//! [`Engine::start_attached`]), or in an embedding program's own process.
//!
//! The supervisor mounts the container's root and its option volumes (tmpfs, bind), attaches
//! its network, records each start and exit in the store, writes the json-file log, and on
//! the final exit detaches, unmounts and, for `AutoRemove`, removes the container and its
//! anonymous volumes.
//!
//! It outlives whoever watches it: a caller that is killed, a terminal that hangs up, a
//! pipe nobody reads any more.

use std::fs::File;
use std::os::fd::{AsRawFd as _, FromRawFd as _};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};
use std::time::Duration;

use basic_image_store::{ContainerExit, short_id};
use basic_runtime::Spec;
use basic_runtime::attach::{Endpoint, Serve};
use basic_runtime::supervisor::{Input, Output, Resumed, Supervisor, SupervisorEvent};
use basic_runtime::terminal::{ConsoleSocket, RawMode};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::exits::{self, LastRun};
use crate::foreground::SupervisorStdio;
use crate::status::{self, now_nanos};
use crate::{network, privacy, rootfs};

/// docker's exit code for a failure of the engine itself.
pub const ENGINE_FAILURE: i32 = 125;

/// How long [`Engine::start`] waits for a detached container's init to appear.
const START_WAIT: Duration = Duration::from_secs(60);

/// Where a supervised container's stdio goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    /// Only into the log and to attach clients (`Engine::attach`), who also give a `-i`
    /// container its input: this process's stdio is not the container's. What a
    /// [`SupervisorCommand`](crate::SupervisorCommand) process started by
    /// [`Engine::start`] uses (its stdio is `/dev/null`).
    Detached,
    /// Also this process's stdout and stderr, and (with `-i`) its stdin; with `-t`, this
    /// process's terminal in raw mode. What a supervisor process started by
    /// [`Engine::start_attached`] uses: its stdio is the attached caller's pipes or pty.
    /// Start failures are returned as errors, for the process to report on its stderr.
    Foreground,
}

/// Set in the environment of a supervisor process that [`Engine::start_attached`] starts:
/// its stdio is the attached caller's.
const ATTACHED_ENV: &str = "BASIC_ENGINE_SUPERVISOR_ATTACHED";

impl Attachment {
    /// The attachment a [`SupervisorCommand`](crate::SupervisorCommand) process passes to
    /// [`Engine::supervise`]: [`Attachment::Foreground`] when the engine started it with a
    /// caller attached ([`Engine::start_attached`]), [`Attachment::Detached`] otherwise.
    pub fn of_supervisor_process() -> Attachment {
        match std::env::var_os(ATTACHED_ENV) {
            Some(v) if v == "1" => Attachment::Foreground,
            _ => Attachment::Detached,
        }
    }
}

impl Engine {
    /// Supervises container `id` in this process until it exits for good; returns the
    /// exit code docker would report (the container's own, or 125/126/127 when it could
    /// not start, also recorded as its exit).
    ///
    /// Meanwhile this process ignores SIGHUP and SIGPIPE (the container's processes start
    /// with default dispositions all the same): a supervisor must outlive the caller
    /// attached to it, whose terminal hangs up and whose pipes break when it is killed.
    ///
    /// With a [`SupervisorCommand::lean`](crate::SupervisorCommand::lean) program, this
    /// process runs that program while the container runs, and this one again (with the
    /// same arguments) for each exit: called there, this picks the supervision up where it
    /// was left ([`Resumed`]).
    pub fn supervise(&self, id: &str, attachment: Attachment) -> Result<i32> {
        let _outlive = OutliveCaller::install();
        let c = self.container(id)?;
        let resumed = Resumed::from_env();
        let lock = match resumed.as_ref().and_then(|r| r.kept().first()) {
            Some(&fd) => {
                // SAFETY: this process's previous program image took the lock on this
                // descriptor and kept it open for this one (see `run_container`).
                let file = unsafe { File::from_raw_fd(fd) };
                set_cloexec(&file);
                file
            }
            None => match status::lock_supervisor(&c.paths)? {
                Some(lock) => lock,
                None => {
                    return Err(EngineError::Conflict(format!(
                        "container {} is already running",
                        short_id(c.id())
                    )));
                }
            },
        };
        let echo = attachment == Attachment::Foreground;
        if resumed.is_none() {
            let _ = std::fs::remove_file(c.paths.stop_marker());
            let _ = std::fs::remove_file(c.paths.start_error());
            if let Err(e) = exits::reserve(&c.paths) {
                tracing::warn!("reserving {}: {e}", c.paths.last_exit().display());
            }
        }
        let mut started = c.record.started.unwrap_or_else(now_nanos);
        let result = self.run_container(&c, echo, &mut started, resumed, &lock);
        // The attachment outlives restarts; it goes with the final exit.
        network::detach(&self.paths, c.id(), &c.config.network_mode());
        // So does a tmpfs or bind volume's mount, unless another container uses it.
        self.release_volumes(&c);
        if let Err(e) = &result {
            let message = chain(e);
            let _ = privacy::write_private(&c.paths.start_error(), message.as_bytes());
            let exit = ContainerExit {
                code: e.exit_code(),
                finished: now_nanos(),
                oom_killed: false,
            };
            self.record_exit(&c, LastRun { started, exit }, false);
        }
        let _ = std::fs::remove_file(c.paths.stop_marker());
        if c.config.auto_remove() {
            // The final exit is in `last-exit` only (see record_exit), which goes with the
            // container's directory: should the removal fail half-way, the store takes it.
            let last = exits::read(&c.paths);
            // As docker's `--rm`: the anonymous volumes go too.
            if let Err(e) = self.remove_stopped(&c, true) {
                if let Some(run) = last {
                    let _ = self.store.container_exited(c.id(), run.exit, false);
                }
                // As docker's: the container's exit stands, and the failure is said.
                tracing::warn!(
                    "removing container {} after its exit: {}",
                    short_id(c.id()),
                    chain(&e)
                );
            }
        } else {
            rootfs::unmount(self.snapshotter().as_ref(), &c.paths);
        }
        match result {
            // In the foreground the caller says why; detached, the start error file does.
            Err(e) if echo => Err(e),
            Err(e) => Ok(e.exit_code()),
            Ok(code) => Ok(code),
        }
    }

    fn run_container(
        &self,
        c: &Container,
        echo: bool,
        started: &mut i64,
        resumed: Option<Resumed>,
        lock: &File,
    ) -> Result<i32> {
        // Resumed, the container ran already: its root, volumes and network are set up.
        if resumed.is_none() {
            // A copy or an export of the stopped container may have its snapshot mounted:
            // wait for it to end rather than mount the snapshot a second time.
            let _no_views = crate::view::lock_exclusive(&c.paths)?;
            rootfs::ensure_mounted(self.snapshotter().as_ref(), &self.store, c)?;
        }
        if resumed.is_none() {
            self.mount_volumes(c)?;
        }
        let spec_path = c.paths.spec();
        let spec = Spec::load(&spec_path).map_err(|e| EngineError::Corrupt {
            what: spec_path.display().to_string(),
            message: e.to_string(),
        })?;
        let hostname = spec.hostname().clone().unwrap_or_default();
        let attaching = match resumed {
            None => network::attach(&self.paths, c.id(), c.name(), &hostname, &c.config)?,
            Some(_) => None,
        };
        let mut builder = basic_runtime::Container::builder(c.id(), spec, &c.paths.rootfs)
            .state_dir(&self.paths.state)
            .init(c.config.init())
            .seccomp_cache(self.paths.seccomp_cache());
        // The container's processes are made while its network is configured (pasta's
        // start, rootless); the command waits for both.
        if let Some(pending) = attaching {
            builder =
                builder.before_exec(move || pending.finish().map(drop).map_err(|e| e.to_string()));
        }
        // With a terminal the container sends its pty master over this socket; keys typed
        // by the user (Ctrl-C) signal the container through it, not through us.
        let console = if c.config.tty() {
            let (socket, container_end) = ConsoleSocket::pair()?;
            builder = builder
                .console_socket_fd(container_end)
                .forward_signals(false);
            Some(socket)
        } else {
            None
        };
        let container = builder.build()?;
        // Raw mode only for a user's terminal; restored however this function ends.
        let _raw = match console.is_some() && echo {
            true => RawMode::enable(std::io::stdin())?,
            false => None,
        };
        let output = Output {
            log: Some((c.paths.log(), c.config.log_rotation()?)),
            echo,
            stdin: match (c.config.tty(), c.config.interactive()) {
                // Detached, the container reads what attach clients send.
                (_, true) if !echo => Input::Attach,
                (true, _) => Input::Terminal,
                (false, true) => Input::Relayed,
                (false, false) => Input::Null,
            },
        };
        let mut supervisor = Supervisor::new(&container, output, c.config.restart_policy());
        // The supervisor relays the terminal to our stdout, which it captures into the log
        // (and echoes) like any output; it starts the relay only once the container's
        // processes are forked.
        if let Some(socket) = console {
            supervisor = supervisor.console(socket, c.config.interactive());
        }
        // Also in the foreground: others may watch (and resize) what runs there.
        supervisor = supervisor.attach(Serve {
            endpoint: Endpoint::new(c.paths.attach_dir()),
            stdin_once: c.config.stdin_once(),
        });
        // While the container runs, a small program keeps it (and this lock) instead.
        if let Some(mut lean) = self.supervisor.as_ref().and_then(|s| s.lean.clone()) {
            lean.keep = vec![lock.as_raw_fd()];
            supervisor = supervisor.lean(lean);
        }
        if let Some(resumed) = resumed {
            supervisor = supervisor.resume(resumed);
        }
        let stop_marker = c.paths.stop_marker();
        let mut on_event = |event: SupervisorEvent<'_>| self.record(c, event, started);
        let status = supervisor.run(&|| stop_marker.exists(), &mut on_event);
        drop(supervisor);
        drop(container);
        Ok(status?.exit_code())
    }

    /// Records a start or an exit in the store; a failure is logged (the container goes
    /// on). `started` keeps the last start for the exit that follows it.
    fn record(&self, c: &Container, event: SupervisorEvent<'_>, started: &mut i64) {
        match event {
            SupervisorEvent::Starting => {
                self.event(c, "start", &[]);
                *started = now_nanos();
                if let Err(e) = self.store.container_started(c.id(), *started) {
                    tracing::warn!("recording the start of {}: {e}", short_id(c.id()));
                }
            }
            SupervisorEvent::Exited { status, restarting } => {
                if status.oom_killed {
                    self.event(c, "oom", &[]);
                }
                self.event(c, "die", &[("exitCode", status.exit_code().to_string())]);
                if status.oom_killed {
                    tracing::warn!(
                        "container {} was OOM killed (memory limit reached)",
                        short_id(c.id())
                    );
                }
                let exit = ContainerExit {
                    code: status.exit_code(),
                    finished: now_nanos(),
                    oom_killed: status.oom_killed,
                };
                let run = LastRun {
                    started: *started,
                    exit,
                };
                self.record_exit(c, run, restarting);
            }
        }
    }

    /// Records an exit in the store, or, when the store cannot take it (a full disk),
    /// in the container's reserved `last-exit` file, which readers fold into the record.
    ///
    /// An AutoRemove container's final exit goes to the file only: its record is deleted
    /// moments later, and until then (or for good, should the removal fail) readers fold
    /// the file in. One data sync instead of a store transaction's five or so, on the
    /// path of every `run --rm`.
    fn record_exit(&self, c: &Container, run: LastRun, restarting: bool) {
        if !restarting && c.config.auto_remove() && exits::write(&c.paths, run).is_ok() {
            return;
        }
        let Err(e) = self.store.container_exited(c.id(), run.exit, restarting) else {
            return;
        };
        match exits::write(&c.paths, run) {
            Ok(()) => tracing::warn!(
                "recording the exit of {} in the store: {e}; kept in {}",
                short_id(c.id()),
                c.paths.last_exit().display()
            ),
            Err(kept) => tracing::warn!(
                "recording the exit of {}: {e}; keeping it in {} failed too: {kept}",
                short_id(c.id()),
                c.paths.last_exit().display()
            ),
        }
    }

    /// Starts container `query` under a detached supervisor unless it is up already, and
    /// waits until its init runs, or reports why it did not start (with docker's exit
    /// code).
    pub fn start(&self, query: &str) -> Result<()> {
        let c = self.container(query)?;
        if self.status(&c).is_up() {
            return Ok(());
        }
        self.store.writable("start container")?;
        self.on_storage(self.start_detached(&c))
    }

    pub(crate) fn start_detached(&self, c: &Container) -> Result<()> {
        let mut child = self.spawn_supervisor(c.id(), SupervisorStdio::null())?;
        let mut exited = None;
        status::wait_for(START_WAIT, || {
            if status::live_init(&self.paths, c.id()).is_some() {
                return true;
            }
            exited = child.try_wait().ok().flatten();
            exited.is_some()
        });
        if status::live_init(&self.paths, c.id()).is_some() || exited.is_none() {
            return Ok(());
        }
        // The supervisor ended before the init appeared: it failed to start it, or the
        // container ran and exited already (and, with AutoRemove, may be gone).
        let Ok(message) = std::fs::read_to_string(c.paths.start_error()) else {
            return Ok(());
        };
        let code = match self.stored(c.id()) {
            Ok(record) => record.exit.map_or(ENGINE_FAILURE, |e| e.code),
            Err(_) => ENGINE_FAILURE,
        };
        Err(EngineError::StartFailed {
            id: c.id().to_string(),
            message,
            code,
        })
    }

    /// Starts the supervisor process of container `id` in a session of its own, with
    /// `stdio`.
    pub(crate) fn spawn_supervisor(&self, id: &str, stdio: SupervisorStdio) -> Result<Child> {
        let Some(how) = &self.supervisor else {
            return Err(EngineError::InvalidArgument(
                "this engine was opened without a supervisor command: it cannot start a container's \
                 supervisor process (Engine::supervise runs one in this process)"
                    .into(),
            ));
        };
        let mut command = Command::new(&how.program);
        command
            .arg0(&how.arg0)
            .args(&how.args)
            .arg(id)
            .stdin(stdio.stdin)
            .stdout(stdio.stdout)
            .stderr(stdio.stderr);
        match stdio.attached {
            true => command.env(ATTACHED_ENV, "1"),
            false => command.env_remove(ATTACHED_ENV),
        };
        let terminal = stdio.terminal;
        // SAFETY: setsid and ioctl are async-signal-safe. The supervisor leaves our session
        // so that closing the user's terminal does not hang it up; a pty the engine made for
        // it becomes its controlling terminal, so that resizing it sends SIGWINCH.
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if terminal && libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        // The supervisor moves the init into the container's cgroups once it has set up:
        // the kernel's wait for that migration runs meanwhile.
        basic_runtime::cgroups::warm_up_migration();
        command
            .spawn()
            .map_err(EngineError::io("starting the supervisor", &how.program))
    }
}

/// SIGHUP and SIGPIPE ignored for as long as it lives, then as they were.
struct OutliveCaller {
    previous: Vec<(Signal, SigAction)>,
}

impl OutliveCaller {
    fn install() -> Self {
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let previous = [Signal::SIGHUP, Signal::SIGPIPE]
            .into_iter()
            // SAFETY: SIG_IGN installs no handler.
            .filter_map(|signal| Some((signal, unsafe { sigaction(signal, &ignore) }.ok()?)))
            .collect();
        OutliveCaller { previous }
    }
}

impl Drop for OutliveCaller {
    fn drop(&mut self) {
        for (signal, previous) in self.previous.drain(..) {
            // SAFETY: puts back the disposition that was there before `install`.
            let _ = unsafe { sigaction(signal, &previous) };
        }
    }
}

/// Makes `file` close-on-exec (a descriptor kept across this process's program images
/// must still not reach what it starts).
fn set_cloexec(file: &File) {
    // SAFETY: F_GETFD/F_SETFD change only the descriptor flag of a descriptor we hold.
    unsafe {
        let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(file.as_raw_fd(), libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// "a: b: c" from an error and its sources.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
