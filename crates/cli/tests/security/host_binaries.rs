//! The host's `basic-docker` binary is never exposed to a container as a
//! writable or re-openable file (CVE-2019-5736). A hostile image makes the
//! engine execute itself inside the container (`/bin/evil` is a
//! `#!/proc/self/exe` script, or `/bin/sh` links to `/proc/self/exe`); an
//! attacker process in the container finds that process, takes a handle on its
//! `/proc/PID/exe` and keeps trying to re-open it for writing.
//!
//! Every attack targets a copy of the binary in a temporary directory; the
//! copy is what runs the container, and its hash is compared afterwards. The
//! engine runs from a read-only mount of its own file (basic-runtime's
//! `sealed_exe`): a handle the attacker takes through it is on that mount, and
//! the kernel refuses to open it for writing (EROFS) even once nothing runs
//! the binary — so a handle on the same inode counts as reaching the binary only
//! when its mount is writable.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use basic_test_support::engine_binary::{
    AttackReport, BinaryCopy, DynamicLinking, dynamic_linking,
};
use basic_test_support::image::ImageBuilder;
use basic_test_support::programs::static_program;
use serde_json::json;

use crate::common::Cleanup;
use crate::support::{BIN, HostDir, Store, run_within, text, unique, wait_within};

const EXE_ATTACKER: &str = include_str!("../attacks/exe_attacker.c");

const WAIT: Duration = Duration::from_secs(60);

/// How the image gets the engine to execute itself.
enum Lure {
    /// `/bin/evil` is a script whose interpreter is `/proc/self/exe`.
    Script,
    /// `/bin/sh` is a symlink to `/proc/self/exe`.
    ShellLink,
}

/// Everything one attack needs: a store, a copy of the binary to run it with,
/// an image with the attacker and the lure, and a host directory (mounted at
/// `/out`) where the attacker writes its report.
struct Attack {
    store: Store,
    copy: BinaryCopy,
    linking: DynamicLinking,
    image: String,
    out: HostDir,
}

impl Attack {
    fn prepare(lure: Lure, config: &[(&str, serde_json::Value)]) -> Option<Attack> {
        let store = Store::new()?;
        let attacker = static_program("exe-attacker", EXE_ATTACKER)?;
        let copy = BinaryCopy::of(Path::new(BIN));
        let linking = dynamic_linking(copy.path())
            .expect("basic-docker is dynamically linked (the lure relies on its loader)");
        let mut image = ImageBuilder::busybox().layer(|l| {
            l.copy("exe-attacker", &attacker, 0o755);
            l.file("bin/evil", b"#!/proc/self/exe\n", 0o755);
            if let Lure::ShellLink = lure {
                l.symlink("bin/sh", "/proc/self/exe");
            }
            linking.stall_in_layer(l);
        });
        for (key, value) in config {
            image = image.config(key, value.clone());
        }
        let name = match lure {
            Lure::Script => "exe-script",
            Lure::ShellLink => "exe-shell-link",
        };
        let image = store.image(image, name);
        Some(Attack {
            store,
            copy,
            linking,
            image,
            out: HostDir::new("exe-report"),
        })
    }

    fn report_path(&self) -> std::path::PathBuf {
        self.out.path().join("report")
    }

    fn report(&self) -> AttackReport {
        AttackReport::read(&self.report_path())
    }

    /// The attacker's command line: go after processes whose argv[0] is `target`
    /// (or `pid:N`); a target lured into the loader is let go through its pipes.
    fn attacker_command(&self, target: &str) -> Vec<String> {
        let mut cmd = vec![
            "/exe-attacker".to_string(),
            target.to_string(),
            "/out/report".to_string(),
        ];
        if !target.starts_with("pid:") {
            cmd.extend(self.linking.library_paths());
        }
        cmd
    }

    /// `-v OUT:/out`.
    fn volume(&self) -> String {
        format!("{}:/out", self.out.text())
    }

    /// `basic-docker ARGS` run from the copy.
    fn with_copy(&self, args: &[&str]) -> std::process::Output {
        run_within(self.store.command_with(self.copy.path(), args), WAIT)
    }

