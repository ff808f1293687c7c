//! Network definitions on disk: one CNI network configuration list per
//! network, `<dir>/<name>.conflist`. Any conflist a user drops there is a
//! network too; the ones this crate writes carry an ID and a creation time in
//! a top-level `basicDocker` object, which CNI leaves alone.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::cni::NetworkConfigList;
use crate::cni::types::CNI_VERSION;
use crate::error::{Error, Result};
use crate::host_rules::BridgeRules;

/// Names `network create` refuses: docker's built-ins.
pub const PREDEFINED: &[&str] = &["bridge", "host", "none"];

/// The top-level key of a conflist holding this crate's metadata.
const META_KEY: &str = "basicDocker";

/// The default network, created on first use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetwork {
    /// Its name (`bridge`).
    pub name: String,
    /// Its bridge device (`basic0`).
    pub bridge: String,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// Its gateway (the bridge's address).
    pub gateway: Ipv4Addr,
}

impl Default for DefaultNetwork {
    fn default() -> Self {
        DefaultNetwork {
            name: "bridge".into(),
            bridge: "basic0".into(),
            subnet: "172.29.0.0/16".parse().expect("a valid subnet"),
            gateway: Ipv4Addr::new(172, 29, 0, 1),
        }
    }
}

/// What `network create` takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// The network's name.
    pub name: String,
    /// `--subnet`; picked from a pool when absent.
    pub subnet: Option<Ipv4Net>,
    /// `--gateway`; the subnet's first address when absent.
    pub gateway: Option<Ipv4Addr>,
    /// `--label`s, kept with the network.
    pub labels: BTreeMap<String, String>,
    /// `--opt`s (driver options), kept with the network as docker shows them.
    pub options: BTreeMap<String, String>,
}

/// A network as `ls` and `inspect` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInfo {
    /// Name.
    pub name: String,
    /// 64 hex digits.
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Always `local`.
    pub scope: String,
    /// The first plugin's type (`bridge`).
    pub driver: String,
    /// Subnets and gateways of its IPAM configuration.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// Bridge device (docker's `com.docker.network.bridge.name` option).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// The CNI plugin chain.
    pub plugins: Vec<String>,
    /// Attached containers (filled by `inspect`).
    #[serde(default)]
    pub containers: Vec<Endpoint>,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its driver options.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Where the conflist lives.
    pub config_file: PathBuf,
}

/// IPAM part of [`NetworkInfo`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// The IPAM plugin (`host-local`).
    pub driver: String,
    /// Address ranges.
    pub config: Vec<IpamConfig>,
}

/// One range of [`Ipam`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// The subnet.
    pub subnet: IpNet,
    /// Its gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
}

/// An attached container as `inspect` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    /// Container ID.
    pub id: String,
    /// Container name (empty when unnamed).
    pub name: String,
    /// Address with prefix.
    #[serde(
        rename = "IPv4Address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_address: Option<IpNet>,
    /// Hardware address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

/// The conflists in one directory.
#[derive(Debug, Clone)]
pub struct NetworkStore {
    dir: PathBuf,
    ipam_dir: PathBuf,
}

impl NetworkStore {
    /// A store in `dir`; host-local keeps its allocations in `ipam_dir/<network>`.
    pub fn new(dir: impl Into<PathBuf>, ipam_dir: impl Into<PathBuf>) -> Self {
        NetworkStore {
            dir: dir.into(),
            ipam_dir: ipam_dir.into(),
        }
    }

