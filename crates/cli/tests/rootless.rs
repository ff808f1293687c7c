//! Rootless mode: an ordinary user (made with subordinate ids by the test) pulls, runs,
//! execs and removes containers with the same commands, in a store of its own.
//! Root in CI: the user is created, and each test gives it a private XDG home.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::fs::PermissionsExt as _;
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
    /// Set for every command the user runs (a forced snapshotter, say).
    env: Vec<(&'static str, &'static str)>,
}

impl User {
    fn new() -> Option<User> {
        Self::made_by(RootlessUser::ensure)
    }

    fn made_by(make: fn() -> std::io::Result<RootlessUser>) -> Option<User> {
        if !require_root() {
            return None;
        }
        let registry = harness()?.open;
        let user = make().expect("creating the test user");
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
            env: Vec::new(),
        })
    }

    /// `basic-docker ARGS` as the user, with the harness registry reachable over HTTP.
    #[track_caller]
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.home.command(&self.program);
        cmd.envs(self.env.iter().copied())
            .arg("--insecure-registry")
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

    /// [`TREE`] in a container of `image`, run by the user.
    fn tree(&self, image: &str) -> String {
        self.ok(&tree_args(image))
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

/// `run` arguments listing [`TREE`] in a container of `image`, as its root.
fn tree_args(image: &str) -> [&str; 11] {
    [
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0",
        "--entrypoint",
        "sh",
        image,
        "-c",
        TREE,
    ]
}

#[test]
fn an_ordinary_user_pulls_an_image_of_many_owners_and_sees_the_same_tree_as_root() {
    let Some(user) = User::new() else { return };
    let image = user.fixture("multilayer");
    user.ok(&["pull", "-q", &image]);
    let as_user = user.tree(&image);
    let as_root = roots_tree(&user.registry, &image);
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

/// Where the kernel's overlayfs cannot be mounted in a user namespace (before 5.11),
/// rootless mode uses fuse-overlayfs; forced here, where both work. The user's
/// containers show the image as root's do (whiteouts, the opaque directory), their
/// changes (a deletion, a directory made anew, a new file) are what `diff` lists and
/// `commit` keeps, and nothing stays mounted or running after `rm`.
#[test]
fn an_ordinary_user_with_fuse_overlayfs_sees_the_image_commits_and_leaves_nothing_mounted() {
    let Some(mut user) = User::new() else { return };
    user.env
        .push(("BASIC_DOCKER_SNAPSHOTTER", "fuse-overlayfs"));
    let info = user.ok(&["info"]);
    assert!(info.contains("Storage Driver: fuse-overlayfs\n"), "{info}");
    let image = user.fixture("multilayer");
    user.ok(&["pull", "-q", &image]);
    let as_user = user.tree(&image);
    let as_root = roots_tree(&user.registry, &image);
    assert!(
        as_user.lines().count() > 300,
        "the tree is listed: {as_user}"
    );
    assert_eq!(
        as_user, as_root,
        "through fuse-overlayfs the user's container shows the tree root's shows"
    );
    assert!(!as_user.contains("/usr/share/fixture-opaque/old1"));
    assert!(!as_user.contains("/etc/fixture-delete-me"));

    user.ok(&[
        "run",
        "-d",
        "--name",
        "fused",
        "--network",
        "none",
        "--user",
        "0",
        "--entrypoint",
        "sleep",
        &image,
        "300",
    ]);
    let mounts = user.holder_mounts();
    assert!(
        mounts.lines().any(|l| l.contains(" - fuse.fuse-overlayfs ")
            && l.contains(user.home.dir().to_str().unwrap())),
        "the container's root is a fuse-overlayfs mount: {mounts}"
    );
    user.ok(&[
        "exec",
        "fused",
        "sh",
        "-c",
        "echo made > /made && rm /etc/fixture-layer && rm -r /usr/share/fixture-opaque && \
         mkdir /usr/share/fixture-opaque && echo fresh > /usr/share/fixture-opaque/fresh",
    ]);
    let diff = user.ok(&["diff", "fused"]);
    let mut diff: Vec<&str> = diff.lines().collect();
    diff.sort();
    assert_eq!(
        diff,
        [
            "A /made",
            "A /usr/share/fixture-opaque/fresh",
            "C /etc",
            "C /usr",
            "C /usr/share",
            "C /usr/share/fixture-opaque",
            "D /etc/fixture-layer",
            "D /usr/share/fixture-opaque/new1",
        ],
        "docker diff of the container, without fuse-overlayfs' own marks"
    );
    user.ok(&["commit", "fused", "fused-image:1"]);
    let seen = user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "0",
        "--entrypoint",
        "sh",
        "fused-image:1",
        "-c",
        "cat /made; ls -A /usr/share/fixture-opaque; test -e /etc/fixture-layer || echo deleted",
    ]);
    assert_eq!(seen, "made\nfresh\ndeleted\n", "the committed image");
    user.ok(&["rm", "-f", "fused"]);
    assert_eq!(user.ok(&["ps", "-aq"]), "");
    let home = user.home.dir().to_path_buf();
    let mounts = user.holder_mounts();
    let left: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(home.to_str().unwrap()))
        .collect();
    assert!(left.is_empty(), "nothing stays mounted after rm: {left:?}");
    // The processes that served the mounts end with them.
    wait_for(
        || fuse_overlayfs_processes(user.home.user.uid, &home).is_empty(),
        "the fuse-overlayfs processes to end",
    );
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
    // A running container's changes committed (it has no freezer to pause it with).
    user.ok(&["exec", "worker", "sh", "-c", "echo made > /made"]);
    user.ok(&["commit", "worker", "worker-image:1"]);
    let made = user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "worker-image:1",
        "cat",
        "/made",
    ]);
    assert_eq!(made, "made\n");
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
fn an_ordinary_user_builds_and_pushes_an_image_that_others_pull() {
    let Some(user) = User::new() else { return };
    let context = user.home.home().join("context");
    std::fs::create_dir(&context).unwrap();
    let base = user.fixture("busybox");
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {base}\nRUN echo built > /built && touch /owned && chown 1500:1500 /owned\n\
             COPY greeting /greeting\nUSER 1500\nCMD [\"cat\", \"/built\", \"/greeting\"]\n"
        ),
    )
    .unwrap();
    std::fs::write(context.join("greeting"), "hello\n").unwrap();
    for entry in [
        &context,
        &context.join("Dockerfile"),
        &context.join("greeting"),
    ] {
        std::os::unix::fs::chown(entry, Some(user.home.user.uid), Some(user.home.user.gid))
            .unwrap();
    }
    let tag = format!("{}/rootless/built:{}", user.registry, std::process::id());
    user.ok(&[
        "build",
        "--network",
        "none",
        "-q",
        "-t",
        &tag,
        context.to_str().unwrap(),
    ]);
    assert_eq!(
        user.ok(&["run", "--rm", "--network", "none", &tag]),
        "built\nhello\n"
    );
    let owners = user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &tag,
        "stat",
        "-c",
        "%n %u %g",
        "/owned",
        "/greeting",
    ]);
    assert_eq!(owners, "/owned 1500 1500\n/greeting 0 0\n");
    user.ok(&["push", &tag]);
    // Root pulls what the user pushed, in a store of its own, and sees the same.
    let root_store = tempfile::tempdir().unwrap();
    let root = root_store.path();
    let pull = common::basic_docker(
        root,
        &["--insecure-registry", &user.registry, "pull", "-q", &tag],
    );
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let run = common::basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &tag,
            "stat",
            "-c",
            "%n %u %g",
            "/owned",
            "/greeting",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout), owners, "{run:?}");
}

