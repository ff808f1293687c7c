//! Waits that end. A test that waits for a process or a condition without a bound hangs
//! the whole suite when the code under test hangs (or when the caller's environment, a
//! SIGHUP ignored under `nohup`, keeps a process alive); every wait here has a limit and
//! names what it waited for when it runs out.

use std::io::Read as _;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a command of the engine under test may take before the test gives up on it.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// Runs `command` as [`Command::output`] does (stdin `/dev/null`, stdout and stderr
/// collected), for at most `limit`; past it the process is killed and the test fails,
/// naming `what`.
#[track_caller]
pub fn output_within(command: &mut Command, limit: Duration, what: &str) -> Output {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    wait_with_output_within(child, limit, what)
}

/// [`Child::wait_with_output`] for a child whose stdout and stderr are piped, for at most
/// `limit` (the output is read to its end, which processes the child left behind may
/// delay: they count against the limit too).
#[track_caller]
pub fn wait_with_output_within(mut child: Child, limit: Duration, what: &str) -> Output {
    let until = Instant::now() + limit;
    let readers = [
        child.stdout.take().map(|s| read_to_end(Box::new(s))),
        child.stderr.take().map(|s| read_to_end(Box::new(s))),
    ];
    let status = wait_until(&mut child, until, what);
    let [stdout, stderr] = readers.map(|reader| match reader {
        None => Vec::new(),
        Some(reader) => receive(reader, until, what),
    });
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Waits for `child` for at most `limit`; past it, kills it and fails naming `what`.
#[track_caller]
pub fn wait_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    wait_until(child, Instant::now() + limit, what)
}

/// Checks `done` every few milliseconds until it holds; fails naming `what` when it
/// still does not after `limit`.
#[track_caller]
pub fn until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: still not so after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[track_caller]
fn wait_until(child: &mut Child, until: Instant, what: &str) -> ExitStatus {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return status,
            Ok(None) => {}
            Err(e) => panic!("waiting for {what}: {e}"),
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not end in time: killed (pid {})", child.id());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

type Reader = std::sync::mpsc::Receiver<Vec<u8>>;

fn read_to_end(mut from: Box<dyn std::io::Read + Send>) -> Reader {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

#[track_caller]
fn receive(reader: Reader, until: Instant, what: &str) -> Vec<u8> {
    let left = until.saturating_duration_since(Instant::now());
    reader.recv_timeout(left).unwrap_or_else(|_| {
        panic!("{what}: its output stayed open (a process it left holds it) past the limit")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_ends_gives_its_output() {
        let out = output_within(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
            "sh",
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn a_command_that_hangs_is_killed_and_named() {
        let hung = std::panic::catch_unwind(|| {
            output_within(
                Command::new("sleep").arg("100"),
                Duration::from_millis(200),
                "sleep 100",
            )
        });
        let message = hung.unwrap_err();
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(text.contains("sleep 100 did not end in time"), "{text}");
    }

    #[test]
    fn a_condition_that_never_holds_fails_with_its_name() {
        let never = std::panic::catch_unwind(|| {
            until(Duration::from_millis(50), "the impossible", || false)
        });
        assert!(never.is_err());
        until(Duration::from_secs(1), "the obvious", || true);
    }
}
