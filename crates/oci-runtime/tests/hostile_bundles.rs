//! Bundles written by others are not trusted: `basic-runtime` refuses specs
//! whose paths leave the root filesystem (mount destinations and device paths
//! climbing `..`, a relative working directory, a root that is a symlink),
//! resolves every path inside the rootfs, symlinks included, and never lets a
//! container process reach its own binary (CVE-2019-5736).
//!
//! Each attack points at a unique host directory under `/tmp` that must stay
//! as it was; attacks on the binary run a copy of it.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use basic_test_support::engine_binary::{AttackReport, BinaryCopy, dynamic_linking};
use basic_test_support::programs::static_program;
use common::{BIN, make_bundle, ready};
use serde_json::{Value, json};

const EXE_ATTACKER: &str = include_str!("../../cli/tests/attacks/exe_attacker.c");

const WAIT: Duration = Duration::from_secs(60);

/// A directory under `/tmp` that an attack points at; its listing before the
/// attack is kept to compare with.
struct HostDir {
    dir: tempfile::TempDir,
    before: BTreeSet<String>,
}

impl HostDir {
    fn new(what: &str) -> HostDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("basic-runtime-hostile-{what}-"))
            .tempdir_in("/tmp")
            .unwrap();
        let before = listing(dir.path());
        HostDir { dir, before }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn text(&self) -> String {
        self.path().to_str().unwrap().to_string()
    }

    /// Panics, saying what appeared or went, unless the directory is as it was.
    #[track_caller]
    fn assert_unchanged(&self, context: &str) {
        let now = listing(self.path());
        assert!(
            now == self.before,
            "the host directory {} changed: before {:?}, now {:?}\n{context}",
            self.path().display(),
            self.before,
            now
        );
    }
}

/// Every entry below `dir`, with its type and mode, symlinks not followed.
fn listing(dir: &Path) -> BTreeSet<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mut entries = BTreeSet::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = std::fs::symlink_metadata(entry.path()).unwrap();
            if meta.is_dir() {
                todo.push(entry.path());
            }
            entries.insert(format!(
                "{} {:o}",
                entry.path().strip_prefix(dir).unwrap().display(),
                meta.mode()
            ));
        }
    }
    entries
}

/// A `..` path that climbs out of any rootfs, to `to`.
fn climbing(from: &str, to: &str) -> String {
    format!(
        "{from}{}{}",
        "/..".repeat(24),
        if to.starts_with('/') {
            to.to_string()
        } else {
            format!("/{to}")
        }
    )
}