#[test]
fn dockers_cli_drives_the_users_api_socket() {
    let Some(user) = User::new() else { return };
    let image = user.fixture("busybox");
    user.ok(&["pull", "-q", &image]);
    let mut service = user.home.command(&user.program);
    service
        .args(["system", "service", "--time", "60"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut service = service.spawn().expect("starting the service as the user");
    // The default socket of rootless mode: in the user's runtime directory.
    let socket = user.home.runtime().join("basic-docker/docker.sock");
    wait_for(|| socket.exists(), "the service's socket");
    let host = format!("unix://{}", socket.display());
    let docker = |args: &[&str]| {
        let mut cmd = user.home.command("docker");
        cmd.arg("-H").arg(&host).args(args);
        output_within(
            &mut cmd,
            COMMAND_LIMIT,
            &format!("docker {args:?} as the user"),
        )
    };
    let run = docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "sh",
        "-c",
        "id -u; echo via-api",
    ]);
    let info = docker(&["info", "--format", "{{json .SecurityOptions}}"]);
    let _ = service.kill();
    let _ = service.wait();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "0\nvia-api\n",
        "{run:?}"
    );
    assert!(
        String::from_utf8_lossy(&info.stdout).contains("name=rootless"),
        "{info:?}"
    );
}

#[test]
fn a_user_without_subordinate_ids_gets_their_own_id_and_a_warning() {
    let Some(user) = User::made_by(RootlessUser::ensure_without_ranges) else {
        return;
    };
    let image = user.fixture("busybox");
    let out = user.run(&["pull", "-q", &image]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("WARNING")
            && stderr.contains("/etc/subuid")
            && stderr.contains("only your own id"),
        "the first command warns what will not work: {stderr}"
    );
    // An image whose files are all root's runs.
    let map = user.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "cat",
        "/proc/self/uid_map",
    ]);
    let map: Vec<&str> = map.split_whitespace().collect();
    let own = user.home.user.uid.to_string();
    assert_eq!(map, ["0", own.as_str(), "1"]);
    // One with other owners is refused with a reason naming the member, and nothing is left.
    let out = user.run(&["pull", "-q", &user.fixture("multilayer")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("srv/fixture"), "names the member: {stderr}");
    let images = user.ok(&["images", "-q"]);
    assert_eq!(images.lines().count(), 1, "only busybox: {images}");
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
    // overlay on this kernel, unless the run forces another.
    let driver = std::env::var("BASIC_DOCKER_SNAPSHOTTER").unwrap_or_else(|_| "overlay".into());
    assert!(
        info.contains(&format!("Storage Driver: {driver}\n")),
        "{info}"
    );
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

/// CVE-2019-5736 in rootless mode, where it matters most: the user's own `basic-docker`
/// belongs to the user, whom the container's root is. A hostile image lures the engine
/// into executing itself in the container (`/bin/evil` is a `#!/proc/self/exe` script);
/// the attacker in the container takes a handle on that process's `/proc/PID/exe` and
/// keeps trying to open it for writing. The binary must come out unchanged.
#[test]
fn a_rootless_container_cannot_reach_the_users_own_basic_docker_binary() {
    use basic_test_support::engine_binary::{AttackReport, BinaryCopy, dynamic_linking};
    let Some(user) = User::new() else { return };
    let Some(attacker) = basic_test_support::programs::static_program(
        "exe-attacker",
        include_str!("attacks/exe_attacker.c"),
    ) else {
        return;
    };
    let owner = (user.home.user.uid, user.home.user.gid);
    let copy = BinaryCopy::owned_by(
        Path::new(env!("CARGO_BIN_EXE_basic-docker")),
        &[Path::new(env!("CARGO_BIN_EXE_basic-docker-supervise"))],
        &user.home.dir().join("bin"),
        owner,
    );
    let linking = dynamic_linking(copy.path()).expect("basic-docker is dynamically linked");
    let image = ImageBuilder::busybox()
        .layer(|l| {
            l.copy("exe-attacker", &attacker, 0o755);
            l.file("bin/evil", b"#!/proc/self/exe\n", 0o755);
            linking.stall_in_layer(l);
        })
        .push(&user.registry, "rootless/exe-attack");
    let out = user.home.home().join("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(owner.0), Some(owner.1)).unwrap();
    let with_copy = |args: &[&str]| {
        let mut cmd = user.home.command(copy.path());
        cmd.arg("--insecure-registry")
            .arg(&user.registry)
            .args(args);
        output_within(
            &mut cmd,
            COMMAND_LIMIT,
            &format!("basic-docker {args:?} (the user's copy)"),
        )
    };
    let volume = format!("{}:/out", out.display());
    let mut run = vec![
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "attacker",
        "-v",
        &volume,
        &image,
        "/exe-attacker",
        "/proc/self/exe",
        "/out/report",
    ];
    let libraries = linking.library_paths();
    run.extend(libraries.iter().map(String::as_str));
    let started = with_copy(&run);
    assert!(started.status.success(), "{started:?}");
    let report_path = out.join("report");
    let wait = std::time::Duration::from_secs(60);
    let report = AttackReport::wait(&report_path, wait, AttackReport::started);
    assert!(report.started(), "the attacker never started");
    let exec = with_copy(&["exec", "attacker", "/bin/evil"]);
    let report = AttackReport::wait(&report_path, wait, AttackReport::finished);
    report.assert_nothing_reached(&copy, &format!("rootless exec /bin/evil ({})", exec.status));
    with_copy(&["rm", "-f", "attacker"]);
}

/// [`TREE`] in a container of `image` run by root, from a store of root's (overlayfs
/// on the host: what the user's container must show too).
fn roots_tree(registry: &str, image: &str) -> String {
    let root_store = tempfile::tempdir().unwrap();
    let root = root_store.path();
    let pull = common::basic_docker(
        root,
        &["--insecure-registry", registry, "pull", "-q", image],
    );
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let as_root = common::basic_docker(root, &tree_args(image));
    assert!(
        as_root.status.success(),
        "{}",
        String::from_utf8_lossy(&as_root.stderr)
    );
    String::from_utf8_lossy(&as_root.stdout).into_owned()
}

/// The fuse-overlayfs processes of `uid` whose command line names `dir`.
fn fuse_overlayfs_processes(uid: u32, dir: &Path) -> Vec<String> {
    let needle = dir.to_str().unwrap();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if meta.uid() == uid && cmdline.starts_with("fuse-overlayfs") && cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
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

/// A one-response HTTP server on the host's `127.0.0.1`, answering `body` to every request.
fn host_http_server(body: &'static str) -> u16 {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(5)));
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request);
            let response = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(response.as_bytes());
        }
    });
    port
}

