//! The `Network` trait: attach a container's network namespace to one
//! network and detach it again. [`CniNetwork`] implements it by running a
//! CNI configuration list.

use std::path::Path;
use std::sync::Arc;

use serde_json::Map;

use crate::cni::{Cni, CniResult, NetworkConfigList, RuntimeConf};
use crate::error::Result;
use crate::ports::PortMapping;

/// One container's side of an attachment: what plugins need to know about it.
#[derive(Debug, Clone, Copy)]
pub struct Sandbox<'a> {
    /// The container's ID.
    pub container_id: &'a str,
    /// Its network namespace (a path to an nsfs file).
    pub netns: &'a Path,
    /// The interface name inside the namespace (`eth0`).
    pub ifname: &'a str,
    /// Ports to publish through this network.
    pub ports: &'a [PortMapping],
}

/// A network a container can be attached to.
pub trait Network {
    /// The network's name.
    fn name(&self) -> &str;
    /// Connects the sandbox; the result says which interfaces and addresses it got.
    fn add(&self, sandbox: &Sandbox<'_>) -> Result<CniResult>;
    /// Verifies that an earlier `add` is still in place.
    fn check(&self, sandbox: &Sandbox<'_>, prev: &CniResult) -> Result<()>;
    /// Disconnects the sandbox, releasing everything `add` took. Works without
    /// `prev` (the cached result), cleaning up what can be found.
    fn del(&self, sandbox: &Sandbox<'_>, prev: Option<&CniResult>) -> Result<()>;
}

/// A network defined by a CNI configuration list.
#[derive(Debug, Clone)]
pub struct CniNetwork {
    list: NetworkConfigList,
    cni: Arc<Cni>,
}

impl CniNetwork {
    /// The network of `list`, run by `cni`.
    pub fn new(list: NetworkConfigList, cni: Arc<Cni>) -> Self {
        CniNetwork { list, cni }
    }

    /// Its configuration list.
    pub fn config(&self) -> &NetworkConfigList {
        &self.list
    }

    fn runtime_conf(&self, sandbox: &Sandbox<'_>) -> RuntimeConf {
        let mut capability_args = Map::new();
        if !sandbox.ports.is_empty() {
            let ports = serde_json::to_value(sandbox.ports).expect("port mappings serialize");
            capability_args.insert("portMappings".into(), ports);
        }
        RuntimeConf {
            container_id: sandbox.container_id.to_string(),
            netns: sandbox.netns.to_path_buf(),
            ifname: sandbox.ifname.to_string(),
            // Plugins refuse unknown CNI_ARGS keys unless told to ignore them.
            args: vec![("IgnoreUnknown".into(), "1".into())],
            capability_args,
        }
    }
}

impl Network for CniNetwork {
    fn name(&self) -> &str {
        &self.list.name
    }

    fn add(&self, sandbox: &Sandbox<'_>) -> Result<CniResult> {
        self.cni.add_list(&self.list, &self.runtime_conf(sandbox))
    }

    fn check(&self, sandbox: &Sandbox<'_>, prev: &CniResult) -> Result<()> {
        self.cni
            .check_list(&self.list, &self.runtime_conf(sandbox), prev)
    }

    fn del(&self, sandbox: &Sandbox<'_>, prev: Option<&CniResult>) -> Result<()> {
        self.cni
            .del_list(&self.list, &self.runtime_conf(sandbox), prev)
    }
}

/// The loopback network every namespace gets (`lo` up), as a one-plugin list.
pub fn loopback() -> NetworkConfigList {
    let value = serde_json::json!({
        "cniVersion": crate::cni::types::CNI_VERSION,
        "name": "loopback",
        "plugins": [{"type": "loopback"}]
    });
    serde_json::from_value::<NetworkConfigList>(value).expect("a well-formed conflist")
}
