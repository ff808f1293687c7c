//! The supervisor's side: the socket it serves for the whole supervision ([`Hub`]), and
//! the clients of one start of the container ([`Session`]).
//!
//! No thread: [`Hub::session`] takes the clients that wait for the start; the supervisor's
//! single-threaded pump serves them through [`Session::register`] and
//! [`Session::dispatch`] (one `poll` with the container's output and input), and
//! [`Session::finish`] sends them the exit. Only descriptors (the listening socket)
//! outlive a start.
//!
//! Nothing a container or a client does can block the supervisor: output is queued per
//! client up to [`MAX_QUEUED`] bytes and a client that lets its queue fill is dropped;
//! input waiting for the container is capped at [`MAX_STDIN_PENDING`] bytes, past which
//! clients are not read until the container reads.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(test)]
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, accept4, getsockopt, recv, send, sockopt};

use super::dir::{Dir, PENDING, SOCKET};
use super::wire;
use crate::logfile::Stream;
use crate::poll_set::PollSet;
use crate::terminal::{WindowSize, set_window_size};

/// Output queued for one client, at most; a client further behind is dropped.
pub const MAX_QUEUED: usize = 1024 * 1024;

/// Input waiting for the container, at most; past it, clients wait.
pub const MAX_STDIN_PENDING: usize = 64 * 1024;

/// Clients at once; more are refused (their connection is closed).
pub const MAX_CLIENTS: usize = 32;

/// How long an exit waits for slow clients to take the end of the output.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// The exit reported when the supervisor ended a start without saying how (docker's code
/// for a failure of the engine).
#[cfg(test)]
const UNKNOWN_EXIT: i32 = 125;

/// Connections waiting to be accepted on the supervisor's socket.
const BACKLOG: i32 = 16;

/// Messages read from one client in one round, so that one client cannot starve the
/// others.
const READS_PER_ROUND: usize = 16;

/// How a supervisor serves attach clients (see [`crate::supervisor::Supervisor::attach`]).
#[derive(Debug, Clone)]
pub struct Serve {
    /// The directory of the socket.
    pub endpoint: super::Endpoint,
    /// docker's `StdinOnce`: the container's stdin is closed when the first client
    /// attached to it closes its input (without a terminal; with one, that client's
    /// attachment ends instead, as docker does).
    pub stdin_once: bool,
}

/// The supervisor's socket, bound for the whole supervision.
#[derive(Debug)]
pub(crate) struct Hub {
    dir: Dir,
    listener: OwnedFd,
    tty: bool,
    stdin_once: bool,
}

impl Hub {
    /// Binds the socket in `serve.endpoint`'s directory; `tty` says the container's stdio
    /// is a terminal.
    pub(crate) fn open(serve: &Serve, tty: bool) -> io::Result<Hub> {
        let dir = Dir::open(serve.endpoint.dir())?;
        let _lock = dir.lock()?;
        let listener = dir.listen(SOCKET, BACKLOG)?;
        Ok(Hub {
            dir,
            listener,
            tty,
            stdin_once: serve.stdin_once,
        })
    }

    /// The socket bound by [`Hub::open`] in another program image of this process (the
    /// supervisor re-executes itself; see [`crate::supervisor`]), listening on `listener`.
    pub(crate) fn adopt(serve: &Serve, tty: bool, listener: OwnedFd) -> io::Result<Hub> {
        Ok(Hub {
            dir: Dir::open(serve.endpoint.dir())?,
            listener,
            tty,
            stdin_once: serve.stdin_once,
        })
    }

    /// The directory of the socket.
    pub(crate) fn dir_path(&self) -> &std::path::Path {
        self.dir.root()
    }

    /// Whether the container's stdio is a terminal.
    pub(crate) fn tty(&self) -> bool {
        self.tty
    }

    /// The listening socket.
    pub(crate) fn listener(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        self.listener.as_fd()
    }

