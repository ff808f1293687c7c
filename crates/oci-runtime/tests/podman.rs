//! podman (Debian's, with conmon) driving `basic-runtime` as its OCI runtime: foreground
//! and detached containers, exit codes, stop/kill/rm, terminals and seccomp profiles.
//! Each test has its own throwaway podman storage (vfs), run root, tmp dir and runtime
//! state root, no network, and an image imported from a busybox root filesystem.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Podman {
    dir: tempfile::TempDir,
    runtime: PathBuf,
}

/// podman on this machine needs limits within the hard RLIMIT_NOFILE (MACHINE-NOTES).
const ULIMITS: &[&str] = &[
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=4096:4096",
];
const IMAGE: &str = "localhost/basic-runtime-busybox:latest";

impl Podman {
    fn new() -> Option<Self> {
        if !common::ready()
            || !basic_test_support::prerequisite(
                Path::new("/usr/bin/podman").exists(),
                "podman (scripts/install-deps.sh)",
            )
        {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("basic-runtime-podman")
            .tempdir()
            .unwrap();
        // podman passes its --runtime-flag options to some invocations only (not to
        // `delete`), so the state root is set by a wrapper every invocation goes through.
        let runtime = dir.path().join("runtime");
        let state = dir.path().join("state");
        std::fs::write(
            &runtime,
            format!(
                "#!/bin/sh\nexec {} --root {} \"$@\"\n",
                common::BIN,
                state.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let p = Podman { dir, runtime };
        let rootfs = p.dir.path().join("rootfs");
        common::make_rootfs(&rootfs);
        let tar = p.dir.path().join("rootfs.tar");
        let status = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(status.success());
        p.ok(&["import", tar.to_str().unwrap(), IMAGE]);
        Some(p)
    }

    fn state_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none", "--runtime"])
            .arg(&self.runtime)
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        common::output(self.cmd(args))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `podman run` with the options every container here needs, then `extra`.
    fn container(&self, extra: &[&str]) -> Output {
        let mut args = vec!["run", "--network", "none"];
        args.extend_from_slice(ULIMITS);
        args.extend_from_slice(extra);
        self.run(&args)
    }

    fn container_ok(&self, extra: &[&str]) -> String {
        let out = self.container(extra);
        assert!(
            out.status.success(),
            "podman run {extra:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Nothing of ours is left: no runtime state, no cgroup under libpod_parent.
    fn assert_clean(&self, id: &str) {
        let state = self.state_root().join(id);
        assert!(!state.exists(), "{} left behind", state.display());
        let cg = Path::new("/sys/fs/cgroup/pids/libpod_parent").join(format!("libpod-{id}"));
        assert!(!cg.exists(), "{} left behind", cg.display());
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "--all", "--force", "--time", "0"]);
    }
}

#[test]
fn podman_run_prints_and_passes_exit_codes() {
    let Some(p) = Podman::new() else { return };
    assert_eq!(p.container_ok(&["--rm", IMAGE, "echo", "hello"]), "hello\n");
    let out = p.container(&["--rm", IMAGE, "sh", "-c", "exit 3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The container sees what the spec asked for: its hostname, pid 1, no extra capabilities.
    let out = p.container_ok(&[
        "--rm",
        "--hostname",
        "boxed",
        IMAGE,
        "sh",
        "-c",
        "hostname; echo $$; grep CapEff /proc/self/status",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "boxed");
    assert_eq!(lines[1], "1");
    assert_eq!(
        lines[2], "CapEff:\t00000000800405fb",
        "podman's default capabilities"
    );
    let out = p.container(&["--rm", IMAGE, "no-such-command"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-command"), "{err}");
}

#[test]
fn podman_detached_containers_stop_kill_and_rm() {
    let Some(p) = Podman::new() else { return };
    let id = p
        .container_ok(&["-d", IMAGE, "sleep", "100"])
        .trim()
        .to_string();
    let ps = p.ok(&["ps", "--format", "{{.ID}} {{.Status}}", "--no-trunc"]);
    assert!(ps.contains(&id) && ps.contains("Up"), "{ps}");
    let state = common::state(&p.state_root(), &id);
    assert_eq!(state["status"], "running", "{state}");
    // sleep as pid 1 ignores SIGTERM: stop falls back to SIGKILL after the timeout.
    p.ok(&["stop", "--time", "1", &id]);
    let ps = p.ok(&["ps", "-a", "--format", "{{.ID}} {{.Status}}", "--no-trunc"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    p.ok(&["rm", &id]);
    p.assert_clean(&id);

    let id = p
        .container_ok(&["-d", IMAGE, "sleep", "100"])
        .trim()
        .to_string();
    p.ok(&["kill", &id]);
    assert_eq!(p.ok(&["wait", &id]).trim(), "137");
    p.ok(&["rm", &id]);
    p.assert_clean(&id);

    let id = p
        .container_ok(&[
            "-d",
            IMAGE,
            "sh",
            "-c",
            "trap 'exit 7' TERM; sleep 100 & wait",
        ])
        .trim()
        .to_string();
    p.ok(&["stop", "--time", "10", &id]);
    assert_eq!(
        p.ok(&["wait", &id]).trim(),
        "7",
        "SIGTERM reached the container"
    );
    p.ok(&["rm", &id]);
    p.assert_clean(&id);
}

#[test]
fn podman_run_t_gets_a_terminal_through_the_console_socket() {
    let Some(p) = Podman::new() else { return };
    let out = p.container_ok(&[
        "--rm",
        "-t",
        IMAGE,
        "sh",
        "-c",
        "tty; [ -t 0 ] && [ -t 1 ] && echo both-ttys",
    ]);
    // A terminal turns \n into \r\n.
    assert_eq!(out, "/dev/pts/0\r\nboth-ttys\r\n");
}

#[test]
fn podman_seccomp_profiles_are_enforced() {
    let Some(p) = Podman::new() else { return };
    let profile = p.dir.path().join("deny-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW",
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let script = "mkdir /made 2>/dev/null; echo $?";
    let denied = p.container_ok(&["--rm", "--security-opt", &opt, IMAGE, "sh", "-c", script]);
    assert_eq!(denied, "1\n");
    // podman's own default profile lets mkdir through.
    let allowed = p.container_ok(&["--rm", IMAGE, "sh", "-c", script]);
    assert_eq!(allowed, "0\n");
}

#[test]
fn podman_exec_runs_in_the_container() {
    let Some(p) = Podman::new() else { return };
    let id = p
        .container_ok(&["-d", "--hostname", "execbox", IMAGE, "sleep", "100"])
        .trim()
        .to_string();
    let out = p.ok(&[
        "exec",
        "-e",
        "FOO=bar",
        &id,
        "sh",
        "-c",
        "hostname; echo $FOO",
    ]);
    assert_eq!(out, "execbox\nbar\n");
    let code = p.run(&["exec", &id, "sh", "-c", "exit 4"]).status.code();
    assert_eq!(code, Some(4));
    let out = p.run(&["exec", &id, "no-such-command"]);
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
    assert_eq!(p.ok(&["exec", "-t", &id, "tty"]), "/dev/pts/0\r\n");
    p.ok(&["rm", "--force", "--time", "0", &id]);
    p.assert_clean(&id);
}
