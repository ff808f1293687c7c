//! What `system check` finds of containers: ones whose record says running while their
//! supervisor and init are gone (nothing recorded their end, nothing will honour `--rm`),
//! and what containers left on the machine that nothing will take away — a mounted root,
//! the runtime's state, a cgroup, a network attachment, and for removed containers also
//! their directory and snapshot. With `repair`, each container's leftovers are removed
//! under its supervisor's lock, so a supervisor starting at the same moment is left alone.
//!
//! The state directory and the cgroup hierarchies are shared with other stores on the
//! machine: only what can be told to be this store's is looked at — its containers' ids,
//! the ids its events journal, container directories, snapshots and network records name,
//! and runtime states whose root filesystem lies in this store.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use basic_image_store::{ContainerExit, short_id};

use crate::engine::{Container, Engine};
use crate::error::Result;
use crate::events::EventOptions;
use crate::paths::ContainerPaths;
use crate::remove::{cgroup, cgroup_exists, cgroup_path, remove_runtime_state};
use crate::status::{self, LOST_EXIT_CODE, now_nanos};
use crate::{network, rootfs};

/// Something a container left that nothing else will clean up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Leftover {
    /// The record says running, but neither the supervisor nor the init lives.
    Lost,
    /// The root filesystem is still mounted here.
    Mount(PathBuf),
    /// The runtime's state directory.
    RuntimeState(PathBuf),
    /// The cgroup, by its path below each hierarchy's root.
    Cgroup(PathBuf),
    /// The network attachment (its record, namespace and interfaces).
    Network,
    /// The directory of a removed container.
    Directory(PathBuf),
    /// The snapshot of a removed container.
    Snapshot,
}

/// A container and what it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerProblem {
    /// The container's id.
    pub id: String,
    /// Its name; `None` when it was removed (only traces of it are left).
    pub name: Option<String>,
    /// What is left.
    pub leftovers: Vec<Leftover>,
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leftover::Lost => f.write_str(
                "its record says running, but its supervisor and init are gone (its exit was never recorded)",
            ),
            Leftover::Mount(path) => write!(f, "root filesystem still mounted at {}", path.display()),
            Leftover::RuntimeState(path) => write!(f, "runtime state left in {}", path.display()),
            Leftover::Cgroup(path) => write!(f, "cgroup {} left", path.display()),
            Leftover::Network => f.write_str("network attachment left"),
            Leftover::Directory(path) => write!(f, "directory {} left", path.display()),
            Leftover::Snapshot => f.write_str("snapshot left"),
        }
    }
}

impl fmt::Display for ContainerProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text: Vec<String> = self.leftovers.iter().map(ToString::to_string).collect();
        match &self.name {
            Some(name) => write!(f, "container {} ({name}): ", short_id(&self.id))?,
            None => write!(f, "removed container {}: ", short_id(&self.id))?,
        }
        f.write_str(&text.join("; "))
    }
}

/// What [`Engine::check_containers`] found and, with `repair`, did.
#[derive(Debug, Default)]
pub struct ContainerCheck {
    /// Every container with leftovers.
    pub problems: Vec<ContainerProblem>,
    /// The ids of those cleaned up.
    pub repaired: Vec<String>,
    /// Those that could not be (a supervisor took them meanwhile, or a step failed), and
    /// why.
    pub failed: Vec<(String, String)>,
}

impl Engine {
    /// Finds containers whose end nobody recorded and what containers left behind; with
    /// `repair`, records their end (exit code 255, as docker reports a container it lost),
    /// removes the leftovers, and removes a lost `AutoRemove` container altogether.
    pub fn check_containers(&self, repair: bool) -> Result<ContainerCheck> {
        let records = self.containers()?;
        let known: BTreeSet<String> = records.iter().map(|c| c.id().to_string()).collect();
        let survey = self.survey()?;
        let mut check = ContainerCheck::default();
        for c in &records {
            if let Some(problem) = self.container_leftovers(c, &survey) {
                check.problems.push(problem);
            }
        }
        for id in survey.traced.difference(&known) {
            if let Some(problem) = self.removed_leftovers(id, &survey) {
                check.problems.push(problem);
            }
        }
        if repair {
            for problem in &check.problems {
                match self.repair(problem) {
                    Ok(()) => check.repaired.push(problem.id.clone()),
                    Err(why) => check.failed.push((problem.id.clone(), why)),
                }
            }
        }
        Ok(check)
    }