    /// The clients of the next start: every client waiting for it under `pending/`, and
    /// those queued on the socket. `stdin` is the write end of the container's stdin pipe
    /// when it reads what clients send. Starts no thread.
    pub(crate) fn session(&self, stdin: Option<OwnedFd>) -> io::Result<Session> {
        let (wake_read, wake_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        if let Some(fd) = &stdin {
            set_nonblocking(fd.as_raw_fd())?;
        }
        let hello = wire::hello(
            wire::SERVER_HELLO,
            if self.tty { wire::HAS_TTY } else { 0 }
                | if stdin.is_some() { wire::HAS_STDIN } else { 0 },
        );
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: wake_write,
            hello,
        });
        {
            let _lock = self.dir.lock()?;
            let mut state = shared.lock();
            for name in self.waiting()? {
                match self.dir.connect(&name, true) {
                    Ok(fd) => {
                        self.dir.remove(&name);
                        shared.add(&mut state, fd);
                    }
                    // Its client is still there but not accepting: it may next time.
                    Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {}
                    // Its client is gone.
                    Err(_) => self.dir.remove(&name),
                }
            }
            while let Some(fd) = accept(self.listener.as_raw_fd()) {
                shared.add(&mut state, fd);
            }
        }
        Ok(Session {
            shared: shared.clone(),
            worker: Some(Worker {
                shared,
                listener: self.listener.try_clone()?,
                wake: wake_read,
                stdin: stdin.map(|fd| StdinSink {
                    fd,
                    pending: Vec::new(),
                    closing: false,
                }),
                tty: self.tty,
                stdin_once: self.stdin_once,
                slots: Vec::new(),
            }),
            #[cfg(test)]
            thread: None,
        })
    }

    /// The names (`pending/NAME`) of the clients waiting for a start, oldest first.
    fn waiting(&self) -> io::Result<Vec<String>> {
        let mut found: Vec<(std::time::SystemTime, String)> = Vec::new();
        for entry in std::fs::read_dir(self.dir.path(PENDING))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let at = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            found.push((at, format!("{PENDING}/{name}")));
        }
        found.sort();
        Ok(found.into_iter().map(|(_, n)| n).collect())
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // Under the lock: a client deciding between connecting and waiting sees either a
        // live socket or none.
        let _lock = self.dir.lock();
        self.dir.remove(SOCKET);
    }
}

/// The clients of one start.
#[derive(Debug)]
pub(crate) struct Session {
    shared: Arc<Shared>,
    worker: Option<Worker>,
    /// Tests serve the clients from a thread of their own.
    #[cfg(test)]
    thread: Option<JoinHandle<()>>,
}

/// Where the relays put the container's output for the clients.
#[derive(Debug, Clone)]
pub(crate) struct Sink(Arc<Shared>);

impl Sink {
    /// Queues `bytes` of `stream` for every client that wants it; never blocks.
    pub(crate) fn broadcast(&self, stream: Stream, bytes: &[u8]) {
        let (kind, bit) = match stream {
            Stream::Stdout => (wire::STDOUT, wire::WANTS_STDOUT),
            Stream::Stderr => (wire::STDERR, wire::WANTS_STDERR),
        };
        let mut state = self.0.lock();
        let mut queued = false;
        for peer in state.peers.iter_mut().filter(|p| !p.dropped) {
            if peer.wants.is_some_and(|w| w & bit == 0) {
                continue;
            }
            for chunk in bytes.chunks(wire::MAX_PAYLOAD) {
                if peer.queued + chunk.len() > MAX_QUEUED {
                    // Too slow: it would hold the container's output in our memory.
                    peer.dropped = true;
                    peer.queue.clear();
                    peer.queued = 0;
                    break;
                }
                peer.push(wire::packet(kind, chunk));
                queued = true;
            }
        }
        drop(state);
        if queued {
            self.0.wake();
        }
    }
}

impl Session {
    /// Where output goes.
    pub(crate) fn sink(&self) -> Sink {
        Sink(self.shared.clone())
    }

