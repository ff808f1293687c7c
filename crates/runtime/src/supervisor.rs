//! Keeping a container company for its whole life: its output into a
//! [`logfile`](crate::logfile) (and, in the foreground, onto the terminal), its
//! exit status to the caller, and restarts by policy.
//!
//! The supervisor is the container's parent. An engine runs it in a process of
//! its own for a detached container (docker's shim, podman's conmon), so the
//! container outlives the command that started it, or in its own process for
//! a foreground one. Either way the caller learns of each start and exit
//! through [`SupervisorEvent`]s, and records them where it keeps containers.
//!
//! With [`Supervisor::attach`] it also serves the container's stdio to clients of a unix
//! socket while the container runs (docker's `attach`; see [`crate::attach`]).
//!
//! # One thread, and a small program while the container runs
//!
//! From a start to the exit everything the supervisor moves (output into the log, to the
//! terminal and to the attach clients; input; resizes; the exit) goes through one `poll`
//! in the calling thread (`pump`): the process never has a second thread, so the fork
//! rule holds at every restart.
//!
//! With [`Supervisor::lean`], a supervisor that is a process of its own also leaves its
//! program while the container runs: once the container's processes are forked it
//! re-executes itself as a small program ([`lean_main`], the `basic-docker-supervise`
//! binary) that runs the same loop with the same descriptors, and that re-executes the
//! original program once the init has exited (still unreaped), which then reaps it,
//! records the exit and restarts by policy ([`Resumed`]). The init stays a child of the
//! same process throughout. A big program's touched pages, allocator and libraries are
//! what a supervisor costs per container; the small one keeps that near conmon's.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crate::attach::{Hub, Serve};
use crate::container::{Container, ContainerError, ExitStatus};
use crate::logfile::{LogWriter, Rotation, Stream};
use crate::terminal::ConsoleSocket;

mod lean;
mod pump;

pub use lean::{Lean, Resumed, lean_main};
use pump::{Out, Pump};

/// How long a container runs before a [`Supervisor::lean`] supervisor leaves for the small
/// program: the exit of a container that is done by then is handled without it.
const HANDOFF_AFTER: Duration = Duration::from_millis(25);

/// When the supervisor starts a container again after it exits (docker's `--restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Never (`no`, the default).
    #[default]
    No,
    /// After a non-zero exit, at most `max_retries` times when given (`on-failure[:N]`).
    OnFailure {
        /// The most restarts; `None` is unlimited.
        max_retries: Option<u32>,
    },
    /// After every exit, until stopped (`always`).
    Always,
    /// As `always`; the difference (not restarting a stopped container when the
    /// engine starts) is the engine's (`unless-stopped`).
    UnlessStopped,
}

/// A `--restart` value that is not one of docker's.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid restart policy {0:?}: expected no, always, unless-stopped or on-failure[:max-retries]"
)]
pub struct InvalidRestartPolicy(String);

impl FromStr for RestartPolicy {
    type Err = InvalidRestartPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidRestartPolicy(s.to_string());
        match s.split_once(':') {
            None => match s {
                "no" | "" => Ok(RestartPolicy::No),
                "always" => Ok(RestartPolicy::Always),
                "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
                "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: None }),
                _ => Err(bad()),
            },
            Some(("on-failure", n)) => n
                .parse()
                .map(|n| RestartPolicy::OnFailure {
                    max_retries: Some(n),
                })
                .map_err(|_| bad()),
            Some(_) => Err(bad()),
        }
    }
}

impl std::fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { max_retries: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl RestartPolicy {
    /// Whether a container that ended with `status`, already restarted
    /// `restarts` times, starts again.
    pub fn restarts(&self, status: &ExitStatus, restarts: u32) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max_retries } => {
                status.exit_code() != 0 && max_retries.is_none_or(|max| restarts < max)
            }
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }
}

/// What happened to the supervised container.
#[derive(Debug)]
pub enum SupervisorEvent<'a> {
    /// It is about to start (again).
    Starting,
    /// It exited; `restarting` says whether the policy starts it again.
    Exited {
        /// How it ended.
        status: &'a ExitStatus,
        /// Whether a restart follows.
        restarting: bool,
    },
}

