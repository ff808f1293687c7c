//! Rootless `basic-runtime`, run by an ordinary user (the test user of
//! `basic_test_support::rootless`, with subordinate ids and a private XDG home per test):
//!
//! - directly, as runc's rootless mode: `spec --rootless`, a user namespace of the
//!   container's own, state under `$XDG_RUNTIME_DIR/basic-runtime`;
//! - as a rootless engine runs it: root inside a user namespace the user made (the
//!   engine's pause process; here `unshare --user --map-root-user --mount`), with a spec
//!   that has no user namespace of its own, sharing the host's network or with its own;
//! - under podman rootless, with an image pulled from the harness registry.
//!
//! This machine's cgroups are v1, which cannot be delegated: containers without limits run
//! without a cgroup of their own, and limits are refused with an error that says why.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use basic_test_support::bounded;
use basic_test_support::rootless::{RootlessUser, UserHome};
use serde_json::{Value, json};

/// The test user's home with our binary installed where the user can run it.
struct Rootless {
    home: UserHome,
    bin: PathBuf,
}

impl Rootless {
    fn new() -> Option<Rootless> {
        if !common::ready() {
            return None;
        }
        for (program, what) in [
            ("/usr/bin/newuidmap", "newuidmap (Debian's uidmap)"),
            ("/usr/bin/unshare", "unshare (util-linux)"),
            ("/usr/bin/nsenter", "nsenter (util-linux)"),
        ] {
            if !basic_test_support::prerequisite(Path::new(program).exists(), what) {
                return None;
            }
        }
        let user = RootlessUser::ensure().expect("the rootless test user");
        let home = UserHome::new(&user).expect("a home for the rootless test user");
        let bin = home.install(Path::new(common::BIN)).unwrap();
        Some(Rootless { home, bin })
    }

    fn uid(&self) -> u32 {
        self.home.user.uid
    }

    /// `$XDG_RUNTIME_DIR/basic-runtime`, the state root the user gets by default.
    fn default_state(&self) -> PathBuf {
        self.home.runtime().join("basic-runtime")
    }

    /// A busybox bundle owned by the user, with `config.json` from `spec`.
    fn bundle(&self, name: &str, spec: &Value) -> PathBuf {
        let dir = self.home.dir().join(name);
        common::make_rootfs(&dir.join("rootfs"));
        write_json(&dir.join("config.json"), spec);
        self.chown(&dir);
        dir
    }

    /// A directory the user owns (a volume, or the target of an attack).
    fn user_dir(&self, name: &str) -> PathBuf {
        let dir = self.home.dir().join(name);
        std::fs::create_dir(&dir).unwrap();
        self.chown(&dir);
        dir
    }

    fn chown(&self, path: &Path) {
        let owner = format!("{}:{}", self.home.user.uid, self.home.user.gid);
        let status = Command::new("chown")
            .args(["-R", "-h", &owner])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chown {}", path.display());
    }

    /// `basic-runtime ARGS` as the user.
    fn runtime(&self, args: &[&str]) -> Output {
        let mut cmd = self.home.command(&self.bin);
        cmd.args(args);
        output(cmd)
    }

    /// `basic-runtime spec --rootless` as the user, in a fresh directory: the JSON.
    fn rootless_spec(&self) -> Value {
        let dir = self.user_dir("spec");
        let mut cmd = self.home.command(&self.bin);
        cmd.args(["spec", "--rootless"]).current_dir(&dir);
        let out = output(cmd);
        assert_success(&out, "spec --rootless");
        // Never over a config.json that is there, as runc.
        let mut again = self.home.command(&self.bin);
        again.args(["spec", "--rootless"]).current_dir(&dir);
        let out = output(again);
        assert!(
            !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("exists"),
            "spec over an existing config.json: {out:?}"
        );
        let spec: Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        spec
    }
}

/// A process of the user's holding a user namespace (the user is root in it) and a mount
/// namespace, as a rootless engine's pause process does; killed on drop.
struct Holder {
    child: Child,
}