    /// The conflist file of a network name.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.conflist"))
    }

    /// Where host-local keeps one network's allocations.
    pub fn ipam_dir_of(&self, name: &str) -> PathBuf {
        self.ipam_dir.join(name)
    }

    /// Every network, sorted by name. Unreadable files are errors, not silently skipped.
    pub fn list(&self) -> Result<Vec<NetworkConfigList>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("listing", &self.dir, e)),
        };
        let mut lists = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|e| Error::io("listing", &self.dir, e))?
                .path();
            if path.extension().is_some_and(|e| e == "conflist") {
                lists.push(read_conflist(&path)?);
            }
        }
        lists.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(lists)
    }

    /// A network by name, full ID or unique ID prefix.
    pub fn find(&self, name_or_id: &str) -> Result<NetworkConfigList> {
        let path = self.path_of(name_or_id);
        if valid_name(name_or_id) && path.exists() {
            return read_conflist(&path);
        }
        let mut matches: Vec<_> = self
            .list()?
            .into_iter()
            .filter(|l| !name_or_id.is_empty() && network_id(l).starts_with(name_or_id))
            .collect();
        match matches.len() {
            1 => Ok(matches.remove(0)),
            _ => Err(Error::NetworkNotFound(name_or_id.to_string())),
        }
    }

    /// Writes the default network's conflist unless a network of that name exists.
    pub fn ensure_default(&self, default: &DefaultNetwork) -> Result<NetworkConfigList> {
        let path = self.path_of(&default.name);
        if path.exists() {
            return read_conflist(&path);
        }
        let list = bridge_conflist(
            &default.name,
            &default.bridge,
            default.subnet,
            default.gateway,
            &self.ipam_dir,
        );
        match self.write_new(&list) {
            Ok(()) => Ok(list),
            // Another process wrote it first: use theirs.
            Err(Error::NetworkExists(_)) => read_conflist(&path),
            Err(e) => Err(e),
        }
    }

    /// `network create`: a bridge network with its own bridge device and subnet.
    pub fn create(&self, opts: &CreateOptions, reserved: &[Ipv4Net]) -> Result<NetworkConfigList> {
        if !valid_name(&opts.name) {
            return Err(Error::InvalidName(opts.name.clone()));
        }
        if PREDEFINED.contains(&opts.name.as_str()) {
            return Err(Error::Predefined(opts.name.clone(), "created"));
        }
        if self.path_of(&opts.name).exists() {
            return Err(Error::NetworkExists(opts.name.clone()));
        }
        let mut taken = reserved.to_vec();
        taken.extend(self.list()?.iter().flat_map(subnets_v4));
        let subnet = match opts.subnet {
            Some(s) => check_subnet(s, &taken)?,
            None => pick_subnet(&taken)?,
        };
        let gateway = match opts.gateway {
            Some(g) => check_gateway(subnet, g)?,
            None => first_host(subnet),
        };
        let id = new_id(&opts.name);
        let bridge = format!("br-{}", &id[..12]);
        let mut list = bridge_conflist(&opts.name, &bridge, subnet, gateway, &self.ipam_dir);
        if let Some(meta) = list.extra.get_mut(META_KEY).and_then(Value::as_object_mut) {
            meta.insert("id".into(), json!(id));
            meta.insert("created".into(), json!(now_rfc3339()));
            if !opts.labels.is_empty() {
                meta.insert("labels".into(), json!(opts.labels));
            }
            if !opts.options.is_empty() {
                meta.insert("options".into(), json!(opts.options));
            }
        }
        self.write_new(&list)?;
        Ok(list)
    }

    /// Deletes a network's conflist and its IPAM directory.
    pub fn delete(&self, name: &str) -> Result<()> {
        let path = self.path_of(name);
        std::fs::remove_file(&path).map_err(|e| Error::io("deleting", &path, e))?;
        let ipam = self.ipam_dir_of(name);
        match std::fs::remove_dir_all(&ipam) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("deleting", &ipam, e))
            }
            _ => Ok(()),
        }
    }

    /// Replaces a network's conflist with `list` (same name), through a temp
    /// file and a rename: a reader sees the old file or the new one.
    pub fn replace(&self, list: &NetworkConfigList) -> Result<()> {
        let path = self.path_of(&list.name);
        let tmp = self
            .dir
            .join(format!(".{}.tmp-{}", list.name, std::process::id()));
        let text = serde_json::to_string_pretty(list).expect("a conflist serializes");
        std::fs::write(&tmp, text + "\n").map_err(|e| Error::io("writing", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("writing", &path, e))
    }

    fn write_new(&self, list: &NetworkConfigList) -> Result<()> {
        crate::error::private_dir(&self.dir, crate::error::PRIVATE_DIR)?;
        let path = self.path_of(&list.name);
        let tmp = self
            .dir
            .join(format!(".{}.tmp-{}", list.name, std::process::id()));
        let text = serde_json::to_string_pretty(list).expect("a conflist serializes");
        std::fs::write(&tmp, text + "\n").map_err(|e| Error::io("writing", &tmp, e))?;
        // A hard link fails when the name exists: two creators cannot both win.
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::NetworkExists(list.name.clone()))
            }
            Err(e) => Err(Error::io("writing", &path, e)),
        }
    }
}

