//! Environment detection on this machine, and what a spec asks for that it cannot give.

mod common;

use basic_runtime::{CgroupVersion, default_spec, detect, unsupported};
use oci_spec::runtime::LinuxNamespaceType;

#[test]
fn detects_this_machine() {
    if !common::privileged() {
        return;
    }
    let env = detect();
    assert!(env.root);
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::User,
    ] {
        assert!(
            env.can_create(t),
            "{t} namespace should be creatable as root: {env:?}"
        );
    }
    let expected = if std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| {
            l.split(' ').nth(1) == Some("/sys/fs/cgroup") && l.split(' ').nth(2) == Some("cgroup2")
        }) {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    };
    assert_eq!(env.cgroup_version, expected);
    assert!(
        env.controller_writable("memory") && env.controller_writable("pids"),
        "{env:?}"
    );
    // A default spec runs here without downgrades, except what the host lacks by design.
    let spec = default_spec(vec!["true".into()], vec![], "/").unwrap();
    let missing = unsupported(&spec, &env);
    assert!(
        missing.iter().all(|u| u.feature == "device cgroup rules"),
        "{missing:?}"
    );
}

#[test]
fn reports_what_cannot_be_had() {
    let mut env = detect();
    env.namespaces
        .retain(|(t, _)| *t != LinuxNamespaceType::Network);
    env.cgroup_controllers.retain(|(c, _)| c != "pids");
    env.missing_capabilities.push("CAP_CHOWN".into());
    let mut spec = default_spec(vec!["true".into()], vec![], "/").unwrap();
    let linux = spec.linux_mut().as_mut().unwrap();
    let mut res = linux.resources().clone().unwrap();
    res.set_pids(Some(
        oci_spec::runtime::LinuxPidsBuilder::default()
            .limit(5i64)
            .build()
            .unwrap(),
    ));
    linux.set_resources(Some(res));
    let text: Vec<String> = unsupported(&spec, &env)
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert!(
        text.iter().any(|t| t.starts_with("net namespace")),
        "{text:?}"
    );
    assert!(text.iter().any(|t| t.starts_with("pids limit")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("CAP_CHOWN")), "{text:?}");
}
