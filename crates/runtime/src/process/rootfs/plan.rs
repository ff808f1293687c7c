//! Deciding the container's root filesystem: from the spec and a few facts about the host
//! ([`Host`]), [`plan`] computes every mount (flags, propagation, data, file or directory
//! mount point), every device node (and its fallback), the `/dev` symlinks, the sysctls,
//! and the paths to mask, make read-only or create, as a plain value. Nothing here touches
//! the system; `super::execute` carries the plan out.
//!
//! What the plan cannot know is decided where it is used, on the path resolved inside the
//! root at that moment (see [`crate::in_root`]): whether a masked path is a directory, where
//! a destination's symlinks lead, which flags a remount must keep.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::stat::SFlag;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxNamespaceType, Mount, Spec};

use super::super::{ChildError, io};
use crate::cgroups::CgroupVersion;
use crate::in_root::Leaf;

/// What the plan needs to know about the host; [`Host::read`] gathers it on the container
/// side, in the mount namespace the container starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Host {
    /// The cgroup hierarchy under `/sys/fs/cgroup`.
    pub cgroup: CgroupVersion,
    /// The v1 hierarchies there (directory names), for a cgroup mount on a v1 host.
    pub cgroup_v1_hierarchies: Vec<String>,
    /// Without a cgroup namespace on a v1 host: the container's own cgroup in each
    /// hierarchy (from `/proc/self/cgroup`, keyed by the hierarchy's directory name), which
    /// is what its `/sys/fs/cgroup/<hierarchy>` shows, as with runc; empty otherwise.
    pub own_cgroups: std::collections::HashMap<String, PathBuf>,
    /// The sources of the spec's bind mounts that are directories (the others get a file
    /// as their mount point).
    pub directory_sources: HashSet<PathBuf>,
    /// Whether the container side runs in a user namespace other than the host's (its
    /// own, or the rootless engine's it was started in), where `mknod` of a device is
    /// always refused.
    pub user_namespace: bool,
}

impl Host {
    /// Reads what the plan of `spec` needs: only what its mounts ask about.
    pub(crate) fn read(spec: &Spec) -> Result<Host, ChildError> {
        let root = Path::new(crate::cgroups::DEFAULT_ROOT);
        let cgroup = crate::cgroups::detect_version(root);
        let mounts = spec.mounts().as_deref().unwrap_or_default();
        let wants_v1 = cgroup == CgroupVersion::V1 && mounts.iter().any(is_cgroup);
        let cgroup_v1_hierarchies = match wants_v1 {
            true => std::fs::read_dir(root)
                .map_err(io("listing /sys/fs/cgroup"))?
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            false => Vec::new(),
        };
        let own_cgroups =
            match wants_v1 && !super::super::wants_new(spec, LinuxNamespaceType::Cgroup) {
                true => own_cgroups(
                    &std::fs::read_to_string("/proc/self/cgroup")
                        .map_err(io("reading /proc/self/cgroup"))?,
                ),
                false => Default::default(),
            };
        let directory_sources = mounts
            .iter()
            .filter(|m| is_bind(m))
            .filter_map(|m| m.source().clone())
            .filter(|source| source.is_dir())
            .collect();
        Ok(Host {
            cgroup,
            cgroup_v1_hierarchies,
            own_cgroups,
            directory_sources,
            user_namespace: crate::rootless::active(),
        })
    }
}

/// The whole root filesystem, in the order it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Applied recursively to `/` before anything is mounted, so that nothing mounted for
    /// the container propagates back to the host (`rslave` unless the spec says otherwise).
    pub propagation: Propagation,
    /// The spec's mounts, in its order.
    pub mounts: Vec<MountStep>,
    /// Device nodes and `/dev` symlinks, in order.
    pub dev: Vec<DevEntry>,
    /// How the process enters the root.
    pub enter: Enter,
    /// Written once inside the root, before `/proc/sys` may become read-only.
    pub sysctls: Vec<Sysctl>,
    /// The working directory, created when missing (after entering the root).
    pub cwd: Option<PathBuf>,
    /// Paths hidden under an empty read-only tmpfs (directories) or `/dev/null` (files).
    pub masked: Vec<PathBuf>,
    /// Paths bind-mounted onto themselves read-only.
    pub readonly: Vec<PathBuf>,
    /// `root.readonly`: the whole root remounted read-only last.
    pub readonly_root: bool,
}

