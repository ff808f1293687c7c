//! [`default_spec`]: the Spec docker would hand its runtime, for the CLI to adjust;
//! [`resolve_user`] for `-u name[:group]` against the container's own passwd/group files;
//! and what docker does to a spec for its security options: [`set_default_seccomp`] and
//! [`set_seccomp_profile`] (after the capabilities are final), [`make_privileged`],
//! [`add_device`] for `--device`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxNamespace, LinuxNamespaceType, LinuxResourcesBuilder, Mount, ProcessBuilder, RootBuilder,
    Spec, UserBuilder,
};

mod devices;
mod security;
mod unprivileged;

pub use devices::{DeviceMapping, add_device, devices_in, host_devices};
pub use security::{
    make_privileged, make_privileged_with, privileged_capabilities, set_default_seccomp,
    set_seccomp_profile, set_seccomp_profile_on,
};
pub use unprivileged::make_rootless;

/// Errors building a spec or resolving a user.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// oci-spec refused a value.
    #[error("building the default spec")]
    Build(#[source] oci_spec::OciSpecError),
    /// The spec lacks a section the change needs.
    #[error("the spec has no {0} section")]
    Incomplete(&'static str),
    /// The seccomp profile cannot be resolved for this spec.
    #[error("resolving the seccomp profile for the container")]
    Seccomp(#[source] crate::seccomp::ProfileError),
    /// This process's capability bounding set cannot be read.
    #[error("reading this process's capability bounding set")]
    Capabilities(#[source] caps::errors::CapsError),
    /// A device mapping is not in docker's `HOST[:CONTAINER[:PERMISSIONS]]` form.
    #[error("invalid device mapping {value:?}: {reason}")]
    DeviceMapping {
        /// The mapping as given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A host device (or directory of devices) cannot be read.
    #[error("gathering device information from {path}")]
    Device {
        /// The host path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The host path is neither a device node nor a directory holding any.
    #[error("{path} is not a device node, nor a directory holding any")]
    NotADevice {
        /// The host path.
        path: PathBuf,
    },
    /// The user or group name is not in the container's files.
    #[error("unable to find {kind} {name:?} in {file}")]
    UnknownName {
        /// "user" or "group".
        kind: &'static str,
        /// The name.
        name: String,
        /// The file searched.
        file: PathBuf,
    },
    /// A uid or gid past what docker allows (negative as an `int32`, or `(uid_t)-1`).
    #[error("{kind} {id} is out of range: uids and gids must be in range 0-{max}", max = MAX_ID)]
    IdOutOfRange {
        /// "uid" or "gid".
        kind: &'static str,
        /// The id as given or found.
        id: u64,
    },
    /// The container's user or group file could not be read.
    #[error("reading {file} in the container's root {root}")]
    ReadFile {
        /// The file, inside the root.
        file: PathBuf,
        /// The root.
        root: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// The largest uid or gid docker accepts.
pub const MAX_ID: u32 = i32::MAX as u32;

/// The `PATH` docker sets when the image gives none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// docker's default capability set (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPABILITIES: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// docker's masked paths (moby `oci/defaults.go`).
pub const DEFAULT_MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// docker's read-only paths.
pub const DEFAULT_READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(PathBuf::from(source)));
    m.set_options(Some(options.iter().map(|s| s.to_string()).collect()));
    m
}

/// docker's default mounts: /proc, /dev (tmpfs), /dev/pts, /sys (ro), /sys/fs/cgroup (ro),
/// /dev/mqueue, /dev/shm (64 MiB).
pub fn default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        ),
    ]
}

fn rule(
    allow: bool,
    typ: LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(major);
    r.set_minor(minor);
    r.set_access(Some(access.to_string()));
    r
}

/// docker's device cgroup rules: deny everything, allow mknod of any node, and use of the
/// nodes every container gets.
pub fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    use LinuxDeviceType::{A, B, C};
    vec![
        rule(false, A, None, None, "rwm"),
        rule(true, C, None, None, "m"),
        rule(true, B, None, None, "m"),
        rule(true, C, Some(1), Some(3), "rwm"),    // null
        rule(true, C, Some(1), Some(5), "rwm"),    // zero
        rule(true, C, Some(1), Some(7), "rwm"),    // full
        rule(true, C, Some(1), Some(8), "rwm"),    // random
        rule(true, C, Some(1), Some(9), "rwm"),    // urandom
        rule(true, C, Some(5), Some(0), "rwm"),    // tty
        rule(true, C, Some(5), Some(1), "rwm"),    // console
        rule(true, C, Some(5), Some(2), "rwm"),    // ptmx
        rule(true, C, Some(136), None, "rwm"),     // pts/*
        rule(true, C, Some(10), Some(200), "rwm"), // net/tun
    ]
}

/// A Spec with docker's defaults for running `args` with `env` in `cwd` as root:
/// new pid, net, ipc, uts, mount and cgroup namespaces; [`default_mounts`]; docker's masked
/// and read-only paths; [`DEFAULT_CAPABILITIES`] as bounding, effective and permitted sets;
/// [`default_device_rules`]; docker's default seccomp profile for those capabilities (as
/// in the spec docker hands its runtime); `PATH` added to `env` when missing. No hostname,
/// no resource limits, no user namespace: the caller sets those on the returned value.
///
/// The seccomp profile depends on the capabilities: after changing them, call
/// [`set_default_seccomp`] again (or [`make_privileged`], which removes it). It also depends
/// on this machine's architecture and kernel release, the only host facts this function
/// reads; [`set_seccomp_profile_on`] resolves it for another.
pub fn default_spec(args: Vec<String>, env: Vec<String>, cwd: &str) -> Result<Spec, SpecError> {
    let caps: HashSet<Capability> = DEFAULT_CAPABILITIES.iter().copied().collect();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()
        .map_err(SpecError::Build)?;
    let mut env = env;
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(0u32)
                .gid(0u32)
                .build()
                .map_err(SpecError::Build)?,
        )
        .args(args)
        .env(env)
        .cwd(if cwd.is_empty() { "/" } else { cwd })
        .capabilities(capabilities)
        .no_new_privileges(false)
        .build()
        .map_err(SpecError::Build)?;
    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ]
    .into_iter()
    .map(|t| {
        let mut n = LinuxNamespace::default();
        n.set_typ(t);
        n
    })
    .collect::<Vec<_>>();
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(
            DEFAULT_MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            DEFAULT_READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .resources(
            LinuxResourcesBuilder::default()
                .devices(default_device_rules())
                .build()
                .map_err(SpecError::Build)?,
        )
        .build()
        .map_err(SpecError::Build)?;
    let mut spec = Spec::default();
    spec.set_version("1.0.2".to_string());
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(false)
            .build()
            .map_err(SpecError::Build)?,
    ));
    spec.set_hostname(None);
    spec.set_mounts(Some(default_mounts()));
    spec.set_process(Some(process));
    spec.set_linux(Some(linux));
    set_default_seccomp(&mut spec)?;
    Ok(spec)
}

