//! `system check` on a store with leftovers planted in it: containers whose supervisor and
//! init were killed while their record says running, and what removed containers left (a
//! mounted root, their directory, runtime state, cgroups). Each is reported, `--repair`
//! removes them, and a second check is clean.

mod common;

use common::{basic_docker, ok};

use std::path::{Path, PathBuf};
use std::time::Duration;

use basic_test_support::bounded::until;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const LIMIT: Duration = Duration::from_secs(60);

const CGROUP_HIERARCHIES: [&str; 2] = ["pids", "memory"];

fn inspect(root: &Path, name: &str) -> Option<serde_json::Value> {
    let out = basic_docker(root, &["inspect", name]);
    out.status.success().then(|| {
        let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        all[0].clone()
    })
}

fn parent_of(pid: i64) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Starts a detached container, then kills its supervisor and its init: its record still
/// says running. Returns its id.
fn lose(root: &Path, flags: &[&str], image: &str) -> String {
    let mut args = vec!["run", "-d"];
    args.extend_from_slice(flags);
    args.extend([image, "sleep", "1000"]);
    let id = ok(basic_docker(root, &args));
    let pid = inspect(root, &id).unwrap()["State"]["Pid"]
        .as_i64()
        .unwrap();
    let supervisor = parent_of(pid);
    kill(Pid::from_raw(supervisor), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    until(LIMIT, "the init gone", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    id
}

fn cgroups(id: &str) -> Vec<PathBuf> {
    CGROUP_HIERARCHIES
        .iter()
        .map(|h| {
            Path::new("/sys/fs/cgroup")
                .join(h)
                .join("basic-docker")
                .join(id)
        })
        .collect()
}

fn state_dir(id: &str) -> PathBuf {
    Path::new("/run/basic-docker").join(id)
}

fn is_mounted(path: &Path) -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&format!(" {} ", path.display()))
}

