//! `attach` and `start -a -i` as a docker user drives them, with real containers:
//! through a real terminal (the test plays the user's terminal, `basic-docker` runs on
//! the slave of a pty as its controlling tty) and through pipes.

mod common;

use common::{Cleanup, basic_docker, busybox_store as store, ok};

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one wait of these tests lasts at most.
const WAIT: Duration = Duration::from_secs(30);

/// The user's side of a terminal with `basic-docker ARGS` running on it.
struct Terminal {
    master: std::fs::File,
    output: mpsc::Receiver<Vec<u8>>,
    seen: String,
    child: Child,
}

impl Terminal {
    fn start(root: &Path, args: &[&str]) -> Terminal {
        let size = nix::pty::Winsize {
            ws_row: 30,
            ws_col: 100,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).unwrap();
        let slave: OwnedFd = pty.slave;
        let slave_fd = slave.as_raw_fd();
        let mut command = Command::new(env!("CARGO_BIN_EXE_basic-docker"));
        command
            .arg("--root")
            .arg(root)
            .args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: setsid and ioctl are async-signal-safe; the slave becomes the
        // child's controlling terminal, as a shell's job would have it.
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(slave_fd, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().unwrap();
        drop(slave);
        let master = std::fs::File::from(pty.master);
        let mut reader = master.try_clone().unwrap();
        let (tx, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            master,
            output,
            seen: String::new(),
            child,
        }
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
    }

    /// Reads until `text` appears (after what was already matched).
    #[track_caller]
    fn expect(&mut self, text: &str) {
        let until = Instant::now() + WAIT;
        while !self.seen.contains(text) {
            let left = until.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {text:?} on the terminal; it shows {:?}", self.seen),
            }
        }
        let end = self.seen.find(text).unwrap() + text.len();
        self.seen.drain(..end);
    }

    /// Waits for `basic-docker` to exit; its exit code.
    #[track_caller]
    fn wait(mut self) -> Option<i32> {
        let status = wait_within(&mut self.child);
        status.code()
    }
}

/// Waits for `child`, failing the test (after killing it) past [`WAIT`].
#[track_caller]
fn wait_within(child: &mut Child) -> std::process::ExitStatus {
    let until = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("basic-docker did not exit within {WAIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `basic-docker ARGS` with its stdin and stdout piped to the test.
fn piped(root: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The lines of `out`, read in a thread of their own.
fn lines(out: ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Reads lines until one equal to `want`; fails past [`WAIT`].
#[track_caller]
fn expect_line(rx: &mpsc::Receiver<String>, want: &str) {
    let until = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line == want => return,
            Ok(line) => seen.push(line),
            Err(_) => panic!("no line {want:?}; got {seen:?}"),
        }
    }
}

fn state(root: &Path, name: &str) -> String {
    let text = ok(basic_docker(root, &["inspect", name]));
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[0]["State"]["Status"].as_str().unwrap().to_string()
}

/// A name of this test binary's own.
fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

#[test]
fn a_terminal_attaches_types_detaches_with_the_keys_and_attaches_again() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = unique("attach-tty");
    let _cleanup = Cleanup::new(root, &[&name]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-dit",
            "--network",
            "none",
            "--name",
            &name,
            image,
            "sh",
        ],
    ));

    let mut term = Terminal::start(root, &["attach", &name]);
    term.type_keys(b"echo $((40+2))\n");
    term.expect("42");
    // The container's terminal follows ours.
    term.type_keys(b"stty size\n");
    term.expect("30 100");
    term.type_keys(b"\x10\x11");
    term.expect("read escape sequence");
    assert_eq!(term.wait(), Some(0), "a detach exits 0");
    assert_eq!(state(root, &name), "running");

    // Again, with keys of the user's choice; ctrl-p ctrl-q are then just keys.
    let mut term = Terminal::start(root, &["attach", "--detach-keys", "ctrl-x", &name]);
    term.type_keys(b"echo $((50+5))\n");
    term.expect("55");
    term.type_keys(b"\x18");
    term.expect("read escape sequence");
    assert_eq!(term.wait(), Some(0));
    assert_eq!(state(root, &name), "running");

    // And the container's exit code when it exits while attached.
    let mut term = Terminal::start(root, &["attach", &name]);
    term.type_keys(b"exit 3\n");
    assert_eq!(term.wait(), Some(3));
    assert_eq!(state(root, &name), "exited");
}

#[test]
fn input_is_echoed_and_its_end_ends_the_attachment_but_not_the_container() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = unique("attach-cat");
    let _cleanup = Cleanup::new(root, &[&name]);
    // `-d`: docker sets no StdinOnce, so no attachment's input closes cat's.
    ok(basic_docker(
        root,
        &[
            "run",
            "-di",
            "--network",
            "none",
            "--name",
            &name,
            image,
            "cat",
        ],
    ));
    let mut attach = piped(root, &["attach", &name]);
    let output = lines(attach.stdout.take().unwrap());
    let mut input = attach.stdin.take().unwrap();
    input.write_all(b"hello\n").unwrap();
    expect_line(&output, "hello");
    input.write_all(b"again\n").unwrap();
    expect_line(&output, "again");
    drop(input);
    // Its attachment is over, cat's stdin is not: as docker, the command waits for the
    // container's exit.
    std::thread::sleep(Duration::from_millis(500));
    assert!(attach.try_wait().unwrap().is_none(), "attach still waits");
    assert_eq!(state(root, &name), "running");
    // Another attachment still types into the same cat.
    let mut second = piped(root, &["attach", &name]);
    let second_output = lines(second.stdout.take().unwrap());
    second
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"third\n")
        .unwrap();
    expect_line(&second_output, "third");
    ok(basic_docker(root, &["stop", "-t", "1", &name]));
    // Both end with the container's code (cat as PID 1 ignores SIGTERM: SIGKILL).
    assert_eq!(wait_within(&mut attach).code(), Some(137));
    assert_eq!(wait_within(&mut second).code(), Some(137));
    let log = ok(basic_docker(root, &["logs", &name]));
    assert_eq!(log, "hello\nagain\nthird");
}

