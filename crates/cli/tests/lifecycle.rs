//! Container lifecycle as a docker user drives it: detached runs, `ps`, `logs`,
//! `stop`, `kill`, `restart`, `pause`, `rm`, `wait`, restart policies, and the
//! faults (a killed supervisor, a wiped state directory) a container must survive
//! without the engine losing track of it.

mod common;

use common::{Cleanup, basic_docker, busybox_rootfs_tar, busybox_store as store, ok};

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got stdout {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn inspect(root: &Path, name: &str) -> Value {
    let text = ok(basic_docker(root, &["inspect", name]));
    let all: Value = serde_json::from_str(&text).unwrap();
    all[0].clone()
}

fn state(root: &Path, name: &str) -> String {
    inspect(root, name)["State"]["Status"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Polls `f` for up to 20 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ps_line(root: &Path, name: &str, all: bool) -> Option<String> {
    let args: &[&str] = if all { &["ps", "-a"] } else { &["ps"] };
    ok(basic_docker(root, args))
        .lines()
        .find(|l| l.split_whitespace().last() == Some(name))
        .map(str::to_string)
}

#[test]
fn detached_container_runs_logs_stops_and_is_removed() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["ticker"]);
    let id = ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "ticker",
            image,
            "sh",
            "-c",
            "echo started; echo warning >&2; while true; do echo tick; sleep 0.1; done",
        ],
    ));
    assert_eq!(id.len(), 64, "run -d prints the full id: {id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    let line = ps_line(root, "ticker", false).expect("ps lists the running container");
    assert!(line.starts_with(&id[..12]), "{line}");
    assert!(line.contains("Up "), "{line}");
    assert_eq!(state(root, "ticker"), "running");
    let pid = inspect(root, &id[..8])["State"]["Pid"].as_i64().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    eventually("three ticks in the log", || {
        ok(basic_docker(root, &["logs", "ticker"]))
            .matches("tick")
            .count()
            >= 3
    });
    let logs = basic_docker(root, &["logs", "ticker"]);
    let out = String::from_utf8_lossy(&logs.stdout);
    assert!(out.starts_with("started\ntick\n"), "{out}");
    assert_eq!(String::from_utf8_lossy(&logs.stderr), "warning\n");
    let tail = ok(basic_docker(root, &["logs", "--tail", "2", "-t", "ticker"]));
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(
        tail.lines()
            .all(|l| l.ends_with(" tick") && l.contains('T')),
        "{tail}"
    );

    // `sh` as PID 1 ignores SIGTERM: stop escalates to SIGKILL after -t.
    ok(basic_docker(root, &["stop", "-t", "1", "ticker"]));
    assert!(ps_line(root, "ticker", false).is_none());
    let line = ps_line(root, "ticker", true).expect("ps -a lists it");
    assert!(line.contains("Exited (137)"), "{line}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    let doc = inspect(root, "ticker");
    assert_eq!(doc["State"]["ExitCode"], 137);
    assert_ne!(doc["State"]["FinishedAt"], "0001-01-01T00:00:00Z");

    // Its logs outlive it; `rm` then removes everything.
    assert!(ok(basic_docker(root, &["logs", "ticker"])).contains("tick"));
    assert_eq!(ok(basic_docker(root, &["rm", "ticker"])), "ticker");
    assert!(!root.join("containers").join(&id).exists());
    assert!(
        !Path::new("/sys/fs/cgroup/pids/basic-docker")
            .join(&id)
            .exists()
    );
    let err = failed(&basic_docker(root, &["logs", "ticker"]));
    assert!(err.contains("No such container: ticker"), "{err}");
}

#[test]
fn create_start_wait_and_the_exit_code() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["three"]);
    let id = ok(basic_docker(
        root,
        &[
            "create",
            "--name",
            "three",
            image,
            "sh",
            "-c",
            "echo out; exit 3",
        ],
    ));
    let line = ps_line(root, "three", true).unwrap();
    assert!(line.contains("Created"), "{line}");
    assert!(ps_line(root, "three", false).is_none());
    assert_eq!(state(root, "three"), "created");

    assert_eq!(ok(basic_docker(root, &["start", "three"])), "three");
    assert_eq!(ok(basic_docker(root, &["wait", &id[..10]])), "3");
    assert_eq!(state(root, "three"), "exited");
    assert_eq!(ok(basic_docker(root, &["logs", "three"])), "out");
    // A second start runs it again, in the same root filesystem.
    ok(basic_docker(root, &["start", "three"]));
    assert_eq!(ok(basic_docker(root, &["wait", "three"])), "3");
    assert_eq!(ok(basic_docker(root, &["logs", "three"])), "out\nout");
    assert_eq!(ok(basic_docker(root, &["rm", "three"])), "three");
}