/// Why supervising failed.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// Setting up the output plumbing or the log failed.
    #[error("supervising container {id}: {what}")]
    Io {
        /// The container.
        id: String,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The container could not start.
    #[error(transparent)]
    Container(#[from] ContainerError),
}

/// Where the container's output goes.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// A json-file log and its rotation, when logging.
    pub log: Option<(PathBuf, Rotation)>,
    /// Also copy the output to this process's stdout and stderr (a foreground run).
    pub echo: bool,
    /// What the container reads.
    pub stdin: Input,
}

/// What a supervised container reads as its stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Input {
    /// `/dev/null` (docker without `-i`).
    #[default]
    Null,
    /// This process's stdin, copied into a pipe (`-i`): the container never holds the
    /// caller's descriptor itself.
    Relayed,
    /// Nothing from here: the container's stdio is its own terminal, and this process's
    /// stdin is left alone for the caller to relay to that terminal (`-t`).
    Terminal,
    /// A pipe this supervisor holds open for the clients of its attach socket (a detached
    /// `-i`; see [`Supervisor::attach`]): what they send is the container's input. With
    /// [`Supervisor::console`] (and `attach_stdin`), it is copied to the terminal.
    Attach,
}

/// Runs a container, restarting it by policy, with its output captured.
///
/// It forks the container from the calling process, so that process must be
/// single-threaded when [`Supervisor::run`] is called ([the fork rule](crate::fork_rule)).
/// The supervisor starts no thread of its own: it relays the container's stdio from the
/// calling thread.
#[derive(Debug)]
pub struct Supervisor<'a> {
    container: &'a Container,
    output: Output,
    restart: RestartPolicy,
    console: Option<(ConsoleSocket, bool)>,
    attach: Option<Serve>,
    lean: Option<Lean>,
    resumed: std::cell::RefCell<Option<Resumed>>,
}

impl<'a> Supervisor<'a> {
    /// Supervises `container`, sending its output where `output` says.
    pub fn new(container: &'a Container, output: Output, restart: RestartPolicy) -> Self {
        Supervisor {
            container,
            output,
            restart,
            console: None,
            attach: None,
            lean: None,
            resumed: std::cell::RefCell::new(None),
        }
    }

    /// While the container runs, this process runs `lean` instead of its own program (see
    /// the module's documentation). Only for a process that exists to supervise: its
    /// program image is replaced, twice per start, and [`Supervisor::run`] returns only in
    /// the program that [`Resumed`] continues.
    pub fn lean(mut self, lean: Lean) -> Self {
        self.lean = Some(lean);
        self
    }

    /// Continues the supervision that this process's previous program image handed to
    /// [`Supervisor::lean`]'s program: [`Supervisor::run`] starts by reaping the init and
    /// goes on from its exit.
    pub fn resume(self, resumed: Resumed) -> Self {
        *self.resumed.borrow_mut() = Some(resumed);
        self
    }

    /// Serves the container's stdio to attach clients (see [`crate::attach`]) in
    /// `serve.endpoint`'s directory, from before the first start until the last exit:
    /// its output to every client, and with [`Input::Attach`] their input to it. Clients
    /// waiting for a start are connected before the container's first output is read, and
    /// served from the calling thread until the exit.
    pub fn attach(mut self, serve: Serve) -> Self {
        self.attach = Some(serve);
        self
    }

    /// Relays the container's terminal (`process.terminal`, with the other end of `socket`
    /// given to [`ContainerBuilder::console_socket_fd`](crate::ContainerBuilder::console_socket_fd))
    /// to this process's stdout, and this process's stdin to it when `attach_stdin`: at each
    /// start, from when the container's processes are forked until its init exits (see
    /// [`Console::relay`](crate::terminal::Console::relay)). Use it with [`Input::Terminal`];
    /// with [`Output::log`] the terminal's output is logged as stdout.
    pub fn console(mut self, socket: ConsoleSocket, attach_stdin: bool) -> Self {
        self.console = Some((socket, attach_stdin));
        self
    }

