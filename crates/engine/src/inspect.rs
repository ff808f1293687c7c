//! `inspect`: docker's container document (Engine API 1.41, as docker 20.10 shows it), for
//! the fields this engine has.
//!
//! bollard-stubs follows the current API, whose `NetworkSettings` no longer carries the
//! top-level `IPAddress`, `Gateway`, `MacAddress`, ... that API 1.41 clients (and every
//! `docker inspect -f '{{.NetworkSettings.IPAddress}}'` in the wild) read, and whose
//! optional fields are left out rather than written as `null`. So the document is
//! bollard's response for the parts where that is what docker writes, plus this module's
//! own `Config` and `NetworkSettings` in docker 20.10's field order, with docker's `null`s.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use basic_network::{Attachment, NetworkAttachment, Networks};
use bollard_stubs::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, DriverData, HealthConfig,
    PortBinding, RestartPolicy,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::config::RestartPolicyNameEnum;
use crate::engine::{Container, Engine};
use crate::error::Result;
use crate::host;
use crate::network::{self, Mode};
use crate::status::{Status, rfc3339};

/// docker's container document: what `docker inspect` prints and
/// `GET /containers/{id}/json` returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerDocument {
    /// Everything up to `Mounts`, as bollard models it (its `Config` and
    /// `NetworkSettings` stay empty: this document writes its own).
    #[serde(flatten)]
    pub base: ContainerInspectResponse,
    /// The running execs (`null` when none: the engine keeps no exec list).
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    /// The container's configuration.
    #[serde(rename = "Config")]
    pub config: InspectConfig,
    /// Its network namespace, published ports and addresses.
    #[serde(rename = "NetworkSettings")]
    pub network_settings: NetworkSettings,
}

/// docker's `Config` of an inspected container (API 1.41's field order and `null`s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    /// The host name inside the container.
    pub hostname: String,
    /// The domain name inside the container.
    pub domainname: String,
    /// `--user`.
    pub user: String,
    /// Whether a client attached to stdin at create.
    pub attach_stdin: bool,
    /// Whether a client attached to stdout at create.
    pub attach_stdout: bool,
    /// Whether a client attached to stderr at create.
    pub attach_stderr: bool,
    /// The exposed ports (`"80/tcp": {}`), left out when there are none, as docker does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub open_stdin: bool,
    /// Whether stdin closes after the first attached client leaves.
    pub stdin_once: bool,
    /// The process environment.
    pub env: Option<Vec<String>>,
    /// The command.
    pub cmd: Option<Vec<String>>,
    /// The health check, left out when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// The image as the user named it.
    pub image: String,
    /// Anonymous volumes (`"/data": {}`).
    pub volumes: Option<BTreeMap<String, Empty>>,
    /// The working directory.
    pub working_dir: String,
    /// The entrypoint.
    pub entrypoint: Option<Vec<String>>,
    /// Build triggers (never set by this engine).
    pub on_build: Option<Vec<String>>,
    /// Labels (`{}` when none).
    pub labels: BTreeMap<String, String>,
    /// The signal `stop` sends, left out when it is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// docker's `{}` (the values of `ExposedPorts` and `Volumes`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// docker's `NetworkSettings` (API 1.41): the sandbox, the published ports, the address on