/// A mount propagation type, as named in the spec and as a flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Propagation {
    /// The spec's name (`rslave`, `private`, ...), for messages.
    pub name: String,
    /// `MS_SLAVE`, `MS_PRIVATE`, `MS_SHARED` or `MS_UNBINDABLE`, without `MS_REC`.
    pub flag: MsFlags,
}

impl Propagation {
    /// Whether it must be applied again inside the new root: every type but the default
    /// slave, which the new root inherits.
    pub fn reapplied_in_root(&self) -> bool {
        self.flag != MsFlags::MS_SLAVE
    }
}

/// One of the spec's mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountStep {
    /// Where, inside the root (symlinks in it are followed inside the root).
    pub destination: PathBuf,
    /// What to create there when it is missing.
    pub mount_point: Leaf,
    /// `proc` and `sysfs`: the destination must resolve to itself, not through a symlink
    /// (runc's rule since CVE-2019-19921, or their masked paths would mask nothing).
    pub real_directory: bool,
    /// What is mounted.
    pub action: MountAction,
    /// Propagation set on the new mount afterwards (`rslave` and the like in its options);
    /// empty for none.
    pub propagation: MsFlags,
    /// "mounting SOURCE (TYPE) on DESTINATION", for messages.
    pub what: String,
}

/// What one mount is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MountAction {
    /// A bind mount (`MS_REC` for `rbind`); a bind ignores other flags, so those are
    /// applied in a remount when there are any.
    Bind {
        /// The host path.
        source: PathBuf,
        /// `rbind`.
        recursive: bool,
        /// Flags for the remount (`MS_RDONLY`, `MS_NOSUID`, ...); empty for none.
        remount: MsFlags,
    },
    /// A filesystem of its own (`proc`, `tmpfs`, `devpts`, `sysfs`, `mqueue`, ...).
    Filesystem {
        /// The source (`proc`, `shm`, a device).
        source: PathBuf,
        /// The filesystem type.
        fstype: String,
        /// Mount flags.
        flags: MsFlags,
        /// Filesystem options (`mode=755,size=65536k`).
        data: Option<String>,
    },
    /// `/sys/fs/cgroup` on a v2 host: the unified hierarchy (the cgroup namespace makes the
    /// container's cgroup its root).
    Cgroup2 {
        /// Mount flags.
        flags: MsFlags,
    },
    /// `/sys/fs/cgroup` on a v1 host: a tmpfs holding each hierarchy; the tmpfs is made
    /// read-only once they are mounted when `readonly`.
    CgroupV1 {
        /// Flags of each hierarchy's mount.
        flags: MsFlags,
        /// Each hierarchy: its directory name, its mount options, and without a cgroup
        /// namespace the container's own cgroup in it, bind-mounted from the host's
        /// hierarchy instead of mounting the whole hierarchy.
        hierarchies: Vec<(String, String, Option<PathBuf>)>,
        /// Whether the tmpfs ends read-only.
        readonly: bool,
    },
}

/// An entry of the container's `/dev`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DevEntry {
    /// A device node.
    Node(DeviceNode),
    /// A symbolic link `/dev/<link>` → `target`.
    Symlink {
        /// What it points to.
        target: &'static str,
        /// Its name in `/dev`.
        link: &'static str,
    },
}