/// Reads and validates one conflist.
pub fn read_conflist(path: &Path) -> Result<NetworkConfigList> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("reading", path, e))?;
    NetworkConfigList::from_json(&text).map_err(|reason| Error::BadConfig {
        path: path.into(),
        reason,
    })
}

/// The conflist of a bridge network: `bridge` (host-local IPAM, a gateway,
/// hairpin mode) and `portmap` (published ports, reachable at 127.0.0.1
/// through its default `snat`), marked `"hostRules": true` in its
/// `basicDocker` object: outbound masquerade, forwarding and isolation from
/// other bridges are kept per network by [`crate::host_rules`] rather than per
/// container by `bridge`'s `ipMasq` and the `firewall` plugin, whose
/// `iptables` runs cost a container start about 50 ms.
pub fn bridge_conflist(
    name: &str,
    bridge: &str,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    ipam_dir: &Path,
) -> NetworkConfigList {
    let value = json!({
        "cniVersion": CNI_VERSION,
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": true,
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet.to_string(), "gateway": gateway.to_string()}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": ipam_dir.display().to_string()
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ],
        META_KEY: {HOST_RULES_KEY: true}
    });
    serde_json::from_value(value).expect("a well-formed conflist")
}

/// The flag saying the engine keeps a network's host rules (see [`bridge_conflist`]).
const HOST_RULES_KEY: &str = "hostRules";

/// The per-network host rules a conflist asks for: its bridge and first IPv4
/// subnet when it carries the `hostRules` flag; `None` for any other
/// conflist, whose plugins do their own.
pub fn host_rules(list: &NetworkConfigList) -> Option<BridgeRules> {
    let flagged = list
        .extra
        .get(META_KEY)
        .and_then(|m| m.get(HOST_RULES_KEY))
        .and_then(Value::as_bool)
        == Some(true);
    if !flagged {
        return None;
    }
    Some(BridgeRules {
        bridge: bridge_name(list)?,
        subnet: subnets_v4(list).into_iter().next()?,
    })
}

/// The same network in the current form when `list` is what this crate wrote
/// before host rules (bridge with `ipMasq`, portmap, firewall with
/// `same-bridge`) for the default network or a created one; `None` otherwise.
/// Attachments keep the configuration they were added with, so rewriting a
/// network's file never changes how an attached container is removed.
pub fn upgraded(list: &NetworkConfigList, default_name: &str) -> Option<NetworkConfigList> {
    let meta = list.extra.get(META_KEY);
    let ours = list.name == default_name || meta.and_then(|m| m.get("id")).is_some();
    let plugin = |i: usize, key: &str| list.plugins.get(i).and_then(|p| p.get(key).cloned());
    let previous = list.plugin_types() == ["bridge", "portmap", "firewall"]
        && plugin(0, "ipMasq") == Some(json!(true))
        && plugin(2, "ingressPolicy") == Some(json!("same-bridge"))
        && meta.and_then(|m| m.get(HOST_RULES_KEY)).is_none();
    if !ours || !previous {
        return None;
    }
    let mut list = list.clone();
    list.plugins.truncate(2);
    list.plugins[0].insert("ipMasq".into(), json!(false));
    let meta = list.extra.entry(META_KEY).or_insert_with(|| json!({}));
    meta.as_object_mut()?
        .insert(HOST_RULES_KEY.into(), json!(true));
    Some(list)
}

/// The network's ID: recorded at creation, or derived from the name for foreign conflists.
pub fn network_id(list: &NetworkConfigList) -> String {
    list.extra
        .get(META_KEY)
        .and_then(|m| m.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| name_id(&list.name))
}

/// The ID of a network known only by name (a foreign conflist, or docker's `host` and `none`).
pub fn name_id(name: &str) -> String {
    hex::encode(Sha256::digest(name.as_bytes()))
}

