//! Listing containers with docker's filters.

use std::collections::BTreeMap;

use basic_network::{Attachment, NetworkAttachment, PortMapping, Protocol};
use bollard_stubs::models::{
    ContainerSummary, ContainerSummaryHostConfig, ContainerSummaryNetworkSettings,
    ContainerSummaryStateEnum, EndpointSettings, PortSummary, PortSummaryTypeEnum,
};

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::network;
use crate::status::{self, Status};

/// The filter keys this engine knows.
pub const FILTER_KEYS: &[&str] = &[
    "status", "name", "id", "ancestor", "exited", "label", "network",
];

/// docker's `--filter` conditions: a container shows when, for every key given, one of
/// that key's values matches (for `label`, all of them).
#[derive(Debug, Clone, Default)]
pub struct Filters {
    by_key: BTreeMap<String, Vec<String>>,
}

impl Filters {
    /// From `key=value` strings, as the command line takes them.
    pub fn parse(filters: &[String]) -> Result<Self> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in filters {
            let Some((key, value)) = f.split_once('=') else {
                return Err(EngineError::InvalidArgument(format!(
                    "bad format of filter (expected name=value): {f}"
                )));
            };
            by_key
                .entry(key.to_string())
                .or_default()
                .push(value.to_string());
        }
        Self::from_map(by_key)
    }

    /// From docker's API shape: `{"status": ["running"], ...}`.
    pub fn from_map(by_key: BTreeMap<String, Vec<String>>) -> Result<Self> {
        if let Some(key) = by_key.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
            return Err(EngineError::InvalidArgument(format!(
                "invalid filter '{key}': use status, name, id, ancestor, exited, label or network"
            )));
        }
        Ok(Filters { by_key })
    }

    /// Whether the filters name a state (docker then shows stopped containers too).
    pub fn has_status(&self) -> bool {
        self.by_key.contains_key("status") || self.by_key.contains_key("exited")
    }

    /// Whether `c`, doing `status`, shows.
    pub fn matches(&self, c: &Container, status: Status) -> bool {
        let record = &c.record;
        self.by_key.iter().all(|(key, values)| {
            // Labels must all hold (docker's rule: `label=a -f label=b` is both); every
            // other key shows what matches one of its values.
            let mut values = values.iter();
            let mut test = |v: &String| match key.as_str() {
                "status" => status.word() == v,
                // docker matches names as a substring (a regular expression, really).
                "name" => record.name.contains(v.as_str()),
                "id" => record.id.starts_with(v.as_str()),
                "ancestor" => {
                    record.image == *v
                        || record
                            .image_id
                            .trim_start_matches("sha256:")
                            .starts_with(v.trim_start_matches("sha256:"))
                }
                "exited" => matches!(status, Status::Exited(code) if code.to_string() == *v),
                // `key` (any value) or `key=value`, as docker's label filter.
                "label" => {
                    let labels = c.config.config.labels.as_ref();
                    match v.split_once('=') {
                        Some((k, want)) => labels.and_then(|l| l.get(k)).is_some_and(|x| x == want),
                        None => labels.is_some_and(|l| l.contains_key(v.as_str())),
                    }
                }
                "network" => {
                    let mode = c.config.network_mode();
                    mode == *v || (v == "bridge" && matches!(mode.as_str(), "" | "default"))
                }
                _ => false,
            };
            match key.as_str() {
                "label" => values.all(&mut test),
                _ => values.any(&mut test),
            }
        })
    }
}

/// A container in a listing.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The container.
    pub container: Container,
    /// What it is doing now.
    pub status: Status,
    /// docker's PORTS column (`0.0.0.0:8080->80/tcp`), empty when none or not running.
    pub ports: String,
    /// Its network attachment while it runs on a bridge network.
    pub attachment: Option<Attachment>,
}