/// the default bridge network, and one endpoint per network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkSettings {
    /// The bridge device (docker writes `""` for its default network too).
    #[serde(rename = "Bridge")]
    pub bridge: String,
    /// The sandbox (network namespace) id; `""` while not running.
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    /// Hairpin NAT (never on here).
    #[serde(rename = "HairpinMode")]
    pub hairpin_mode: bool,
    /// IPv6 link-local address (none here).
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    /// Its prefix length.
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: i64,
    /// `"80/tcp"` → the host addresses it is published on, or `null` when it is only
    /// exposed; `{}` while not running.
    #[serde(rename = "Ports")]
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    /// The network namespace's path; `""` while not running.
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    /// Secondary IPv4 addresses (none here).
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<String>>,
    /// Secondary IPv6 addresses (none here).
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<String>>,
    /// The endpoint on the default bridge network.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The default bridge network's gateway.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// Global IPv6 address on the default bridge network (none here).
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// Its prefix length.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    /// The address on the default bridge network (`""` on other networks, as docker).
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Its prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    /// The IPv6 gateway (none here).
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// The interface's hardware address on the default bridge network.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    /// Network name → the container's endpoint on it. Kept with empty addresses while
    /// the container is not running, as docker does.
    #[serde(rename = "Networks")]
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// docker's `EndpointSettings` (API 1.41 field order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EndpointSettings {
    /// Static addresses asked for (none here).
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<serde_json::Value>,
    /// Legacy links (none here).
    #[serde(rename = "Links")]
    pub links: Option<Vec<String>>,
    /// Other names peers reach the container by (user-defined networks only).
    #[serde(rename = "Aliases")]
    pub aliases: Option<Vec<String>>,
    /// The network's id.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint's id; `""` while not running.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The network's gateway.
    #[serde(rename = "Gateway")]
    pub gateway: String,
    /// The container's address.
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    /// Its prefix length.
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    /// The IPv6 gateway (none here).
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    /// Global IPv6 address (none here).
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    /// Its prefix length.
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    /// The interface's hardware address.
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
    /// Driver options (none here).
    #[serde(rename = "DriverOpts")]
    pub driver_opts: Option<HashMap<String, String>>,
}

impl Engine {
    /// docker's document for container `query` (`docker inspect`, `GET /containers/{id}/json`).
    pub fn inspect(&self, query: &str) -> Result<ContainerDocument> {
        let c = self.container(query)?;
        self.describe(&c)
    }

    fn describe(&self, c: &Container) -> Result<ContainerDocument> {
        let status = self.status(c);
        let record = &c.record;
        let spec: Option<basic_runtime::Spec> = basic_runtime::Spec::load(c.paths.spec()).ok();
        let (path, args) = c
            .config
            .command
            .split_first()
            .map(|(p, a)| (p.clone(), a.to_vec()))
            .unwrap_or_default();
        let mut host = c.config.host();
        host.network_mode = Some(c.config.network_mode());
        host.restart_policy = Some(restart_policy(&c.config));
        // The only log driver: docker shows it, and its options, always (clients read it
        // to know whether logs can be read back).
        let mut log_config = host.log_config.take().unwrap_or_default();
        if log_config.typ.as_deref().is_none_or(str::is_empty) {
            log_config.typ = Some("json-file".into());
        }
        log_config.config.get_or_insert_with(Default::default);
        host.log_config = Some(log_config);
        let (resolv_conf, hostname_file, hosts) = self.etc_paths(c);
        let base = ContainerInspectResponse {
            id: Some(record.id.clone()),
            created: Some(rfc3339(Some(record.created))),
            path: Some(path),
            args: Some(args),
            state: Some(state(c, status)),
            image: Some(record.image_id.clone()),
            resolv_conf_path: Some(resolv_conf),
            hostname_path: Some(hostname_file),
            hosts_path: Some(hosts),
            log_path: Some(c.paths.log().display().to_string()),
            name: Some(format!("/{}", record.name)),
            restart_count: Some(i64::from(record.restart_count)),
            driver: Some(host::snapshotter_kind(&self.paths).to_string()),
            platform: Some("linux".into()),
            // No SELinux or AppArmor here: docker writes them empty.
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            host_config: Some(host),
            mounts: Some(mounts(c)),
            graph_driver: Some(DriverData {
                name: host::snapshotter_kind(&self.paths).to_string(),
                data: HashMap::from([(
                    "MergedDir".to_string(),
                    c.paths.rootfs.display().to_string(),
                )]),
            }),
            ..Default::default()
        };
        // Looking must not make anything: on a read-only store without networks (never
        // used, `--network none`), opening them would create their directory.
        let networks = match network::networks(&self.paths) {
            Ok(networks) => Some(networks),
            Err(e) if self.store.read_only().is_some() => {
                tracing::debug!("networks unreadable on a read-only store: {e}");
                None
            }
            Err(e) => return Err(e),
        };
        // Only a live container has an attachment that means anything: a killed
        // supervisor's record is stale until the next start or removal detaches it.
        let attachment = match &networks {
            Some(networks) if status.is_up() => networks.attachment(c.id())?,
            _ => None,
        };
        Ok(ContainerDocument {
            base,
            exec_ids: None,
            config: inspect_config(c, spec.as_ref()),
            network_settings: network_settings(c, status, networks.as_ref(), attachment.as_ref()),
        })
    }