#[test]
fn a_foreground_run_is_recorded_and_names_are_unique() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["fg"]);
    let out = basic_docker(
        root,
        &["run", "--name", "fg", image, "sh", "-c", "echo hi; exit 4"],
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let line = ps_line(root, "fg", true).unwrap();
    assert!(line.contains("Exited (4)"), "{line}");
    assert_eq!(ok(basic_docker(root, &["logs", "fg"])), "hi");

    let err = failed(&basic_docker(root, &["run", "--name", "fg", image, "true"]));
    assert!(
        err.contains("The container name \"/fg\" is already in use by container"),
        "{err}"
    );
    let err = failed(&basic_docker(root, &["start", "nosuchcontainer"]));
    assert!(err.contains("No such container: nosuchcontainer"), "{err}");
    // A generated name: adjective_surname, shown by ps.
    let id = ok(basic_docker(root, &["create", image, "true"]));
    let name = inspect(root, &id)["Name"].as_str().unwrap().to_string();
    assert!(name.starts_with('/') && name.contains('_'), "{name}");
    ok(basic_docker(root, &["rm", &id]));
}

#[test]
fn rm_refuses_a_running_container_and_rm_f_kills_it() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["busy"]);
    let id = ok(basic_docker(
        root,
        &["run", "-d", "--name", "busy", image, "sleep", "1000"],
    ));
    let err = failed(&basic_docker(root, &["rm", "busy"]));
    assert!(
        err.contains("You cannot remove a running container") && err.contains(&id),
        "{err}"
    );
    assert_eq!(state(root, "busy"), "running");
    assert_eq!(ok(basic_docker(root, &["rm", "-f", "busy"])), "busy");
    assert!(ps_line(root, "busy", true).is_none());
    assert!(!root.join("containers").join(&id).exists());
    assert!(!Path::new("/run/basic-docker").join(&id).exists());
}

#[test]
fn pause_freezes_and_unpause_thaws() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["frozen"]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "frozen",
            image,
            "sh",
            "-c",
            "while true; do echo t; sleep 0.05; done",
        ],
    ));
    ok(basic_docker(root, &["pause", "frozen"]));
    assert_eq!(state(root, "frozen"), "paused");
    assert!(ps_line(root, "frozen", false).unwrap().contains("(Paused)"));
    let before = ok(basic_docker(root, &["logs", "frozen"])).lines().count();
    std::thread::sleep(Duration::from_millis(400));
    let after = ok(basic_docker(root, &["logs", "frozen"])).lines().count();
    assert!(
        after <= before + 1,
        "a paused container wrote {before} then {after} lines"
    );
    let err = failed(&basic_docker(root, &["pause", "frozen"]));
    assert!(err.contains("already paused"), "{err}");
    ok(basic_docker(root, &["unpause", "frozen"]));
    assert_eq!(state(root, "frozen"), "running");
    eventually("output after unpause", || {
        ok(basic_docker(root, &["logs", "frozen"])).lines().count() > after + 2
    });
    // stop works on a paused container too.
    ok(basic_docker(root, &["pause", "frozen"]));
    ok(basic_docker(root, &["stop", "-t", "1", "frozen"]));
    assert_eq!(state(root, "frozen"), "exited");
}