impl Listed {
    /// docker's listing entry (`GET /containers/json`).
    pub fn summary(&self) -> ContainerSummary {
        let c = &self.container;
        let record = &c.record;
        let config = &c.config.config;
        let attachment = self.attachment.as_ref();
        let ports = attachment
            .map(|a| a.ports.iter().map(port_summary).collect())
            .unwrap_or_default();
        let networks = attachment
            .map(|a| {
                a.networks
                    .iter()
                    .map(|n| (n.network.clone(), endpoint(n)))
                    .collect()
            })
            .unwrap_or_default();
        ContainerSummary {
            id: Some(record.id.clone()),
            names: Some(vec![format!("/{}", record.name)]),
            image: Some(record.image.clone()),
            image_id: Some(record.image_id.clone()),
            command: Some(c.config.command.join(" ")),
            created: Some(record.created / 1_000_000_000),
            ports: Some(ports),
            labels: Some(config.labels.clone().unwrap_or_default()),
            state: summary_state(self.status),
            status: Some(status::status_text(record, self.status)),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: Some(c.config.network_mode()),
                ..Default::default()
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(networks),
            }),
            mounts: Some(Vec::new()),
            ..Default::default()
        }
    }
}

fn summary_state(status: Status) -> Option<ContainerSummaryStateEnum> {
    Some(match status {
        Status::Created => ContainerSummaryStateEnum::CREATED,
        Status::Running(_) => ContainerSummaryStateEnum::RUNNING,
        Status::Paused(_) => ContainerSummaryStateEnum::PAUSED,
        Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
        Status::Exited(_) => ContainerSummaryStateEnum::EXITED,
    })
}

fn port_summary(p: &PortMapping) -> PortSummary {
    PortSummary {
        ip: Some(p.host_ip.map_or("0.0.0.0".to_string(), |ip| ip.to_string())),
        private_port: p.container_port,
        public_port: Some(p.host_port),
        typ: Some(match p.protocol {
            Protocol::Tcp => PortSummaryTypeEnum::TCP,
            Protocol::Udp => PortSummaryTypeEnum::UDP,
            Protocol::Sctp => PortSummaryTypeEnum::SCTP,
        }),
    }
}

fn endpoint(n: &NetworkAttachment) -> EndpointSettings {
    EndpointSettings {
        network_id: Some(n.network_id.clone()),
        gateway: n.gateway.map(|g| g.to_string()),
        ip_address: n.address.map(|a| a.addr().to_string()),
        ip_prefix_len: n.address.map(|a| i64::from(a.prefix_len())),
        mac_address: n.mac.clone(),
        ..Default::default()
    }
}

impl Engine {
    /// The running containers (all with `all`, or when the filters name a state) that
    /// match `filters`, newest first.
    pub fn list(&self, all: bool, filters: &Filters) -> Result<Vec<Listed>> {
        let all = all || filters.has_status();
        // Opened only when a container runs: only running containers have attachments,
        // and a store that cannot be written (read-only, never given networks/) still lists.
        let mut networks = None;
        let mut listed: Vec<Listed> = self
            .containers()?
            .into_iter()
            .filter_map(|container| {
                let status = self.status(&container);
                if !(all || status.is_up()) || !filters.matches(&container, status) {
                    return None;
                }
                let attachment = match status.is_up() {
                    true => self.attachment_of(&mut networks, container.id()),
                    false => None,
                };
                let ports = attachment
                    .as_ref()
                    .map(Attachment::ports_display)
                    .unwrap_or_default();
                Some(Listed {
                    container,
                    status,
                    ports,
                    attachment,
                })
            })
            .collect();
        listed.sort_by_key(|l| std::cmp::Reverse(l.container.record.created));
        Ok(listed)
    }

    /// The network attachment of running container `id`, opening the networks once.
    fn attachment_of(
        &self,
        networks: &mut Option<Option<basic_network::Networks>>,
        id: &str,
    ) -> Option<Attachment> {
        let opened = networks.get_or_insert_with(|| match network::networks(&self.paths) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("listing published ports: {e}");
                None
            }
        });
        opened.as_ref()?.attachment(id).ok().flatten()
    }

    /// The ports container `query` publishes now.
    pub fn ports(&self, query: &str) -> Result<Vec<basic_network::PortMapping>> {
        let c = self.container(query)?;
        Ok(network::networks(&self.paths)?
            .attachment(c.id())?
            .map(|a| a.ports)
            .unwrap_or_default())
    }
}
