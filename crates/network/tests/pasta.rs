//! pasta on real network namespaces: outbound traffic to a server on the host's
//! loopback through the gateway, published ports reached from the host, DNS forwarded
//! to the host's resolver, teardown, and the refusal of privileged host ports to a
//! rootless process (the test user, root only in a user namespace of its own).
//!
//! Each test makes its own namespace (named after the test and this process) and
//! removes it, and stops the pasta it started, failure or not.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use basic_network::pasta::{self, DNS_FORWARD};
use basic_network::{
    AttachRequest, CreateOptions, Error, Networks, NetworksConfig, Pasta, PastaOptions,
    PortMapping, PortSpec, netns,
};
use basic_test_support::bounded::output_within;
use basic_test_support::rootless::{RootlessUser, UserHome};
use common::{NETNS_DIR, TOOL_LIMIT};

const IO_LIMIT: Duration = Duration::from_secs(10);

/// A namespace of the test's own, removed when dropped.
struct Ns {
    path: PathBuf,
    dir: tempfile::TempDir,
    /// A directory of its own the namespace file is in, unmounted and removed at the end.
    own_dir: Option<PathBuf>,
}

impl Ns {
    fn new(test: &str) -> Option<Ns> {
        Ns::make(test, false)
    }

    /// A namespace alone in its directory: pasta 2023-03 looks only at the first of
    /// the deletions it reads from a directory, so another test removing its namespace
    /// at the same moment would hide this one's.
    fn alone(test: &str) -> Option<Ns> {
        Ns::make(test, true)
    }

    fn make(test: &str, alone: bool) -> Option<Ns> {
        if !basic_test_support::require_root() {
            return None;
        }
        let pasta = Command::new("pasta").arg("--version").output().is_ok();
        if !basic_test_support::prerequisite(pasta, "pasta (the passt package)") {
            return None;
        }
        let name = format!("pasta-{test}-{}", std::process::id());
        let own_dir = alone.then(|| Path::new(NETNS_DIR).with_file_name(&name));
        let dir = own_dir.as_deref().unwrap_or(Path::new(NETNS_DIR));
        let path = netns::create(dir, &name).unwrap();
        Some(Ns {
            path,
            dir: tempfile::tempdir().unwrap(),
            own_dir,
        })
    }

    fn options(&self, ports: &[&str]) -> PastaOptions {
        let mut opts = PastaOptions::new(&self.path, self.dir.path().join("pasta.pid"));
        opts.ports = ports.iter().map(|p| p.parse().unwrap()).collect();
        opts
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = netns::remove(&self.path);
        if let Some(dir) = &self.own_dir {
            // netns::create made it a mount point of its own.
            let _ = nix::mount::umount2(dir, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Runs `f` on a thread inside the namespace `ns` (sockets it makes are the namespace's).
fn inside<T: Send + 'static>(ns: &Path, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(ns).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        f()
    })
    .join()
    .unwrap()
}

/// A one-line TCP server on `listener`: answers every connection with `reply`.
fn serve(listener: TcpListener, reply: &'static str) {
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let _ = conn.write_all(reply.as_bytes());
        }
    });
}