/// Which ids the holder's namespace maps.
#[derive(Clone, Copy, PartialEq)]
enum Ids {
    /// The user's own, as root (`unshare --map-root-user`).
    Own,
    /// The user's own as root, then its subordinate ids from 1 on (`newuidmap`), as
    /// podman's and basic-docker's rootless namespaces do.
    Subordinate,
}

impl Holder {
    fn new(r: &Rootless, ids: Ids) -> Holder {
        let mut cmd = r.home.command("unshare");
        cmd.args(["--user", "--mount"]);
        if ids == Ids::Own {
            cmd.arg("--map-root-user");
        }
        let child = cmd
            .args(["sleep", "600"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let holder = Holder { child };
        let pid = holder.child.id().to_string();
        let user = &r.home.user;
        if ids == Ids::Subordinate {
            // Once unshare has exec'd sleep, its namespace exists.
            let comm = holder.proc_file("comm");
            bounded::until(Duration::from_secs(10), "unshare to exec sleep", || {
                std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep")
            });
            let subgid = subgid_start();
            for (helper, id, sub) in [
                ("newuidmap", user.uid, user.subuid_start),
                ("newgidmap", user.gid, subgid),
            ] {
                let mut cmd = r.home.command(helper);
                cmd.args([
                    &pid,
                    "0",
                    &id.to_string(),
                    "1",
                    "1",
                    &sub.to_string(),
                    "65536",
                ]);
                assert_success(&output(cmd), helper);
            }
        }
        let map = holder.proc_file("uid_map");
        let uid = user.uid.to_string();
        bounded::until(Duration::from_secs(10), "the holder's uid map", || {
            std::fs::read_to_string(&map).is_ok_and(|m| {
                m.lines()
                    .next()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>())
                    == Some(vec!["0", &uid, "1"])
            })
        });
        holder
    }

    fn proc_file(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/{name}", self.child.id()))
    }

    /// `basic-runtime ARGS` as the user, entered into the holder's namespaces (where the
    /// user is root): the engine's case.
    fn runtime(&self, r: &Rootless, args: &[&str]) -> Output {
        let mut cmd = r.home.command("nsenter");
        cmd.args([
            "-t",
            &self.child.id().to_string(),
            "-U",
            "-m",
            "--preserve-credentials",
        ])
        .arg(&r.bin)
        .args(args);
        output(cmd)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `common::output`, retried while the program is "busy": each test copies the binary
/// into its user's home, and a child another test forks meanwhile holds the copy open for
/// writing until it execs (the kernel then refuses to execute it, ETXTBSY, for a moment).
fn output(mut cmd: Command) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let what = format!("{cmd:?}");
    let mut tries = 0;
    let mut child = loop {
        let spawned = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn();
        match spawned {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("starting {what}: {e}"),
        }
    };
    let status = bounded::wait_within(&mut child, bounded::COMMAND_LIMIT, &what);
    Output {
        status,
        stdout: std::fs::read(&out).unwrap(),
        stderr: std::fs::read(&err).unwrap(),
    }
}

/// The test user's first subordinate gid.
fn subgid_start() -> u32 {
    let text = std::fs::read_to_string("/etc/subgid").unwrap();
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 3 && f[0] == basic_test_support::rootless::USER)
                .then(|| f[1].parse().ok())?
        })
        .expect("the test user has subordinate gids")
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

#[track_caller]
fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `spec` running `script` with `sh -c`, without a terminal.
fn with_script(mut spec: Value, script: &str) -> Value {
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(["sh", "-c", script]);
    spec
}

fn add_bind(spec: &mut Value, source: &Path, destination: &str) {
    spec["mounts"].as_array_mut().unwrap().push(json!({
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", "rw"],
    }));
}

/// The entries of a state root (none once every container was deleted).
#[track_caller]
fn assert_empty_state(root: &Path) {
    let left: Vec<_> = std::fs::read_dir(root)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{} still holds {left:?}", root.display());
}

