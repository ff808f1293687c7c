//! The supervisor's side and the client's, in one process, with no container: what
//! clients receive, what reaches the container's stdin, and what happens to clients
//! that are slow, leave, or wait for a start. Every directory is longer than a socket
//! path may be.

use std::io::Read as _;
use std::time::{Duration, Instant};

use super::dir::tests::long_dir;
use super::*;
use crate::terminal::{WindowSize, window_size};

const EVERYTHING: Request = Request {
    stdin: false,
    stdout: true,
    stderr: true,
};

fn serve(dir: &std::path::Path, stdin_once: bool, tty: bool) -> Hub {
    Hub::open(
        &Serve {
            endpoint: Endpoint::new(dir),
            stdin_once,
        },
        tty,
    )
    .unwrap()
}

/// Waits (up to 10 s) until `done` holds.
fn until(what: &str, done: impl Fn() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until the session serves `n` clients.
fn until_clients(session: &Session, n: usize) {
    until(&format!("{n} clients"), || session.clients() == n);
}

/// Every event until the end.
fn all(client: &Client) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(e) = client.recv().unwrap() {
        events.push(e);
    }
    events
}

fn out(text: &str) -> Event {
    Event::Output(Stream::Stdout, text.as_bytes().to_vec())
}

#[test]
fn output_goes_to_every_client_then_the_exit() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    let hub = serve(&dir, false, false);
    let mut session = hub.session(None).unwrap();
    session.start().unwrap();
    let endpoint = Endpoint::new(&dir);
    let both = endpoint.connect(EVERYTHING).unwrap();
    let errors_only = endpoint
        .connect(Request {
            stderr: true,
            ..Request::default()
        })
        .unwrap();
    // Their hellos are read before the output comes: each gets what it asked for.
    until("two hellos", || session.greeted() == 2);
    let sink = session.sink();
    sink.broadcast(Stream::Stdout, b"out\n");
    sink.broadcast(Stream::Stderr, b"err\n");
    session.finish(3);
    assert_eq!(
        all(&both),
        [
            out("out\n"),
            Event::Output(Stream::Stderr, b"err\n".to_vec()),
            Event::Exit(3)
        ]
    );
    assert_eq!(
        all(&errors_only),
        [
            Event::Output(Stream::Stderr, b"err\n".to_vec()),
            Event::Exit(3)
        ]
    );
    assert_eq!(both.container_has(), Some((false, false)));
}

#[test]
fn a_client_waiting_for_the_start_gets_everything_from_the_first_byte() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    // No supervisor yet: the client waits.
    let waiting = Endpoint::new(&dir).connect_or_wait(EVERYTHING).unwrap();
    assert!(waiting.is_waiting());
    let hub = serve(&dir, false, false);
    // The start takes it before anything runs, and output written before any thread
    // serves it is kept for it.
    let mut session = hub.session(None).unwrap();
    assert_eq!(session.clients(), 1);
    session.sink().broadcast(Stream::Stdout, b"first\n");
    session.start().unwrap();
    session.sink().broadcast(Stream::Stdout, b"second\n");
    session.finish(0);
    assert_eq!(
        all(&waiting),
        [out("first\n"), out("second\n"), Event::Exit(0)]
    );
    // Taken once: the next start does not connect it again, nor anyone.
    assert!(
        std::fs::read_dir(dir.join("pending"))
            .unwrap()
            .next()
            .is_none()
    );
    assert_eq!(hub.session(None).unwrap().clients(), 0);
}

#[test]
fn waiting_clients_that_left_are_forgotten() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    // One that gave up cleanly removed its socket.
    drop(Endpoint::new(&dir).connect_or_wait(EVERYTHING).unwrap());
    assert!(
        std::fs::read_dir(dir.join("pending"))
            .unwrap()
            .next()
            .is_none()
    );
    // One killed before it could: its socket file stays, and nobody listens on it.
    let opened = super::dir::Dir::open(&dir).unwrap();
    drop(opened.listen("pending/killed", 1).unwrap());
    assert!(dir.join("pending/killed").exists());
    let hub = serve(&dir, false, false);
    let session = hub.session(None).unwrap();
    assert_eq!(session.clients(), 0);
    assert!(!dir.join("pending/killed").exists());
    session.finish(0);
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_the_others_get_everything() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    let hub = serve(&dir, false, false);
    let mut session = hub.session(None).unwrap();
    session.start().unwrap();
    let endpoint = Endpoint::new(&dir);
    let reader = endpoint.connect(EVERYTHING).unwrap();
    let stuck = endpoint.connect(EVERYTHING).unwrap();
    until_clients(&session, 2);
    let total = 4 * MAX_QUEUED;
    let chunk = vec![b'x'; 16 * 1024];
    let got = std::thread::spawn(move || {
        let mut n = 0;
        let mut exit = None;
        while let Some(e) = reader.recv().unwrap() {
            match e {
                Event::Output(_, bytes) => n += bytes.len(),
                Event::Exit(code) => exit = Some(code),
            }
        }
        (n, exit)
    });
    let sink = session.sink();
    let started = Instant::now();
    for _ in 0..total / chunk.len() {
        sink.broadcast(Stream::Stdout, &chunk);
        // The reader keeps up; the stuck client's queue fills.
        std::thread::sleep(Duration::from_micros(200));
    }
    // Broadcasting never waited for the stuck client.
    assert!(started.elapsed() < Duration::from_secs(20));
    until_clients(&session, 1);
    session.finish(0);
    assert_eq!(got.join().unwrap(), (total, Some(0)));
    // The stuck one got what its socket held, then the end, without the exit.
    let mut n = 0;
    let mut exit = None;
    while let Some(e) = stuck.recv().unwrap() {
        match e {
            Event::Output(_, bytes) => n += bytes.len(),
            Event::Exit(code) => exit = Some(code),
        }
    }
    assert!(n < total, "{n}");
    assert_eq!(exit, None);
}