#[test]
fn start_a_i_attaches_before_the_start_and_its_input_end_closes_stdin() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = unique("attach-start");
    let _cleanup = Cleanup::new(root, &[&name]);
    // `create -i` sets docker's StdinOnce.
    ok(basic_docker(
        root,
        &[
            "create",
            "-i",
            "--network",
            "none",
            "--name",
            &name,
            image,
            "sh",
            "-c",
            "echo first; cat; echo last >&2; exit 4",
        ],
    ));
    let mut start = piped(root, &["start", "-a", "-i", &name]);
    start.stdin.take().unwrap().write_all(b"typed\n").unwrap();
    // Input closed: cat ends, and so does the container.
    let status = wait_within(&mut start);
    let mut out = String::new();
    start
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let mut err = String::new();
    start
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(out, "first\ntyped\n", "stderr: {err}");
    assert_eq!(err, "last\n");
    assert_eq!(status.code(), Some(4));
}

#[test]
fn two_clients_see_the_output_and_one_killed_leaves_the_rest_running() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = unique("attach-two");
    let _cleanup = Cleanup::new(root, &[&name]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            image,
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done",
        ],
    ));
    let mut one = piped(root, &["attach", &name]);
    let mut two = piped(root, &["attach", &name]);
    let one_lines = lines(one.stdout.take().unwrap());
    let two_lines = lines(two.stdout.take().unwrap());
    // Both see the same ticks, from when each attached.
    let first_of = |rx: &mpsc::Receiver<String>| rx.recv_timeout(WAIT).unwrap();
    let a = first_of(&one_lines);
    let b = first_of(&two_lines);
    assert!(a.starts_with("tick ") && b.starts_with("tick "), "{a} {b}");
    let n: u64 = a[5..].parse().unwrap();
    let m: u64 = b[5..].parse().unwrap();
    let later = n.max(m) + 5;
    expect_line(&one_lines, &format!("tick {later}"));
    expect_line(&two_lines, &format!("tick {later}"));
    // One client is killed mid-stream.
    one.kill().unwrap();
    basic_test_support::bounded::wait_within(
        &mut one,
        std::time::Duration::from_secs(10),
        "the killed attach client",
    );
    expect_line(&two_lines, &format!("tick {}", later + 20));
    assert_eq!(state(root, &name), "running");
    ok(basic_docker(root, &["rm", "-f", &name]));
    let status = wait_within(&mut two);
    assert_eq!(status.code(), Some(137));
}

#[test]
fn signals_are_proxied_unless_told_not_to() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = unique("attach-sig");
    let _cleanup = Cleanup::new(root, &[&name]);
    let script = "trap 'echo got-term; exit 9' TERM; echo ready; \
                  while true; do sleep 0.05; done";
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            image,
            "sh",
            "-c",
            script,
        ],
    ));
    let kill = |child: &Child, signal| {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
    };
    // Without the proxy, a signal ends the attachment only.
    let mut quiet = piped(root, &["attach", "--sig-proxy=false", &name]);
    std::thread::sleep(Duration::from_millis(500));
    kill(&quiet, nix::sys::signal::Signal::SIGTERM);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&wait_within(&mut quiet)),
        Some(libc::SIGTERM)
    );
    assert_eq!(state(root, &name), "running");
    // With it (the default), the container gets it.
    let mut proxy = piped(root, &["attach", &name]);
    let output = lines(proxy.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    kill(&proxy, nix::sys::signal::Signal::SIGTERM);
    expect_line(&output, "got-term");
    assert_eq!(wait_within(&mut proxy).code(), Some(9));
    assert_eq!(state(root, &name), "exited");
}

#[test]
fn attaching_to_a_stopped_or_unknown_container_fails_as_docker() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = unique("attach-done");
    let _cleanup = Cleanup::new(root, &[&name]);
    ok(basic_docker(
        root,
        &["run", "--network", "none", "--name", &name, image, "true"],
    ));
    let out = basic_docker(root, &["attach", &name]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("You cannot attach to a stopped container, start it first"),
        "{err}"
    );
    let out = basic_docker(root, &["attach", "surely-no-such-container"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No such container: surely-no-such-container"),
        "{err}"
    );
    let out = basic_docker(root, &["attach", "--detach-keys", "ctrl-", &name]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Invalid detach keys (ctrl-)"), "{err}");
}

#[test]
fn attaching_to_a_container_whose_supervisor_was_killed_says_so() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = unique("attach-orphan");
    let _cleanup = Cleanup::new(root, &[&name]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            image,
            "sleep",
            "1000",
        ],
    ));
    let text = ok(basic_docker(root, &["inspect", &name]));
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let pid = doc[0]["State"]["Pid"].as_i64().unwrap();
    let supervisor: i32 = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let until = Instant::now() + WAIT;
    while Path::new(&format!("/proc/{supervisor}/cmdline")).exists()
        && !std::fs::read(format!("/proc/{supervisor}/cmdline"))
            .unwrap_or_default()
            .is_empty()
    {
        assert!(Instant::now() < until, "the supervisor did not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its socket is left behind, and nobody listens on it.
    assert_eq!(state(root, &name), "running");
    let out = basic_docker(root, &["attach", &name]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("runs without its supervisor"), "{err}");
}
