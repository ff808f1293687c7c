//! Spec fields this runtime does not implement are refused, never silently ignored: a
//! container must not run with less confinement (or other behaviour) than its spec asks.
//!
//! Applied: `process` (terminal, consoleSize, user, args, env, cwd, capabilities, rlimits,
//! noNewPrivileges, oomScoreAdj), `root`, `hostname`, `domainname`, `mounts` (without id
//! mappings), `annotations` (reported in the state), and `linux` uid/gid mappings, sysctl,
//! cgroupsPath, namespaces, devices, seccomp, rootfsPropagation, maskedPaths, readonlyPaths
//! and the resources the cgroup managers write (memory limit/reservation/swap/swappiness,
//! CPU shares/quota/period/cpus/mems, pids, block IO weight, devices; see [`crate::cgroups`]).
//!
//! Hooks are run (see [`crate::hooks`]); `linux.mountLabel` and `process.selinuxLabel` are
//! dropped on a host without SELinux, as runc and crun do. The block IO, network and hugetlb
//! resources are written by the cgroup managers where the host has the controller, and
//! refused there with "not available on this host" where it has not.
//!
//! Refused when set: `process.apparmorProfile`, the SELinux labels on a host with SELinux,
//! `process.ioPriority`, `process.scheduler`, `process.execCPUAffinity`,
//! `linux.intelRdt`, `linux.personality`, `linux.timeOffsets`, `linux.memoryPolicy`,
//! `linux.netDevices`, id-mapped mounts, and the resources `memory.kernel`,
//! `memory.kernelTCP`, `memory.disableOOMKiller`, `cpu.idle`, `cpu.burst`,
//! `cpu.realtimeRuntime`, `cpu.realtimePeriod`, `rdma` and `unified`.

use oci_spec::runtime::Spec;

/// The first field of `spec` this runtime would have to ignore, as a sentence naming it.
pub fn refuse_unsupported(spec: &Spec) -> Result<(), String> {
    let mut found = Vec::new();
    let mut set = |on: bool, field: &str| {
        if on {
            found.push(field.to_string());
        }
    };
    if let Some(p) = spec.process() {
        set(non_empty(p.apparmor_profile()), "process.apparmorProfile");
        // Without SELinux on the host a label confines nothing and is dropped, as runc
        // and crun do; with it, the label would have to be applied, which we do not.
        set(
            non_empty(p.selinux_label()) && selinux_enabled(),
            "process.selinuxLabel (this host has SELinux)",
        );
        set(p.io_priority().is_some(), "process.ioPriority");
        set(p.scheduler().is_some(), "process.scheduler");
        set(p.exec_cpu_affinity().is_some(), "process.execCPUAffinity");
    }
    for m in spec.mounts().as_deref().unwrap_or_default() {
        set(
            m.uid_mappings().is_some() || m.gid_mappings().is_some(),
            &format!("id-mapped mount on {}", m.destination().display()),
        );
    }
    if let Some(l) = spec.linux() {
        set(
            non_empty(l.mount_label()) && selinux_enabled(),
            "linux.mountLabel (this host has SELinux)",
        );
        set(l.intel_rdt().is_some(), "linux.intelRdt");
        set(l.personality().is_some(), "linux.personality");
        set(
            l.time_offsets().as_ref().is_some_and(|t| !t.is_empty()),
            "linux.timeOffsets",
        );
        set(l.memory_policy().is_some(), "linux.memoryPolicy");
        set(
            l.net_devices().as_ref().is_some_and(|d| !d.is_empty()),
            "linux.netDevices",
        );
        if let Some(r) = l.resources() {
            if let Some(m) = r.memory() {
                set(m.kernel().is_some(), "linux.resources.memory.kernel");
                set(m.kernel_tcp().is_some(), "linux.resources.memory.kernelTCP");
                set(
                    m.disable_oom_killer() == Some(true),
                    "linux.resources.memory.disableOOMKiller",
                );
            }
            if let Some(c) = r.cpu() {
                set(c.idle().is_some(), "linux.resources.cpu.idle");
                set(c.burst().is_some(), "linux.resources.cpu.burst");
                set(
                    c.realtime_runtime().is_some() || c.realtime_period().is_some(),
                    "linux.resources.cpu.realtimeRuntime/realtimePeriod",
                );
            }
            set(
                r.rdma().as_ref().is_some_and(|m| !m.is_empty()),
                "linux.resources.rdma",
            );
            set(
                r.unified().as_ref().is_some_and(|m| !m.is_empty()),
                "linux.resources.unified",
            );
        }
    }
    match found.as_slice() {
        [] => Ok(()),
        fields => Err(format!(
            "{} {} not supported by this runtime (refused rather than ignored)",
            fields.join(", "),
            if fields.len() == 1 { "is" } else { "are" }
        )),
    }
}