/// What a TCP server at `addr` says, read until it closes (bounded).
fn fetch(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, IO_LIMIT)?;
    stream.set_read_timeout(Some(IO_LIMIT))?;
    let mut text = String::new();
    let mut buf = [0u8; 256];
    // The server writes one line; read it and stop.
    while !text.ends_with('\n') {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Ok(text)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ip_addr_show(ns: &Path) -> String {
    let out = output_within(
        Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["ip", "-4", "-o", "addr", "show", "eth0"]),
        TOOL_LIMIT,
        "ip addr",
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_container_reaches_the_hosts_loopback_through_the_gateway() {
    let Some(ns) = Ns::new("gateway") else { return };
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = host.local_addr().unwrap().port();
    serve(host, "hello from the host\n");

    let pasta = Pasta::start(&ns.options(&[])).unwrap();
    let iface = pasta.interface().clone();
    let address = iface.address.expect("pasta gave eth0 an address");
    let gateway = iface.gateway.expect("and a default route");
    assert!(
        ip_addr_show(&ns.path).contains(&format!("inet {address}")),
        "the reported address is eth0's: {address}"
    );
    assert!(iface.mac.is_some_and(|m| m.len() == 17));

    let reply = inside(&ns.path, move || fetch(SocketAddr::new(gateway, port)));
    assert_eq!(reply.unwrap(), "hello from the host\n");

    // The container's own loopback is its own: the host's port is not there.
    let own = inside(&ns.path, move || {
        fetch(SocketAddr::from(([127, 0, 0, 1], port)))
    });
    assert!(
        own.is_err(),
        "the host's loopback leaked into the container: {own:?}"
    );
}

#[test]
fn published_ports_reach_the_container_from_the_host_and_nothing_else_is_published() {
    let Some(ns) = Ns::new("publish") else { return };
    let (published, loopback_only) = (free_port(), free_port());
    let opts = ns.options(&[
        &format!("{published}:8080"),
        &format!("127.0.0.1:{loopback_only}:8081"),
    ]);
    let pasta = Pasta::start(&opts).unwrap();
    let address = pasta.interface().address.unwrap().addr();
    inside(&ns.path, || {
        for (port, reply) in [
            (8080, "eight-oh-eight-oh\n"),
            (8081, "eight-oh-eight-one\n"),
            (8082, "not published\n"),
        ] {
            serve(TcpListener::bind(("0.0.0.0", port)).unwrap(), reply);
        }
    });

    let host = |port| fetch(SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(host(published).unwrap(), "eight-oh-eight-oh\n");
    assert_eq!(host(loopback_only).unwrap(), "eight-oh-eight-one\n");
    let elsewhere = fetch(SocketAddr::new(address, loopback_only));
    assert!(
        elsewhere.is_err(),
        "a port published on 127.0.0.1 is not on the host's other addresses: {elsewhere:?}"
    );
    assert!(
        host(8082).is_err(),
        "a port the container listens on but nobody published is not reachable"
    );
    drop(pasta);
    assert!(host(published).is_err(), "the port goes with pasta");
}

#[test]
fn dns_sent_to_the_forwarder_reaches_a_loopback_resolver_of_the_host() {
    let Some(ns) = Ns::new("dns") else { return };
    // The host's resolver, as systemd-resolved's is: on a loopback address. pasta reads
    // /etc/resolv.conf; it runs here in a mount namespace where that names ours.
    let resolver_ip: IpAddr = format!("127.83.{}.{}", std::process::id() % 200 + 1, 53)
        .parse()
        .unwrap();
    let resolver = UdpSocket::bind((resolver_ip, 53)).unwrap();
    resolver.set_read_timeout(Some(IO_LIMIT)).unwrap();
    let conf = ns.dir.path().join("resolv.conf");
    std::fs::write(&conf, format!("nameserver {resolver_ip}\n")).unwrap();
    let wrapper = ns.dir.path().join("pasta-with-resolv-conf");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare -m sh -c 'mount --bind \"$0\" /etc/resolv.conf && exec pasta \"$@\"' {} \"$@\"\n",
            conf.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut opts = ns.options(&[]);
    opts.program = wrapper;
    let _pasta = Pasta::start(&opts).unwrap();

    let answered = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, from) = resolver
            .recv_from(&mut buf)
            .expect("a query reached the host's resolver");
        // Echo the query as a response (QR set, NXDOMAIN).
        let mut answer = buf[..n].to_vec();
        answer[2] |= 0x80;
        answer[3] = (answer[3] & 0xf0) | 3;
        resolver.send_to(&answer, from).unwrap();
        answer
    });
    let got = inside(&ns.path, || {
        let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
        socket.set_read_timeout(Some(IO_LIMIT)).unwrap();
        // A query for example.com, type A.
        let query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01";
        socket.send_to(query, (DNS_FORWARD, 53)).unwrap();
        let mut buf = [0u8; 512];
        let (n, from) = socket.recv_from(&mut buf).expect("an answer");
        (buf[..n].to_vec(), from)
    });
    let sent = answered.join().unwrap();
    assert_eq!(got.0, sent, "the resolver's answer came back");
    assert_eq!(
        got.1,
        SocketAddr::from((DNS_FORWARD, 53)),
        "from the forwarder's address"
    );
}

