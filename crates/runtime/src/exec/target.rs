//! What an exec joins, found from the host before forking: the container's init (from its
//! state file, checked to be alive and to be the same process), the init's namespaces that
//! differ from ours, and the cgroup of every hierarchy it is in.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;
use serde_json::Value;

use super::ExecError;

/// Namespaces in the order they are joined: the user namespace first, since it decides
/// what the process may do in the others; the cgroup namespace last, after the cgroups.
const JOIN_ORDER: [(&str, LinuxNamespaceType); 7] = [
    ("user", LinuxNamespaceType::User),
    ("mnt", LinuxNamespaceType::Mount),
    ("pid", LinuxNamespaceType::Pid),
    ("ipc", LinuxNamespaceType::Ipc),
    ("uts", LinuxNamespaceType::Uts),
    ("net", LinuxNamespaceType::Network),
    ("cgroup", LinuxNamespaceType::Cgroup),
];

/// Everything the forked side needs to join the container, opened or resolved while our
/// own `/proc` and mounts are still the host's.
#[derive(Debug)]
pub(crate) struct Joined {
    /// The init's pid, as the host sees it.
    pub init: i32,
    /// Namespace files to `setns`, in [`JOIN_ORDER`].
    pub namespaces: Vec<(LinuxNamespaceType, File)>,
    /// `cgroup.procs` of each cgroup the init is in, one per hierarchy.
    pub cgroup_procs: Vec<PathBuf>,
}

/// The running init of container `id` from `<state_dir>/<id>/state.json`.
pub(crate) fn init_of(state_dir: &Path, id: &str) -> Result<i32, ExecError> {
    let not_running = |reason: String| ExecError::NotRunning {
        target: format!("container {id}"),
        reason,
    };
    let path = state_dir.join(id).join("state.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_running(format!(
                "no such container (no {})",
                path.display()
            )));
        }
        Err(source) => return Err(ExecError::State { path, source }),
    };
    let state: Value = serde_json::from_str(&text).map_err(|e| ExecError::BadState {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if let Some(status) = state.get("status").and_then(Value::as_str)
        && matches!(status, "stopped" | "creating")
    {
        return Err(not_running(format!("its status is {status}")));
    }
    let pid = state
        .get("pid")
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| ExecError::BadState {
            path: path.clone(),
            reason: "no \"pid\"".into(),
        })?;
    if pid <= 0 {
        return Err(not_running("it has no init process".into()));
    }
    let (letter, start) = crate::state::proc_stat(pid)
        .ok_or_else(|| not_running(format!("its init (pid {pid}) has exited")))?;
    if matches!(letter, 'Z' | 'X') {
        return Err(not_running(format!("its init (pid {pid}) has exited")));
    }
    // A state left behind by a runner that died may name a pid since reused.
    if let Some(recorded) = state.get("init_start_time").and_then(Value::as_u64)
        && recorded != start
    {
        return Err(not_running(format!(
            "its init (pid {pid}) has exited and the pid now belongs to another process"
        )));
    }
    Ok(pid)
}

/// Checks `pid` runs (and is not a zombie) before anything is opened through it.
pub(crate) fn check_alive(pid: i32) -> Result<(), ExecError> {
    match crate::state::proc_stat(pid) {
        Some((letter, _)) if !matches!(letter, 'Z' | 'X') => Ok(()),
        _ => Err(ExecError::NotRunning {
            target: format!("process {pid}"),
            reason: "it does not exist or has exited".into(),
        }),
    }
}

/// Opens the namespaces of `pid` and finds its cgroups. `in_container` asks that the
/// process be in a mount namespace of its own (a container's init always is; a host
/// process with a recycled pid is not).
pub(crate) fn join_targets(
    proc_root: &Path,
    pid: i32,
    in_container: bool,
) -> Result<Joined, ExecError> {
    let namespaces = namespaces(proc_root, pid)?;
    if in_container
        && !namespaces
            .iter()
            .any(|(t, _)| *t == LinuxNamespaceType::Mount)
    {
        return Err(ExecError::NotRunning {
            target: format!("process {pid}"),
            reason: "it shares this process's mount namespace, so it is no container's init".into(),
        });
    }
    let cgroup_procs = cgroup_procs(proc_root, pid)?;
    Ok(Joined {
        init: pid,
        namespaces,
        cgroup_procs,
    })
}

/// `/proc/<pid>/ns/*` that differ from ours (joining one's own namespace is an error for
/// user namespaces, and pointless for the others).
fn namespaces(proc_root: &Path, pid: i32) -> Result<Vec<(LinuxNamespaceType, File)>, ExecError> {
    let mut found = Vec::new();
    for (name, typ) in JOIN_ORDER {
        let theirs = proc_root.join(pid.to_string()).join("ns").join(name);
        let file = match File::open(&theirs) {
            Ok(f) => f,
            // A kernel without this namespace type.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(ExecError::Namespace {
                    path: theirs,
                    source,
                });
            }
        };
        let ours = proc_root.join("self/ns").join(name);
        let same = match (file.metadata(), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            (Err(source), _) => {
                return Err(ExecError::Namespace {
                    path: theirs,
                    source,
                });
            }
            (_, Err(_)) => false,
        };
        if !same {
            found.push((typ, file));
        }
    }
    Ok(found)
}

