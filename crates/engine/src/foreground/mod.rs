//! A container in the foreground: under a supervisor process of its own, as every
//! container, with the caller attached to it (docker's CLI attaches to the daemon's shim,
//! podman's to conmon).
//!
//! The supervisor is the container's parent and outlives the caller: when the caller is
//! killed (`kill -9` of `basic-docker run`), the container runs on, its exit is recorded
//! and `--rm` removes it. The caller only relays:
//!
//! ```text
//! caller (this process)                          supervisor (container-supervise)
//!   stdin  --thread-----> pipe ----------------> stdin  --> container's stdin pipe (-i)
//!   stdout <--pump------- pipe <---------------- stdout <-- container's stdout (and log)
//!   stderr <--pump------- pipe <---------------- stderr <-- container's stderr, errors
//!   signals --> the container's init (docker's --sig-proxy, without a terminal)
//! with -t instead of the stdin and stdout pipes, a pty the engine makes:
//!   terminal (raw) <--Console::relay--> master | slave: the supervisor's stdin, stdout
//!                                                and controlling terminal (window size)
//! ```
//!
//! The caller never hands its own descriptors to the supervisor: what the container
//! writes after the caller is gone goes to the log only, and nothing of the engine holds
//! the caller's terminal or output pipe once the caller has exited. The supervisor's exit
//! status is the exit code docker reports; its own messages (why a start failed, with
//! docker's 125/126/127) arrive on the stderr pipe.

mod client;
mod pump;
mod signals;

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Child, Stdio};

use basic_image_store::short_id;

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use client::{Client, Proxy};

/// What the caller takes part in besides the container's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForegroundOptions {
    /// Relay this process's stdin to the container (`-i`).
    pub stdin: bool,
    /// Pass the signals this process receives on to the container's init (docker's
    /// `--sig-proxy`): SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2. Not with a
    /// terminal, where keys signal the container through it.
    pub sig_proxy: bool,
}

impl Default for ForegroundOptions {
    fn default() -> Self {
        ForegroundOptions {
            stdin: false,
            sig_proxy: true,
        }
    }
}

/// What a supervisor process gets as its stdio.
pub(crate) struct SupervisorStdio {
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// Its stdin is a terminal to make its controlling terminal (so that it receives
    /// SIGWINCH when the caller resizes it).
    pub terminal: bool,
    /// A caller is attached to its stdio (see [`crate::Attachment::of_supervisor_process`]).
    pub attached: bool,
}

impl SupervisorStdio {
    /// Nothing: a detached container.
    pub fn null() -> Self {
        SupervisorStdio {
            stdin: Stdio::null(),
            stdout: Stdio::null(),
            stderr: Stdio::null(),
            terminal: false,
            attached: false,
        }
    }
}

impl Engine {
    /// Starts container `query` under a supervisor of its own (as [`Engine::start`] does)
    /// with this process attached to it until it exits for good: its output on this
    /// process's stdout and stderr, this process's stdin with `options.stdin`, and with the
    /// container's `Tty` this process's terminal in raw mode, its window size followed.
    ///
    /// Returns the exit code docker reports: the container's own, or 125/126/127 when it
    /// could not start (the supervisor has said why on this process's stderr). When this
    /// process dies first, the container runs on: the supervisor records its exit and, for
    /// `AutoRemove`, removes it.
    pub fn start_attached(&self, query: &str, options: ForegroundOptions) -> Result<i32> {
        let c = self.container(query)?;
        if self.status(&c).is_up() {
            return Err(EngineError::Conflict(format!(
                "container {} is already running",
                short_id(c.id())
            )));
        }
        let tty = c.config.tty();
        let (client, stdio) = Client::new(c.id(), tty, options.stdin)?;
        // Keys signal the container through its terminal; without one, signals are passed
        // on, caught from before the supervisor starts (its exec resets the handlers).
        let proxy = match options.sig_proxy && !tty {
            true => Some(Proxy::install(&self.paths, c.id())?),
            false => None,
        };
        let mut child = self.spawn_supervisor(c.id(), stdio)?;
        client.relay(c.id(), &child, proxy);
        wait_child(&c, &mut child)
    }
}

/// The supervisor's exit status as docker's exit code.
fn wait_child(c: &Container, child: &mut Child) -> Result<i32> {
    let status = child.wait().map_err(|source| EngineError::Foreground {
        id: c.id().to_string(),
        what: "waiting for the supervisor".into(),
        source,
    })?;
    match (status.code(), status.signal()) {
        (Some(code), _) => Ok(code),
        (None, signal) => Err(EngineError::SupervisorKilled {
            id: c.id().to_string(),
            signal: signal.unwrap_or(0),
        }),
    }
}
