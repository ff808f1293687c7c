//! Terminals through real ptys (needs root): the test opens a pty pair of its own and plays
//! the user's terminal, as a CLI's stdin/stdout would be; the container's process gets a
//! pty of its own devpts.

mod common;

use std::io::{Read as _, Seek as _};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use basic_runtime::exec::{Exec, process_from};
use basic_runtime::terminal::{self, ConsoleSocket, RawMode, TerminalError, WindowSize};
use basic_runtime::{Container, ContainerError, ExitStatus, Spec};
use common::privileged;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{LocalFlags, tcgetattr};

/// A container idling in a thread of this test, killed on drop.
struct Running {
    id: String,
    spec: Spec,
    state: tempfile::TempDir,
    init: i32,
    runner: Option<JoinHandle<Result<ExitStatus, ContainerError>>>,
}

impl Running {
    fn start(name: &str) -> Running {
        let spec = common::sh("exec sleep 1000");
        let id = common::id(name);
        let state = tempfile::tempdir().unwrap();
        let container = Container::builder(&id, spec.clone(), common::rootfs())
            .require_sealed_exe(false)
            .allow_multithreaded_fork(true)
            .state_dir(state.path())
            .forward_signals(false)
            .build()
            .unwrap();
        let runner = Some(std::thread::spawn(move || container.run()));
        let state_file = state.path().join(&id).join("state.json");
        let init = wait_for(|| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&state_file).ok()?).ok()?;
            // Running: its command executed (until then it is `creating`, and no exec).
            (v["status"] == "running").then_some(())?;
            v["pid"].as_i64().filter(|p| *p > 0).map(|p| p as i32)
        });
        Running {
            id,
            spec,
            state,
            init,
            runner,
        }
    }

    /// A foreground exec of `script` in `sh -c` with a terminal, sized `size` from the
    /// start (a CLI gives the user's size).
    fn exec_tty(
        &self,
        script: &str,
        size: Option<WindowSize>,
    ) -> basic_runtime::exec::Exec<basic_runtime::exec::Foreground> {
        let mut process =
            process_from(&self.spec, vec!["sh".into(), "-c".into(), script.into()]).unwrap();
        process.set_terminal(Some(true));
        process.set_console_size(size.map(Into::into));
        Exec::in_container(&self.id, process)
            .require_sealed_exe(false)
            .allow_multithreaded_fork(true)
            .state_dir(self.state.path())
            .foreground()
            .forward_signals(false)
            .build()
            .unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(runner) = self.runner.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.init),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = runner.join();
        }
    }
}

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the container never started");
}

/// The user's terminal: a pty pair whose slave is in raw mode, as a CLI puts its
/// terminal; the test types into and reads from the master.
struct UserTerminal {
    master: OwnedFd,
    slave: OwnedFd,
    seen: String,
}

impl UserTerminal {
    fn new(rows: u16, cols: u16) -> UserTerminal {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(&size, None).unwrap();
        let mut raw = tcgetattr(&pty.slave).unwrap();
        nix::sys::termios::cfmakeraw(&mut raw);
        nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &raw).unwrap();
        UserTerminal {
            master: pty.master,
            slave: pty.slave,
            seen: String::new(),
        }
    }

    fn type_keys(&self, keys: &[u8]) {
        nix::unistd::write(&self.master, keys).unwrap();
    }

    /// Reads what the relay wrote until `want` shows up after what was already matched.
    /// A relay that stops producing output fails the test rather than hanging it.
    fn expect(&mut self, want: &str) {
        let start = self.seen.len();
        while !self.seen[start..].contains(want) {
            assert!(
                self.read_some(),
                "waiting for {want:?}, got {:?}",
                self.seen
            );
        }
        let at = start + self.seen[start..].find(want).unwrap() + want.len();
        self.seen.drain(..at);
    }

    /// The next line of output, without its CR LF.
    fn line(&mut self) -> String {
        while !self.seen.contains("\r\n") {
            assert!(self.read_some(), "waiting for a line, got {:?}", self.seen);
        }
        let at = self.seen.find("\r\n").unwrap();
        let line = self.seen[..at].to_string();
        self.seen.drain(..at + 2);
        line
    }

    /// One read; false when nothing came for a long while.
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
}

/// A file to relay into: unlike a pipe, it never blocks the relay.
fn output_file() -> std::fs::File {
    tempfile::tempfile().unwrap()
}

