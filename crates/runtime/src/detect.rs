//! What this host lets us do, found by trying (namespaces are unshared in a forked child,
//! cgroup controllers by creating a probe directory), and what a given Spec asks for that
//! cannot be honoured here — so the CLI can warn once, or refuse with `--isolation=strict`.

use std::path::Path;

use caps::CapSet;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::{self, CgroupVersion};

/// What the host offers. Build it with [`detect`]. Serialisable so a caller can keep
/// it for the rest of the boot instead of probing before every container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Environment {
    /// Effective uid 0.
    pub root: bool,
    /// Evidence that we run inside a container (`/.dockerenv`, ...), if any.
    pub in_container: Option<String>,
    /// Each namespace type and whether unshare(2) of it worked.
    pub namespaces: Vec<(LinuxNamespaceType, bool)>,
    /// cgroup version of `/sys/fs/cgroup`.
    pub cgroup_version: CgroupVersion,
    /// Controllers present and whether we can create cgroups in them.
    pub cgroup_controllers: Vec<(String, bool)>,
    /// Whether swap accounting (v1 memsw, v2 memory.swap.max) is available.
    pub swap_accounting: bool,
    /// overlayfs is known to the kernel.
    pub overlayfs: bool,
    /// pivot_root can work (the root is not an initramfs).
    pub pivot_root: bool,
    /// Capabilities missing from our bounding set (e.g. `CAP_SYS_RESOURCE` on CI machines).
    pub missing_capabilities: Vec<String>,
    /// Hard RLIMIT_NOFILE, the one that commonly bites (containers cannot go above it
    /// without CAP_SYS_RESOURCE).
    pub hard_nofile: u64,
}

const PROBED: &[LinuxNamespaceType] = &[
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Cgroup,
    // Last: entering a user namespace changes what the others would be allowed to do.
    LinuxNamespaceType::User,
];

/// Probes the host. Takes a few milliseconds (one fork, a few mkdirs).
pub fn detect() -> Environment {
    let root = nix::unistd::geteuid().is_root();
    let cgroup_root = Path::new(cgroups::DEFAULT_ROOT);
    let cgroup_version = cgroups::detect_version(cgroup_root);
    let cgroup_controllers = probe_controllers(cgroup_root, cgroup_version);
    let swap_accounting = match cgroup_version {
        CgroupVersion::V1 => cgroup_root
            .join("memory/memory.memsw.limit_in_bytes")
            .exists(),
        CgroupVersion::V2 => std::fs::read_to_string("/proc/swaps")
            .map(|s| s.lines().count() > 1)
            .unwrap_or(false),
    };
    let bounding = caps::read(None, CapSet::Bounding).unwrap_or_default();
    let missing_capabilities = caps::all()
        .into_iter()
        .filter(|c| !bounding.contains(c))
        .map(|c| c.to_string())
        .collect();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    Environment {
        root,
        in_container: in_container(),
        namespaces: probe_namespaces(),
        cgroup_version,
        cgroup_controllers,
        swap_accounting,
        overlayfs: std::fs::read_to_string("/proc/filesystems")
            .map(|s| s.lines().any(|l| l.ends_with("\toverlay")))
            .unwrap_or(false),
        pivot_root: !crate::process::root_is_ramfs(),
        missing_capabilities,
        hard_nofile: lim.rlim_max,
    }
}

impl Environment {
    /// Whether a new namespace of this type can be created.
    pub fn can_create(&self, typ: LinuxNamespaceType) -> bool {
        self.namespaces.iter().any(|(t, ok)| *t == typ && *ok)
    }

    /// Whether cgroups can be created under `controller`.
    pub fn controller_writable(&self, controller: &str) -> bool {
        self.cgroup_controllers
            .iter()
            .any(|(c, ok)| c == controller && *ok)
    }
}

fn in_container() -> Option<String> {
    for f in ["/.dockerenv", "/run/.containerenv"] {
        if Path::new(f).exists() {
            return Some(format!("{f} exists"));
        }
    }
    if let Ok(env) = std::fs::read("/proc/1/environ")
        && let Some(v) = env
            .split(|b| *b == 0)
            .find(|e| e.starts_with(b"container="))
    {
        return Some(format!("PID 1 has {}", String::from_utf8_lossy(v)));
    }
    let cg = std::fs::read_to_string("/proc/1/cgroup").unwrap_or_default();
    for word in ["docker", "kubepods", "lxc", "containerd", "libpod"] {
        if cg.contains(word) {
            return Some(format!("/proc/1/cgroup mentions {word}"));
        }
    }
    None
}

/// Forks a child that tries each unshare and reports a bitmask in its exit code.
///
/// The one fork of this library that the fork rule (see [`crate::fork_rule`]) does not
/// check, because it needs not: the child only calls unshare(2) and _exit(2), which are
/// async-signal-safe, so it is sound from a multi-threaded process too (`detect` runs in
/// engines that already have threads).
fn probe_namespaces() -> Vec<(LinuxNamespaceType, bool)> {
    let none = || PROBED.iter().map(|t| (*t, false)).collect();
    // SAFETY: the child runs only async-signal-safe calls (see above) and never returns.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => {
            let mut bits = 0;
            for (i, t) in PROBED.iter().enumerate() {
                if nix::sched::unshare(crate::process::clone_flag(*t)).is_ok() {
                    bits |= 1 << i;
                }
            }
            // SAFETY: _exit in the forked child, skipping the parent's atexit handlers.
            unsafe { libc::_exit(bits) }
        }
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(_) => return none(),
    };
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Ok(nix::sys::wait::WaitStatus::Exited(_, bits)) => {
                return PROBED
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (*t, bits & (1 << i) != 0))
                    .collect();
            }
            Err(nix::Error::EINTR) => continue,
            _ => return none(),
        }
    }
}

