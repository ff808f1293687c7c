//! The store and the state are private: a local user who is not root reads no
//! container's environment, log or state, lists no store, and runs no setuid program
//! of an image as root, through the layers, a container's root or `image mount`.
//! Each attack is also shown to work where the protection is taken away (a scratch
//! copy of the program), so its failure here is the protection's doing. A store made
//! wide by an older version is tightened by the next command, and keeps working.

mod common;

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use basic_test_support::image::ImageBuilder;
use basic_test_support::programs::static_program;
use basic_test_support::{harness, require_root};
use common::{Cleanup, basic_docker, ok};

/// Where the CLI keeps run-time state (shared with other engines on this machine: only
/// the entries of the test's own containers are looked at).
const STATE_DIR: &str = "/run/basic-docker";

/// Prints its effective uid: run setuid-root, it says 0.
const EUID_C: &str = r#"#include <stdio.h>
#include <unistd.h>
int main(void) { printf("euid=%d\n", (int)geteuid()); return 0; }
"#;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs `args` as `nobody` (uid and gid 65534, no supplementary groups), a local user
/// with no business here. The child drops root with setgroups, setgid and setuid before
/// it execs, so even the exec's own path lookup is made without root's capabilities
/// (`setpriv` keeps them until its execve).
/// An `Err` is an exec that failed (a program nobody may run).
fn as_nobody(args: &[&str]) -> std::io::Result<Output> {
    use std::os::unix::process::CommandExt as _;
    // std's Command calls setgroups(0) itself when root sets a uid without groups.
    let child = Command::new(args[0])
        .args(&args[1..])
        .uid(65534)
        .gid(65534)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    Ok(basic_test_support::bounded::wait_with_output_within(
        child,
        basic_test_support::bounded::COMMAND_LIMIT,
        &format!("{args:?} as nobody"),
    ))
}

/// Asserts that `nobody` running `args` fails, and does not see `secret` (when given).
#[track_caller]
fn denied(args: &[&str], secret: Option<&str>) {
    let out = match as_nobody(args) {
        Ok(out) => out,
        Err(e) => {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied,
                "{args:?}: {e}"
            );
            return;
        }
    };
    let seen = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success(),
        "{args:?} as nobody succeeded: {seen}"
    );
    if let Some(secret) = secret {
        assert!(
            !seen.contains(secret),
            "{args:?} as nobody showed the secret"
        );
    }
    assert!(!seen.contains("euid=0"), "{args:?} ran as root: {seen}");
}

/// The per-mount options of the mount at `target`.
fn mount_options(target: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .rfind(|l| l.split(' ').nth(4) == target.to_str())
        .unwrap_or_else(|| panic!("{} is not mounted", target.display()));
    line.split(' ')
        .nth(5)
        .unwrap()
        .split(',')
        .map(String::from)
        .collect()
}

/// A temporary directory others may enter, so that only the store's own modes keep them out.
fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    dir
}

