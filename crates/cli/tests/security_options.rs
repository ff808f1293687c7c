//! docker's confinement, by default and by flag, attacked from inside real containers:
//! docker's seccomp profile on every container, `--security-opt seccomp=`,
//! `no-new-privileges`, `--privileged`, `--device`, `exec --privileged`, and a container
//! trying every way it has to raise its own cgroup limits.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use basic_test_support::image::ImageBuilder;
use basic_test_support::programs::{SECCOMP_ATTACKS, attack_results, static_program};
use common::{Cleanup, basic_docker, busybox_store, ok};

/// Prints the real and effective uid: run as a user through a setuid-root copy, it shows
/// whether the setuid bit took effect.
const EUID: &str = r#"#include <stdio.h>
#include <unistd.h>
int main(void) { printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid()); return 0; }
"#;

/// The store (with the harness's busybox) and an image holding the attack program and
/// a setuid-root `euid`, pushed to the harness registry and pulled into that store.
fn store() -> Option<&'static (PathBuf, String)> {
    static IMAGE: OnceLock<Option<(PathBuf, String)>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            let (dir, _) = busybox_store()?;
            let attacks = static_program("seccomp_attacks", SECCOMP_ATTACKS)?;
            let euid = std::fs::read(static_program("euid", EUID)?).unwrap();
            let harness = basic_test_support::harness()?;
            let reference = ImageBuilder::busybox()
                .layer(|l| {
                    l.copy("bin/seccomp_attacks", &attacks, 0o755);
                    l.file_owned("bin/euid", &euid, 0o4755, 0, 0);
                })
                .push(&harness.open, "security/attacks");
            ok(basic_docker(dir.path(), &["pull", "-q", &reference]));
            Some((dir.path().to_path_buf(), reference))
        })
        .as_ref()
}

