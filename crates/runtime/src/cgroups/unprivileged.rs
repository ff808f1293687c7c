//! Cgroups for a runtime that is not the host's root (rootless: an ordinary user, or root in
//! a user namespace of its own): the host's hierarchies belong to the host's root, so a
//! container gets a cgroup of its own only where one was delegated (cgroup v2, a subtree
//! the user owns). As with runc: without one, a spec without limits runs in the caller's
//! cgroup, and a spec with limits is refused, since nothing would enforce them.

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::CgroupVersion;

/// Whether this process cannot count on the host's cgroup hierarchies being its own: it is
/// not root, or it is root only inside a user namespace other than the host's.
pub fn runtime_is_unprivileged() -> bool {
    !nix::unistd::geteuid().is_root() || crate::rootless::active()
}

/// Whether this process may create the cgroup `rel` under `root` (in every v1 hierarchy it
/// would use, or in the unified one): the deepest existing directory on the way is writable
/// to it. A delegated v2 subtree is; the host's v1 hierarchies are not, to a user or to
/// root in a user namespace (they belong to the host's root, who is nobody there).
pub fn writable(root: &Path, rel: &Path) -> bool {
    let rel = rel.strip_prefix("/").unwrap_or(rel);
    let bases: Vec<PathBuf> = match super::detect_version(root) {
        CgroupVersion::V2 => vec![root.to_path_buf()],
        CgroupVersion::V1 => super::v1::CONTROLLERS
            .iter()
            .map(|c| root.join(c))
            .filter(|d| d.is_dir())
            .collect(),
    };
    !bases.is_empty()
        && bases.iter().all(|base| {
            let mut dir = base.join(rel);
            // The directory itself when it exists (another container's, or a delegated one
            // named in the spec), else its deepest existing ancestor, where mkdir happens.
            loop {
                if dir.is_dir() {
                    break;
                }
                if !dir.pop() {
                    return false;
                }
            }
            nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_ok()
        })
}

/// The kinds of limit `resources` sets, by their spec names (`memory`, `pids`, ...).
/// Device rules are left out: without a device cgroup the user namespace is what keeps
/// devices out of reach (no `mknod` there; nodes are bind mounts of the host's), and every
/// engine sends device rules.
pub fn limits_in(resources: &LinuxResources) -> Vec<String> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(resources) else {
        return Vec::new();
    };
    fields
        .into_iter()
        .filter(|(name, value)| name != "devices" && sets_something(value))
        .map(|(name, _)| name)
        .collect()
}

/// Whether a serialised spec value holds anything but nulls and empty containers.
fn sets_something(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Array(a) => a.iter().any(sets_something),
        serde_json::Value::Object(o) => o.values().any(sets_something),
        _ => true,
    }
}

/// The error text for limits this runtime cannot enforce without a cgroup.
pub(crate) fn no_cgroup_for_limits(limits: &[String], version: CgroupVersion) -> String {
    let host = match version {
        CgroupVersion::V1 => "this host has cgroup v1, which cannot be delegated to a user",
        CgroupVersion::V2 => {
            "this user cannot write the cgroup v2 hierarchy there (no delegated subtree)"
        }
    };
    format!(
        "resource limits ({}) cannot be enforced: rootless containers need cgroup v2 with \
         a subtree delegated to the user for limits, and {host}; run without limits, or \
         delegate a cgroup v2 subtree to this user (systemd: Delegate=yes)",
        limits.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn device_rules_and_empty_sections_are_no_limits() {
        let r = resources(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {},
            "hugepageLimits": []
        }));
        assert!(limits_in(&r).is_empty(), "{:?}", limits_in(&r));
    }

    #[test]
    fn memory_and_pids_are_named() {
        let r = resources(serde_json::json!({
            "memory": {"limit": 1048576},
            "pids": {"limit": 10},
            "devices": [{"allow": false, "access": "rwm"}]
        }));
        let mut got = limits_in(&r);
        got.sort();
        assert_eq!(got, ["memory", "pids"]);
    }

    #[test]
    fn a_directory_of_our_own_is_writable_and_a_read_only_one_is_not() {
        let root = tempfile::tempdir().unwrap();
        // A tempdir is no cgroup2 mount: the v1 layout, with one hierarchy.
        std::fs::create_dir(root.path().join("memory")).unwrap();
        assert!(writable(root.path(), Path::new("/a/b")));
        assert!(!writable(&root.path().join("missing"), Path::new("a")));
    }
}
