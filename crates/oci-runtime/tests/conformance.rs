//! The runtime spec's requirements that the OCI validation suite checks, written from the
//! spec's own text (runtime-spec `config.md` and `runtime.md`) and checked on real bundles
//! run by the `basic-runtime` binary as root: hooks and their moments, namespaces and
//! failures; rootfsPropagation; `linux.devices` in the device cgroup; mount namespaces
//! joined by path; `linux.mountLabel`; `ociVersion`; a closed stdout; the cgroup resources
//! the host has (and a clear refusal of those it has not).

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fails, make_bundle, ok, ready, runtime, state};
use serde_json::{Value, json};

/// Rewrites the bundle's config.json through `f`.
fn edit(bundle: &Path, f: impl FnOnce(&mut Value)) {
    let path = bundle.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// A hook running `script` in the host's /bin/sh.
fn sh_hook(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script], "timeout": 10})
}

/// A hook that saves its stdin to `<out>/<name>.json`, its mount namespace to
/// `<out>/<name>.mnt` and appends its name to `<out>/order`.
fn recording_hook(out: &Path, name: &str) -> Value {
    let o = out.display();
    sh_hook(&format!(
        "cat > {o}/{name}.json; readlink /proc/self/ns/mnt > {o}/{name}.mnt; echo {name} >> {o}/order"
    ))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (the hook did not run)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}: {text:?}", path.display()))
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn wait_stopped(root: &Path, id: &str) {
    let start = Instant::now();
    while state(root, id)["status"] != "stopped" {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{id} did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct Case {
    dir: tempfile::TempDir,
    bundle: PathBuf,
    root: PathBuf,
    out: PathBuf,
    id: String,
}

impl Case {
    fn new(name: &str, args: &[&str]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        let bundle = make_bundle(&dir.path().join("bundle"), args);
        let root = dir.path().join("state");
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        Case {
            bundle,
            root,
            out,
            id: common::id(name),
            dir,
        }
    }

    fn bundle_arg(&self) -> &str {
        self.bundle.to_str().unwrap()
    }

    fn create(&self) -> String {
        ok(
            &self.root,
            &["create", "--bundle", self.bundle_arg(), &self.id],
        )
    }

    fn create_fails(&self) -> String {
        fails(
            &self.root,
            &["create", "--bundle", self.bundle_arg(), &self.id],
        )
    }

    /// `run` in the foreground; its stdout, stderr and whether it succeeded.
    fn run(&self) -> (String, String, bool) {
        let out = runtime(
            &self.root,
            &["run", "--bundle", self.bundle_arg(), &self.id],
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.success(),
        )
    }

    fn gone(&self) -> bool {
        !self.root.join(&self.id).exists()
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = runtime(&self.root, &["delete", "--force", &self.id]);
        let _ = &self.dir;
    }
}

// --- hooks ------------------------------------------------------------------------------

/// runtime.md, lifecycle steps 3-13, and config.md "POSIX-platform Hooks": prestart,
/// createRuntime and createContainer run during create, in that order, before
/// pivot_root; startContainer during start before the command; poststart after it,
/// before start returns; poststop after delete. Each gets the state on stdin.
/// createRuntime runs in the runtime's namespace; createContainer and startContainer in
/// the container's.
#[test]
fn hooks_run_at_their_moments_in_their_namespaces_with_the_state_on_stdin() {
    if !ready() {
        return;
    }
    let c = Case::new("hooks", &["sh", "-c", "echo ran > /tmp/command-ran"]);
    let out = c.out.clone();
    edit(&c.bundle, |v| {
        v["root"]["readonly"] = json!(false);
        v["annotations"] = json!({"org.example.hooks": "yes"});
        v["hooks"] = json!({
            "prestart": [recording_hook(&out, "prestart")],
            "createRuntime": [recording_hook(&out, "createRuntime")],
            "createContainer": [recording_hook(&out, "createContainer")],
            // Runs inside the container's root: /tmp there is the bundle's rootfs/tmp.
            "startContainer": [sh_hook(
                "cat > /tmp/startContainer.json; readlink /proc/self/ns/mnt > /tmp/startContainer.mnt; \
                 test -e /tmp/command-ran && echo command-first > /tmp/startContainer.late; true"
            )],
            "poststart": [recording_hook(&out, "poststart")],
            "poststop": [recording_hook(&out, "poststop")],
        });
    });
    c.create();
    assert_eq!(
        read_lines(&out.join("order")),
        ["prestart", "createRuntime", "createContainer"],
        "create runs exactly the create hooks, in the spec's order"
    );
    let s = state(&c.root, &c.id);
    let pid = s["pid"].as_i64().unwrap();
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let container_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_ne!(host_mnt, container_mnt);
    let mnt = |name: &str| std::fs::read_to_string(out.join(format!("{name}.mnt"))).unwrap();
    assert_eq!(mnt("prestart").trim(), host_mnt.to_str().unwrap());
    assert_eq!(mnt("createRuntime").trim(), host_mnt.to_str().unwrap());
    assert_eq!(
        mnt("createContainer").trim(),
        container_mnt.to_str().unwrap()
    );
    for name in ["prestart", "createRuntime", "createContainer"] {
        let st = read_json(&out.join(format!("{name}.json")));
        assert_eq!(st["id"], c.id.as_str(), "{name}: {st}");
        assert_eq!(st["pid"].as_i64(), Some(pid), "{name}: {st}");
        assert_eq!(st["status"], "created", "{name}: {st}");
        assert_eq!(st["bundle"], c.bundle_arg(), "{name}: {st}");
        assert_eq!(
            st["annotations"]["org.example.hooks"], "yes",
            "{name}: {st}"
        );
    }
    let rootfs_tmp = c.bundle.join("rootfs/tmp");
    assert!(!rootfs_tmp.join("startContainer.json").exists());

    ok(&c.root, &["start", &c.id]);
    // poststart ran before start returned.
    assert_eq!(read_lines(&out.join("order")).last().unwrap(), "poststart");
    let st = read_json(&out.join("poststart.json"));
    assert_eq!(st["status"], "running", "{st}");
    assert_eq!(st["pid"].as_i64(), Some(pid), "{st}");
    let st = read_json(&rootfs_tmp.join("startContainer.json"));
    assert_eq!(st["id"], c.id.as_str(), "{st}");
    assert_eq!(st["pid"].as_i64(), Some(pid), "{st}");
    assert_eq!(
        std::fs::read_to_string(rootfs_tmp.join("startContainer.mnt"))
            .unwrap()
            .trim(),
        container_mnt.to_str().unwrap()
    );
    assert!(
        !rootfs_tmp.join("startContainer.late").exists(),
        "startContainer ran after the command"
    );
    wait_stopped(&c.root, &c.id);
    assert!(rootfs_tmp.join("command-ran").exists());
    assert!(
        !out.join("poststop.json").exists(),
        "poststop before delete"
    );
    ok(&c.root, &["delete", &c.id]);
    assert!(c.gone());
    let st = read_json(&out.join("poststop.json"));
    assert_eq!(st["id"], c.id.as_str(), "{st}");
    assert_eq!(st["status"], "stopped", "{st}");
    assert_eq!(
        read_lines(&out.join("order")),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
}

/// runtime.md steps 3-5: a failing prestart, createRuntime or createContainer hook makes
/// create fail, the container is stopped, and the lifecycle goes on at delete (poststop).
/// config.md: args and env as given, args[0] first.
#[test]
fn a_failing_create_hook_fails_create_and_poststop_still_runs() {
    if !ready() {
        return;
    }
    for kind in ["prestart", "createRuntime", "createContainer"] {
        let c = Case::new("createfail", &["sh", "-c", "sleep 30"]);
        let out = c.out.clone();
        let o = out.display();
        edit(&c.bundle, |v| {
            v["hooks"] = json!({
                kind: [{"path": "/bin/sh",
                        "args": ["sh", "-c", "echo \"$0 $GREETING\" >&2; exit 3", "hook-argv0"],
                        "env": ["GREETING=refused"]}],
                "poststop": [sh_hook(&format!("cat > {o}/poststop.json"))],
            });
        });
        let err = c.create_fails();
        assert!(
            err.contains(&format!("hooks.{kind}[0] /bin/sh exited with code 3")),
            "{kind}: {err}"
        );
        assert!(err.contains("hook-argv0 refused"), "{kind}: {err}");
        assert!(c.gone(), "{kind}: the failed container was left behind");
        let cgroup = Path::new("/sys/fs/cgroup/pids/basic-docker").join(&c.id);
        assert!(!cgroup.exists(), "{kind}: {} left behind", cgroup.display());
        let st = read_json(&out.join("poststop.json"));
        assert_eq!(st["id"], c.id.as_str(), "{kind}: {st}");
    }
}

/// runtime.md step 7: a failing startContainer hook fails start; the command does not run
/// and the container stops.
#[test]
fn a_failing_start_container_hook_fails_start_and_the_command_never_runs() {
    if !ready() {
        return;
    }
    let c = Case::new("startfail", &["sh", "-c", "echo ran > /tmp/command-ran"]);
    edit(&c.bundle, |v| {
        v["root"]["readonly"] = json!(false);
        v["hooks"] = json!({"startContainer": [sh_hook("echo not today >&2; exit 9")]});
    });
    c.create();
    let err = fails(&c.root, &["start", &c.id]);
    assert!(
        err.contains("hooks.startContainer[0] /bin/sh exited with code 9")
            && err.contains("not today"),
        "{err}"
    );
    wait_stopped(&c.root, &c.id);
    assert!(!c.bundle.join("rootfs/tmp/command-ran").exists());
    ok(&c.root, &["delete", &c.id]);
}

/// runtime.md steps 9 and 13: a failing poststart or poststop hook is a warning; the
/// remaining hooks and the lifecycle continue.
#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    if !ready() {
        return;
    }
    let c = Case::new("postfail", &["true"]);
    let o = c.out.display().to_string();
    edit(&c.bundle, |v| {
        v["hooks"] = json!({
            "poststart": [sh_hook("exit 4"), sh_hook(&format!("touch {o}/poststart-2"))],
            "poststop": [sh_hook("exit 5"), sh_hook(&format!("touch {o}/poststop-2"))],
        });
    });
    c.create();
    let out = runtime(&c.root, &["start", &c.id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning") && err.contains("hooks.poststart[0] /bin/sh exited with code 4"),
        "{err}"
    );
    assert!(c.out.join("poststart-2").exists());
    wait_stopped(&c.root, &c.id);
    let out = runtime(&c.root, &["delete", &c.id]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("hooks.poststop[0] /bin/sh exited with code 5"),
        "{err}"
    );
    assert!(c.out.join("poststop-2").exists());
    assert!(c.gone());
}

/// config.md: `timeout` is the number of seconds before aborting the hook; a hook aborted
/// so has failed.
#[test]
fn a_hook_past_its_timeout_is_killed_and_fails_create() {
    if !ready() {
        return;
    }
    let c = Case::new("timeout", &["true"]);
    edit(&c.bundle, |v| {
        v["hooks"] = json!({"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", "sleep 60"], "timeout": 1}
        ]});
    });
    let start = Instant::now();
    let err = c.create_fails();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.contains("hooks.createRuntime[0] /bin/sh did not finish within its timeout of 1 s"),
        "{err}"
    );
    assert!(c.gone());
}