#[test]
fn input_reaches_stdin_and_with_stdin_once_its_end_closes_it() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    let hub = serve(&dir, true, false);
    let (read, write) = crate::pipes::pipe().unwrap();
    let mut session = hub.session(Some(write)).unwrap();
    session.start().unwrap();
    let endpoint = Endpoint::new(&dir);
    let watcher = endpoint.connect(EVERYTHING).unwrap();
    let typist = endpoint
        .connect(Request {
            stdin: true,
            ..EVERYTHING
        })
        .unwrap();
    // One without stdin: what it sends is dropped.
    watcher.send_stdin(b"not this\n").unwrap();
    typist.send_stdin(b"hello\n").unwrap();
    typist.close_stdin().unwrap();
    let mut got = String::new();
    std::fs::File::from(read).read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello\n");
    // The typist stays attached until the exit.
    session.sink().broadcast(Stream::Stdout, b"bye\n");
    session.finish(0);
    assert_eq!(all(&typist), [out("bye\n"), Event::Exit(0)]);
    assert_eq!(typist.container_has(), Some((false, true)));
}

#[test]
fn without_stdin_once_an_input_ending_ends_that_attachment_only() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    let hub = serve(&dir, false, false);
    let (read, write) = crate::pipes::pipe().unwrap();
    let mut session = hub.session(Some(write)).unwrap();
    session.start().unwrap();
    let endpoint = Endpoint::new(&dir);
    let typist = endpoint
        .connect(Request {
            stdin: true,
            ..EVERYTHING
        })
        .unwrap();
    let other = endpoint.connect(EVERYTHING).unwrap();
    typist.send_stdin(b"one\n").unwrap();
    typist.close_stdin().unwrap();
    // Its attachment ends; the container's stdin stays open for the next.
    assert_eq!(all(&typist), []);
    until_clients(&session, 1);
    let next = endpoint
        .connect(Request {
            stdin: true,
            ..EVERYTHING
        })
        .unwrap();
    next.send_stdin(b"two\n").unwrap();
    let mut read = std::fs::File::from(read);
    let mut buf = [0u8; 8];
    let mut got = Vec::new();
    while got.len() < 8 {
        let n = read.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"one\ntwo\n");
    session.sink().broadcast(Stream::Stdout, b"still\n");
    session.finish(1);
    assert_eq!(all(&other), [out("still\n"), Event::Exit(1)]);
}

#[test]
fn input_waits_while_the_container_does_not_read_without_growing() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    let hub = serve(&dir, false, false);
    let (read, write) = crate::pipes::pipe().unwrap();
    let mut session = hub.session(Some(write)).unwrap();
    session.start().unwrap();
    let typist = Endpoint::new(&dir)
        .connect(Request {
            stdin: true,
            ..EVERYTHING
        })
        .unwrap();
    // Far more than the pipe, the pending input and the socket hold: the sender blocks.
    let sender = typist.clone();
    let sending = std::thread::spawn(move || {
        let chunk = vec![b'y'; 64 * 1024];
        for _ in 0..64 {
            if sender.send_stdin(&chunk).is_err() {
                return false;
            }
        }
        true
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!sending.is_finished(), "the sender waits for the container");
    // Another client is still served meanwhile.
    let watcher = Endpoint::new(&dir).connect(EVERYTHING).unwrap();
    until_clients(&session, 2);
    // The container reads it all, and the sender finishes.
    let mut read = std::fs::File::from(read);
    let mut buf = vec![0u8; 64 * 1024];
    let mut n = 0;
    while n < 64 * 64 * 1024 {
        n += read.read(&mut buf).unwrap();
    }
    assert!(sending.join().unwrap());
    session.finish(0);
    assert_eq!(all(&watcher), [Event::Exit(0)]);
}

