//! A foreground `run` whose command line is killed (`kill -9`): the container's supervisor
//! is a process of its own, so the container still runs to its end, its exit is recorded,
//! and `--rm` removes it with everything it had on the machine.

mod common;

use common::{LOCAL_TOOL_LIMIT, basic_docker, busybox_store as store, ok};

use std::io::Read as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use basic_test_support::bounded::{output_within, until, wait_with_output_within};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a container of these tests may take to come up, or to be gone.
const LIMIT: Duration = Duration::from_secs(60);

/// `inspect NAME` as JSON, when the container exists.
fn inspect(root: &Path, name: &str) -> Option<serde_json::Value> {
    let out = basic_docker(root, &["inspect", name]);
    out.status.success().then(|| {
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        all[0].clone()
    })
}

/// Waits until container `name` runs; returns its id.
fn running(root: &Path, name: &str, cli: &mut Child) -> String {
    let mut id = String::new();
    until(LIMIT, &format!("{name} running"), || {
        assert!(cli.try_wait().unwrap().is_none(), "run ended early");
        match inspect(root, name) {
            Some(doc) if doc["State"]["Running"] == true => {
                id = doc["Id"].as_str().unwrap().to_string();
                true
            }
            _ => false,
        }
    });
    id
}

/// The host end of the running container's eth0.
fn host_veth(root: &Path, name: &str) -> String {
    let index = ok(basic_docker(
        root,
        &["exec", name, "cat", "/sys/class/net/eth0/iflink"],
    ));
    tool("ip", &["-o", "link"])
        .lines()
        .find(|l| l.starts_with(&format!("{index}: ")))
        .and_then(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .expect("the host veth")
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = output_within(
        Command::new(program).args(args),
        LOCAL_TOOL_LIMIT,
        &format!("{program} {args:?}"),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a container holds on the machine while it runs, by kind.
struct Traces {
    dir: PathBuf,
    mount: PathBuf,
    cgroups: Vec<PathBuf>,
    state: PathBuf,
    netns: PathBuf,
    network_record: PathBuf,
    veth: String,
}

impl Traces {
    fn of(root: &Path, id: &str, veth: String) -> Traces {
        let dir = root.join("containers").join(id);
        Traces {
            mount: dir.join("rootfs"),
            dir,
            cgroups: ["pids", "memory"]
                .iter()
                .map(|c| {
                    Path::new("/sys/fs/cgroup")
                        .join(c)
                        .join("basic-docker")
                        .join(id)
                })
                .collect(),
            state: Path::new("/run/basic-docker").join(id),
            netns: Path::new("/run/basic-docker/netns").join(id),
            network_record: root.join("networks/cache").join(format!("{id}.json")),
            veth,
        }
    }

    /// Those of the run-time kinds still there (the record and directory aside).
    fn run_time(&self) -> Vec<String> {
        let mut left = Vec::new();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        if mounts.contains(&format!(" {} ", self.mount.display())) {
            left.push(format!("mount {}", self.mount.display()));
        }
        for path in self
            .cgroups
            .iter()
            .chain([&self.state, &self.netns, &self.network_record])
        {
            if path.exists() {
                left.push(path.display().to_string());
            }
        }
        if tool("ip", &["-o", "link"]).contains(&format!(" {}@", self.veth)) {
            left.push(format!("veth {}", self.veth));
        }
        left
    }
}

/// The events of container `id` in the store's journal, as `action` or `action:exitCode`.
fn events(root: &Path, id: &str) -> Vec<String> {
    std::fs::read_to_string(root.join("events.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["Actor"]["ID"] == id)
        .map(|e| {
            let action = e["Action"].as_str().unwrap_or_default().to_string();
            match e["Actor"]["Attributes"]["exitCode"].as_str() {
                Some(code) => format!("{action}:{code}"),
                None => action,
            }
        })
        .collect()
}

/// Kills the CLI with SIGKILL; its output must close at once (nothing of the engine
/// holds the caller's descriptors).
fn kill_cli(cli: Child) {
    kill(Pid::from_raw(cli.id() as i32), Signal::SIGKILL).unwrap();
    let out = wait_with_output_within(cli, Duration::from_secs(10), "the killed run");
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{:?}", out.status);
}

fn spawn_run(root: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start basic-docker run")
}

#[test]
fn a_killed_run_rm_still_ends_and_is_removed_with_all_it_had() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = format!("killed-rm-{}", std::process::id());
    let mut cli = spawn_run(
        root,
        &[
            "--rm",
            "--name",
            &name,
            image,
            "sh",
            "-c",
            "sleep 2; exit 3",
        ],
    );
    let id = running(root, &name, &mut cli);
    let traces = Traces::of(root, &id, host_veth(root, &name));
    assert_eq!(
        traces.run_time().len(),
        7,
        "the control: all of it while running"
    );
    kill_cli(cli);

    until(LIMIT, "the container removed", || {
        inspect(root, &name).is_none()
    });
    assert!(!traces.dir.exists(), "its directory");
    until(Duration::from_secs(10), "its run-time traces gone", || {
        traces.run_time().is_empty()
    });
    assert_eq!(
        events(root, &id),
        ["create", "start", "die:3", "destroy"],
        "it ran to its end, which was recorded"
    );
}

#[test]
fn a_killed_run_leaves_the_container_with_its_real_exit_code() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = format!("killed-keep-{}", std::process::id());
    let _cleanup = common::Cleanup::new(root, &[&name]);
    let mut cli = spawn_run(
        root,
        &["--name", &name, image, "sh", "-c", "sleep 2; exit 3"],
    );
    let id = running(root, &name, &mut cli);
    let traces = Traces::of(root, &id, host_veth(root, &name));
    kill_cli(cli);

    let mut state = serde_json::Value::Null;
    until(LIMIT, "the container exited", || {
        state = inspect(root, &name).unwrap()["State"].clone();
        state["Status"] == "exited"
    });
    assert_eq!(state["ExitCode"], 3, "{state}");
    assert!(traces.dir.exists(), "kept: no --rm");
    until(Duration::from_secs(10), "its run-time traces gone", || {
        traces.run_time().is_empty()
    });
    ok(basic_docker(root, &["rm", &name]));
}

/// The user's terminal: a pty whose slave is the CLI's controlling terminal.
struct Terminal {
    master: std::fs::File,
    seen: std::sync::mpsc::Receiver<Vec<u8>>,
    text: String,
}

impl Terminal {
    fn run(root: &Path, args: &[&str]) -> (Terminal, Child) {
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave: OwnedFd = pty.slave;
        let slave_fd = slave.as_raw_fd();
        let mut command = Command::new(env!("CARGO_BIN_EXE_basic-docker"));
        command
            .arg("--root")
            .arg(root)
            .arg("run")
            .args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: setsid and ioctl are async-signal-safe.
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
        let (tx, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buf) {
                if tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let terminal = Terminal {
            master,
            seen,
            text: String::new(),
        };
        (terminal, child)
    }

    fn type_keys(&mut self, keys: &[u8]) {
        std::io::Write::write_all(&mut self.master, keys).unwrap();
    }

    fn expect(&mut self, text: &str) {
        let deadline = std::time::Instant::now() + LIMIT;
        while !self.text.contains(text) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(bytes) => self.text.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no {text:?} on the terminal; it shows {:?}", self.text),
            }
        }
        let end = self.text.find(text).unwrap() + text.len();
        self.text.drain(..end);
    }
}

#[test]
fn a_killed_run_it_on_a_terminal_still_ends_and_is_removed() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = format!("killed-it-{}", std::process::id());
    let (mut term, mut cli) = Terminal::run(root, &["-it", "--rm", "--name", &name, image, "sh"]);
    term.type_keys(b"echo up-$((20+22))\n");
    term.expect("up-42");
    let id = running(root, &name, &mut cli);
    let traces = Traces::of(root, &id, host_veth(root, &name));
    term.type_keys(b"sleep 2; exit 4\n");
    term.expect("exit 4");
    kill(Pid::from_raw(cli.id() as i32), Signal::SIGKILL).unwrap();
    let status = basic_test_support::bounded::wait_within(&mut cli, LIMIT, "the killed run -it");
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    until(LIMIT, "the container removed", || {
        inspect(root, &name).is_none()
    });
    until(Duration::from_secs(10), "its run-time traces gone", || {
        traces.run_time().is_empty()
    });
    assert!(!traces.dir.exists());
    assert_eq!(events(root, &id), ["create", "start", "die:4", "destroy"]);
}
