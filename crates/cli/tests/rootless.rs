//! Rootless mode: an ordinary user (made with subordinate ids by the test) pulls, runs,
//! execs and removes containers with the same commands, in a store of its own.
//! Root in CI: the user is created, and each test gives it a private XDG home.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use basic_test_support::bounded::{COMMAND_LIMIT, output_within};
use basic_test_support::image::ImageBuilder;
use basic_test_support::rootless::{RootlessUser, UserHome};
use basic_test_support::{harness, require_root};

/// An ordinary user's home with the two programs installed where the user can run them.
struct User {
    home: UserHome,
    program: PathBuf,
    registry: String,
}

impl User {
    fn new() -> Option<User> {
        if !require_root() {
            return None;
        }
        let registry = harness()?.open;
        let user = RootlessUser::ensure().expect("creating the test user");
        let home = UserHome::new(&user).expect("a home for the test user");
        let program = home
            .install(Path::new(env!("CARGO_BIN_EXE_basic-docker")))
            .unwrap();
        home.install(Path::new(env!("CARGO_BIN_EXE_basic-docker-supervise")))
            .unwrap();
        Some(User {
            home,
            program,
            registry,
        })
    }

    /// `basic-docker ARGS` as the user, with the harness registry reachable over HTTP.
    #[track_caller]
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.home.command(&self.program);
        cmd.arg("--insecure-registry")
            .arg(&self.registry)
            .args(args);
        output_within(
            &mut cmd,
            COMMAND_LIMIT,
            &format!("basic-docker {args:?} as the user"),
        )
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "basic-docker {args:?} as the user failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fixture(&self, name: &str) -> String {
        format!("{}/fixtures/{name}:latest", self.registry)
    }

    /// The user's store: `$XDG_DATA_HOME/basic-docker`.
    fn store(&self) -> PathBuf {
        self.home.data().join("basic-docker")
    }

    /// The mount table of the user's namespace holder.
    fn holder_mounts(&self) -> String {
        let pid = std::fs::read_to_string(self.home.runtime().join("basic-docker/ns-holder.pid"))
            .expect("the namespace holder's pid file");
        std::fs::read_to_string(format!("/proc/{}/mountinfo", pid.trim())).unwrap_or_default()
    }
}

/// Every path, owner, group, mode and type under the image's root, as `stat` in a
/// container sees them (the kernel's own directories left out).
const TREE: &str = "find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o \
                    -print | sort | xargs stat -c '%n %u %g %a %F'";

#[test]
fn an_ordinary_user_pulls_an_image_of_many_owners_and_sees_the_same_tree_as_root() {
    let Some(user) = User::new() else { return };
    let image = user.fixture("multilayer");
    user.ok(&["pull", "-q", &image]);
    let as_user = user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0",
        "--entrypoint",
        "sh",
        &image,
        "-c",
        TREE,
    ]);
    // The same image in a store of root's, for comparison.
    let root_store = tempfile::tempdir().unwrap();
    let root = root_store.path();
    let pull = common::basic_docker(
        root,
        &["--insecure-registry", &user.registry, "pull", "-q", &image],
    );
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let as_root = common::basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "0",
            "--entrypoint",
            "sh",
            &image,
            "-c",
            TREE,
        ],
    );
    assert!(
        as_root.status.success(),
        "{}",
        String::from_utf8_lossy(&as_root.stderr)
    );
    let as_root = String::from_utf8_lossy(&as_root.stdout);
    assert!(
        as_user.lines().count() > 300,
        "the tree is listed: {as_user}"
    );
    assert_eq!(
        as_user, as_root,
        "the user's container shows the tree root's shows"
    );
    assert!(
        as_user.contains("/srv/fixture 1234 5678 750 directory"),
        "{as_user}"
    );
    assert!(
        !as_user.contains("/usr/share/fixture-opaque/old1"),
        "the opaque directory hides what the lower layer had"
    );
    // On the host, the files of uid 1234 belong to the user's subordinate id for it, and
    // the store is the user's, under its XDG data directory.
    let store = user.store();
    let meta = std::fs::metadata(&store).expect("the store is under $XDG_DATA_HOME");
    assert_eq!(meta.uid(), user.home.user.uid);
    assert_eq!(meta.mode() & 0o066, 0, "the store is private to the user");
    let fixture_dirs = find_named(&store, "fixture", 12);
    assert!(
        !fixture_dirs.is_empty(),
        "srv/fixture is in the user's store"
    );
    for dir in fixture_dirs {
        let meta = std::fs::metadata(&dir).unwrap();
        if meta.is_dir() && dir.parent().is_some_and(|p| p.ends_with("srv")) {
            assert_eq!(
                meta.uid(),
                user.home.user.host_uid(1234),
                "{}",
                dir.display()
            );
        }
    }
}