/// A busybox bundle in `dir` running `args`, its config changed by `edit`.
fn bundle(dir: &Path, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
    let bundle = make_bundle(dir, args);
    let config = bundle.join("config.json");
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    edit(&mut spec);
    std::fs::write(&config, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    bundle
}

/// `basic-runtime --root STATE run --bundle BUNDLE ID` (of `binary`), with a
/// guard that deletes the container however the test ends.
fn run_bundle(bundle: &Path, name: &str) -> (Output, Deleted) {
    let state = bundle.parent().unwrap().join("state");
    let id = common::id(name);
    let guard = Deleted {
        state: state.clone(),
        id: id.clone(),
    };
    let out = within(
        runtime_command(Path::new(BIN), &state, &["run", "--bundle"])
            .arg(bundle)
            .arg(&id),
        WAIT,
    );
    (out, guard)
}

fn runtime_command(binary: &Path, state: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(binary);
    cmd.arg("--root").arg(state).args(args);
    cmd
}

/// Runs `cmd` with its output in files (a container keeps inherited pipes
/// open), killing it after `timeout` rather than hanging the suite.
fn within(cmd: &mut Command, timeout: Duration) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let status = wait_within(&mut child, timeout);
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

fn wait_within(child: &mut Child, timeout: Duration) -> ExitStatus {
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            return basic_test_support::bounded::wait_within(
                child,
                Duration::from_secs(10),
                "the killed basic-runtime",
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Kills and deletes a container with the build output (a copy under attack
/// may no longer run).
struct Deleted {
    state: PathBuf,
    id: String,
}

impl Drop for Deleted {
    fn drop(&mut self) {
        let _ = within(
            &mut runtime_command(
                Path::new(BIN),
                &self.state,
                &["delete", "--force", &self.id],
            ),
            WAIT,
        );
    }
}

/// `out` is a refusal whose message names one of `fields`.
#[track_caller]
fn assert_refused_naming(out: &Output, fields: &[&str], what: &str) {
    let shown = text(out);
    let lower = shown.to_lowercase();
    assert!(
        !out.status.success() && fields.iter().any(|f| lower.contains(f)),
        "{what} was not refused with an error naming {fields:?} ({}):\n{shown}",
        out.status
    );
}

#[test]
fn a_mount_destination_climbing_out_of_the_root_is_refused() {
    if !ready() {
        return;
    }
    let host = HostDir::new("mount-dest");
    let dir = tempfile::tempdir().unwrap();
    let destination = climbing("", &format!("{}/x", host.text()));
    let b = bundle(&dir.path().join("bundle"), &["true"], |spec| {
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": destination,
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev"],
        }));
    });
    let (out, _guard) = run_bundle(&b, "dest-climb");
    host.assert_unchanged(&text(&out));
    assert_refused_naming(
        &out,
        &["destination"],
        &format!("mount destination {destination}"),
    );
}

#[test]
fn a_relative_mount_destination_is_refused() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&dir.path().join("bundle"), &["true"], |spec| {
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "../x",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev"],
        }));
    });
    let (out, _guard) = run_bundle(&b, "dest-relative");
    // Next to the rootfs, in the bundle: outside the root.
    assert!(
        !b.join("x").exists(),
        "the mount point ../x was created in the bundle, outside the rootfs:\n{}",
        text(&out)
    );
    assert_refused_naming(&out, &["destination"], "mount destination ../x");
}

#[test]
fn a_device_path_climbing_out_of_dev_is_refused() {
    if !ready() {
        return;
    }
    let host = HostDir::new("device");
    let dir = tempfile::tempdir().unwrap();
    let path = climbing("/dev", &format!("{}/null", host.text()));
    let b = bundle(&dir.path().join("bundle"), &["true"], |spec| {
        spec["linux"]["devices"] = json!([{
            "path": path,
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": 0o666,
        }]);
    });
    let (out, _guard) = run_bundle(&b, "dev-climb");
    host.assert_unchanged(&text(&out));
    assert_refused_naming(&out, &["device"], &format!("device path {path}"));
}

#[test]
fn a_relative_process_cwd_is_refused() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&dir.path().join("bundle"), &["pwd"], |spec| {
        spec["process"]["cwd"] = json!("tmp");
    });
    let (out, _guard) = run_bundle(&b, "cwd-relative");
    assert_refused_naming(&out, &["cwd"], "process.cwd \"tmp\"");
}

#[test]
fn a_root_path_that_is_a_symlink_is_refused() {
    if !ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(&dir.path().join("bundle"), &["true"], |_| {});
    // The real root elsewhere, the bundle's rootfs a link to it.
    let real = dir.path().join("real-root");
    std::fs::rename(b.join("rootfs"), &real).unwrap();
    std::os::unix::fs::symlink(&real, b.join("rootfs")).unwrap();
    let (out, _guard) = run_bundle(&b, "root-link");
    assert_refused_naming(
        &out,
        &["root.path", "root path", "rootfs", "root filesystem"],
        "root.path as a symlink",
    );
}