/// A resolved `-u` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
    /// Supplementary groups the user belongs to in the container's /etc/group.
    pub additional_gids: Vec<u32>,
}

/// Resolves docker's `-u user[:group]` (names or numbers) against the container's own
/// `/etc/passwd` and `/etc/group`, as docker does: numeric ids need not exist in the files,
/// and ids above [`MAX_ID`] are refused. The files are read inside `rootfs` (see
/// [`crate::in_root`]): an image's `/etc/passwd` that is a symlink to a host file is
/// followed inside the root, never to the host.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ResolvedUser, SpecError> {
    let passwd_path = PathBuf::from("/etc/passwd");
    let group_path = PathBuf::from("/etc/group");
    let root = crate::in_root::Root::open(rootfs).map_err(|source| SpecError::ReadFile {
        file: PathBuf::from("/"),
        root: rootfs.to_path_buf(),
        source,
    })?;
    let passwd = read_in_root(&root, &passwd_path)?;
    let groups = read_in_root(&root, &group_path)?;
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == u || f[2] == u));
    let (uid, mut gid, name) = match (entry, numeric(u, "uid")?) {
        (Some(f), _) => (
            id_field(f[2], "uid")?,
            id_field(f[3], "gid")?,
            Some(f[0].to_string()),
        ),
        (None, Some(n)) => (n, 0, None),
        (None, None) => {
            return Err(SpecError::UnknownName {
                kind: "user",
                name: u.to_string(),
                file: passwd_path,
            });
        }
    };
    let group_lines: Vec<Vec<&str>> = groups
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 3)
        .collect();
    if let Some(g) = g {
        gid = match group_lines.iter().find(|f| f[0] == g || f[2] == g) {
            Some(f) => id_field(f[2], "gid")?,
            None => numeric(g, "gid")?.ok_or_else(|| SpecError::UnknownName {
                kind: "group",
                name: g.to_string(),
                file: group_path.clone(),
            })?,
        };
    }
    let additional_gids = match &name {
        Some(name) => group_lines
            .iter()
            .filter(|f| f.get(3).is_some_and(|m| m.split(',').any(|x| x == name)))
            .filter_map(|f| id_field(f[2], "gid").ok())
            .filter(|x| *x != gid)
            .collect(),
        None => Vec::new(),
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
    })
}