#[test]
fn an_ordinary_user_runs_detached_containers_execs_reads_logs_and_removes_them() {
    let Some(user) = User::new() else { return };
    let image = user.fixture("busybox");
    user.ok(&["pull", "-q", &image]);
    let bind = user.home.home().join("bind");
    std::fs::create_dir(&bind).unwrap();
    std::os::unix::fs::chown(&bind, Some(user.home.user.uid), Some(user.home.user.gid)).unwrap();
    let volume = format!("{}:/shared", bind.display());
    let id = user.ok(&[
        "run",
        "-d",
        "--name",
        "worker",
        "--network",
        "none",
        "-v",
        &volume,
        &image,
        "sh",
        "-c",
        "echo started; echo by-root > /shared/by-root; touch /shared/by-1000; \
         chown 1000:1000 /shared/by-1000; echo written; exec sleep 300",
    ]);
    let id = id.trim();
    assert_eq!(id.len(), 64, "run -d prints the id: {id}");
    wait_for(
        || user.ok(&["logs", "worker"]).contains("written"),
        "the container's output",
    );
    assert_eq!(user.ok(&["logs", "worker"]), "started\nwritten\n");
    let ps = user.ok(&["ps"]);
    assert!(ps.contains("worker") && ps.contains("Up"), "{ps}");
    let exec = user.ok(&["exec", "worker", "sh", "-c", "id -u; cat /shared/by-root"]);
    assert_eq!(exec, "0\nby-root\n");
    // Root in the container is the user on the host; uid 1000 is a subordinate id.
    let by_root = std::fs::metadata(bind.join("by-root")).unwrap();
    assert_eq!(
        by_root.uid(),
        user.home.user.uid,
        "root's file belongs to the user"
    );
    assert_eq!(by_root.gid(), user.home.user.gid);
    let by_1000 = std::fs::metadata(bind.join("by-1000")).unwrap();
    assert_eq!(by_1000.uid(), user.home.user.host_uid(1000));
    user.ok(&["stop", "-t", "1", "worker"]);
    user.ok(&["rm", "worker"]);
    assert_eq!(user.ok(&["ps", "-aq"]), "");
    let mounts = user.holder_mounts();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(user.home.dir().to_str().unwrap()))
        .collect();
    assert!(left.is_empty(), "nothing stays mounted after rm: {left:?}");
    // A `--rm` run in the foreground gives its exit code.
    let out = user.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
}

#[test]
fn limits_without_cgroup_delegation_are_refused_with_a_reason() {
    let Some(user) = User::new() else { return };
    // cgroup v1 (this project's CI machines): no user gets cgroups of their own.
    if !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        eprintln!("cgroup v2 host: limits may work with delegation; not asserted here");
        return;
    }
    let image = user.fixture("busybox");
    user.ok(&["pull", "-q", &image]);
    for (flag, value) in [
        ("--memory", "64m"),
        ("--pids-limit", "10"),
        ("--cpus", "0.5"),
    ] {
        let out = user.run(&[
            "run",
            "--rm",
            "--network",
            "none",
            flag,
            value,
            &image,
            "true",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{flag}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains("rootless") && stderr.contains("cgroup"),
            "{stderr}"
        );
    }
    assert_eq!(
        user.ok(&["ps", "-aq"]),
        "",
        "a refused run leaves no container"
    );
    // Without limits the same run works.
    assert_eq!(
        user.ok(&["run", "--rm", "--network", "none", &image, "echo", "ok"]),
        "ok\n"
    );
}