fn probe_controllers(root: &Path, version: CgroupVersion) -> Vec<(String, bool)> {
    // Unique per call: concurrent detect() calls in one process must not share a probe.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = |dir: &Path| {
        let p = dir.join(format!("basic-docker-probe-{}-{seq}", std::process::id()));
        let ok = std::fs::create_dir(&p).is_ok();
        let _ = std::fs::remove_dir(&p);
        ok
    };
    match version {
        CgroupVersion::V2 => {
            let ok = probe(root);
            std::fs::read_to_string(root.join("cgroup.controllers"))
                .unwrap_or_default()
                .split_whitespace()
                .map(|c| (c.to_string(), ok))
                .collect()
        }
        CgroupVersion::V1 => {
            let mut out: Vec<(String, bool)> = std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "unified" && n != "systemd" && !n.contains(','))
                .map(|n| {
                    let ok = probe(&root.join(&n));
                    (n, ok)
                })
                .collect();
            out.sort();
            out
        }
    }
}

/// One thing a Spec asks for that this host cannot give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The feature, as a user would name it ("pid namespace", "memory limit" ...).
    pub feature: String,
    /// Why not, and what happens instead.
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.feature, self.reason)
    }
}

fn push(out: &mut Vec<Unsupported>, feature: impl Into<String>, reason: impl Into<String>) {
    out.push(Unsupported {
        feature: feature.into(),
        reason: reason.into(),
    });
}

/// Everything in `spec` that cannot be honoured on `env`. Empty means full isolation as
/// asked. Items that make [`crate::Container::run`] fail and items it silently cannot
/// enforce (device rules on v2) are both listed.
pub fn unsupported(spec: &Spec, env: &Environment) -> Vec<Unsupported> {
    let mut out = Vec::new();
    let linux = spec.linux().as_ref();
    for ns in linux
        .and_then(|l| l.namespaces().as_deref())
        .unwrap_or_default()
    {
        if ns.path().is_none() && !env.can_create(ns.typ()) {
            push(
                &mut out,
                format!("{} namespace", ns.typ()),
                "cannot be created here (unshare failed)",
            );
        }
    }
    if !env.root && !crate::container::wants_namespace(spec, LinuxNamespaceType::User) {
        push(
            &mut out,
            "privileged setup",
            "not running as root and the spec has no user namespace",
        );
    }
    if let Some(res) = linux.and_then(|l| l.resources().as_ref()) {
        let mut need = |controller: &str, feature: &str| {
            if !env.controller_writable(controller) {
                push(
                    &mut out,
                    feature,
                    format!("the {controller} cgroup controller is not writable here"),
                );
            }
        };
        if let Some(m) = res.memory()
            && m.limit().is_some()
        {
            need("memory", "memory limit");
        }
        if let Some(c) = res.cpu() {
            if c.quota().is_some() || c.shares().is_some() {
                need("cpu", "CPU quota/shares");
            }
            if c.cpus().is_some() || c.mems().is_some() {
                need("cpuset", "cpuset");
            }
        }
        if res.pids().is_some() {
            need("pids", "pids limit");
        }
        let has_devices = res.devices().as_ref().is_some_and(|d| !d.is_empty());
        if has_devices && env.cgroup_version == CgroupVersion::V1 {
            need("devices", "device cgroup rules");
        }
        if has_devices && env.cgroup_version == CgroupVersion::V2 {
            push(
                &mut out,
                "device cgroup rules",
                "not enforced on cgroup v2 (needs eBPF, not implemented); /dev holds only the default nodes",
            );
        }
        if res
            .memory()
            .as_ref()
            .and_then(|m| m.swap())
            .is_some_and(|s| s >= 0)
            && !env.swap_accounting
        {
            push(
                &mut out,
                "memory+swap limit",
                "swap accounting is not enabled on this host",
            );
        }
        if res
            .hugepage_limits()
            .as_ref()
            .is_some_and(|h| !h.is_empty())
            && !crate::cgroups::hugetlb_available(Path::new(crate::cgroups::DEFAULT_ROOT))
        {
            push(
                &mut out,
                "hugetlb limits",
                "no hugetlb cgroup controller on this host",
            );
        }
    }
    if let Some(p) = spec.process() {
        for l in p.rlimits().as_deref().unwrap_or_default() {
            let Ok((name, res)) = crate::process::rlimit_resource(l) else {
                continue;
            };
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes one struct we own.
            unsafe { libc::getrlimit(res, &mut cur) };
            if l.hard() > cur.rlim_max
                && env
                    .missing_capabilities
                    .iter()
                    .any(|c| c == "CAP_SYS_RESOURCE")
            {
                push(
                    &mut out,
                    format!("{name} hard limit {}", l.hard()),
                    format!(
                        "above the current {} and CAP_SYS_RESOURCE is not in the bounding set",
                        cur.rlim_max
                    ),
                );
            }
        }
        if let Some(caps) = p
            .capabilities()
            .as_ref()
            .and_then(|c| c.bounding().as_ref())
        {
            for c in crate::process::to_caps(caps).unwrap_or_default() {
                if env.missing_capabilities.contains(&c.to_string()) {
                    push(
                        &mut out,
                        c.to_string(),
                        "not in this host's capability bounding set: the container will not have it",
                    );
                }
            }
        }
        if p.apparmor_profile().is_some() {
            push(&mut out, "AppArmor profile", "not implemented; ignored");
        }
        if p.selinux_label().is_some() {
            push(&mut out, "SELinux label", "not implemented; ignored");
        }
    }
    if !env.pivot_root {
        push(
            &mut out,
            "pivot_root",
            "the root is an initramfs: chroot is used instead",
        );
    }
    out
}
