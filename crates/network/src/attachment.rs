//! What a container is attached to, as recorded in the cache: enough to run
//! `DEL` from another process or after an engine restart, and to answer
//! `ps`, `port` and `inspect`.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::cni::{CniResult, NetworkConfigList};
use crate::error::{Error, Result};
use crate::etc_files::{DnsOptions, EtcFiles};
use crate::ports::PortMapping;

/// A container's network setup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// The container's ID (`CNI_CONTAINERID`, unless [`cni_container_id`](Self::cni_container_id) says otherwise).
    pub container_id: String,
    /// The ID the plugins know this attachment by, when not the container's: a
    /// namespace taken from the pool of prepared ones keeps the ID its `ADD` ran with,
    /// and `DEL` must give the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni_container_id: Option<String>,
    /// The container's name, by which peers on user-defined networks reach it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its hostname.
    pub hostname: String,
    /// Other names peers reach it by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The network namespace (put it in the OCI spec's `linux.namespaces`).
    pub netns: PathBuf,
    /// True when this crate created the namespace (and so removes it on detach).
    pub netns_owned: bool,
    /// Published ports, with the host ports chosen.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
    /// DNS settings for `resolv.conf`.
    #[serde(default)]
    pub dns: DnsOptions,
    /// Where the container's `hosts`, `hostname` and `resolv.conf` are kept up to date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etc_dir: Option<PathBuf>,
    /// Torn down in the background (see `AttachRequest::background_detach`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub background_detach: bool,
    /// One entry per network, in attach order.
    pub networks: Vec<NetworkAttachment>,
    /// The pasta process giving the namespace its network (rootless mode), which
    /// detach stops; no CNI plugin runs for such an attachment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pasta: Option<crate::pasta::PastaProcess>,
    /// Things the user should know (e.g. no DNS server left for `resolv.conf`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// The container's place on one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkAttachment {
    /// Network name.
    pub network: String,
    /// Network ID.
    pub network_id: String,
    /// False for the default network, where peers do not resolve each other by name.
    pub user_defined: bool,
    /// The interface inside the namespace (`eth0`, `eth1`, ...).
    pub ifname: String,
    /// Address and prefix on this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpNet>,
    /// The network's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The container interface's hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The host end of the veth pair (what the monitor reads counters from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_interface: Option<String>,
    /// The bridge the host end is enslaved to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// The configuration list `ADD` ran with (`DEL` must get the same).
    pub config: NetworkConfigList,
    /// The `ADD` result, handed to `CHECK` and `DEL` as `prevResult`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<CniResult>,
}

impl NetworkAttachment {
    /// Records an `ADD` result and the typed fields read from it.
    pub fn set_result(&mut self, result: CniResult) {
        let found = result
            .sandbox_interface(&self.ifname)
            .map(|(i, iface)| (i, iface.mac.clone()));
        let index = found.as_ref().map(|(i, _)| *i);
        self.mac = found.and_then(|(_, mac)| mac);
        if let Some(ip) = result.ips_of(index).next() {
            self.address = Some(ip.address);
            self.gateway = ip.gateway;
        }
        let bridge = self.bridge.clone();
        self.host_interface = result
            .interfaces
            .iter()
            .find(|i| {
                i.sandbox.as_deref().is_none_or(str::is_empty) && Some(&i.name) != bridge.as_ref()
            })
            .map(|i| i.name.clone());
        self.result = Some(result);
    }

    /// The container's address on this network, without prefix.
    pub fn ip(&self) -> Option<IpAddr> {
        self.address.map(|a| a.addr())
    }
}

impl Attachment {
    /// `CNI_CONTAINERID` for this attachment's plugin runs.
    pub fn cni_id(&self) -> &str {
        self.cni_container_id
            .as_deref()
            .unwrap_or(&self.container_id)
    }

    /// The address on the first network that gave one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.networks.iter().find_map(NetworkAttachment::ip)
    }

    /// The files to bind-mount into `/etc`, when the attachment keeps them.
    pub fn etc_files(&self) -> Option<EtcFiles> {
        self.etc_dir.as_deref().map(EtcFiles::in_dir)
    }

    /// Docker's PORTS column: `0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp`.
    pub fn ports_display(&self) -> String {
        self.ports
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The names a peer reaches this container by: name, aliases, hostname.
    pub fn peer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let candidates = self
            .name
            .iter()
            .chain(&self.aliases)
            .chain(std::iter::once(&self.hostname));
        for n in candidates {
            if !n.is_empty() && !names.contains(n) {
                names.push(n.clone());
            }
        }
        names
    }
}

/// Attachment records, one JSON file per container.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// A cache in `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache { dir: dir.into() }
    }

    /// The directory holding the records.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, container_id: &str) -> PathBuf {
        self.dir.join(format!("{container_id}.json"))
    }

    /// The record of a container, if any.
    pub fn load(&self, container_id: &str) -> Result<Option<Attachment>> {
        read_record(&self.path(container_id))
    }

    /// Every record, sorted by container ID.
    pub fn all(&self) -> Result<Vec<Attachment>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &self.dir, e)),
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| Error::io("listing", &self.dir, e))?
                .path();
            if path.extension().is_some_and(|e| e == "json") {
                records.extend(read_record(&path)?);
            }
        }
        records.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        Ok(records)
    }

    /// Writes a record atomically (temp file, fsync, rename): readers never see half of one.
    pub fn save(&self, attachment: &Attachment) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io("creating", &self.dir, e))?;
        let path = self.path(&attachment.container_id);
        let tmp = self.dir.join(format!(".{}.tmp", attachment.container_id));
        let text = serde_json::to_vec_pretty(attachment).expect("an attachment serializes");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| Error::io("writing", &path, e))
    }

    /// Deletes a record; a missing one is fine.
    pub fn remove(&self, container_id: &str) -> Result<()> {
        let path = self.path(container_id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("deleting", &path, e))
            }
            _ => Ok(()),
        }
    }
}

fn read_record(path: &Path) -> Result<Option<Attachment>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("reading", path, e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| Error::BadConfig {
            path: path.into(),
            reason: format!("unreadable attachment record: {e}"),
        })
}