#[test]
fn restart_policies_restart_and_stop_ends_them() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["flaky", "forever"]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "flaky",
            "--restart",
            "on-failure:2",
            image,
            "sh",
            "-c",
            "echo try; exit 1",
        ],
    ));
    eventually("two restarts, then exited", || {
        let doc = inspect(root, "flaky");
        doc["State"]["Status"] == "exited" && doc["RestartCount"] == 2
    });
    assert_eq!(ok(basic_docker(root, &["logs", "flaky"])), "try\ntry\ntry");
    let doc = inspect(root, "flaky");
    assert_eq!(doc["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(doc["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);

    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "forever",
            "--restart",
            "always",
            image,
            "sh",
            "-c",
            "sleep 0.2",
        ],
    ));
    eventually("a restart", || {
        inspect(root, "forever")["RestartCount"].as_u64() >= Some(1)
    });
    ok(basic_docker(root, &["stop", "-t", "1", "forever"]));
    let count = inspect(root, "forever")["RestartCount"].clone();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(state(root, "forever"), "exited");
    assert_eq!(
        inspect(root, "forever")["RestartCount"],
        count,
        "no restart after stop"
    );
    let err = failed(&basic_docker(
        root,
        &["run", "--rm", "--restart", "always", image, "true"],
    ));
    assert!(
        err.contains("Conflicting options: --restart and --rm"),
        "{err}"
    );
}

#[test]
fn kill_sends_signals_and_restart_runs_again() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["trap"]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "trap",
            image,
            "sh",
            "-c",
            "trap 'echo got HUP' HUP; trap 'exit 7' USR1; echo ready; while true; do sleep 0.05; done",
        ],
    ));
    eventually("the trap set", || {
        ok(basic_docker(root, &["logs", "trap"])).contains("ready")
    });
    ok(basic_docker(root, &["kill", "-s", "HUP", "trap"]));
    eventually("HUP handled", || {
        ok(basic_docker(root, &["logs", "trap"])).contains("got HUP")
    });
    assert_eq!(state(root, "trap"), "running");
    ok(basic_docker(root, &["kill", "--signal", "SIGUSR1", "trap"]));
    assert_eq!(ok(basic_docker(root, &["wait", "trap"])), "7");
    let err = failed(&basic_docker(root, &["kill", "trap"]));
    assert!(err.contains("is not running"), "{err}");
    let err = failed(&basic_docker(root, &["kill", "-s", "NOPE", "trap"]));
    assert!(err.contains("invalid signal: NOPE"), "{err}");

    ok(basic_docker(root, &["restart", "-t", "1", "trap"]));
    assert_eq!(state(root, "trap"), "running");
    ok(basic_docker(root, &["kill", "trap"]));
    assert_eq!(ok(basic_docker(root, &["wait", "trap"])), "137");
}

/// The supervisor of a running container, its init's parent: `(pid, cmdline)`.
fn supervisor_of(root: &Path, name: &str) -> (i32, String) {
    let pid = inspect(root, name)["State"]["Pid"].as_i64().unwrap();
    let supervisor = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse::<i32>()
        .unwrap();
    let cmdline = std::fs::read(format!("/proc/{supervisor}/cmdline")).unwrap();
    (
        supervisor,
        String::from_utf8_lossy(&cmdline).replace('\0', " "),
    )
}