    /// Adds to `polls` the descriptors that serving the clients waits for; after the poll,
    /// [`Session::dispatch`] serves them.
    pub(crate) fn register(&mut self, polls: &mut PollSet) {
        if let Some(worker) = self.worker.as_mut() {
            worker.register(polls);
        }
    }

    /// Serves the clients that the last poll over [`Session::register`]'s descriptors
    /// found ready. Never blocks.
    pub(crate) fn dispatch(&mut self, polls: &PollSet) {
        if let Some(worker) = self.worker.as_mut() {
            worker.dispatch(polls);
        }
    }

    /// Serves the clients in a thread of its own (tests; the supervisor serves them from
    /// its single-threaded pump).
    #[cfg(test)]
    pub(crate) fn start(&mut self) -> io::Result<()> {
        if let Some(worker) = self.worker.take() {
            self.thread = Some(
                std::thread::Builder::new()
                    .name("attach".into())
                    .spawn(move || worker.run())?,
            );
        }
        Ok(())
    }

    /// The container's init, for the signals clients send.
    pub(crate) fn set_init(&self, pid: i32) {
        self.shared.lock().init = Some(pid);
    }

    /// The container's terminal, for the resizes clients ask for (a size asked for
    /// before it arrived is applied now).
    pub(crate) fn set_terminal(&self, master: OwnedFd) {
        let mut state = self.shared.lock();
        if let Some(size) = state.size.take() {
            let _ = set_window_size(&master, size);
        }
        state.master = Some(master);
    }

    /// The container exited with `code`: every client gets what is queued for it (for up
    /// to a few seconds), then the exit, then the end of its connection. Joins the thread.
    pub(crate) fn finish(mut self, code: i32) {
        self.shared.lock().exit = Some(code);
        self.shared.wake();
        #[cfg(test)]
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            return;
        }
        if let Some(worker) = self.worker.take() {
            worker.finish(code);
        }
    }
}

#[cfg(test)]
impl Session {
    /// How many clients it serves now.
    pub(crate) fn clients(&self) -> usize {
        self.shared.lock().peers.len()
    }

    /// How many of them said what they attach.
    pub(crate) fn greeted(&self) -> usize {
        self.shared
            .lock()
            .peers
            .iter()
            .filter(|p| p.wants.is_some())
            .count()
    }

    /// Whether a size waits for the terminal.
    pub(crate) fn size_waiting(&self) -> bool {
        self.shared.lock().size.is_some()
    }
}

#[cfg(test)]
impl Drop for Session {
    fn drop(&mut self) {
        if self.thread.is_some() {
            // Not finished (a panic in the supervisor): the thread must still end.
            self.shared.lock().exit.get_or_insert(UNKNOWN_EXIT);
            self.shared.wake();
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// What the relays, the supervisor and the thread share.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Written to wake the thread: output was queued, or the container exited.
    wake: OwnedFd,
    /// The supervisor's hello, the first message every client gets.
    hello: Vec<u8>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        // Full means a wake-up is pending already.
        let _ = nix::unistd::write(&self.wake, b"w");
    }

    /// A new client, greeted; one too many is refused.
    fn add(&self, state: &mut State, fd: OwnedFd) {
        if state.peers.len() >= MAX_CLIENTS || !same_user(&fd) {
            return;
        }
        let mut peer = Peer {
            fd,
            wants: None,
            stdin: false,
            queue: VecDeque::new(),
            queued: 0,
            dropped: false,
        };
        peer.push(self.hello.clone());
        state.peers.push(peer);
    }
}

/// Whether the other end of `fd` runs as this process's user (the directory allows no
/// one else; this holds even if it were changed).
fn same_user(fd: &OwnedFd) -> bool {
    getsockopt(fd, sockopt::PeerCredentials)
        .is_ok_and(|c| c.uid() == nix::unistd::geteuid().as_raw())
}

#[derive(Debug, Default)]
struct State {
    peers: Vec<Peer>,
    exit: Option<i32>,
    init: Option<i32>,
    master: Option<OwnedFd>,
    size: Option<WindowSize>,
}

/// At most this many messages of a client's are read and dropped before its connection
/// closes (its hello and a resize or two, usually).
const MAX_DISCARDED: usize = 64;

/// One client.
#[derive(Debug)]
struct Peer {
    fd: OwnedFd,
    /// What it asked for in its hello; everything until then.
    wants: Option<u8>,
    /// Whether its input goes to the container.
    stdin: bool,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    /// Too slow: closed by the thread at its next round.
    dropped: bool,
}

impl Peer {
    fn push(&mut self, packet: Vec<u8>) {
        self.queued += packet.len();
        self.queue.push_back(packet);
    }

