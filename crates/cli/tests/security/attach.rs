//! `attach` reaches a container's stdio through its supervisor's socket; a
//! hostile container and other users of the host must get nothing more for it:
//! - the socket and its directory are root's only: another user cannot connect;
//! - no host descriptor reaches the container (its stdin is the supervisor's
//!   pipe, not the attaching terminal; no socket of the supervisor's leaks in);
//! - `TIOCSTI` inside a `-it` container types into the container's own
//!   terminal, never into the terminal of the person attached to it;
//! - a container flooding its output cannot grow the supervisor's memory, nor
//!   stop a client that keeps reading, however slow another client is.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basic_test_support::image::ImageBuilder;
use basic_test_support::programs::static_program;
use nix::sys::termios::{LocalFlags, SetArg, SpecialCharacterIndices, tcgetattr, tcsetattr};

use crate::common::Cleanup;
use crate::support::{FD_PROBE, Leak, Store, unique, wait_within};

const WAIT: Duration = Duration::from_secs(30);

/// The engine's run-time state directory (the CLI's default `--state`).
const STATE: &str = "/run/basic-docker";

const TTY_INJECT: &str = include_str!("../attacks/tty_inject.c");

/// What the probe types: a command whose output (`INJECTED`) differs from its text, so
/// the test tells the command's echo from its run.
const INJECTED_TEXT: &str = "echo INJ''ECTED\n";

fn attach_dir(id: &str) -> PathBuf {
    Path::new(STATE).join("containers").join(id)
}

/// A terminal of the test's own: the master is the user's keyboard and screen, the
/// slave the controlling terminal of what runs on it.
struct Terminal {
    master: File,
    slave: OwnedFd,
    shown: Arc<Mutex<Vec<u8>>>,
    matched: usize,
}

impl Terminal {
    fn new() -> Terminal {
        let pty = nix::pty::openpty(None, None).unwrap();
        let shown = Arc::new(Mutex::new(Vec::new()));
        let master = File::from(pty.master);
        let mut reader = master.try_clone().unwrap();
        let sink = shown.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal {
            master,
            slave: pty.slave,
            shown,
            matched: 0,
        }
    }

    /// Starts `cmd` in a new session whose controlling terminal (and stdio) is this one.
    fn spawn(&self, mut cmd: Command) -> Child {
        let io = || Stdio::from(self.slave.try_clone().unwrap());
        cmd.stdin(io()).stdout(io()).stderr(io());
        // SAFETY: setsid and ioctl are async-signal-safe; fd 0 is the slave, which
        // becomes the controlling terminal as in a login shell's job.
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid()?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().expect("starting the command on the terminal")
    }

    /// Typed keys are no longer echoed: what shows is only what programs print.
    fn no_echo(&self) {
        let mut attrs = tcgetattr(&self.slave).unwrap();
        attrs.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&self.slave, SetArg::TCSANOW, &attrs).unwrap();
    }

    fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
    }

    fn shown(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().unwrap()).replace('\r', "")
    }

    /// Waits until `text` is shown after what was matched before.
    #[track_caller]
    fn expect(&mut self, text: &str) {
        let until = Instant::now() + WAIT;
        loop {
            let shown = self.shown();
            if let Some(at) = shown[self.matched.min(shown.len())..].find(text) {
                self.matched += at + text.len();
                return;
            }
            assert!(
                Instant::now() < until,
                "no {text:?}; the terminal shows:\n{shown}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What waits in the terminal's input queue: what the user's shell would read next
    /// as typed by the user.
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

/// `python3` connecting to the attach socket at `path` as `uid`, printing what happened.
fn connect_as(uid: u32, path: &Path) -> String {
    let script = "import socket, sys\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n\
                  try:\n    s.connect(sys.argv[1]); print('connected', s.recv(64)[:1].hex())\n\
                  except OSError as e:\n    print('refused', e.errno)\n";
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={uid}"),
            &format!("--regid={uid}"),
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            script,
        ])
        .arg(path)
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_attach_socket_is_roots_only_and_other_users_cannot_connect() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let name = unique("attach-private");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.ok(&[
        "run",
        "-di",
        "--network",
        "none",
        "--name",
        &name,
        &image,
        "cat",
    ]);
    let id = store.id_of(&name);
    let dir = attach_dir(&id);
    let socket = dir.join("attach");
    for (path, mode) in [
        (dir.parent().unwrap().to_path_buf(), 0o700),
        (dir.clone(), 0o700),
        (dir.join("pending"), 0o700),
        (socket.clone(), 0o600),
    ] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (mode, 0, 0),
            "{}",
            path.display()
        );
    }
    assert!(std::fs::metadata(&socket).unwrap().file_type().is_socket());
    // Positive control: root connects, and the supervisor greets it (0x81).
    assert_eq!(connect_as(0, &socket).trim(), "connected 81");
    // Another user is stopped at the directory (EACCES).
    let other = connect_as(65534, &socket);
    assert_eq!(other.trim(), "refused 13", "{other}");
    assert_eq!(store.inspect(&name)["State"]["Status"], "running");
}