#[test]
fn teardown_leaves_no_pasta_and_pasta_quits_when_its_namespace_goes() {
    let Some(ns) = Ns::alone("teardown") else {
        return;
    };
    let pasta = Pasta::start(&ns.options(&[])).unwrap();
    let process = pasta.process();
    assert!(process.is_running());
    drop(pasta);
    assert!(!process.is_running(), "dropping the handle stops pasta");
    assert!(process.stop().is_ok(), "stopping a stopped one is fine");

    // Kept, and stopped later from its record (as another process would).
    let kept = Pasta::start(&ns.options(&[])).unwrap().keep();
    let record: pasta::PastaProcess =
        serde_json::from_str(&serde_json::to_string(&kept).unwrap()).unwrap();
    assert!(record.is_running(), "keep lets it run");
    record.stop().unwrap();
    assert!(!record.is_running());

    // Left running, it goes away by itself with its namespace.
    let orphan = Pasta::start(&ns.options(&[])).unwrap().keep();
    netns::remove(&ns.path).unwrap();
    let quit = (0..1500).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        !orphan.is_running()
    });
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", orphan.pid)).unwrap_or_default();
    let _ = orphan.stop();
    assert!(
        quit,
        "pasta did not quit after its namespace was removed: {status}"
    );
}

#[test]
fn a_pasta_that_cannot_start_says_why_and_leaves_nothing() {
    let Some(ns) = Ns::new("fails") else { return };
    let mut opts = ns.options(&[]);
    opts.netns = ns.dir.path().join("no-such-namespace");
    let err = Pasta::start(&opts).unwrap_err();
    assert!(matches!(err, Error::Pasta { .. }), "{err}");
    assert!(err.to_string().contains("no-such-namespace"), "{err}");

    let mut opts = ns.options(&[]);
    opts.program = "/nonexistent/pasta".into();
    let err = Pasta::start(&opts).unwrap_err().to_string();
    assert!(err.contains("install the passt package"), "{err}");

    // A host port someone holds.
    let held = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let err = Pasta::start(&ns.options(&[&format!("{port}:80")])).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Bind for 0.0.0.0:{port} failed: port is already allocated")
    );
}