/// docker's spec (`default_spec`) for the engine's case: no user namespace of its own;
/// the host's network namespace (`--network host`) when `host_network`.
fn engine_spec(script: &str, host_network: bool) -> Value {
    let spec =
        basic_runtime::default_spec(vec!["sh".into(), "-c".into(), script.into()], vec![], "/")
            .unwrap();
    let mut spec = serde_json::to_value(&spec).unwrap();
    spec["root"] = json!({"path": "rootfs"});
    let namespaces = spec["linux"]["namespaces"].as_array_mut().unwrap();
    assert!(!namespaces.iter().any(|n| n["type"] == "user"));
    if host_network {
        namespaces.retain(|n| n["type"] != "network");
    }
    spec
}

/// What the container scripts below print about the kernel's view of them.
const PROBE: &str = "echo uid=$(id -u); \
     echo seccomp=$(grep '^Seccomp:' /proc/self/status | cut -f2); \
     echo > /dev/null && echo devnull=ok; \
     for m in /proc /dev/pts /dev/mqueue /sys; do \
       grep -q \" $m \" /proc/mounts && echo mounted=$m; done; \
     echo sys=$(grep ' /sys ' /proc/mounts | tail -1 | cut -d' ' -f4 | cut -d, -f1); \
     echo net=$(ls /sys/class/net | tr '\\n' ' ')";

#[test]
fn a_user_runs_a_rootless_bundle_and_its_files_are_the_users() {
    let Some(r) = Rootless::new() else { return };
    let volume = r.user_dir("volume");
    let mut spec = with_script(
        r.rootless_spec(),
        &format!("{PROBE}; echo written > /data/file; echo done"),
    );
    add_bind(&mut spec, &volume, "/data");
    // What runc's spec --rootless writes.
    let linux = &spec["linux"];
    assert_eq!(
        linux["uidMappings"],
        json!([{"containerID": 0, "hostID": r.uid(), "size": 1}])
    );
    assert!(
        linux["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "user")
    );
    let bundle = r.bundle("bundle", &spec);
    let out = r.runtime(&["run", "--bundle", bundle.to_str().unwrap(), "rl-run"]);
    assert_success(&out, "run as the user");
    let text = stdout(&out);
    for line in [
        "uid=0",
        "seccomp=2",
        "devnull=ok",
        "mounted=/proc",
        "mounted=/dev/pts",
        "mounted=/dev/mqueue",
        "mounted=/sys",
        "sys=ro",
        "done",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    let file = volume.join("file");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "written\n");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (r.uid(), r.home.user.gid),
        "root in the container is the user on the host"
    );
    // runc's default for an ordinary user, and nothing left there.
    assert!(
        r.default_state().is_dir(),
        "no state root under $XDG_RUNTIME_DIR"
    );
    assert_empty_state(&r.default_state());
}

#[test]
fn a_user_creates_starts_execs_kills_and_deletes() {
    let Some(r) = Rootless::new() else { return };
    let spec = with_script(r.rootless_spec(), "echo started; exec sleep 600");
    let bundle = r.bundle("bundle", &spec);
    let b = bundle.to_str().unwrap();
    assert_success(&r.runtime(&["create", "--bundle", b, "rl-life"]), "create");
    let state: Value = serde_json::from_slice(&r.runtime(&["state", "rl-life"]).stdout).unwrap();
    assert_eq!(state["status"], "created");
    assert_success(&r.runtime(&["start", "rl-life"]), "start");
    let state: Value = serde_json::from_slice(&r.runtime(&["state", "rl-life"]).stdout).unwrap();
    assert_eq!(state["status"], "running", "{state}");
    // The init is the user's process on the host, in no cgroup of the container's own.
    let pid = state["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(2),
        Some(r.uid().to_string().as_str())
    );
    let exec = r.runtime(&["exec", "rl-life", "sh", "-c", "id -u; cat /proc/1/cmdline"]);
    assert_success(&exec, "exec");
    assert_eq!(stdout(&exec), "0\nsleep\x00600\x00");
    assert_success(&r.runtime(&["kill", "rl-life", "KILL"]), "kill");
    bounded::until(Duration::from_secs(20), "the init to die", || {
        serde_json::from_slice::<Value>(&r.runtime(&["state", "rl-life"]).stdout)
            .is_ok_and(|s| s["status"] == "stopped")
    });
    assert_success(&r.runtime(&["delete", "rl-life"]), "delete");
    assert!(!r.runtime(&["state", "rl-life"]).status.success());
    assert_empty_state(&r.default_state());
}