/// The bridge device of the first plugin that names one.
pub fn bridge_name(list: &NetworkConfigList) -> Option<String> {
    list.plugins
        .iter()
        .find_map(|p| p.get("bridge").and_then(Value::as_str).map(str::to_string))
}

/// IPAM ranges of the first plugin with an `ipam` section.
pub fn ipam_config(list: &NetworkConfigList) -> Ipam {
    let Some(ipam) = list.plugins.iter().find_map(|p| p.get("ipam")) else {
        return Ipam::default();
    };
    let mut config = Vec::new();
    let ranges = ipam
        .get("ranges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for range in ranges.flat_map(|set| set.as_array().into_iter().flatten()) {
        let subnet = range
            .get("subnet")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        if let Some(subnet) = subnet {
            let gateway = range
                .get("gateway")
                .and_then(Value::as_str)
                .and_then(|g| g.parse().ok());
            config.push(IpamConfig { subnet, gateway });
        }
    }
    if let Some(subnet) = ipam
        .get("subnet")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
    {
        let gateway = ipam
            .get("gateway")
            .and_then(Value::as_str)
            .and_then(|g| g.parse().ok());
        config.push(IpamConfig { subnet, gateway });
    }
    Ipam {
        driver: ipam
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        config,
    }
}

/// The `ls`/`inspect` view of a conflist (without containers).
pub fn info(list: &NetworkConfigList, config_file: PathBuf) -> NetworkInfo {
    let created = list
        .extra
        .get(META_KEY)
        .and_then(|m| m.get("created"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| file_mtime_rfc3339(&config_file))
        .unwrap_or_default();
    NetworkInfo {
        name: list.name.clone(),
        id: network_id(list),
        created,
        scope: "local".into(),
        driver: list
            .plugin_types()
            .first()
            .copied()
            .unwrap_or_default()
            .to_string(),
        ipam: ipam_config(list),
        bridge: bridge_name(list),
        plugins: list
            .plugin_types()
            .into_iter()
            .map(str::to_string)
            .collect(),
        containers: Vec::new(),
        labels: meta_map(list, "labels"),
        options: meta_map(list, "options"),
        config_file,
    }
}

/// A string map this crate kept in the conflist's metadata (empty when absent).
fn meta_map(list: &NetworkConfigList, key: &str) -> BTreeMap<String, String> {
    list.extra
        .get(META_KEY)
        .and_then(|m| m.get(key))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Addresses host-local holds for `(container_id, ifname)` on this network, with
/// their subnets' prefix lengths: read from its allocation files
/// (`<dataDir>/<network>/<ip>` holding `<container id>\r\n<ifname>`).
/// Used to rebuild a `prevResult` when the cached one is lost.
pub fn host_local_allocations(
    list: &NetworkConfigList,
    container_id: &str,
    ifname: &str,
) -> Vec<IpNet> {
    let Some(ipam) = list.plugins.iter().find_map(|p| p.get("ipam")) else {
        return Vec::new();
    };
    if ipam.get("type").and_then(Value::as_str) != Some("host-local") {
        return Vec::new();
    }
    let data_dir = ipam
        .get("dataDir")
        .and_then(Value::as_str)
        .unwrap_or("/var/lib/cni/networks");
    let ranges = ipam_config(list).config;
    let Ok(entries) = std::fs::read_dir(Path::new(data_dir).join(&list.name)) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let ip: IpAddr = e.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(e.path()).ok()?;
            let mut lines = text.lines().map(str::trim);
            (lines.next() == Some(container_id) && lines.next().is_none_or(|i| i == ifname))
                .then_some(())?;
            let prefix = ranges
                .iter()
                .find(|r| r.subnet.contains(&ip))
                .map_or(if ip.is_ipv4() { 32 } else { 128 }, |r| {
                    r.subnet.prefix_len()
                });
            IpNet::new(ip, prefix).ok()
        })
        .collect()
}

fn subnets_v4(list: &NetworkConfigList) -> Vec<Ipv4Net> {
    ipam_config(list)
        .config
        .into_iter()
        .filter_map(|c| match c.subnet {
            IpNet::V4(n) => Some(n),
            IpNet::V6(_) => None,
        })
        .collect()
}