/// Paths of the spec that would lead outside the container's root, refused as runc does:
/// a mount destination or device path whose `..` climbs above `/` (`/../../etc`, `../x`),
/// a device path outside `/dev`, a relative or escaping `process.cwd`, and a uid or gid of
/// `(uid_t)-1` (which would leave the process with the runtime's own ids).
pub fn refuse_escapes(spec: &Spec) -> Result<(), String> {
    for m in spec.mounts().as_deref().unwrap_or_default() {
        if climbs_out(m.destination()) {
            return Err(format!(
                "mount destination {} leaves the container's root",
                m.destination().display()
            ));
        }
    }
    let devices = spec.linux().as_ref().and_then(|l| l.devices().as_deref());
    for d in devices.unwrap_or_default() {
        let path = d.path();
        if !path.is_absolute() || climbs_out(path) || !path.starts_with("/dev/") {
            return Err(format!(
                "device path {} must be an absolute path under /dev without '..'",
                path.display()
            ));
        }
    }
    if let Some(p) = spec.process() {
        refuse_unchanged_ids(p)?;
        if !p.cwd().is_absolute() {
            return Err(format!(
                "process.cwd {:?} must be an absolute path",
                p.cwd().display().to_string()
            ));
        }
        if climbs_out(p.cwd()) {
            return Err(format!(
                "process.cwd {} leaves the container's root",
                p.cwd().display()
            ));
        }
    }
    Ok(())
}

/// A uid or gid of `(uid_t)-1`, which `setresuid`/`setresgid` read as "leave unchanged":
/// the process would keep the runtime's own ids (root).
pub fn refuse_unchanged_ids(p: &oci_spec::runtime::Process) -> Result<(), String> {
    let user = p.user();
    let ids = [("uid", user.uid()), ("gid", user.gid())]
        .into_iter()
        .chain(
            user.additional_gids()
                .iter()
                .flatten()
                .map(|g| ("additionalGids", *g)),
        );
    for (field, id) in ids {
        if id == u32::MAX {
            return Err(format!(
                "process.user.{field} 4294967295 is (uid_t)-1, which the kernel reads as \"leave unchanged\": the process would keep the runtime's own ids"
            ));
        }
    }
    Ok(())
}

/// Whether a `..` of `path` climbs above its start, read lexically (`/a/../..`).
fn climbs_out(path: &std::path::Path) -> bool {
    let mut depth = 0usize;
    for c in path.components() {
        match c {
            std::path::Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return true,
            },
            std::path::Component::Normal(_) => depth += 1,
            _ => {}
        }
    }
    false
}

