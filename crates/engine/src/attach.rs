//! `attach`: a running (or about to start) container's stdio, as docker's
//! `POST /containers/{id}/attach` and `docker attach` give it.
//!
//! The container's supervisor serves its output and takes its input over a socket (see
//! [`basic_runtime::attach`]); [`Engine::attach`] connects to it, or, for a container
//! not started yet, registers to be connected before its first instruction (docker's
//! command line attaches, then starts: nothing the container writes is lost).
//!
//! An [`Attached`] splits into a reader ([`AttachReader`], output frames, blocking) and a
//! writer ([`AttachWriter`]: input, resizes, signals, closing the input) for two threads,
//! as a server that relays a hijacked HTTP connection needs:
//!
//! ```no_run
//! # fn demo(engine: &basic_engine::Engine) -> basic_engine::Result<()> {
//! use basic_engine::{AttachEnd, AttachOptions, Sent};
//! use basic_runtime::logfile::Stream;
//!
//! let options = AttachOptions { stdin: true, ..Default::default() };
//! let (mut output, mut input) = engine.attach("web", &options)?.split();
//! let typing = std::thread::spawn(move || {
//!     // Bytes from the client; with a terminal, ctrl-p ctrl-q detaches.
//!     if input.send(b"echo hi\n")? == Sent::Delivered {
//!         input.close_stdin()?;
//!     }
//!     Ok::<_, basic_engine::EngineError>(())
//! });
//! for frame in output.by_ref() {
//!     let frame = frame?;
//!     match frame.stream {
//!         Stream::Stdout => print!("{}", String::from_utf8_lossy(&frame.bytes)),
//!         Stream::Stderr => eprint!("{}", String::from_utf8_lossy(&frame.bytes)),
//!     }
//! }
//! if let Some(AttachEnd::Exited(code)) = output.end() {
//!     println!("exited with {code}");
//! }
//! # let _ = typing.join();
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use basic_image_store::short_id;
use basic_runtime::attach::{AttachError, Client, Endpoint, Event, Request};
use basic_runtime::logfile::{self, Stream};
use basic_runtime::terminal::{RawMode, WindowSize, is_terminal, window_size};
use nix::sys::signal::Signal;

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::paths::{ContainerPaths, EnginePaths};
use crate::status::{self, Status};

/// How long [`Attached::relay_stdio`] waits for the supervisor after an exit, at most.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(10);

/// What to attach, docker's query parameters of `POST /containers/{id}/attach`.
#[derive(Debug, Clone)]
pub struct AttachOptions {
    /// Send input to the container's stdin (`stdin=1`); only for a container created
    /// with `OpenStdin` (`-i`), as in docker: otherwise input is not read.
    pub stdin: bool,
    /// Receive its stdout (`stdout=1`; with a terminal, the terminal's output).
    pub stdout: bool,
    /// Receive its stderr (`stderr=1`).
    pub stderr: bool,
    /// First replay its log (`logs=1`).
    pub logs: bool,
    /// Then follow what it writes (`stream=1`); without, only the log is replayed.
    pub stream: bool,
    /// The keys that detach (`detachKeys`); docker's ctrl-p,ctrl-q when `None`.
    pub detach_keys: Option<DetachKeys>,
    /// Also attach to a stopped container, waiting for its next start (the Docker API
    /// does, for `docker start -a` and docker-compose); without it, that is an error as
    /// in docker's `attach` command.
    pub await_start: bool,
}

impl Default for AttachOptions {
    /// Output (both streams) from now on, as `docker attach --no-stdin` would have it.
    fn default() -> Self {
        AttachOptions {
            stdin: false,
            stdout: true,
            stderr: true,
            logs: false,
            stream: true,
            detach_keys: None,
            await_start: false,
        }
    }
}

/// A detach sequence in docker's syntax: keys separated by commas, each a single
/// character or `ctrl-` with one of `a`–`z`, `@`, `[`, `\`, `]`, `^`, `_`
/// (`ctrl-p,ctrl-q`, the default; `a,ctrl-\`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys(Vec<u8>);