/// Docker's name rule.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_subnet(subnet: Ipv4Net, taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    if subnet.prefix_len() > 30 {
        return Err(Error::InvalidSubnet(format!(
            "subnet {subnet} is too small: a network needs at least a /30"
        )));
    }
    let subnet = subnet.trunc();
    match taken.iter().find(|t| overlaps(**t, subnet)) {
        Some(other) => Err(Error::InvalidSubnet(format!(
            "Pool overlaps with other one on this address space: {subnet} overlaps {other}"
        ))),
        None => Ok(subnet),
    }
}

fn check_gateway(subnet: Ipv4Net, gateway: Ipv4Addr) -> Result<Ipv4Addr> {
    if !subnet.contains(&gateway) || gateway == subnet.network() || gateway == subnet.broadcast() {
        return Err(Error::InvalidSubnet(format!(
            "gateway {gateway} is not a host address of subnet {subnet}"
        )));
    }
    Ok(gateway)
}

fn first_host(subnet: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet.network()) + 1)
}

/// The first free /24 of 172.30.0.0/15 (the default network has 172.29.0.0/16).
fn pick_subnet(taken: &[Ipv4Net]) -> Result<Ipv4Net> {
    let pool: Ipv4Net = "172.30.0.0/15".parse().expect("a valid pool");
    pool.subnets(24)
        .expect("24 is longer than the pool's prefix")
        .find(|candidate| !taken.iter().any(|t| overlaps(*t, *candidate)))
        .ok_or(Error::NoFreeSubnet)
}

/// IPv4 routes of the host (`/proc/net/route`), so new subnets avoid networks the host reaches.
pub fn host_routes() -> Vec<Ipv4Net> {
    let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    parse_proc_net_route(&text)
}

fn parse_proc_net_route(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dst = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The default route (mask 0) overlaps everything and says nothing about clashes.
            (mask != 0).then_some(())?;
            let dst = Ipv4Addr::from(u32::from_be(dst));
            let prefix = u32::from_be(mask).leading_ones() as u8;
            Ipv4Net::new(dst, prefix).ok()
        })
        .collect()
}

