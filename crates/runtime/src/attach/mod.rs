//! Attaching to a supervised container's stdio (docker's `attach`, podman's conmon
//! attach socket): while the container runs, its [`Supervisor`](crate::supervisor::Supervisor)
//! serves a unix socket from which any number of clients read the container's output as
//! it is produced and, when the container reads what clients send (docker's `OpenStdin`),
//! write its stdin, resize its terminal and signal its init.
//!
//! # The directory
//!
//! An [`Endpoint`] is a directory private to its owner (`0700`; the sockets and the lock
//! file `0600`): whoever can connect controls the container's stdin. It holds
//! - `attach`: the supervisor's socket, bound for the whole supervision (all restarts);
//! - `pending/NAME`: one socket per client waiting for the next start
//!   ([`Endpoint::connect_or_wait`]): the supervisor connects to each of them *before* it
//!   reads the container's first output, so such a client gets every byte the container writes from its
//!   first instruction on (docker's CLI attaches to a created container, then starts it);
//! - `lock`: taken by the supervisor while it binds its socket or takes the waiting
//!   clients, and by a client while it decides between connecting and waiting, so that a
//!   client never waits for a start that has already taken the others.
//!
//! A socket's path must fit in 108 bytes; both sides reach them through the directory's
//! own descriptor (`/proc/self/fd/N/attach`), so the directory may be anywhere.
//!
//! # The protocol
//!
//! `SOCK_SEQPACKET`, as conmon's: every message is one packet, its first byte the kind,
//! the rest the payload (at most [`MAX_PAYLOAD`] bytes of stream data; integers are
//! big-endian). Each side sends its hello first.
//!
//! | kind | from | payload | meaning |
//! |---|---|---|---|
//! | `0x01` HELLO | client | version (1), flags: 1 stdin, 2 stdout, 4 stderr | what the client attaches |
//! | `0x02` STDIN | client | bytes | input for the container |
//! | `0x03` CLOSE_STDIN | client | — | the client's input ended |
//! | `0x04` RESIZE | client | rows u16, cols u16 | `TIOCSWINSZ` on the container's terminal |
//! | `0x05` SIGNAL | client | signal number i32 | a signal for the container's init |
//! | `0x81` HELLO | supervisor | version (1), flags: 1 terminal, 2 stdin open | what the container has |
//! | `0x82` STDOUT | supervisor | bytes | output (with a terminal: the terminal's stream) |
//! | `0x83` STDERR | supervisor | bytes | error output |
//! | `0x84` EXIT | supervisor | exit code i32 | the container exited; the connection closes |
//!
//! Until a client's hello is read the supervisor sends it both streams (a waiting client
//! is connected before its hello can arrive); the client drops what it did not ask for.
//! A connection closed without EXIT means the supervisor ended the attachment: the
//! client was too slow, its input ended (see below), or the supervisor itself ended.
//!
//! # Semantics (docker's)
//!
//! - Output goes to every client as it is read, and to the log as before; a client gets
//!   at most [`MAX_QUEUED`] bytes ahead of it and is dropped past that, so neither a flood
//!   of output nor a client that stopped reading can block the container, the other
//!   clients or the supervisor, or grow its memory past [`MAX_CLIENTS`] × [`MAX_QUEUED`].
//! - Input reaches the container only when it was started with its stdin a pipe the
//!   supervisor holds ([`Input::Attach`](crate::supervisor::Input::Attach); docker's
//!   `OpenStdin`, `-i`): never a descriptor of the host. The pipe stays open while no
//!   client is attached. With a terminal, input goes to the terminal.
//! - When a client's input ends (CLOSE_STDIN, or it leaves): with `StdinOnce` and no
//!   terminal, the container's stdin is closed and the client stays until the exit;
//!   otherwise the client's attachment ends (the container's stdin stays open).
//! - Connections end at each exit of the container, after EXIT, as docker's attach does:
//!   a client that wants the next run attaches again. The socket itself outlives
//!   restarts (a client connecting meanwhile is served from the next start). The
//!   supervisor serves the clients from its one thread (its `poll` over the container's
//!   stdio), so [the fork rule](crate::fork_rule) holds at every restart.
//!
//! ```no_run
//! use basic_runtime::attach::{Endpoint, Event, Request};
//!
//! let endpoint = Endpoint::new("/run/my-engine/containers/c1");
//! let client = endpoint.connect(Request { stdin: false, stdout: true, stderr: true })?;
//! while let Some(event) = client.recv()? {
//!     match event {
//!         Event::Output(stream, bytes) => println!("{stream:?}: {}", String::from_utf8_lossy(&bytes)),
//!         Event::Exit(code) => println!("exited with {code}"),
//!     }
//! }
//! # Ok::<(), basic_runtime::attach::AttachError>(())
//! ```

mod client;
mod dir;
mod hub;
#[cfg(test)]
mod tests;
mod wire;

use std::path::{Path, PathBuf};

pub use client::Client;
pub use hub::{MAX_CLIENTS, MAX_QUEUED, MAX_STDIN_PENDING, Serve};
pub use wire::MAX_PAYLOAD;

pub(crate) use hub::{Hub, Session};

use crate::logfile::Stream;

/// The directory where a container's supervisor serves attach clients.
#[derive(Debug, Clone)]
pub struct Endpoint {
    dir: PathBuf,
}

impl Endpoint {
    /// The endpoint in `dir` (created, `0700`, when first used).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Endpoint { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Attaches to the supervisor serving now: [`AttachError::NotServing`] when none does.
    pub fn connect(&self, request: Request) -> Result<Client, AttachError> {
        Client::connect(&self.dir, request)
    }

    /// Attaches to the supervisor serving now, or, when none does, registers to be
    /// connected by the next start before the container's first instruction (the client's
    /// first [`Client::recv`] or send waits for it).
    pub fn connect_or_wait(&self, request: Request) -> Result<Client, AttachError> {
        Client::connect_or_wait(&self.dir, request)
    }
}

/// What a client attaches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Request {
    /// Its input goes to the container's stdin.
    pub stdin: bool,
    /// It gets the container's stdout (with a terminal: the terminal's output).
    pub stdout: bool,
    /// It gets the container's stderr.
    pub stderr: bool,
}

/// What a client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Output of the container, as it was read.
    Output(Stream, Vec<u8>),
    /// The container exited with this code (docker's: 128 + the signal when killed);
    /// nothing follows.
    Exit(i32),
}

/// Why attaching failed.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No supervisor listens in the directory: the container does not run (or its
    /// supervisor predates attach).
    #[error("no supervisor serves attach clients in {dir}: the container is not running")]
    NotServing {
        /// The endpoint's directory.
        dir: PathBuf,
    },
    /// The socket's other end runs as another user.
    #[error("the attach socket in {dir} belongs to uid {uid}, not to this user: refused")]
    Foreign {
        /// The endpoint's directory.
        dir: PathBuf,
        /// Who listens there.
        uid: u32,
    },
    /// The attachment is over (shut down, or ended by the supervisor).
    #[error("the attachment is closed")]
    Closed,
    /// A file or socket operation failed.
    #[error("attaching through {dir}: {what}")]
    Io {
        /// The endpoint's directory.
        dir: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