/// Hostile hooks: a relative path (the spec says absolute) and a missing program are named
/// in a clear error, and nothing is left behind.
#[test]
fn relative_or_missing_hook_paths_are_clear_errors() {
    if !ready() {
        return;
    }
    let c = Case::new("relhook", &["true"]);
    edit(&c.bundle, |v| {
        v["hooks"] = json!({"prestart": [{"path": "bin/sh", "args": ["sh", "-c", "true"]}]});
    });
    let err = c.create_fails();
    assert!(
        err.contains("hooks.prestart[0].path \"bin/sh\" must be an absolute path"),
        "{err}"
    );
    assert!(c.gone());

    let c = Case::new("nohook", &["true"]);
    edit(&c.bundle, |v| {
        v["hooks"] = json!({"createRuntime": [{"path": "/nonexistent/hook"}]});
    });
    let err = c.create_fails();
    assert!(
        err.contains("hooks.createRuntime[0] /nonexistent/hook: cannot run it")
            && err.contains("No such file"),
        "{err}"
    );
    assert!(c.gone());
}

/// A foreground `run` goes through the same moments: the command's output is there and
/// every hook ran once.
#[test]
fn run_in_the_foreground_runs_every_hook() {
    if !ready() {
        return;
    }
    let c = Case::new("runhooks", &["echo", "from the command"]);
    let out = c.out.clone();
    edit(&c.bundle, |v| {
        v["hooks"] = json!({
            "prestart": [recording_hook(&out, "prestart")],
            "createRuntime": [recording_hook(&out, "createRuntime")],
            "createContainer": [recording_hook(&out, "createContainer")],
            "poststart": [recording_hook(&out, "poststart")],
            "poststop": [recording_hook(&out, "poststop")],
        });
    });
    let (stdout, stderr, success) = c.run();
    assert!(success, "{stderr}");
    assert_eq!(stdout, "from the command\n");
    assert_eq!(
        read_lines(&out.join("order")),
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "poststart",
            "poststop"
        ]
    );
}

