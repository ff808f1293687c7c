//! Stop, kill, restart, pause, unpause, remove, wait, prune and rename, on containers
//! named by id, id prefix or name.

use std::time::Duration;

use basic_image_store::short_id;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::paths::ContainerPaths;
use crate::status::{self, Status};
use crate::{names, privacy};

/// How long a removal and a kill wait for a killed container's supervisor to finish.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// How [`Engine::remove_with`] removes a container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveOptions {
    /// Kill it first when it runs (`rm -f`).
    pub force: bool,
    /// Remove its anonymous volumes too, unless another container uses them (`rm -v`);
    /// named volumes always stay.
    pub volumes: bool,
}

/// What [`Engine::prune`] removed.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// The ids of the removed containers.
    pub deleted: Vec<String>,
    /// Bytes their writable layers held.
    pub reclaimed: u64,
}

impl Engine {
    /// Stops a container: its stop signal, then SIGKILL after `grace`. No restart follows.
    pub fn stop(&self, query: &str, grace: Duration) -> Result<()> {
        let c = self.container(query)?;
        self.stop_container(&c, grace)
    }

    fn stop_container(&self, c: &Container, grace: Duration) -> Result<()> {
        request_stop(&self.paths.state, &c.paths)?;
        let Some(pid) = status::live_init(&self.paths, c.id()) else {
            // Not running; a supervisor waiting to restart sees the marker.
            self.wait_supervisor_gone(&c.paths);
            return Ok(());
        };
        let signal = parse_signal(&c.config.stop_signal).unwrap_or(Signal::SIGTERM);
        self.thaw(c.id());
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
        if !status::wait_for(grace, || status::live_init(&self.paths, c.id()).is_none()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        status::wait_for(KILL_WAIT, || {
            status::live_init(&self.paths, c.id()).is_none()
        });
        self.wait_supervisor_gone(&c.paths);
        self.event(c, "stop", &[]);
        Ok(())
    }

    fn wait_supervisor_gone(&self, paths: &ContainerPaths) {
        status::wait_for(KILL_WAIT, || !status::supervisor_alive(paths));
    }

    /// Stops a container when it runs, then starts it.
    pub fn restart(&self, query: &str, grace: Duration) -> Result<()> {
        let c = self.container(query)?;
        self.stop_container(&c, grace)?;
        self.start(c.id())?;
        self.event(&c, "restart", &[]);
        Ok(())
    }

    /// Sends `signal` (a name such as `SIGHUP`, `HUP`, `hup`, or a number) to the
    /// container's init. As in docker, a killed container is not restarted by its policy.
    pub fn kill(&self, query: &str, signal: &str) -> Result<()> {
        let signal = parse_signal(signal)?;
        let c = self.container(query)?;
        let Some(pid) = status::live_init(&self.paths, c.id()) else {
            return Err(EngineError::Conflict(format!(
                "cannot kill container: {}: container is not running",
                short_id(c.id())
            )));
        };
        request_stop(&self.paths.state, &c.paths)?;
        nix::sys::signal::kill(Pid::from_raw(pid), signal).map_err(EngineError::sys(format!(
            "sending {signal} to container {}",
            short_id(c.id())
        )))?;
        self.event(&c, "kill", &[("signal", (signal as i32).to_string())]);
        Ok(())
    }

    /// Freezes every process of the container. A container without a cgroup of its own
    /// (rootless mode where the user may create none) has no freezer: refused, as docker
    /// and podman refuse it, rather than freezing its user's cgroup.
    pub fn pause(&self, query: &str) -> Result<()> {
        let c = self.container(query)?;
        match self.status(&c) {
            Status::Running(pid) if !crate::stats::has_own_cgroup(c.id(), pid) => {
                Err(EngineError::Conflict(self.no_freezer(c.id())))
            }
            Status::Running(_) => {
                status::runtime(&self.paths).pause(c.id())?;
                self.event(&c, "pause", &[]);
                Ok(())
            }
            Status::Paused(_) => Err(EngineError::Conflict(format!(
                "container {} is already paused",
                short_id(c.id())
            ))),
            _ => Err(EngineError::Conflict(format!(
                "container {} is not running",
                short_id(c.id())
            ))),
        }
    }

    /// Thaws a paused container.
    pub fn unpause(&self, query: &str) -> Result<()> {
        let c = self.container(query)?;
        match self.status(&c) {
            Status::Paused(_) => {
                status::runtime(&self.paths).resume(c.id())?;
                self.event(&c, "unpause", &[]);
                Ok(())
            }
            _ => Err(EngineError::Conflict(format!(
                "container {} is not paused",
                short_id(c.id())
            ))),
        }
    }

    /// Why container `id`, which has no cgroup of its own, cannot be paused.
    fn no_freezer(&self, id: &str) -> String {
        let id = short_id(id);
        if !basic_runtime::rootless::active() {
            return format!(
                "cannot pause container {id}: it has no cgroup of its own, so no freezer"
            );
        }
        let why = match crate::host::environment(&self.paths, false).cgroup_version {
            basic_runtime::CgroupVersion::V1 => {
                "pause is not supported in rootless mode on cgroup v1"
            }
            basic_runtime::CgroupVersion::V2 => {
                "pause is not supported in rootless mode without a delegated cgroup v2 subtree"
            }
        };
        format!(
            "cannot pause container {id}: {why} (the container runs in its user's cgroup, \
             with no freezer of its own to stop its processes with)"
        )
    }

    fn thaw(&self, id: &str) {
        let _ = status::runtime(&self.paths).resume(id);
    }

    /// Removes a container that is not running; with `force`, kills a running one first.
    /// Its volumes stay (see [`Engine::remove_with`]).
    pub fn remove(&self, query: &str, force: bool) -> Result<()> {
        self.remove_with(
            query,
            &RemoveOptions {
                force,
                volumes: false,
            },
        )
    }

    /// Removes a container as `options` say (`docker rm [-f] [-v]`, `DELETE
    /// /containers/{id}?force=&v=`).
    pub fn remove_with(&self, query: &str, options: &RemoveOptions) -> Result<()> {
        self.on_storage(self.remove_container(query, options))
    }

    fn remove_container(&self, query: &str, options: &RemoveOptions) -> Result<()> {
        let c = self.container(query)?;
        self.store.writable("remove container")?;
        let now = self.status(&c);
        if now.is_up() {
            if !options.force {
                return Err(EngineError::Conflict(format!(
                    "You cannot remove a {} container {}. Stop the container before attempting removal or force remove",
                    now.word(),
                    c.id()
                )));
            }
            self.force_stop(&c)?;
        }
        self.remove_stopped(&c, options.volumes)
    }

    /// Kills the container and waits for its supervisor to finish with it.
    fn force_stop(&self, c: &Container) -> Result<()> {
        request_stop(&self.paths.state, &c.paths)?;
        self.thaw(c.id());
        if let Some(pid) = status::live_init(&self.paths, c.id()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let gone = status::wait_for(KILL_WAIT, || {
            status::live_init(&self.paths, c.id()).is_none() && !status::supervisor_alive(&c.paths)
        });
        if !gone {
            return Err(EngineError::Conflict(format!(
                "container {} did not stop after SIGKILL",
                short_id(c.id())
            )));
        }
        Ok(())
    }

    /// Blocks until the container is not running, then returns its exit code.
    pub fn wait(&self, query: &str) -> Result<i32> {
        self.wait_until(query, WaitCondition::NotRunning)
    }

    /// Blocks until `condition` holds for container `query`, then returns its last exit
    /// code (docker's `wait?condition=`).
    pub fn wait_until(&self, query: &str, condition: WaitCondition) -> Result<i32> {
        self.wait_while_wanted(query, condition, &|| true)
    }

    /// [`Engine::wait_until`] for a caller that may stop waiting: `wanted` is asked between
    /// looks at the container, and once it says no the wait ends with
    /// [`EngineError::Stopped`](crate::EngineError::Stopped) (an API client that hung up).
    pub fn wait_while_wanted(
        &self,
        query: &str,
        condition: WaitCondition,
        wanted: &dyn Fn() -> bool,
    ) -> Result<i32> {
        let c = self.container(query)?;
        let waited = std::time::Instant::now();
        let first_exit = c.record.exit.map(|e| e.finished);
        let mut last_code = c.record.exit.map_or(0, |e| e.code);
        loop {
            let record = match self.stored(c.id()) {
                Ok(record) => record,
                // Gone (removed, by `rm` or by AutoRemove): every condition has held. An
                // AutoRemove container may have exited and gone between two looks: its
                // exit code is in the journal's `die` event.
                Err(EngineError::Store(basic_image_store::StoreError::NoSuchContainer(_))) => {
                    return Ok(self
                        .exit_from_journal(c.id(), c.record.created)
                        .unwrap_or(last_code));
                }
                Err(e) => return Err(e),
            };
            if let Some(exit) = record.exit {
                last_code = exit.code;
            }
            let now = status::status(&self.paths, &record);
            let settled =
                !(now.is_up() || now == Status::Created && status::supervisor_alive(&c.paths));
            let exited_since = record.exit.map(|e| e.finished) != first_exit;
            let done = match condition {
                WaitCondition::NotRunning => settled,
                WaitCondition::NextExit => exited_since && settled,
                WaitCondition::Removed => false,
            };
            if done {
                return Ok(match now {
                    Status::Exited(code) => code,
                    _ => last_code,
                });
            }
            if !wanted() {
                return Err(crate::EngineError::Stopped);
            }
            // Short commands end within moments of the wait (`run --rm` waits before it
            // starts): look often at first, then less often.
            std::thread::sleep(status::poll_pause(waited.elapsed()));
        }
    }

    /// The exit code of container `id`'s last `die` event since `since` (nanoseconds).
    fn exit_from_journal(&self, id: &str, since: i64) -> Option<i32> {
        let options = crate::EventOptions {
            since: Some(since),
            until: Some(crate::status::now_nanos() + 1),
            filters: std::collections::HashMap::from([
                ("container".to_string(), vec![id.to_string()]),
                ("event".to_string(), vec!["die".to_string()]),
            ]),
            follow: false,
        };
        let event = self.last_event(&options).ok()??;
        let attributes = event.actor.as_ref()?.attributes.as_ref()?;
        attributes.get("exitCode")?.parse().ok()
    }

    /// Removes every container that is not running.
    pub fn prune(&self) -> Result<PruneReport> {
        self.on_storage(self.prune_containers())
    }

    fn prune_containers(&self) -> Result<PruneReport> {
        self.store.writable("prune containers")?;
        let mut report = PruneReport::default();
        for c in self.containers()? {
            if self.status(&c).is_up() || status::supervisor_alive(&c.paths) {
                continue;
            }
            let size = self.writable_size(&c);
            self.remove_stopped(&c, false)?;
            report.reclaimed += size;
            report.deleted.push(c.record.id);
        }
        Ok(report)
    }

    /// Gives the container a new unique name; the spec's name annotation follows, so
    /// tools that read the spec show it too.
    pub fn rename(&self, query: &str, new_name: &str) -> Result<()> {
        self.on_storage(self.rename_container(query, new_name))
    }

    fn rename_container(&self, query: &str, new_name: &str) -> Result<()> {
        let new_name = names::normalize_name(new_name);
        names::check_name(new_name)?;
        let c = self.container(query)?;
        self.store.rename_container(c.id(), new_name)?;
        let mut renamed = c.clone();
        renamed.record.name = new_name.to_string();
        self.event(&renamed, "rename", &[("oldName", format!("/{}", c.name()))]);
        if let Ok(mut spec) = basic_runtime::Spec::load(c.paths.spec()) {
            let mut annotations = spec.annotations().clone().unwrap_or_default();
            annotations.insert(
                crate::spec::NAME_ANNOTATION.to_string(),
                new_name.to_string(),
            );
            spec.set_annotations(Some(annotations));
            let bytes = serde_json::to_vec(&spec).map_err(|e| EngineError::Corrupt {
                what: "the runtime spec".into(),
                message: e.to_string(),
            })?;
            privacy::write_private(&c.paths.spec(), &bytes)?;
        }
        Ok(())
    }
}

/// What [`Engine::wait_until`] waits for (docker's `condition` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitCondition {
    /// The container is not running (now, or once it stops): `not-running`.
    #[default]
    NotRunning,
    /// The container exits after this call, also when it is not running yet (a client
    /// that waits, then starts): `next-exit`.
    NextExit,
    /// The container is removed: `removed`.
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = EngineError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(EngineError::InvalidArgument(format!(
                "invalid condition: {other:?}: expected not-running, next-exit or removed"
            ))),
        }
    }
}

/// Tells the supervisor not to restart the container after this exit.
fn request_stop(state: &std::path::Path, paths: &ContainerPaths) -> Result<()> {
    privacy::private_dir(state, privacy::STATE_DIR_MODE)?;
    privacy::write_private(&paths.stop_marker(), b"")
}

/// A signal by name (`SIGHUP`, `HUP`, `hup`) or number.
pub fn parse_signal(text: &str) -> Result<Signal> {
    basic_runtime::signals::parse_signal(text)
        .map_err(|_| EngineError::InvalidArgument(format!("invalid signal: {text}")))
}
