//! The spec's seccomp profile is enforced, with and without no_new_privileges.

mod common;

use common::{privileged, run, sh};

fn deny_mkdir(no_new_privs: bool) -> basic_runtime::Spec {
    let mut spec = sh("mkdir /tmp/denied; echo mkdir=$?; ls -d /tmp/denied 2>/dev/null; echo done");
    let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(
        r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let mut linux = spec.linux().clone().unwrap();
    linux.set_seccomp(Some(profile));
    spec.set_linux(Some(linux));
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
    let (_, out) = run("seccomp-none", sh("mkdir /tmp/allowed && echo made"));
    assert_eq!(out, "made\n");
}