// --- root filesystem, devices, namespaces ------------------------------------------------

/// The "/" line of a mountinfo: its optional fields (shared:N, master:N, unbindable).
fn root_propagation(mountinfo: &str) -> String {
    let line = mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/"))
        .unwrap_or_else(|| panic!("no / in {mountinfo}"));
    let fields: Vec<&str> = line.split(' ').collect();
    let end = fields.iter().position(|f| *f == "-").unwrap();
    fields[6..end].join(" ")
}

/// A directory bind-mounted onto itself and made shared, unmounted on drop.
struct SharedMount(PathBuf);

impl SharedMount {
    fn new(dir: &Path) -> SharedMount {
        for args in [
            &["--bind", dir.to_str().unwrap(), dir.to_str().unwrap()][..],
            &["--make-shared", dir.to_str().unwrap()],
        ] {
            let st = Command::new("mount").args(args).status().unwrap();
            assert!(st.success(), "mount {args:?}");
        }
        SharedMount(dir.to_path_buf())
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// config.md `rootfsPropagation`: the rootfs mount gets the propagation asked for (and
/// pivot_root still works with every one of them).
#[test]
fn rootfs_propagation_is_what_the_spec_asks_for() {
    if !ready() {
        return;
    }
    for (prop, expect) in [
        ("shared", "shared:"),
        ("rshared", "shared:"),
        ("slave", "master:"),
        ("rslave", "master:"),
        ("private", ""),
        ("rprivate", ""),
        ("unbindable", "unbindable"),
        ("runbindable", "unbindable"),
    ] {
        let c = Case::new("prop", &["cat", "/proc/self/mountinfo"]);
        edit(&c.bundle, |v| v["linux"]["rootfsPropagation"] = json!(prop));
        // A shared rootfs on the host, so that "slave" has a master to show (this host's
        // own / is private).
        let _shared = SharedMount::new(&c.bundle.join("rootfs"));
        let (stdout, stderr, success) = c.run();
        assert!(success, "{prop}: {stderr}");
        let got = root_propagation(&stdout);
        if expect.is_empty() {
            assert!(
                !got.contains("shared:") && !got.contains("master:") && !got.contains("unbindable"),
                "{prop}: / has {got:?}"
            );
        } else {
            assert!(got.contains(expect), "{prop}: / has {got:?}");
        }
    }
}

/// config.md `linux.devices`: the runtime MUST make these devices available in the
/// container, so the device cgroup (deny-all by default here) must let them be used.
#[test]
fn listed_devices_exist_and_the_device_cgroup_lets_them_be_used() {
    if !ready() {
        return;
    }
    let c = Case::new(
        "devices",
        &[
            "sh",
            "-c",
            "ls -l /dev/fuse && exec 3<>/dev/fuse && echo opened",
        ],
    );
    edit(&c.bundle, |v| {
        v["linux"]["devices"] = json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}
        ]);
        let rules = &v["linux"]["resources"]["devices"];
        assert_eq!(
            rules[0]["allow"], false,
            "the default spec starts with deny-all"
        );
    });
    let (stdout, stderr, success) = c.run();
    assert!(success, "{stderr}");
    assert!(
        stdout.contains("10, 229") && stdout.contains("crw-rw-rw-"),
        "{stdout}"
    );
    assert!(stdout.ends_with("opened\n"), "{stdout}{stderr}");

    // A listed device that a rule of the spec names keeps that rule's access (docker's
    // `--device /dev/fuse:/dev/fuse:r`): readable, not writable.
    let c = Case::new(
        "devread",
        &[
            "sh",
            "-c",
            "(exec 3</dev/fuse) && echo read; (exec 4>/dev/fuse) 2>/dev/null && echo written; true",
        ],
    );
    edit(&c.bundle, |v| {
        v["linux"]["devices"] = json!([
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}
        ]);
        v["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(json!({"allow": true, "type": "c", "major": 10, "minor": 229, "access": "r"}));
    });
    let (stdout, stderr, success) = c.run();
    assert!(success, "{stderr}");
    assert_eq!(stdout, "read\n", "{stderr}");

    // Each type the spec lists, with its mode: character, block and fifo.
    let c = Case::new(
        "devtypes",
        &["sh", "-c", "ls -l /dev/test1 /dev/test2 /dev/test3"],
    );
    edit(&c.bundle, |v| {
        v["linux"]["devices"] = json!([
            {"path": "/dev/test1", "type": "c", "major": 10, "minor": 666, "fileMode": 432, "uid": 0, "gid": 0},
            {"path": "/dev/test2", "type": "b", "major": 8, "minor": 666, "fileMode": 432, "uid": 0, "gid": 0},
            {"path": "/dev/test3", "type": "p", "major": 8, "minor": 666, "fileMode": 432}
        ]);
    });
    let (stdout, stderr, success) = c.run();
    assert!(success, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("crw-rw----") && lines[0].contains("10, 666"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("brw-rw----") && lines[1].contains("8, 666"),
        "{stdout}"
    );
    assert!(lines[2].starts_with("prw-rw----"), "{stdout}");

    // Without the entry there is no node and no rule: the deny-all still holds.
    let c = Case::new(
        "nodevice",
        &["sh", "-c", "mknod /tmp/fuse c 10 229 && echo made"],
    );
    let (stdout, stderr, _) = c.run();
    assert!(!stdout.contains("made"), "{stdout}{stderr}");
}

