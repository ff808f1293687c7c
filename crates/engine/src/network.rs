//! A container's network, as `NetworkMode`, `PortBindings`, `PublishAllPorts` and `Dns`
//! ask, over basic-network.
//!
//! At create the spec is pointed at what each start will make: the named network
//! namespace `<netns dir>/<id>` and the `hosts`, `hostname` and `resolv.conf` files in
//! `<container dir>/etc`. Each start attaches (CNI `ADD`, which makes both); the final
//! exit and removal detach (CNI `DEL` from the cached result, so it also works after the
//! supervisor was killed).
//!
//! In rootless mode the default network is pasta's user-mode networking instead (started
//! on the namespace at each start, its process recorded and stopped at detach); `none`
//! and `host` are as root's; user-defined networks are refused.

use std::path::{Path, PathBuf};

use basic_image_store::ImageStore;
use basic_network::{
    AttachRequest, DnsOptions, EtcFiles, Networks, NetworksConfig, PendingAttachment,
};
use basic_runtime::Spec;
use oci_spec::runtime::{LinuxNamespaceType, MountBuilder};

use crate::config::StoredConfig;
use crate::error::{EngineError, Result};
use crate::paths::{ContainerPaths, EnginePaths};

/// What `NetworkMode` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A private namespace with loopback only.
    None,
    /// The host's namespace.
    Host,
    /// A bridge network, by name (`bridge` is the default one).
    Network(String),
    /// Another container's namespace.
    Container(String),
}

impl Mode {
    /// Parses docker's `NetworkMode` values.
    pub fn parse(text: &str) -> Self {
        match text {
            "none" => Mode::None,
            "host" => Mode::Host,
            "" | "default" | "bridge" => Mode::Network("bridge".to_string()),
            other => match other.strip_prefix("container:") {
                Some(target) => Mode::Container(target.to_string()),
                None => Mode::Network(other.to_string()),
            },
        }
    }

    /// Whether a start attaches the container to a network (and its end detaches it).
    pub fn attaches(&self) -> bool {
        matches!(self, Mode::Network(_))
    }
}

/// The engine's network configuration: networks under the store, namespaces under the
/// run-time state directory (`<state>/netns`). In rootless mode (this process runs in a
/// user namespace of its own) the default network is pasta's user-mode networking and
/// no namespace is prepared ahead (the pool's are CNI bridge attachments).
pub fn config(paths: &EnginePaths) -> NetworksConfig {
    let mut config = NetworksConfig::new(&paths.root);
    config.netns_dir = paths.state.join("netns");
    config.rootless = basic_runtime::rootless::active();
    config.pool_size = if config.rootless { 0 } else { pool_size() };
    config
}

/// Refuses network `name` in rootless mode unless it is the default one: user-defined
/// networks are bridges on the host.
pub(crate) fn refuse_in_rootless(name: &str) -> Result<()> {
    if basic_runtime::rootless::active() && !matches!(name, "bridge" | "default" | "") {
        return Err(basic_network::Error::Rootless(name.to_string()).into());
    }
    Ok(())
}

/// The environment variable that sets how many prepared network namespaces the engine
/// keeps per network (0 keeps none).
pub const POOL_SIZE_ENV: &str = "BASIC_DOCKER_NETNS_POOL";

