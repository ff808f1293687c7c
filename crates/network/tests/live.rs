//! Real plugins, real namespaces, real traffic — only between namespaces these
//! tests make and to 127.0.0.1. Each test has its own store, its own networks
//! (own bridges and subnets in 10.213.0.0/16) and container IDs, and removes
//! them in `Drop`, failure or not.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use basic_network::{
    AttachRequest, Attachment, CreateOptions, DefaultNetwork, Error, Networks, NetworksConfig,
    PortSpec,
};

const NETNS_DIR: &str = "/run/basic-network-test/netns";

/// One test's networks; removes its attachments, networks and bridges when dropped.
struct Env {
    networks: Networks,
    tag: String,
    _root: tempfile::TempDir,
}

impl Env {
    /// `n` picks this test's default network: bridge `bnt<n>`, subnet 10.213.<n>.0/24.
    fn new(tag: &str, n: u8) -> Option<Env> {
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
        let networks = Networks::open(config).unwrap();
        let tag = format!("{tag}-{}", std::process::id());
        Some(Env {
            networks,
            tag,
            _root: root,
        })
    }

    fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    fn create(&self, name: &str, subnet: &str) -> String {
        let name = self.id(name);
        let opts = CreateOptions {
            name: name.clone(),
            subnet: Some(subnet.parse().unwrap()),
            gateway: None,
        };
        self.networks.create(&opts).unwrap();
        name
    }