/// The file's text; a missing file reads as empty (numeric ids need no files).
fn read_in_root(root: &crate::in_root::Root, file: &Path) -> Result<String, SpecError> {
    match root.read(file) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(SpecError::ReadFile {
            file: file.to_path_buf(),
            root: root.path().to_path_buf(),
            source,
        }),
    }
}

/// `text` as an id when it is a number (`None` for a name); a number past [`MAX_ID`] is
/// an error, not a name.
fn numeric(text: &str, kind: &'static str) -> Result<Option<u32>, SpecError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let id: u64 = text.parse().unwrap_or(u64::MAX);
    match u32::try_from(id) {
        Ok(n) if n <= MAX_ID => Ok(Some(n)),
        _ => Err(SpecError::IdOutOfRange { kind, id }),
    }
}

/// An id field of a passwd or group line; garbage reads as 0, as before, but a number past
/// [`MAX_ID`] is refused.
fn id_field(text: &str, kind: &'static str) -> Result<u32, SpecError> {
    Ok(numeric(text, kind)?.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_has_dockers_defaults() {
        let spec = default_spec(vec!["sh".into()], vec!["A=1".into()], "").unwrap();
        let p = spec.process().as_ref().unwrap();
        assert_eq!(p.env().as_ref().unwrap()[0], DEFAULT_PATH);
        assert_eq!(p.cwd(), Path::new("/"));
        let caps = p.capabilities().as_ref().unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.inheritable().as_ref().unwrap().is_empty());
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(linux.namespaces().as_ref().unwrap().len(), 6);
        assert!(
            linux
                .masked_paths()
                .as_ref()
                .unwrap()
                .contains(&"/proc/kcore".to_string())
        );
        // Round-trips through config.json.
        let json = serde_json::to_string(&spec).unwrap();
        let back: Spec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn resolves_users_and_groups_in_the_rootfs() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\nweb:x:33:33::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nlog:x:4:web,other\n",
        )
        .unwrap();
        let r = resolve_user(root.path(), "web").unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids), (33, 33, vec![4]));
        let r = resolve_user(root.path(), "web:root").unwrap();
        assert_eq!((r.uid, r.gid), (33, 0));
        let r = resolve_user(root.path(), "1234:5678").unwrap();
        assert_eq!((r.uid, r.gid, r.additional_gids), (1234, 5678, vec![]));
        assert!(resolve_user(root.path(), "nobody-here").is_err());
        assert!(resolve_user(root.path(), "web:nogroup").is_err());
    }

    #[test]
    fn ids_past_int32_are_refused_as_docker_does() {
        let root = tempfile::tempdir().unwrap();
        for user in [
            "2147483648",
            "4294967295",
            "4294967296",
            "0:4294967295",
            "1:2147483648",
        ] {
            let e = resolve_user(root.path(), user).unwrap_err();
            assert!(
                e.to_string().contains("must be in range 0-2147483647"),
                "{user}: {e}"
            );
        }
        let r = resolve_user(root.path(), "2147483647:2147483647").unwrap();
        assert_eq!((r.uid, r.gid), (2147483647, 2147483647));
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "huge:x:4294967295:0::/:/bin/sh\n",
        )
        .unwrap();
        assert!(resolve_user(root.path(), "huge").is_err());
    }

    #[test]
    fn a_passwd_symlink_to_the_host_is_not_followed_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        let host = dir.path().join("host-passwd");
        std::fs::write(&host, "hostonly:x:4242:4242::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(&host, root.join("etc/passwd")).unwrap();
        // Positive control: the same name resolves when the file is the root's own.
        let plain = dir.path().join("plain");
        std::fs::create_dir_all(plain.join("etc")).unwrap();
        std::fs::copy(&host, plain.join("etc/passwd")).unwrap();
        assert_eq!(resolve_user(&plain, "hostonly").unwrap().uid, 4242);
        let e = resolve_user(&root, "hostonly").unwrap_err();
        assert!(e.to_string().contains("unable to find user"), "{e}");
    }
}