fn contents(mut file: std::fs::File) -> String {
    let mut s = String::new();
    file.rewind().unwrap();
    file.read_to_string(&mut s).unwrap();
    s
}

#[test]
fn exec_gets_a_pts_of_the_containers_devpts() {
    if !privileged() {
        return;
    }
    let c = Running::start("tty");
    let out = output_file();
    let mut relayed = None;
    let status = c
        .exec_tty(
            "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-three",
            None,
        )
        .run_with_console(|console| relayed = Some(console.relay(None, out.as_fd())))
        .unwrap();
    relayed.unwrap().unwrap();
    assert_eq!(status.exit_code(), 0);
    assert_eq!(contents(out), "/dev/pts/0\r\nall-three\r\n");
}

#[test]
fn window_size_follows_the_users_terminal() {
    if !privileged() {
        return;
    }
    let c = Running::start("winsz");
    let mut user = UserTerminal::new(30, 100);
    let exec = c.exec_tty(
        "stty size; while read line; do stty size; done; echo done",
        Some(WindowSize {
            rows: 30,
            cols: 100,
        }),
    );
    let slave = user.slave.try_clone().unwrap();
    let session = std::thread::spawn(move || {
        exec.run_with_console(|console| {
            console.relay(Some(slave.as_fd()), slave.as_fd()).unwrap();
        })
    });
    assert_eq!(user.line(), "30 100");
    terminal::set_window_size(
        &user.master,
        WindowSize {
            rows: 40,
            cols: 120,
        },
    )
    .unwrap();
    // The test's pty is not its controlling terminal, so the kernel's SIGWINCH goes to
    // nobody: send it as the kernel would to a CLI.
    nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGWINCH).unwrap();
    // Each line typed makes the shell print the size again.
    let mut sizes = Vec::new();
    while sizes.last().is_none_or(|s| s != "40 120") {
        assert!(sizes.len() < 100, "the size never changed: {sizes:?}");
        user.type_keys(b"again\r");
        user.expect("again\r\n");
        sizes.push(user.line());
    }
    assert!(
        sizes.iter().all(|s| s == "30 100" || s == "40 120"),
        "{sizes:?}"
    );
    user.type_keys(b"\x04");
    user.expect("done");
    let status = session.join().unwrap().unwrap();
    assert_eq!(status.exit_code(), 0);
}

#[test]
fn ctrl_c_typed_by_the_user_interrupts_the_foreground_process() {
    if !privileged() {
        return;
    }
    let c = Running::start("ctrlc");
    let mut user = UserTerminal::new(24, 80);
    let exec = c.exec_tty("echo ready; exec sleep 100", None);
    let slave = user.slave.try_clone().unwrap();
    let session = std::thread::spawn(move || {
        exec.run_with_console(|console| {
            console.relay(Some(slave.as_fd()), slave.as_fd()).unwrap();
        })
    });
    user.expect("ready\r\n");
    // In raw mode Ctrl-C is just a byte; the container's terminal turns it into SIGINT
    // for its foreground process group: the shell, or the sleep it became, dies of it.
    user.type_keys(b"\x03");
    let status = session.join().unwrap().unwrap();
    assert_eq!(status.signal, Some(2), "{status}");
    assert_eq!(status.exit_code(), 130);
}

#[test]
fn the_relay_ends_when_the_process_exits_and_drains_its_output() {
    if !privileged() {
        return;
    }
    let c = Running::start("drain");
    let out = output_file();
    // The background sleep ignores the hangup and keeps the terminal open: the relay must
    // end on the shell's exit, not on the terminal closing.
    let status = c
        .exec_tty("(trap '' HUP; exec sleep 1000) & seq 1 20000; exit 5", None)
        .run_with_console(|console| console.relay(None, out.as_fd()).unwrap())
        .unwrap();
    assert_eq!(status.exit_code(), 5);
    let text = contents(out);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines.len(),
        20001,
        "{}",
        &text[text.len().saturating_sub(200)..]
    );
    assert_eq!(lines[19999], "20000");
    let sleeping = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
                == std::fs::read_link(format!("/proc/{}/ns/pid", c.init)).ok()
        })
        .count();
    assert_eq!(sleeping, 2, "the init and the background sleep");
}