#[test]
fn resizes_reach_the_terminal_even_when_asked_before_it_came() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    let hub = serve(&dir, false, true);
    let mut session = hub.session(None).unwrap();
    session.start().unwrap();
    let client = Endpoint::new(&dir).connect(Request::default()).unwrap();
    client
        .resize(WindowSize {
            rows: 40,
            cols: 100,
        })
        .unwrap();
    until("the size asked for", || session.size_waiting());
    let pty = nix::pty::openpty(None, None).unwrap();
    session.set_terminal(pty.master);
    assert_eq!(
        window_size(&pty.slave),
        Some(WindowSize {
            rows: 40,
            cols: 100
        })
    );
    client.resize(WindowSize { rows: 24, cols: 80 }).unwrap();
    until("the second size", || {
        window_size(&pty.slave).map(|s| s.rows) == Some(24)
    });
    assert_eq!(client.container_has(), None, "nothing read yet");
    session.finish(0);
    assert_eq!(all(&client), [Event::Exit(0)]);
    assert_eq!(client.container_has(), Some((true, false)));
}

#[test]
fn signals_go_to_the_init() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    let hub = serve(&dir, false, false);
    let mut session = hub.session(None).unwrap();
    let mut init = std::process::Command::new("sleep")
        .arg("100")
        .spawn()
        .unwrap();
    session.set_init(init.id() as i32);
    session.start().unwrap();
    let client = Endpoint::new(&dir).connect(EVERYTHING).unwrap();
    client.signal(nix::sys::signal::Signal::SIGUSR1).unwrap();
    let status = init.wait().unwrap();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(libc::SIGUSR1));
    session.finish(128 + libc::SIGUSR1);
    assert_eq!(all(&client), [Event::Exit(128 + libc::SIGUSR1)]);
}

#[test]
fn no_supervisor_is_a_clear_error_and_a_shutdown_ends_a_wait() {
    let base = tempfile::tempdir().unwrap();
    let dir = long_dir(base.path());
    let e = Endpoint::new(&dir).connect(EVERYTHING).unwrap_err();
    assert!(matches!(e, AttachError::NotServing { .. }), "{e}");
    assert!(e.to_string().contains("not running"), "{e}");
    // A supervisor that ended left no socket to connect to.
    drop(serve(&dir, false, false));
    assert!(!dir.join("attach").exists());
    let waiting = Endpoint::new(&dir).connect_or_wait(EVERYTHING).unwrap();
    let reader = waiting.clone();
    let blocked = std::thread::spawn(move || reader.recv().unwrap());
    std::thread::sleep(Duration::from_millis(100));
    waiting.shutdown();
    assert_eq!(blocked.join().unwrap(), None);
    assert!(matches!(waiting.send_stdin(b"x"), Err(AttachError::Closed)));
}

/// A supervisor that sends everything and closes without reading what its client sent
/// (the client's hello arrived while it was finishing): the client still gets the output
/// and the exit, although the kernel reports the unread hello as a reset first.
#[test]
fn a_supervisor_that_closes_with_input_unread_loses_no_output() {
    use std::os::fd::AsRawFd as _;
    let base = tempfile::tempdir().unwrap();
    let path = long_dir(base.path());
    let dir = super::dir::Dir::open(&path).unwrap();
    let listener = dir.listen(super::dir::SOCKET, 4).unwrap();
    // Sends its hello on connecting; nobody reads it.
    let client = Endpoint::new(&path).connect(EVERYTHING).unwrap();
    let server = nix::sys::socket::accept(listener.as_raw_fd()).unwrap();
    for packet in [
        wire::hello(wire::SERVER_HELLO, 0),
        wire::packet(wire::STDOUT, b"hi\n"),
        wire::with_i32(wire::EXIT, 0),
    ] {
        nix::unistd::write(
            // SAFETY: `server` was just returned by accept and is closed below.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(server) },
            &packet,
        )
        .unwrap();
    }
    nix::unistd::close(server).unwrap();
    assert_eq!(all(&client), [out("hi\n"), Event::Exit(0)]);
}

/// The hub reads what a client sent before closing its connection at the end of a start,
/// so that no client sees a reset instead of its output, even one that reads past none.
#[test]
fn the_end_of_a_start_closes_connections_without_a_reset() {
    use std::os::fd::AsRawFd as _;
    let base = tempfile::tempdir().unwrap();
    let path = long_dir(base.path());
    let hub = serve(&path, false, false);
    let dir = super::dir::Dir::open(&path).unwrap();
    let raw = dir.connect(super::dir::SOCKET, false).unwrap();
    // A hello and a resize the supervisor has no reason to read before the end.
    nix::unistd::write(&raw, &wire::hello(wire::HELLO, wire::WANTS_STDOUT)).unwrap();
    nix::unistd::write(&raw, &wire::resize(WindowSize { rows: 5, cols: 7 })).unwrap();
    let session = hub.session(None).unwrap();
    assert_eq!(session.clients(), 1);
    session.sink().broadcast(Stream::Stdout, b"hi\n");
    session.finish(4);
    let mut kinds = Vec::new();
    let mut buf = [0u8; wire::MAX_PACKET];
    loop {
        match nix::sys::socket::recv(
            raw.as_raw_fd(),
            &mut buf,
            nix::sys::socket::MsgFlags::empty(),
        ) {
            Ok(0) => break,
            Ok(_) => kinds.push(buf[0]),
            Err(e) => panic!("reading after the end of the start: {e} (after {kinds:?})"),
        }
    }
    assert_eq!(kinds, [wire::SERVER_HELLO, wire::STDOUT, wire::EXIT]);
}
