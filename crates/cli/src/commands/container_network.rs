//! A container's network, as `--network`, `-p`, `-P` and `--dns` ask, over
//! basic-network.
//!
//! At create the spec is pointed at what each start will make: the named
//! network namespace `/run/basic-docker/netns/<id>` and the `hosts`,
//! `hostname` and `resolv.conf` files in `<container dir>/etc`. Each start
//! attaches (CNI `ADD`, which makes both); the final exit, `rm` and `rm -f`
//! detach (CNI `DEL` from the cached result, so it also works after the
//! supervisor was killed).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use basic_image_store::ImageStore;
use basic_network::{
    AttachRequest, Attachment, DnsOptions, EtcFiles, Networks, NetworksConfig, PortSpec,
};
use basic_runtime::Spec;
use oci_spec::runtime::{LinuxNamespaceType, MountBuilder};

use super::create::Settings;
use super::live::{self, Paths};

/// What `--network` asked for.
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
    /// Parses docker's `--network` values.
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
}

/// The engine's networks under `root`.
pub fn networks(root: &Path) -> anyhow::Result<Networks> {
    Networks::open(NetworksConfig::new(root)).context("opening the network configuration")
}

/// Checks the flags (before anything is created) and returns the parsed ports.
pub fn check_flags(
    root: &Path,
    mode: &Mode,
    publish: &[String],
    dns: &[String],
) -> anyhow::Result<()> {
    for p in publish {
        PortSpec::parse(p)?;
    }
    for server in dns {
        server
            .parse::<std::net::IpAddr>()
            .with_context(|| format!("invalid --dns {server:?}: expected an IP address"))?;
    }
    let publishes = !publish.is_empty();
    match mode {
        Mode::Network(name) if name != "bridge" => {
            networks(root)?
                .inspect(name)
                .with_context(|| format!("network {name} not found"))?;
        }
        Mode::None | Mode::Host | Mode::Container(_) if publishes => {
            eprintln!(
                "WARNING: Published ports are discarded when using host, none or container network mode"
            );
        }
        _ => {}
    }
    Ok(())
}

/// Points the spec's network namespace and `/etc` files at what a start makes
/// (or, for `host`, writes the host's files now).
pub fn configure_spec(
    root: &Path,
    store: &ImageStore,
    spec: &mut Spec,
    mode: &Mode,
    paths: &Paths,
    hostname: &str,
) -> anyhow::Result<()> {
    let etc_dir = etc_dir(paths);
    match mode {
        Mode::None => Ok(()),
        Mode::Host => {
            let files = basic_network::host_network_files(&etc_dir, hostname)?;
            add_etc_mounts(spec, &files)
        }
        Mode::Network(_) => {
            let netns = Path::new(basic_network::DEFAULT_NETNS_DIR).join(
                paths
                    .dir
                    .file_name()
                    .context("container directory without a name")?,
            );
            set_netns(spec, &netns);
            add_etc_mounts(spec, &EtcFiles::in_dir(&etc_dir))
        }
        Mode::Container(target) => {
            let other = store.container(target)?;
            let other_paths = Paths::new(root, &other.id);
            let Some(pid) = live::live_init(&other_paths) else {
                bail!("cannot join the network of a non running container: {target}");
            };
            let netns = match networks(root)?.attachment(&other.id)? {
                Some(att) => att.netns,
                None => PathBuf::from(format!("/proc/{pid}/ns/net")),
            };
            set_netns(spec, &netns);
            let other_etc = etc_dir_of(&other_paths);
            if other_etc.join("hosts").exists() {
                add_etc_mounts(spec, &EtcFiles::in_dir(&other_etc))?;
            }
            Ok(())
        }
    }
}

fn etc_dir(paths: &Paths) -> PathBuf {
    etc_dir_of(paths)
}

fn etc_dir_of(paths: &Paths) -> PathBuf {
    paths.dir.join("etc")
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

fn add_etc_mounts(spec: &mut Spec, files: &EtcFiles) -> anyhow::Result<()> {
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

/// Attaches the container before a start (bridge networks only); returns the
/// attachment, or `None` for the other modes.
pub fn attach(
    root: &Path,
    id: &str,
    name: &str,
    hostname: &str,
    settings: &Settings,
) -> anyhow::Result<Option<Attachment>> {
    let Mode::Network(network) = Mode::parse(&settings.network) else {
        return Ok(None);
    };
    let networks = networks(root)?;
    // A supervisor killed mid-run left its attachment: start from clean.
    networks.detach(id)?;
    let mut request = AttachRequest::new(id);
    request.name = Some(name.to_string());
    request.hostname = hostname.to_string();
    request.networks = vec![network];
    for p in &settings.publish {
        request.ports.extend(PortSpec::parse(p)?);
    }
    if settings.publish_all {
        for exposed in &settings.exposed {
            request.ports.push(PortSpec::exposed(exposed)?);
        }
    }
    request.dns = DnsOptions {
        servers: settings
            .dns
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .context("--dns")?,
        ..DnsOptions::default()
    };
    request.etc_dir = Some(etc_dir(&Paths::new(root, id)));
    request.background_detach = settings.auto_remove;
    let attachment = networks.attach(&request)?;
    for warning in &attachment.warnings {
        eprintln!("WARNING: {warning}");
    }
    Ok(Some(attachment))
}

/// Detaches a container of a bridge network (`--network` as recorded; the
/// other modes attach nothing) from it. A failure is a warning: the rest of a
/// teardown must still happen, and a later `rm` detaches again.
pub fn detach(root: &Path, id: &str, network: &str) {
    if !matches!(Mode::parse(network), Mode::Network(_)) {
        return;
    }
    if let Err(e) = networks(root).and_then(|n| Ok(n.detach(id)?)) {
        eprintln!(
            "Warning: detaching {} from its network: {e:#}",
            basic_image_store::short_id(id)
        );
    }
}

/// docker's PORTS column: `0.0.0.0:8080->80/tcp`, empty when none.
pub fn ports_display(networks: &Networks, id: &str) -> String {
    match networks.attachment(id) {
        Ok(Some(att)) => att.ports_display(),
        _ => String::new(),
    }
}