#[test]
fn a_container_run_with_a_terminal_sends_it_over_the_console_socket() {
    if !privileged() {
        return;
    }
    let mut spec = common::sh("tty; stty size");
    let process = spec.process_mut().as_mut().unwrap();
    process.set_terminal(Some(true));
    process.set_console_size(Some(
        oci_spec::runtime::BoxBuilder::default()
            .height(12u64)
            .width(34u64)
            .build()
            .unwrap(),
    ));
    let (socket, container_end) = ConsoleSocket::pair().unwrap();
    let state = tempfile::tempdir().unwrap();
    let container = Container::builder(common::id("runit"), spec, common::rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(state.path())
        .console_socket_fd(container_end)
        .forward_signals(false)
        .build()
        .unwrap();
    let out = output_file();
    let relay_out = out.try_clone().unwrap();
    let relay = std::thread::spawn(move || socket.receive()?.relay(None, relay_out.as_fd()));
    let status = container.run().unwrap();
    drop(container);
    relay.join().unwrap().unwrap();
    assert_eq!(status.exit_code(), 0);
    assert_eq!(contents(out), "/dev/pts/0\r\n12 34\r\n");
}

#[test]
fn a_container_that_fails_before_its_terminal_ends_the_wait_for_it() {
    if !privileged() {
        return;
    }
    let mut spec = common::sh("true");
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_terminal(Some(true));
    // A bind mount of nothing: the root filesystem setup fails, before the terminal.
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination("/missing".into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some("/nonexistent/source".into()));
    m.set_options(Some(vec!["rbind".into()]));
    spec.mounts_mut().as_mut().unwrap().push(m);
    let (socket, container_end) = ConsoleSocket::pair().unwrap();
    let state = tempfile::tempdir().unwrap();
    let relay = socket.relay_stdio_in_background(false);
    let result = Container::builder(common::id("runfail"), spec, common::rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(state.path())
        .console_socket_fd(container_end)
        .forward_signals(false)
        .build()
        .and_then(|c| c.run());
    let e = result.unwrap_err();
    assert!(e.to_string().contains("nonexistent"), "{e}");
    assert!(matches!(
        relay.join().unwrap(),
        Err(TerminalError::NoMaster)
    ));
}

/// One test for everything that switches raw mode: only one terminal at a time may be raw.
#[test]
fn raw_mode_is_restored_on_drop_on_panic_and_on_a_signal() {
    let pty = nix::pty::openpty(None, None).unwrap();
    let cooked = tcgetattr(&pty.slave).unwrap();
    assert!(
        cooked
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
    );

    let raw = RawMode::enable(&pty.slave)
        .unwrap()
        .expect("a pty is a terminal");
    let now = tcgetattr(&pty.slave).unwrap();
    assert!(
        !now.local_flags
            .intersects(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG)
    );
    let other = nix::pty::openpty(None, None).unwrap();
    assert!(matches!(
        RawMode::enable(&other.slave),
        Err(TerminalError::RawModeActive)
    ));
    drop(raw);
    assert_eq!(tcgetattr(&pty.slave).unwrap(), cooked);

    let unwound = std::panic::catch_unwind(|| {
        let _raw = RawMode::enable(&pty.slave).unwrap();
        panic!("while raw");
    });
    assert!(unwound.is_err());
    assert_eq!(tcgetattr(&pty.slave).unwrap(), cooked);

    // SIGTERM: the terminal is restored first, then the signal goes to the disposition
    // that was there before (here a handler, so that the test survives it).
    static GOT: AtomicBool = AtomicBool::new(false);
    extern "C" fn note(_: libc::c_int) {
        GOT.store(true, Ordering::SeqCst);
    }
    let mine = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(note),
        nix::sys::signal::SaFlags::empty(),
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only stores to an atomic.
    let before =
        unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGTERM, &mine) }.unwrap();
    let raw = RawMode::enable(&pty.slave).unwrap();
    assert_ne!(tcgetattr(&pty.slave).unwrap(), cooked);
    // SAFETY: raise(3) takes a signal number; SIGTERM's handler is the test's own.
    unsafe { libc::raise(libc::SIGTERM) };
    assert!(GOT.load(Ordering::SeqCst), "the previous handler ran");
    assert_eq!(tcgetattr(&pty.slave).unwrap(), cooked);
    drop(raw);
    // SAFETY: puts back the disposition found before the test.
    unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGTERM, &before) }.unwrap();

    let (r, _w) = nix::unistd::pipe().unwrap();
    assert!(
        RawMode::enable(&r).unwrap().is_none(),
        "a pipe needs no raw mode"
    );
}