#[test]
fn roots_store_and_the_users_store_do_not_see_each_other() {
    let Some(user) = User::new() else { return };
    let root_store = tempfile::tempdir().unwrap();
    let root = root_store.path();
    let busybox = user.fixture("busybox");
    let multilayer = user.fixture("multilayer");
    let pull = common::basic_docker(
        root,
        &[
            "--insecure-registry",
            &user.registry,
            "pull",
            "-q",
            &busybox,
        ],
    );
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    user.ok(&["pull", "-q", &multilayer]);
    let users = user.ok(&["images", "--format", "{{.Repository}}"]);
    assert_eq!(
        users.trim(),
        format!("{}/fixtures/multilayer", user.registry)
    );
    let roots = common::basic_docker(root, &["images", "--format", "{{.Repository}}"]);
    assert_eq!(
        String::from_utf8_lossy(&roots.stdout).trim(),
        format!("{}/fixtures/busybox", user.registry)
    );
    // The user cannot name root's store either: it is private to root.
    let out = user.run(&["--root", root.to_str().unwrap(), "images"]);
    assert!(
        !out.status.success(),
        "root's store is not the user's to read"
    );
}

#[test]
fn info_says_rootless_with_the_mapping_snapshotter_and_network() {
    let Some(user) = User::new() else { return };
    let info = user.ok(&["info"]);
    let u = &user.home.user;
    assert!(info.contains("Rootless: true"), "{info}");
    assert!(
        info.contains(&format!("0 {} 1", u.uid))
            && info.contains(&format!("1 {} {}", u.subuid_start, u.subuid_count)),
        "the id mapping: {info}"
    );
    assert!(info.contains("Storage Driver: overlay"), "{info}");
    assert!(info.contains("pasta"), "the network stack: {info}");
    assert!(info.contains(&user.store().display().to_string()), "{info}");
}

#[test]
fn a_hostile_image_cannot_reach_the_users_files_or_escape_the_id_range() {
    let Some(user) = User::new() else { return };
    // A file the user owns on the host, which the image aims at.
    let victim = user.home.home().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::chown(&victim, Some(user.home.user.uid), Some(user.home.user.gid)).unwrap();
    let escape = ImageBuilder::busybox()
        .layer(|l| {
            l.symlink("link", victim.to_str().unwrap());
        })
        .layer(|l| {
            l.file("link", b"overwritten through a link", 0o644);
            l.symlink("home", user.home.home().to_str().unwrap());
        })
        .layer(|l| {
            l.file(
                "home/victim",
                b"overwritten through a directory link",
                0o644,
            );
        })
        .push(&user.registry, "rootless/escape");
    let out = user.run(&["pull", "-q", &escape]);
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "untouched",
        "{out:?}"
    );
    if out.status.success() {
        let seen = user.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &escape,
            "cat",
            "/home/victim",
        ]);
        assert_eq!(seen, "overwritten through a directory link");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
    }
    // An owner outside the user's ids: refused, naming the member, and the store stays
    // consistent (the next pull works).
    let far = ImageBuilder::busybox()
        .layer(|l| {
            l.file_owned("far", b"x", 0o644, 3_000_000_000, 3_000_000_000);
        })
        .push(&user.registry, "rootless/far-owner");
    let out = user.run(&["pull", "-q", &far]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "an unmappable owner is refused");
    assert!(stderr.contains("far"), "names the member: {stderr}");
    user.ok(&["pull", "-q", &user.fixture("busybox")]);
    assert_eq!(
        user.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &user.fixture("busybox"),
            "echo",
            "ok"
        ]),
        "ok\n"
    );
}