    /// A recorded container's leftovers; none while a supervisor or its init lives (they
    /// are its own to manage).
    fn container_leftovers(&self, c: &Container, survey: &Survey) -> Option<ContainerProblem> {
        if status::supervisor_alive(&c.paths) || status::live_init(&self.paths, c.id()).is_some() {
            return None;
        }
        let started = c.record.started.is_some();
        let mut leftovers = Vec::new();
        if started && c.record.exit.is_none() {
            leftovers.push(Leftover::Lost);
        }
        // A created container's root stays mounted from create to its first start.
        if started && survey.is_mounted(&c.paths) {
            leftovers.push(Leftover::Mount(c.paths.rootfs.clone()));
        }
        leftovers.extend(self.run_time_leftovers(&c.paths, survey));
        (!leftovers.is_empty()).then(|| ContainerProblem {
            id: c.id().to_string(),
            name: Some(c.name().to_string()),
            leftovers,
        })
    }

    /// What a removed container `id` left, if anything.
    fn removed_leftovers(&self, id: &str, survey: &Survey) -> Option<ContainerProblem> {
        let paths = self.paths.container(id);
        let mut leftovers = Vec::new();
        if paths.dir.exists() {
            // A create in progress holds this lock until its record exists.
            if status::supervisor_alive(&paths) {
                return None;
            }
            if survey.is_mounted(&paths) {
                leftovers.push(Leftover::Mount(paths.rootfs.clone()));
            }
            leftovers.push(Leftover::Directory(paths.dir.clone()));
        }
        if survey.snapshots.contains(id) {
            leftovers.push(Leftover::Snapshot);
        }
        // Lasts as long as the container: left only by one removed without it.
        if paths.attach_dir().exists() {
            leftovers.push(Leftover::RuntimeState(paths.attach_dir()));
        }
        leftovers.extend(self.run_time_leftovers(&paths, survey));
        (!leftovers.is_empty()).then(|| ContainerProblem {
            id: id.to_string(),
            name: None,
            leftovers,
        })
    }

    /// Run-time state, cgroup and network attachment, which a container that is not
    /// running has none of.
    fn run_time_leftovers(&self, paths: &ContainerPaths, survey: &Survey) -> Vec<Leftover> {
        let id = paths.id();
        let mut leftovers = Vec::new();
        if paths.state.exists() {
            leftovers.push(Leftover::RuntimeState(paths.state.clone()));
        }
        if cgroup_exists(cgroup(&id).as_ref()) {
            leftovers.push(Leftover::Cgroup(cgroup_path(&id)));
        }
        let netns = network::config(&self.paths).netns_dir.join(&id);
        // A teardown in flight (a `--rm` container's, after its exit) is not a leftover.
        if (survey.attached.contains(&id) || netns.exists())
            && !network::teardown_in_flight(&self.paths, &id)
        {
            leftovers.push(Leftover::Network);
        }
        leftovers
    }

    /// What is looked up once: the ids this store has traces of (its events journal, its
    /// container directories, its snapshots, its network records, and runtime states
    /// whose root lies in this store), its snapshots and network records.
    fn survey(&self) -> Result<Survey> {
        let snapshotter = self.snapshotter();
        let snapshots: BTreeSet<String> = snapshotter
            .snapshots()
            .map(|all| all.into_iter().map(|s| s.key).collect())
            .unwrap_or_default();
        let attached: BTreeSet<String> = network::attached_ids(&self.paths).into_iter().collect();
        let mut traced = BTreeSet::new();
        self.events(&EventOptions::default(), |e| {
            traced.extend(e.actor.as_ref().and_then(|a| a.id.clone()));
            Ok(())
        })?;
        traced.extend(dir_names(&self.paths.root.join("containers")));
        traced.extend(snapshots.iter().cloned());
        traced.extend(attached.iter().cloned());
        traced.extend(self.states_in_this_store());
        traced.retain(|id| is_container_id(id));
        Ok(Survey {
            snapshotter,
            snapshots,
            attached,
            traced,
        })
    }