#[test]
fn no_host_descriptor_reaches_the_container_through_an_attachment() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let leak = Leak::new();
    crate::support::assert_the_leak_is_visible_on_the_host(&leak);
    let name = unique("attach-fds");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.ok(&[
        "run",
        "-di",
        "--network",
        "none",
        "--name",
        &name,
        &image,
        "sh",
    ]);
    // The attaching command runs on a terminal and holds the leaked fd 7; the container's
    // shell reads what is typed there.
    let mut term = Terminal::new();
    // Only what the container prints shows, not the script typed.
    term.no_echo();
    let mut cmd = store.command(&["attach", &name]);
    leak.hand_to(&mut cmd);
    let mut attach = term.spawn(cmd);
    let script = format!(
        "{FD_PROBE}; for fd in /proc/1/fd/* /proc/self/fd/*; do \
         echo \"fd $fd $(readlink $fd)\"; done; echo fds-$((1+1))-listed\n"
    );
    term.type_keys(script.as_bytes());
    term.expect("fds-2-listed\n");
    let shown = term.shown();
    assert!(
        shown.contains("probe-start") && shown.contains("probe-end"),
        "the probe did not run:\n{shown}"
    );
    assert!(
        !shown.contains("fd7-open") && !leak.seen_in(&shown),
        "the container got the attaching command's fd 7:\n{shown}"
    );
    let fds: Vec<&str> = shown
        .lines()
        .filter(|l| l.starts_with("fd /proc/1/"))
        .collect();
    assert!(fds.len() >= 3, "{shown}");
    for line in &fds {
        let target = line.rsplit(' ').next().unwrap();
        // The init's stdio are the supervisor's pipes: neither the attaching terminal
        // (/dev/pts/N), nor a socket of the supervisor's, nor anything else.
        assert!(target.starts_with("pipe:["), "{line}\n{shown}");
    }
    term.type_keys(b"exit 0\n");
    assert!(wait_within(&mut attach, WAIT).success(), "{}", term.shown());
}

#[test]
fn tiocsti_in_an_attached_tty_container_types_only_into_its_own_terminal() {
    let Some(store) = Store::new() else { return };
    let Some(probe) = static_program("tty-inject", TTY_INJECT) else {
        return;
    };
    // Positive control: on the host, the probe types into its terminal.
    let host = Terminal::new();
    let mut cmd = Command::new(&probe);
    cmd.arg(INJECTED_TEXT);
    let mut child = host.spawn(cmd);
    wait_within(&mut child, WAIT);
    let queued = host.typed_ahead();
    assert!(
        queued.contains("INJ''ECTED"),
        "positive control: the probe did not type into its terminal on the host ({queued:?})"
    );
    let image = store.image(
        ImageBuilder::busybox().layer(|l| {
            l.copy("tty-inject", &probe, 0o755);
        }),
        "tty-inject-attach",
    );
    let name = unique("attach-tiocsti");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.ok(&[
        "run",
        "-dit",
        "--network",
        "none",
        "--name",
        &name,
        &image,
        "sh",
    ]);
    let mut term = Terminal::new();
    let mut attach = term.spawn(store.command(&["attach", &name]));
    // Typed through the attachment: a newline inside the quotes is part of the text.
    term.type_keys(format!("/tty-inject \"{INJECTED_TEXT}\"\n").as_bytes());
    term.expect("tty-probe: done");
    // The container's shell read what the probe typed and ran it, in the container.
    term.expect("\nINJECTED\n");
    term.type_keys(b"\x10\x11");
    term.expect("read escape sequence");
    assert!(wait_within(&mut attach, WAIT).success(), "{}", term.shown());
    let queued = term.typed_ahead();
    assert!(
        !queued.contains("INJ") && queued.is_empty(),
        "the container typed into the attached terminal: its input queue holds {queued:?}:\n{}",
        term.shown()
    );
    assert_eq!(store.inspect(&name)["State"]["Status"], "running");
}

/// The resident and peak memory of process `pid`, in KiB.
fn memory_kib(pid: i32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[test]
fn a_flood_of_output_neither_grows_the_supervisor_nor_stops_a_reading_client() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let name = unique("attach-flood");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    // About a megabyte per round, as fast as it goes; the log stays one small file.
    store.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--log-opt",
        "max-size=1m",
        "--log-opt",
        "max-file=1",
        "--name",
        &name,
        &image,
        "sh",
        "-c",
        "while true; do cat /bin/busybox; done",
    ]);
    let init = store.inspect(&name)["State"]["Pid"].as_i64().unwrap() as i32;
    let supervisor: i32 = std::fs::read_to_string(format!("/proc/{init}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let before = memory_kib(supervisor).0;
    // A client that never reads: its pipe fills, then its socket, then its queue.
    let mut stuck = store
        .command(&["attach", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // And one that keeps reading.
    let mut reader = store
        .command(&["attach", &name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let count = received.clone();
    let mut out = reader.stdout.take().unwrap();
    let counting = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            count.fetch_add(n, Ordering::Relaxed);
        }
    });
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        peak = peak.max(memory_kib(supervisor).0);
        std::thread::sleep(Duration::from_millis(50));
    }
    let flowed = received.load(Ordering::Relaxed);
    let (_, high_water) = memory_kib(supervisor);
    // The reader was never held up by the stuck one (many times what any queue holds).
    assert!(
        flowed > 8 * basic_runtime::attach::MAX_QUEUED,
        "the reading client got only {flowed} bytes in 5 s"
    );
    // Without a bound the stuck client's queue alone would hold about as much.
    let limit_kib = (before + 48 * 1024) as u64;
    assert!(
        high_water.max(peak) < limit_kib,
        "the supervisor grew from {before} KiB to {} KiB (peak RSS) while {flowed} bytes \
         went by",
        high_water.max(peak)
    );
    assert_eq!(store.inspect(&name)["State"]["Status"], "running");
    store.ok(&["rm", "-f", &name]);
    assert_eq!(wait_within(&mut reader, WAIT).code(), Some(137));
    let _ = counting.join();
    // The stuck one was dropped by the supervisor; it ends with the container too.
    drop(stuck.stdout.take());
    wait_within(&mut stuck, WAIT);
}
