//! The JSON documents of the CNI specification, as serde types.
//!
//! Unknown fields are kept (`extra`) so that a result read from one plugin and
//! handed to the next as `prevResult` loses nothing a later plugin may need.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The CNI version of the configurations this crate writes.
pub const CNI_VERSION: &str = "1.0.0";

/// A network configuration list (`.conflist`): a network's name and its chain of plugins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfigList {
    /// CNI version of every plugin configuration in the list.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// The network's name (plugins key their state on it).
    pub name: String,
    /// When true, CHECK must not be run for this network.
    #[serde(rename = "disableCheck", default, skip_serializing_if = "is_false")]
    pub disable_check: bool,
    /// Plugin configurations, run in order on ADD and CHECK, in reverse on DEL.
    pub plugins: Vec<Map<String, Value>>,
    /// Other top-level fields (kept as they are).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl NetworkConfigList {
    /// Parses a conflist, checking the fields the runtime needs.
    pub fn from_json(text: &str) -> Result<Self, String> {
        let list: NetworkConfigList = serde_json::from_str(text).map_err(|e| e.to_string())?;
        list.validate()?;
        Ok(list)
    }

    /// Checks that every plugin names its `type` and that the version is one results can be read in.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("missing network name".into());
        }
        if !supported_version(&self.cni_version) {
            return Err(format!(
                "cniVersion {:?} is not supported (0.3.0 or newer is)",
                self.cni_version
            ));
        }
        if self.plugins.is_empty() {
            return Err("no plugins".into());
        }
        for (i, plugin) in self.plugins.iter().enumerate() {
            if plugin_type(plugin).is_none() {
                return Err(format!("plugin {i} has no \"type\""));
            }
        }
        Ok(())
    }

    /// The plugin types, in order.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins.iter().filter_map(plugin_type).collect()
    }
}

/// A plugin configuration's `type`: the executable to run.
pub fn plugin_type(plugin: &Map<String, Value>) -> Option<&str> {
    plugin
        .get("type")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
}

/// True for the result formats this crate reads (0.3.0 and later share one shape).
pub fn supported_version(version: &str) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    major >= 1 || minor >= 3
}

/// The result of `ADD`: interfaces, addresses, routes and DNS.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CniResult {
    /// CNI version of this result.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Interfaces created or used (host side and container side).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses given to the interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes set up in the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings the network proposes.
    #[serde(default)]
    pub dns: Dns,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Interface {
    /// Its name (on the host, or inside the sandbox).
    pub name: String,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The network namespace path for container interfaces; absent for host interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Other fields (`mtu`, `socketPath`, ...).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address and prefix length, e.g. `172.29.0.2/16`.
    pub address: IpNet,
    /// The gateway of this subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
    /// Other fields (`version` in 0.3/0.4 results).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One route of a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Destination.
    pub dst: IpNet,
    /// Next hop (the default gateway when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Other fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// DNS settings of a result.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl CniResult {
    /// The interface named `ifname` inside `sandbox`.
    pub fn sandbox_interface(&self, ifname: &str) -> Option<(usize, &Interface)> {
        self.interfaces
            .iter()
            .enumerate()
            .find(|(_, i)| i.name == ifname && i.sandbox.as_deref().is_some_and(|s| !s.is_empty()))
    }

    /// The addresses of the interface at `index` (all addresses when the result has no indexes).
    pub fn ips_of(&self, index: Option<usize>) -> impl Iterator<Item = &IpConfig> {
        self.ips
            .iter()
            .filter(move |ip| ip.interface.is_none() || index.is_none() || ip.interface == index)
    }
}

/// The error structure a failing plugin prints.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PluginError {
    /// Error code (1–99 are the spec's, 100+ the plugin's).
    #[serde(default)]
    pub code: u32,
    /// Short message.
    #[serde(default)]
    pub msg: String,
    /// Longer explanation.
    #[serde(default)]
    pub details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bridge plugin's output (containernetworking-plugins 1.1), as recorded.
    const BRIDGE_RESULT: &str = r#"{
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "expbr0", "mac": "52:c3:ba:5a:d7:c2"},
            {"name": "veth951df114", "mac": "66:73:d2:ee:1b:e0"},
            {"name": "eth0", "mac": "1e:1a:ff:75:bb:4d", "sandbox": "/run/netns/exp1"}
        ],
        "ips": [{"interface": 2, "address": "10.231.0.2/24", "gateway": "10.231.0.1"}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {}
    }"#;

    #[test]
    fn bridge_result_parses_into_typed_values() {
        let r: CniResult = serde_json::from_str(BRIDGE_RESULT).unwrap();
        let (index, eth0) = r.sandbox_interface("eth0").unwrap();
        assert_eq!(index, 2);
        assert_eq!(eth0.mac.as_deref(), Some("1e:1a:ff:75:bb:4d"));
        let ip = r.ips_of(Some(index)).next().unwrap();
        assert_eq!(ip.address.to_string(), "10.231.0.2/24");
        assert_eq!(ip.gateway, Some("10.231.0.1".parse().unwrap()));
        assert_eq!(r.routes[0].dst.to_string(), "0.0.0.0/0");
    }

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let text = r#"{"cniVersion":"0.4.0","ips":[{"version":"4","address":"10.0.0.2/24"}],
                       "interfaces":[{"name":"eth0","sandbox":"/x","mtu":1400}],"custom":{"a":1}}"#;
        let r: CniResult = serde_json::from_str(text).unwrap();
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["ips"][0]["version"], "4");
        assert_eq!(back["interfaces"][0]["mtu"], 1400);
        assert_eq!(back["custom"]["a"], 1);
    }

    #[test]
    fn conflist_validation_names_the_problem() {
        let err =
            NetworkConfigList::from_json(r#"{"cniVersion":"1.0.0","name":"n","plugins":[{}]}"#)
                .unwrap_err();
        assert!(err.contains("plugin 0 has no \"type\""), "{err}");
        let err = NetworkConfigList::from_json(
            r#"{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap_err();
        assert!(err.contains("0.2.0"), "{err}");
        assert!(supported_version("0.3.1") && supported_version("1.0.0"));
    }
}