/// Prepared namespaces per network: [`POOL_SIZE_ENV`], else 2 — enough for a `run --rm`
/// loop to find one ready while the last one's teardown makes the next (see
/// basic-network's `pool` module and docs/performance.md).
fn pool_size() -> usize {
    std::env::var(POOL_SIZE_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(2)
        .min(64)
}

/// The engine's networks.
pub fn networks(paths: &EnginePaths) -> Result<Networks> {
    Ok(Networks::open(config(paths))?)
}

/// Checks the network settings before anything is created; returns docker's warnings.
pub(crate) fn check(paths: &EnginePaths, stored: &StoredConfig) -> Result<Vec<String>> {
    let mode = Mode::parse(&stored.network_mode());
    let publishes = !stored.published_ports()?.is_empty();
    for server in stored.dns() {
        server.parse::<std::net::IpAddr>().map_err(|_| {
            EngineError::InvalidArgument(format!(
                "invalid --dns {server:?}: expected an IP address"
            ))
        })?;
    }
    let mut warnings = Vec::new();
    match &mode {
        Mode::Network(name) => {
            if config(paths).rootless {
                // Refused now rather than at every start: pasta would listen as the user.
                use basic_network::pasta;
                pasta::check_port_specs(
                    &stored.published_ports()?,
                    pasta::unprivileged_port_start(),
                    pasta::privileged_on_host(),
                )?;
            }
            let (named, _) = endpoints(stored, name);
            for name in named.iter().filter(|n| *n != "bridge") {
                refuse_in_rootless(name)?;
                networks(paths)?
                    .inspect(name)
                    .map_err(|_| EngineError::NotFound(format!("network {name} not found")))?;
            }
        }
        Mode::None | Mode::Host | Mode::Container(_) if publishes => {
            warnings.push(
                "Published ports are discarded when using host, none or container network mode"
                    .to_string(),
            );
        }
        _ => {}
    }
    Ok(warnings)
}

/// Points the spec's network namespace and `/etc` files at what a start makes (or, for
/// `host`, writes the host's files now).
pub(crate) fn configure_spec(
    paths: &EnginePaths,
    store: &ImageStore,
    spec: &mut Spec,
    mode: &Mode,
    container: &ContainerPaths,
    hostname: &str,
) -> Result<()> {
    let etc_dir = container.etc();
    match mode {
        Mode::None => Ok(()),
        Mode::Host => {
            let files = basic_network::host_network_files(&etc_dir, hostname)?;
            add_etc_mounts(spec, &files)
        }
        Mode::Network(_) => {
            let netns = config(paths).netns_dir.join(container.id());
            set_netns(spec, &netns);
            add_etc_mounts(spec, &EtcFiles::in_dir(&etc_dir))
        }
        Mode::Container(target) => {
            let other = store.container(target)?;
            let Some(pid) = crate::status::live_init(paths, &other.id) else {
                return Err(EngineError::Conflict(format!(
                    "cannot join the network of a non running container: {target}"
                )));
            };
            let netns = match networks(paths)?.attachment(&other.id)? {
                Some(att) => att.netns,
                None => PathBuf::from(format!("/proc/{pid}/ns/net")),
            };
            set_netns(spec, &netns);
            let other_etc = paths.container(&other.id).etc();
            if other_etc.join("hosts").exists() {
                add_etc_mounts(spec, &EtcFiles::in_dir(&other_etc))?;
            }
            Ok(())
        }
    }
}

fn set_netns(spec: &mut Spec, netns: &Path) {
    if let Some(namespaces) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    {
        for ns in namespaces
            .iter_mut()
            .filter(|n| n.typ() == LinuxNamespaceType::Network)
        {
            ns.set_path(Some(netns.to_path_buf()));
        }
    }
}

fn add_etc_mounts(spec: &mut Spec, files: &EtcFiles) -> Result<()> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for (destination, source) in files.mounts() {
        mounts.retain(|m| m.destination() != Path::new(destination));
        mounts.push(
            MountBuilder::default()
                .destination(destination)
                .typ("bind")
                .source(source)
                .options(vec!["rbind".to_string(), "rprivate".to_string()])
                .build()?,
        );
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

/// Attaches the container before a start (bridge networks only); returns the attachment,
/// or `None` for the other modes. Its namespace, record and `/etc` files exist; what
/// configures the namespace may still be running (rootless mode's pasta): the caller
/// finishes the attachment before the container's command runs
/// ([`PendingAttachment::finish`]). The network's warnings are logged.
pub(crate) fn attach(
    paths: &EnginePaths,
    id: &str,
    name: &str,
    hostname: &str,
    stored: &StoredConfig,
) -> Result<Option<PendingAttachment>> {
    let Mode::Network(network) = Mode::parse(&stored.network_mode()) else {
        return Ok(None);
    };
    let networks = networks(paths)?;
    // A supervisor killed mid-run left its attachment: start from clean.
    networks.detach(id)?;
    let mut request = AttachRequest::new(id);
    request.name = Some(name.to_string());
    request.hostname = hostname.to_string();
    let (networks_named, aliases) = endpoints(stored, &network);
    request.networks = networks_named;
    request.aliases = aliases;
    request.ports = stored.published_ports()?;
    request.dns = DnsOptions {
        servers: stored
            .dns()
            .iter()
            .map(|s| {
                s.parse()
                    .map_err(|_| EngineError::InvalidArgument(format!("invalid --dns {s:?}")))
            })
            .collect::<Result<_>>()?,
        ..DnsOptions::default()
    };
    request.etc_dir = Some(paths.container(id).etc());
    request.background_detach = stored.auto_remove();
    let pending = networks.attach_pending(&request)?;
    for warning in &pending.attachment().warnings {
        tracing::warn!("{warning}");
    }
    Ok(Some(pending))
}

/// The networks a start attaches to (`NetworkMode`'s first, then the other networks of
/// `NetworkingConfig.EndpointsConfig`, as a create with several networks asks) and the
/// aliases peers reach the container by on them (docker-compose's service names).
fn endpoints(stored: &StoredConfig, mode_network: &str) -> (Vec<String>, Vec<String>) {
    let mut networks = vec![mode_network.to_string()];
    let mut aliases: Vec<String> = Vec::new();
    let configured = stored
        .config
        .networking_config
        .as_ref()
        .and_then(|n| n.endpoints_config.as_ref());
    let mut names: Vec<&String> = configured.map(|c| c.keys().collect()).unwrap_or_default();
    names.sort();
    for name in names {
        let endpoint = &configured.expect("names come from it")[name];
        let Mode::Network(named) = Mode::parse(name) else {
            continue;
        };
        if !networks.contains(&named) {
            networks.push(named);
        }
        for alias in endpoint.aliases.iter().flatten() {
            if !aliases.contains(alias) {
                aliases.push(alias.clone());
            }
        }
    }
    (networks, aliases)
}

/// Detaches a container of a bridge network (`NetworkMode` as recorded; the other modes
/// attach nothing). A failure is logged: the rest of a teardown must still happen, and a
/// later removal detaches again.
pub(crate) fn detach(paths: &EnginePaths, id: &str, network_mode: &str) {
    if !Mode::parse(network_mode).attaches() {
        return;
    }
    if let Err(e) = networks(paths).and_then(|n| Ok(n.detach(id)?)) {
        tracing::warn!(
            "detaching {} from its network: {e}",
            basic_image_store::short_id(id)
        );
    }
}

/// Detaches container `id` from whatever network record or namespace it left, whatever
/// its `NetworkMode` (a removed container has none any more). A failure is logged.
pub(crate) fn detach_any(paths: &EnginePaths, id: &str) {
    if is_attached(paths, id) {
        detach(paths, id, "bridge");
    }
}

/// Whether container `id` has a network record or a namespace of the engine's.
pub(crate) fn is_attached(paths: &EnginePaths, id: &str) -> bool {
    let recorded = has_networks(paths)
        && networks(paths).is_ok_and(|n| n.attachment(id).is_ok_and(|a| a.is_some()));
    recorded || config(paths).netns_dir.join(id).exists()
}

/// Whether this store has network records at all (opening them would make the directory).
fn has_networks(paths: &EnginePaths) -> bool {
    config(paths).dir.exists()
}

/// The containers this store's networks have records of.
/// Whether a background process is tearing container `id`'s attachment down (a `--rm`
/// container's, after its exit).
pub(crate) fn teardown_in_flight(paths: &EnginePaths, id: &str) -> bool {
    has_networks(paths) && networks(paths).is_ok_and(|n| n.teardown_in_flight(id))
}

pub(crate) fn attached_ids(paths: &EnginePaths) -> Vec<String> {
    if !has_networks(paths) {
        return Vec::new();
    }
    networks(paths)
        .and_then(|n| Ok(n.attachments()?))
        .map(|all| all.into_iter().map(|a| a.container_id).collect())
        .unwrap_or_default()
}