/// Whether the host runs SELinux (its filesystem is mounted where libselinux looks).
fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// `ociVersion` must be a SemVer version of the 1.x line (`1.0.2`, `1.1.0-rc.1`,
/// `1.2.0+dev`): anything else is a config this runtime cannot know it reads right.
pub fn refuse_bad_version(spec: &Spec) -> Result<(), String> {
    let v = spec.version();
    let core = v.split(['-', '+']).next().unwrap_or_default();
    let suffix_ok = v[core.len()..]
        .split(['-', '+', '.'])
        .all(|part| part.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    let nums: Vec<&str> = core.split('.').collect();
    let numeric = |n: &&str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    if nums.len() == 3 && nums.iter().all(numeric) && nums[0] == "1" && suffix_ok {
        return Ok(());
    }
    Err(format!(
        "ociVersion {v:?} is not a runtime-spec version this runtime reads: it must be a \
         SemVer 1.x.y version such as \"1.0.2\""
    ))
}

fn non_empty(s: &Option<String>) -> bool {
    s.as_ref().is_some_and(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> Spec {
        let mut base =
            serde_json::to_value(crate::default_spec(vec!["true".into()], vec![], "/").unwrap())
                .unwrap();
        merge(&mut base, json);
        serde_json::from_value(base).unwrap()
    }

    fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn dockers_default_spec_passes() {
        refuse_unsupported(&spec(serde_json::json!({}))).unwrap();
    }

    #[test]
    fn each_unimplemented_field_is_named() {
        let cases = [
            (
                serde_json::json!({"process": {"apparmorProfile": "docker-default"}}),
                "process.apparmorProfile",
            ),
            (
                serde_json::json!({"linux": {"personality": {"domain": "LINUX32"}}}),
                "linux.personality",
            ),
            (
                serde_json::json!({"linux": {"resources": {"memory": {"kernel": 1024}}}}),
                "memory.kernel",
            ),
            (
                serde_json::json!({"linux": {"resources": {"unified": {"memory.high": "1M"}}}}),
                "linux.resources.unified",
            ),
        ];
        for (json, field) in cases {
            let e = refuse_unsupported(&spec(json.clone())).unwrap_err();
            assert!(e.contains(field), "{json}: {e}");
            assert!(e.contains("not supported"), "{e}");
        }
    }

    #[test]
    fn paths_that_leave_the_root_are_refused_by_field() {
        let cases = [
            (
                serde_json::json!({"mounts": [{"destination": "/../../tmp/x", "type": "tmpfs", "source": "tmpfs"}]}),
                "mount destination /../../tmp/x",
            ),
            (
                serde_json::json!({"mounts": [{"destination": "../x", "type": "tmpfs", "source": "tmpfs"}]}),
                "mount destination ../x",
            ),
            (
                serde_json::json!({"linux": {"devices": [{"path": "/dev/../../tmp/null", "type": "c", "major": 1, "minor": 3}]}}),
                "device path /dev/../../tmp/null",
            ),
            (
                serde_json::json!({"linux": {"devices": [{"path": "/tmp/null", "type": "c", "major": 1, "minor": 3}]}}),
                "device path /tmp/null",
            ),
            (
                serde_json::json!({"process": {"cwd": "relative/dir"}}),
                "process.cwd \"relative/dir\"",
            ),
            (
                serde_json::json!({"process": {"user": {"uid": 4294967295u32, "gid": 0}}}),
                "process.user.uid 4294967295",
            ),
        ];
        for (json, field) in cases {
            let e = refuse_escapes(&spec(json.clone())).unwrap_err();
            assert!(e.contains(field), "{json}: {e}");
        }
        let fine = serde_json::json!({"mounts": [{"destination": "/a/../b", "type": "tmpfs", "source": "tmpfs"}],
                                      "process": {"cwd": "/work/../srv"}});
        refuse_escapes(&spec(fine)).unwrap();
    }

    #[test]
    fn hooks_and_labels_without_selinux_pass() {
        let json = serde_json::json!({"hooks": {"prestart": [{"path": "/bin/true"}]},
                                      "linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}});
        if !selinux_enabled() {
            refuse_unsupported(&spec(json)).unwrap();
        }
    }

    #[test]
    fn oci_version_must_be_semver_1() {
        for good in ["1.0.0", "1.0.2", "1.1.0-rc.1", "1.2.0+dev", "1.0.2-dev"] {
            refuse_bad_version(&spec(serde_json::json!({"ociVersion": good})))
                .unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "invalid", "", "1.0", "2.0.0", "0.9.0", "1.0.x", "01.0.0", "1.0.0-$",
        ] {
            let e = refuse_bad_version(&spec(serde_json::json!({"ociVersion": bad}))).unwrap_err();
            assert!(e.contains(&format!("ociVersion {bad:?}")), "{e}");
            assert!(e.contains("SemVer 1.x.y"), "{e}");
        }
    }
}