    /// The runtime states (in the state directory, which other stores may share) whose
    /// root filesystem is a container root of this store.
    fn states_in_this_store(&self) -> Vec<String> {
        let Ok(root) = self.paths.root.canonicalize() else {
            return Vec::new();
        };
        let containers = root.join("containers");
        status::runtime(&self.paths)
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.rootfs.starts_with(&containers))
            .map(|s| s.id)
            .collect()
    }

    /// Removes what `problem` lists, under the container's supervisor lock.
    fn repair(&self, problem: &ContainerProblem) -> std::result::Result<(), String> {
        let paths = self.paths.container(&problem.id);
        let _lock = match paths.dir.exists() {
            true => match status::lock_supervisor(&paths) {
                Ok(Some(lock)) => Some(lock),
                Ok(None) => return Err("a supervisor or a create has it now".into()),
                Err(e) => return Err(e.to_string()),
            },
            false => None,
        };
        let repaired = match &problem.name {
            Some(_) => self.repair_recorded(problem, &paths),
            None => self.repair_removed(&problem.id, &paths),
        };
        repaired.map_err(|e| crate::supervise::chain(&e))
    }

    fn repair_recorded(&self, problem: &ContainerProblem, paths: &ContainerPaths) -> Result<()> {
        let c = self.container(&problem.id)?;
        if status::live_init(&self.paths, c.id()).is_some() {
            return Ok(());
        }
        if problem.leftovers.contains(&Leftover::Lost) {
            self.record_lost(&c)?;
            if c.config.auto_remove() {
                // As docker's `--rm`: the anonymous volumes go too.
                return self.remove_stopped(&c, true);
            }
        }
        remove_runtime_state(paths);
        network::detach_any(&self.paths, c.id());
        if c.record.started.is_some() {
            rootfs::unmount(self.snapshotter().as_ref(), paths);
        }
        Ok(())
    }

    /// Records the end nobody saw: docker's 255 for a container it lost.
    fn record_lost(&self, c: &Container) -> Result<()> {
        let exit = ContainerExit {
            code: LOST_EXIT_CODE,
            finished: now_nanos(),
            oom_killed: false,
        };
        self.store.container_exited(c.id(), exit, false)?;
        self.event(c, "die", &[("exitCode", LOST_EXIT_CODE.to_string())]);
        Ok(())
    }

    fn repair_removed(&self, id: &str, paths: &ContainerPaths) -> Result<()> {
        remove_runtime_state(paths);
        let _ = std::fs::remove_dir_all(paths.attach_dir());
        network::detach_any(&self.paths, id);
        let snapshotter = self.snapshotter();
        rootfs::unmount(snapshotter.as_ref(), paths);
        if snapshotter.stat(id).is_ok() {
            snapshotter.remove(id)?;
        }
        match std::fs::remove_dir_all(&paths.dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(crate::error::EngineError::io("removing", &paths.dir)(e))
            }
            _ => Ok(()),
        }
    }
}

/// What [`Engine::check_containers`] looks up once for every container.
struct Survey {
    snapshotter: Box<dyn basic_rootfs::snapshot::Snapshotter>,
    /// The snapshotter's keys.
    snapshots: BTreeSet<String>,
    /// The containers the networks have records of.
    attached: BTreeSet<String>,
    /// Every container id this store has traces of.
    traced: BTreeSet<String>,
}

impl Survey {
    fn is_mounted(&self, paths: &ContainerPaths) -> bool {
        self.snapshotter.is_mounted(&paths.rootfs).unwrap_or(false)
    }
}

/// Whether `name` is a full container id (64 lowercase hex digits).
fn is_container_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The names of the entries of `dir` (none when it cannot be read).
fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_full_ids_are_taken_for_containers() {
        assert!(is_container_id(&"ab".repeat(32)));
        assert!(!is_container_id("ab12"));
        assert!(!is_container_id(&"AB".repeat(32)));
        assert!(!is_container_id(&format!("image-{}", "a".repeat(58))));
    }

    #[test]
    fn problems_read_as_one_line_per_container() {
        let id = "c0ffee".repeat(10) + "c0ff";
        let lost = ContainerProblem {
            id: id.clone(),
            name: Some("web".into()),
            leftovers: vec![Leftover::Lost, Leftover::Network],
        };
        assert_eq!(
            lost.to_string(),
            "container c0ffeec0ffee (web): its record says running, but its supervisor and \
             init are gone (its exit was never recorded); network attachment left"
        );
        let removed = ContainerProblem {
            id,
            name: None,
            leftovers: vec![Leftover::Cgroup("basic-docker/x".into())],
        };
        assert_eq!(
            removed.to_string(),
            "removed container c0ffeec0ffee: cgroup basic-docker/x left"
        );
    }
}