    /// `ResolvConfPath`, `HostnamePath`, `HostsPath`: the files the container's `/etc`
    /// binds, `""` when it has none of its own (`--network none` keeps the image's).
    fn etc_paths(&self, c: &Container) -> (String, String, String) {
        let dir = match Mode::parse(&c.config.network_mode()) {
            Mode::None => None,
            Mode::Host | Mode::Network(_) => Some(c.paths.etc()),
            Mode::Container(target) => self.container(&target).ok().map(|other| other.paths.etc()),
        };
        let file = |name: &str| {
            dir.as_ref()
                .map(|d| d.join(name).display().to_string())
                .unwrap_or_default()
        };
        (file("resolv.conf"), file("hostname"), file("hosts"))
    }
}

fn inspect_config(c: &Container, spec: Option<&basic_runtime::Spec>) -> InspectConfig {
    let config = &c.config.config;
    let process = spec.and_then(|s| s.process().as_ref());
    let volumes = config
        .volumes
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| v.iter().map(|i| (i.clone(), Empty {})).collect());
    InspectConfig {
        hostname: spec.and_then(|s| s.hostname().clone()).unwrap_or_default(),
        domainname: config.domainname.clone().unwrap_or_default(),
        user: config.user.clone().unwrap_or_default(),
        attach_stdin: config.attach_stdin.unwrap_or(false),
        attach_stdout: config.attach_stdout.unwrap_or(false),
        attach_stderr: config.attach_stderr.unwrap_or(false),
        exposed_ports: Some(exposed_ports(c)).filter(|p| !p.is_empty()),
        tty: c.config.tty(),
        open_stdin: c.config.interactive(),
        stdin_once: config.stdin_once.unwrap_or(false),
        env: process.and_then(|p| p.env().clone()),
        cmd: config.cmd.clone(),
        healthcheck: config.healthcheck.clone(),
        image: c.record.image.clone(),
        volumes,
        // docker shows the working directory asked for (by the config or the image),
        // `""` when none was.
        working_dir: config.working_dir.clone().unwrap_or_else(|| {
            process
                .map(|p| p.cwd().display().to_string())
                .filter(|cwd| cwd != "/")
                .unwrap_or_default()
        }),
        entrypoint: config.entrypoint.clone(),
        on_build: None,
        labels: config
            .labels
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        stop_signal: Some(c.config.stop_signal.clone()).filter(|s| s != "SIGTERM"),
    }
}

/// The ports the image and the config expose, and (as docker adds them) the ones `-p`
/// publishes.
fn exposed_ports(c: &Container) -> BTreeMap<String, Empty> {
    let mut ports: BTreeMap<String, Empty> = c
        .config
        .exposed_ports
        .iter()
        .map(|p| (p.clone(), Empty {}))
        .collect();
    for published in c.config.host().port_bindings.unwrap_or_default().keys() {
        ports.insert(published.clone(), Empty {});
    }
    ports
}

