//! Real plugins, real namespaces, real traffic — only between namespaces these
//! tests make and to 127.0.0.1. Each test has its own store, its own networks
//! (own bridges and subnets in 10.213.0.0/16) and container IDs, and removes
//! them in `Drop`, failure or not.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use basic_network::{AttachRequest, Error, Networks, NetworksConfig};
use basic_test_support::bounded::output_within;
use common::{
    Env, NETNS_DIR, TOOL_LIMIT, in_netns, ip_of, ipam_dir, leftovers, output, ping, ping_by_name,
    succeeds,
};

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
    basic_test_support::bounded::wait_within(
        &mut server,
        std::time::Duration::from_secs(10),
        "the killed server",
    );
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
    let mut helper = Command::new(std::env::current_exe().unwrap());
    helper
        .args(["detach_helper", "--exact", "--ignored", "--nocapture"])
        .env("BASIC_NETWORK_TEST_DIR", &env.networks.config().dir)
        .env("BASIC_NETWORK_TEST_ID", &att.container_id);
    assert!(succeeds(helper), "the detach in a fresh process");
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
    let lo = output_within(
        &mut in_netns(&att.netns, &["ip", "-o", "link", "show", "lo"]),
        TOOL_LIMIT,
        "ip link show lo",
    );
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

/// A namespace standing for the world outside the host: reachable from the
/// host over a veth pair, with no route back to container subnets.
struct Outside {
    netns: std::path::PathBuf,
    host_ip: &'static str,
    ip: &'static str,
}

impl Outside {
    fn new(tag: &str) -> Outside {
        let netns = basic_network::netns::create(Path::new(NETNS_DIR), tag).unwrap();
        let host_end = format!("bno{}", std::process::id() % 100_000);
        let ns = netns.display().to_string();
        let (host_ip, ip) = ("10.213.250.1", "10.213.250.2");
        for args in [
            vec![
                "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
            vec!["addr", "add", "10.213.250.1/30", "dev", &host_end],
            vec!["link", "set", &host_end, "up"],
        ] {
            let mut ip = Command::new("ip");
            ip.args(&args);
            assert!(succeeds(ip), "ip {args:?}");
        }
        for ip in [
            vec!["ip", "addr", "add", "10.213.250.2/30", "dev", "eth0"],
            vec!["ip", "link", "set", "eth0", "up"],
        ] {
            assert!(succeeds(in_netns(&netns, &ip)), "{ip:?}");
        }
        Outside { netns, host_ip, ip }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        // The veth pair goes with the namespace.
        let _ = basic_network::netns::remove(&self.netns);
    }
}

#[test]
fn outbound_traffic_leaves_with_the_hosts_address() {
    let Some(env) = Env::new("masq", 9) else {
        return;
    };
    let outside = Outside::new(&env.id("outside"));
    let www = tempfile::tempdir().unwrap();
    let cgi = www.path().join("cgi-bin");
    std::fs::create_dir(&cgi).unwrap();
    let script = cgi.join("addr");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\necho \"$REMOTE_ADDR\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let www_dir = www.path().to_str().unwrap();
    let mut server = in_netns(
        &outside.netns,
        &["busybox", "httpd", "-f", "-p", "8080", "-h", www_dir],
    )
    .spawn()
    .unwrap();

    let net = env.create("out", "10.213.108.0/24");
    let att = env.attach("c1", &[&net], &[]);
    let url = format!("http://{}:8080/cgi-bin/addr", outside.ip);
    let fetch = || {
        let out = output_within(
            &mut in_netns(&att.netns, &["curl", "-sS", "--max-time", "2", &url]),
            TOOL_LIMIT,
            "curl in the container's namespace",
        );
        // busybox httpd gives IPv4 peers in IPv6 form: `[::ffff:10.0.0.1]`.
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let text = text.trim_start_matches('[').trim_end_matches(']');
        text.trim_start_matches("::ffff:").to_string()
    };
    // The server needs a moment to listen; wait for readiness, do not time anything.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = fetch();
    while seen.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        seen = fetch();
    }
    server.kill().unwrap();
    basic_test_support::bounded::wait_within(
        &mut server,
        std::time::Duration::from_secs(10),
        "the killed server",
    );
    assert_eq!(
        seen,
        outside.host_ip,
        "the outside sees the host, not the container ({})",
        ip_of(&att)
    );
}

#[test]
fn host_rules_are_written_once_and_go_with_the_network() {
    let Some(env) = Env::new("rules", 10) else {
        return;
    };
    let net = env.create("rules", "10.213.109.0/24");
    let att = env.attach("c1", &[&net], &[]);
    let rules = basic_network::store::host_rules(&att.networks[0].config).expect("host rules");
    let bridge = rules.bridge.clone();
    let save = || output("iptables-save", &[]);
    let before = save();
    let naming = |text: &str| text.lines().filter(|l| l.contains(&bridge)).count();
    assert_eq!(
        naming(&before),
        5,
        "isolation, forwarding, masquerade: {before}"
    );
    basic_network::Firewall::ensure(&basic_network::Iptables, &rules).unwrap();
    let after = save();
    assert_eq!(naming(&after), 5, "a second ensure adds nothing: {after}");
    assert!(
        !before.contains(&ip_of(&att)),
        "no rule is the container's own: {before}"
    );

    env.networks.detach(&att.container_id).unwrap();
    env.networks.remove(&net).unwrap();
    assert_eq!(naming(&save()), 0, "{}", save());
}

#[test]
fn a_background_detach_in_a_process_with_threads_is_done_in_place() {
    let Some(env) = Env::new("bgthreads", 11) else {
        return;
    };
    let net = env.create("bg", "10.213.110.0/24");
    let mut req = env.request("c1", &[&net], &[]);
    req.background_detach = true;
    let att = env.networks.attach(&req).unwrap();
    // This test runs on one of libtest's threads: forking here would not be safe.
    env.networks.detach(&att.container_id).unwrap();
    assert!(!env.networks.detached_in_background(&att.container_id));
    assert_eq!(leftovers(&att, &ipam_dir(&env)), Vec::<String>::new());
}