/// Hostile device paths: `..` climbing out of /dev is refused before anything is made.
#[test]
fn a_device_path_climbing_out_of_dev_is_refused() {
    if !ready() {
        return;
    }
    let target = std::env::temp_dir().join(format!("conformance-escape-{}", std::process::id()));
    let c = Case::new("devescape", &["true"]);
    let rel = format!("/dev/../../../../../..{}", target.display());
    edit(&c.bundle, |v| {
        v["linux"]["devices"] = json!([{"path": rel, "type": "c", "major": 1, "minor": 3}]);
    });
    let err = c.create_fails();
    assert!(
        err.contains("must be an absolute path under /dev without '..'"),
        "{err}"
    );
    assert!(
        !target.exists(),
        "{} was made on the host",
        target.display()
    );
    assert!(c.gone());
}

/// config.md namespaces: with a `path`, the container process MUST be placed in that
/// namespace — a mount namespace too.
#[test]
fn a_mount_namespace_given_by_path_is_joined() {
    if !ready() {
        return;
    }
    let mut holder = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sleep", "60"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let ns_path = format!("/proc/{}/ns/mnt", holder.id());
    // unshare creates the namespace before it execs sleep.
    let start = Instant::now();
    let host = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let theirs = loop {
        let ns = std::fs::read_link(&ns_path).unwrap();
        if ns != host {
            break ns;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "unshare never unshared"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let c = Case::new("mntns", &["readlink", "/proc/self/ns/mnt"]);
    edit(&c.bundle, |v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        for n in ns.iter_mut() {
            if n["type"] == "mount" {
                n["path"] = json!(ns_path);
            }
        }
    });
    let (stdout, stderr, success) = c.run();
    let _ = holder.kill();
    let _ = holder.wait();
    assert!(success, "{stderr}");
    assert_eq!(stdout.trim(), theirs.to_str().unwrap());
}

/// config.md `linux.mountLabel` is SELinux's: on a host without SELinux it is dropped, as
/// runc and crun do, and the container runs.
#[test]
fn a_mount_label_is_a_no_op_without_selinux() {
    if !ready() || Path::new("/sys/fs/selinux/enforce").exists() {
        return;
    }
    let c = Case::new("label", &["echo", "labelled"]);
    edit(&c.bundle, |v| {
        v["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2");
    });
    let (stdout, stderr, success) = c.run();
    assert!(success, "{stderr}");
    assert_eq!(stdout, "labelled\n");
}

/// config.md `ociVersion` (REQUIRED) is in SemVer v2.0.0 format: a config that is not is
/// refused before anything runs, naming the field.
#[test]
fn an_oci_version_that_is_not_semver_is_refused() {
    if !ready() {
        return;
    }
    let c = Case::new("version", &["true"]);
    edit(&c.bundle, |v| v["ociVersion"] = json!("invalid"));
    let err = c.create_fails();
    assert!(
        err.contains("ociVersion \"invalid\"") && err.contains("SemVer 1.x.y"),
        "{err}"
    );
    assert!(c.gone());
}

/// `features | true`, `list | true`, `state | head -0`: a closed stdout ends the program
/// quietly (141, as a process killed by SIGPIPE), never with a panic.
#[test]
fn a_closed_stdout_is_no_panic() {
    if !ready() {
        return;
    }
    let c = Case::new("pipe", &["sleep", "30"]);
    c.create();
    for args in [
        vec!["features"],
        vec!["list"],
        vec!["list", "--format", "json"],
        vec!["state", &c.id],
    ] {
        let (reader, writer) = nix::unistd::pipe().unwrap();
        drop(reader);
        let out = Command::new(common::BIN)
            .arg("--root")
            .arg(&c.root)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?}: {err}");
    }
}

