//! A container's configuration, in docker's own types.
//!
//! [`ContainerConfig`] is docker's container-create body (`Config` with `HostConfig` and
//! `NetworkingConfig`), taken from `bollard-stubs`, the generated models of the Docker
//! Engine API that the bollard client uses: a command line, the Docker-compatible API
//! and a library user all describe a container the same way, and the API can accept and
//! return docker's JSON without a translation layer. The engine reads the fields it
//! implements and refuses, by name, the ones it would otherwise silently ignore.
//!
//! What the engine keeps for a container is a [`StoredConfig`]: the config as created,
//! plus what was taken from the image at create (the command that runs, the stop signal,
//! the exposed ports, the volumes mounted), so that later verbs do not depend on the image
//! still being there.

use std::collections::HashMap;

use basic_network::{HostPort, PortSpec};
use basic_runtime::supervisor::RestartPolicy as SupervisorRestart;
use serde::{Deserialize, Serialize};

pub use bollard_stubs::models::{
    ContainerCreateBody as ContainerConfig, DeviceMapping, HostConfig, HostConfigLogConfig,
    PortBinding, RestartPolicy, RestartPolicyNameEnum,
};

use crate::error::{EngineError, Result};

/// The docker log driver the engine implements.
pub const JSON_FILE: &str = "json-file";

/// The engine's record of a container's configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredConfig {
    /// The configuration as created (docker's create body).
    pub config: ContainerConfig,
    /// The process's arguments: docker's `Path` and `Args` (entrypoint and command,
    /// after the image's defaults were applied).
    pub command: Vec<String>,
    /// The signal `stop` sends: the config's, else the image's, else `SIGTERM`.
    pub stop_signal: String,
    /// The ports the image and the config expose (`80/tcp`), for `-P`.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// Its volumes and binds, resolved at create (see [`crate::mounts`]).
    #[serde(default)]
    pub mounts: Vec<crate::mounts::ContainerMount>,
}

impl StoredConfig {
    /// The host part, or docker's defaults when there is none.
    pub fn host(&self) -> HostConfig {
        self.config.host_config.clone().unwrap_or_default()
    }

    /// `--rm`.
    pub fn auto_remove(&self) -> bool {
        self.host().auto_remove.unwrap_or(false)
    }

    /// `--init`.
    pub fn init(&self) -> bool {
        self.host().init.unwrap_or(false)
    }

    /// `-t`.
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }

    /// `-i`: the container reads what its attached client sends.
    pub fn interactive(&self) -> bool {
        self.config.open_stdin.unwrap_or(false)
    }

    /// docker's `StdinOnce` (`run -i` without `-d`): the container's stdin closes when
    /// the first attached client's input ends.
    pub fn stdin_once(&self) -> bool {
        self.config.stdin_once.unwrap_or(false)
    }

    /// `--network`, as docker writes it (`bridge` when none was given).
    pub fn network_mode(&self) -> String {
        match self.host().network_mode.as_deref() {
            None | Some("") | Some("default") => "bridge".to_string(),
            Some(mode) => mode.to_string(),
        }
    }

    /// `--dns`.
    pub fn dns(&self) -> Vec<String> {
        self.host().dns.unwrap_or_default()
    }

    /// The restart policy, for the supervisor.
    pub fn restart_policy(&self) -> SupervisorRestart {
        restart_policy(self.host().restart_policy.as_ref()).unwrap_or_default()
    }

    /// The published ports, as the network crate takes them: `-p` and, with `-P`, every
    /// exposed port on a free host port.
    pub fn published_ports(&self) -> Result<Vec<PortSpec>> {
        let host = self.host();
        let mut specs = port_specs(host.port_bindings.as_ref())?;
        if host.publish_all_ports.unwrap_or(false) {
            for exposed in &self.exposed_ports {
                specs.push(PortSpec::exposed(exposed).map_err(invalid)?);
            }
        }
        Ok(specs)
    }

    /// The json-file log's rotation: docker's `max-size` and `max-file` options, else
    /// 20 MB × 5 files.
    pub fn log_rotation(&self) -> Result<basic_runtime::logfile::Rotation> {
        let default = basic_runtime::logfile::Rotation::default();
        let options = self
            .host()
            .log_config
            .and_then(|c| c.config)
            .unwrap_or_default();
        let max_size = match options.get("max-size") {
            Some(v) => u64::try_from(parse_size(v)?).map_err(|_| {
                EngineError::InvalidArgument(format!(
                    "invalid max-size {v:?}: must not be negative"
                ))
            })?,
            None => default.max_size,
        };
        let max_files = match options.get("max-file") {
            Some(v) => v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                EngineError::InvalidArgument(format!(
                    "invalid max-file {v:?}: a number of files, at least 1"
                ))
            })?,
            None => default.max_files,
        };
        Ok(basic_runtime::logfile::Rotation {
            max_size,
            max_files,
        })
    }
}

/// docker's restart policy as the supervisor's; `None` when it names none.
pub fn restart_policy(policy: Option<&RestartPolicy>) -> Option<SupervisorRestart> {
    let policy = policy?;
    Some(match policy.name? {
        RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO => SupervisorRestart::No,
        RestartPolicyNameEnum::ALWAYS => SupervisorRestart::Always,
        RestartPolicyNameEnum::UNLESS_STOPPED => SupervisorRestart::UnlessStopped,
        RestartPolicyNameEnum::ON_FAILURE => SupervisorRestart::OnFailure {
            max_retries: policy
                .maximum_retry_count
                .filter(|n| *n > 0)
                .and_then(|n| u32::try_from(n).ok()),
        },
    })
}

