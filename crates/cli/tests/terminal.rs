//! `run -it` through a real pseudo-terminal: the test plays the user's terminal
//! (the master side), `basic-docker` runs on the slave as its controlling tty.

mod common;

use common::{basic_docker, ok};

use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use basic_test_support::{harness, require_root};

/// The user's side of a terminal with `basic-docker ARGS` running on it.
struct Terminal {
    master: std::fs::File,
    output: mpsc::Receiver<Vec<u8>>,
    seen: String,
    child: std::process::Child,
}

impl Terminal {
    fn start(root: &std::path::Path, args: &[&str], rows: u16, cols: u16) -> Terminal {
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
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

    /// Reads until `text` appears (after what was already matched), up to 20 s.
    fn expect(&mut self, text: &str) {
        let until = Instant::now() + Duration::from_secs(20);
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

    fn wait(mut self) -> Option<i32> {
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < until, "basic-docker did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn run_it_gives_a_real_terminal_with_the_users_size_and_ctrl_c() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let image = h.reference("busybox_latest");
    ok(basic_docker(root, &["pull", "-q", &image]));
    let mut term = Terminal::start(
        root,
        &["run", "-it", "--rm", "--network", "none", &image, "sh"],
        33,
        111,
    );
    term.type_keys(b"tty; stty size\n");
    term.expect("/dev/pts/");
    term.expect("33 111");
    term.type_keys(b"sleep 100\n");
    std::thread::sleep(Duration::from_millis(300));
    term.type_keys(b"\x03");
    // ^C reached the shell's foreground job: sleep died of SIGINT (130).
    term.type_keys(b"echo status-$?\n");
    term.expect("status-130");
    term.type_keys(b"exit 5\n");
    assert_eq!(term.wait(), Some(5));
    // The container is gone (--rm) and the terminal was left as it was found.
    assert_eq!(ok(basic_docker(root, &["ps", "-aq"])), "");
}