impl DetachKeys {
    /// The bytes the sequence is made of.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Default for DetachKeys {
    /// ctrl-p, ctrl-q.
    fn default() -> Self {
        DetachKeys(vec![0x10, 0x11])
    }
}

impl FromStr for DetachKeys {
    type Err = EngineError;

    /// docker's parsing: an empty string is the default.
    fn from_str(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Ok(DetachKeys::default());
        }
        let mut bytes = Vec::new();
        for key in text.split(',') {
            let byte = match key.as_bytes() {
                [one] => *one,
                _ => control_key(key).ok_or_else(|| {
                    EngineError::InvalidArgument(format!(
                        "Invalid detach keys ({text}) provided: unknown key {key:?}; give \
                         single characters or ctrl-a to ctrl-z, ctrl-@, ctrl-[, ctrl-\\, \
                         ctrl-], ctrl-^, ctrl-_, separated by commas"
                    ))
                })?,
            };
            bytes.push(byte);
        }
        Ok(DetachKeys(bytes))
    }
}

/// `ctrl-X` as the byte a terminal sends for it.
fn control_key(key: &str) -> Option<u8> {
    let name = key.strip_prefix("ctrl-")?;
    match name.as_bytes() {
        [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
        [b'@'] => Some(0),
        [b'['] => Some(27),
        [b'\\'] => Some(28),
        [b']'] => Some(29),
        [b'^'] => Some(30),
        [b'_'] => Some(31),
        _ => None,
    }
}

/// Some output of the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Which stream (with a terminal, everything is stdout).
    pub stream: Stream,
    /// The bytes, as the container wrote them.
    pub bytes: Vec<u8>,
}

/// Why an attachment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachEnd {
    /// The container exited with this code (docker's: 128 + the signal when killed).
    Exited(i32),
    /// The detach keys were typed, or [`AttachWriter::detach`] was called: the container
    /// runs on.
    Detached,
    /// The supervisor ended the attachment while the container may still run: the
    /// client's input ended (without docker's `StdinOnce`), it read too slowly, only the
    /// log was asked for, or the supervisor went away.
    Closed,
}

/// What [`AttachWriter::send`] did with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Passed on (or dropped, when the attachment has no stdin).
    Delivered,
    /// It held the detach keys: the attachment is over, the container runs on.
    Detached,
    /// The attachment was over already.
    Closed,
}

/// An attachment to a container's stdio; see the [module docs](self).
#[derive(Debug)]
pub struct Attached {
    reader: AttachReader,
    writer: AttachWriter,
    /// For [`Attached::relay_stdio`] to wait for the supervisor to settle after an exit.
    id: String,
    paths: EnginePaths,
    container: ContainerPaths,
}

impl Attached {
    /// Whether the container's stdio is a terminal: output is then one raw stream (all
    /// [`Stream::Stdout`]), and [`AttachWriter::resize`] applies.
    pub fn tty(&self) -> bool {
        self.writer.tty
    }

    /// Whether input reaches the container (asked for, and the container has `OpenStdin`).
    pub fn stdin(&self) -> bool {
        self.writer.stdin
    }

    /// The two halves, for two threads.
    pub fn split(self) -> (AttachReader, AttachWriter) {
        (self.reader, self.writer)
    }

    /// Connects the attachment to this process's stdio until it ends, as `docker attach`
    /// does: output to stdout and stderr; with stdin attached, input from stdin (with a
    /// terminal, the caller's terminal in raw mode and its size followed); without a
    /// terminal and with `sig_proxy`, the signals this process receives sent to the
    /// container. Returns why it ended; after an exit, once the supervisor is done with
    /// it (the container then reads as exited, or runs again by its restart policy), or
    /// after 10 s.
    pub fn relay_stdio(self, sig_proxy: bool) -> Result<AttachEnd> {
        let (id, paths, container) = (self.id.clone(), self.paths.clone(), self.container.clone());
        let end = stdio::relay(self, sig_proxy)?;
        if let AttachEnd::Exited(_) = end {
            status::wait_for(SETTLE, || {
                !status::supervisor_alive(&container) || status::live_init(&paths, &id).is_some()
            });
        }
        Ok(end)
    }
}