/// `--restart` as docker writes it (`no`, `always`, `unless-stopped`, `on-failure[:N]`).
pub fn parse_restart(text: &str) -> Result<RestartPolicy> {
    let policy: SupervisorRestart = text.parse().map_err(invalid)?;
    let (name, count) = match policy {
        SupervisorRestart::No => (RestartPolicyNameEnum::NO, None),
        SupervisorRestart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        SupervisorRestart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        SupervisorRestart::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            max_retries.map(i64::from),
        ),
    };
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    })
}

/// `-p` values as docker's `PortBindings` (and the ports they expose), as the docker
/// command line sends them: `80/tcp` → `[{HostIp, HostPort}]`.
pub fn port_bindings(publish: &[String]) -> Result<HashMap<String, Option<Vec<PortBinding>>>> {
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for raw in publish {
        for spec in PortSpec::parse(raw).map_err(invalid)? {
            let host_port = match spec.host_port {
                HostPort::Fixed(p) => p.to_string(),
                HostPort::Range(a, b) => format!("{a}-{b}"),
                HostPort::Any => String::new(),
            };
            bindings
                .entry(format!("{}/{}", spec.container_port, spec.protocol))
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: spec.host_ip.map(|ip| ip.to_string()),
                    host_port: Some(host_port),
                });
        }
    }
    Ok(bindings)
}

/// docker's `PortBindings` as the network crate's specs.
pub fn port_specs(
    bindings: Option<&HashMap<String, Option<Vec<PortBinding>>>>,
) -> Result<Vec<PortSpec>> {
    let mut specs = Vec::new();
    let mut keys: Vec<_> = bindings.into_iter().flatten().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (port, list) in keys {
        let list = list.clone().unwrap_or_default();
        let list = if list.is_empty() {
            vec![PortBinding::default()]
        } else {
            list
        };
        for binding in list {
            let ip = binding.host_ip.unwrap_or_default();
            let host = binding.host_port.unwrap_or_default();
            let raw = match ip.as_str() {
                "" => format!("{host}:{port}"),
                ip if ip.contains(':') => format!("[{ip}]:{host}:{port}"),
                ip => format!("{ip}:{host}:{port}"),
            };
            specs.extend(PortSpec::parse(&raw).map_err(invalid)?);
        }
    }
    Ok(specs)
}

/// docker's sizes: `512`, `100k`, `20m`, `1.5g` (binary units, optional `b`).
pub fn parse_size(text: &str) -> Result<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (number, unit) = match lower.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => lower.split_at(i),
        None => (lower, ""),
    };
    let bad = |why: &str| EngineError::InvalidArgument(format!("invalid size {text:?}: {why}"));
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(bad("use a number with an optional unit b, k, m, g or t")),
    };
    let value: f64 = number.parse().map_err(|_| bad("not a number"))?;
    if value.is_nan() || value < 0.0 {
        return Err(bad("must not be negative"));
    }
    Ok((value * (1u64 << shift) as f64) as i64)
}

fn invalid(e: impl std::fmt::Display) -> EngineError {
    EngineError::InvalidArgument(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_reads_them() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("20m").unwrap(), 20 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("64kb").unwrap(), 64 << 10);
        assert!(parse_size("ten").is_err());
        assert!(parse_size("5x").is_err());
        assert!(parse_size("-1").is_err());
    }

    #[test]
    fn restart_policies_round_trip_through_dockers_shape() {
        for text in [
            "no",
            "always",
            "unless-stopped",
            "on-failure",
            "on-failure:3",
        ] {
            let docker = parse_restart(text).unwrap();
            let back = restart_policy(Some(&docker)).unwrap();
            assert_eq!(back.to_string(), text);
        }
        assert!(parse_restart("sometimes").is_err());
        assert_eq!(restart_policy(None), None);
    }

    #[test]
    fn published_ports_go_through_dockers_port_bindings_and_back() {
        let bindings = port_bindings(&[
            "8080:80".to_string(),
            "127.0.0.1:5353:53/udp".to_string(),
            "9000".to_string(),
        ])
        .unwrap();
        let json = serde_json::to_value(&bindings).unwrap();
        assert_eq!(json["80/tcp"][0]["HostPort"], "8080");
        assert_eq!(json["53/udp"][0]["HostIp"], "127.0.0.1");
        assert_eq!(json["9000/tcp"][0]["HostPort"], "");
        let specs = port_specs(Some(&bindings)).unwrap();
        let shown: Vec<String> = specs
            .iter()
            .map(|s| {
                format!(
                    "{:?}:{:?}->{}/{}",
                    s.host_ip, s.host_port, s.container_port, s.protocol
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                "Some(127.0.0.1):Fixed(5353)->53/udp",
                "None:Fixed(8080)->80/tcp",
                "None:Any->9000/tcp",
            ]
        );
    }

    #[test]
    fn log_options_are_dockers_json_file_options() {
        let mut stored = StoredConfig::default();
        stored.config.host_config = Some(HostConfig {
            log_config: Some(HostConfigLogConfig {
                typ: Some(JSON_FILE.into()),
                config: Some(HashMap::from([
                    ("max-size".to_string(), "10m".to_string()),
                    ("max-file".to_string(), "3".to_string()),
                ])),
            }),
            ..Default::default()
        });
        let r = stored.log_rotation().unwrap();
        assert_eq!((r.max_size, r.max_files), (10 << 20, 3));
        assert_eq!(StoredConfig::default().network_mode(), "bridge");
    }
}