    fn attach(&self, name: &str, networks: &[&str], ports: &[&str]) -> Attachment {
        let id = self.id(name);
        let mut req = AttachRequest::new(&id);
        req.name = Some(name.to_string());
        req.networks = networks.iter().map(|n| n.to_string()).collect();
        req.ports = ports
            .iter()
            .flat_map(|p| PortSpec::parse(p).unwrap())
            .collect();
        req.etc_dir = Some(self._root.path().join("etc").join(&id));
        self.networks.attach(&req).unwrap()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
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

fn in_netns(netns: &Path, command: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).args(command);
    cmd
}

fn ping(from: &Attachment, to: &str) -> bool {
    in_netns(&from.netns, &["busybox", "ping", "-c1", "-W1", to])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// Pings a name as the container resolves it: its hosts file mounted on /etc/hosts.
fn ping_by_name(from: &Attachment, name: &str) -> bool {
    let hosts = from.etc_files().unwrap().hosts;
    let script = format!(
        "mount --bind {} /etc/hosts && busybox ping -c1 -W1 {name}",
        hosts.display()
    );
    in_netns(&from.netns, &["unshare", "-m", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

fn ip_of(att: &Attachment) -> String {
    att.ip().unwrap().to_string()
}

fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Everything on the host that could still name a container after its detach.
fn leftovers(att: &Attachment, ipam_dir: &Path) -> Vec<String> {
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

fn ipam_dir(env: &Env) -> PathBuf {
    env.networks.config().dir.join("ipam")
}

#[test]
fn containers_on_one_network_reach_each_other_by_ip_and_name_and_no_one_else() {
    let Some(env) = Env::new("ping", 1) else {
        return;
    };
    let front = env.create("front", "10.213.101.0/24");
    let back = env.create("back", "10.213.102.0/24");
    let web = env.attach("web", &[&front], &[]);
    let api = env.attach("api", &[&front], &[]);
    let db = env.attach("db", &[&back], &[]);

    assert!(ping(&web, &ip_of(&api)), "web -> api by IP");
    assert!(ping(&api, &ip_of(&web)), "api -> web by IP");
    assert!(ping_by_name(&web, "api"), "web -> api by name");
    assert!(
        ping_by_name(&api, "web"),
        "api -> web by name (its hosts file was refreshed)"
    );
    assert!(!ping(&db, &ip_of(&web)), "another network cannot reach web");
    assert!(!ping(&web, &ip_of(&db)), "web cannot reach another network");

    let hosts = std::fs::read_to_string(web.etc_files().unwrap().hosts).unwrap();
    assert!(
        hosts.contains(&format!("{}\t{}", ip_of(&api), "api")),
        "{hosts}"
    );
    assert!(
        !hosts.contains("db"),
        "containers of other networks are not listed: {hosts}"
    );
    env.networks.detach(&api.container_id).unwrap();
    let hosts = std::fs::read_to_string(web.etc_files().unwrap().hosts).unwrap();
    assert!(
        !hosts.contains("api"),
        "a detached peer leaves the hosts file: {hosts}"
    );
}

#[test]
fn a_published_port_is_reachable_from_the_host_at_localhost() {
    let Some(env) = Env::new("port", 2) else {
        return;
    };
    let net = env.create("pub", "10.213.103.0/24");
    let att = env.attach("srv", &[&net], &["80"]);
    let host_port = att.ports[0].host_port;
    assert_eq!(att.ports_display(), format!("0.0.0.0:{host_port}->80/tcp"));

    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hello from the namespace\n").unwrap();
    let www_dir = www.path().to_str().unwrap();
    let mut server = in_netns(
        &att.netns,
        &["busybox", "httpd", "-f", "-p", "80", "-h", www_dir],
    )
    .spawn()
    .unwrap();
    let url = format!("http://127.0.0.1:{host_port}/");
    let fetch = || output("curl", &["-sS", "--max-time", "2", &url]);
    // The server needs a moment to listen; wait for readiness, do not time anything.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut body = fetch();
    while body.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        body = fetch();
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(body, "hello from the namespace\n");

    env.networks.detach(&att.container_id).unwrap();
    let rules = output("iptables-save", &["-t", "nat"]);
    assert!(!rules.contains(&format!("--dport {host_port} ")), "{rules}");
}

#[test]
fn detach_from_a_fresh_process_leaves_nothing_behind() {
    let Some(env) = Env::new("fresh", 3) else {
        return;
    };
    let net = env.create("leak", "10.213.104.0/24");
    let att = env.attach("c1", &[&net], &["127.0.0.1::8080"]);
    assert!(att.networks[0].host_interface.is_some(), "{att:?}");
    assert!(
        leftovers(&att, &ipam_dir(&env)).len() >= 3,
        "the probe sees a live attachment"
    );

    // A new process that only has the store on disk does the detach.
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["detach_helper", "--exact", "--ignored", "--nocapture"])
        .env("BASIC_NETWORK_TEST_DIR", &env.networks.config().dir)
        .env("BASIC_NETWORK_TEST_ID", &att.container_id)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(leftovers(&att, &ipam_dir(&env)), Vec::<String>::new());
    assert!(
        env.networks
            .attachment(&att.container_id)
            .unwrap()
            .is_none()
    );
    assert_eq!(
        env.networks.detach(&att.container_id).unwrap(),
        None,
        "detach is idempotent"
    );
}

/// Run by `detach_from_a_fresh_process_leaves_nothing_behind` in a child process.
#[test]
#[ignore = "run by another test in a fresh process"]
fn detach_helper() {
    let dir = std::env::var("BASIC_NETWORK_TEST_DIR").expect("run by another test");
    let id = std::env::var("BASIC_NETWORK_TEST_ID").unwrap();
    let mut config = NetworksConfig::new(Path::new("/unused"));
    config.dir = dir.into();
    config.netns_dir = NETNS_DIR.into();
    let detached = Networks::open(config).unwrap().detach(&id).unwrap();
    assert!(detached.is_some(), "the cache had the attachment");
}

#[test]
fn detach_without_the_cached_result_still_cleans_up_everything() {
    let Some(env) = Env::new("nocache", 4) else {
        return;
    };
    let net = env.create("nc", "10.213.105.0/24");
    let att = env.attach("c1", &[&net], &[]);
    let cache_file = env
        .networks
        .config()
        .dir
        .join("cache")
        .join(format!("{}.json", att.container_id));
    std::fs::remove_file(cache_file).unwrap();

    env.networks
        .detach_uncached(&att.container_id, &[net])
        .unwrap();
    let links = output("ip", &["-o", "link"]);
    let veth = att.networks[0].host_interface.as_ref().unwrap();
    assert!(!links.contains(&format!(" {veth}@")), "veth removed");
    let ip = att.ip().unwrap().to_string();
    assert!(
        !ipam_dir(&env)
            .join(&att.networks[0].network)
            .join(&ip)
            .exists(),
        "address released"
    );
    assert_eq!(leftovers(&att, &ipam_dir(&env)), Vec::<String>::new());
}

#[test]
fn fifty_attach_detach_cycles_leak_nothing() {
    let Some(env) = Env::new("cycles", 5) else {
        return;
    };
    let net = env.create("loop", "10.213.106.0/24");
    let mut seen = Vec::new();
    for i in 0..50 {
        let att = env.attach(&format!("c{i}"), &[&net], &[]);
        env.networks.detach(&att.container_id).unwrap();
        seen.push(att);
    }
    let ipam = ipam_dir(&env);
    let leaks: Vec<String> = seen.iter().flat_map(|a| leftovers(a, &ipam)).collect();
    assert_eq!(leaks, Vec::<String>::new());
    let files: Vec<_> = std::fs::read_dir(ipam.join(&net))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.parse::<std::net::IpAddr>().is_ok())
        .collect();
    assert_eq!(files, Vec::<String>::new(), "no allocation left");
    assert!(env.networks.attachments().unwrap().is_empty());
}

#[test]
fn the_default_network_is_created_on_first_use_with_its_files() {
    let Some(env) = Env::new("default", 6) else {
        return;
    };
    let att = env.attach("first", &["bridge"], &[]);
    let bridge = &env.networks.config().default_network.bridge;
    let addr = output("ip", &["-o", "-4", "addr", "show", "dev", bridge]);
    assert!(
        addr.contains("10.213.6.1/24"),
        "the bridge has the gateway address: {addr}"
    );
    let net = &att.networks[0];
    assert_eq!(net.gateway, Some("10.213.6.1".parse().unwrap()));
    assert!(net.address.unwrap().to_string().starts_with("10.213.6."));
    assert_eq!(net.ifname, "eth0");
    assert!(net.mac.as_ref().is_some_and(|m| m.len() == 17), "{net:?}");
    assert!(ping(&att, "10.213.6.1"), "the gateway answers");

    let files = att.etc_files().unwrap();
    assert_eq!(
        std::fs::read_to_string(&files.hostname).unwrap(),
        format!("{}\n", att.hostname)
    );
    let hosts = std::fs::read_to_string(&files.hosts).unwrap();
    assert!(
        hosts.contains(&format!("{}\t{}", ip_of(&att), att.hostname)),
        "{hosts}"
    );
    let resolv = std::fs::read_to_string(&files.resolv_conf).unwrap();
    assert!(!resolv.contains("nameserver 127."), "{resolv}");
    let lo = in_netns(&att.netns, &["ip", "-o", "link", "show", "lo"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&lo.stdout).contains("UP"),
        "lo is up"
    );

    let info = env.networks.inspect("bridge").unwrap();
    assert_eq!(info.containers.len(), 1);
    assert!(matches!(
        env.networks.remove("bridge"),
        Err(Error::Predefined(..))
    ));
}

#[test]
fn a_network_in_use_cannot_be_removed_and_removal_deletes_its_bridge() {
    let Some(env) = Env::new("rm", 7) else { return };
    let net = env.create("gone", "10.213.107.0/24");
    let att = env.attach("c1", &[&net], &[]);
    let bridge = att.networks[0].bridge.clone().unwrap();
    assert!(Path::new("/sys/class/net").join(&bridge).exists());
    let err = env.networks.remove(&net).unwrap_err();
    assert!(
        err.to_string().contains("has active endpoints: c1"),
        "{err}"
    );

    env.networks.detach(&att.container_id).unwrap();
    env.networks.remove(&net).unwrap();
    assert!(!Path::new("/sys/class/net").join(&bridge).exists());
    let filter = output("iptables-save", &["-t", "filter"]);
    assert!(
        !filter.contains(&bridge),
        "isolation rules removed: {filter}"
    );
    assert!(matches!(
        env.networks.inspect(&net),
        Err(Error::NetworkNotFound(_))
    ));
}

#[test]
fn missing_plugins_are_named_with_the_package_and_leave_nothing() {
    let Some(env) = Env::new("noplugins", 8) else {
        return;
    };
    let empty = tempfile::tempdir().unwrap();
    let mut config = env.networks.config().clone();
    config.plugin_dirs = vec![empty.path().into()];
    let networks = Networks::open(config).unwrap();
    let err = networks
        .attach(&AttachRequest::new(&env.id("c1")))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("apt-get install containernetworking-plugins"),
        "{text}"
    );
    assert!(text.contains(empty.path().to_str().unwrap()), "{text}");
    assert!(
        !Path::new(NETNS_DIR).join(env.id("c1")).exists(),
        "no namespace made"
    );
    assert!(networks.attachments().unwrap().is_empty());
}
