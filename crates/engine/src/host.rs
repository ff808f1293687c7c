//! Facts about the host that every `run` needs but that cost milliseconds to find out
//! (forks, probe mounts, probe cgroups): found once and kept.
//!
//! - The snapshotter is chosen once per store and recorded in `<root>/snapshotter`, as
//!   docker keeps its storage driver: the store's layout depends on it. In rootless mode
//!   that is overlay where the kernel mounts it in a user namespace (5.11+), else
//!   fuse-overlayfs where it is installed and works, else copy, as podman chooses.
//! - The runtime's [`Environment`] is kept in `<state>/environment.json` for the rest of
//!   the boot (the state directory is a tmpfs); [`environment`] with `refresh` probes
//!   afresh and records that.

use std::path::Path;

use basic_rootfs::snapshot::{Snapshotter, SnapshotterKind};
use basic_runtime::{Environment, detect};

use crate::paths::EnginePaths;
use crate::privacy;

/// The variable that overrides the snapshotter (`overlay`, `fuse-overlayfs` or `copy`).
pub const SNAPSHOTTER_VARIABLE: &str = "BASIC_DOCKER_SNAPSHOTTER";

/// The snapshotter for the store: [`SNAPSHOTTER_VARIABLE`] when set, else the one recorded
/// for this store, else detected now and recorded.
pub fn snapshotter(paths: &EnginePaths) -> Box<dyn Snapshotter> {
    snapshotter_kind(paths).create(&paths.root)
}

/// The snapshotter [`SNAPSHOTTER_VARIABLE`] names, if it names one.
pub fn forced_snapshotter() -> Option<SnapshotterKind> {
    std::env::var(SNAPSHOTTER_VARIABLE)
        .ok()
        .and_then(|s| s.parse().ok())
}

/// The kind [`snapshotter`] uses.
pub fn snapshotter_kind(paths: &EnginePaths) -> SnapshotterKind {
    if let Some(kind) = forced_snapshotter() {
        return kind;
    }
    let record = paths.snapshotter_record();
    if let Some(kind) = std::fs::read_to_string(&record)
        .ok()
        .and_then(|s| s.trim().parse().ok())
    {
        return kind;
    }
    let kind = basic_rootfs::snapshot::detect(&paths.root);
    if paths.root.is_dir() {
        write_atomically(&record, kind.to_string().as_bytes());
    }
    kind
}

/// The host's isolation features, from this boot's record or probed now.
pub fn environment(paths: &EnginePaths, refresh: bool) -> Environment {
    let record = paths.environment_record();
    if !refresh {
        let cached = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(env) = cached {
            return env;
        }
    }
    let env = detect();
    if privacy::private_dir(&paths.state, privacy::STATE_DIR_MODE).is_ok()
        && let Ok(bytes) = serde_json::to_vec(&env)
    {
        write_atomically(&record, &bytes);
    }
    env
}

/// In rootless mode, a limit whose cgroup controller this user cannot write is refused
/// (running without it would be a silent lie): on cgroup v1, or v2 without a delegated
/// subtree, ordinary users get no cgroups of their own. Names the first such flag.
pub fn refuse_unreachable_limits(
    config: &crate::ContainerConfig,
    env: &Environment,
) -> crate::Result<()> {
    let Some(host) = config.host_config.as_ref() else {
        return Ok(());
    };
    let set = |v: Option<i64>| v.is_some_and(|v| v != 0);
    let wanted = [
        (
            set(host.memory) || set(host.memory_swap) || set(host.memory_reservation),
            "memory",
            "--memory",
        ),
        (set(host.nano_cpus) || set(host.cpu_quota), "cpu", "--cpus"),
        (set(host.cpu_shares), "cpu", "--cpu-shares"),
        (
            host.cpuset_cpus.as_deref().is_some_and(|c| !c.is_empty()),
            "cpuset",
            "--cpuset-cpus",
        ),
        (set(host.pids_limit), "pids", "--pids-limit"),
        (
            host.blkio_weight.is_some_and(|w| w != 0),
            "blkio",
            "--blkio-weight",
        ),
    ];
    for (asked, controller, flag) in wanted {
        if asked && !env.controller_writable(controller) {
            let host = match env.cgroup_version {
                basic_runtime::CgroupVersion::V1 => {
                    "this host has cgroup v1, which gives ordinary users no cgroups"
                }
                basic_runtime::CgroupVersion::V2 => {
                    "no cgroup v2 subtree with that controller is delegated to this user"
                }
            };
            return Err(crate::EngineError::InvalidArgument(format!(
                "{flag} cannot be honoured in rootless mode: {host} (limits need cgroup v2 with a delegated subtree, as systemd's user@.service gives)"
            )));
        }
    }
    Ok(())
}

/// How containers on the default network reach the world: a bridge with veths (root) or
/// pasta's user-mode stack (rootless mode).
pub fn network_stack() -> &'static str {
    match basic_runtime::rootless::active() {
        true => "pasta (user-mode networking)",
        false => "bridge (CNI: bridge, host-local, portmap)",
    }
}

/// Fits a container's spec to rootless mode: without a writable devices controller the
/// device cgroup rules go (the container cannot make device nodes in a user namespace
/// anyway; only the host's harmless nodes are bound into its `/dev`), so that no warning
/// of missing isolation is given for them.
pub fn fit_spec_to_rootless(paths: &EnginePaths, spec: &mut basic_runtime::Spec) {
    if !basic_runtime::rootless::active()
        || environment(paths, false).controller_writable("devices")
    {
        return;
    }
    if let Some(resources) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.resources_mut().as_mut())
    {
        resources.set_devices(None);
    }
}

/// A failure only means probing again next time, so it is logged, not reported.
fn write_atomically(path: &Path, bytes: &[u8]) {
    if let Err(e) = privacy::write_private(path, bytes) {
        tracing::debug!(path = %path.display(), error = %e, "not recording host facts");
    }
}