    /// Reads and drops what the client sent and nobody will read: closing a socket with
    /// unread messages makes the client's next read fail with `ECONNRESET` ahead of the
    /// output still queued for it (clients read on past that; this spares them it).
    fn discard_input(&self) {
        let mut buf = [0u8; wire::MAX_PACKET];
        // Bounded: a client that keeps sending does not hold the supervisor here.
        for _ in 0..MAX_DISCARDED {
            if !matches!(
                recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT),
                Ok(1..)
            ) {
                return;
            }
        }
    }

    /// Sends what it can without blocking; false when the client is gone.
    fn flush(&mut self) -> bool {
        while let Some(packet) = self.queue.front() {
            match send(
                self.fd.as_raw_fd(),
                packet,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(_) => {
                    self.queued -= packet.len();
                    self.queue.pop_front();
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return true,
                Err(_) => return false,
            }
        }
        true
    }
}

/// The container's stdin, as the thread feeds it.
#[derive(Debug)]
struct StdinSink {
    fd: OwnedFd,
    pending: Vec<u8>,
    /// Close once what is pending is written (`StdinOnce`).
    closing: bool,
}

/// The thread's own state.
#[derive(Debug)]
struct Worker {
    shared: Arc<Shared>,
    listener: OwnedFd,
    wake: OwnedFd,
    stdin: Option<StdinSink>,
    tty: bool,
    stdin_once: bool,
    /// What [`Worker::register`] added to the poll, by index.
    slots: Vec<(usize, Slot)>,
}

/// What a polled descriptor is.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Wake,
    Listener,
    Stdin,
    Peer(usize),
}

/// What a message from a client asks of the thread, done once the lock is released.
enum Outcome {
    /// Keep the client.
    Keep,
    /// Its attachment is over (it left, or its input ended and that ends it).
    Remove,
}

impl Worker {
    #[cfg(test)]
    fn run(mut self) {
        crate::pipes::block_sigpipe();
        loop {
            let exit = self.shared.lock().exit;
            if let Some(code) = exit {
                self.finish(code);
                return;
            }
            if self.round().is_err() {
                // poll itself failed: nothing can be served; wait for the exit.
                let code = self.wait_for_exit();
                self.finish(code);
                return;
            }
        }
    }

    /// One poll and what it found (the thread of [`Session::start`]).
    #[cfg(test)]
    fn round(&mut self) -> io::Result<()> {
        let mut polls = PollSet::default();
        self.register(&mut polls);
        polls.wait(-1)?;
        self.dispatch(&polls);
        Ok(())
    }