fn new_id(name: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(now.as_nanos().to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    if let Ok(random) = std::fs::read("/proc/sys/kernel/random/uuid") {
        hasher.update(random);
    }
    hex::encode(hasher.finalize())
}

fn now_rfc3339() -> String {
    rfc3339(jiff::Timestamp::now().as_second())
}

fn file_mtime_rfc3339(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let mtime = std::fs::metadata(path).ok()?.mtime();
    Some(rfc3339(mtime))
}

/// `2024-05-01T12:00:00Z` from unix seconds: whole seconds, as the network
/// documents have always shown. A time outside what RFC 3339 can write (a file
/// whose mtime was set to year -40000, say) gives the epoch rather than a panic.
fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, NetworkStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = NetworkStore::new(dir.path().join("networks"), dir.path().join("ipam"));
        (dir, store)
    }

    #[test]
    fn create_writes_a_bridge_conflist_with_its_own_bridge_and_subnet() {
        let (_dir, store) = store();
        let opts = CreateOptions {
            name: "web".into(),
            ..Default::default()
        };
        let list = store.create(&opts, &[]).unwrap();
        assert_eq!(list.plugin_types(), ["bridge", "portmap"]);
        let rules = host_rules(&list).expect("the engine keeps its host rules");
        assert_eq!(rules.subnet.to_string(), "172.30.0.0/24");
        let info = info(&list, store.path_of("web"));
        assert_eq!(info.ipam.config[0].subnet.to_string(), "172.30.0.0/24");
        assert_eq!(
            info.ipam.config[0].gateway,
            Some("172.30.0.1".parse().unwrap())
        );
        assert_eq!(
            info.bridge.as_deref(),
            Some(&*format!("br-{}", &info.id[..12]))
        );
        assert_eq!(info.created.len(), 20, "{}", info.created);
        assert_eq!(rules.bridge, info.bridge.clone().unwrap());

        let second = CreateOptions {
            name: "db".into(),
            ..Default::default()
        };
        let db = store.create(&second, &[]).unwrap();
        assert_eq!(
            ipam_config(&db).config[0].subnet.to_string(),
            "172.30.1.0/24"
        );
        assert_eq!(store.list().unwrap().len(), 2);
        assert_eq!(store.find(&info.id[..10]).unwrap().name, "web");
        assert!(matches!(
            store.create(&opts, &[]),
            Err(Error::NetworkExists(_))
        ));
    }

    #[test]
    fn bad_names_subnets_and_gateways_are_refused_with_reasons() {
        let (_dir, store) = store();
        let create = |name: &str, subnet: Option<&str>, gateway: Option<&str>| {
            let opts = CreateOptions {
                name: name.into(),
                subnet: subnet.map(|s| s.parse().unwrap()),
                gateway: gateway.map(|g| g.parse().unwrap()),
                ..Default::default()
            };
            store
                .create(&opts, &["192.0.2.0/24".parse().unwrap()])
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert!(create("-bad", None, None).contains("invalid network name"));
        assert!(create("bridge", None, None).contains("pre-defined"));
        assert!(create("n1", Some("192.0.2.128/25"), None).contains("overlaps"));
        assert!(create("n1", Some("10.9.0.0/24"), Some("10.9.1.1")).contains("not a host address"));
        assert!(create("n1", Some("10.9.0.0/31"), None).contains("too small"));
    }

    #[test]
    fn default_network_is_written_once() {
        let (_dir, store) = store();
        let default = DefaultNetwork::default();
        let a = store.ensure_default(&default).unwrap();
        let b = store.ensure_default(&default).unwrap();
        assert_eq!(a, b);
        assert_eq!(bridge_name(&a).as_deref(), Some("basic0"));
        assert_eq!(
            ipam_config(&a).config[0].subnet.to_string(),
            "172.29.0.0/16"
        );
    }

    #[test]
    fn proc_net_route_gives_the_hosts_networks() {
        let text = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let routes = parse_proc_net_route(text);
        assert_eq!(routes, ["192.0.2.0/24".parse::<Ipv4Net>().unwrap()]);
    }

    #[test]
    fn labels_and_options_are_kept_with_the_network() {
        let (_dir, store) = store();
        let opts = CreateOptions {
            name: "labelled".into(),
            labels: BTreeMap::from([("com.docker.compose.project".into(), "p".into())]),
            options: BTreeMap::from([("mtu".into(), "1400".into())]),
            ..Default::default()
        };
        let list = store.create(&opts, &[]).unwrap();
        let info = info(
            &read_conflist(&store.path_of(&list.name)).unwrap(),
            PathBuf::new(),
        );
        assert_eq!(info.labels, opts.labels);
        assert_eq!(info.options, opts.options);
    }

    #[test]
    fn host_local_allocations_are_found_by_container_and_interface() {
        let (dir, store) = store();
        let opts = CreateOptions {
            name: "n".into(),
            subnet: Some("10.9.0.0/24".parse().unwrap()),
            gateway: None,
            ..Default::default()
        };
        let list = store.create(&opts, &[]).unwrap();
        let data = dir.path().join("ipam").join("n");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("10.9.0.2"), "c1\r\neth0").unwrap();
        std::fs::write(data.join("10.9.0.3"), "c2\r\neth0").unwrap();
        std::fs::write(data.join("last_reserved_ip.0"), "10.9.0.3").unwrap();
        let found = host_local_allocations(&list, "c1", "eth0");
        assert_eq!(found, ["10.9.0.2/24".parse::<IpNet>().unwrap()]);
        assert!(host_local_allocations(&list, "c1", "eth1").is_empty());
    }

    #[test]
    fn rfc3339_formats_unix_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339(-86_400), "1969-12-31T00:00:00Z");
        assert_eq!(rfc3339(i64::MIN), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_file_from_before_1970_has_a_creation_time() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("old.conflist");
        std::fs::write(&file, b"{}").unwrap();
        let old = std::time::UNIX_EPOCH - std::time::Duration::from_secs(86_400 * 365);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(
            file_mtime_rfc3339(&file).as_deref(),
            Some("1969-01-01T00:00:00Z")
        );
    }
}