/// The output half: an iterator over the container's output (the log first, when asked
/// for); it ends when the attachment does, and [`AttachReader::end`] says why.
#[derive(Debug)]
pub struct AttachReader {
    logs: VecDeque<Frame>,
    client: Option<Client>,
    end: Option<AttachEnd>,
    detached: Arc<AtomicBool>,
}

impl AttachReader {
    /// Why the output ended, once it has.
    pub fn end(&self) -> Option<AttachEnd> {
        self.end
    }

    /// Ends the attachment from this side (see [`AttachWriter::detach`]).
    pub fn detach(&self) {
        detach(self.client.as_ref(), &self.detached);
    }
}

impl Iterator for AttachReader {
    type Item = Result<Frame>;

    /// The next output, blocking until there is some (or the start, for an attachment
    /// that waits for one).
    fn next(&mut self) -> Option<Self::Item> {
        if self.end.is_some() {
            return None;
        }
        if let Some(frame) = self.logs.pop_front() {
            return Some(Ok(frame));
        }
        let ended = |detached: &AtomicBool| match detached.load(Ordering::SeqCst) {
            true => AttachEnd::Detached,
            false => AttachEnd::Closed,
        };
        let Some(client) = &self.client else {
            self.end = Some(AttachEnd::Closed);
            return None;
        };
        match client.recv() {
            Ok(Some(Event::Output(stream, bytes))) => Some(Ok(Frame { stream, bytes })),
            Ok(Some(Event::Exit(code))) => {
                self.end = Some(AttachEnd::Exited(code));
                None
            }
            Ok(None) => {
                self.end = Some(ended(&self.detached));
                None
            }
            Err(e) => {
                self.end = Some(ended(&self.detached));
                Some(Err(e.into()))
            }
        }
    }
}

/// The input half: the container's stdin, its terminal's size, signals, and detaching.
#[derive(Debug)]
pub struct AttachWriter {
    client: Option<Client>,
    stdin: bool,
    tty: bool,
    escape: Escape,
    detached: Arc<AtomicBool>,
}

impl AttachWriter {
    /// Sends input to the container's stdin, blocking while the container does not read
    /// it. With a terminal, the detach keys are looked for (across calls): they end the
    /// attachment ([`Sent::Detached`]) and are not sent, nor is what follows them. Without
    /// stdin attached, the input is dropped, as docker does.
    pub fn send(&mut self, bytes: &[u8]) -> Result<Sent> {
        if self.detached.load(Ordering::SeqCst) {
            return Ok(Sent::Detached);
        }
        let Some(client) = self.client.as_ref().filter(|_| self.stdin) else {
            return Ok(Sent::Delivered);
        };
        let (pass, detach_now) = match self.tty {
            true => self.escape.scan(bytes),
            false => (bytes.to_vec(), false),
        };
        if !pass.is_empty() {
            match client.send_stdin(&pass) {
                Ok(()) => {}
                Err(AttachError::Closed) => return Ok(Sent::Closed),
                Err(e) => return Err(e.into()),
            }
        }
        if detach_now {
            self.detach();
            return Ok(Sent::Detached);
        }
        Ok(Sent::Delivered)
    }

    /// The input ended (docker's half-close of the hijacked connection): with
    /// `StdinOnce` and no terminal, the container's stdin is closed and the output goes
    /// on until it exits; otherwise this attachment ends, as docker's does.
    pub fn close_stdin(&mut self) -> Result<()> {
        match self.client.as_ref().filter(|_| self.stdin) {
            Some(client) => ignore_closed(client.close_stdin()),
            None => Ok(()),
        }
    }

    /// Resizes the container's terminal (nothing without one).
    pub fn resize(&self, size: WindowSize) -> Result<()> {
        match self.client.as_ref().filter(|_| self.tty) {
            Some(client) => ignore_closed(client.resize(size)),
            None => Ok(()),
        }
    }

