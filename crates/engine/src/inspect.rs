//! `inspect`: docker's container document, for the fields this engine has.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerConfig as InspectConfig, ContainerInspectResponse, ContainerState,
    ContainerStateStatusEnum, DriverData, RestartPolicy,
};

use crate::config::RestartPolicyNameEnum;
use crate::engine::{Container, Engine};
use crate::error::Result;
use crate::host;
use crate::status::{Status, rfc3339};

impl Engine {
    /// docker's document for container `query` (`docker inspect`, `GET /containers/{id}/json`).
    pub fn inspect(&self, query: &str) -> Result<ContainerInspectResponse> {
        let c = self.container(query)?;
        Ok(self.describe(&c))
    }

    fn describe(&self, c: &Container) -> ContainerInspectResponse {
        let status = self.status(c);
        let record = &c.record;
        let spec: Option<basic_runtime::Spec> = basic_runtime::Spec::load(c.paths.spec()).ok();
        let process = spec.as_ref().and_then(|s| s.process().clone());
        let (path, args) = c
            .config
            .command
            .split_first()
            .map(|(p, a)| (p.clone(), a.to_vec()))
            .unwrap_or_default();
        let mut host = c.config.host();
        host.network_mode = Some(c.config.network_mode());
        host.restart_policy = Some(restart_policy(&c.config));
        let config = &c.config.config;
        ContainerInspectResponse {
            id: Some(record.id.clone()),
            created: Some(rfc3339(Some(record.created))),
            path: Some(path),
            args: Some(args),
            state: Some(state(c, status)),
            image: Some(record.image_id.clone()),
            log_path: Some(c.paths.log().display().to_string()),
            name: Some(format!("/{}", record.name)),
            restart_count: Some(i64::from(record.restart_count)),
            driver: Some(host::snapshotter_kind(&self.paths).to_string()),
            platform: Some("linux".into()),
            host_config: Some(host),
            mounts: Some(mounts(c)),
            graph_driver: Some(DriverData {
                name: host::snapshotter_kind(&self.paths).to_string(),
                data: HashMap::from([(
                    "MergedDir".to_string(),
                    c.paths.rootfs.display().to_string(),
                )]),
            }),
            config: Some(InspectConfig {
                hostname: spec.as_ref().and_then(|s| s.hostname().clone()),
                user: config.user.clone(),
                env: process.as_ref().and_then(|p| p.env().clone()),
                cmd: config.cmd.clone(),
                entrypoint: config.entrypoint.clone(),
                image: Some(record.image.clone()),
                working_dir: process.as_ref().map(|p| p.cwd().display().to_string()),
                tty: Some(c.config.tty()),
                open_stdin: Some(c.config.interactive()),
                stdin_once: Some(c.config.stdin_once()),
                labels: config.labels.clone(),
                stop_signal: Some(c.config.stop_signal.clone()),
                exposed_ports: Some(c.config.exposed_ports.clone()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

fn state(c: &Container, status: Status) -> ContainerState {
    let record = &c.record;
    ContainerState {
        status: Some(match status {
            Status::Created => ContainerStateStatusEnum::CREATED,
            Status::Running(_) => ContainerStateStatusEnum::RUNNING,
            Status::Paused(_) => ContainerStateStatusEnum::PAUSED,
            Status::Restarting => ContainerStateStatusEnum::RESTARTING,
            Status::Exited(_) => ContainerStateStatusEnum::EXITED,
        }),
        running: Some(matches!(status, Status::Running(_) | Status::Paused(_))),
        paused: Some(matches!(status, Status::Paused(_))),
        restarting: Some(status == Status::Restarting),
        oom_killed: Some(record.exit.is_some_and(|e| e.oom_killed)),
        dead: Some(false),
        pid: Some(i64::from(status.pid().unwrap_or(0))),
        exit_code: Some(i64::from(match status {
            Status::Exited(code) => code,
            _ => 0,
        })),
        error: Some(std::fs::read_to_string(c.paths.start_error()).unwrap_or_default()),
        started_at: Some(rfc3339(record.started)),
        finished_at: Some(rfc3339(record.exit.map(|e| e.finished))),
        health: None,
    }
}

/// docker's policy as inspect shows it: a name always (`no` when none was given).
fn restart_policy(stored: &crate::config::StoredConfig) -> RestartPolicy {
    let given = stored.host().restart_policy.unwrap_or_default();
    RestartPolicy {
        name: Some(match given.name {
            None | Some(RestartPolicyNameEnum::EMPTY) => RestartPolicyNameEnum::NO,
            Some(name) => name,
        }),
        maximum_retry_count: Some(given.maximum_retry_count.unwrap_or(0)),
    }
}

/// docker's `Mounts`: the container's volumes and binds, by destination.
fn mounts(c: &Container) -> Vec<bollard_stubs::models::MountPoint> {
    c.config
        .mounts
        .iter()
        .map(crate::mounts::ContainerMount::mount_point)
        .collect()
}