/// `run --rm --network none FLAGS IMAGE COMMAND...`.
fn run(flags: &[&str], command: &[&str]) -> Option<Output> {
    let (root, image) = store()?;
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.push(image);
    args.extend_from_slice(command);
    Some(basic_docker(root, &args))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// A field of this test's own `/proc/self/status`, e.g. the host's `CapBnd`.
fn own_status(field: &str) -> String {
    status_field(
        &std::fs::read_to_string("/proc/self/status").unwrap(),
        field,
    )
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_string()
}

fn attacks(flags: &[&str]) -> Option<BTreeMap<String, String>> {
    let out = run(flags, &["/bin/seccomp_attacks"])?;
    Some(attack_results(&stdout(&out)).into_iter().collect())
}

const REFUSED: &[&str] = &[
    "unshare_user",
    "clone_newuser",
    "keyctl",
    "add_key",
    "request_key",
    "io_uring_setup",
    "bpf",
    "perf_event_open",
    "mount_tmpfs",
    "mount_cgroup",
    "userfaultfd",
    "socket_alg",
    "socket_vsock",
    "personality_exec",
];

#[test]
fn a_default_container_runs_under_dockers_profile() {
    let Some(out) = run(
        &[],
        &["grep", "-E", "^(Seccomp|NoNewPrivs):", "/proc/self/status"],
    ) else {
        return;
    };
    assert_eq!(stdout(&out), "NoNewPrivs:\t0\nSeccomp:\t2");
    let results = attacks(&[]).unwrap();
    for name in REFUSED {
        assert_eq!(
            results[*name], "1",
            "{name} must fail with EPERM: {results:?}"
        );
    }
    assert_eq!(results["clone3"], "38", "clone3 fails with ENOSYS");
    for name in ["ordinary_sockets", "ordinary_fork", "ordinary_personality"] {
        assert_eq!(results[name], "0", "{name}: {results:?}");
    }
}

/// The positive control of the test above, and docker's way out.
#[test]
fn seccomp_unconfined_lets_the_same_calls_through() {
    let Some(results) = attacks(&["--security-opt", "seccomp=unconfined"]) else {
        return;
    };
    for name in REFUSED.iter().chain(&["clone3"]) {
        assert_ne!(results[*name], "1", "{name} without a filter: {results:?}");
    }
    let out = run(
        &["--security-opt", "seccomp=unconfined"],
        &[
            "sh",
            "-c",
            "grep Seccomp: /proc/self/status; unshare -U true && echo unshared",
        ],
    )
    .unwrap();
    assert_eq!(stdout(&out), "Seccomp:\t0\nunshared");
    let out = run(&[], &["unshare", "-U", "true"]).unwrap();
    assert!(
        !out.status.success(),
        "unshare -U under the default profile"
    );
    assert!(
        text(&out.stderr).contains("Operation not permitted"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn cap_add_sys_admin_opens_mount_and_unshare_as_in_docker() {
    let script = "unshare -U true && echo unshared; mount -t tmpfs none /tmp && echo mounted; \
                  grep Seccomp: /proc/self/status";
    let Some(out) = run(&["--cap-add", "SYS_ADMIN"], &["sh", "-c", script]) else {
        return;
    };
    assert_eq!(stdout(&out), "unshared\nmounted\nSeccomp:\t2");
    let out = run(&["--cap-add", "ALL"], &["sh", "-c", script]).unwrap();
    assert_eq!(stdout(&out), "unshared\nmounted\nSeccomp:\t2");
}

/// Every way a confined container has to raise its own limits; each must fail, and the
/// host's cgroup files for the container must still say what was asked. (`HOLD=0` ends
/// the script instead of keeping the container for the host to look at.)
const RAISE_LIMITS: &str = r#"
cg=/sys/fs/cgroup
try() { name=$1; shift; "$@" >/dev/null 2>&1; echo "$name=$?"; }
try write-memory sh -c "echo 1073741824 > $cg/memory/memory.limit_in_bytes"
try write-memsw sh -c "echo -1 > $cg/memory/memory.memsw.limit_in_bytes"
try write-pids sh -c "echo max > $cg/pids/pids.max"
try write-memory-v2 sh -c "echo max > $cg/memory.max"
try write-pids-v2 sh -c "echo max > $cg/pids.max"
try leave-cgroup sh -c "echo \$\$ > $cg/memory/../cgroup.procs"
try mkdir-child mkdir $cg/memory/escape
try remount-rw mount -o remount,rw $cg
try remount-memory-rw mount -o remount,rw $cg/memory
mkdir -p /tmp/cg
try mount-v1 mount -t cgroup -o memory,pids cgroup /tmp/cg
try mount-v2 mount -t cgroup2 none /tmp/cg
try userns-mount-v1 unshare -Urm sh -c "mount -t cgroup -o memory cgroup /tmp/cg && echo 1073741824 > /tmp/cg/memory.limit_in_bytes"
try userns-mount-v2 unshare -Urmc sh -c "mount -t cgroup2 none /tmp/cg && echo max > /tmp/cg/pids.max"
try nsenter-host nsenter -t 1 -m -C sh -c "echo max > /sys/fs/cgroup/pids/pids.max"
/bin/seccomp_attacks | grep -E '^(mount|unshare|clone)'
echo done
exec sleep "${HOLD:-600}"
"#;

/// The host path of the container's cgroup for `controller` (v1) or its unified cgroup.
fn host_cgroup(pid: u32, controller: &str) -> PathBuf {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let line = |want: &dyn Fn(&str) -> bool| {
        cgroups.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            want(controllers).then(|| path.trim_start_matches('/').to_string())
        })
    };
    if let Some(path) = line(&|c: &str| c.split(',').any(|c| c == controller)) {
        return Path::new("/sys/fs/cgroup").join(controller).join(path);
    }
    let path = line(&|c: &str| c.is_empty()).expect("a unified cgroup");
    Path::new("/sys/fs/cgroup").join(path)
}

fn read_trimmed(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn a_container_cannot_raise_its_own_limits() {
    let Some((root, image)) = store() else {
        return;
    };
    let name = format!("raise-limits-{}", std::process::id());
    let _cleanup = Cleanup::new(root, &[&name]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "-m",
            "64m",
            "--pids-limit",
            "50",
            image,
            "sh",
            "-c",
            RAISE_LIMITS,
        ],
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    let logs = loop {
        let logs = stdout(&basic_docker(root, &["logs", &name]));
        if logs.contains("done") || Instant::now() > deadline {
            break logs;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(logs.ends_with("done"), "{logs}");
    for line in logs.lines().filter(|l| l.contains('=')) {
        let (attempt, result) = line.split_once('=').unwrap();
        assert_ne!(
            result, "0",
            "{attempt} succeeded inside the container:\n{logs}"
        );
    }
    let inspect: serde_json::Value =
        serde_json::from_str(&stdout(&basic_docker(root, &["inspect", &name]))).unwrap();
    let pid = inspect[0]["State"]["Pid"]
        .as_u64()
        .expect("a running container") as u32;
    let memory = host_cgroup(pid, "memory");
    let pids = host_cgroup(pid, "pids");
    let limit = ["memory.limit_in_bytes", "memory.max"]
        .iter()
        .map(|f| memory.join(f))
        .find(|p| p.exists())
        .expect("a memory limit file");
    assert_eq!(
        read_trimmed(&limit),
        (64u64 << 20).to_string(),
        "{}",
        limit.display()
    );
    assert_eq!(
        read_trimmed(&pids.join("pids.max")),
        "50",
        "{}",
        pids.display()
    );
    assert!(!memory.join("escape").exists());
}

/// The control for the test above: with CAP_SYS_ADMIN and no seccomp profile some of the
/// same attempts get through, so their failing there is the confinement's doing.
#[test]
fn the_limit_attempts_are_real() {
    let flags = [
        "-e",
        "HOLD=0",
        "--cap-add",
        "SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "-m",
        "64m",
        "--pids-limit",
        "50",
    ];
    let Some(out) = run(&flags, &["sh", "-c", RAISE_LIMITS]) else {
        return;
    };
    let logs = stdout(&out);
    assert!(
        logs.lines().any(|l| l.ends_with("=0")),
        "nothing got through even without confinement:\n{logs}"
    );
}

#[test]
fn a_profile_in_dockers_format_takes_effect() {
    if store().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                          "errnoRet": 1, "comment": "no new directories"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let out = run(
        &["--security-opt", &opt],
        &[
            "sh",
            "-c",
            "mkdir /tmp/d; echo mkdir=$?; touch /tmp/f && echo touched",
        ],
    )
    .unwrap();
    assert_eq!(stdout(&out), "mkdir=1\ntouched");
    // A bad profile is refused before the container exists, naming the file and the field.
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_EXPLODE"}]}"#,
    )
    .unwrap();
    let out = run(&["--security-opt", &opt], &["true"]).unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(err.contains(&profile.display().to_string()), "{err}");
    assert!(
        err.contains("syscalls[0].action") && err.contains("SCMP_ACT_EXPLODE"),
        "{err}"
    );
}

#[test]
fn no_new_privileges_keeps_a_setuid_binary_from_gaining_root() {
    let Some(out) = run(&["-u", "65534"], &["/bin/euid"]) else {
        return;
    };
    // The control: the setuid bit works in the image as given.
    assert_eq!(stdout(&out), "uid=65534 euid=0");
    for spelling in [
        "no-new-privileges",
        "no-new-privileges=true",
        "no-new-privileges:true",
    ] {
        let out = run(&["-u", "65534", "--security-opt", spelling], &["/bin/euid"]).unwrap();
        assert_eq!(stdout(&out), "uid=65534 euid=65534", "{spelling}");
        let out = run(
            &["--security-opt", spelling],
            &["grep", "NoNewPrivs:", "/proc/self/status"],
        )
        .unwrap();
        assert_eq!(stdout(&out), "NoNewPrivs:\t1", "{spelling}");
    }
    let out = run(
        &["--security-opt", "no-new-privileges=false"],
        &["grep", "NoNewPrivs:", "/proc/self/status"],
    )
    .unwrap();
    assert_eq!(stdout(&out), "NoNewPrivs:\t0");
}

/// A character device of the host that docker's default device rules do not allow.
fn unlisted_host_device() -> Option<&'static str> {
    let found = ["/dev/loop-control", "/dev/fuse", "/dev/kvm"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    basic_test_support::prerequisite(
        found.is_some(),
        "a host device outside docker's default rules (/dev/loop-control, /dev/fuse or /dev/kvm)",
    )
    .then_some(found?)
}

#[test]
fn privileged_has_the_hosts_capabilities_and_devices_and_no_seccomp() {
    let Some(device) = unlisted_host_device() else {
        return;
    };
    let script = format!(
        "grep -E '^(CapEff|CapBnd|Seccomp):' /proc/self/status; test -c {device} && echo device; \
         mount -t tmpfs none /tmp && echo mounted; grep -c ' /sys sysfs rw' /proc/mounts"
    );
    let Some(out) = run(&["--privileged"], &["sh", "-c", &script]) else {
        return;
    };
    let host = own_status("CapBnd");
    let text = stdout(&out);
    assert_eq!(status_field(&text, "CapEff"), host, "{text}");
    assert_eq!(status_field(&text, "CapBnd"), host, "{text}");
    assert_eq!(status_field(&text, "Seccomp"), "0", "{text}");
    assert!(text.ends_with("device\nmounted\n1"), "{text}");
    // Not without it.
    let out = run(&[], &["test", "-e", device]).unwrap();
    assert!(
        !out.status.success(),
        "{device} in an unprivileged container"
    );
}

#[test]
fn a_device_with_r_can_be_read_but_not_written() {
    let Some(device) = unlisted_host_device() else {
        return;
    };
    let mapping = format!("{device}:/dev/mydevice:r");
    let script = "test -c /dev/mydevice && echo node; \
                  dd if=/dev/mydevice of=/dev/null count=0 2>/dev/null && echo read; \
                  dd if=/dev/zero of=/dev/mydevice count=0 2>&1 | grep -o 'Operation not permitted'";
    let Some(out) = run(&["--device", &mapping], &["sh", "-c", script]) else {
        return;
    };
    assert_eq!(stdout(&out), "node\nread\nOperation not permitted");
    let out = run(
        &["--device", "/dev/null:/dev/mynull:r"],
        &[
            "sh",
            "-c",
            "test -c /dev/mynull && cat /dev/mynull && echo readable",
        ],
    )
    .unwrap();
    assert_eq!(stdout(&out), "readable");
}

#[test]
fn exec_privileged_gets_every_capability_and_keeps_the_profile() {
    let Some((root, image)) = store() else {
        return;
    };
    let name = format!("exec-privileged-{}", std::process::id());
    let _cleanup = Cleanup::new(root, &[&name]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            image,
            "sleep",
            "600",
        ],
    ));
    let status = |flags: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&name, "cat", "/proc/self/status"]);
        stdout(&basic_docker(root, &args))
    };
    let plain = status(&[]);
    assert_ne!(status_field(&plain, "CapEff"), own_status("CapBnd"));
    let privileged = status(&["--privileged"]);
    assert_eq!(status_field(&privileged, "CapEff"), own_status("CapBnd"));
    // As in docker, the container's seccomp profile stays on the exec'd process.
    assert_eq!(status_field(&privileged, "Seccomp"), "2");
}

