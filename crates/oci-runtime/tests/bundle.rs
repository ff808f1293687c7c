//! The binary driven directly, as an engine would: create, state, start, kill, delete, run,
//! and the errors users see.

mod common;

use std::time::{Duration, Instant};

use common::{fails, make_bundle, ok, ready, runtime, state};

fn wait_status(root: &std::path::Path, id: &str, want: &str) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let s = state(root, id);
        if s["status"] == want {
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{id} stayed {}, wanted {want}",
            s["status"]
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn create_start_kill_delete() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(&dir.path().join("bundle"), &["sleep", "30"]);
    let root = dir.path().join("state");
    let id = common::id("cycle");
    let pid_file = dir.path().join("pid");
    let b = bundle.to_str().unwrap();
    ok(
        &root,
        &[
            "create",
            "--bundle",
            b,
            "--pid-file",
            pid_file.to_str().unwrap(),
            &id,
        ],
    );
    let s = state(&root, &id);
    assert_eq!(s["status"], "created", "{s}");
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["ociVersion"], "1.0.2");
    assert_eq!(s["bundle"], b);
    let pid = s["pid"].as_i64().unwrap();
    assert!(pid > 0, "{s}");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(s["created"].as_str().unwrap().ends_with('Z'), "{s}");

    ok(&root, &["start", &id]);
    let s = state(&root, &id);
    assert_eq!(s["status"], "running", "{s}");
    assert_eq!(s["pid"].as_i64(), Some(pid));
    let ps = ok(&root, &["ps", "--format", "json", &id]);
    let pids: Vec<i64> = serde_json::from_str(&ps).unwrap();
    assert_eq!(pids, vec![pid]);

    let err = fails(&root, &["delete", &id]);
    assert!(
        err.contains(&id) && err.contains("running") && err.contains("--force"),
        "{err}"
    );
    ok(&root, &["kill", &id, "KILL"]);
    let s = wait_status(&root, &id, "stopped");
    assert_eq!(s["pid"], 0);
    let err = fails(&root, &["kill", &id, "TERM"]);
    assert!(err.contains("not running"), "{err}");
    ok(&root, &["delete", &id]);
    assert!(!root.join(&id).exists());
    let err = fails(&root, &["state", &id]);
    assert!(
        err.contains(&format!("container {id} does not exist")),
        "{err}"
    );
}

#[test]
fn delete_force_stops_a_running_container() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(&dir.path().join("bundle"), &["sleep", "30"]);
    let root = dir.path().join("state");
    let id = common::id("force");
    ok(&root, &["create", "-b", bundle.to_str().unwrap(), &id]);
    ok(&root, &["start", &id]);
    ok(&root, &["pause", &id]);
    assert_eq!(state(&root, &id)["status"], "paused");
    ok(&root, &["resume", &id]);
    assert_eq!(state(&root, &id)["status"], "running");
    ok(&root, &["delete", "--force", &id]);
    assert!(!root.join(&id).exists());
    let cgroup = std::path::Path::new("/sys/fs/cgroup/pids/basic-docker").join(&id);
    assert!(!cgroup.exists(), "{} left behind", cgroup.display());
}

#[test]
fn the_same_id_twice_and_unknown_ids_fail_clearly() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(&dir.path().join("bundle"), &["sleep", "30"]);
    let root = dir.path().join("state");
    let id = common::id("twice");
    let b = bundle.to_str().unwrap();
    ok(&root, &["create", "--bundle", b, &id]);
    let err = fails(&root, &["create", "--bundle", b, &id]);
    assert!(
        err.contains(&format!("container {id} already exists")),
        "{err}"
    );
    assert_eq!(state(&root, &id)["status"], "created");
    // The spec: a container that is not stopped (created included) is deleted only with
    // --force; without, it fails and stays as it was.
    let err = fails(&root, &["delete", &id]);
    assert!(
        err.contains(&id) && err.contains("is created") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(state(&root, &id)["status"], "created");
    ok(&root, &["delete", "--force", &id]);

    for cmd in [
        &["start", "ghost"][..],
        &["kill", "ghost"],
        &["delete", "ghost"],
    ] {
        let err = fails(&root, cmd);
        assert!(
            err.contains("container ghost does not exist"),
            "{cmd:?}: {err}"
        );
    }
    ok(&root, &["delete", "--force", "ghost"]);
    let err = fails(&root, &["create", "--bundle", "/nonexistent-bundle", "x"]);
    assert!(err.contains("/nonexistent-bundle"), "{err}");
    let err = fails(&root, &["kill", &id, "SIGNOPE"]);
    assert!(err.contains("SIGNOPE"), "{err}");
}

