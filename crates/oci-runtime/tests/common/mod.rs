//! Fixtures: a busybox root filesystem and bundles for the `basic-runtime` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_basic-runtime");

/// Root, and busybox-static installed by scripts/install-deps.sh (via the harness).
pub fn ready() -> bool {
    basic_test_support::require_root()
        && basic_test_support::prerequisite(
            Path::new("/bin/busybox").exists(),
            "/bin/busybox (Debian's busybox-static, scripts/install-deps.sh)",
        )
}

/// A unique name for this test process.
pub fn id(name: &str) -> String {
    format!("ort-{name}-{}", std::process::id())
}

/// A busybox root filesystem at `dir`: /bin/busybox with its applets as symlinks.
pub fn make_rootfs(dir: &Path) {
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    let list = basic_test_support::bounded::output_within(
        Command::new("/bin/busybox").arg("--list"),
        std::time::Duration::from_secs(60),
        "busybox --list",
    );
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
        }
    }
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

/// A bundle in `dir` running `args` with docker's defaults, its rootfs at `dir/rootfs`.
pub fn make_bundle(dir: &Path, args: &[&str]) -> PathBuf {
    make_rootfs(&dir.join("rootfs"));
    let mut spec =
        basic_runtime::default_spec(args.iter().map(|s| s.to_string()).collect(), vec![], "/")
            .unwrap();
    let mut root = oci_spec::runtime::Root::default();
    root.set_path(PathBuf::from("rootfs"));
    spec.set_root(Some(root));
    spec.save(dir.join("config.json")).unwrap();
    dir.to_path_buf()
}

/// Runs the binary with `--root state` and `args`.
pub fn runtime(state: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--root").arg(state).args(args);
    output(cmd)
}

/// Like `Command::output`, but through files: a created container's init inherits the
/// runtime's stdout and stderr and keeps them open, so pipes would not see end-of-file
/// when `create` returns (runc behaves the same).
/// Waited for at most [`COMMAND_LIMIT`](basic_test_support::bounded::COMMAND_LIMIT).
pub fn output(mut cmd: Command) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let what = format!("{:?}", cmd.get_args().collect::<Vec<_>>());
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = basic_test_support::bounded::wait_within(
        &mut child,
        basic_test_support::bounded::COMMAND_LIMIT,
        &format!("basic-runtime {what}"),
    );
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// Runs it and insists on success; returns stdout.
pub fn ok(state: &Path, args: &[&str]) -> String {
    let out = runtime(state, args);
    assert!(
        out.status.success(),
        "basic-runtime {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs it and insists on failure; returns stderr.
pub fn fails(state: &Path, args: &[&str]) -> String {
    let out = runtime(state, args);
    assert!(!out.status.success(), "basic-runtime {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

/// `state` as JSON.
pub fn state(state_root: &Path, id: &str) -> serde_json::Value {
    serde_json::from_str(&ok(state_root, &["state", id])).unwrap()
}