#[test]
fn top_stats_and_pause_see_the_container_not_the_users_cgroup() {
    let Some(user) = User::new() else { return };
    let image = user.fixture("busybox");
    user.ok(&["pull", "-q", &image]);
    user.ok(&[
        "run",
        "-d",
        "--name",
        "pair",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "sleep 300 & exec sleep 301",
    ]);
    // Removed however the test ends: the home's cleanup kills the engine's processes,
    // not the container's.
    let _pair = Removed(&user, "pair");
    // On cgroup v1 the container has no cgroup of its own: it shares its user's (here
    // the host's root cgroup, full of other processes).
    let cgroup_v1 = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();

    // top: exactly the two sleeps, as the host sees them.
    let mut rows = Vec::new();
    wait_for(
        || {
            let top = user.ok(&["top", "pair"]);
            rows = top.lines().skip(1).map(str::to_string).collect();
            rows.len() == 2 && rows.iter().all(|r| r.contains("sleep 30"))
        },
        "top to list the two sleeps",
    );
    // CMD is the last column, after UID PID PPID C STIME TTY TIME.
    let mut commands: Vec<String> = rows
        .iter()
        .map(|r| r.split_whitespace().skip(7).collect::<Vec<_>>().join(" "))
        .collect();
    commands.sort_unstable();
    assert_eq!(commands, ["sleep 300", "sleep 301"], "{rows:?}");
    for row in &rows {
        // The PID column is a host pid running that very command.
        let pid = row.split_whitespace().nth(1).unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert!(cmdline.starts_with(b"sleep\0"), "{row}: {cmdline:?}");
    }

    // stats: two tasks and the sleeps' memory, not the cgroup's thousands.
    let stats = user.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.PIDs}} {{.CPUPerc}} {{.MemUsage}}",
        "pair",
    ]);
    eprintln!(
        "top as the user:\n{}\nstats as the user: {stats}",
        rows.join("\n")
    );
    let fields: Vec<&str> = stats.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "PIDs CPU% usage / limit: {stats}");
    assert_eq!(fields[0], "2", "two processes: {stats}");
    let cpu: f64 = fields[1].trim_end_matches('%').parse().unwrap();
    assert!(cpu < 25.0, "two sleeps use no CPU: {stats}");
    let usage = parse_size(fields[2]);
    assert!(
        usage > 0 && usage < 32 << 20,
        "two busybox sleeps hold well under 32 MiB: {stats}"
    );

    // monitor: the same processes, and it says where the numbers come from.
    let monitor = user.ok(&["monitor", "container", "pair"]);
    if cgroup_v1 {
        assert!(monitor.contains("no cgroup of its own"), "{monitor}");
    }
    let pids_row = monitor.lines().find(|l| l.starts_with("PIDs / limit"));
    assert_eq!(
        pids_row.map(|l| l.split_whitespace().collect::<Vec<_>>()),
        Some(vec!["PIDs", "/", "limit", "2", "/", "-"]),
        "{monitor}"
    );

    if cgroup_v1 {
        // pause: no freezer of its own, so refused (and nothing else frozen).
        let out = user.run(&["pause", "pair"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "pause is refused: {stderr}");
        assert!(
            stderr.contains("pause is not supported in rootless mode on cgroup v1"),
            "{stderr}"
        );
        let state = user.ok(&["inspect", "--format", "{{.State.Status}}", "pair"]);
        assert_eq!(state.trim(), "running");
        let out = user.run(&["unpause", "pair"]);
        assert!(!out.status.success(), "nothing to unpause");
    }
}

/// A container of the user's, removed (killed first) on drop.
struct Removed<'a>(&'a User, &'a str);

impl Drop for Removed<'_> {
    fn drop(&mut self) {
        let _ = self.0.run(&["rm", "-f", self.1]);
    }
}

/// `1.5MiB` in bytes.
fn parse_size(text: &str) -> u64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or_else(|_| panic!("a size: {text}"));
    let scale = match unit {
        "B" => 1u64,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => panic!("a unit: {text}"),
    };
    (number * scale as f64) as u64
}

/// Paths named `name` under `dir`, at most `depth` levels down, links not followed.
fn find_named(dir: &Path, name: &str, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name() == name {
            found.push(path.clone());
        }
        if depth > 0 && entry.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_named(&path, name, depth - 1));
        }
    }
    found
}

fn wait_for(mut done: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "waited 30 s for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