    /// A container started by the copy with the attacker as its command, once
    /// the attacker scans.
    fn start_attacker(&self, name: &str, flags: &[&str], target: &str) {
        let volume = self.volume();
        let mut args = vec![
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            "-v",
            &volume,
        ];
        args.extend_from_slice(flags);
        args.push(&self.image);
        let attacker = self.attacker_command(target);
        args.extend(attacker.iter().map(String::as_str));
        let out = self.with_copy(&args);
        assert!(out.status.success(), "run -d: {}", text(&out));
        let report = AttackReport::wait(&self.report_path(), WAIT, AttackReport::started);
        assert!(
            report.started(),
            "the attacker never started:\n{}",
            self.store.logs(name)
        );
    }

    /// The attacker ran, found the process running the binary, and got nowhere.
    #[track_caller]
    fn assert_the_binary_was_not_reached(&self, what: &str, report: &AttackReport) {
        report.assert_nothing_reached(&self.copy, what);
    }
}

#[test]
fn exec_of_a_proc_self_exe_script_cannot_reach_the_basic_docker_binary() {
    let Some(attack) = Attack::prepare(Lure::Script, &[]) else {
        return;
    };
    let name = unique("exe-exec");
    let _cleanup = Cleanup::new(attack.store.root(), &[&name]);
    attack.start_attacker(&name, &[], "/proc/self/exe");
    let exec = attack.with_copy(&["exec", &name, "/bin/evil"]);
    let report = AttackReport::wait(&attack.report_path(), WAIT, AttackReport::finished);
    attack.assert_the_binary_was_not_reached(
        &format!("exec /bin/evil ({}: {})", exec.status, text(&exec).trim()),
        &report,
    );
}

#[test]
fn exec_of_a_shell_linked_to_proc_self_exe_cannot_reach_the_basic_docker_binary() {
    let Some(attack) = Attack::prepare(Lure::ShellLink, &[]) else {
        return;
    };
    let name = unique("exe-exec-sh");
    let _cleanup = Cleanup::new(attack.store.root(), &[&name]);
    attack.start_attacker(&name, &[], "/bin/sh");
    let exec = attack.with_copy(&["exec", &name, "/bin/sh", "-c", "true"]);
    let report = AttackReport::wait(&attack.report_path(), WAIT, AttackReport::finished);
    attack.assert_the_binary_was_not_reached(
        &format!("exec /bin/sh ({}: {})", exec.status, text(&exec).trim()),
        &report,
    );
}

#[test]
fn run_of_a_proc_self_exe_entrypoint_cannot_reach_the_basic_docker_binary() {
    let Some(attack) = Attack::prepare(Lure::Script, &[("Entrypoint", json!(["/bin/evil"]))])
    else {
        return;
    };
    let name = unique("exe-run");
    let _cleanup = Cleanup::new(attack.store.root(), &[&name]);
    let volume = attack.volume();
    // The container's first process is the engine itself, waiting in its loader.
    let mut run = attack
        .store
        .command_with(
            attack.copy.path(),
            &[
                "run",
                "--network",
                "none",
                "--name",
                &name,
                "-v",
                &volume,
                &attack.image,
            ],
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(attack.out.path().join("run-stderr")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let attacker = attack.attacker_command("/proc/self/exe");
    let mut exec = vec!["exec", "-d", name.as_str()];
    exec.extend(attacker.iter().map(String::as_str));
    let until = Instant::now() + WAIT;
    loop {
        let out = attack.store.docker(&exec);
        if out.status.success() {
            break;
        }
        let ended = run.try_wait().unwrap();
        assert!(
            Instant::now() < until && ended.is_none(),
            "the attacker could not join the container: {}\nrun ({ended:?}) said: {}",
            text(&out),
            std::fs::read_to_string(attack.out.path().join("run-stderr")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The attacker lets the loader go: the engine's process, the container's
    // init, exits, and the container with it.
    let status = wait_within(&mut run, WAIT);
    let report = attack.report();
    assert!(report.started(), "the attacker never started ({status})");
    attack.assert_the_binary_was_not_reached(&format!("run ({status})"), &report);
}

#[test]
fn run_init_is_not_the_basic_docker_binary_inside_the_container() {
    let Some(attack) = Attack::prepare(Lure::Script, &[]) else {
        return;
    };
    let name = unique("exe-init");
    let _cleanup = Cleanup::new(attack.store.root(), &[&name]);
    // With --init the container's pid 1 is the engine's small init.
    attack.start_attacker(&name, &["--init"], "pid:1");
    let report = AttackReport::wait(&attack.report_path(), WAIT, AttackReport::finished);
    attack.assert_the_binary_was_not_reached("run --init", &report);
}