// --- cgroup resources ---------------------------------------------------------------------

/// The first real disk's "major:minor" (from /sys/block/*/dev), for throttles.
fn a_disk() -> Option<(u64, u64)> {
    let mut disks: Vec<_> = std::fs::read_dir("/sys/block").ok()?.flatten().collect();
    disks.sort_by_key(|e| e.file_name());
    disks.iter().find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("loop") || name.starts_with("ram") || name.starts_with("zram") {
            return None;
        }
        let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
        let (maj, min) = dev.trim().split_once(':')?;
        Some((maj.parse().ok()?, min.parse().ok()?))
    })
}

/// config.md `linux.resources` blockIO and hugepageLimits: written where this host's
/// hierarchies have them, read back from the container's own cgroup.
#[test]
fn block_io_throttles_and_hugetlb_limits_reach_the_cgroup() {
    if !ready() {
        return;
    }
    let v1_blkio = Path::new("/sys/fs/cgroup/blkio/blkio.throttle.read_bps_device").exists();
    let Some((maj, min)) = a_disk() else { return };
    let hugetlb_unified = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| c.split_whitespace().any(|c| c == "hugetlb"));
    let hugetlb_v1 = Path::new("/sys/fs/cgroup/hugetlb").is_dir();
    let huge_2mb = Path::new("/sys/kernel/mm/hugepages/hugepages-2048kB").exists();
    if !v1_blkio || !(hugetlb_unified || hugetlb_v1) || !huge_2mb {
        return; // this test is for hosts with a v1 blkio hierarchy and hugetlb
    }
    let c = Case::new("blkio", &["sleep", "30"]);
    let cgroup = format!("/basic-docker/{}", c.id);
    edit(&c.bundle, |v| {
        v["linux"]["cgroupsPath"] = json!(cgroup);
        v["linux"]["resources"]["blockIO"] = json!({
            "throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 300}]
        });
        v["linux"]["resources"]["hugepageLimits"] = json!([{"pageSize": "2MB", "limit": 4194304}]);
    });
    c.create();
    let blkio = Path::new("/sys/fs/cgroup/blkio").join(cgroup.trim_start_matches('/'));
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(
        read(blkio.join("blkio.throttle.read_bps_device")).trim(),
        format!("{maj}:{min} 1048576")
    );
    assert_eq!(
        read(blkio.join("blkio.throttle.write_iops_device")).trim(),
        format!("{maj}:{min} 300")
    );
    let pid = state(&c.root, &c.id)["pid"].as_i64().unwrap();
    let huge = if hugetlb_v1 {
        Path::new("/sys/fs/cgroup/hugetlb")
            .join(cgroup.trim_start_matches('/'))
            .join("hugetlb.2MB.limit_in_bytes")
    } else {
        Path::new("/sys/fs/cgroup/unified")
            .join(cgroup.trim_start_matches('/'))
            .join("hugetlb.2MB.max")
    };
    assert_eq!(read(huge.clone()).trim(), "4194304");
    let procs = read(huge.with_file_name("cgroup.procs"));
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    ok(&c.root, &["delete", "--force", &c.id]);
    assert!(
        !huge.parent().unwrap().exists(),
        "the hugetlb cgroup was left behind"
    );
    assert!(!blkio.exists(), "the blkio cgroup was left behind");
}