#[test]
fn run_waits_and_passes_the_exit_code_through() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(
        &dir.path().join("bundle"),
        &["sh", "-c", "echo out; exit 3"],
    );
    let root = dir.path().join("state");
    let out = runtime(
        &root,
        &[
            "run",
            "--bundle",
            bundle.to_str().unwrap(),
            &common::id("run"),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "state left behind"
    );
}

#[test]
fn run_starts_the_process_with_default_signal_dispositions() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(&dir.path().join("bundle"), &["cat", "/proc/self/status"]);
    let root = dir.path().join("state");
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.arg("--root").arg(&root).args([
        "run",
        "--bundle",
        bundle.to_str().unwrap(),
        &common::id("signals"),
    ]);
    // A caller that ignores SIGHUP (`nohup`) and SIGPIPE and blocks SIGUSR1: runc starts
    // the container's process with default dispositions all the same, and so must we.
    // SAFETY: signal and sigprocmask are async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal};
            signal(Signal::SIGHUP, SigHandler::SigIgn)?;
            signal(Signal::SIGPIPE, SigHandler::SigIgn)?;
            let mut usr1 = SigSet::empty();
            usr1.add(Signal::SIGUSR1);
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&usr1), None)?;
            Ok(())
        });
    }
    let out = common::output(cmd);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        let hex = status.lines().find_map(|l| l.strip_prefix(name)).unwrap();
        u64::from_str_radix(hex.trim(), 16).unwrap()
    };
    assert_eq!(field("SigIgn:"), 0, "ignored: {status}");
    assert_eq!(field("SigBlk:"), 0, "blocked: {status}");
}

#[test]
fn errors_reach_the_log_file_as_json_lines() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(&dir.path().join("bundle"), &["no-such-command"]);
    let root = dir.path().join("state");
    let log = dir.path().join("log.json");
    let id = common::id("log");
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.args([
        "--root",
        root.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
    ])
    .args([
        "--log-format",
        "json",
        "create",
        "--bundle",
        bundle.to_str().unwrap(),
        &id,
    ]);
    let out = common::output(cmd);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no-such-command"), "{stderr}");
    let text = std::fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert!(
        line["msg"]
            .as_str()
            .unwrap()
            .contains("executable file not found"),
        "{line}"
    );
    assert!(line["time"].is_string());
    assert!(!root.join(&id).exists(), "a failed create leaves no state");

    let err = fails(&root, &["--systemd-cgroup", "state", &id]);
    assert!(err.contains("cgroupfs"), "{err}");
}

#[test]
fn version_and_features() {
    let out = std::process::Command::new(common::BIN)
        .arg("-v")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("basic-runtime version "), "{text}");
    let f: serde_json::Value =
        serde_json::from_str(&ok(std::path::Path::new("/tmp"), &["features"])).unwrap();
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);
    assert!(f["linux"]["namespaces"].as_array().unwrap().len() >= 7);
}

#[test]
fn preserved_fds_reach_the_container_and_no_pivot_runs() {
    if !ready() {
        return;
    }
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(
        &dir.path().join("bundle"),
        &["sh", "-c", "echo through-fd-3 >&3; ls /proc/self/fd"],
    );
    let root = dir.path().join("state");
    let passed = dir.path().join("passed");
    let file = std::fs::File::create(&passed).unwrap();
    let raw = file.as_raw_fd();
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.arg("--root").arg(&root).args([
        "run",
        "--no-pivot",
        "--preserve-fds",
        "1",
        "--bundle",
        bundle.to_str().unwrap(),
        &common::id("fds"),
    ]);
    // SAFETY: only dup2 and fcntl, which are async-signal-safe, between fork and exec.
    // dup2 onto itself would keep the close-on-exec flag std sets, hence the fcntl.
    unsafe {
        cmd.pre_exec(move || {
            let ok = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(raw, 3) >= 0
            };
            if ok {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let out = common::output(cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&passed).unwrap(), "through-fd-3\n");
    // stdio, the preserved fd, and the one ls opens for /proc/self/fd: nothing else leaked.
    let fds: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3", "4"],
        "open descriptors in the container"
    );
}

#[test]
fn run_relays_a_terminal_to_the_callers_own() {
    if !ready() {
        return;
    }
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(&dir.path().join("bundle"), &["sh", "-c", "tty; exit 6"]);
    let config = bundle.join("config.json");
    let mut spec = oci_spec::runtime::Spec::load(&config).unwrap();
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_terminal(Some(true));
    spec.save(&config).unwrap();
    // The caller's terminal: the binary gets the slave as stdio, the test reads the master.
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = std::fs::File::from(pty.slave);
    let mut child = std::process::Command::new(common::BIN)
        .arg("--root")
        .arg(dir.path().join("state"))
        .args([
            "run",
            "--bundle",
            bundle.to_str().unwrap(),
            &common::id("tty"),
        ])
        .stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap())
        .spawn()
        .unwrap();
    drop(slave);
    let status = basic_test_support::bounded::wait_within(
        &mut child,
        basic_test_support::bounded::COMMAND_LIMIT,
        "basic-runtime run on a terminal",
    );
    let mut out = Vec::new();
    // Ends with EIO once nobody holds the slave any more.
    let _ = std::fs::File::from(pty.master).read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(status.code(), Some(6), "{out}");
    assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");
}