/// A field of /proc/PID/status, in its unit (kB for sizes).
fn proc_status(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[test]
fn a_running_containers_supervisor_is_one_thread_of_the_small_program() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["lean"]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "lean",
            image,
            "sh",
            "-c",
            "echo up; exec sleep 1000",
        ],
    ));
    // The supervisor hands over to the small program once the container has run for a
    // moment (a command done at once never needs it); `run -d` returns before that.
    basic_test_support::bounded::until(
        Duration::from_secs(10),
        "the supervisor of a running container becomes the small program",
        || {
            supervisor_of(root, "lean")
                .1
                .starts_with("basic-docker-supervise ")
        },
    );
    let (supervisor, cmdline) = supervisor_of(root, "lean");
    assert!(
        cmdline.starts_with("basic-docker-supervise "),
        "while the container runs its supervisor is the small program: {cmdline}"
    );
    // As every program that starts or keeps containers, it runs from a read-only copy of
    // itself, which no container can overwrite through /proc/PID/exe (CVE-2019-5736).
    let exe = nix::sys::statvfs::statvfs(format!("/proc/{supervisor}/exe").as_str()).unwrap();
    assert!(
        exe.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY),
        "the supervisor runs from a writable file"
    );
    // Its output still reaches the log through it.
    eventually("the log", || {
        ok(basic_docker(root, &["logs", "lean"])) == "up"
    });
    assert_eq!(
        proc_status(supervisor, "Threads"),
        1,
        "the supervisor of a running container is one thread"
    );
    let pss = std::fs::read_to_string(format!("/proc/{supervisor}/smaps_rollup"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    // Measured, not asserted (a size bound would flake with builds and allocators): see
    // scripts/bench-supervisor.sh and docs/performance.md.
    eprintln!(
        "supervisor {supervisor}: VmRSS {} kB, Pss {pss}, 1 thread",
        proc_status(supervisor, "VmRSS")
    );
    // Its exit is recorded by the engine's program, which it becomes again for that.
    ok(basic_docker(root, &["kill", "lean"]));
    assert_eq!(ok(basic_docker(root, &["wait", "lean"])), "137");
    assert_eq!(state(root, "lean"), "exited");
}

#[test]
fn a_flood_of_output_without_newlines_does_not_grow_the_supervisor() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["flood"]);
    // 12 MiB in one "line": the supervisor logs it in 16 KiB pieces as it reads, never
    // holding more than a piece and a read.
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "flood",
            "--log-opt",
            "max-size=1m",
            image,
            "sh",
            "-c",
            "yes x | head -c 25165824 | tr -d '\\n'; echo; echo flooded; exec sleep 1000",
        ],
    ));
    let (supervisor, _) = supervisor_of(root, "flood");
    eventually("the flood logged", || {
        ok(basic_docker(root, &["logs", "--tail", "1", "flood"])) == "flooded"
    });
    let rss = proc_status(supervisor, "VmRSS");
    eprintln!("supervisor {supervisor} after 12 MiB of output: VmRSS {rss} kB");
    // Loose on purpose (it is ~2.5 MB): holding the output would take 12 MiB and more.
    assert!(rss < 12 * 1024, "the supervisor grew to {rss} kB");
    assert_eq!(proc_status(supervisor, "Threads"), 1);
}

#[test]
fn a_killed_supervisor_or_a_wiped_state_never_loses_a_container() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["orphan"]);
    let id = ok(basic_docker(
        root,
        &["run", "-d", "--name", "orphan", image, "sleep", "1000"],
    ));
    // The handover to the small supervisor follows `run -d` (see the test above).
    basic_test_support::bounded::until(
        Duration::from_secs(10),
        "the supervisor of a running container becomes the small program",
        || {
            supervisor_of(root, "orphan")
                .1
                .starts_with("basic-docker-supervise ")
        },
    );
    let (supervisor, _) = supervisor_of(root, "orphan");
    let pid = inspect(root, "orphan")["State"]["Pid"].as_i64().unwrap();
    // The supervisor dies; the container still runs and is still reported so.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(supervisor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the supervisor gone", || {
        !Path::new(&format!("/proc/{supervisor}/cmdline")).exists()
            || std::fs::read(format!("/proc/{supervisor}/cmdline"))
                .unwrap_or_default()
                .is_empty()
    });
    assert_eq!(state(root, "orphan"), "running");
    // A machine-style crash: the processes die and /run is wiped.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    eventually("the init gone", || state(root, "orphan") != "running");
    std::fs::remove_dir_all(Path::new("/run/basic-docker").join(&id)).unwrap();
    let line = ps_line(root, "orphan", true).unwrap();
    assert!(line.contains("Exited (255)"), "{line}");
    assert!(ps_line(root, "orphan", false).is_none());
    // It starts again, and goes away cleanly, cgroup included.
    ok(basic_docker(root, &["start", "orphan"]));
    assert_eq!(state(root, "orphan"), "running");
    ok(basic_docker(root, &["rm", "-f", "orphan"]));
    assert!(!root.join("containers").join(&id).exists());
    assert!(
        !Path::new("/sys/fs/cgroup/pids/basic-docker")
            .join(&id)
            .exists()
    );
}