    /// Runs the container until it exits for good: the policy says no more
    /// restarts, or `stop_requested` turns true (`docker stop`). Returns the last
    /// exit status. Replaces this process's stdio while the container runs.
    ///
    /// The calling process must be single-threaded: each start is refused otherwise
    /// ([`ContainerError::ForkRule`], see [`crate::fork_rule`]).
    pub fn run(
        &self,
        stop_requested: &dyn Fn() -> bool,
        on_event: &mut dyn FnMut(SupervisorEvent<'_>),
    ) -> Result<ExitStatus, SupervisorError> {
        let mut log = match &self.output.log {
            Some((path, rotation)) => {
                Some(LogWriter::open(path, *rotation).map_err(self.io("opening the log file"))?)
            }
            None => None,
        };
        let mut resumed = self.resumed.borrow_mut().take();
        // Bound once, before the first start: it outlives restarts (and program images).
        let hub = match (
            &self.attach,
            resumed.as_mut().and_then(|r| r.listener.take()),
        ) {
            (Some(serve), Some(listener)) => Some(
                Hub::adopt(serve, self.console.is_some(), listener)
                    .map_err(self.io("taking over the attach socket"))?,
            ),
            (Some(serve), None) => Some(
                Hub::open(serve, self.console.is_some())
                    .map_err(self.io("binding the attach socket"))?,
            ),
            (None, _) => None,
        };
        let mut restarts = 0;
        let mut delay = Duration::from_millis(100);
        loop {
            let (status, ran) = match resumed.take() {
                Some(r) => {
                    restarts = r.restarts;
                    delay = r.delay;
                    let ran = r.ran();
                    let status = self.container.adopt(r.pid).wait()?;
                    (status, ran)
                }
                None => {
                    on_event(SupervisorEvent::Starting);
                    let started = Instant::now();
                    let resume = lean::Resume {
                        restarts,
                        delay,
                        started: lean::monotonic_now(),
                    };
                    let status = self.run_once(log.as_mut(), hub.as_ref(), resume)?;
                    (status, started.elapsed())
                }
            };
            let restarting = !stop_requested() && self.restart.restarts(&status, restarts);
            on_event(SupervisorEvent::Exited {
                status: &status,
                restarting,
            });
            if !restarting {
                return Ok(status);
            }
            restarts += 1;
            // docker's back-off: doubling from 100 ms, reset after 10 s of running.
            if ran >= Duration::from_secs(10) {
                delay = Duration::from_millis(100);
            }
            if !sleep_unless(delay, stop_requested) {
                return Ok(status);
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }

    /// One start of the container, with its stdio captured until it exits.
    ///
    /// The fork rule (see [`crate::fork_rule`]) orders the steps: this process's stdio is
    /// pointed at pipes (the runtime gives the container the stdio of the process that
    /// runs it), the container's processes are forked, this process's stdio is put back,
    /// and only then is anything read: the attach clients waiting for this start are taken
    /// before the first byte of output is, so they get all of it. Nothing here starts a
    /// thread.
    fn run_once(
        &self,
        log: Option<&mut LogWriter>,
        hub: Option<&Hub>,
        resume: lean::Resume,
    ) -> Result<ExitStatus, SupervisorError> {
        let redirect =
            Redirect::install(self.output.stdin).map_err(self.io("redirecting output"))?;
        let started = self.container.start();
        // The container's processes hold their ends: ours go, and the caller's stdio is
        // this process's again.
        let mut plumbing = redirect.restore().map_err(self.io("restoring output"))?;
        let running = match started {
            Ok(running) => running,
            Err(e) => {
                // Whatever its processes wrote before they were killed still goes to the
                // log (and to the clients).
                let code = e.exit_code();
                let mut session = hub.and_then(|hub| hub.session(None).ok());
                let mut pump = Pump::new(None, code).log(log).echo(self.output.echo);
                let outs = plumbing.outputs().map_err(self.io("reading output"))?;
                for out in outs {
                    pump = pump.output(out);
                }
                pump.session(session.as_mut()).run();
                if let Some(session) = session {
                    session.finish(code);
                }
                return Err(e.into());
            }
        };
        let pid = running.pid();
        let master = self.receive_terminal(pid);
        let stdin = plumbing
            .take_attach_stdin(master.as_ref())
            .map_err(self.io("keeping the container's stdin"))?;
        let relayed = plumbing.take_relayed_stdin();
        // A container done within moments (`run --rm … true`) is not worth the `execve`s:
        // its exit is waited for here first (its output waits in the pipes meanwhile).
        if let Some(lean) = self
            .lean
            .as_ref()
            .filter(|_| !pump::exits_within(pid, HANDOFF_AFTER))
        {
            let handoff = lean::Handoff {
                id: self.container.id(),
                pid,
                outs: &plumbing.readers,
                master: master.as_ref(),
                relayed_stdin: relayed.as_ref(),
                attach_stdin: stdin.as_ref(),
                terminal_input: self.console.as_ref().is_some_and(|(_, a)| *a),
                output: &self.output,
                hub,
                stdin_once: self.attach.as_ref().is_some_and(|s| s.stdin_once),
                forward_signals: self.container.forwards_signals(),
                resume,
            };
            // Returns only when the program could not be executed: supervised from here.
            let e = handoff.exec(lean);
            report(&format!("running {}", lean.program.display()), &e);
        }
        let mut session = match hub {
            Some(hub) => Some(
                hub.session(stdin)
                    .map_err(self.io("taking the attach clients"))?,
            ),
            None => None,
        };
        if let Some(session) = session.as_mut() {
            session.set_init(pid);
            if let Some(master) = master.as_ref().and_then(|m| m.try_clone().ok()) {
                session.set_terminal(master);
            }
        }
        let terminal_input = self.console.as_ref().is_some_and(|(_, a)| *a);
        let pump = plumbing
            .outputs()
            .and_then(|outs| {
                let echo = self.output.echo;
                pump::for_start(pid, outs, relayed, master, terminal_input, echo, log)
            })
            .map_err(self.io("relaying the container's stdio"))?;
        let code = pump.session(session.as_mut()).run();
        // Clients get all the output, then the exit.
        if let Some(session) = session {
            session.finish(code);
        }
        Ok(running.wait()?)
    }

    /// With [`Supervisor::console`]: the container's terminal, once its processes sent it.
    /// Without it the container runs on, unrelayed; that is reported on stderr.
    fn receive_terminal(&self, pid: i32) -> Option<OwnedFd> {
        let (socket, _) = self.console.as_ref()?;
        match socket.receive() {
            Ok(console) => Some(console.into_master()),
            Err(e) => {
                report(
                    &format!(
                        "relaying the terminal of container {} (init {pid})",
                        self.container.id()
                    ),
                    &e,
                );
                None
            }
        }
    }

    fn io(&self, what: &str) -> impl FnOnce(io::Error) -> SupervisorError {
        let (id, what) = (self.container.id().to_string(), what.to_string());
        move |source| SupervisorError::Io { id, what, source }
    }
}

/// Sleeps `total`, waking early (and returning false) when a stop is requested.
fn sleep_unless(total: Duration, stop_requested: &dyn Fn() -> bool) -> bool {
    let until = Instant::now() + total;
    while Instant::now() < until {
        if stop_requested() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    !stop_requested()
}

/// Reports on this process's stderr something that failed beside the container, which
/// runs on.
fn report(what: &str, e: &dyn std::error::Error) {
    let _ = writeln!(io::stderr(), "{what}: {}", crate::process::chain(e));
}

/// This process's fds 1 and 2 pointed at pipes, and 0 at a pipe or `/dev/null`
/// (see [`Input`]), while the container's processes are forked: the runtime gives the
/// container the stdio of the process that runs it, and that must never be the caller's
/// own terminal or files (see [`crate::pipes`]).
struct Redirect {
    saved_in: Option<OwnedFd>,
    saved_out: [OwnedFd; 2],
    plumbing: Plumbing,
}

/// The supervisor's ends of the container's stdio pipes.
#[derive(Debug)]
pub(crate) struct Plumbing {
    /// The read ends of its stdout and stderr.
    pub(crate) readers: Vec<OwnedFd>,
    /// The write end of its stdin, and whether this process's stdin is copied into it
    /// ([`Input::Relayed`]) or attach clients write it ([`Input::Attach`]).
    stdin: Option<(OwnedFd, Input)>,
}

impl Plumbing {
    /// The outputs, for a pump.
    pub(crate) fn outputs(&self) -> io::Result<Vec<Out>> {
        self.readers
            .iter()
            .zip([Stream::Stdout, Stream::Stderr])
            .map(|(fd, stream)| Out::pipe(fd.try_clone()?, stream))
            .collect()
    }

    /// With [`Input::Relayed`]: the pipe this process's stdin is copied into. Taken: the
    /// container sees the end of its input when the copy closes it.
    pub(crate) fn take_relayed_stdin(&mut self) -> Option<OwnedFd> {
        match self.stdin.take() {
            Some((fd, Input::Relayed)) => Some(fd),
            other => {
                self.stdin = other;
                None
            }
        }
    }

    /// With [`Input::Attach`]: where the clients' input goes, the terminal when there is
    /// one, else the container's stdin pipe (taken: `StdinOnce` closes it).
    fn take_attach_stdin(&mut self, master: Option<&OwnedFd>) -> io::Result<Option<OwnedFd>> {
        match (self.stdin.take(), master) {
            (Some((_, Input::Attach)), Some(master)) => master.try_clone().map(Some),
            (Some((fd, Input::Attach)), None) => Ok(Some(fd)),
            (other, _) => {
                self.stdin = other;
                Ok(None)
            }
        }
    }
}

impl Redirect {
    fn install(input: Input) -> io::Result<Self> {
        let saved_out = [dup(1)?, dup(2)?];
        let saved_in = match input {
            Input::Terminal => None,
            Input::Null | Input::Relayed | Input::Attach => Some(dup(0)?),
        };
        let stdin = match input {
            Input::Attach | Input::Relayed => {
                let (read, write) = crate::pipes::pipe()?;
                dup2(read.as_fd(), 0)?;
                Some((write, input))
            }
            Input::Null => {
                let null = File::open("/dev/null")?;
                dup2(null.as_fd(), 0)?;
                None
            }
            Input::Terminal => None,
        };
        let mut readers = Vec::new();
        for fd in [1, 2] {
            let (read, write) = crate::pipes::pipe()?;
            dup2(write.as_fd(), fd)?;
            readers.push(read);
        }
        Ok(Redirect {
            saved_in,
            saved_out,
            plumbing: Plumbing { readers, stdin },
        })
    }

    /// Puts the caller's stdio back, closing this process's copies of the container's
    /// ends; returns ours.
    fn restore(self) -> io::Result<Plumbing> {
        dup2(self.saved_out[0].as_fd(), 1)?;
        dup2(self.saved_out[1].as_fd(), 2)?;
        if let Some(saved) = &self.saved_in {
            dup2(saved.as_fd(), 0)?;
        }
        Ok(self.plumbing)
    }
}

fn dup(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: fds 0-2 are open for the life of the process; dup makes a new one we own.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new` was just returned by fcntl and nothing else owns it.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(new) })
}

fn dup2(from: std::os::fd::BorrowedFd<'_>, to: i32) -> io::Result<()> {
    // SAFETY: both are open descriptors; `to` is one of our stdio fds, replaced on purpose.
    if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32) -> ExitStatus {
        ExitStatus {
            code: Some(code),
            signal: None,
            oom_killed: false,
        }
    }

    #[test]
    fn policies_parse_and_print_as_docker_writes_them() {
        for text in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            assert_eq!(text.parse::<RestartPolicy>().unwrap().to_string(), text);
        }
        for bad in ["sometimes", "on-failure:x", "always:2"] {
            let err = bad.parse::<RestartPolicy>().unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("on-failure"), "{err}");
        }
    }

    #[test]
    fn policies_decide_restarts() {
        let p: RestartPolicy = "on-failure:2".parse().unwrap();
        assert!(!p.restarts(&exit(0), 0));
        assert!(p.restarts(&exit(1), 1));
        assert!(!p.restarts(&exit(1), 2));
        assert!(RestartPolicy::Always.restarts(&exit(0), 100));
        assert!(!RestartPolicy::No.restarts(&exit(1), 0));
    }
}
