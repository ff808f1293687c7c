//! Confinement as docker decides it: the seccomp profile for a spec's final
//! capabilities, and everything `--privileged` lifts.
//!
//! Each decision is a function of the spec and of what is known about the host, given as
//! values ([`set_seccomp_profile_on`], [`make_privileged_with`]); the plain forms read the
//! host first (the kernel release, the bounding set, `/dev`).

use std::collections::HashSet;

use caps::CapSet;
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Mount, Spec,
};

use super::SpecError;
use super::devices::{host_devices, put_device};
use crate::seccomp::{DockerProfile, Host};

/// Puts docker's default seccomp profile, resolved for the spec's bounding set, in
/// `linux.seccomp`. Call it after the capabilities are final: as in docker, CAP_SYS_ADMIN
/// opens `mount` and `unshare`, CAP_SYS_PTRACE opens `ptrace`, and so on.
pub fn set_default_seccomp(spec: &mut Spec) -> Result<(), SpecError> {
    set_seccomp_profile(spec, &DockerProfile::docker_default())
}

/// Puts `profile`, resolved for the spec's bounding set on this machine, in
/// `linux.seccomp`.
pub fn set_seccomp_profile(spec: &mut Spec, profile: &DockerProfile) -> Result<(), SpecError> {
    set_seccomp_profile_on(spec, profile, &Host::current())
}

/// [`set_seccomp_profile`] for the architecture and kernel `host` describes (a spec made
/// for another machine, or a test that must not depend on this one).
pub fn set_seccomp_profile_on(
    spec: &mut Spec,
    profile: &DockerProfile,
    host: &Host,
) -> Result<(), SpecError> {
    let bounding = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .unwrap_or_default();
    let resolved = profile
        .to_oci_on(&bounding, host)
        .map_err(SpecError::Seccomp)?;
    linux(spec)?.set_seccomp(Some(resolved));
    Ok(())
}

/// Every capability in this process's bounding set as bounding, effective and permitted
/// set: what docker gives a privileged container or `exec --privileged`. A capability
/// the host has taken away (CAP_SYS_RESOURCE on some CI machines) cannot be handed on.
pub fn privileged_capabilities() -> Result<LinuxCapabilities, SpecError> {
    let host = caps::read(None, CapSet::Bounding).map_err(SpecError::Capabilities)?;
    let set: HashSet<Capability> = host
        .iter()
        .filter_map(|c| serde_json::from_value(serde_json::Value::String(c.to_string())).ok())
        .collect();
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(Some(HashSet::new()));
    caps.set_ambient(Some(HashSet::new()));
    Ok(caps)
}

/// docker's `--privileged`: the host's whole bounding set ([`privileged_capabilities`]),
/// no seccomp profile, no masked or read-only paths, `/sys` and `/sys/fs/cgroup` mounted
/// read-write, every device node of the host's `/dev` ([`host_devices`]) and a device
/// cgroup that allows all. Capability and seccomp choices made before are overridden, as
/// in docker; `noNewPrivileges` and the user are kept.
pub fn make_privileged(spec: &mut Spec) -> Result<(), SpecError> {
    make_privileged_with(spec, privileged_capabilities()?, host_devices()?)
}

/// [`make_privileged`] with the host's capabilities (see [`privileged_capabilities`]) and
/// device nodes (see [`host_devices`](super::host_devices)) given.
pub fn make_privileged_with(
    spec: &mut Spec,
    caps: LinuxCapabilities,
    devices: Vec<LinuxDevice>,
) -> Result<(), SpecError> {
    spec.process_mut()
        .as_mut()
        .ok_or(SpecError::Incomplete("process"))?
        .set_capabilities(Some(caps));
    if let Some(mounts) = spec.mounts_mut() {
        mounts
            .iter_mut()
            .filter(|m| {
                let dest = m.destination().to_str().unwrap_or_default();
                dest == "/sys" || dest == "/sys/fs/cgroup"
            })
            .for_each(clear_read_only);
    }
    let linux = linux(spec)?;
    linux.set_seccomp(None);
    linux.set_masked_paths(Some(Vec::new()));
    linux.set_readonly_paths(Some(Vec::new()));
    for device in devices {
        put_device(linux, device);
    }
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut all = LinuxDeviceCgroup::default();
    all.set_allow(true);
    all.set_typ(Some(LinuxDeviceType::A));
    all.set_access(Some("rwm".into()));
    resources.set_devices(Some(vec![all]));
    linux.set_resources(Some(resources));
    Ok(())
}