#[test]
fn two_starts_at_once_run_one_container() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["twice"]);
    ok(basic_docker(
        root,
        &["create", "--name", "twice", image, "sleep", "1000"],
    ));
    let spawn = || basic_docker(root, &["start", "twice"]);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a.status.success() && b.status.success(), "{a:?} {b:?}");
    assert_eq!(state(root, "twice"), "running");
    let id = inspect(root, "twice")["Id"].as_str().unwrap().to_string();
    let procs = std::fs::read_to_string(
        Path::new("/sys/fs/cgroup/pids/basic-docker")
            .join(&id)
            .join("cgroup.procs"),
    )
    .unwrap();
    assert_eq!(procs.lines().count(), 1, "one init: {procs}");
    ok(basic_docker(root, &["rm", "-f", "twice"]));
}

#[test]
fn container_prune_removes_only_stopped_containers() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    // Its own store: prune must not race the other tests' containers.
    let own = tempfile::tempdir().unwrap();
    let own_root = own.path();
    ok(basic_docker(own_root, &["pull", "-q", image]));
    let _ = root;
    let _cleanup = Cleanup::new(own_root, &["keep", "gone"]);
    ok(basic_docker(
        own_root,
        &["run", "-d", "--name", "keep", image, "sleep", "1000"],
    ));
    let gone = ok(basic_docker(
        own_root,
        &["run", "--name", "gone", image, "sh", "-c", "echo x > /file"],
    ));
    assert_eq!(gone, "");
    let out = ok(basic_docker(own_root, &["container", "prune", "-f"]));
    assert!(out.starts_with("Deleted Containers:"), "{out}");
    assert!(out.contains("Total reclaimed space: "), "{out}");
    assert!(!out.ends_with(" 0B"), "the written file counts: {out}");
    assert!(ps_line(own_root, "gone", true).is_none());
    assert!(ps_line(own_root, "keep", false).is_some());
    ok(basic_docker(own_root, &["rm", "-f", "keep"]));
}

#[test]
fn logs_rotate_by_size_and_keep_the_newest_lines() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["chatty"]);
    let id = ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "chatty",
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=2",
            image,
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo line-$i; i=$((i+1)); done",
        ],
    ));
    assert_eq!(ok(basic_docker(root, &["wait", "chatty"])), "0");
    let dir = root.join("containers").join(&id);
    let log = dir.join(format!("{id}-json.log"));
    assert!(log.exists() && dir.join(format!("{id}-json.log.1")).exists());
    assert!(
        !dir.join(format!("{id}-json.log.2")).exists(),
        "max-file=2 keeps two files"
    );
    assert!(std::fs::metadata(&log).unwrap().len() <= 1024);
    let lines = ok(basic_docker(root, &["logs", "chatty"]));
    assert!(lines.ends_with("line-199"), "{lines}");
    assert!(
        !lines.contains("line-0\n"),
        "the oldest lines were rotated away"
    );
    let err = basic_docker(root, &["run", "--log-opt", "max-size=lots", image, "true"]);
    assert_eq!(err.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&err.stderr).contains("invalid --log-opt max-size"));
}

#[test]
fn logs_follow_until_the_container_exits() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["follow"]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "follow",
            image,
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo step-$i; sleep 0.2; done",
        ],
    ));
    // Started while the container runs, `logs -f` ends with it, every line seen once.
    let out = ok(basic_docker(root, &["logs", "-f", "follow"]));
    assert_eq!(out, "step-1\nstep-2\nstep-3\nstep-4\nstep-5");
    assert_eq!(state(root, "follow"), "exited");
}

#[test]
fn stop_sends_the_images_stop_signal_first() {
    let Some((dir, _)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["quitter"]);
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs_tar(work.path());
    ok(basic_docker(
        root,
        &[
            "import",
            "-c",
            "STOPSIGNAL SIGUSR1",
            tar.to_str().unwrap(),
            "local/quitter:1",
        ],
    ));
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "quitter",
            "--network",
            "none",
            "local/quitter:1",
            "sh",
            "-c",
            "trap 'exit 9' USR1; echo ready; while true; do sleep 0.05; done",
        ],
    ));
    eventually("the trap set", || {
        ok(basic_docker(root, &["logs", "quitter"])).contains("ready")
    });
    // USR1, not SIGTERM then SIGKILL: the trap's own exit code.
    ok(basic_docker(root, &["stop", "-t", "5", "quitter"]));
    assert_eq!(inspect(root, "quitter")["State"]["ExitCode"], 9);
    assert_eq!(inspect(root, "quitter")["Config"]["StopSignal"], "SIGUSR1");
}