    /// Adds to `polls` what serving the clients waits for.
    fn register(&mut self, polls: &mut PollSet) {
        let stdin_room = self
            .stdin
            .as_ref()
            .is_none_or(|s| s.pending.len() < MAX_STDIN_PENDING);
        self.slots.clear();
        self.slots
            .push((polls.add(self.wake.as_raw_fd(), libc::POLLIN), Slot::Wake));
        self.slots.push((
            polls.add(self.listener.as_raw_fd(), libc::POLLIN),
            Slot::Listener,
        ));
        if let Some(s) = self.stdin.as_ref().filter(|s| !s.pending.is_empty()) {
            self.slots
                .push((polls.add(s.fd.as_raw_fd(), libc::POLLOUT), Slot::Stdin));
        }
        let state = self.shared.lock();
        for (i, peer) in state.peers.iter().enumerate() {
            let mut events = 0;
            // A client whose input would go to the container waits while it is full.
            if !peer.stdin || stdin_room {
                events |= libc::POLLIN;
            }
            if !peer.queue.is_empty() {
                events |= libc::POLLOUT;
            }
            // Hang-ups are reported whatever is asked.
            self.slots
                .push((polls.add(peer.fd.as_raw_fd(), events), Slot::Peer(i)));
        }
    }

    /// Serves what `polls` found ready among what [`Worker::register`] added.
    fn dispatch(&mut self, polls: &PollSet) {
        let mut gone = Vec::new();
        let slots = std::mem::take(&mut self.slots);
        for &(at, slot) in &slots {
            let r = polls.revents(at);
            if r == 0 {
                continue;
            }
            match slot {
                Slot::Wake => drain(self.wake.as_raw_fd()),
                Slot::Listener => self.accept_all(),
                Slot::Stdin => self.write_stdin(),
                Slot::Peer(i) => {
                    let readable = r & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0;
                    if readable && matches!(self.read_peer(i), Outcome::Remove) {
                        gone.push(i);
                        continue;
                    }
                    if r & libc::POLLOUT != 0 && !self.shared.lock().peers[i].flush() {
                        gone.push(i);
                    }
                }
            }
        }
        self.slots = slots;
        let mut state = self.shared.lock();
        // Highest first, so the indices left are still right.
        gone.sort_unstable();
        gone.dedup();
        for i in gone.into_iter().rev() {
            state.peers.remove(i);
        }
        state.peers.retain(|p| !p.dropped);
    }

    fn accept_all(&mut self) {
        while let Some(fd) = accept(self.listener.as_raw_fd()) {
            let mut state = self.shared.lock();
            self.shared.add(&mut state, fd);
            // Its hello goes out at the next round.
        }
        self.shared.wake();
    }

    /// Reads what client `i` sent, a few messages at most.
    fn read_peer(&mut self, i: usize) -> Outcome {
        let mut buf = vec![0u8; wire::MAX_PACKET];
        for _ in 0..READS_PER_ROUND {
            let fd = self.shared.lock().peers[i].fd.as_raw_fd();
            let n = match recv(fd, &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return self.left(i),
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => return Outcome::Keep,
                Err(_) => return self.left(i),
            };
            if let Outcome::Remove = self.message(i, buf[0], &buf[1..n]) {
                return Outcome::Remove;
            }
            if self
                .stdin
                .as_ref()
                .is_some_and(|s| s.pending.len() >= MAX_STDIN_PENDING)
            {
                break;
            }
        }
        Outcome::Keep
    }