/// The `cgroup.procs` files of the cgroups `pid` is in, under the hierarchies mounted in
/// our mount namespace.
fn cgroup_procs(proc_root: &Path, pid: i32) -> Result<Vec<PathBuf>, ExecError> {
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| ExecError::Cgroups { pid, path, source })
    };
    let membership = read(proc_root.join(pid.to_string()).join("cgroup"))?;
    let mounts = read(proc_root.join("self/mountinfo"))?;
    // In rootless mode a container without cgroups of its own is in its user's, which
    // only root may move processes into: as runc does there, those are left alone. The
    // same for an ordinary user running the runtime directly (runc's rootless mode).
    let rootless = crate::cgroups::unprivileged::runtime_is_unprivileged();
    let writable = |procs: &PathBuf| {
        !rootless || nix::unistd::access(procs, nix::unistd::AccessFlags::W_OK).is_ok()
    };
    Ok(cgroup_dirs(&membership, &mounts)
        .into_iter()
        .map(|d| d.join("cgroup.procs"))
        .filter(writable)
        .collect())
}

/// A cgroup filesystem mount: where, which part of the hierarchy it shows, and for v1 its
/// controllers (or `name=...`) as given in its super options.
#[derive(Debug)]
struct CgroupMount {
    point: PathBuf,
    root: String,
    v2: bool,
    options: Vec<String>,
}

/// Joins `/proc/<pid>/cgroup` (`ID:CONTROLLERS:PATH` lines) with `/proc/self/mountinfo`:
/// the directory of each hierarchy's cgroup, as mounted here. Hierarchies not mounted here,
/// or mounted below the process's cgroup, are left out.
fn cgroup_dirs(membership: &str, mountinfo: &str) -> Vec<PathBuf> {
    let mounts = cgroup_mounts(mountinfo);
    let mut dirs = Vec::new();
    for line in membership.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
        let mount = mounts.iter().find(|m| {
            if wanted.is_empty() {
                m.v2
            } else {
                !m.v2 && wanted.iter().all(|c| m.options.iter().any(|o| o == c))
            }
        });
        let Some(mount) = mount else { continue };
        let rel = if mount.root == "/" {
            Some(path)
        } else {
            path.strip_prefix(mount.root.as_str())
                .filter(|r| r.is_empty() || r.starts_with('/'))
        };
        if let Some(rel) = rel {
            dirs.push(mount.point.join(rel.trim_start_matches('/')));
        }
    }
    dirs
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    // A table that does not parse (it always does, from the kernel) joins nothing.
    basic_mountinfo::parse(mountinfo)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            let v2 = match m.fs_type.as_str() {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(CgroupMount {
                root: m.root.to_string_lossy().into_owned(),
                point: m.mount_point,
                v2,
                options: m.super_options,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded on a hybrid host (v1 controllers, cgroup2 holding only hugetlb).
    const HYBRID_MOUNTINFO: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
32 31 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
33 31 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
36 31 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,memory
37 31 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpu,cpuacct
38 31 0:33 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
40 31 0:35 /sub /mnt/odd\\040dir rw,relatime shared:18 - cgroup cgroup rw,freezer
";

    #[test]
    fn every_v1_hierarchy_and_the_unified_one_map_to_their_mounts() {
        let membership = "\
12:pids:/basic-docker/c1
9:freezer:/basic-docker/c1
5:cpu,cpuacct:/basic-docker/c1
4:memory:/basic-docker/c1
1:name=systemd:/user.slice/session-1.scope
0::/user.slice/session-1.scope
";
        let dirs = cgroup_dirs(membership, HYBRID_MOUNTINFO);
        assert_eq!(
            dirs,
            [
                "/sys/fs/cgroup/pids/basic-docker/c1",
                "/sys/fs/cgroup/cpu,cpuacct/basic-docker/c1",
                "/sys/fs/cgroup/memory/basic-docker/c1",
                "/sys/fs/cgroup/systemd/user.slice/session-1.scope",
                "/sys/fs/cgroup/unified/user.slice/session-1.scope",
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn a_mount_of_part_of_a_hierarchy_is_used_below_its_root_only() {
        let inside = cgroup_dirs("9:freezer:/sub/c2\n", HYBRID_MOUNTINFO);
        assert_eq!(inside, [PathBuf::from("/mnt/odd dir/c2")]);
        assert!(cgroup_dirs("9:freezer:/other/c2\n", HYBRID_MOUNTINFO).is_empty());
        assert!(cgroup_dirs("9:freezer:/subway\n", HYBRID_MOUNTINFO).is_empty());
    }

    #[test]
    fn pure_v2_hosts_have_one_directory() {
        let mountinfo = "35 24 0:30 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup_dirs("0::/basic-docker/c3\n", mountinfo),
            [PathBuf::from("/sys/fs/cgroup/basic-docker/c3")]
        );
        // An unmounted controller (net_cls here) is skipped, not an error.
        assert!(cgroup_dirs("7:net_cls:/x\n", mountinfo).is_empty());
    }
}
