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

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::attach::{Hub, Serve, Session, Sink};
use crate::container::{Container, ContainerError, ExitStatus, Running};
use crate::logfile::{LogWriter, Rotation, Stream};
use crate::terminal::ConsoleSocket;

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
/// single-threaded when [`Supervisor::run`] is called ([the fork rule](crate::fork_rule));
/// the supervisor's own threads (relaying the container's stdio) run only between a start
/// and the container's exit.
#[derive(Debug)]
pub struct Supervisor<'a> {
    container: &'a Container,
    output: Output,
    restart: RestartPolicy,
    console: Option<(ConsoleSocket, bool)>,
    attach: Option<Serve>,
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
        }
    }

    /// Serves the container's stdio to attach clients (see [`crate::attach`]) in
    /// `serve.endpoint`'s directory, from before the first start until the last exit:
    /// its output to every client, and with [`Input::Attach`] their input to it. Clients
    /// waiting for a start are connected before the container is forked; the thread that
    /// serves them runs from each start to the exit.
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
        let log = match &self.output.log {
            Some((path, rotation)) => Some(Arc::new(Mutex::new(
                LogWriter::open(path, *rotation).map_err(self.io("opening the log file"))?,
            ))),
            None => None,
        };
        // Bound once, before the first start: it outlives restarts.
        let hub = match &self.attach {
            Some(serve) => Some(
                Hub::open(serve, self.console.is_some())
                    .map_err(self.io("binding the attach socket"))?,
            ),
            None => None,
        };
        let mut restarts = 0;
        let mut delay = Duration::from_millis(100);
        loop {
            on_event(SupervisorEvent::Starting);
            let started = Instant::now();
            let status = self.run_once(log.clone(), hub.as_ref())?;
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
            if started.elapsed() >= Duration::from_secs(10) {
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
    /// pointed at pipes first (no thread needed), the attach clients waiting for this
    /// start are connected (no thread either), the container's processes are forked
    /// while this process is still single-threaded, and only then do the threads that copy
    /// the pipes and serve the clients start. They are all joined before the next start.
    fn run_once(
        &self,
        log: Option<Arc<Mutex<LogWriter>>>,
        hub: Option<&Hub>,
    ) -> Result<ExitStatus, SupervisorError> {
        let mut redirect =
            Redirect::install(self.output.stdin).map_err(self.io("redirecting output"))?;
        let mut session = match hub {
            Some(hub) => Some(
                hub.session(redirect.attach_stdin.take())
                    .map_err(self.io("taking the attach clients"))?,
            ),
            None => None,
        };
        let started = self.container.start();
        // Also after a failed start: whatever its processes wrote before they were killed
        // still goes to the log (and to the clients).
        let outputs =
            redirect.relay_outputs(self.output.echo, log, session.as_ref().map(Session::sink));
        let result = match started {
            Err(e) => Err(e.into()),
            Ok(running) => match redirect.relay_input() {
                // Dropping `running` kills the container: nobody could feed its stdin.
                Err(e) => Err(self.io("relaying input")(e)),
                Ok(()) => {
                    if let Some(session) = session.as_mut() {
                        session.set_init(running.pid());
                        if let Err(e) = session.start() {
                            // The container runs on; only attaching to it is lost.
                            self.report(&redirect, "serving attach clients", &e);
                        }
                    }
                    self.relay_console(&running, &redirect, session.as_ref());
                    running.wait().map_err(SupervisorError::from)
                }
            },
        };
        // Restoring our stdio closes our ends of the pipes; the relays end
        // once the container's processes have closed theirs too.
        let restored = redirect.restore();
        for r in outputs {
            let _ = r.join();
        }
        // Clients get all the output, then the exit.
        if let Some(session) = session {
            session.finish(match &result {
                Ok(status) => status.exit_code(),
                Err(SupervisorError::Container(e)) => e.exit_code(),
                Err(_) => 125,
            });
        }
        restored.map_err(self.io("restoring output"))?;
        result
    }

    /// Reports on the caller's stderr something that failed beside the container.
    fn report(&self, redirect: &Redirect, what: &str, e: &dyn std::error::Error) {
        if let Ok(stderr) = redirect.saved_out[1].try_clone() {
            let _ = writeln!(
                File::from(stderr),
                "{what} for container {}: {}",
                self.container.id(),
                crate::process::chain(e)
            );
        }
    }

    /// With [`Supervisor::console`]: the container's terminal, relayed in this thread until
    /// its init exits. A relay that fails is reported on the caller's stderr; the container
    /// runs on without it.
    ///
    /// Attach clients resize the terminal through a copy of its master held by `session`.
    fn relay_console(&self, running: &Running<'_>, redirect: &Redirect, session: Option<&Session>) {
        let Some((socket, attach_stdin)) = &self.console else {
            return;
        };
        let relayed = socket
            .receive()
            .and_then(|console| console.watch_process(running.pid()))
            .and_then(|console| {
                if let Some(session) = session
                    && let Ok(master) = console.master().try_clone_to_owned()
                {
                    session.set_terminal(master);
                }
                console.relay_stdio(*attach_stdin)
            });
        if let Err(e) = relayed {
            self.report(redirect, "relaying the terminal", &e);
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

/// This process's fds 1 and 2 pointed at pipes, and 0 at a pipe or `/dev/null`
/// (see [`Input`]), for as long as the container runs: the runtime gives
/// the container the stdio of the process that runs it, and that must never be
/// the caller's own terminal or files (see [`crate::pipes`]).
///
/// Installing it starts no thread; the relays that copy the pipes are started
/// once the container's processes are forked ([`Redirect::relay_outputs`],
/// [`Redirect::relay_input`]), as the fork rule requires.
struct Redirect {
    saved_in: Option<OwnedFd>,
    saved_out: [OwnedFd; 2],
    readers: Vec<OwnedFd>,
    stdin_link: Option<crate::pipes::Link>,
    stdin_relay: Option<crate::pipes::Relay>,
    /// With [`Input::Attach`]: the write end of the container's stdin, for the clients.
    attach_stdin: Option<OwnedFd>,
}

impl Redirect {
    fn install(input: Input) -> io::Result<Self> {
        let saved_out = [dup(1)?, dup(2)?];
        let saved_in = match input {
            Input::Terminal => None,
            Input::Null | Input::Relayed | Input::Attach => Some(dup(0)?),
        };
        let mut attach_stdin = None;
        let stdin_link = match (&saved_in, input) {
            (Some(_), Input::Attach) => {
                let (read, write) = crate::pipes::pipe()?;
                dup2(read.as_fd(), 0)?;
                attach_stdin = Some(write);
                None
            }
            (Some(saved), Input::Relayed) => {
                let (read, write) = crate::pipes::pipe()?;
                dup2(read.as_fd(), 0)?;
                Some(crate::pipes::Link::input(saved.as_fd(), write)?)
            }
            (Some(_), _) => {
                let null = File::open("/dev/null")?;
                dup2(null.as_fd(), 0)?;
                None
            }
            (None, _) => None,
        };
        let mut readers = Vec::new();
        for fd in [1, 2] {
            let (read, write) = nix::unistd::pipe().map_err(io::Error::from)?;
            dup2(write.as_fd(), fd)?;
            readers.push(read);
        }
        Ok(Redirect {
            saved_in,
            saved_out,
            readers,
            stdin_link,
            stdin_relay: None,
            attach_stdin,
        })
    }

    /// Starts copying the container's stdout and stderr into `log`, to the caller's own
    /// stdout and stderr when `echo`, and to the attach clients through `sink`.
    fn relay_outputs(
        &mut self,
        echo: bool,
        log: Option<Arc<Mutex<LogWriter>>>,
        sink: Option<Sink>,
    ) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut self.readers)
            .into_iter()
            .zip([Stream::Stdout, Stream::Stderr])
            .zip(self.saved_out.iter())
            .map(|((reader, stream), saved)| {
                let echo_to = match echo {
                    true => saved.try_clone().ok().map(File::from),
                    false => None,
                };
                relay(reader, stream, log.clone(), echo_to, sink.clone())
            })
            .collect()
    }

    /// Starts copying the caller's stdin into the container's, for [`Input::Relayed`].
    fn relay_input(&mut self) -> io::Result<()> {
        if let Some(link) = self.stdin_link.take() {
            self.stdin_relay = Some(crate::pipes::Relay::start(vec![link])?);
        }
        Ok(())
    }

    fn restore(mut self) -> io::Result<()> {
        if let Some(relay) = self.stdin_relay.take() {
            relay.finish();
        }
        dup2(self.saved_out[0].as_fd(), 1)?;
        dup2(self.saved_out[1].as_fd(), 2)?;
        if let Some(saved) = &self.saved_in {
            dup2(saved.as_fd(), 0)?;
        }
        Ok(())
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
    use std::os::fd::AsRawFd as _;
    // SAFETY: both are open descriptors; `to` is one of our stdio fds, replaced on purpose.
    if unsafe { libc::dup2(from.as_raw_fd(), to) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The longest line kept whole; longer output is logged in pieces, as docker does.
const MAX_LINE: usize = 16 * 1024;

/// Copies one stream into the log, line by line, and to `echo` and the attach clients
/// as it comes.
fn relay(
    reader: OwnedFd,
    stream: Stream,
    log: Option<Arc<Mutex<LogWriter>>>,
    mut echo: Option<File>,
    sink: Option<Sink>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = File::from(reader);
        let mut buf = vec![0u8; 32 * 1024];
        let mut line: Vec<u8> = Vec::new();
        let write_log = |bytes: &[u8]| {
            if let Some(log) = &log {
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                // A full disk must not stop the container: its output is dropped.
                let _ = log.write(stream, bytes, SystemTime::now());
            }
        };
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if let Some(out) = echo.as_mut() {
                // The terminal may be gone (the user's CLI was killed): keep logging.
                if out.write_all(&buf[..n]).is_err() {
                    echo = None;
                }
            }
            // Never blocks: a slow client is dropped, not waited for.
            if let Some(sink) = &sink {
                sink.broadcast(stream, &buf[..n]);
            }
            line.extend_from_slice(&buf[..n]);
            while let Some(end) = line.iter().position(|&b| b == b'\n') {
                write_log(&line[..=end]);
                line.drain(..=end);
            }
            while line.len() >= MAX_LINE {
                write_log(&line[..MAX_LINE]);
                line.drain(..MAX_LINE);
            }
        }
        if !line.is_empty() {
            write_log(&line);
        }
    })
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