/// What the server at `127.0.0.1:port` says on connecting, if anything (bounded).
fn read_from_host_port(port: u16) -> Option<String> {
    use std::io::Read as _;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    (!text.is_empty()).then_some(text)
}

/// pasta opens /dev/net/tun as the user. Distributions make it 0666; on a machine where
/// it is narrower, the user's namespace holder (only) gets a 0666 node of the same
/// device, made by the test in the user's home. Returns whether that was needed.
fn usable_tun_for(user: &User) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata("/dev/net/tun")
        .unwrap()
        .permissions()
        .mode();
    if mode & 0o006 == 0o006 {
        return false;
    }
    let node = user.home.dir().join("tun");
    let made = std::process::Command::new("mknod")
        .arg(&node)
        .args(["c", "10", "200"])
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o666)).unwrap();
    let pid = std::fs::read_to_string(user.home.runtime().join("basic-docker/ns-holder.pid"))
        .expect("the namespace holder's pid file");
    let mut bind = std::process::Command::new("nsenter");
    bind.args(["-t", pid.trim(), "-m", "mount", "--bind"])
        .arg(&node)
        .arg("/dev/net/tun");
    let out = output_within(&mut bind, COMMAND_LIMIT, "binding a tun node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// The user's pasta processes that serve namespaces of this test's home.
fn pastas_of(user: &User) -> Vec<String> {
    let needle = user.home.dir().to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.starts_with("pasta ") && cmdline.contains(&needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
fn an_ordinary_users_container_publishes_ports_and_reaches_the_host_through_pasta() {
    let Some(user) = User::new() else { return };
    let image = user.fixture("busybox");
    user.ok(&["pull", "-q", &image]);
    if usable_tun_for(&user) {
        eprintln!("/dev/net/tun is not 0666 here: the user's namespace got a usable node");
    }

    let refused = user.run(&["run", "-d", "-p", "80:80", &image, "true"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("cannot publish host port 80")
            && stderr.contains("net.ipv4.ip_unprivileged_port_start"),
        "a privileged port is refused by name: {stderr}"
    );
    assert_eq!(user.ok(&["ps", "-aq"]), "", "nothing was created for it");

    let host_port = host_http_server("hello from the host\n");
    let published = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    user.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("127.0.0.1:{published}:8080"),
        &image,
        "sh",
        "-c",
        "while true; do echo hello from the container | nc -l -p 8080; done",
    ]);
    wait_for(
        || read_from_host_port(published).is_some_and(|t| t.contains("hello from the container")),
        "the published port answering from the container",
    );

    let ip = user.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"]);
    let gateway = user.ok(&["inspect", "-f", "{{.NetworkSettings.Gateway}}", "web"]);
    let (ip, gateway) = (ip.trim(), gateway.trim());
    assert!(
        ip.parse::<std::net::Ipv4Addr>().is_ok(),
        "inspect shows the address: {ip:?}"
    );
    let addr = user.ok(&["exec", "web", "ip", "-4", "-o", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("inet {ip}/")), "{addr}");
    // IPv4 only, as docker's default bridge network.
    let v6 = user.ok(&[
        "exec", "web", "ip", "-6", "-o", "addr", "show", "scope", "global",
    ]);
    assert_eq!(v6, "", "an IPv6 address on the default network");
    let port = user.ok(&["port", "web"]);
    assert!(
        port.contains(&format!("8080/tcp -> 127.0.0.1:{published}")),
        "{port}"
    );

    // The host's 127.0.0.1 through the gateway address.
    let url = format!("http://{gateway}:{host_port}/");
    let fetched = user.ok(&["exec", "web", "wget", "-q", "-O", "-", &url]);
    assert_eq!(fetched, "hello from the host\n");
    let resolv = user.ok(&["exec", "web", "cat", "/etc/resolv.conf"]);
    assert!(resolv.starts_with("nameserver 169.254.1.1\n"), "{resolv}");

    assert_eq!(pastas_of(&user).len(), 1, "one pasta for the container");
    user.ok(&["rm", "-f", "web"]);
    assert_eq!(pastas_of(&user), Vec::<String>::new(), "rm stops it");
    assert!(
        read_from_host_port(published).is_none(),
        "the port is closed"
    );

    // A `--rm` run on the default network: pasta configures the namespace while the
    // container is made, and the command runs only once that is done: its very first look
    // finds eth0's address, the default route, and that address for its own name in
    // /etc/hosts. Its teardown (in the background) stops pasta.
    let script = format!(
        "ip -4 -o addr show eth0; ip route show default; grep -w \"$(hostname)\" /etc/hosts; \
         wget -q -O - {url}"
    );
    let seen = user.ok(&["run", "--rm", &image, "sh", "-c", &script]);
    let address = seen
        .split("inet ")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address on eth0 at the first instruction: {seen}"));
    assert!(seen.contains("default via "), "no default route: {seen}");
    assert!(
        seen.lines().any(|l| l.starts_with(&format!("{address}\t"))),
        "/etc/hosts lacks the address {address}: {seen}"
    );
    assert!(seen.ends_with("hello from the host\n"), "{seen}");
    wait_for(
        || pastas_of(&user).is_empty(),
        "the --rm container's pasta stopping",
    );
}

#[test]
fn a_pasta_failing_while_the_container_is_made_fails_the_start_and_leaves_nothing() {
    let Some(mut user) = User::new() else { return };
    let image = user.fixture("busybox");
    user.ok(&["pull", "-q", &image]);
    usable_tun_for(&user);
    // pasta configures the namespace while the container is made; this one fails the way
    // a real one does without a usable tun device, after the container's processes exist.
    let fake = user.home.home().join("fake-bin");
    std::fs::create_dir(&fake).unwrap();
    std::fs::write(
        fake.join("pasta"),
        "#!/bin/sh\nsleep 0.2\necho 'Failed to open tun socket in namespace' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(fake.join("pasta"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path: &'static str =
        Box::leak(format!("{}:/usr/bin:/bin", fake.display()).into_boxed_str());
    user.env.push(("PATH", path));
    let marker = user.home.home().join("ran");
    let out = user.run(&[
        "run",
        "--name",
        "gated",
        "-v",
        &format!("{}:/out", user.home.home().display()),
        &image,
        "touch",
        "/out/ran",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("starting pasta") && stderr.contains("Failed to open tun socket"),
        "the start names pasta and what it said: {stderr}"
    );
    assert!(!marker.exists(), "the command ran without its network");
    let state = user.ok(&[
        "inspect",
        "-f",
        "{{.State.Running}} {{.State.ExitCode}}",
        "gated",
    ]);
    assert_eq!(state.trim(), "false 125");
    // Nothing of the attachment is left: no namespace, no record, no pasta.
    for dir in [
        user.home.runtime().join("basic-docker/netns"),
        user.store().join("networks/cache"),
    ] {
        let left: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
    }
    assert_eq!(pastas_of(&user), Vec::<String>::new());

    // With a working pasta the same container starts.
    user.env.retain(|(name, _)| *name != "PATH");
    user.ok(&["start", "-a", "gated"]);
    assert!(
        marker.exists(),
        "the command ran once its network was there"
    );
    user.ok(&["rm", "gated"]);
}

#[test]
fn user_defined_networks_are_refused_in_rootless_mode_with_the_reason() {
    let Some(user) = User::new() else { return };
    let image = user.fixture("busybox");
    user.ok(&["pull", "-q", &image]);
    let reason = "rootless mode supports the default network (through pasta), none and host";
    let out = user.run(&["network", "create", "mynet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(reason), "{stderr}");
    let out = user.run(&["run", "--rm", "--network", "mynet", &image, "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains(reason), "{stderr}");
    assert_eq!(user.ok(&["ps", "-aq"]), "", "nothing was created for it");
    // The host's network still works: its default interface, with the host's own MAC
    // (pasta's interface has another).
    let routes = std::fs::read_to_string("/proc/net/route").unwrap();
    let iface = routes
        .lines()
        .skip(1)
        .find(|l| l.split_whitespace().nth(1) == Some("00000000"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the host's default route")
        .to_string();
    let mac_file = format!("/sys/class/net/{iface}/address");
    let mac = std::fs::read_to_string(&mac_file).unwrap();
    let out = user.ok(&["run", "--rm", "--network", "host", &image, "cat", &mac_file]);
    assert_eq!(out, mac, "--network host sees the host's {iface}");
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
