//! Shared fixtures: a busybox rootfs and privilege gating.
//!
//! Containers and execs in these tests say `allow_multithreaded_fork(true)`: libtest runs
//! each test in a thread of its own, beside the main thread and the other tests, so the
//! fork rule (`basic_runtime::fork_rule`) would refuse every one of them. The risk taken is
//! a test hanging if another test's thread holds a lock at the moment of a fork that the
//! child then needs; the container side takes few (glibc keeps its allocator consistent
//! across fork). `tests/fork_rule.rs` runs without libtest and without the opt-out.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use basic_runtime::{Container, ExitStatus, Spec, default_spec};

/// Returns false (skip) when not root and privileged tests are optional; panics when
/// `BASIC_DOCKER_REQUIRE_PRIVILEGED` is set and we are not root.
pub fn privileged() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("BASIC_DOCKER_REQUIRE_PRIVILEGED").is_some() {
        panic!("BASIC_DOCKER_REQUIRE_PRIVILEGED is set but the tests do not run as root");
    }
    eprintln!("skipping: needs root");
    false
}

fn busybox() -> PathBuf {
    let p = PathBuf::from("/bin/busybox");
    if !p.exists() {
        let ok = std::process::Command::new("apt-get")
            .args(["install", "-y", "busybox-static"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "busybox-static is missing and apt-get could not install it"
        );
    }
    p
}

/// A busybox root filesystem shared (read-only in spirit) by the tests of one binary.
pub fn rootfs() -> &'static Path {
    static ROOT: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &ROOT
        .get_or_init(|| {
            let dir = tempfile::Builder::new()
                .prefix("basic-runtime-rootfs")
                .tempdir()
                .unwrap();
            let root = dir.path().join("rootfs");
            for d in [
                "bin",
                "proc",
                "dev",
                "sys",
                "tmp",
                "etc",
                "root",
                "data",
                "sys/fs/cgroup",
            ] {
                std::fs::create_dir_all(root.join(d)).unwrap();
            }
            std::fs::copy(busybox(), root.join("bin/busybox")).unwrap();
            let list = std::process::Command::new(root.join("bin/busybox"))
                .arg("--list")
                .output()
                .unwrap();
            for applet in String::from_utf8_lossy(&list.stdout).lines() {
                if applet != "busybox" {
                    let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
                }
            }
            std::fs::write(
                root.join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n",
            )
            .unwrap();
            std::fs::write(
                root.join("etc/group"),
                "root:x:0:\nuser:x:1000:\nextra:x:2000:user\n",
            )
            .unwrap();
            std::fs::set_permissions(
                root.join("tmp"),
                std::os::unix::fs::PermissionsExt::from_mode(0o1777),
            )
            .unwrap();
            (dir, root)
        })
        .1
}

/// docker's default spec running `sh -c script`.
pub fn sh(script: &str) -> Spec {
    default_spec(vec!["sh".into(), "-c".into(), script.into()], vec![], "/").unwrap()
}

/// A unique container id for this test.
pub fn id(name: &str) -> String {
    format!("t-{name}-{}", std::process::id())
}

/// Runs `spec` and returns its status and captured stdout (redirected to a file in the
/// rootfs's /tmp via a bind mount of a per-test directory).
pub fn run(name: &str, mut spec: Spec) -> (ExitStatus, String) {
    let out = tempfile::tempdir().unwrap();
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination(PathBuf::from("/out"));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(out.path().to_path_buf()));
    m.set_options(Some(vec!["rbind".into(), "rw".into()]));
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    let process = spec.process_mut().as_mut().unwrap();
    let args = process.args().clone().unwrap();
    // Wrap: the command's stdout goes to /out/stdout so the test can read it.
    let script = args.last().unwrap().clone();
    let mut new_args = args.clone();
    *new_args.last_mut().unwrap() = format!("exec >/out/stdout 2>/out/stderr; {script}");
    process.set_args(Some(new_args));
    let state = tempfile::tempdir().unwrap();
    let status = Container::builder(id(name), spec, rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(state.path())
        .forward_signals(false)
        .build()
        .unwrap()
        .run()
        .unwrap_or_else(|e| panic!("{name}: {}", chain(&e)));
    let stdout = std::fs::read_to_string(out.path().join("stdout")).unwrap_or_default();
    let stderr = std::fs::read_to_string(out.path().join("stderr")).unwrap_or_default();
    if !stderr.is_empty() {
        eprintln!("{name} stderr: {stderr}");
    }
    (status, stdout)
}

pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s += &format!(": {c}");
        cur = c.source();
    }
    s
}
