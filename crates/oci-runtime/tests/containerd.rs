//! containerd (Debian's 1.6, its runc v2 shim) with `basic-runtime` as the runc binary:
//! `ctr run` in the foreground and detached, exit codes, `task exec`, `task kill`.
//! A private containerd (root, state and socket in a tempdir) is started for the test and
//! killed afterwards; containers run from a busybox root filesystem (`ctr run --rootfs`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

struct Containerd {
    dir: tempfile::TempDir,
    daemon: Child,
}

impl Containerd {
    fn start() -> Option<Self> {
        if !common::ready()
            || !basic_test_support::prerequisite(
                Path::new("/usr/bin/containerd").exists() && Path::new("/usr/bin/ctr").exists(),
                "containerd and ctr (scripts/install-deps.sh)",
            )
        {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("basic-runtime-containerd")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let config = d.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [metrics]\n  address = \"\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_cgroup = false\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = d.join("containerd.sock").display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { dir, daemon };
        let start = Instant::now();
        while !c.ctr(&["version"]).status.success() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "containerd did not come up: {}",
                std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        common::make_rootfs(&c.rootfs());
        Some(c)
    }

    fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.path().join("containerd.sock"))
            .args(args);
        common::output(cmd)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `ctr run` with our runtime, its state root inside the tempdir, then `rest`.
    fn run(&self, flags: &[&str], id: &str, cmd: &[&str]) -> Output {
        let runc_root = self.dir.path().join("runc");
        let rootfs = self.rootfs();
        let mut args = vec!["run", "--runtime", "io.containerd.runc.v2"];
        args.extend_from_slice(&["--runc-binary", common::BIN]);
        args.extend_from_slice(&["--runc-root", runc_root.to_str().unwrap()]);
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--rootfs", rootfs.to_str().unwrap(), id]);
        args.extend_from_slice(cmd);
        self.ctr(&args)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Our own daemon, by the pid we started.
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn ctr_runs_containers_through_the_runc_shim() {
    let Some(c) = Containerd::start() else { return };
    let out = c.run(&["--rm"], "hello", &["echo", "hello from ctr"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from ctr\n");
    let out = c.run(&["--rm"], "exit5", &["sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));

    let out = c.run(&["-d"], "bg", &["sleep", "100"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tasks = c.ok(&["task", "ls"]);
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with("bg ") && l.contains("RUNNING")),
        "{tasks}"
    );
    let out = c.ctr(&[
        "task",
        "exec",
        "--exec-id",
        "e1",
        "bg",
        "sh",
        "-c",
        "echo in; exit 2",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "in\n");
    assert_eq!(out.status.code(), Some(2));
    c.ok(&["task", "kill", "--signal", "KILL", "bg"]);
    let start = Instant::now();
    while !c.ok(&["task", "ls"]).contains("STOPPED") {
        assert!(start.elapsed() < Duration::from_secs(10), "bg did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.ok(&["task", "delete", "bg"]);
    c.ok(&["container", "delete", "bg"]);
    let left: Vec<_> = std::fs::read_dir(c.dir.path().join("runc"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    let states: Vec<_> = left
        .iter()
        .flat_map(|ns| std::fs::read_dir(ns).unwrap().flatten())
        .collect();
    assert!(states.is_empty(), "runtime state left behind: {states:?}");
}