#[test]
fn subordinate_ids_are_mapped_through_newuidmap() {
    let Some(r) = Rootless::new() else { return };
    let volume = r.user_dir("volume");
    let user = &r.home.user;
    let mut spec = with_script(
        r.rootless_spec(),
        "touch /data/owned && chown 1000:1000 /data/owned && cat /proc/self/uid_map",
    );
    add_bind(&mut spec, &volume, "/data");
    let maps = json!([
        {"containerID": 0, "hostID": user.uid, "size": 1},
        {"containerID": 1, "hostID": user.subuid_start, "size": 65536},
    ]);
    spec["linux"]["uidMappings"] = maps.clone();
    spec["linux"]["gidMappings"] = json!([
        {"containerID": 0, "hostID": user.gid, "size": 1},
        {"containerID": 1, "hostID": user.subuid_start, "size": 65536},
    ]);
    let bundle = r.bundle("bundle", &spec);
    let out = r.runtime(&["run", "--bundle", bundle.to_str().unwrap(), "rl-subids"]);
    assert_success(&out, "run with subordinate ids");
    let lines: Vec<Vec<String>> = stdout(&out)
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let meta = std::fs::metadata(volume.join("owned")).unwrap();
    assert_eq!(
        meta.uid(),
        user.host_uid(1000),
        "uid 1000 is a subordinate id"
    );
    assert_eq!(meta.gid(), user.subuid_start + 999, "the gid map too");
    assert_empty_state(&r.default_state());
}

