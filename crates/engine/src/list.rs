//! Listing containers with docker's filters.

use std::collections::BTreeMap;

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::network;
use crate::status::Status;

/// The filter keys this engine knows.
pub const FILTER_KEYS: &[&str] = &["status", "name", "id", "ancestor", "exited"];

/// docker's `--filter` conditions: a container shows when, for every key given, one of
/// that key's values matches.
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
                "invalid filter '{key}': use status, name, id, ancestor or exited"
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
            values.iter().any(|v| match key.as_str() {
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
                _ => false,
            })
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
}

impl Engine {
    /// The running containers (all with `all`, or when the filters name a state) that
    /// match `filters`, newest first.
    pub fn list(&self, all: bool, filters: &Filters) -> Result<Vec<Listed>> {
        let all = all || filters.has_status();
        // Opened only when a container runs: the PORTS column is all it gives, and a
        // store that cannot be written (read-only, and never given networks/) still lists.
        let mut networks = None;
        let mut listed: Vec<Listed> = self
            .containers()?
            .into_iter()
            .filter_map(|container| {
                let status = self.status(&container);
                if !(all || status.is_up()) || !filters.matches(&container, status) {
                    return None;
                }
                let ports = match status.is_up() {
                    true => self.ports_column(&mut networks, container.id()),
                    false => String::new(),
                };
                Some(Listed {
                    container,
                    status,
                    ports,
                })
            })
            .collect();
        listed.sort_by_key(|l| std::cmp::Reverse(l.container.record.created));
        Ok(listed)
    }

    /// docker's PORTS column for running container `id`, opening the networks once.
    fn ports_column(
        &self,
        networks: &mut Option<Option<basic_network::Networks>>,
        id: &str,
    ) -> String {
        let opened = networks.get_or_insert_with(|| match network::networks(&self.paths) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!("listing published ports: {e}");
                None
            }
        });
        match opened.as_ref().map(|n| n.attachment(id)) {
            Some(Ok(Some(attachment))) => attachment.ports_display(),
            _ => String::new(),
        }
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
