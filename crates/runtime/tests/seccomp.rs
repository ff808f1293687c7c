//! Seccomp as docker applies it, against real containers: the spec's profile is enforced
//! (with and without no_new_privileges), docker's default profile refuses what docker's
//! refuses while ordinary work goes on, and a foreign profile in docker's format (podman's)
//! is read and enforced as written.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use basic_runtime::seccomp::DockerProfile;
use basic_runtime::spec::DEFAULT_CAPABILITIES;
use basic_test_support::programs::{SECCOMP_ATTACKS, attack_results, static_program};
use common::{privileged, rootfs, run, sh};
use oci_spec::runtime::LinuxSeccomp;

const EPERM: &str = "1";
const ENOSYS: &str = "38";

/// What docker's default refuses: everything with EPERM, `clone3` with ENOSYS.
const ATTACKS: &[&str] = &[
    "unshare_user",
    "clone_newuser",
    "clone3",
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
const ORDINARY: &[&str] = &["ordinary_sockets", "ordinary_fork", "ordinary_personality"];

fn with_seccomp(
    mut spec: basic_runtime::Spec,
    profile: Option<LinuxSeccomp>,
) -> basic_runtime::Spec {
    let mut linux = spec.linux().clone().unwrap();
    linux.set_seccomp(profile);
    spec.set_linux(Some(linux));
    spec
}

/// Runs the attack program in the shared rootfs under `profile` (`None`: no filter).
fn attack(name: &str, profile: Option<LinuxSeccomp>) -> Option<BTreeMap<String, String>> {
    let program = static_program("seccomp_attacks", SECCOMP_ATTACKS)?;
    let target = rootfs().join("bin/seccomp_attacks");
    if !target.exists() {
        // Per test binary; a unique temporary name keeps parallel tests from seeing half a copy.
        let partial = rootfs().join(format!("bin/.attacks-{name}"));
        std::fs::copy(&program, &partial).unwrap();
        std::fs::rename(&partial, &target).unwrap();
    }
    let (status, out) = run(name, with_seccomp(sh("/bin/seccomp_attacks"), profile));
    assert_eq!(status.exit_code(), 0, "{name}: {status}\n{out}");
    let results: BTreeMap<_, _> = attack_results(&out).into_iter().collect();
    for key in ATTACKS.iter().chain(ORDINARY) {
        assert!(
            results.contains_key(*key),
            "{name}: no result for {key}:\n{out}"
        );
    }
    Some(results)
}

fn docker_default() -> LinuxSeccomp {
    DockerProfile::docker_default()
        .to_oci(DEFAULT_CAPABILITIES)
        .unwrap()
}

fn deny_mkdir(no_new_privs: bool) -> basic_runtime::Spec {
    let spec = sh("mkdir /tmp/denied; echo mkdir=$?; ls -d /tmp/denied 2>/dev/null; echo done");
    let profile: LinuxSeccomp = serde_json::from_str(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let mut spec = with_seccomp(spec, Some(profile));
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_no_new_privileges(Some(no_new_privs));
    spec
}

#[test]
fn a_denied_syscall_fails_in_the_container() {
    if !privileged() {
        return;
    }
    for nnp in [false, true] {
        let (status, out) = run(&format!("seccomp-nnp{nnp}"), deny_mkdir(nnp));
        assert_eq!(status.exit_code(), 0, "{status}");
        assert_eq!(out, "mkdir=1\ndone\n", "no_new_privileges={nnp}");
    }
}

#[test]
fn without_a_profile_the_same_syscall_works() {
    if !privileged() {
        return;
    }
    let spec = with_seccomp(
        sh("mkdir /tmp/allowed && echo made; grep Seccomp: /proc/self/status"),
        None,
    );
    let (_, out) = run("seccomp-none", spec);
    assert_eq!(out, "made\nSeccomp:\t0\n");
}

/// The positive control: without a filter no attempt fails with EPERM, so the program
/// really makes each call and an EPERM later can only be the filter's.
#[test]
fn without_a_profile_the_attacks_get_past_seccomp() {
    if !privileged() {
        return;
    }
    let Some(results) = attack("seccomp-attacks-none", None) else {
        return;
    };
    for name in ATTACKS.iter().chain(ORDINARY) {
        assert_ne!(
            results[*name], EPERM,
            "{name} without a filter: {results:?}"
        );
    }
    for name in [
        "unshare_user",
        "clone_newuser",
        "keyctl",
        "add_key",
        "userfaultfd",
    ] {
        assert_eq!(
            results[name], "0",
            "{name} succeeds without a filter: {results:?}"
        );
    }
}

#[test]
fn dockers_default_refuses_each_attack_with_eperm_and_clone3_with_enosys() {
    if !privileged() {
        return;
    }
    let Some(results) = attack("seccomp-attacks-default", Some(docker_default())) else {
        return;
    };
    for name in ATTACKS {
        let expected = if *name == "clone3" { ENOSYS } else { EPERM };
        assert_eq!(results[*name], expected, "{name}: {results:?}");
    }
    for name in ORDINARY {
        assert_eq!(results[*name], "0", "{name} must still work: {results:?}");
    }
}

#[test]
fn the_default_spec_carries_dockers_profile_and_ordinary_work_goes_on() {
    if !privileged() {
        return;
    }
    let script = "grep Seccomp: /proc/self/status; \
                  ls / | grep -c . >/dev/null && echo ls-ok; \
                  sleep 0.1 && echo sleep-ok; \
                  mkdir -p /tmp/work/a && echo data > /tmp/work/a/f && cat /tmp/work/a/f; \
                  ln -s f /tmp/work/a/l && readlink /tmp/work/a/l; \
                  dd if=/dev/zero of=/tmp/work/z bs=1k count=4 2>/dev/null && wc -c < /tmp/work/z; \
                  rm -r /tmp/work && echo rm-ok; \
                  (echo sub; exit 3); echo subshell=$?; \
                  echo piped | tr a-z A-Z; \
                  date +%Y >/dev/null && id -u && hostname >/dev/null && echo done";
    let (status, out) = run("seccomp-ordinary", sh(script));
    assert_eq!(status.exit_code(), 0, "{status}: {out}");
    assert_eq!(
        out,
        "Seccomp:\t2\nls-ok\nsleep-ok\ndata\nf\n4096\nrm-ok\nsub\nsubshell=3\nPIPED\n0\ndone\n"
    );
}

/// podman's profile (containers/common) is a differential peer for the format: it is read,
/// compiled and enforced as written, refusing what it refuses (with its own ENOSYS
/// default) and allowing what it allows, unlike docker's (`unshare`, `keyctl`).
#[test]
fn podmans_profile_is_read_and_enforced_as_written() {
    if !privileged() {
        return;
    }
    let path = Path::new("/usr/share/containers/seccomp.json");
    if !basic_test_support::prerequisite(
        path.exists(),
        "podman's seccomp profile (containers-common)",
    ) {
        return;
    }
    let profile = DockerProfile::from_json(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let Some(results) = attack(
        "seccomp-attacks-podman",
        Some(profile.to_oci(DEFAULT_CAPABILITIES).unwrap()),
    ) else {
        return;
    };
    for name in [
        "add_key",
        "request_key",
        "io_uring_setup",
        "bpf",
        "perf_event_open",
        "userfaultfd",
    ] {
        assert!(
            [EPERM, ENOSYS].contains(&results[name].as_str()),
            "{name} is refused by podman's profile: {results:?}"
        );
    }
    for name in ["unshare_user", "keyctl"] {
        assert_eq!(
            results[name], "0",
            "{name} is allowed by podman's profile: {results:?}"
        );
    }
}