/// The engine's case, sharing the host's network namespace and with one of its own.
#[test]
fn root_in_the_users_namespace_runs_docker_specs() {
    let Some(r) = Rootless::new() else { return };
    let holder = Holder::new(&r, Ids::Own);
    let host_net: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for shares_host in [true, false] {
        let bundle = r.bundle(
            &format!("bundle-{shares_host}"),
            &engine_spec(PROBE, shares_host),
        );
        let id = format!("rl-engine-{shares_host}");
        let out = holder.runtime(&r, &["run", "--bundle", bundle.to_str().unwrap(), &id]);
        assert_success(
            &out,
            &format!("run (sharing the host's network: {shares_host})"),
        );
        let text = stdout(&out);
        for line in [
            "uid=0",
            "seccomp=2",
            "devnull=ok",
            "mounted=/proc",
            "mounted=/dev/pts",
            "mounted=/dev/mqueue",
            "mounted=/sys",
            "sys=ro",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        let net = text
            .lines()
            .find_map(|l| l.strip_prefix("net="))
            .unwrap_or_default();
        let seen: Vec<&str> = net.split_whitespace().collect();
        match shares_host {
            // The host's /sys, bound: its interfaces.
            true => assert!(
                seen.iter()
                    .any(|i| *i != "lo" && host_net.iter().any(|h| h == i)),
                "host network, yet the container's /sys shows {seen:?} (host: {host_net:?})"
            ),
            // A sysfs of its own network namespace.
            false => assert_eq!(seen, ["lo"]),
        }
    }
    // Under the user's XDG runtime dir (runc's rule for root in a user namespace that
    // is not the host's root), and nothing left.
    assert_empty_state(&r.default_state());
}

/// The engine's case in a namespace with the user's subordinate ids: a container user
/// other than root is a subordinate id on the host, and devpts keeps its tty group.
#[test]
fn a_container_user_is_a_subordinate_id_in_the_engines_namespace() {
    let Some(r) = Rootless::new() else { return };
    let holder = Holder::new(&r, Ids::Subordinate);
    let volume = r.user_dir("volume");
    std::fs::set_permissions(&volume, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let mut spec = engine_spec(
        "id -u; id -g; touch /data/by-1000; grep ' /dev/pts ' /proc/mounts",
        false,
    );
    spec["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    add_bind(&mut spec, &volume, "/data");
    let bundle = r.bundle("bundle", &spec);
    let out = holder.runtime(
        &r,
        &["run", "--bundle", bundle.to_str().unwrap(), "rl-subid"],
    );
    assert_success(&out, "run as uid 1000");
    let text = stdout(&out);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("1000"), "{text}");
    assert_eq!(lines.next(), Some("1000"), "{text}");
    // The kernel shows devpts' gid as the host sees it: the tty group, 5, is a
    // subordinate gid, mapped (the fallback for an unmapped one was not needed).
    let tty = format!("gid={}", subgid_start() + 4);
    assert!(
        text.contains(&tty),
        "devpts without the tty group ({tty}): {text}"
    );
    let meta = std::fs::metadata(volume.join("by-1000")).unwrap();
    assert_eq!(meta.uid(), r.home.user.host_uid(1000));
    assert_eq!(meta.gid(), subgid_start() + 999);
    assert_empty_state(&r.default_state());
}

/// `--ipc host` in the engine's case: no new mqueue can be mounted for an IPC namespace
/// the user namespace does not own; the host's /dev/mqueue is bound, or, on a host
/// without one (this machine), the error says what to change.
#[test]
fn the_hosts_ipc_namespace_gets_the_hosts_mqueue_or_a_clear_error() {
    let Some(r) = Rootless::new() else { return };
    let holder = Holder::new(&r, Ids::Own);
    let mut spec = engine_spec("grep ' /dev/mqueue ' /proc/mounts", false);
    spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "ipc");
    let bundle = r.bundle("bundle", &spec);
    let out = holder.runtime(&r, &["run", "--bundle", bundle.to_str().unwrap(), "rl-ipc"]);
    let err = String::from_utf8_lossy(&out.stderr);
    if Path::new("/dev/mqueue").is_dir() {
        assert_success(&out, "run with the host's IPC namespace");
        assert!(stdout(&out).contains("mqueue"), "{}", stdout(&out));
    } else {
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("the host has no /dev/mqueue to bind")
                && err.contains("give the container an IPC namespace of its own"),
            "{err}"
        );
    }
    assert_empty_state(&r.default_state());
}

#[test]
fn exec_from_another_process_in_the_users_namespace() {
    let Some(r) = Rootless::new() else { return };
    let holder = Holder::new(&r, Ids::Own);
    let bundle = r.bundle("bundle", &engine_spec("exec sleep 600", false));
    let b = bundle.to_str().unwrap();
    assert_success(
        &holder.runtime(&r, &["run", "--detach", "--bundle", b, "rl-exec"]),
        "run -d",
    );
    // Each call below is a new process entering the namespaces afresh.
    let exec = holder.runtime(
        &r,
        &["exec", "rl-exec", "sh", "-c", "id -u; cat /proc/1/cmdline"],
    );
    assert_success(&exec, "exec");
    assert_eq!(stdout(&exec), "0\nsleep\x00600\x00");
    let state: Value =
        serde_json::from_slice(&holder.runtime(&r, &["state", "rl-exec"]).stdout).unwrap();
    assert_eq!(state["status"], "running");
    assert_success(
        &holder.runtime(&r, &["delete", "--force", "rl-exec"]),
        "delete --force",
    );
    assert_empty_state(&r.default_state());
}

