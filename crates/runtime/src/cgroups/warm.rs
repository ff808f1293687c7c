//! Paying the kernel's wait for a cgroup migration ahead of time.
//!
//! Moving a process into a cgroup takes the kernel's global cgroup threadgroup lock for
//! writing, and the first writer after a quiet spell waits for a full RCU grace period
//! before it gets it: 10–15 ms on an idle host with the default `rcu_expedited=0`, the
//! largest single cost of starting a container there (hosts that mount cgroup2 with
//! `favordynmods` do not pay it). Any writer within about one grace period after the last
//! one skips that wait, whichever cgroup it moves to.
//!
//! So the engine, which knows a container is about to start well before the supervisor
//! moves its init into the container's cgroups, starts that wait early by moving a
//! short-lived thread of its own into the cgroup it is already in: nothing changes, the
//! grace period runs while the supervisor starts and sets up, and the init's real migration
//! then finds the lock ready.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread::JoinHandle;

use super::{CgroupVersion, DEFAULT_ROOT};

/// Starts the kernel's cgroup-migration grace period now, on a detached thread that moves
/// itself into the cgroup it is in (a no-op move) and exits.
///
/// Best effort: where the cgroup files cannot be written (no cgroups, no permission) it
/// does nothing, and the migration that follows simply pays the wait itself. The thread
/// lives until the grace period ends; a fork under [`crate::fork_rule`] in this process
/// waits for it first, and a call while one is still waiting starts no other.
pub fn warm_up_migration() {
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    if pending.as_ref().is_some_and(|t| !t.is_finished()) {
        return;
    }
    if let Some(done) = pending.take() {
        let _ = done.join();
    }
    let Some(file) = own_thread_file(Path::new(DEFAULT_ROOT)) else {
        return;
    };
    *pending = std::thread::Builder::new()
        .name("cgroup-warm-up".into())
        .spawn(move || {
            let _ = move_into(&file);
        })
        .ok();
}

/// The warm-up thread, joined before this process forks container processes.
static PENDING: Mutex<Option<JoinHandle<()>>> = Mutex::new(None);

/// Waits for a warm-up thread of this process to end, so that the process is
/// single-threaded again as far as warm-ups go.
pub(crate) fn finish() {
    let thread = PENDING.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(thread) = thread {
        let _ = thread.join();
    }
}

/// Moves the calling thread into the cgroup whose thread file is `file`.
fn move_into(file: &Path) -> std::io::Result<()> {
    std::fs::write(file, nix::unistd::gettid().to_string())
}

/// The file through which a thread moves itself into its own cgroup: `tasks` of the first
/// v1 controller hierarchy it is in, or `cgroup.threads` of its cgroup2 cgroup.
fn own_thread_file(root: &Path) -> Option<PathBuf> {
    let membership = std::fs::read_to_string("/proc/thread-self/cgroup").ok()?;
    let version = super::detect_version(root);
    thread_file(root, version, &membership)
}

fn thread_file(root: &Path, version: CgroupVersion, membership: &str) -> Option<PathBuf> {
    let entries = membership.lines().filter_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        Some((controllers, path.strip_prefix('/').unwrap_or(path)))
    });
    match version {
        CgroupVersion::V1 => entries
            .filter(|(controllers, _)| !controllers.is_empty() && !controllers.starts_with("name="))
            .find_map(|(controllers, path)| {
                let controller = controllers.split(',').next()?;
                let file = root.join(controller).join(path).join("tasks");
                file.exists().then_some(file)
            }),
        CgroupVersion::V2 => entries
            .filter(|(controllers, _)| controllers.is_empty())
            .map(|(_, path)| root.join(path).join("cgroup.threads"))
            .find(|file| file.exists()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_uses_the_first_controller_hierarchy_and_skips_named_ones() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("pids/user.slice")).unwrap();
        std::fs::write(root.path().join("pids/user.slice/tasks"), "").unwrap();
        let membership = "13:name=systemd:/init.scope\n12:pids:/user.slice\n0::/\n";
        assert_eq!(
            thread_file(root.path(), CgroupVersion::V1, membership),
            Some(root.path().join("pids/user.slice/tasks"))
        );
    }

    #[test]
    fn v2_uses_the_unified_line() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("system.slice/x.service")).unwrap();
        std::fs::write(
            root.path().join("system.slice/x.service/cgroup.threads"),
            "",
        )
        .unwrap();
        assert_eq!(
            thread_file(
                root.path(),
                CgroupVersion::V2,
                "0::/system.slice/x.service\n"
            ),
            Some(root.path().join("system.slice/x.service/cgroup.threads"))
        );
    }

    /// The move is real (the kernel accepts it) and changes nothing: the thread stays in the
    /// cgroups it was in.
    #[test]
    fn the_move_leaves_the_thread_where_it_was() {
        if !basic_test_support::require_root() {
            return;
        }
        std::thread::spawn(|| {
            let before = std::fs::read_to_string("/proc/thread-self/cgroup").unwrap();
            let file = own_thread_file(Path::new(DEFAULT_ROOT)).expect("a cgroup thread file");
            move_into(&file).unwrap_or_else(|e| panic!("writing {}: {e}", file.display()));
            let after = std::fs::read_to_string("/proc/thread-self/cgroup").unwrap();
            assert_eq!(before, after);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn nothing_when_the_hierarchy_is_not_there() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            thread_file(root.path(), CgroupVersion::V1, "12:pids:/user.slice\n"),
            None
        );
    }
}