#[test]
fn unknown_or_malformed_options_exit_125_naming_them() {
    for (flags, says) in [
        (&["--security-opt", "bogus=1"][..], "bogus=1"),
        (&["--security-opt", "seccomp"][..], "\"seccomp\""),
        (
            &["--security-opt", "no-new-privileges=maybe"][..],
            "no-new-privileges=maybe",
        ),
        (
            &["--security-opt", "seccomp=/surely/not/here.json"][..],
            "/surely/not/here.json",
        ),
        (
            &["--device", "/dev/null:/dev/x:rx"][..],
            "/dev/null:/dev/x:rx",
        ),
        (&["--device", "/etc/passwd"][..], "/etc/passwd"),
        (
            &["--device", "/dev/surely-not-here"][..],
            "/dev/surely-not-here",
        ),
    ] {
        let Some(out) = run(flags, &["true"]) else {
            return;
        };
        assert_eq!(out.status.code(), Some(125), "{flags:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "{flags:?}: {err}");
        // `create` takes the same flags and answers the same way.
        let (root, image) = store().unwrap();
        let mut args = vec!["create"];
        args.extend_from_slice(flags);
        args.extend([image.as_str(), "true"]);
        let out = basic_docker(root, &args);
        assert_eq!(out.status.code(), Some(125), "create {flags:?}");
        let err = text(&out.stderr);
        assert!(err.contains(says), "create {flags:?}: {err}");
    }
}