#[test]
fn a_dev_linked_to_the_host_gets_its_mounts_inside_the_rootfs() {
    if !ready() {
        return;
    }
    let host = HostDir::new("dev-link");
    let dir = tempfile::tempdir().unwrap();
    let b = bundle(
        &dir.path().join("bundle"),
        &["sh", "-c", "test -c /dev/null && echo dev-null-is-there"],
        |_| {},
    );
    let rootfs = b.join("rootfs");
    std::fs::remove_dir(rootfs.join("dev")).unwrap();
    std::os::unix::fs::symlink(host.path(), rootfs.join("dev")).unwrap();
    let (out, _guard) = run_bundle(&b, "dev-link");
    host.assert_unchanged(&text(&out));
    assert!(
        text(&out).contains("dev-null-is-there"),
        "/dev's mounts and nodes are not where /dev leads inside the rootfs ({}):\n{}",
        out.status,
        text(&out)
    );
}

#[test]
fn device_nodes_under_a_dev_linked_to_the_host_are_made_inside_the_rootfs() {
    if !ready() {
        return;
    }
    let host = HostDir::new("dev-link-nodes");
    let dir = tempfile::tempdir().unwrap();
    // No tmpfs on /dev: the nodes go into the rootfs's own /dev, which links out.
    let b = bundle(
        &dir.path().join("bundle"),
        &["sh", "-c", "test -c /dev/null && echo dev-null-is-there"],
        |spec| {
            spec["mounts"]
                .as_array_mut()
                .unwrap()
                .retain(|m| !m["destination"].as_str().unwrap_or("").starts_with("/dev"));
            spec["linux"]["devices"] = json!([{
                "path": "/dev/null",
                "type": "c",
                "major": 1,
                "minor": 3,
                "fileMode": 0o666,
            }]);
        },
    );
    let rootfs = b.join("rootfs");
    std::fs::remove_dir(rootfs.join("dev")).unwrap();
    std::os::unix::fs::symlink(host.path(), rootfs.join("dev")).unwrap();
    let (out, _guard) = run_bundle(&b, "dev-link-nodes");
    host.assert_unchanged(&text(&out));
    assert!(
        text(&out).contains("dev-null-is-there"),
        "/dev/null is not where /dev leads inside the rootfs ({}):\n{}",
        out.status,
        text(&out)
    );
}

#[test]
fn a_mount_through_a_symlinked_directory_lands_inside_the_rootfs() {
    if !ready() {
        return;
    }
    let host = HostDir::new("mnt-link");
    let dir = tempfile::tempdir().unwrap();
    let inside = format!("{}/sub", host.text());
    // In the container the tmpfs is mounted where /mnt/sub leads: `inside`.
    let probe = format!("grep ' {inside} ' /proc/self/mountinfo && echo mounted-inside");
    let b = bundle(&dir.path().join("bundle"), &["sh", "-c", &probe], |spec| {
        spec["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/sub",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev"],
        }));
    });
    let rootfs = b.join("rootfs");
    std::os::unix::fs::symlink(host.path(), rootfs.join("mnt")).unwrap();
    let (out, _guard) = run_bundle(&b, "mnt-link");
    host.assert_unchanged(&text(&out));
    assert!(
        text(&out).contains("mounted-inside")
            && rootfs.join(inside.trim_start_matches('/')).is_dir(),
        "the mount point is not at {inside} inside the rootfs ({}):\n{}",
        out.status,
        text(&out)
    );
}

/// A bundle whose rootfs holds the attacker (`/exe-attacker`), a
/// `#!/proc/self/exe` script (`/bin/evil`), and the lure that holds the
/// runtime's process in its loader; the report goes to `/report`.
struct ExeAttack {
    copy: BinaryCopy,
    pipes: Vec<String>,
    bundle: PathBuf,
    state: PathBuf,
    _dir: tempfile::TempDir,
}