    fn message(&mut self, i: usize, kind: u8, payload: &[u8]) -> Outcome {
        match kind {
            wire::HELLO => {
                let Some(flags) = wire::parse_hello(payload) else {
                    return Outcome::Remove;
                };
                let granted = flags & wire::WANTS_STDIN != 0 && self.stdin.is_some();
                let mut state = self.shared.lock();
                let peer = &mut state.peers[i];
                peer.wants = Some(flags);
                peer.stdin = granted;
            }
            wire::STDIN => {
                let attached = self.shared.lock().peers[i].stdin;
                if let Some(sink) = self.stdin.as_mut().filter(|s| attached && !s.closing) {
                    sink.pending.extend_from_slice(payload);
                    self.write_stdin();
                }
            }
            wire::CLOSE_STDIN if self.shared.lock().peers[i].stdin => {
                return self.input_ended(i);
            }
            wire::RESIZE => {
                if let Some(size) = wire::parse_resize(payload) {
                    let mut state = self.shared.lock();
                    match &state.master {
                        Some(master) => {
                            let _ = set_window_size(master, size);
                        }
                        None => state.size = Some(size),
                    }
                }
            }
            wire::SIGNAL => {
                let signal = wire::parse_i32(payload)
                    .and_then(|n| nix::sys::signal::Signal::try_from(n).ok());
                let init = self.shared.lock().init;
                if let (Some(signal), Some(init)) = (signal, init) {
                    // Our child, not yet reaped: the pid cannot name another process.
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(init), signal);
                }
            }
            // A newer client's message: not understood, ignored.
            _ => {}
        }
        Outcome::Keep
    }

    /// Client `i` went away: with `StdinOnce`, its input ended with it.
    fn left(&mut self, i: usize) -> Outcome {
        if self.shared.lock().peers[i].stdin {
            self.input_ended(i);
        }
        Outcome::Remove
    }

    /// The input of client `i` ended. As docker: with `StdinOnce` and no terminal, the
    /// container's stdin is closed and the client stays until the exit; otherwise the
    /// client's attachment ends.
    fn input_ended(&mut self, i: usize) -> Outcome {
        if self.stdin_once && !self.tty {
            if let Some(sink) = self.stdin.as_mut() {
                sink.closing = true;
            }
            self.shared.lock().peers[i].stdin = false;
            self.write_stdin();
            Outcome::Keep
        } else {
            Outcome::Remove
        }
    }

    /// Writes what input is pending without blocking; closes the container's stdin when
    /// asked to and all is written; drops input the container will never read.
    fn write_stdin(&mut self) {
        let Some(sink) = self.stdin.as_mut() else {
            return;
        };
        while !sink.pending.is_empty() {
            match nix::unistd::write(&sink.fd, &sink.pending) {
                Ok(n) => {
                    sink.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                // The container closed its stdin.
                Err(_) => {
                    self.stdin = None;
                    return;
                }
            }
        }
        if sink.closing {
            self.stdin = None;
        }
    }

    /// Waits, without a poll that works, for the supervisor to report the exit.
    #[cfg(test)]
    fn wait_for_exit(&self) -> i32 {
        loop {
            if let Some(code) = self.shared.lock().exit {
                return code;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of a start: each client gets its queue and the exit code, for as long as
    /// [`FLUSH_WAIT`] allows; then every connection closes.
    fn finish(self, code: i32) {
        drop(self.stdin);
        let mut peers = std::mem::take(&mut self.shared.lock().peers);
        peers.retain(|p| !p.dropped);
        for peer in &mut peers {
            peer.push(wire::with_i32(wire::EXIT, code));
        }
        let until = Instant::now() + FLUSH_WAIT;
        loop {
            peers.retain_mut(|p| {
                let more = p.flush() && !p.queue.is_empty();
                if !more {
                    p.discard_input();
                }
                more
            });
            let left = until.saturating_duration_since(Instant::now());
            if peers.is_empty() || left.is_zero() {
                return;
            }
            let mut fds: Vec<libc::pollfd> = peers
                .iter()
                .map(|p| libc::pollfd {
                    fd: p.fd.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: a valid array of pollfd of that length, over descriptors we own.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms.max(1)) };
        }
    }
}

/// One connection waiting on `listener`, non-blocking and close-on-exec.
fn accept(listener: RawFd) -> Option<OwnedFd> {
    loop {
        match accept4(
            listener,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC | nix::sys::socket::SockFlag::SOCK_NONBLOCK,
        ) {
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            Ok(fd) => return Some(unsafe { OwnedFd::from_raw_fd(fd) }),
            Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
            Err(_) => return None,
        }
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFL/F_SETFL on a descriptor we hold change only its status flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn drain(fd: RawFd) {
    let mut buf = [0u8; 64];
    // SAFETY: reads into a local buffer of its size, from a non-blocking pipe we own.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}