/// Where the host lacks a controller (here: net_cls/net_prio; blkio weights without a
/// weighting I/O scheduler), create fails saying so, and leaves nothing behind.
#[test]
fn resources_this_host_cannot_give_are_refused_as_not_available() {
    if !ready() {
        return;
    }
    let mut cases = Vec::new();
    if !Path::new("/sys/fs/cgroup/net_cls").exists() {
        cases.push((json!({"network": {"classID": 1048577}}), "network.classID"));
    }
    if Path::new("/sys/fs/cgroup/blkio").is_dir()
        && !Path::new("/sys/fs/cgroup/blkio/blkio.weight").exists()
    {
        cases.push((json!({"blockIO": {"weight": 500}}), "blockIO.weight"));
        cases.push((
            json!({"blockIO": {"leafWeight": 500}}),
            "blockIO.leafWeight",
        ));
    }
    for (resources, field) in cases {
        let c = Case::new("unavailable", &["true"]);
        edit(&c.bundle, |v| {
            for (k, val) in resources.as_object().unwrap() {
                v["linux"]["resources"][k] = val.clone();
            }
        });
        let err = c.create_fails();
        assert!(
            err.contains(field) && err.contains("not available on this host"),
            "{field}: {err}"
        );
        assert!(c.gone());
        let cgroup = Path::new("/sys/fs/cgroup/pids/basic-docker").join(&c.id);
        assert!(
            !cgroup.exists(),
            "{field}: {} left behind",
            cgroup.display()
        );
    }
}