/// docker's `NetworkSettings`: from the attachment while the container runs; the
/// networks it would join, with empty addresses, while it does not.
fn network_settings(
    c: &Container,
    status: Status,
    networks: Option<&Networks>,
    attachment: Option<&Attachment>,
) -> NetworkSettings {
    let mode = Mode::parse(&c.config.network_mode());
    let mut settings = NetworkSettings::default();
    let Some(att) = attachment else {
        // Not running (or not attached): docker keeps the networks, without addresses.
        let name = match &mode {
            Mode::None => Some("none".to_string()),
            Mode::Host => Some("host".to_string()),
            Mode::Network(name) => Some(name.clone()),
            Mode::Container(_) => None,
        };
        if let Some(name) = name {
            // Once it has run, docker remembers the network's id.
            let network_id = if c.record.started.is_some() {
                networks.map(|n| network_id(n, &name)).unwrap_or_default()
            } else {
                String::new()
            };
            let mut endpoint = EndpointSettings {
                network_id,
                ..EndpointSettings::default()
            };
            if status.is_up() && matches!(mode, Mode::None | Mode::Host) {
                endpoint.endpoint_id = endpoint_id(c.id(), &endpoint.network_id);
            }
            settings.networks.insert(name, endpoint);
        }
        if status.is_up() && mode == Mode::Host {
            // The host's own namespace, which docker names `default`.
            settings.sandbox_key = "/proc/1/ns/net".to_string();
        }
        return settings;
    };
    settings.sandbox_id = att
        .netns
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    settings.sandbox_key = att.netns.display().to_string();
    settings.ports = ports(c, att);
    for net in &att.networks {
        let endpoint = endpoint(c.id(), net, att);
        // docker fills the top-level (legacy) fields for its default network only.
        if !net.user_defined {
            settings.endpoint_id = endpoint.endpoint_id.clone();
            settings.gateway = endpoint.gateway.clone();
            settings.ip_address = endpoint.ip_address.clone();
            settings.ip_prefix_len = endpoint.ip_prefix_len;
            settings.mac_address = endpoint.mac_address.clone();
        }
        settings.networks.insert(net.network.clone(), endpoint);
    }
    settings
}

fn endpoint(container_id: &str, net: &NetworkAttachment, att: &Attachment) -> EndpointSettings {
    // Peers on a user-defined network also reach the container by its short id, and
    // docker lists that among the aliases; the default network has no aliases.
    let aliases = net.user_defined.then(|| {
        let mut aliases = att.aliases.clone();
        aliases.push(basic_image_store::short_id(container_id).to_string());
        aliases
    });
    EndpointSettings {
        aliases,
        network_id: net.network_id.clone(),
        endpoint_id: endpoint_id(container_id, &net.network_id),
        gateway: net.gateway.map(|g| g.to_string()).unwrap_or_default(),
        ip_address: net.ip().map(|ip| ip.to_string()).unwrap_or_default(),
        ip_prefix_len: net.address.map_or(0, |a| i64::from(a.prefix_len())),
        mac_address: net.mac.clone().unwrap_or_default(),
        ..EndpointSettings::default()
    }
}

/// An endpoint has no identity of its own here (CNI keeps none): its id is derived from
/// the container and the network, so that it is stable while the container runs and
/// differs between containers, as docker's does.
fn endpoint_id(container_id: &str, network_id: &str) -> String {
    hex::encode(Sha256::digest(format!("{container_id}/{network_id}")))
}

/// A network's id by name (docker's built-in `host` and `none` have ids derived from
/// their names, as `network ls` shows them); `""` when it is gone.
fn network_id(networks: &Networks, name: &str) -> String {
    match name {
        "host" | "none" => basic_network::store::name_id(name),
        _ => networks.inspect(name).map(|n| n.id).unwrap_or_default(),
    }
}

/// `"80/tcp"` → where it is published; exposed but unpublished ports map to `null`.
fn ports(c: &Container, att: &Attachment) -> BTreeMap<String, Option<Vec<PortBinding>>> {
    let mut ports: BTreeMap<String, Option<Vec<PortBinding>>> =
        exposed_ports(c).into_keys().map(|p| (p, None)).collect();
    for mapping in &att.ports {
        let key = format!("{}/{}", mapping.container_port, mapping.protocol);
        let host_ip = mapping
            .host_ip
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
            .to_string();
        ports
            .entry(key)
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(host_ip),
                host_port: Some(mapping.host_port.to_string()),
            });
    }
    ports
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
        // docker's zero time ("0001-01-01T00:00:00Z") when never started or never ended.
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