#[test]
fn update_changes_a_running_containers_limits() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = make_bundle(&dir.path().join("bundle"), &["sleep", "30"]);
    let id = common::id("update");
    let rel = format!("basic-docker-test/{id}");
    // Memory and memory+swap equal, as containerd sets them for a kubelet's limit.
    let config = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    spec["linux"]["cgroupsPath"] = rel.clone().into();
    spec["linux"]["resources"]["memory"] = serde_json::json!({"limit": 64 << 20, "swap": 64 << 20});
    std::fs::write(&config, serde_json::to_vec(&spec).unwrap()).unwrap();
    let root = dir.path().join("state");
    let b = bundle.to_str().unwrap();
    ok(&root, &["run", "--detach", "--bundle", b, &id]);
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let limit_file = if v2 {
        format!("/sys/fs/cgroup/{rel}/memory.max")
    } else {
        format!("/sys/fs/cgroup/memory/{rel}/memory.limit_in_bytes")
    };
    let limit = || {
        std::fs::read_to_string(&limit_file)
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(limit(), (64 << 20).to_string());

    // Raised above the memory+swap limit of before (the order matters on v1), from stdin
    // as containerd's shim sends it; then lowered, from a file.
    let mut cmd = std::process::Command::new(common::BIN);
    cmd.arg("--root")
        .arg(&root)
        .args(["update", "--resources=-", &id]);
    let json = serde_json::json!({"memory": {"limit": 128 << 20, "swap": 128 << 20}});
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        &mut child.stdin.take().unwrap(),
        json.to_string().as_bytes(),
    )
    .unwrap();
    let out = basic_test_support::bounded::wait_with_output_within(
        child,
        Duration::from_secs(30),
        "basic-runtime update",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(limit(), (128 << 20).to_string());
    let file = dir.path().join("resources.json");
    std::fs::write(
        &file,
        r#"{"memory": {"limit": 33554432, "swap": 33554432}}"#,
    )
    .unwrap();
    ok(
        &root,
        &["update", "--resources", file.to_str().unwrap(), &id],
    );
    assert_eq!(limit(), (32 << 20).to_string());
    assert_eq!(state(&root, &id)["status"], "running");

    // Bad input is named and changes nothing.
    std::fs::write(&file, r#"{"memory": {"limit": "lots"}}"#).unwrap();
    let err = fails(
        &root,
        &["update", "--resources", file.to_str().unwrap(), &id],
    );
    assert!(
        err.contains("not an OCI linux.resources JSON object"),
        "{err}"
    );
    let err = fails(&root, &["update", &id]);
    assert!(err.contains("--resources FILE"), "{err}");
    assert_eq!(limit(), (32 << 20).to_string());

    ok(&root, &["kill", &id, "KILL"]);
    wait_status(&root, &id, "stopped");
    std::fs::write(&file, r#"{"memory": {"limit": 67108864}}"#).unwrap();
    let err = fails(
        &root,
        &["update", "--resources", file.to_str().unwrap(), &id],
    );
    assert!(err.contains(&id) && err.contains("stopped"), "{err}");
    ok(&root, &["delete", &id]);
    let err = fails(
        &root,
        &["update", "--resources", file.to_str().unwrap(), &id],
    );
    assert!(err.contains("does not exist"), "{err}");
}