/// Without a cgroup namespace, a v1 host's `/sys/fs/cgroup/<hierarchy>` in the container is
/// the container's own cgroup (as runc mounts it), not the host's whole hierarchy: a
/// program reading its memory limit there finds its own, and other cgroups stay unseen.
#[test]
fn without_a_cgroup_namespace_the_container_sees_its_own_cgroup() {
    if !ready() || !Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
        return;
    }
    let c = Case::new(
        "owncg",
        &[
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; ls /sys/fs/cgroup/memory",
        ],
    );
    edit(&c.bundle, |v| {
        let ns = v["linux"]["namespaces"].as_array_mut().unwrap();
        ns.retain(|n| n["type"] != "cgroup");
        v["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    });
    let (stdout, stderr, success) = c.run();
    assert!(success, "{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("67108864"), "{stdout}");
    let listing: Vec<&str> = lines.collect();
    assert!(listing.contains(&"cgroup.procs"), "{stdout}");
    assert!(
        !listing.contains(&"basic-docker"),
        "the host's hierarchy shows: {stdout}"
    );
}

/// config.md namespaces, for each type the validation suite joins: the container's process
/// is in the namespace at `path` (a pid namespace through its `pid_for_children`).
#[test]
fn namespaces_given_by_path_are_joined_for_every_type() {
    if !ready() {
        return;
    }
    for (typ, flag, link) in [
        ("ipc", "--ipc", "ipc"),
        ("mount", "--mount", "mnt"),
        ("network", "--net", "net"),
        ("pid", "--pid", "pid"),
        ("uts", "--uts", "uts"),
    ] {
        // A process group of its own, so that its forked sleep goes with it.
        let mut holder = Command::new("unshare")
            .args([flag, "--fork", "sleep", "60"])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let (own, theirs_link) = match link {
            "pid" => ("/proc/self/ns/pid".to_string(), "pid_for_children"),
            other => (format!("/proc/self/ns/{other}"), other),
        };
        let path = format!("/proc/{}/ns/{theirs_link}", holder.id());
        let host = std::fs::read_link(&own).unwrap();
        let start = Instant::now();
        let theirs = loop {
            if let Ok(ns) = std::fs::read_link(&path)
                && ns != host
            {
                break ns;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{typ}: unshare never unshared"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let c = Case::new("nspath", &["sleep", "30"]);
        edit(&c.bundle, |v| {
            for n in v["linux"]["namespaces"].as_array_mut().unwrap() {
                if n["type"] == typ {
                    n["path"] = json!(path);
                }
            }
        });
        c.create();
        let pid = state(&c.root, &c.id)["pid"].as_i64().unwrap();
        let got = std::fs::read_link(format!("/proc/{pid}/ns/{link}")).unwrap();
        ok(&c.root, &["delete", "--force", &c.id]);
        let group = nix::unistd::Pid::from_raw(holder.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = holder.wait();
        assert_eq!(got, theirs, "{typ}");
    }
}

/// config.md: poststart hooks are called after the user-specified process is executed: when
/// the hook runs, the container's pid already runs the command, not the runtime's init.
#[test]
fn poststart_runs_after_the_command_is_executed() {
    if !ready() {
        return;
    }
    for round in 0..3 {
        let c = Case::new("afterexec", &["sleep", "30"]);
        let o = c.out.display().to_string();
        edit(&c.bundle, |v| {
            v["hooks"] = json!({"poststart": [sh_hook(&format!(
                "pid=$(grep -o '\"pid\":[0-9]*' | cut -d: -f2); readlink /proc/$pid/exe > {o}/exe"
            ))]});
        });
        c.create();
        ok(&c.root, &["start", &c.id]);
        let exe = std::fs::read_to_string(c.out.join("exe")).unwrap();
        assert_eq!(exe.trim(), "/bin/busybox", "round {round}");
    }
}