/// A device node to make inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceNode {
    /// Its path inside the root (under `/dev`).
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO`.
    pub kind: SFlag,
    /// Major and minor numbers.
    pub major: u64,
    /// See `major`.
    pub minor: u64,
    /// Permission bits.
    pub mode: u32,
    /// Owner, when the spec gives one (otherwise the node stays the creator's).
    pub uid: Option<u32>,
    /// Group, when the spec gives one.
    pub gid: Option<u32>,
    /// How it is made.
    pub how: MakeNode,
}

/// How a device node is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MakeNode {
    /// `mknod`; where the kernel refuses (`EPERM`: this process runs in a user namespace
    /// the spec did not ask for), a bind mount of the host's node instead.
    MknodOrBind,
    /// A bind mount of the host's node: in a user namespace `mknod` of a device is always
    /// refused (runc does the same).
    Bind,
}

/// A kernel parameter of the container's namespaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Sysctl {
    /// Its name (`net.ipv4.ip_forward`).
    pub key: String,
    /// Its file (`/proc/sys/net/ipv4/ip_forward`).
    pub file: PathBuf,
    /// The value written.
    pub value: String,
}

/// How the process enters the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enter {
    /// `pivot_root`, then the old root detached (`chroot` with a warning only where the
    /// current root is an initramfs).
    PivotRoot,
    /// `MS_MOVE` onto `/` and `chroot` (runc's `--no-pivot`, for roots on a ramfs).
    MoveAndChroot,
}

/// docker's `/dev` symlinks.
const DEV_SYMLINKS: &[(&str, &str)] = &[
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
    ("pts/ptmx", "ptmx"),
    ("/proc/kcore", "core"),
];

/// The nodes every container with its own `/dev` gets (runc's and docker's list):
/// `(path, major, minor)`, character devices, mode 0666.
const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// The root filesystem `spec` asks for on `host`; `no_pivot` is runc's `--no-pivot`.
pub(crate) fn plan(spec: &Spec, host: &Host, no_pivot: bool) -> Result<Plan, ChildError> {
    let linux = spec.linux().as_ref();
    let propagation = root_propagation(linux.and_then(|l| l.rootfs_propagation().as_deref()))?;
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let cwd = spec
        .process()
        .as_ref()
        .map(|p| p.cwd().clone())
        .filter(|cwd| !cwd.as_os_str().is_empty());
    let paths = |list: Option<&Vec<String>>| {
        list.map(|l| l.iter().map(PathBuf::from).collect())
            .unwrap_or_default()
    };
    Ok(Plan {
        propagation,
        mounts: mounts.iter().map(|m| mount_step(m, host)).collect(),
        dev: dev_entries(spec, host)?,
        enter: match no_pivot {
            true => Enter::MoveAndChroot,
            false => Enter::PivotRoot,
        },
        sysctls: sysctls(spec),
        cwd,
        masked: paths(linux.and_then(|l| l.masked_paths().as_ref())),
        readonly: paths(linux.and_then(|l| l.readonly_paths().as_ref())),
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
    })
}

fn root_propagation(name: Option<&str>) -> Result<Propagation, ChildError> {
    let name = name.unwrap_or("rslave");
    let flag = propagation_flag(name)
        .ok_or_else(|| ChildError::Spec(format!("unknown rootfsPropagation {name:?}")))?;
    Ok(Propagation {
        name: name.to_string(),
        flag,
    })
}

fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name.trim_start_matches('r') {
        "private" => MsFlags::MS_PRIVATE,
        "slave" => MsFlags::MS_SLAVE,
        "shared" => MsFlags::MS_SHARED,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    })
}

/// Splits mount(8)-style options into flags, propagation flags and fs data.
pub(crate) fn parse_options(options: &[String]) -> (MsFlags, MsFlags, Vec<String>) {
    let mut flags = MsFlags::empty();
    let mut prop = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            p if propagation_flag(p).is_some() => {
                prop |= propagation_flag(p).unwrap_or(MsFlags::empty());
                if p.starts_with('r') {
                    prop |= MsFlags::MS_REC;
                }
                continue;
            }
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, prop, data)
}

fn options(m: &Mount) -> (MsFlags, MsFlags, Vec<String>) {
    parse_options(m.options().as_deref().unwrap_or_default())
}

fn fstype(m: &Mount) -> &str {
    m.typ().as_deref().unwrap_or("none")
}

fn is_bind(m: &Mount) -> bool {
    fstype(m) == "bind" || options(m).0.contains(MsFlags::MS_BIND)
}

fn is_cgroup(m: &Mount) -> bool {
    matches!(fstype(m), "cgroup" | "cgroup2")
}

fn mount_step(m: &Mount, host: &Host) -> MountStep {
    let (flags, propagation, data) = options(m);
    let typ = fstype(m);
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let bind = is_bind(m);
    let action = if is_cgroup(m) {
        cgroup_action(flags & !MsFlags::MS_BIND, host)
    } else if bind {
        MountAction::Bind {
            source: source.clone(),
            recursive: flags.contains(MsFlags::MS_REC),
            remount: flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT),
        }
    } else {
        MountAction::Filesystem {
            source: source.clone(),
            fstype: typ.to_string(),
            flags,
            data: (!data.is_empty()).then(|| data.join(",")),
        }
    };
    let file = bind && !is_cgroup(m) && !host.directory_sources.contains(&source);
    MountStep {
        destination: m.destination().clone(),
        mount_point: if file { Leaf::File } else { Leaf::Dir },
        real_directory: matches!(typ, "proc" | "sysfs"),
        action,
        propagation,
        what: format!(
            "mounting {} ({typ}) on {}",
            source.display(),
            m.destination().display()
        ),
    }
}

/// `/proc/self/cgroup` (`4:memory:/a/b`, `1:cpu,cpuacct:/a/b`, `9:name=systemd:/`) as
/// hierarchy directory name → path; a co-mounted hierarchy is listed under its full name and
/// each controller's (the host's symlinks). The v2 line (`0::/`) is left out.
pub(crate) fn own_cgroups(content: &str) -> std::collections::HashMap<String, PathBuf> {
    let mut out = std::collections::HashMap::new();
    for line in content.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers.is_empty() {
            continue;
        }
        let name = controllers.strip_prefix("name=").unwrap_or(controllers);
        out.insert(name.to_string(), PathBuf::from(path));
        for c in name.split(',') {
            out.entry(c.to_string())
                .or_insert_with(|| PathBuf::from(path));
        }
    }
    out
}

/// `/sys/fs/cgroup` as the host's hierarchy allows.
fn cgroup_action(flags: MsFlags, host: &Host) -> MountAction {
    if host.cgroup == CgroupVersion::V2 {
        return MountAction::Cgroup2 { flags };
    }
    let hierarchies = host
        .cgroup_v1_hierarchies
        .iter()
        // The hybrid layout's almost empty cgroup2 mount is no v1 hierarchy.
        .filter(|name| name.as_str() != "unified")
        .map(|name| {
            let options = match name.as_str() {
                "systemd" => "none,name=systemd".to_string(),
                other => other.to_string(),
            };
            (name.clone(), options, host.own_cgroups.get(name).cloned())
        })
        .collect();
    let always = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    MountAction::CgroupV1 {
        flags: flags | always,
        hierarchies,
        readonly: flags.contains(MsFlags::MS_RDONLY),
    }
}

/// The container's `/dev` entries: when `/dev` is a tmpfs of its own, the default nodes and
/// docker's symlinks first; then the spec's devices. A user namespace (the spec's, or the
/// one the runtime runs in) gets bind mounts.
fn dev_entries(spec: &Spec, host: &Host) -> Result<Vec<DevEntry>, ChildError> {
    let linux = spec.linux().as_ref();
    let in_user_namespace = host.user_namespace
        || linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == LinuxNamespaceType::User));
    let how = match in_user_namespace {
        true => MakeNode::Bind,
        false => MakeNode::MknodOrBind,
    };
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let dev_is_ours = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && fstype(m) == "tmpfs");
    let mut entries = Vec::new();
    if dev_is_ours {
        for (path, major, minor) in DEFAULT_DEVICES {
            entries.push(DevEntry::Node(DeviceNode {
                path: PathBuf::from(path),
                kind: SFlag::S_IFCHR,
                major: *major,
                minor: *minor,
                mode: 0o666,
                uid: None,
                gid: None,
                how,
            }));
        }
        entries.extend(
            DEV_SYMLINKS
                .iter()
                .map(|(target, link)| DevEntry::Symlink { target, link }),
        );
    }
    for d in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        entries.push(DevEntry::Node(device_node(d, how)?));
    }
    Ok(entries)
}

fn device_node(d: &LinuxDevice, how: MakeNode) -> Result<DeviceNode, ChildError> {
    if d.path().file_name().is_none() {
        return Err(ChildError::Spec(format!(
            "device path {} has no name",
            d.path().display()
        )));
    }
    Ok(DeviceNode {
        path: d.path().clone(),
        kind: match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        },
        major: d.major() as u64,
        minor: d.minor() as u64,
        mode: d.file_mode().unwrap_or(0o666),
        uid: d.uid(),
        gid: d.gid(),
        how,
    })
}

/// `net.ipv4.ip_forward=1` → `/proc/sys/net/ipv4/ip_forward`, `1`.
fn sysctls(spec: &Spec) -> Vec<Sysctl> {
    let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) else {
        return Vec::new();
    };
    let mut out: Vec<_> = sysctl
        .iter()
        .map(|(key, value)| Sysctl {
            key: key.clone(),
            file: PathBuf::from(format!("/proc/sys/{}", key.replace('.', "/"))),
            value: value.clone(),
        })
        .collect();
    // The spec's map has no order; a stable one makes failures reproducible.
    out.sort();
    out
}

#[cfg(test)]
mod tests;