/// Leftovers this test planted, removed however it ends (only these).
struct Planted {
    mounts: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Drop for Planted {
    fn drop(&mut self) {
        for mount in &self.mounts {
            let _ = nix::mount::umount2(mount, nix::mount::MntFlags::MNT_DETACH);
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir(dir).or_else(|_| std::fs::remove_dir_all(dir));
        }
    }
}

/// What a removed container left: its root still mounted (a tmpfs stands in), its
/// directory, an empty runtime state directory, its cgroups.
fn plant_removed(root: &Path, id: &str, planted: &mut Planted) {
    let rootfs = root.join("containers").join(id).join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &rootfs,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    planted.mounts.push(rootfs);
    planted.dirs.push(root.join("containers").join(id));
    std::fs::create_dir_all(state_dir(id)).unwrap();
    planted.dirs.push(state_dir(id));
    plant_cgroups(id, planted);
}

fn plant_cgroups(id: &str, planted: &mut Planted) {
    for cgroup in cgroups(id) {
        std::fs::create_dir_all(&cgroup).unwrap();
        planted.dirs.push(cgroup);
    }
}

/// A runtime state whose root is in this store, of a container the store never recorded.
fn plant_state(root: &Path, id: &str, planted: &mut Planted) {
    let rootfs = root
        .canonicalize()
        .unwrap()
        .join("containers")
        .join(id)
        .join("rootfs");
    let state = serde_json::json!({
        "ociVersion": "1.0.2",
        "id": id,
        "pid": 0,
        "status": "stopped",
        "bundle": "",
        "rootfs": rootfs,
        "created": "2026-01-01T00:00:00Z",
        "owner": "",
        "init_start_time": 0,
        "cgroup_path": format!("basic-docker/{id}"),
        "cgroup_root": "/sys/fs/cgroup",
    });
    std::fs::create_dir_all(state_dir(id)).unwrap();
    planted.dirs.push(state_dir(id));
    std::fs::write(
        state_dir(id).join("state.json"),
        serde_json::to_vec(&state).unwrap(),
    )
    .unwrap();
    plant_cgroups(id, planted);
}

fn short(id: &str) -> &str {
    &id[..12]
}

#[test]
fn leftovers_are_reported_repaired_and_gone() {
    let Some(h) = basic_test_support::harness() else {
        return;
    };
    if !basic_test_support::require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let image = h.reference("busybox_latest");
    ok(basic_docker(root, &["pull", "-q", &image]));
    let tag = std::process::id();
    let lost_name = format!("lost-{tag}");
    let _cleanup = common::Cleanup::new(root, &[&lost_name]);
    let mut planted = Planted {
        mounts: Vec::new(),
        dirs: Vec::new(),
    };

    let lost = lose(root, &["--name", &lost_name], &image);
    let lost_rm = lose(root, &["--rm", "--network", "none"], &image);
    let gone = ok(basic_docker(
        root,
        &["run", "-d", "--network", "none", &image, "true"],
    ));
    ok(basic_docker(root, &["wait", &gone]));
    ok(basic_docker(root, &["rm", &gone]));
    plant_removed(root, &gone, &mut planted);
    let stranger = format!("{:064x}", u128::from(tag) << 64 | 0xc0ffee);
    plant_state(root, &stranger, &mut planted);
    let lost_paths = [state_dir(&lost)]
        .into_iter()
        .chain(cgroups(&lost))
        .chain([Path::new("/run/basic-docker/netns").join(&lost)])
        .collect::<Vec<_>>();
    for path in &lost_paths {
        assert!(
            path.exists(),
            "the control: {} left by the killed supervisor",
            path.display()
        );
    }

    let out = basic_docker(root, &["system", "check"]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{report}");
    let line = |id: &str| {
        report
            .lines()
            .find(|l| l.contains(short(id)))
            .unwrap_or_else(|| panic!("{id} not reported: {report}"))
            .to_string()
    };
    let lost_line = line(&lost);
    for what in [
        "its record says running",
        "root filesystem still mounted",
        "runtime state left",
        "cgroup basic-docker/",
        "network attachment left",
    ] {
        assert!(lost_line.contains(what), "{what}: {lost_line}");
    }
    assert!(
        line(&lost_rm).contains("its record says running"),
        "{report}"
    );
    let gone_line = line(&gone);
    for what in [
        "removed container",
        "root filesystem still mounted",
        "directory",
        "runtime state left",
        "cgroup",
    ] {
        assert!(gone_line.contains(what), "{what}: {gone_line}");
    }
    let stranger_line = line(&stranger);
    assert!(
        stranger_line.contains("runtime state left") && stranger_line.contains("cgroup"),
        "{stranger_line}"
    );

    let repaired = ok(basic_docker(root, &["system", "check", "--repair"]));
    for id in [&lost, &lost_rm, &gone, &stranger] {
        assert!(
            repaired.contains(&format!("Cleaned up: {}", short(id))),
            "{id}: {repaired}"
        );
    }
    assert_eq!(
        ok(basic_docker(root, &["system", "check"])),
        "No problems found"
    );

    let state = &inspect(root, &lost).unwrap()["State"];
    assert_eq!(state["Status"], "exited", "{state}");
    assert_eq!(state["ExitCode"], 255, "docker's code for a lost container");
    assert!(inspect(root, &lost_rm).is_none(), "--rm honoured");
    for path in lost_paths
        .iter()
        .chain(cgroups(&gone).iter())
        .chain(cgroups(&stranger).iter())
    {
        assert!(!path.exists(), "{} left", path.display());
    }
    for id in [&gone, &stranger] {
        assert!(!state_dir(id).exists(), "{id}");
    }
    assert!(!root.join("containers").join(&gone).exists());
    assert!(!is_mounted(
        &root.join("containers").join(&lost).join("rootfs")
    ));
    assert!(!is_mounted(
        &root.join("containers").join(&gone).join("rootfs")
    ));
}
