//! The caller's terminal is not the container's: a container process run
//! without `-t` must not be able to type into the terminal of the person who
//! ran `run` or `exec` (TIOCSTI on its descriptors or on `/dev/tty`), which
//! would make that person's shell run the container's commands on the host.

use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basic_test_support::image::ImageBuilder;
use basic_test_support::programs::static_program;
use nix::sys::termios::{LocalFlags, SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr};

use crate::common::Cleanup;
use crate::support::{BIN, Store, unique, wait_within};

const TTY_INJECT: &str = include_str!("../attacks/tty_inject.c");

/// What the probe types: a command the caller's shell would run.
const TYPED: &str = "INJECTED";

/// A terminal of the test's own, as a user's shell would have it: commands run
/// on its slave as their controlling terminal, and the test reads what they
/// print from the master.
struct Terminal {
    slave: OwnedFd,
    shown: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    fn new() -> Terminal {
        let pty = nix::pty::openpty(None, None).unwrap();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let mut master = File::from(pty.master);
        let sink = shown.clone();
        // Ends with EIO once the slave is closed (when the terminal is dropped).
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = master.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            slave: pty.slave,
            shown,
        }
    }

    /// Runs `program ARGS` in a new session whose controlling terminal is this
    /// one, stdin, stdout and stderr on it, and waits for it and for the probe's
    /// last line. Returns what the terminal showed.
    fn run(&self, program: &Path, args: &[&str]) -> String {
        let io = || Stdio::from(self.slave.try_clone().unwrap());
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(io()).stdout(io()).stderr(io());
        // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the slave,
        // which becomes the controlling terminal as in a login shell's job.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("starting the command on the terminal");
        let status = wait_within(&mut child, Duration::from_secs(60));
        let until = Instant::now() + Duration::from_secs(5);
        while !self.shown().contains("tty-probe: done") && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        format!("{}(exit: {status})", self.shown())
    }

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().unwrap()).replace('\r', "")
    }

    /// What is waiting in the terminal's input queue: what the user's shell
    /// would read next as typed by the user. Read without blocking, partial
    /// lines included.
    fn typed_ahead(&self) -> String {
        let mut attrs = tcgetattr(&self.slave).unwrap();
        attrs
            .local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO);
        attrs.control_chars[SpecialCharacterIndices::VMIN as usize] = 0;
        attrs.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        tcsetattr(&self.slave, SetArg::TCSANOW, &attrs).unwrap();
        let mut queued = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: a read into a local buffer of its size.
            let n =
                unsafe { libc::read(self.slave.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            queued.extend_from_slice(&buf[..n as usize]);
        }
        String::from_utf8_lossy(&queued).to_string()
    }
}

/// The probe, compiled.
fn probe() -> Option<std::path::PathBuf> {
    static_program("tty-inject", TTY_INJECT)
}

/// The probe run straight on the host from a terminal types into it: the way
/// the tests read the input queue sees an injection when there is one.
#[track_caller]
fn assert_the_probe_types_into_a_terminal_on_the_host(probe: &Path) {
    let terminal = Terminal::new();
    let shown = terminal.run(probe, &[]);
    let queued = terminal.typed_ahead();
    assert!(
        queued.contains(TYPED),
        "positive control: the probe on the host did not type into its terminal \
         (queue {queued:?}):\n{shown}"
    );
}

/// A store with an image holding the probe at `/tty-inject`.
fn store_with_probe() -> Option<(Store, String, std::path::PathBuf)> {
    let store = Store::new()?;
    let probe = probe()?;
    let image = store.image(
        ImageBuilder::busybox().layer(|l| {
            l.copy("tty-inject", &probe, 0o755);
        }),
        "tty-inject",
    );
    Some((store, image, probe))
}

/// Runs `basic-docker ARGS` from a fresh terminal and asserts that the
/// container's probe ran and reached nothing of that terminal.
#[track_caller]
fn assert_the_container_cannot_type_into_the_terminal(store: &Store, args: &[&str]) {
    let terminal = Terminal::new();
    let mut full = vec!["--root", store.root().to_str().unwrap()];
    full.extend_from_slice(args);
    let shown = terminal.run(Path::new(BIN), &full);
    let queued = terminal.typed_ahead();
    let probe: Vec<&str> = shown
        .lines()
        .filter(|l| l.starts_with("tty-probe:"))
        .collect();
    assert!(
        probe.contains(&"tty-probe: done"),
        "the probe did not run in the container:\n{shown}"
    );
    let reached: Vec<&&str> = probe
        .iter()
        .filter(|l| l.contains("tiocsti=ok") || l.contains("isatty=1") || l.contains("open=ok"))
        .collect();
    assert!(
        !queued.contains(TYPED) && reached.is_empty(),
        "basic-docker {args:?}: the container reached the caller's terminal; \
         its input queue holds {queued:?}; the probe says:\n{}",
        probe.join("\n")
    );
}

#[test]
fn exec_cannot_type_into_the_callers_terminal() {
    let Some((store, image, probe)) = store_with_probe() else {
        return;
    };
    assert_the_probe_types_into_a_terminal_on_the_host(&probe);
    let name = unique("tty-exec");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.sleeper(&image, &name);
    assert_the_container_cannot_type_into_the_terminal(&store, &["exec", &name, "/tty-inject"]);
}

#[test]
fn exec_i_cannot_type_into_the_callers_terminal() {
    let Some((store, image, probe)) = store_with_probe() else {
        return;
    };
    assert_the_probe_types_into_a_terminal_on_the_host(&probe);
    let name = unique("tty-exec-i");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.sleeper(&image, &name);
    assert_the_container_cannot_type_into_the_terminal(
        &store,
        &["exec", "-i", &name, "/tty-inject"],
    );
}

#[test]
fn run_cannot_type_into_the_callers_terminal() {
    let Some((store, image, probe)) = store_with_probe() else {
        return;
    };
    assert_the_probe_types_into_a_terminal_on_the_host(&probe);
    assert_the_container_cannot_type_into_the_terminal(
        &store,
        &["run", "--rm", "--network", "none", &image, "/tty-inject"],
    );
}

#[test]
fn run_i_cannot_type_into_the_callers_terminal() {
    let Some((store, image, probe)) = store_with_probe() else {
        return;
    };
    assert_the_probe_types_into_a_terminal_on_the_host(&probe);
    assert_the_container_cannot_type_into_the_terminal(
        &store,
        &[
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            &image,
            "/tty-inject",
        ],
    );
}