#[test]
fn a_user_without_a_user_namespace_is_told_what_to_do() {
    let Some(r) = Rootless::new() else { return };
    let volume = r.user_dir("volume");
    let mut spec = engine_spec("touch /data/ran", false);
    add_bind(&mut spec, &volume, "/data");
    let bundle = r.bundle("bundle", &spec);
    let out = r.runtime(&["run", "--bundle", bundle.to_str().unwrap(), "rl-no-userns"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the spec needs a user namespace") && err.contains("spec --rootless"),
        "{err}"
    );
    assert!(!volume.join("ran").exists());
    assert_empty_state(&r.default_state());
}

#[test]
fn limits_are_refused_without_a_writable_cgroup() {
    let Some(r) = Rootless::new() else { return };
    let v1 = basic_runtime::cgroups::detect_version(Path::new("/sys/fs/cgroup"))
        == basic_runtime::CgroupVersion::V1;
    if !basic_test_support::prerequisite(v1, "a cgroup v1 host (where nothing can be delegated)") {
        return;
    }
    let volume = r.user_dir("volume");
    let limits = json!({"memory": {"limit": 64 << 20}, "pids": {"limit": 64}});
    let mut direct = with_script(r.rootless_spec(), "touch /data/ran");
    direct["linux"]["resources"] = limits.clone();
    add_bind(&mut direct, &volume, "/data");
    let mut engine = engine_spec("touch /data/ran", false);
    engine["linux"]["resources"]["memory"] = limits["memory"].clone();
    add_bind(&mut engine, &volume, "/data");
    let holder = Holder::new(&r, Ids::Own);
    for (name, spec, in_namespace) in [("direct", direct, false), ("engine", engine, true)] {
        let bundle = r.bundle(&format!("bundle-{name}"), &spec);
        let args = ["run", "--bundle", bundle.to_str().unwrap(), "rl-limits"];
        let out = match in_namespace {
            true => holder.runtime(&r, &args),
            false => r.runtime(&args),
        };
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains("resource limits (memory")
                && err.contains("rootless containers need cgroup v2 with a subtree delegated")
                && err.contains("cgroup v1"),
            "{name}: {err}"
        );
        assert!(!volume.join("ran").exists(), "{name}: the command ran");
        assert_empty_state(&r.default_state());
    }
}

/// podman rootless (its own user namespace from the subordinate ids, conmon, vfs storage,
/// cgroupfs) with `basic-runtime` as its OCI runtime, on an image from the harness.
#[test]
fn podman_rootless_runs_an_image_with_basic_runtime() {
    let Some(r) = Rootless::new() else { return };
    let Some(harness) = basic_test_support::harness() else {
        return;
    };
    if !basic_test_support::prerequisite(Path::new("/usr/bin/podman").exists(), "podman") {
        return;
    }
    let image = harness.reference("busybox_latest");
    let podman = |args: &[&str]| {
        let mut cmd = r.home.command("podman");
        cmd.args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none", "--runtime"])
            .arg(&r.bin)
            .args(args);
        output(cmd)
    };
    assert_success(
        &podman(&["pull", "--tls-verify=false", &image]),
        "podman pull",
    );
    // MACHINE-NOTES: podman's default limits exceed this machine's hard limits.
    let ulimits = [
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=4096:4096",
    ];
    let script = "echo hello from busybox; id -u; cat /proc/self/uid_map";
    for network in ["none", "host"] {
        let mut args = vec!["run", "--rm", "--network", network];
        args.extend(ulimits);
        args.extend([image.as_str(), "sh", "-c", script]);
        let out = podman(&args);
        assert_success(&out, &format!("podman run --network {network}"));
        let text = stdout(&out);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("hello from busybox"), "{text}");
        assert_eq!(lines.next(), Some("0"), "{text}");
        // podman's namespace: the user and then its subordinate ids.
        let sub = r.home.user.subuid_start.to_string();
        assert!(
            lines.any(|l| l.split_whitespace().nth(1) == Some(sub.as_str())),
            "{text}"
        );
    }
    // slirp4netns cannot open /dev/net/tun for the user here: no network of its own.
    let mut args = vec!["run", "-d", "--network", "none", "--name", "rl-podman"];
    args.extend(ulimits);
    args.extend([image.as_str(), "sleep", "600"]);
    assert_success(&podman(&args), "podman run -d");
    let exec = podman(&["exec", "rl-podman", "sh", "-c", "echo in; id -u"]);
    assert_success(&exec, "podman exec");
    assert_eq!(stdout(&exec), "in\n0\n");
    assert_success(
        &podman(&["rm", "--force", "--time", "0", "rl-podman"]),
        "podman rm",
    );
    assert_eq!(stdout(&podman(&["ps", "--all", "--quiet"])), "");
}

