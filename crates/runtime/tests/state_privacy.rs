//! The runtime's state is its owner's: nobody else lists the state root, reads a
//! container's state or its logs; an init that switched to an unprivileged user still
//! reaches the exec fifo; a state root an older version made wide is tightened on open.

mod common;

use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use basic_runtime::logfile::{LogWriter, Rotation, Stream};
use basic_runtime::{Container, StateRoot, Status};
use common::{privileged, rootfs, sh};
use nix::sys::signal::Signal;

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
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
fn as_nobody(args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt as _;
    // std's Command calls setgroups(0) itself when root sets a uid without groups.
    Command::new(args[0])
        .args(&args[1..])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap_or_else(|e| panic!("running {args:?} as nobody: {e}"))
}

/// Deletes the container however the test ends, so a failure leaves no init or cgroup.
struct Delete<'a>(&'a StateRoot, String);

impl Drop for Delete<'_> {
    fn drop(&mut self) {
        let _ = self.0.delete(&self.1, true);
    }
}

#[test]
fn state_is_private_and_an_unprivileged_init_still_starts() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Only the state's own modes may keep others out, not the test's temporary directory.
    chmod(dir.path(), 0o755);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    chmod(&out, 0o777);
    let root = StateRoot::new(dir.path().join("state"));
    let id = common::id("private-state");
    let mut spec = sh("id -u > /out/marker; sleep 30");
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination("/out".into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some(out.clone()));
    m.set_options(Some(vec!["rbind".into()]));
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    let process = spec.process_mut().as_mut().unwrap();
    let mut user = process.user().clone();
    user.set_uid(65534);
    user.set_gid(65534);
    process.set_user(user);
    // No capability either (DAC override would open any directory): an init as
    // unprivileged as a user gets.
    process.set_capabilities(Some(Default::default()));
    let state = Container::builder(&id, spec, rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(root.dir())
        .forward_signals(false)
        .build()
        .unwrap()
        .create()
        .unwrap();
    let _delete = Delete(&root, id.clone());
    let cdir = root.dir().join(&id);
    let fifo = cdir.join("start/exec.fifo");
    assert_eq!(mode(root.dir()), 0o711);
    assert_eq!(mode(&cdir), 0o700);
    assert_eq!(mode(&cdir.join("state.json")), 0o600);
    assert_eq!(mode(&cdir.join("start")), 0o711);
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // Another user: no listing, no reading, not even the fifo by its path.
    let state_json = cdir.join("state.json");
    for args in [
        vec!["ls", root.dir().to_str().unwrap()],
        vec!["ls", cdir.to_str().unwrap()],
        vec!["cat", state_json.to_str().unwrap()],
        vec!["sh", "-c", &format!("echo 1 > {}", fifo.display())],
    ] {
        let o = as_nobody(&args);
        assert!(
            !o.status.success(),
            "{args:?} as nobody succeeded: {}",
            String::from_utf8_lossy(&o.stdout)
        );
    }
    // The positive control: the same paths are there for their owner.
    assert!(std::fs::read_to_string(&state_json).unwrap().contains(&id));

    // The init already is nobody, and opens the fifo through its descriptor.
    root.start(&id).unwrap();
    let marker = out.join("marker");
    let start = Instant::now();
    while std::fs::read_to_string(&marker).unwrap_or_default().trim() != "65534" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "start did not run the command as 65534"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(root.state(&id).unwrap().status, Status::Running);
    root.kill(&id, Signal::SIGKILL, false).unwrap();
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(state.pid), None);
}

#[test]
fn a_foreground_run_keeps_its_state_private() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let id = common::id("private-run");
    let seen = root.join(&id);
    let probe = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if seen.join("state.json").exists() {
                return Some((
                    mode(seen.parent().unwrap()),
                    mode(&seen),
                    mode(&seen.join("state.json")),
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    });
    let status = Container::builder(&id, sh("sleep 1"), rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(&root)
        .forward_signals(false)
        .build()
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(status.exit_code(), 0);
    assert_eq!(probe.join().unwrap(), Some((0o711, 0o700, 0o600)));
}

#[test]
fn an_older_state_root_is_tightened_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    // What an older version left: a wide root, a wide started container, and a container
    // still parked in `created` with its fifo in its own directory.
    for id in ["started", "parked"] {
        let c = root.join(id);
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("state.json"), "{}").unwrap();
        chmod(&c.join("state.json"), 0o644);
    }
    chmod(&root.join("started"), 0o755);
    chmod(&root.join("parked"), 0o711);
    nix::unistd::mkfifo(
        &root.join("parked/exec.fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o622),
    )
    .unwrap();
    // Not a container: left as it is.
    std::fs::create_dir(root.join("netns")).unwrap();
    chmod(&root.join("netns"), 0o755);
    chmod(&root, 0o755);

    StateRoot::open(&root).unwrap();
    assert_eq!(mode(&root), 0o711);
    assert_eq!(mode(&root.join("started")), 0o700);
    assert_eq!(mode(&root.join("started/state.json")), 0o600);
    assert_eq!(
        mode(&root.join("parked")),
        0o711,
        "its init may be a user that must still reach the fifo"
    );
    assert_eq!(mode(&root.join("parked/state.json")), 0o600);
    assert_eq!(mode(&root.join("netns")), 0o755);

    // Idempotent, and a missing root is fine.
    StateRoot::open(&root).unwrap();
    assert_eq!(mode(&root.join("started")), 0o700);
    StateRoot::open(dir.path().join("missing")).unwrap();
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn logs_are_readable_by_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c-json.log");
    let rotation = Rotation {
        max_size: 100,
        max_files: 3,
    };
    let mut log = LogWriter::open(&path, rotation).unwrap();
    assert_eq!(mode(&path), 0o600);
    for _ in 0..5 {
        log.write(
            Stream::Stdout,
            b"a secret line of some length\n",
            SystemTime::now(),
        )
        .unwrap();
    }
    let rotated = dir.path().join("c-json.log.1");
    assert!(rotated.exists(), "the log rotated");
    assert_eq!(mode(&path), 0o600, "the file made at rotation");
    assert_eq!(mode(&rotated), 0o600);
}
