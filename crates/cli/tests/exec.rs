//! `exec` as a user runs it: a busybox container started with `basic-docker run`
//! in the background, then commands in it, with and without a terminal (the test
//! plays the user's terminal with a pty pair of its own).

mod common;

use common::{basic_docker, busybox_store as store, with_stdin};

use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use basic_runtime::terminal::WindowSize;
use basic_test_support::bounded::wait_within;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{LocalFlags, tcgetattr};

/// How long a CLI the test ended may take to exit.
const LIMIT: Duration = Duration::from_secs(30);

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).trim().to_string()
}

/// A container running `sh` in a loop under `run --init`, ended on drop (the tiny
/// init passes SIGTERM on to the shell, which is then not PID 1 and dies of it).
struct Background {
    run: Child,
    name: String,
    root: &'static Path,
}

impl Background {
    fn start(name: &str) -> Option<Background> {
        let (dir, image) = store()?;
        let name = format!("{name}-{}", std::process::id());
        let run = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
            .arg("--root")
            .arg(dir.path())
            .args(["run", "--rm", "--init", "--name", &name, image])
            .args([
                "sh",
                "-c",
                "echo from-init > /tmp/init-file; while :; do sleep 1; done",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start basic-docker run");
        let mut c = Background {
            run,
            name,
            root: dir.path(),
        };
        for _ in 0..3000 {
            assert!(
                c.run.try_wait().unwrap().is_none(),
                "run exited before the container was up"
            );
            if c.exec(&["cat", "/tmp/init-file"]).status.success() {
                return Some(c);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the container never came up");
    }

    /// `basic-docker exec [flags] NAME command...`, waited for.
    fn exec_with(&self, flags: &[&str], command: &[&str]) -> Output {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.push(&self.name);
        args.extend_from_slice(command);
        basic_docker(self.root, &args)
    }

    fn exec(&self, command: &[&str]) -> Output {
        self.exec_with(&[], command)
    }

    /// The full id, from the runtime's state directory and the saved spec.
    fn id(&self) -> String {
        std::fs::read_dir("/run/basic-docker")
            .unwrap()
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .find(|id| {
                std::fs::read_to_string(self.root.join("containers").join(id).join("config.json"))
                    .is_ok_and(|c| c.contains(&format!("\"{}\"", self.name)))
            })
            .expect("the container's state")
    }

    fn stop(&mut self) {
        if let Ok(None) = self.run.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.run.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            wait_within(&mut self.run, LIMIT, "basic-docker run after SIGTERM");
        }
    }

    /// `exec -it ...` on a new pty whose slave is the command's controlling terminal,
    /// as in a user's shell.
    fn exec_on_terminal(&self, command: &[&str], rows: u16, cols: u16) -> Session {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(&size, None).unwrap();
        let cooked = tcgetattr(&pty.slave).unwrap();
        let io = |fd: &OwnedFd| Stdio::from(fd.try_clone().unwrap());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_basic-docker"));
        cmd.arg("--root")
            .arg(self.root)
            .args(["exec", "-it", &self.name])
            .args(command)
            .stdin(io(&pty.slave))
            .stdout(io(&pty.slave))
            .stderr(io(&pty.slave));
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // The test signals the CLI: it must not inherit a SIGHUP ignored by whoever
                // started the tests (`nohup`, a service manager).
                nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGHUP,
                    nix::sys::signal::SigHandler::SigDfl,
                )?;
                nix::unistd::setsid()?;
                if nix::libc::ioctl(0, nix::libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start basic-docker exec -it");
        Session {
            child,
            master: pty.master,
            slave: pty.slave,
            cooked,
            seen: String::new(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A CLI on a terminal: the test types into the master and reads what it shows.
struct Session {
    child: Child,
    master: OwnedFd,
    slave: OwnedFd,
    cooked: nix::sys::termios::Termios,
    seen: String,
}

impl Session {
    fn type_keys(&self, keys: &[u8]) {
        nix::unistd::write(&self.master, keys).unwrap();
    }

    /// Reads until `want` shows up; a CLI that stops writing fails the test instead
    /// of hanging it.
    fn expect(&mut self, want: &str) {
        while !self.seen.contains(want) {
            assert!(
                self.read_some(),
                "waiting for {want:?}, got {:?}",
                self.seen
            );
        }
        let at = self.seen.find(want).unwrap() + want.len();
        self.seen.drain(..at);
    }

    fn line(&mut self) -> String {
        while !self.seen.contains("\r\n") {
            assert!(self.read_some(), "waiting for a line, got {:?}", self.seen);
        }
        let at = self.seen.find("\r\n").unwrap();
        let line = self.seen[..at].to_string();
        self.seen.drain(..at + 2);
        line
    }

    fn read_some(&mut self) -> bool {
        let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(30_000u16)).unwrap() == 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(&self.master, &mut buf) {
            Ok(n) if n > 0 => {
                self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
                true
            }
            _ => false,
        }
    }

    fn is_raw(&self) -> bool {
        !tcgetattr(&self.slave)
            .unwrap()
            .local_flags
            .intersects(LocalFlags::ICANON | LocalFlags::ECHO)
    }

    fn is_restored(&self) -> bool {
        tcgetattr(&self.slave).unwrap() == self.cooked
    }
}

#[test]
fn exec_runs_in_the_container_with_its_settings_and_the_flags() {
    let Some(c) = Background::start("exec-basics") else {
        return;
    };
    let out = c.exec(&["sh", "-c", "cat /tmp/init-file; echo $$; hostname"]);
    let lines: Vec<String> = common::stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(lines[0], "from-init", "the init's files");
    assert_ne!(lines[1], "1", "not the init");
    let host = nix::unistd::gethostname().unwrap();
    assert_ne!(lines[2], host.to_string_lossy(), "the container's hostname");

    let mut exec = Command::new(env!("CARGO_BIN_EXE_basic-docker"));
    exec.arg("--root")
        .arg(c.root)
        .args([
            "exec",
            "-e",
            "A=x",
            "-e",
            "COPIED",
            "-e",
            "UNSET_HERE",
            "-w",
            "/tmp",
        ])
        .args(["-u", "1234:5678", &c.name])
        .args([
            "sh",
            "-c",
            "echo $A $COPIED ${UNSET_HERE-unset}; pwd; id -u; id -g",
        ])
        .env("COPIED", "from-cli")
        .env_remove("UNSET_HERE");
    let out = basic_test_support::bounded::output_within(&mut exec, LIMIT, "exec with flags");
    assert_eq!(common::ok(out), "x from-cli unset\n/tmp\n1234\n5678");

    // By id and by unique id prefix, as well as by name.
    let id = c.id();
    assert_eq!(common::ok(c.exec_with(&[], &["true"])), "");
    let by_prefix = basic_docker(c.root, &["exec", &id[..12], "cat", "/tmp/init-file"]);
    assert_eq!(common::ok(by_prefix), "from-init");
    let by_id = basic_docker(c.root, &["exec", &id, "cat", "/tmp/init-file"]);
    assert_eq!(common::ok(by_id), "from-init");
}

#[test]
fn exit_codes_follow_docker() {
    let Some(mut c) = Background::start("exec-codes") else {
        return;
    };
    assert_eq!(c.exec(&["sh", "-c", "exit 3"]).status.code(), Some(3));
    let out = c.exec(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(
        text(&out.stderr).contains("\"no-such-command\": executable file not found in $PATH"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(c.exec(&["/etc/passwd"]).status.code(), Some(126));
    let out = c.exec_with(&["-w", "/no/such/dir"], &["true"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("/no/such/dir"));

    assert!(common::stdout(&basic_docker(c.root, &["pause", &c.name])).contains(&c.name));
    let out = c.exec(&["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("is paused, unpause the container before exec"));
    common::stdout(&basic_docker(c.root, &["unpause", &c.name]));
    assert_eq!(c.exec(&["true"]).status.code(), Some(0));

    let (_, image) = store().unwrap();
    let exited = format!("exec-exited-{}", std::process::id());
    common::stdout(&basic_docker(
        c.root,
        &["run", "--name", &exited, image, "true"],
    ));
    let out = basic_docker(c.root, &["exec", &exited, "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not running"),
        "{}",
        text(&out.stderr)
    );

    let out = basic_docker(c.root, &["exec", "no-such-container", "true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("No such container: no-such-container"));
    c.stop();
    let out = c.exec(&["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(&format!("No such container: {}", c.name)),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn stdin_is_passed_with_i_only_and_d_does_not_wait() {
    let Some(c) = Background::start("exec-stdin") else {
        return;
    };
    let piped = with_stdin(c.root, &["exec", "-i", &c.name, "cat"], b"piped in\n");
    assert_eq!(common::ok(piped), "piped in");
    let not_attached = with_stdin(c.root, &["exec", &c.name, "cat"], b"not read\n");
    assert_eq!(common::ok(not_attached), "");

    assert!(c.exec(&["mkfifo", "/tmp/fifo"]).status.success());
    // Blocked on the fifo, the command still runs when `exec -d` has returned.
    let detached = c.exec_with(
        &["-d"],
        &["sh", "-c", "read x < /tmp/fifo; echo done > /tmp/detached"],
    );
    assert_eq!(common::ok(detached), "");
    assert!(
        c.exec(&["sh", "-c", "echo go > /tmp/fifo"])
            .status
            .success()
    );
    let mut done = String::new();
    for _ in 0..1000 {
        done = text(&c.exec(&["cat", "/tmp/detached"]).stdout);
        if done == "done" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(done, "done");
}

#[test]
fn a_terminal_session_follows_the_users_terminal() {
    let Some(c) = Background::start("exec-tty") else {
        return;
    };
    let script = "tty; while read line; do [ \"$line\" = stop ] && break; stty size; done; \
                  echo ready; exec sleep 100";
    let mut s = c.exec_on_terminal(&["sh", "-c", script], 33, 77);
    let tty = s.line();
    assert!(tty.starts_with("/dev/pts/"), "{tty:?}");
    assert!(s.is_raw(), "the user's terminal is raw while attached");
    s.type_keys(b"x\r");
    s.expect("x\r\n");
    assert_eq!(s.line(), "33 77");

    // Resizing the user's terminal sends the CLI SIGWINCH; the next lines show the
    // new size (the signal and the typing race, so ask until it shows).
    let bigger = WindowSize { rows: 44, cols: 88 };
    basic_runtime::terminal::set_window_size(&s.master, bigger).unwrap();
    let mut sizes = Vec::new();
    while sizes.last().is_none_or(|l| l != "44 88") {
        assert!(sizes.len() < 100, "the size never changed: {sizes:?}");
        s.type_keys(b"x\r");
        s.expect("x\r\n");
        sizes.push(s.line());
    }

    s.type_keys(b"stop\r");
    s.expect("ready\r\n");
    // Ctrl-C is a byte on the raw terminal; the container's terminal makes it SIGINT for
    // its foreground process group: the shell, or the sleep it became. Either dies of it.
    s.type_keys(b"\x03");
    let status = wait_within(&mut s.child, LIMIT, "exec -it after Ctrl-C");
    assert_eq!(status.code(), Some(130), "{status:?}: {:?}", s.seen);
    assert!(s.is_restored(), "the user's terminal is back as it was");
}

#[test]
fn sigterm_or_sighup_to_the_cli_restores_the_terminal_and_hangs_up_the_command() {
    let Some(c) = Background::start("exec-term") else {
        return;
    };
    use nix::sys::signal::Signal;
    for signal in [Signal::SIGTERM, Signal::SIGHUP] {
        let mut s = c.exec_on_terminal(&["sh", "-c", "echo ready; exec cat"], 24, 80);
        s.expect("ready\r\n");
        assert!(s.is_raw());
        let pid = nix::unistd::Pid::from_raw(s.child.id() as i32);
        nix::sys::signal::kill(pid, signal).unwrap();
        let status = wait_within(&mut s.child, LIMIT, &format!("exec -it after {signal}"));
        assert_eq!(status.signal(), Some(signal as i32), "{status:?}");
        assert!(
            s.is_restored(),
            "{signal}: the user's terminal is back as it was"
        );
        // The command lost its terminal with the CLI and ends on the hangup.
        let mut left = String::new();
        for _ in 0..1000 {
            left = text(&c.exec(&["ps", "-o", "comm"]).stdout);
            if !left.lines().any(|l| l.trim() == "cat") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!left.lines().any(|l| l.trim() == "cat"), "{signal}: {left}");
    }
}

#[test]
fn it_needs_a_terminal_and_d_refuses_t() {
    let Some(c) = Background::start("exec-notty") else {
        return;
    };
    let out = c.exec_with(&["-it"], &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the input device is not a TTY"));
    let out = c.exec_with(&["-dt"], &["true"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("-t with -d"));
}
