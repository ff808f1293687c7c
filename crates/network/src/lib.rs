//! Container networking through CNI plugins.
//!
//! - [`cni`]: the runtime side of the CNI specification — plugin lookup,
//!   `ADD`/`CHECK`/`DEL` over a configuration list with `prevResult` chaining
//!   and capability arguments, typed results and errors.
//! - [`Network`]: attach a namespace to one network; [`CniNetwork`] runs a
//!   configuration list.
//! - [`Networks`]: what an engine calls — bridge networks stored as conflists
//!   (a default one created on first use), attachments with cached results so
//!   that teardown works from any process, named network namespaces,
//!   published ports, and the container's `/etc/hosts`, `/etc/hostname` and
//!   `/etc/resolv.conf`.
//! - [`host_rules`]: masquerade, forwarding and isolation of the engine's
//!   bridge networks, set up once per network instead of by plugins on every
//!   container start.
//! - [`ports`]: docker's `-p` syntax and a free host port picker.
//! - [`pasta`]: user-mode networking through `pasta` for rootless engines, which
//!   cannot make bridges or veths on the host ([`NetworksConfig::rootless`]).
//!
//! The reference plugins (`bridge`, `host-local`, `portmap`, `firewall`,
//! `loopback`) come with Debian's `containernetworking-plugins` package.
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod attachment;
pub mod cni;
mod error;
pub mod etc_files;
mod handoff;
pub mod host_rules;
mod manager;
pub mod netns;
mod network;
pub mod pasta;
mod pool;
pub mod ports;
mod rootless;
pub mod store;

pub use attachment::{Attachment, Cache, NetworkAttachment};
pub use cni::{Cni, CniResult, NetworkConfigList, RuntimeConf};
pub use error::{Error, PLUGINS_PACKAGE, Result};
pub use etc_files::{DnsOptions, EtcFiles};
pub use host_rules::{BridgeRules, Firewall, Iptables};
pub use manager::{
    AttachRequest, DEFAULT_NETNS_DIR, Networks, NetworksConfig, delete_bridge, host_network_files,
    hosts_for,
};
pub use network::{CniNetwork, Network, Sandbox, loopback};
pub use pasta::{PASTA_PACKAGE, Pasta, PastaInterface, PastaOptions, PastaProcess, StartingPasta};
pub use ports::{HostPort, PortMapping, PortSpec, PortSpecError, Protocol};
pub use rootless::PendingAttachment;
pub use store::{CreateOptions, DefaultNetwork, NetworkInfo};