/// Attacks a rootless bundle can make on what the user owns on the host, and a map of ids
/// the user was not given.
#[test]
fn hostile_rootless_bundles_change_nothing_on_the_host() {
    let Some(r) = Rootless::new() else { return };
    let victim = r.user_dir("victim");
    std::fs::write(victim.join("keep"), "mine\n").unwrap();
    r.chown(&victim);
    let listing = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let before = listing(&victim);
    let source = r.user_dir("source");
    std::fs::write(source.join("payload"), "payload\n").unwrap();
    r.chown(&source);

    // 1: the image's /dev is a symlink to the user's directory on the host; the runtime's
    // device nodes and /dev mounts must land inside the rootfs, not there.
    let spec = with_script(r.rootless_spec(), "ls /dev/null && echo > /dev/null");
    let bundle = r.bundle("bundle-dev", &spec);
    let dev = bundle.join("rootfs/dev");
    std::fs::remove_dir(&dev).unwrap();
    std::os::unix::fs::symlink(&victim, &dev).unwrap();
    r.chown(&bundle);
    let out = r.runtime(&["run", "--bundle", bundle.to_str().unwrap(), "rl-dev"]);
    assert_eq!(listing(&victim), before, "/dev attack: {out:?}");
    // It ran: its /dev was made, inside the rootfs.
    assert_success(&out, "the /dev attack's container");
    assert_eq!(
        std::fs::read_to_string(victim.join("keep")).unwrap(),
        "mine\n"
    );

    // 2: a mount destination through a symlink to the user's directory on the host.
    let mut spec = with_script(
        r.rootless_spec(),
        "cat /mnt/evil/payload; touch /mnt/evil/x",
    );
    add_bind(&mut spec, &source, "/mnt/evil");
    let bundle = r.bundle("bundle-mnt", &spec);
    let mnt = bundle.join("rootfs/mnt");
    let _ = std::fs::remove_dir(&mnt);
    std::os::unix::fs::symlink(&victim, &mnt).unwrap();
    r.chown(&bundle);
    let out = r.runtime(&["run", "--bundle", bundle.to_str().unwrap(), "rl-mnt"]);
    assert_eq!(listing(&victim), before, "mount attack: {out:?}");
    // It ran, with the volume mounted inside the rootfs.
    assert_success(&out, "the mount attack's container");
    assert_eq!(stdout(&out), "payload\n");

    // 3: ids the user was not given: host root, and another range.
    for (what, maps) in [
        (
            "host root",
            json!([{"containerID": 0, "hostID": 0, "size": 1}]),
        ),
        (
            "ids past the user's range",
            json!([
                {"containerID": 0, "hostID": r.uid(), "size": 1},
                {"containerID": 1, "hostID": r.home.user.subuid_start + r.home.user.subuid_count, "size": 1000},
            ]),
        ),
    ] {
        let mut spec = with_script(r.rootless_spec(), "touch /data/ran");
        spec["linux"]["uidMappings"] = maps;
        add_bind(&mut spec, &victim, "/data");
        let bundle = r.bundle(&format!("bundle-map-{}", what.replace(' ', "-")), &spec);
        let out = r.runtime(&["run", "--bundle", bundle.to_str().unwrap(), "rl-map"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(
            err.contains("newuidmap refused the spec's id mappings"),
            "{what}: {err}"
        );
        assert_eq!(listing(&victim), before, "{what}");
    }
    assert_empty_state(&r.default_state());
}