#[test]
fn system_df_counts_containers_and_the_images_they_use() {
    let Some((_, image)) = store() else { return };
    // Its own store: the counts must not see the other tests' containers.
    let own = tempfile::tempdir().unwrap();
    let root = own.path();
    ok(basic_docker(root, &["pull", "-q", image]));
    let _cleanup = Cleanup::new(root, &["df-idle", "df-busy"]);
    let row = |kind: &str| -> Vec<String> {
        ok(basic_docker(root, &["system", "df"]))
            .lines()
            .find(|l| l.starts_with(kind))
            .unwrap_or_else(|| panic!("no {kind} row"))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    let images = row("Images");
    assert_eq!(&images[1..3], ["1", "0"], "{images:?}");
    assert_eq!(
        images.last().unwrap(),
        "(100%)",
        "an unused image is reclaimable"
    );
    assert_eq!(&row("Containers")[1..3], ["0", "0"]);

    ok(basic_docker(
        root,
        &[
            "run",
            "--name",
            "df-idle",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            "head -c 300000 /dev/zero > /big",
        ],
    ));
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "df-busy",
            "--network",
            "none",
            image,
            "sleep",
            "1000",
        ],
    ));
    let images = row("Images");
    assert_eq!(&images[1..3], ["1", "1"], "{images:?}");
    assert_eq!(
        images.last().unwrap(),
        "(0%)",
        "an image in use is not reclaimable"
    );
    let containers = row("Containers");
    assert_eq!(&containers[1..3], ["2", "1"], "{containers:?}");
    assert_ne!(
        containers[3], "0B",
        "the written file counts: {containers:?}"
    );
    assert_ne!(
        containers[4], "0B",
        "the stopped container's layer is reclaimable: {containers:?}"
    );
    let info: Value =
        serde_json::from_str(&ok(basic_docker(root, &["info", "--format", "json"]))).unwrap();
    assert_eq!(info["Containers"], 2);
    assert_eq!(info["ContainersRunning"], 1);
    assert_eq!(info["ContainersStopped"], 1);
    assert_eq!(info["Images"], 1);
}

#[test]
fn rename_keeps_names_unique() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["before", "after", "taken"]);
    let id = ok(basic_docker(
        root,
        &["create", "--name", "before", image, "true"],
    ));
    ok(basic_docker(
        root,
        &["create", "--name", "taken", image, "true"],
    ));
    ok(basic_docker(root, &["rename", "before", "after"]));
    assert_eq!(inspect(root, &id)["Name"], "/after");
    assert!(ps_line(root, "after", true).is_some());
    let err = failed(&basic_docker(root, &["rename", "after", "taken"]));
    assert!(
        err.contains("The container name \"/taken\" is already in use"),
        "{err}"
    );
    let err = failed(&basic_docker(root, &["rename", "after", "bad name"]));
    // docker's wording: "Invalid container name (bad name), only [a-zA-Z0-9]...".
    assert!(err.contains("Invalid container name (bad name)"), "{err}");
    assert_eq!(inspect(root, &id)["Name"], "/after");
}