    /// Sends `signal` to the container's init (docker's `--sig-proxy`).
    pub fn signal(&self, signal: Signal) -> Result<()> {
        match &self.client {
            Some(client) => ignore_closed(client.signal(signal)),
            None => Ok(()),
        }
    }

    /// Ends the attachment, from any thread: the reader ends with [`AttachEnd::Detached`]
    /// and the container runs on. (With `StdinOnce` and no terminal, leaving closes the
    /// container's stdin, as a client hanging up on docker does.)
    pub fn detach(&self) {
        detach(self.client.as_ref(), &self.detached);
    }
}

fn detach(client: Option<&Client>, detached: &AtomicBool) {
    detached.store(true, Ordering::SeqCst);
    if let Some(client) = client {
        client.shutdown();
    }
}

fn ignore_closed(r: std::result::Result<(), AttachError>) -> Result<()> {
    match r {
        Ok(()) | Err(AttachError::Closed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Looks for the detach sequence in input, holding back a partial match until the next
/// bytes say whether it completes.
#[derive(Debug)]
struct Escape {
    keys: Vec<u8>,
    matched: usize,
}

impl Escape {
    /// The bytes of `input` to pass on, and whether the sequence completed in it (what
    /// follows is then dropped).
    fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            loop {
                if b == self.keys[self.matched] {
                    self.matched += 1;
                    if self.matched == self.keys.len() {
                        self.matched = 0;
                        return (out, true);
                    }
                    break;
                }
                if self.matched == 0 {
                    out.push(b);
                    break;
                }
                // Not the sequence after all: what was held back goes on, and this byte
                // may start it again.
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
            }
        }
        (out, false)
    }
}

impl Engine {
    /// Attaches to container `query`'s stdio (docker's `POST /containers/{id}/attach`).
    ///
    /// A running container is attached from now on; a created one (or, with
    /// [`AttachOptions::await_start`], a stopped one) from its next start, before its
    /// first instruction. Errors as docker's: [`EngineError::NoSuchContainer`] (404);
    /// [`EngineError::Conflict`] (409) for a stopped container ("You cannot attach to a
    /// stopped container, start it first"), a paused or a restarting one.
    pub fn attach(&self, query: &str, options: &AttachOptions) -> Result<Attached> {
        let c = self.container(query)?;
        let id = short_id(c.id());
        let waits = match self.status(&c) {
            Status::Running(_) => false,
            Status::Created => true,
            Status::Exited(_) if options.await_start => true,
            Status::Exited(_) => {
                return Err(EngineError::Conflict(
                    "You cannot attach to a stopped container, start it first".into(),
                ));
            }
            Status::Paused(_) => {
                return Err(EngineError::Conflict(format!(
                    "container {id} is paused, unpause the container before attach"
                )));
            }
            Status::Restarting => {
                return Err(EngineError::Conflict(format!(
                    "container {id} is restarting, wait until the container is running"
                )));
            }
        };
        let stdin = options.stdin && c.config.interactive();
        let request = Request {
            stdin,
            stdout: options.stdout,
            stderr: options.stderr,
        };
        // Connected before the log is read: a line may come twice, none is lost.
        let endpoint = Endpoint::new(c.paths.attach_dir());
        let client = match (options.stream, waits) {
            (false, _) => None,
            (true, false) => Some(endpoint.connect(request).map_err(|e| match e {
                // Its init runs, but nothing serves its stdio.
                AttachError::NotServing { .. } => EngineError::Conflict(format!(
                    "container {id} runs without its supervisor (it was killed, or \
                     predates attach): its stdio cannot be attached; restart the container"
                )),
                e => e.into(),
            })?),
            (true, true) => Some(endpoint.connect_or_wait(request)?),
        };
        let logs = match options.logs {
            true => {
                let path = c.paths.log();
                logfile::read_all(&path)
                    .map_err(EngineError::io("reading", &path))?
                    .into_iter()
                    .filter(|e| match e.stream {
                        Stream::Stdout => options.stdout,
                        Stream::Stderr => options.stderr,
                    })
                    .map(|e| Frame {
                        stream: e.stream,
                        bytes: e.log.into_bytes(),
                    })
                    .collect()
            }
            false => VecDeque::new(),
        };
        let detached = Arc::new(AtomicBool::new(false));
        Ok(Attached {
            reader: AttachReader {
                logs,
                client: client.clone(),
                end: None,
                detached: detached.clone(),
            },
            writer: AttachWriter {
                client,
                stdin,
                tty: c.config.tty(),
                escape: Escape {
                    keys: options.detach_keys.clone().unwrap_or_default().0,
                    matched: 0,
                },
                detached,
            },
            id: c.id().to_string(),
            paths: self.paths.clone(),
            container: c.paths.clone(),
        })
    }

    /// Resizes the terminal of running container `query` (docker's `POST
    /// /containers/{id}/resize`); a container without a terminal is left alone.
    pub fn resize(&self, query: &str, size: WindowSize) -> Result<()> {
        let c = self.container(query)?;
        if !matches!(self.status(&c), Status::Running(_) | Status::Paused(_)) {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                short_id(c.id())
            )));
        }
        if !c.config.tty() {
            return Ok(());
        }
        let client = Endpoint::new(c.paths.attach_dir()).connect(Request::default())?;
        client.resize(size)?;
        Ok(())
    }
}

