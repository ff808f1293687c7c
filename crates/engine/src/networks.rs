//! Networks as docker's API shows them: create, inspect, list with filters, remove and
//! prune, over basic-network's bridge networks (plus docker's built-in `host` and `none`).

use std::collections::{BTreeMap, HashMap};

use basic_network::{NetworkInfo, store};
use bollard_stubs::models::{
    EndpointResource, EndpointSettings, Ipam, IpamConfig, NetworkCreateRequest,
    NetworkCreateResponse, NetworkInspect,
};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::network;

/// docker's built-in networks that are not bridges: `(name, driver)`.
const BUILT_IN: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

impl Engine {
    /// Creates a bridge network (docker's `POST /networks/create`). Only the `bridge`
    /// driver, one IPv4 subnet, and no `Internal` or IPv6 networks: anything else is
    /// refused by name rather than ignored.
    pub fn create_network(&self, request: &NetworkCreateRequest) -> Result<NetworkCreateResponse> {
        let driver = request.driver.as_deref().unwrap_or("bridge");
        if !matches!(driver, "" | "bridge") {
            return Err(EngineError::NotFound(format!(
                "plugin \"{driver}\" not found: only the bridge driver is available"
            )));
        }
        let refuse = |what: &str| {
            Err(EngineError::InvalidArgument(format!(
                "{what} networks are not supported: only IPv4 bridge networks with outbound access"
            )))
        };
        if request.internal == Some(true) {
            return refuse("internal");
        }
        if request.enable_ipv6 == Some(true) {
            return refuse("IPv6");
        }
        if request.ingress == Some(true) || request.config_only == Some(true) {
            return refuse("swarm (ingress or config-only)");
        }
        if let Some(options) = request.options.as_ref().filter(|o| !o.is_empty()) {
            let mut keys: Vec<&String> = options.keys().collect();
            keys.sort();
            return Err(EngineError::InvalidArgument(format!(
                "network driver options are not supported (given: {}): bridge networks here take a name, a subnet, a gateway and labels",
                keys.iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let (subnet, gateway) = ipv4_range(request.ipam.as_ref())?;
        let info = network::networks(&self.paths)?.create(&basic_network::CreateOptions {
            name: request.name.clone(),
            subnet,
            gateway,
            labels: sorted(request.labels.as_ref()),
            options: sorted(request.options.as_ref()),
        })?;
        Ok(NetworkCreateResponse {
            id: info.id,
            warning: String::new(),
        })
    }

    /// docker's document for network `name_or_id`, with the containers attached to it.
    pub fn inspect_network(&self, name_or_id: &str) -> Result<NetworkInspect> {
        if let Some(doc) = built_in(name_or_id) {
            return Ok(doc);
        }
        let info = network::networks(&self.paths)?.inspect(name_or_id)?;
        Ok(document(&info, true))
    }

    /// Every network (the built-ins too) that matches docker's `filters`: `name`
    /// (substring), `id` (prefix), `label` (`k` or `k=v`), `driver`, `type`
    /// (`builtin`/`custom`), `dangling` (no container attached).
    pub fn list_networks(
        &self,
        filters: &BTreeMap<String, Vec<String>>,
    ) -> Result<Vec<NetworkInspect>> {
        const KEYS: [&str; 6] = ["name", "id", "label", "driver", "type", "dangling"];
        if let Some(key) = filters.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(EngineError::InvalidArgument(format!(
                "invalid filter '{key}': use name, id, label, driver, type or dangling"
            )));
        }
        let networks = network::networks(&self.paths)?;
        let mut docs: Vec<NetworkInspect> = Vec::new();
        for info in networks.list()? {
            // The listing has no containers in docker's API; `dangling` needs them.
            let attached = !networks.inspect(&info.id)?.containers.is_empty();
            let doc = document(&info, false);
            if matches(&doc, attached, filters) {
                docs.push(doc);
            }
        }
        for (name, _) in BUILT_IN {
            let doc = built_in(name).expect("a built-in network");
            if matches(&doc, true, filters) {
                docs.push(doc);
            }
        }
        docs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(docs)
    }

    /// Removes a network with no container attached; the built-ins cannot be removed.
    pub fn remove_network(&self, name_or_id: &str) -> Result<()> {
        if let Some(name) = built_in(name_or_id).and_then(|doc| doc.name) {
            return Err(basic_network::Error::Predefined(name, "removed").into());
        }
        network::networks(&self.paths)?.remove(name_or_id)?;
        Ok(())
    }

    /// Removes every user-defined network no container is attached to; returns their names.
    pub fn prune_networks(&self) -> Result<Vec<String>> {
        let networks = network::networks(&self.paths)?;
        let default = network::config(&self.paths).default_network.name;
        let mut removed = Vec::new();
        for info in networks.list()? {
            if info.name == default || !networks.inspect(&info.id)?.containers.is_empty() {
                continue;
            }
            match networks.remove(&info.id) {
                Ok(_) => removed.push(info.name),
                // A container attached meanwhile: it stays, as docker's prune leaves it.
                Err(basic_network::Error::NetworkInUse { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }
}

impl Engine {
    /// Connects container `query` to network `name` with `endpoint`'s aliases (docker's
    /// `network connect`), from its next start. A running container is refused: its
    /// network namespace is set up whole at start.
    pub fn connect_network(
        &self,
        name: &str,
        query: &str,
        endpoint: Option<EndpointSettings>,
    ) -> Result<()> {
        network::refuse_in_rootless(name)?;
        let info = network::networks(&self.paths)?.inspect(name)?;
        let c = self.container(query)?;
        if self.status(&c).is_up() {
            return Err(EngineError::Conflict(format!(
                "container {} is running: connecting a running container to a network is not supported; stop it, connect, start it",
                c.name()
            )));
        }
        let mut stored = c.config.clone();
        let networking = stored
            .config
            .networking_config
            .get_or_insert_with(Default::default);
        let endpoints = networking.endpoints_config.get_or_insert_with(HashMap::new);
        if endpoints.contains_key(&info.name) || c.config.network_mode() == info.name {
            return Err(EngineError::Conflict(format!(
                "endpoint with name {} already exists in network {}",
                c.name(),
                info.name
            )));
        }
        let name = info.name.clone();
        endpoints.insert(info.name, endpoint.unwrap_or_default());
        // A container left without a network (created with none, or disconnected from
        // its own, as docker-compose does before connecting it with its aliases) makes
        // this one its main network, as docker does.
        if network::Mode::parse(&stored.network_mode()) == network::Mode::None {
            stored
                .config
                .host_config
                .get_or_insert_with(Default::default)
                .network_mode = Some(name);
        }
        self.store_config(c.id(), &stored)
    }

    /// Disconnects container `query` from network `name` (docker's `network
    /// disconnect`), from its next start; refused while it runs, as
    /// [`Engine::connect_network`].
    pub fn disconnect_network(&self, name: &str, query: &str) -> Result<()> {
        let info = network::networks(&self.paths)?.inspect(name)?;
        let c = self.container(query)?;
        if self.status(&c).is_up() {
            return Err(EngineError::Conflict(format!(
                "container {} is running: disconnecting a running container from a network is not supported; stop it first",
                c.name()
            )));
        }
        let mut stored = c.config.clone();
        let connected = stored
            .config
            .networking_config
            .as_mut()
            .and_then(|n| n.endpoints_config.as_mut())
            .and_then(|e| e.remove(&info.name))
            .is_some();
        let mode = network::Mode::parse(&stored.network_mode());
        if mode == network::Mode::Network(info.name.clone()) {
            // The main network goes: docker leaves the container with none.
            stored
                .config
                .host_config
                .get_or_insert_with(Default::default)
                .network_mode = Some("none".into());
        } else if !connected {
            return Err(EngineError::Conflict(format!(
                "container {} is not connected to network {}",
                c.name(),
                info.name
            )));
        }
        self.store_config(c.id(), &stored)
    }

    fn store_config(&self, id: &str, stored: &crate::StoredConfig) -> Result<()> {
        let value = serde_json::to_value(stored).map_err(|e| EngineError::Corrupt {
            what: "the container's configuration".into(),
            message: e.to_string(),
        })?;
        self.store.set_container_config(id, &value)?;
        Ok(())
    }
}

/// The one IPv4 subnet (and gateway) an IPAM request may give.
fn ipv4_range(ipam: Option<&Ipam>) -> Result<(Option<ipnet::Ipv4Net>, Option<std::net::Ipv4Addr>)> {
    let Some(ipam) = ipam else {
        return Ok((None, None));
    };
    if let Some(driver) = ipam
        .driver
        .as_deref()
        .filter(|d| !matches!(*d, "" | "default"))
    {
        return Err(EngineError::InvalidArgument(format!(
            "IPAM driver {driver:?} is not supported: only the default one"
        )));
    }
    let configs = ipam.config.as_deref().unwrap_or_default();
    let [config] = configs else {
        if configs.is_empty() {
            return Ok((None, None));
        }
        return Err(EngineError::InvalidArgument(
            "only one IPAM range is supported per network".into(),
        ));
    };
    if config.ip_range.as_deref().is_some_and(|r| !r.is_empty())
        || config
            .auxiliary_addresses
            .as_ref()
            .is_some_and(|a| !a.is_empty())
    {
        return Err(EngineError::InvalidArgument(
            "IPRange and AuxiliaryAddresses are not supported: give Subnet and Gateway".into(),
        ));
    }
    let subnet = config
        .subnet
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse().map_err(|_| {
                EngineError::InvalidArgument(format!("invalid subnet {s:?}: expected an IPv4 CIDR"))
            })
        })
        .transpose()?;
    let gateway = config
        .gateway
        .as_deref()
        .filter(|g| !g.is_empty())
        .map(|g| {
            g.parse().map_err(|_| {
                EngineError::InvalidArgument(format!(
                    "invalid gateway {g:?}: expected an IPv4 address"
                ))
            })
        })
        .transpose()?;
    if gateway.is_some() && subnet.is_none() {
        return Err(EngineError::InvalidArgument(
            "a gateway needs a subnet: give both".into(),
        ));
    }
    Ok((subnet, gateway))
}

fn sorted(map: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// docker's document for a stored network; `with_containers` for inspect.
fn document(info: &NetworkInfo, with_containers: bool) -> NetworkInspect {
    let containers = with_containers.then(|| {
        info.containers
            .iter()
            .map(|e| {
                let resource = EndpointResource {
                    name: Some(e.name.clone()),
                    endpoint_id: Some(store::name_id(&format!("{}/{}", info.id, e.id))),
                    mac_address: Some(e.mac_address.clone().unwrap_or_default()),
                    ipv4_address: Some(e.ipv4_address.map(|a| a.to_string()).unwrap_or_default()),
                    ipv6_address: Some(String::new()),
                };
                (e.id.clone(), resource)
            })
            .collect()
    });
    NetworkInspect {
        name: Some(info.name.clone()),
        id: Some(info.id.clone()),
        created: Some(info.created.clone()),
        scope: Some("local".into()),
        driver: Some(info.driver.clone()),
        enable_ipv4: Some(true),
        enable_ipv6: Some(false),
        ipam: Some(Ipam {
            driver: Some("default".into()),
            config: Some(
                info.ipam
                    .config
                    .iter()
                    .map(|c| IpamConfig {
                        subnet: Some(c.subnet.to_string()),
                        gateway: c.gateway.map(|g| g.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            options: Some(HashMap::new()),
        }),
        internal: Some(false),
        attachable: Some(false),
        ingress: Some(false),
        config_only: Some(false),
        options: Some(info.options.clone().into_iter().collect()),
        labels: Some(info.labels.clone().into_iter().collect()),
        containers: Some(containers.unwrap_or_default()),
        ..Default::default()
    }
}

/// `host` and `none`, as docker shows them.
fn built_in(name_or_id: &str) -> Option<NetworkInspect> {
    BUILT_IN.iter().find_map(|(name, driver)| {
        let id = store::name_id(name);
        let hit = *name == name_or_id || (name_or_id.len() >= 3 && id.starts_with(name_or_id));
        hit.then(|| NetworkInspect {
            name: Some(name.to_string()),
            id: Some(id),
            created: Some("0001-01-01T00:00:00Z".into()),
            scope: Some("local".into()),
            driver: Some(driver.to_string()),
            enable_ipv4: Some(true),
            enable_ipv6: Some(false),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(Vec::new()),
                options: None,
            }),
            internal: Some(false),
            attachable: Some(false),
            ingress: Some(false),
            config_only: Some(false),
            options: Some(HashMap::new()),
            labels: Some(HashMap::new()),
            containers: Some(HashMap::new()),
            ..Default::default()
        })
    })
}

fn matches(doc: &NetworkInspect, attached: bool, filters: &BTreeMap<String, Vec<String>>) -> bool {
    let name = doc.name.as_deref().unwrap_or_default();
    let id = doc.id.as_deref().unwrap_or_default();
    let builtin = BUILT_IN.iter().any(|(n, _)| *n == name) || name == "bridge";
    filters.iter().all(|(key, values)| {
        values.iter().any(|v| match key.as_str() {
            "name" => name.contains(v.as_str()),
            "id" => id.starts_with(v.as_str()),
            "driver" => doc.driver.as_deref() == Some(v.as_str()),
            "type" => (v == "builtin") == builtin && matches!(v.as_str(), "builtin" | "custom"),
            "dangling" => matches!(v.as_str(), "true" | "1") == (!attached && !builtin),
            "label" => {
                let labels = doc.labels.as_ref();
                match v.split_once('=') {
                    Some((k, want)) => labels.and_then(|l| l.get(k)).is_some_and(|x| x == want),
                    None => labels.is_some_and(|l| l.contains_key(v.as_str())),
                }
            }
            _ => false,
        })
    })
}
