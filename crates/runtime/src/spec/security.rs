//! Confinement as docker decides it: the seccomp profile for a spec's final
//! capabilities, and everything `--privileged` lifts.

use std::collections::HashSet;

use caps::CapSet;
use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType, Mount, Spec,
};

use super::SpecError;
use super::devices::{host_devices, put_device};
use crate::seccomp::DockerProfile;

/// Puts docker's default seccomp profile, resolved for the spec's bounding set, in
/// `linux.seccomp`. Call it after the capabilities are final: as in docker, CAP_SYS_ADMIN
/// opens `mount` and `unshare`, CAP_SYS_PTRACE opens `ptrace`, and so on.
pub fn set_default_seccomp(spec: &mut Spec) -> Result<(), SpecError> {
    set_seccomp_profile(spec, &DockerProfile::docker_default())
}

/// Puts `profile`, resolved for the spec's bounding set on this machine, in
/// `linux.seccomp`.
pub fn set_seccomp_profile(spec: &mut Spec, profile: &DockerProfile) -> Result<(), SpecError> {
    let bounding = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .unwrap_or_default();
    let resolved = profile.to_oci(&bounding).map_err(SpecError::Seccomp)?;
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
    let caps = privileged_capabilities()?;
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
    let devices = host_devices()?;
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