/// [`Attached::relay_stdio`]: this process's stdio, in two threads.
mod stdio {
    use super::*;

    /// Reads of the caller's input, at most.
    const CHUNK: usize = 4096;

    pub(super) fn relay(attached: Attached, sig_proxy: bool) -> Result<AttachEnd> {
        let (tty, stdin) = (attached.tty(), attached.stdin());
        let input = std::io::stdin();
        if tty && stdin && !is_terminal(input.as_fd()) {
            return Err(EngineError::InvalidArgument(
                "the input device is not a TTY".into(),
            ));
        }
        // Keys such as ctrl-c and the detach keys reach us as bytes.
        let raw = match tty && stdin {
            true => RawMode::enable(input.as_fd())?,
            false => None,
        };
        let mut catch = Vec::new();
        if tty {
            catch.push(Signal::SIGWINCH);
        }
        // With a terminal, keys signal the container through it (as docker: no proxy).
        if sig_proxy && !tty {
            catch.extend_from_slice(basic_runtime::signals::FORWARDED_SIGNALS);
        }
        let caught = basic_runtime::signals::Caught::new(&catch)
            .map_err(EngineError::io("catching signals in", "this process"))?;
        let (mut reader, mut writer) = attached.split();
        if tty {
            follow_size(&writer)?;
        }
        let (stop_read, stop_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(EngineError::sys("creating a pipe"))?;
        let failed = std::thread::scope(|s| {
            let pump = s.spawn(|| pump(&mut writer, stdin, &caught, &stop_read, tty));
            let shown = show(&mut reader);
            drop(stop_write);
            let pumped = pump.join().unwrap_or(Ok(()));
            shown.and(pumped)
        });
        drop(raw);
        failed?;
        Ok(reader.end().unwrap_or(AttachEnd::Closed))
    }

    /// Output to this process's stdout and stderr until the attachment ends.
    fn show(reader: &mut AttachReader) -> Result<()> {
        use std::io::Write as _;
        for frame in reader.by_ref() {
            let frame = frame?;
            let written = match frame.stream {
                Stream::Stdout => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&frame.bytes).and_then(|()| out.flush())
                }
                Stream::Stderr => std::io::stderr().lock().write_all(&frame.bytes),
            };
            if let Err(e) = written {
                reader.detach();
                return Err(EngineError::io(
                    "writing the container's output to",
                    "stdout",
                )(e));
            }
        }
        Ok(())
    }

    /// The caller's input and signals to the container until `stop` closes.
    fn pump(
        writer: &mut AttachWriter,
        stdin: bool,
        caught: &basic_runtime::signals::Caught,
        stop: &std::os::fd::OwnedFd,
        tty: bool,
    ) -> Result<()> {
        let input = std::io::stdin();
        let mut reading = stdin;
        let mut buf = [0u8; CHUNK];
        loop {
            let mut fds = vec![
                libc::pollfd {
                    fd: stop.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: caught.fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            if reading {
                fds.push(libc::pollfd {
                    fd: input.as_fd().as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            // SAFETY: a valid array of pollfd of that length, over open descriptors.
            if unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) } < 0 {
                match nix::Error::last() {
                    nix::Error::EINTR => continue,
                    e => return Err(EngineError::sys("waiting for input")(e)),
                }
            }
            if fds[0].revents != 0 {
                return Ok(());
            }
            if fds[1].revents != 0 {
                for signal in caught.take() {
                    match signal {
                        Signal::SIGWINCH if tty => follow_size(writer)?,
                        signal => writer.signal(signal)?,
                    }
                }
            }
            if reading && fds[2].revents != 0 {
                match nix::unistd::read(input.as_fd(), &mut buf) {
                    // End of input (or the terminal hung up).
                    Ok(0) | Err(nix::Error::EIO) => {
                        reading = false;
                        writer.close_stdin()?;
                    }
                    Ok(n) => match writer.send(&buf[..n])? {
                        Sent::Delivered => {}
                        Sent::Detached | Sent::Closed => return Ok(()),
                    },
                    Err(nix::Error::EINTR | nix::Error::EAGAIN) => {}
                    Err(e) => return Err(EngineError::sys("reading the input")(e)),
                }
            }
        }
    }

    /// The container's terminal sized as the caller's.
    fn follow_size(writer: &AttachWriter) -> Result<()> {
        let size = window_size(std::io::stdin()).or_else(|| window_size(std::io::stdout()));
        match size {
            Some(size) => writer.resize(size),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_dockers() {
        assert_eq!(DetachKeys::default().bytes(), [16, 17]);
        assert_eq!(
            "ctrl-p,ctrl-q".parse::<DetachKeys>().unwrap(),
            DetachKeys::default()
        );
        assert_eq!("".parse::<DetachKeys>().unwrap(), DetachKeys::default());
        assert_eq!(
            "a,ctrl-@,ctrl-[,ctrl-\\,ctrl-],ctrl-^,ctrl-_,ctrl-z,X"
                .parse::<DetachKeys>()
                .unwrap()
                .bytes(),
            [b'a', 0, 27, 28, 29, 30, 31, 26, b'X']
        );
        for bad in ["ctrl-P", "ctrl-", "ab", "ctrl-p,", "alt-x"] {
            let e = bad.parse::<DetachKeys>().unwrap_err();
            assert!(matches!(e, EngineError::InvalidArgument(_)), "{bad}");
            let text = e.to_string();
            assert!(
                text.contains(&format!("Invalid detach keys ({bad}) provided")),
                "{text}"
            );
        }
    }

    fn escape(keys: &[u8]) -> Escape {
        Escape {
            keys: keys.to_vec(),
            matched: 0,
        }
    }

    #[test]
    fn the_detach_sequence_is_found_across_reads_and_not_passed_on() {
        let mut e = escape(&[16, 17]);
        assert_eq!(e.scan(b"ls\n"), (b"ls\n".to_vec(), false));
        // Held back at the end of one read...
        assert_eq!(e.scan(b"ab\x10"), (b"ab".to_vec(), false));
        // ...and completed by the next: nothing of it, nor what follows, goes on.
        assert_eq!(e.scan(b"\x11rest"), (Vec::new(), true));
        // A prefix broken off goes on after all, with the byte that broke it.
        let mut e = escape(&[16, 17]);
        assert_eq!(e.scan(b"\x10"), (Vec::new(), false));
        assert_eq!(e.scan(b"x"), (b"\x10x".to_vec(), false));
        // A byte that breaks a prefix may start the sequence again.
        let mut e = escape(&[16, 17]);
        assert_eq!(e.scan(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
        // No keys: nothing detaches.
        assert_eq!(escape(&[]).scan(b"\x10\x11"), (b"\x10\x11".to_vec(), false));
    }
}