#[test]
fn ps_filters_by_status_name_and_exit_code() {
    let Some((_, image)) = store() else { return };
    let own = tempfile::tempdir().unwrap();
    let root = own.path();
    ok(basic_docker(root, &["pull", "-q", image]));
    let _cleanup = Cleanup::new(root, &["f-up", "f-zero", "f-two"]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "f-up",
            "--network",
            "none",
            image,
            "sleep",
            "1000",
        ],
    ));
    let zero = ok(basic_docker(
        root,
        &[
            "run",
            "--name",
            "f-zero",
            "--network",
            "none",
            image,
            "true",
        ],
    ));
    assert_eq!(zero, "");
    let two = basic_docker(
        root,
        &[
            "run",
            "--name",
            "f-two",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            "exit 2",
        ],
    );
    assert_eq!(two.status.code(), Some(2));
    let names = |filters: &[&str]| -> Vec<String> {
        let mut args = vec!["ps", "--format", "json"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        let mut names: Vec<String> = ok(basic_docker(root, &args))
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["Names"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(&[]), ["f-up"]);
    assert_eq!(names(&["status=exited"]), ["f-two", "f-zero"]);
    assert_eq!(names(&["exited=2"]), ["f-two"]);
    assert_eq!(names(&["status=exited", "name=zero"]), ["f-zero"]);
    assert_eq!(names(&["status=running", "status=exited"]).len(), 3);
    // The running one, by the image it was made from.
    let ancestor = format!("ancestor={image}");
    assert_eq!(names(&[&ancestor]), ["f-up"]);
    let err = failed(&basic_docker(root, &["ps", "--filter", "colour=blue"]));
    assert!(err.contains("invalid filter 'colour'"), "{err}");
}

#[test]
fn logs_since_and_until_select_by_time() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["timed"]);
    ok(basic_docker(
        root,
        &[
            "run",
            "--name",
            "timed",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            "echo early; sleep 1.5; echo late",
        ],
    ));
    let stamped = ok(basic_docker(root, &["logs", "-t", "timed"]));
    let late_at = stamped
        .lines()
        .find(|l| l.ends_with(" late"))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        ok(basic_docker(root, &["logs", "--since", &late_at, "timed"])),
        "late"
    );
    assert_eq!(
        ok(basic_docker(root, &["logs", "--until", &late_at, "timed"])),
        "early"
    );
    assert_eq!(
        ok(basic_docker(root, &["logs", "--since", "1h", "timed"])),
        "early\nlate"
    );
    assert_eq!(
        ok(basic_docker(root, &["logs", "--until", "1h", "timed"])),
        ""
    );
    let err = failed(&basic_docker(
        root,
        &["logs", "--since", "yesterday-ish", "timed"],
    ));
    assert!(err.contains("invalid time"), "{err}");
}

/// Takes a file's immutable flag away again, whatever the test's outcome.
struct Immutable(std::path::PathBuf);

/// `chattr FLAG PATH`, killed (and the test failed) past the command limit.
fn chattr(flag: &str, path: &Path) -> Output {
    basic_test_support::bounded::output_within(
        std::process::Command::new("chattr").arg(flag).arg(path),
        basic_test_support::bounded::COMMAND_LIMIT,
        &format!("chattr {flag} {}", path.display()),
    )
}

impl Immutable {
    fn set(path: std::path::PathBuf) -> Self {
        let out = chattr("+i", &path);
        assert!(out.status.success(), "chattr +i {}", path.display());
        Immutable(path)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        chattr("-i", &self.0);
    }
}

#[test]
fn an_auto_removed_container_whose_removal_fails_keeps_its_exit_code() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["rm-fails"]);
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(["run", "--rm", "--name", "rm-fails", "--network", "none"])
        .args([image.as_str(), "sh", "-c", "sleep 1; exit 3"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    eventually("the container's record", || {
        let out = basic_docker(root, &["inspect", "-f", "{{.Id}}", "rm-fails"]);
        id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        out.status.success()
    });
    // A file the removal cannot delete, below the container's directory, so that the
    // removal fails part of the way through (its `last-exit` may or may not be gone).
    let stuck = root.join("containers").join(&id).join("stuck");
    std::fs::create_dir(&stuck).unwrap();
    std::fs::write(stuck.join("file"), "").unwrap();
    let immutable = Immutable::set(stuck.join("file"));
    let out = basic_test_support::bounded::wait_with_output_within(
        run,
        Duration::from_secs(60),
        "run --rm whose removal fails",
    );
    // As docker: the container's code, and the failed removal said.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("removing container") && stderr.contains("Operation not permitted"),
        "{stderr}"
    );
    let left = inspect(root, "rm-fails");
    assert_eq!(left["State"]["Status"], "exited", "{left}");
    assert_eq!(left["State"]["ExitCode"], 3, "{left}");
    let line = ps_line(root, "rm-fails", true).unwrap();
    assert!(line.contains("Exited (3)"), "{line}");
    drop(immutable);
    ok(basic_docker(root, &["rm", "rm-fails"]));
    assert!(!root.join("containers").join(&id).exists());
}