/// Run by [`a_rootless_user_gets_pasta_and_is_refused_privileged_ports`] as the test
/// user, inside a user namespace where the user is root (as the rootless engine is):
/// the arguments come in environment variables.
#[test]
#[ignore = "run as the rootless test user by another test"]
fn rootless_child() {
    let Some(dir) = std::env::var_os("PASTA_CHILD_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let port: u16 = std::env::var("PASTA_CHILD_PORT").unwrap().parse().unwrap();
    assert!(
        !pasta::privileged_on_host(),
        "root in a user namespace is not root on the host"
    );
    let path = netns::create(&dir.join("netns"), "c1").unwrap();
    let mut opts = PastaOptions::new(&path, dir.join("pasta.pid"));
    opts.ports = vec!["80:80".parse::<PortMapping>().unwrap()];
    let err = Pasta::start(&opts).unwrap_err();
    println!("REFUSED: {err}");
    assert!(
        matches!(err, Error::PrivilegedPort { port: 80, .. }),
        "{err}"
    );

    opts.ports = vec![format!("{port}:80").parse().unwrap()];
    let pasta = Pasta::start(&opts).unwrap();
    let gateway = pasta.interface().gateway.unwrap();
    let host = TcpListener::bind("127.0.0.1:0").unwrap();
    let host_port = host.local_addr().unwrap().port();
    serve(host, "host\n");
    inside(&path, || {
        serve(TcpListener::bind("0.0.0.0:80").unwrap(), "container\n")
    });
    assert_eq!(
        fetch(SocketAddr::from(([127, 0, 0, 1], port))).unwrap(),
        "container\n"
    );
    let out = inside(&path, move || fetch(SocketAddr::new(gateway, host_port)));
    assert_eq!(out.unwrap(), "host\n");
    let process = pasta.process();
    drop(pasta);
    assert!(!process.is_running());
    netns::remove(&path).unwrap();
    println!("ROOTLESS PASTA OK");
}

#[test]
fn a_rootless_user_gets_pasta_and_is_refused_privileged_ports() {
    if !basic_test_support::require_root() {
        return;
    }
    let start = pasta::unprivileged_port_start();
    if !basic_test_support::prerequisite(start > 80, "net.ipv4.ip_unprivileged_port_start above 80")
    {
        return;
    }
    let user = RootlessUser::ensure().unwrap();
    let home = UserHome::new(&user).unwrap();
    let me = home.install(&std::env::current_exe().unwrap()).unwrap();
    let port = free_port().max(start);
    // pasta opens /dev/net/tun as the user. Distributions make it 0666; where the machine
    // has it narrower, the child gets a 0666 node of the same device, in its own mount
    // namespace only.
    let tun = home.dir().join("tun");
    let made = Command::new("mknod")
        .arg(&tun)
        .args(["c", "10", "200"])
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::set_permissions(&tun, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let out = output_within(
        home.command("unshare")
            .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
            .arg("mount --bind \"$0\" /dev/net/tun && exec \"$@\"")
            .arg(&tun)
            .arg(&me)
            .args([
                "--exact",
                "rootless_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PASTA_CHILD_DIR", home.home())
            .env("PASTA_CHILD_PORT", port.to_string()),
        Duration::from_secs(120),
        "the rootless child",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "REFUSED: cannot publish host port 80: rootless containers can only publish ports from {start} (net.ipv4.ip_unprivileged_port_start)"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("ROOTLESS PASTA OK"), "{stdout}\n{stderr}");
}

#[test]
fn networks_in_rootless_mode_attach_the_default_network_through_pasta_and_refuse_others() {
    let Some(ns) = Ns::new("manager") else { return };
    drop(ns);
    let root = tempfile::tempdir().unwrap();
    let mut config = NetworksConfig::new(root.path());
    config.netns_dir = NETNS_DIR.into();
    // No plugin directory: any CNI plugin run would fail, and none must happen.
    config.plugin_dirs = Vec::new();
    config.rootless = true;
    config.pool_size = 2;
    let networks = Networks::open(config.clone()).unwrap();
    let id = format!("pasta-manager-{}", std::process::id());
    let host_port = free_port();
    let mut req = AttachRequest::new(&id);
    req.name = Some("web".into());
    req.ports = PortSpec::parse(&format!("{host_port}:8080")).unwrap();
    req.etc_dir = Some(root.path().join("etc"));
    let att = networks.attach(&req).unwrap();

    let process = att.pasta.expect("the record names its pasta");
    assert!(process.is_running());
    let net = &att.networks[0];
    assert_eq!(net.network, "bridge");
    assert!(!net.user_defined);
    assert_eq!(net.network_id, networks.inspect("bridge").unwrap().id);
    let ip = att.ip().expect("the address pasta gave");
    assert!(
        ip_addr_show(&att.netns).contains(&format!("inet {ip}/")),
        "{ip}"
    );
    assert!(net.gateway.is_some());
    let resolv = std::fs::read_to_string(att.etc_files().unwrap().resolv_conf).unwrap();
    assert!(resolv.starts_with("nameserver 169.254.1.1\n"), "{resolv}");
    inside(&att.netns, || {
        serve(TcpListener::bind("0.0.0.0:8080").unwrap(), "web\n")
    });
    assert_eq!(
        fetch(SocketAddr::from(([127, 0, 0, 1], host_port))).unwrap(),
        "web\n"
    );
    assert_eq!(
        att.ports_display(),
        format!("0.0.0.0:{host_port}->8080/tcp")
    );

    let refused = networks
        .create(&CreateOptions {
            name: "mynet".into(),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(
        refused
            .contains("rootless mode supports the default network (through pasta), none and host"),
        "{refused}"
    );
    let mut other = AttachRequest::new(&format!("{id}-2"));
    other.networks = vec!["mynet".into()];
    let refused = networks.attach(&other).unwrap_err();
    assert!(
        matches!(refused, Error::Rootless(ref n) if n == "mynet"),
        "{refused}"
    );
    assert!(
        !Path::new(NETNS_DIR).join(format!("{id}-2")).exists(),
        "nothing made for it"
    );

    // Another process (another instance) detaches it from the record alone.
    let later = Networks::open(config).unwrap();
    let detached = later.detach(&id).unwrap().expect("the record");
    assert_eq!(detached.pasta, Some(process));
    assert!(!process.is_running(), "detach stopped pasta");
    assert!(!att.netns.exists(), "and removed the namespace");
    assert!(later.attachments().unwrap().is_empty());
    assert!(
        later.pool_entries().unwrap().is_empty(),
        "no namespace prepared ahead"
    );
    assert!(fetch(SocketAddr::from(([127, 0, 0, 1], host_port))).is_err());
}