/// The layer directory (`layers/<hex>/diff`) holding `file`.
fn layer_with(root: &Path, file: &str) -> PathBuf {
    std::fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path().join("diff"))
        .find(|d| d.join(file).exists())
        .unwrap_or_else(|| panic!("no layer holds {file}"))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn another_user_reads_no_secret_and_runs_no_setuid_program_as_root() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let Some(euid) = static_program("euid", EUID_C) else {
        return;
    };
    let pid = std::process::id();
    let env_secret = format!("env-secret-{pid}");
    let log_secret = format!("log-secret-{pid}");
    let name = format!("privacy-{pid}");
    let image = ImageBuilder::busybox()
        .layer(|l| {
            l.dir("opt", 0o755).copy("opt/euid", &euid, 0o4755);
        })
        .push(&h.open, "privacy/setuid");
    let base = open_tempdir();
    let root = base.path().join("root");
    let rootstr = root.to_str().unwrap();
    let _cleanup = Cleanup::new(&root, &[&name]).images(&[&image]);
    ok(basic_docker(&root, &["pull", "-q", &image]));
    let id = ok(basic_docker(
        &root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            &name,
            "-e",
            &format!("SECRET={env_secret}"),
            &image,
            "sh",
            "-c",
            &format!("echo {log_secret}; exec sleep 300"),
        ],
    ));
    let mounted = ok(basic_docker(&root, &["image", "mount", &image]));
    let mounted = PathBuf::from(mounted);
    let _unmount = Unmount(&root, &image);

    let container = root.join("containers").join(&id);
    let config = container.join("config.json");
    let log = container.join(format!("{id}-json.log"));
    let state = Path::new(STATE_DIR).join(&id).join("state.json");
    let db = root.join("metadata.db");
    let in_layer = layer_with(&root, "opt/euid").join("opt/euid");
    let in_container = container.join("rootfs/opt/euid");
    let in_mount = mounted.join("opt/euid");
    wait_for("the log line", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains(&log_secret))
    });

    // The positive control: everything is there, and readable, for root.
    assert!(
        std::fs::read_to_string(&config)
            .unwrap()
            .contains(&env_secret)
    );
    assert!(std::fs::read_to_string(&state).unwrap().contains(&id));
    assert!(!std::fs::read(&db).unwrap().is_empty());
    for program in [&in_layer, &in_container, &in_mount] {
        let meta = std::fs::metadata(program).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid()),
            (0o4755, 0),
            "{}",
            program.display()
        );
    }
    // The attack works where its path is open: a setuid-root copy runs as root.
    let scratch = base.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    chmod(&scratch, 0o755);
    let copy = scratch.join("euid");
    std::fs::copy(&in_layer, &copy).unwrap();
    chmod(&copy, 0o4755);
    let out = as_nobody(&[copy.to_str().unwrap()]).unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "euid=0\n", "{out:?}");

    // The attacks.
    denied(&["ls", rootstr], None);
    denied(&["ls", root.join("containers").to_str().unwrap()], None);
    denied(&["cat", config.to_str().unwrap()], Some(&env_secret));
    denied(&["cat", log.to_str().unwrap()], Some(&log_secret));
    denied(&["cat", state.to_str().unwrap()], None);
    denied(
        &["ls", Path::new(STATE_DIR).join(&id).to_str().unwrap()],
        None,
    );
    denied(&["cat", db.to_str().unwrap()], Some(&env_secret));
    denied(&["grep", "-r", &env_secret, rootstr], Some(&env_secret));
    for program in [&in_layer, &in_container, &in_mount] {
        denied(&[program.to_str().unwrap()], None);
    }

    // The modes that keep them out.
    assert_eq!(mode(&root), 0o711);
    for dir in [
        "blobs",
        "layers",
        "tmp",
        "containers",
        "snapshots",
        "image-mounts",
    ] {
        assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
    }
    assert_eq!(mode(&container), 0o700);
    let snapshot_record = root.join("snapshots").join(&id).join("snapshot.json");
    for file in [&config, &log, &db, &snapshot_record] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(mode(&Path::new(STATE_DIR).join(&id)), 0o700);
    assert_eq!(mode(&state), 0o600);
    assert_eq!(
        mode(Path::new(STATE_DIR)) & 0o066,
        0,
        "nobody else lists the state"
    );
    // The container's `/` is as the image made it: others may enter it.
    assert_eq!(mode(&container.join("rootfs")), 0o755);

    // An image mount, even where a user can reach it, runs nothing setuid: it is nosuid.
    let options = mount_options(&mounted);
    for want in ["ro", "nosuid", "nodev"] {
        assert!(
            options.iter().any(|o| o == want),
            "{want} not in {options:?}"
        );
    }
    let reachable = scratch.join("view");
    std::fs::create_dir(&reachable).unwrap();
    let bound = Command::new("mount")
        .args(["--bind"])
        .arg(&mounted)
        .arg(&reachable)
        .status()
        .unwrap();
    assert!(bound.success());
    let out = as_nobody(&[reachable.join("opt/euid").to_str().unwrap()]).unwrap();
    let _ = Command::new("umount").arg(&reachable).status();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "euid=65534\n",
        "the view's setuid bit must not count: {out:?}"
    );

    // And root still sees the log through the CLI.
    let logs = ok(basic_docker(&root, &["logs", &name]));
    assert!(logs.contains(&log_secret), "{logs}");
}

/// Unmounts an `image mount` however the test ends.
struct Unmount<'a>(&'a Path, &'a str);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = basic_docker(self.0, &["image", "unmount", self.1]);
    }
}

#[test]
fn a_store_made_wide_by_an_older_version_is_tightened_by_the_next_command() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let image = h.reference("busybox_latest");
    let name = format!("migrated-{}", std::process::id());
    let base = open_tempdir();
    let root = base.path().join("root");
    let _cleanup = Cleanup::new(&root, &[&name]);
    ok(basic_docker(&root, &["pull", "-q", &image]));
    let id = ok(basic_docker(
        &root,
        &[
            "create",
            "--network",
            "none",
            "--name",
            &name,
            "-e",
            "SECRET=s",
            &image,
            "echo",
            "still works",
        ],
    ));
    let container = root.join("containers").join(&id);
    let layer = layer_with(&root, "bin/busybox");
    let layer_modes = || {
        [layer.clone(), layer.join("bin"), layer.join("bin/busybox")]
            .iter()
            .map(|p| mode(p))
            .collect::<Vec<_>>()
    };
    let before = layer_modes();

    // What an older version made: everything readable by everyone.
    let dirs: Vec<PathBuf> = ["", "blobs", "blobs/sha256", "layers", "tmp", "containers"]
        .iter()
        .chain(&["snapshots", &format!("containers/{id}")])
        .map(|d| root.join(d))
        .collect();
    let files = [
        root.join("metadata.db"),
        root.join("lock"),
        container.join("config.json"),
    ];
    for dir in &dirs {
        chmod(dir, 0o755);
    }
    for file in &files {
        chmod(file, 0o644);
    }
    // Such a store gives the environment away.
    let config = container.join("config.json");
    let leak = as_nobody(&["cat", config.to_str().unwrap()]).unwrap();
    assert!(
        String::from_utf8_lossy(&leak.stdout).contains("SECRET=s"),
        "{leak:?}"
    );

    ok(basic_docker(&root, &["images"]));
    denied(&["cat", config.to_str().unwrap()], Some("SECRET=s"));
    assert_eq!(mode(&root), 0o711);
    for dir in &dirs[1..] {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
    }
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    assert_eq!(
        layer_modes(),
        before,
        "the modes inside a layer are the image's"
    );

    // Everything still works.
    ok(basic_docker(&root, &["start", &name]));
    assert_eq!(ok(basic_docker(&root, &["wait", &name])), "0");
    assert_eq!(ok(basic_docker(&root, &["logs", &name])), "still works");
    let out = ok(basic_docker(
        &root,
        &["run", "--rm", "--network", "none", &image, "echo", "new"],
    ));
    assert_eq!(out, "new");
    let log = container.join(format!("{id}-json.log"));
    assert_eq!(mode(&log), 0o600);
}
