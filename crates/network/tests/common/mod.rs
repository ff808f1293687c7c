//! What the live tests share: a test's own store, networks and bridges
//! (removed in `Drop`, failure or not), commands run inside a namespace, and
//! a probe for everything an attachment could leave on the host.

#![allow(dead_code)] // Each test binary uses its own part.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use basic_network::{
    AttachRequest, Attachment, CreateOptions, DefaultNetwork, Error, Networks, NetworksConfig,
    PortSpec,
};
use basic_test_support::bounded::output_within;

pub const NETNS_DIR: &str = "/run/basic-network-test/netns";

/// One test's networks; removes its attachments, networks and bridges when dropped.
pub struct Env {
    pub networks: Networks,
    pub tag: String,
    pub root: tempfile::TempDir,
}

impl Env {
    /// `n` picks this test's default network: bridge `bnt<n>`, subnet 10.213.<n>.0/24.
    pub fn new(tag: &str, n: u8) -> Option<Env> {
        Env::with_pool(tag, n, 0)
    }

    /// Like [`Env::new`], keeping `pool_size` prepared namespaces per network.
    pub fn with_pool(tag: &str, n: u8, pool_size: usize) -> Option<Env> {
        if !basic_test_support::require_root() {
            return None;
        }
        let plugins = Path::new("/usr/lib/cni/bridge").exists();
        if !basic_test_support::prerequisite(plugins, "containernetworking-plugins") {
            return None;
        }
        let root = tempfile::tempdir().unwrap();
        let mut config = NetworksConfig::new(root.path());
        config.netns_dir = NETNS_DIR.into();
        config.plugin_dirs = vec!["/usr/lib/cni".into()];
        config.default_network = DefaultNetwork {
            name: "bridge".into(),
            bridge: format!("bnt{n}"),
            subnet: format!("10.213.{n}.0/24").parse().unwrap(),
            gateway: format!("10.213.{n}.1").parse().unwrap(),
        };
        config.pool_size = pool_size;
        let networks = Networks::open(config).unwrap();
        let tag = format!("{tag}-{}", std::process::id());
        Some(Env {
            networks,
            tag,
            root,
        })
    }

    pub fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    pub fn create(&self, name: &str, subnet: &str) -> String {
        let name = self.id(name);
        let opts = CreateOptions {
            name: name.clone(),
            subnet: Some(subnet.parse().unwrap()),
            gateway: None,
            ..Default::default()
        };
        self.networks.create(&opts).unwrap();
        name
    }

    pub fn attach(&self, name: &str, networks: &[&str], ports: &[&str]) -> Attachment {
        self.networks
            .attach(&self.request(name, networks, ports))
            .unwrap()
    }

    /// The request `attach` makes, for tests that change it.
    pub fn request(&self, name: &str, networks: &[&str], ports: &[&str]) -> AttachRequest {
        let id = self.id(name);
        let mut req = AttachRequest::new(&id);
        req.name = Some(name.to_string());
        req.networks = networks.iter().map(|n| n.to_string()).collect();
        req.ports = ports
            .iter()
            .flat_map(|p| PortSpec::parse(p).unwrap())
            .collect();
        req.etc_dir = Some(self.root.path().join("etc").join(&id));
        req
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Err(e) = self.networks.drain_pool(None) {
            eprintln!("cleanup: {e}");
        }
        for att in self.networks.attachments().unwrap_or_default() {
            let _ = self.networks.detach(&att.container_id);
        }
        for info in self.networks.list().unwrap_or_default() {
            match self.networks.remove(&info.name) {
                Ok(_) | Err(Error::Predefined(..)) => {}
                Err(e) => eprintln!("cleanup: {e}"),
            }
        }
        let _ = basic_network::delete_bridge(&self.networks.config().default_network.bridge);
    }
}

pub fn in_netns(netns: &Path, command: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).args(command);
    cmd
}

pub fn ping(from: &Attachment, to: &str) -> bool {
    succeeds(in_netns(
        &from.netns,
        &["busybox", "ping", "-c1", "-W1", to],
    ))
}

/// Pings a name as the container resolves it: its hosts file mounted on /etc/hosts.
pub fn ping_by_name(from: &Attachment, name: &str) -> bool {
    let hosts = from.etc_files().unwrap().hosts;
    let script = format!(
        "mount --bind {} /etc/hosts && busybox ping -c1 -W1 {name}",
        hosts.display()
    );
    succeeds(in_netns(
        &from.netns,
        &["unshare", "-m", "sh", "-c", &script],
    ))
}

/// How long a tool of these tests (ip, iptables-save, curl, ping, a helper) may take.
pub const TOOL_LIMIT: Duration = Duration::from_secs(60);

/// Whether `command` succeeds, waited for at most [`TOOL_LIMIT`].
pub fn succeeds(mut command: Command) -> bool {
    let what = format!("{:?}", command.get_program());
    output_within(&mut command, TOOL_LIMIT, &what)
        .status
        .success()
}

pub fn ip_of(att: &Attachment) -> String {
    att.ip().unwrap().to_string()
}

pub fn output(program: &str, args: &[&str]) -> String {
    let out = output_within(
        Command::new(program).args(args),
        TOOL_LIMIT,
        &format!("{program} {args:?}"),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything on the host that could still name a container after its detach.
pub fn leftovers(att: &Attachment, ipam_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let links = output("ip", &["-o", "link"]);
    let rules = output("iptables-save", &[]);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for net in &att.networks {
        if let Some(veth) = net
            .host_interface
            .as_ref()
            .filter(|v| links.contains(&format!(" {v}@")))
        {
            found.push(format!("link {veth}"));
        }
        if let Some(ip) = net.ip() {
            if rules.contains(&format!("{ip}/32")) || rules.contains(&format!("{ip}:")) {
                found.push(format!("iptables rule naming {ip}"));
            }
            if ipam_dir.join(&net.network).join(ip.to_string()).exists() {
                found.push(format!("host-local allocation of {ip}"));
            }
        }
    }
    if rules.contains(&att.container_id) {
        found.push(format!("iptables rule naming {}", att.container_id));
    }
    if mounts.contains(&att.netns.display().to_string()) {
        found.push(format!("mount {}", att.netns.display()));
    }
    if att.netns.exists() {
        found.push(format!("file {}", att.netns.display()));
    }
    found
}

pub fn ipam_dir(env: &Env) -> PathBuf {
    env.networks.config().dir.join("ipam")
}