fn clear_read_only(mount: &mut Mount) {
    if let Some(options) = mount.options_mut() {
        options.retain(|o| o != "ro");
    }
}

pub(super) fn linux(spec: &mut Spec) -> Result<&mut oci_spec::runtime::Linux, SpecError> {
    spec.linux_mut()
        .as_mut()
        .ok_or(SpecError::Incomplete("linux"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        crate::default_spec(vec!["true".into()], vec![], "/").unwrap()
    }

    fn seccomp_names(s: &Spec) -> Vec<String> {
        s.linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .and_then(|p| p.syscalls().clone())
            .unwrap_or_default()
            .iter()
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn the_default_spec_carries_dockers_profile_for_its_capabilities() {
        let mut s = spec();
        let names = seccomp_names(&s);
        assert!(names.iter().any(|n| n == "read"));
        assert!(!names.iter().any(|n| n == "mount"));
        let process = s.process_mut().as_mut().unwrap();
        let mut caps = process.capabilities().clone().unwrap();
        let mut bounding = caps.bounding().clone().unwrap();
        bounding.insert(Capability::SysAdmin);
        caps.set_bounding(Some(bounding));
        process.set_capabilities(Some(caps));
        set_default_seccomp(&mut s).unwrap();
        assert!(seccomp_names(&s).iter().any(|n| n == "mount"));
    }

    fn host(kernel: &str) -> Host {
        Host {
            arch_name: "amd64".into(),
            arch: Some(oci_spec::runtime::Arch::ScmpArchX86_64),
            kernel_release: kernel.into(),
        }
    }

    #[test]
    fn the_profile_is_resolved_for_the_kernel_given() {
        let mut s = spec();
        let profile = DockerProfile::docker_default();
        set_seccomp_profile_on(&mut s, &profile, &host("4.4.0-generic")).unwrap();
        assert!(!seccomp_names(&s).iter().any(|n| n == "ptrace"));
        set_seccomp_profile_on(&mut s, &profile, &host("6.1.0-13-amd64")).unwrap();
        assert!(seccomp_names(&s).iter().any(|n| n == "ptrace"));
        let arches = s
            .linux()
            .as_ref()
            .and_then(|l| l.seccomp().as_ref())
            .and_then(|p| p.architectures().clone())
            .unwrap();
        assert!(arches.contains(&oci_spec::runtime::Arch::ScmpArchX86_64));
    }

    #[test]
    fn privileged_with_given_capabilities_and_devices() {
        let mut s = spec();
        let set: HashSet<Capability> = [Capability::Chown, Capability::SysAdmin].into();
        let mut caps = LinuxCapabilities::default();
        caps.set_bounding(Some(set.clone()));
        caps.set_effective(Some(set));
        let mut sda = LinuxDevice::default();
        sda.set_path("/dev/sda".into());
        sda.set_typ(LinuxDeviceType::B);
        sda.set_major(8);
        make_privileged_with(&mut s, caps.clone(), vec![sda]).unwrap();
        let process = s.process().as_ref().unwrap();
        assert_eq!(process.capabilities().as_ref(), Some(&caps));
        let linux = s.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        let paths: Vec<_> = linux
            .devices()
            .as_ref()
            .unwrap()
            .iter()
            .map(|d| d.path().clone())
            .collect();
        assert_eq!(paths, [std::path::PathBuf::from("/dev/sda")]);
    }

    #[test]
    fn privileged_lifts_seccomp_masks_read_only_sysfs_and_the_device_cgroup() {
        let mut s = spec();
        make_privileged(&mut s).unwrap();
        let linux = s.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_none());
        assert_eq!(linux.masked_paths().as_deref(), Some(&[][..]));
        assert_eq!(linux.readonly_paths().as_deref(), Some(&[][..]));
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .clone()
            .unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].to_string(), "a *:* rwm");
        assert!(
            linux
                .devices()
                .as_ref()
                .unwrap()
                .iter()
                .any(|d| d.path() == std::path::Path::new("/dev/null"))
        );
        for m in s.mounts().as_ref().unwrap() {
            if m.destination().starts_with("/sys") {
                assert!(
                    !m.options().as_ref().unwrap().iter().any(|o| o == "ro"),
                    "{m:?}"
                );
            }
        }
        let host = caps::read(None, CapSet::Bounding).unwrap();
        let caps = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), host.len());
        assert_eq!(caps.effective(), caps.bounding());
    }
}
