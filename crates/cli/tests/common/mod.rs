//! Running the `basic-docker` binary as a user does, shared by the CLI tests.
#![allow(dead_code)]

pub mod service;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use basic_test_support::bounded::{COMMAND_LIMIT, output_within, wait_with_output_within};

/// How long a local tool (tar, busybox, curl) may take.
pub const LOCAL_TOOL_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The engine's setting for prepared network namespaces per network.
pub const POOL_ENV: &str = "BASIC_DOCKER_NETNS_POOL";

/// `basic-docker --root ROOT ARGS...`, waited for (at most [`COMMAND_LIMIT`]).
///
/// Tests run with no prepared network namespaces (`.cargo/config.toml` sets [`POOL_ENV`]
/// to 0: many test stores are never deleted); `run_network_pool.rs` tests the pool with
/// [`basic_docker_pool`], and drains it.
#[track_caller]
pub fn basic_docker(root: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_basic-docker"));
    command.arg("--root").arg(root).args(args);
    output_within(
        &mut command,
        COMMAND_LIMIT,
        &format!("basic-docker {args:?}"),
    )
}

/// [`basic_docker`] with `pool` prepared network namespaces per network.
#[track_caller]
pub fn basic_docker_pool(root: &Path, pool: usize, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_basic-docker"));
    command
        .arg("--root")
        .arg(root)
        .args(args)
        .env(POOL_ENV, pool.to_string());
    output_within(
        &mut command,
        COMMAND_LIMIT,
        &format!("basic-docker {args:?}"),
    )
}

/// The same, with `input` on its standard input.
#[track_caller]
pub fn with_stdin(root: &Path, args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start basic-docker");
    child.stdin.take().unwrap().write_all(input).unwrap();
    wait_with_output_within(child, COMMAND_LIMIT, &format!("basic-docker {args:?}"))
}

/// Asserts the command succeeded and returns its standard output.
#[track_caller]
pub fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// [`stdout`], trimmed.
#[track_caller]
pub fn ok(out: Output) -> String {
    stdout(&out).trim().to_string()
}

/// Whether the store's `tmp/` holds nothing: no ingest left behind.
pub fn tmp_is_empty(root: &Path) -> bool {
    std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

/// A rootfs tarball made from Debian's busybox-static (`/bin/busybox` and its
/// applets as symlinks), for `import`.
pub fn busybox_rootfs_tar(dir: &Path) -> std::path::PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "www", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let list = output_within(
        Command::new("/bin/busybox").arg("--list"),
        LOCAL_TOOL_LIMIT,
        "busybox --list",
    );
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
        }
    }
    std::fs::write(root.join("www/index.html"), "served by an imported image\n").unwrap();
    let tar = dir.join("rootfs.tar");
    let ok = output_within(
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        LOCAL_TOOL_LIMIT,
        "tar of the busybox rootfs",
    )
    .status
    .success();
    assert!(ok, "tar of the busybox rootfs");
    tar
}

/// One store per test binary with the harness's busybox pulled into it once;
/// `None` (the test returns) when the harness or root is missing and skipping
/// is allowed.
pub fn busybox_store() -> Option<&'static (tempfile::TempDir, String)> {
    static STORE: std::sync::OnceLock<Option<(tempfile::TempDir, String)>> =
        std::sync::OnceLock::new();
    STORE
        .get_or_init(|| {
            let h = basic_test_support::harness()?;
            if !basic_test_support::require_root() {
                return None;
            }
            let dir = tempfile::tempdir().unwrap();
            let image = h.reference("busybox_latest");
            ok(basic_docker(dir.path(), &["pull", "-q", &image]));
            Some((dir, image))
        })
        .as_ref()
}

/// Removes containers, then networks, then images, however a test ends.
pub struct Cleanup<'a> {
    root: &'a Path,
    containers: Vec<&'a str>,
    networks: Vec<&'a str>,
    images: Vec<&'a str>,
}

impl<'a> Cleanup<'a> {
    /// Cleans up these containers of the store at `root`.
    pub fn new(root: &'a Path, containers: &[&'a str]) -> Self {
        Cleanup {
            root,
            containers: containers.to_vec(),
            networks: Vec::new(),
            images: Vec::new(),
        }
    }

    /// And these networks.
    pub fn networks(mut self, networks: &[&'a str]) -> Self {
        self.networks = networks.to_vec();
        self
    }

    /// And these images.
    pub fn images(mut self, images: &[&'a str]) -> Self {
        self.images = images.to_vec();
        self
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = basic_docker(self.root, &["rm", "-f", name]);
        }
        for network in &self.networks {
            let _ = basic_docker(self.root, &["network", "rm", network]);
        }
        for image in &self.images {
            let _ = basic_docker(self.root, &["rmi", image]);
        }
    }
}

/// The body `curl` gets from `url`, retried for up to 5 s while the server starts.
pub fn fetch(url: &str) -> String {
    let mut body = String::new();
    for _ in 0..50 {
        let out = output_within(
            Command::new("curl").args(["-s", "--max-time", "2", url]),
            LOCAL_TOOL_LIMIT,
            "curl",
        );
        body = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    body
}