impl ExeAttack {
    fn prepare(args: &[&str]) -> Option<ExeAttack> {
        if !ready() {
            return None;
        }
        let attacker = static_program("exe-attacker", EXE_ATTACKER)?;
        let copy = BinaryCopy::of(Path::new(BIN));
        let linking = dynamic_linking(copy.path())
            .expect("basic-runtime is dynamically linked (the lure relies on its loader)");
        let dir = tempfile::tempdir().unwrap();
        let pipes = linking.library_paths();
        let mut full: Vec<&str> = args.to_vec();
        if args.first() == Some(&"/exe-attacker") {
            full.extend(pipes.iter().map(String::as_str));
        }
        // The attacker writes its report into the root.
        let bundle = bundle(&dir.path().join("bundle"), &full, |spec| {
            spec["root"]["readonly"] = json!(false);
        });
        let rootfs = bundle.join("rootfs");
        std::fs::copy(&attacker, rootfs.join("exe-attacker")).unwrap();
        std::fs::write(rootfs.join("bin/evil"), "#!/proc/self/exe\n").unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(
            rootfs.join("bin/evil"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        linking.stall_in_dir(&rootfs);
        Some(ExeAttack {
            copy,
            pipes,
            state: dir.path().join("state"),
            bundle,
            _dir: dir,
        })
    }

    fn report_path(&self) -> PathBuf {
        self.bundle.join("rootfs/report")
    }

    /// The attacker ran, found the process running the binary, and got nowhere.
    #[track_caller]
    fn assert_the_binary_was_not_reached(&self, what: &str, report: &AttackReport) {
        report.assert_nothing_reached(&self.copy, what);
    }
}

#[test]
fn exec_of_a_proc_self_exe_script_cannot_overwrite_basic_runtime() {
    let Some(attack) = ExeAttack::prepare(&["/exe-attacker", "/proc/self/exe", "/report"]) else {
        return;
    };
    let id = common::id("exe-exec");
    let _guard = Deleted {
        state: attack.state.clone(),
        id: id.clone(),
    };
    let started = within(
        runtime_command(
            attack.copy.path(),
            &attack.state,
            &["run", "-d", "--bundle"],
        )
        .arg(&attack.bundle)
        .arg(&id),
        WAIT,
    );
    assert!(started.status.success(), "run -d: {}", text(&started));
    let report = AttackReport::wait(&attack.report_path(), WAIT, AttackReport::started);
    assert!(
        report.started(),
        "the attacker never started: {}{}",
        text(&started),
        text(&within(
            &mut runtime_command(Path::new(BIN), &attack.state, &["state", &id]),
            WAIT
        ))
    );
    // The runtime executes the script, i.e. itself, inside the container.
    let exec = within(
        &mut runtime_command(
            attack.copy.path(),
            &attack.state,
            &["exec", &id, "/bin/evil"],
        ),
        WAIT,
    );
    let report = AttackReport::wait(&attack.report_path(), WAIT, AttackReport::finished);
    attack.assert_the_binary_was_not_reached(
        &format!("exec /bin/evil ({}: {})", exec.status, text(&exec).trim()),
        &report,
    );
}

#[test]
fn run_of_a_proc_self_exe_process_cannot_reach_basic_runtime() {
    let Some(attack) = ExeAttack::prepare(&["/bin/evil"]) else {
        return;
    };
    let id = common::id("exe-run");
    let _guard = Deleted {
        state: attack.state.clone(),
        id: id.clone(),
    };
    // The container's first process is the runtime itself, waiting in its loader.
    let mut run = runtime_command(attack.copy.path(), &attack.state, &["run", "--bundle"])
        .arg(&attack.bundle)
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut exec = vec![
        "exec",
        "-d",
        id.as_str(),
        "/exe-attacker",
        "/proc/self/exe",
        "/report",
    ];
    exec.extend(attack.pipes.iter().map(String::as_str));
    let until = Instant::now() + WAIT;
    loop {
        let out = within(
            &mut runtime_command(Path::new(BIN), &attack.state, &exec),
            WAIT,
        );
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < until && run.try_wait().unwrap().is_none(),
            "the attacker could not join the container: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The attacker lets the loader go: the container's init exits, and the
    // container with it.
    let status = wait_within(&mut run, WAIT);
    let report = AttackReport::read(&attack.report_path());
    assert!(report.started(), "the attacker never started ({status})");
    attack.assert_the_binary_was_not_reached(&format!("run ({status})"), &report);
}
