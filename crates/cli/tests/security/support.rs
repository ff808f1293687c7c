//! What the attacks share: a store of their own, hostile images pushed to the
//! harness's registry, host directories that must not change, descriptors
//! leaked into the CLI as a careless caller would, and commands that cannot
//! hang the suite.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use basic_test_support::image::ImageBuilder;

use crate::common::basic_docker;

/// The binary under test (the build output; attacks on the binary itself use a copy).
pub const BIN: &str = env!("CARGO_BIN_EXE_basic-docker");

/// A name no other test, and no other run of this suite, uses.
pub fn unique(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One test's own store (`--root`), and the registry hostile images go through.
pub struct Store {
    dir: tempfile::TempDir,
    registry: String,
    busybox: String,
}

impl Store {
    /// `None` (the test returns) when the harness or root is missing and skipping is allowed.
    pub fn new() -> Option<Store> {
        let harness = basic_test_support::harness()?;
        if !basic_test_support::require_root() {
            return None;
        }
        Some(Store {
            dir: tempfile::Builder::new()
                .prefix("basic-docker-attack-store-")
                .tempdir()
                .unwrap(),
            busybox: harness.reference("busybox_latest"),
            registry: harness.open,
        })
    }

    /// The store's root.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `basic-docker --root ROOT ARGS...`, waited for.
    pub fn docker(&self, args: &[&str]) -> Output {
        basic_docker(self.root(), args)
    }

    /// The same, insisting on success; returns stdout, trimmed.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "basic-docker {args:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The harness's busybox, pulled into this store.
    pub fn busybox(&self) -> String {
        self.ok(&["pull", "-q", &self.busybox]);
        self.busybox.clone()
    }

    /// `image` pushed to the registry as `hostile/NAME` and pulled into this store.
    pub fn image(&self, image: ImageBuilder, name: &str) -> String {
        let reference = image.push(&self.registry, &format!("hostile/{name}"));
        self.ok(&["pull", "-q", &reference]);
        reference
    }

    /// A running container named `name` to exec into: `image` running `sleep 1000`.
    pub fn sleeper(&self, image: &str, name: &str) {
        self.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            image,
            "sleep",
            "1000",
        ]);
    }

    /// `basic-docker` from `binary` (a copy of the build output) on this store.
    pub fn command_with(&self, binary: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(binary);
        cmd.arg("--root").arg(self.root()).args(args);
        cmd
    }

    /// `basic-docker ARGS...` on this store, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        self.command_with(Path::new(BIN), args)
    }

    /// `inspect NAME`'s one document.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let text = self.ok(&["inspect", name]);
        let mut all: serde_json::Value = serde_json::from_str(&text).unwrap();
        all[0].take()
    }

    /// The full id of container `name`.
    pub fn id_of(&self, name: &str) -> String {
        let id = self.inspect(name)["Id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(id.len(), 64, "inspect gave {id:?} for {name}");
        id
    }

    /// The container's merged root as the host sees it (while it is mounted).
    pub fn rootfs_of(&self, id: &str) -> PathBuf {
        self.root().join("containers").join(id).join("rootfs")
    }

    /// Its log so far (`logs`, both streams).
    pub fn logs(&self, name: &str) -> String {
        let out = self.docker(&["logs", name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// Polls the log until it holds `text`, for up to `timeout`; returns the log.
    pub fn wait_for_log(&self, name: &str, text: &str, timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        loop {
            let log = self.logs(name);
            if log.contains(text) || Instant::now() > until {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Runs `cmd` with its output in files (a container may keep inherited pipes
/// open), killing it after `timeout` rather than hanging the suite.
pub fn run_within(mut cmd: Command, timeout: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap())
        .spawn()
        .expect("starting the command");
    let status = wait_within(&mut child, timeout);
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// Waits for `child`, killing it once `timeout` has passed.
pub fn wait_within(child: &mut std::process::Child, timeout: Duration) -> ExitStatus {
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let status = basic_test_support::bounded::wait_within(
                child,
                Duration::from_secs(10),
                "the killed command",
            );
            eprintln!("killed after {timeout:?}: {status}");
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Both streams of `out`, for messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A directory on the host, under `/tmp`, that an attack points at: everything
/// in it is recorded so that a test can show nothing was created or changed.
pub struct HostDir {
    dir: tempfile::TempDir,
}

impl HostDir {
    /// A new, empty, unique directory.
    pub fn new(what: &str) -> HostDir {
        HostDir {
            dir: tempfile::Builder::new()
                .prefix(&format!("basic-docker-attack-{what}-"))
                .tempdir_in("/tmp")
                .unwrap(),
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Its path as text, for symlink targets and scripts.
    pub fn text(&self) -> String {
        self.path().to_str().unwrap().to_string()
    }

    /// Every entry below it: type, mode, owner, size and (files) contents; symlinks
    /// are recorded, never followed.
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut entries = BTreeMap::new();
        record(self.path(), self.path(), &mut entries);
        entries
    }

    /// Panics, listing what differs, unless the directory is as `before`.
    #[track_caller]
    pub fn assert_unchanged(&self, before: &BTreeMap<String, String>, context: &str) {
        let after = self.snapshot();
        if &after == before {
            return;
        }
        let mut changes = Vec::new();
        for (path, now) in &after {
            match before.get(path) {
                None => changes.push(format!("created {path}: {now}")),
                Some(was) if was != now => changes.push(format!("changed {path}: {was} -> {now}")),
                _ => {}
            }
        }
        for path in before.keys().filter(|p| !after.contains_key(*p)) {
            changes.push(format!("removed {path}"));
        }
        panic!(
            "the host directory {} changed:\n  {}\n{context}",
            self.path().display(),
            changes.join("\n  ")
        );
    }
}

fn record(base: &Path, dir: &Path, entries: &mut BTreeMap<String, String>) {
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in list.flatten() {
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        let kind = meta.file_type();
        let what = if kind.is_symlink() {
            format!(
                "symlink -> {}",
                std::fs::read_link(&path).unwrap().display()
            )
        } else if kind.is_dir() {
            "directory".to_string()
        } else if kind.is_file() {
            let contents = std::fs::read(&path).unwrap_or_default();
            format!("file {:?}", String::from_utf8_lossy(&contents))
        } else if kind.is_char_device() || kind.is_block_device() {
            format!("device {:x}", meta.rdev())
        } else {
            "other".to_string()
        };
        entries.insert(
            path.strip_prefix(base).unwrap().display().to_string(),
            format!(
                "{what} mode {:o} owner {}:{}",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ),
        );
        if kind.is_dir() {
            record(base, &path, entries);
        }
    }
}

/// The descriptor number a careless caller leaks.
pub const LEAKED_FD: i32 = 7;

/// A host directory holding a secret file, open in this process, handed to
/// commands as fd 7 without close-on-exec: what a caller that forgot
/// `O_CLOEXEC` passes to every program it starts.
pub struct Leak {
    dir: HostDir,
    open: File,
    /// The secret file's contents.
    pub secret: String,
}

/// The secret file's name inside the leaked directory.
pub const MARKER: &str = "host-marker";

impl Leak {
    /// A new directory with its secret, opened.
    pub fn new() -> Leak {
        let dir = HostDir::new("leaked");
        let secret = unique("host-secret");
        std::fs::write(dir.path().join(MARKER), &secret).unwrap();
        let open = File::open(dir.path()).unwrap();
        Leak { dir, open, secret }
    }

    /// The leaked directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Makes `cmd` start with the directory as its fd 7.
    pub fn hand_to(&self, cmd: &mut Command) {
        let fd = self.open.as_raw_fd();
        // SAFETY: dup2 and fcntl are async-signal-safe; they give the child fd 7
        // without close-on-exec, which is the leak under test.
        unsafe {
            cmd.pre_exec(move || {
                // dup2 onto itself keeps close-on-exec: clear it then.
                let leaked = if fd == LEAKED_FD {
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    libc::dup2(fd, LEAKED_FD)
                };
                if leaked < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Whether `output` (of [`FD_PROBE`]) shows anything of the leaked
    /// directory: the secret, a listing naming the marker, or a `cd` into it.
    pub fn seen_in(&self, output: &str) -> bool {
        output.contains(&self.secret)
            || output
                .lines()
                .any(|l| l.trim() == MARKER || l.starts_with("cd-ok"))
    }
}

/// A busybox shell script that reports what fd 7 gives it, between
/// `probe-start` and `probe-end` (`fd7-open` when it has one).
pub const FD_PROBE: &str = "echo probe-start; \
    [ -e /proc/self/fd/7 ] && echo \"fd7-open $(readlink /proc/self/fd/7)\"; \
    ls /proc/self/fd/7/ 2>&1; \
    cat /proc/self/fd/7/host-marker 2>&1; echo; \
    cd /proc/self/fd/7 2>/dev/null && echo \"cd-ok $(ls)\"; \
    echo probe-end";

/// The probe run on the host with the leak: it must see the directory, or the
/// container runs prove nothing.
#[track_caller]
pub fn assert_the_leak_is_visible_on_the_host(leak: &Leak) {
    let mut cmd = Command::new("/bin/busybox");
    cmd.args(["sh", "-c", FD_PROBE]);
    leak.hand_to(&mut cmd);
    let out = run_within(cmd, Duration::from_secs(10));
    let shown = text(&out);
    assert!(
        shown.contains("fd7-open") && shown.contains(&leak.secret),
        "positive control: the probe on the host did not see the leaked fd 7:\n{shown}"
    );
}

/// A busybox shell script that says where its working directory is: it climbs
/// `..` physically to the top and compares that with `/`. Inside the container
/// the top is the container's root; a directory of the host climbs to another.
pub const CWD_PROBE: &str = "echo cwd-probe-start; \
    root=$(stat -c %d:%i /); \
    echo \"listing: $(ls -a | tr '\\n' ' ')\"; \
    i=0; while [ $i -lt 64 ]; do cd -P .. 2>/dev/null; i=$((i+1)); done; \
    echo \"top=$(stat -c %d:%i .) root=$root\"; \
    echo \"top-listing: $(ls -a | tr '\\n' ' ')\"";

/// Judges a run of [`CWD_PROBE`] with working directory `dir`: `Ok` when the
/// engine refused it (saying which directory) or the probe stayed inside the
/// container; `Err` says what the process saw.
pub fn cwd_stayed_inside(out: &Output, dir: &str) -> Result<(), String> {
    let shown = text(out);
    if !shown.contains("cwd-probe-start") {
        if !out.status.success() && shown.contains(dir) {
            return Ok(());
        }
        return Err(format!(
            "neither ran the probe nor refused {dir} naming it ({}):\n{shown}",
            out.status
        ));
    }
    let line = shown
        .lines()
        .find(|l| l.starts_with("top="))
        .ok_or_else(|| format!("the probe did not finish:\n{shown}"))?;
    let (top, root) = line
        .strip_prefix("top=")
        .and_then(|l| l.split_once(" root="))
        .ok_or_else(|| format!("unexpected probe line {line:?}"))?;
    if top == root {
        Ok(())
    } else {
        Err(format!(
            "working directory {dir} was outside the container's root:\n{shown}"
        ))
    }
}
