//! User-mode networking for a container's network namespace through `pasta` (the
//! `passt` package), for engines that cannot make veths, bridges or firewall rules on
//! the host: rootless mode, where the engine is root only inside a user namespace of
//! its own.
//!
//! [`Pasta::start`] runs pasta on a network namespace file. pasta then:
//! - configures the namespace's interface (`--config-net`) with the host's address,
//!   gateway and MTU, so the container's traffic leaves with the host's address;
//! - forwards every outbound TCP and UDP flow through ordinary sockets of the user's;
//! - maps the gateway address to the host's loopback (pasta's default, kept): a
//!   service on the host's `127.0.0.1:PORT` is `GATEWAY:PORT` from the container;
//! - answers DNS at [`DNS_FORWARD`] by forwarding to the host's first name server, so
//!   the container's `resolv.conf` names that address ([`render_resolv_conf`]), even
//!   when the host's resolver is a loopback one (systemd-resolved's `127.0.0.53`);
//! - listens on the host for each published port (`-t`/`-u`) and forwards into the
//!   namespace. Nothing else is forwarded in either direction (`-t none`, `-T none`):
//!   without that pasta would publish whatever the container listens on, and show the
//!   container the host's loopback ports on its own `127.0.0.1`.
//!
//! pasta goes to the background once the namespace is configured; its process is
//! recorded as a [`PastaProcess`] (pid and start time), which any process can stop
//! later. pasta also quits by itself once the namespace file it was given is deleted —
//! but pasta 2023-03 looks only at the first deletion of each batch it reads from the
//! directory, so several namespace files removed there at once can leave it running:
//! stop it explicitly ([`PastaProcess::stop`]); quitting by itself is the fallback for
//! an engine that died before recording it.
//!
//! An unprivileged process cannot listen on the host's ports below
//! `net.ipv4.ip_unprivileged_port_start`; such a publication is refused up front with
//! an error naming the port and the sysctl ([`check_host_port`]).

use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::etc_files::{DnsOptions, ResolvConf};
use crate::ports::{HostPort, PortMapping, PortSpec, Protocol};

/// The Debian/Ubuntu/Fedora package that ships `pasta`.
pub const PASTA_PACKAGE: &str = "passt";

/// The address a container sends DNS queries to: pasta forwards them to the host's
/// first name server (podman uses the same link-local address).
pub const DNS_FORWARD: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The sysctl below whose value unprivileged processes cannot listen.
pub const UNPRIVILEGED_PORT_SYSCTL: &str = "net.ipv4.ip_unprivileged_port_start";

const UNPRIVILEGED_PORT_FILE: &str = "/proc/sys/net/ipv4/ip_unprivileged_port_start";

/// How to run pasta for one namespace.
#[derive(Debug, Clone)]
pub struct PastaOptions {
    /// The program (`pasta` on `PATH` by default).
    pub program: PathBuf,
    /// The network namespace: a bind-mounted namespace file (pasta quits when it is
    /// deleted) or `/proc/PID/ns/net`.
    pub netns: PathBuf,
    /// The interface pasta makes in the namespace (`eth0`, as docker's containers have).
    pub ifname: String,
    /// Host ports to publish into the namespace (host ports already chosen).
    pub ports: Vec<PortMapping>,
    /// Where pasta writes its pid; the file is removed once read.
    pub pid_file: PathBuf,
}

impl PastaOptions {
    /// `pasta` for `netns`, interface `eth0`, no published ports, its pid written to
    /// `pid_file` (a path in a directory only the caller writes to).
    pub fn new(netns: impl Into<PathBuf>, pid_file: impl Into<PathBuf>) -> Self {
        PastaOptions {
            program: PathBuf::from("pasta"),
            netns: netns.into(),
            ifname: "eth0".to_string(),
            ports: Vec::new(),
            pid_file: pid_file.into(),
        }
    }

    /// pasta's command line (without the program).
    pub fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--config-net".into(),
            // IPv4 only, as docker's default bridge network is (and podman's slirp4netns
            // by default); pasta also starts faster without its IPv6 half (about a third
            // fewer pages touched, some 7 ms of its ~30 ms start here).
            "--ipv4-only".into(),
            "--ns-ifname".into(),
            self.ifname.clone().into(),
            "--dns-forward".into(),
            DNS_FORWARD.to_string().into(),
            // Nothing from the namespace's loopback to the host's: docker shows a
            // container none of the host's loopback services on its own 127.0.0.1.
            "--tcp-ns".into(),
            "none".into(),
            "--udp-ns".into(),
            "none".into(),
        ];
        for (flag, protocol) in [
            ("--tcp-ports", Protocol::Tcp),
            ("--udp-ports", Protocol::Udp),
        ] {
            let mut specs = self
                .ports
                .iter()
                .filter(|m| m.protocol == protocol)
                .peekable();
            // pasta's default, `auto`, would publish every port the container listens on.
            if specs.peek().is_none() {
                args.extend([flag.into(), "none".into()]);
            }
            // One flag per port: pasta takes an address only for a whole list.
            for m in specs {
                args.extend([flag.into(), port_arg(m).into()]);
            }
        }
        // Run as who we are: pasta drops root to `nobody` by default, which then cannot
        // enter a namespace owned by root (the host's, or the rootless user namespace).
        let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
        args.extend([
            "--runas".into(),
            format!("{uid}:{gid}").into(),
            "--quiet".into(),
            "--pid".into(),
            self.pid_file.clone().into(),
            "--netns".into(),
            self.netns.clone().into(),
        ]);
        args
    }
}

/// One published port in pasta's syntax: `[ADDR/]HOST:CONTAINER`.
fn port_arg(m: &PortMapping) -> String {
    match m.host_ip.filter(|ip| !ip.is_unspecified()) {
        Some(ip) => format!("{ip}/{}:{}", m.host_port, m.container_port),
        None => format!("{}:{}", m.host_port, m.container_port),
    }
}

/// A pasta process, as recorded: enough to stop it from another process, and to know a
/// reused pid for another process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastaProcess {
    /// Its pid.
    pub pid: i32,
    /// Its start time (`/proc/PID/stat`'s 22nd field, clock ticks since boot).
    pub start_time: u64,
}

impl PastaProcess {
    /// Whether the process still runs (not exited, not a zombie, not a reused pid).
    pub fn is_running(&self) -> bool {
        matches!(proc_stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    /// Stops the process: `SIGTERM`, then `SIGKILL` if it is still there after two
    /// seconds. One that is gone already (or whose pid is another process's now) is fine.
    pub fn stop(&self) -> Result<()> {
        use nix::sys::signal::{Signal, kill};
        let pid = nix::unistd::Pid::from_raw(self.pid);
        for signal in [Signal::SIGTERM, Signal::SIGKILL] {
            if !self.is_running() {
                return Ok(());
            }
            match kill(pid, signal) {
                Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
                Err(e) => {
                    return Err(Error::Pasta {
                        what: format!("stopping pasta (pid {})", self.pid),
                        message: e.desc().to_string(),
                    });
                }
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while self.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if self.is_running() {
            return Err(Error::Pasta {
                what: format!("stopping pasta (pid {})", self.pid),
                message: "it is still running after SIGKILL".into(),
            });
        }
        Ok(())
    }
}

/// The state letter and start time of `pid`, from `/proc/PID/stat`.
fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 3 (state) is fields[0] here, so field 22 (starttime) is fields[19].
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

/// What pasta gave the namespace's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastaInterface {
    /// The interface name.
    pub ifname: String,
    /// Its IPv4 address and prefix.
    pub address: Option<IpNet>,
    /// The default route's gateway (the host's loopback from inside).
    pub gateway: Option<IpAddr>,
    /// Its hardware address.
    pub mac: Option<String>,
}

/// A running pasta. Dropping the handle stops the process; [`Pasta::keep`] lets it run
/// on (to be stopped later through its [`PastaProcess`]).
#[derive(Debug)]
pub struct Pasta {
    process: PastaProcess,
    interface: PastaInterface,
    armed: bool,
}

impl Pasta {
    /// Runs pasta for `opts.netns` and waits until the namespace is configured. Refuses
    /// host ports this process may not listen on (see [`check_host_port`]) before
    /// running anything.
    pub fn start(opts: &PastaOptions) -> Result<Pasta> {
        Pasta::spawn(opts)?.wait()
    }

    /// Runs pasta for `opts.netns` without waiting: pasta configures the namespace (which
    /// takes it tens of milliseconds, most of them its own start) while the caller goes
    /// on, e.g. creating the container that joins the namespace; [`StartingPasta::wait`]
    /// waits for the configuration. Refuses what [`Pasta::start`] refuses, before running
    /// anything.
    pub fn spawn(opts: &PastaOptions) -> Result<StartingPasta> {
        let start = unprivileged_port_start();
        let privileged = privileged_on_host();
        for m in &opts.ports {
            check_host_port(m.host_port, start, privileged)?;
        }
        // pasta only warns (to a syslog that may not exist) about a port it cannot listen
        // on, and runs on without it.
        if let Some(m) = opts
            .ports
            .iter()
            .find(|m| !crate::ports::bindable(m.host_ip, m.host_port, m.protocol))
        {
            return Err(Error::PortAllocated {
                host_ip: m.host_ip.map_or("0.0.0.0".into(), |ip| ip.to_string()),
                port: m.host_port,
            });
        }
        let fail = |message: String| Error::Pasta {
            what: starting(opts),
            message,
        };
        check_tun_device().map_err(fail)?;
        let _ = std::fs::remove_file(&opts.pid_file);
        // A file, not a pipe: the daemonised pasta could keep a pipe open after its
        // parent exits.
        let (errors, errors_file) = tempfile_beside(&opts.pid_file, "err")
            .map_err(|e| fail(format!("creating a file for its error output: {e}")))?;
        let child = Command::new(&opts.program)
            .args(opts.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors_file)
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) => {
                let _ = std::fs::remove_file(&errors);
                return Err(fail(match e.kind() {
                    io::ErrorKind::NotFound => format!(
                        "{} not found: install the {PASTA_PACKAGE} package (apt-get install {PASTA_PACKAGE})",
                        opts.program.display()
                    ),
                    _ => e.to_string(),
                }));
            }
        };
        Ok(StartingPasta {
            child: Some(child),
            errors,
            opts: opts.clone(),
        })
    }

    /// The process.
    pub fn process(&self) -> PastaProcess {
        self.process
    }

    /// What the namespace's interface got.
    pub fn interface(&self) -> &PastaInterface {
        &self.interface
    }

    /// Lets pasta run on after the handle is gone; returns what stops it later.
    pub fn keep(mut self) -> PastaProcess {
        self.armed = false;
        self.process
    }

    /// Stops pasta now.
    pub fn stop(mut self) -> Result<()> {
        self.armed = false;
        self.process.stop()
    }
}

impl Drop for Pasta {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.process.stop();
        }
    }
}

/// What a failure to start pasta for `opts` is about.
fn starting(opts: &PastaOptions) -> String {
    format!(
        "starting pasta for network namespace {}",
        opts.netns.display()
    )
}

/// pasta started by [`Pasta::spawn`], configuring its namespace. Dropped without
/// [`StartingPasta::wait`], pasta is stopped once it has started.
#[derive(Debug)]
pub struct StartingPasta {
    /// The process run (pasta forks its daemon and exits once the namespace is
    /// configured); `None` once waited for.
    child: Option<std::process::Child>,
    /// Its error output.
    errors: PathBuf,
    opts: PastaOptions,
}

impl StartingPasta {
    /// Waits until pasta has configured the namespace; the running pasta, and what its
    /// interface got.
    pub fn wait(mut self) -> Result<Pasta> {
        let child = self.child.take().expect("waited for once, here");
        self.finish(child)
    }

    fn finish(&self, mut child: std::process::Child) -> Result<Pasta> {
        let opts = &self.opts;
        let status = child.wait();
        let stderr = std::fs::read_to_string(&self.errors).unwrap_or_default();
        let _ = std::fs::remove_file(&self.errors);
        let fail = |message: String| Error::Pasta {
            what: starting(opts),
            message,
        };
        let status = status.map_err(|e| fail(e.to_string()))?;
        if !status.success() {
            return Err(fail(format!("{status}: {}", useful_lines(&stderr))));
        }
        let pid = std::fs::read_to_string(&opts.pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok());
        let _ = std::fs::remove_file(&opts.pid_file);
        let process = pid
            .and_then(|pid| proc_stat(pid).map(|(_, start_time)| PastaProcess { pid, start_time }))
            .ok_or_else(|| {
                fail(format!(
                    "it wrote no pid to {} or exited at once: {}",
                    opts.pid_file.display(),
                    useful_lines(&stderr)
                ))
            })?;
        let mut pasta = Pasta {
            process,
            interface: PastaInterface {
                ifname: opts.ifname.clone(),
                address: None,
                gateway: None,
                mac: None,
            },
            armed: true,
        };
        pasta.interface = read_interface(&opts.netns, &opts.ifname).map_err(|e| Error::Netns {
            path: opts.netns.clone(),
            what: "reading the interface pasta configured",
            source: e,
        })?;
        Ok(pasta)
    }
}

impl Drop for StartingPasta {
    fn drop(&mut self) {
        // Not waited for: let it finish starting (or fail), then stop what it started.
        if let Some(child) = self.child.take() {
            drop(self.finish(child));
        }
    }
}

/// The device pasta opens inside the namespace.
const TUN_DEVICE: &str = "/dev/net/tun";

/// pasta opens the tun device as the engine's user; distributions make it `0666`, but a
/// narrower mode leaves pasta only "Failed to open tun socket in namespace" to say.
fn check_tun_device() -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(TUN_DEVICE)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            let mode = std::fs::metadata(TUN_DEVICE)
                .map(|m| format!("{:04o}", m.permissions().mode() & 0o7777))
                .unwrap_or_else(|_| "unknown".into());
            Err(format!(
                "{TUN_DEVICE} (mode {mode}) cannot be opened by this user, and pasta needs it: \
                 have root make it usable by everyone, as distributions do \
                 (chmod 0666 {TUN_DEVICE})"
            ))
        }
        Err(e) => Err(format!("opening {TUN_DEVICE}: {e}")),
    }
}

/// pasta's error output without the noise of a missing syslog.
fn useful_lines(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Failed to send") && !l.contains("unknown version")
        })
        .collect();
    if lines.is_empty() {
        "no error output".to_string()
    } else {
        lines.join("; ")
    }
}

/// A new file `<path>.<suffix>` (truncated), with its path.
fn tempfile_beside(path: &Path, suffix: &str) -> io::Result<(PathBuf, std::fs::File)> {
    let mut name = path.as_os_str().to_os_string();
    name.push(".");
    name.push(suffix);
    let file_path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&file_path)?;
    Ok((file_path, file))
}

/// Reads the address, gateway and hardware address of `ifname` inside `netns`, from a
/// thread that enters it (the calling thread stays where it is).
pub fn read_interface(netns: &Path, ifname: &str) -> io::Result<PastaInterface> {
    let ns = std::fs::File::open(netns)?;
    let ifname = ifname.to_string();
    std::thread::spawn(move || -> io::Result<PastaInterface> {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
        let mut iface = PastaInterface {
            ifname: ifname.clone(),
            address: None,
            gateway: None,
            mac: None,
        };
        for entry in nix::ifaddrs::getifaddrs()?.filter(|e| e.interface_name == ifname) {
            let Some(address) = entry.address else {
                continue;
            };
            if let Some(v4) = address.as_sockaddr_in() {
                let prefix = entry
                    .netmask
                    .and_then(|m| m.as_sockaddr_in().map(|m| u32::from(m.ip()).count_ones()))
                    .unwrap_or(32) as u8;
                iface.address = IpNet::new(IpAddr::V4(v4.ip()), prefix).ok();
            } else if let Some(link) = address.as_link_addr()
                && let Some(mac) = link.addr()
            {
                let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
                iface.mac = Some(hex.join(":"));
            }
        }
        // The thread's own view of /proc/net: the namespace it entered.
        let routes = std::fs::read_to_string("/proc/thread-self/net/route")?;
        iface.gateway = default_gateway(&routes, &ifname).map(IpAddr::V4);
        Ok(iface)
    })
    .join()
    .unwrap_or_else(|_| {
        Err(io::Error::other(
            "the thread reading the namespace panicked",
        ))
    })
}

/// The IPv4 default route's gateway through `ifname` in `/proc/net/route`'s text.
fn default_gateway(routes: &str, ifname: &str) -> Option<Ipv4Addr> {
    routes.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || f[0] != ifname || f[1] != "00000000" {
            return None;
        }
        // The address's bytes as a native-endian number, in hexadecimal.
        let raw = u32::from_str_radix(f[2], 16).ok()?;
        (raw != 0).then(|| Ipv4Addr::from(raw.to_ne_bytes()))
    })
}

/// Refuses `port` when this process cannot listen on it on the host: below `start`
/// (`net.ipv4.ip_unprivileged_port_start`) without privilege on the host.
pub fn check_host_port(port: u16, start: u16, privileged: bool) -> Result<()> {
    if privileged || port >= start {
        return Ok(());
    }
    Err(Error::PrivilegedPort { port, start })
}

/// [`check_host_port`] for requested publications: a fixed host port, or a range lying
/// wholly below the limit (a range reaching above it picks a port there).
pub fn check_port_specs(specs: &[PortSpec], start: u16, privileged: bool) -> Result<()> {
    for spec in specs {
        match spec.host_port {
            HostPort::Fixed(port) => check_host_port(port, start, privileged)?,
            HostPort::Range(_, last) => check_host_port(last, start, privileged)?,
            HostPort::Any => {}
        }
    }
    Ok(())
}

/// `net.ipv4.ip_unprivileged_port_start` (1024 when it cannot be read, the kernel's
/// default).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string(UNPRIVILEGED_PORT_FILE)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Whether this process may listen on the host's privileged ports: it runs in the host's
/// user namespace (which owns the host's network namespace) with `CAP_NET_BIND_SERVICE`.
/// Root inside another user namespace (rootless mode) is not.
pub fn privileged_on_host() -> bool {
    let initial = std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|map| map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"]);
    initial && has_effective_capability(CAP_NET_BIND_SERVICE)
}

/// `CAP_NET_BIND_SERVICE`'s number (linux/capability.h).
const CAP_NET_BIND_SERVICE: u32 = 10;

fn has_effective_capability(cap: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

/// The container's `resolv.conf` under pasta: `--dns` servers when given, else
/// [`DNS_FORWARD`] (pasta forwards it to the host's resolver, loopback ones included);
/// the host's search domains and options unless `--dns-search`/`--dns-option` replace them.
pub fn render_resolv_conf(host: &str, dns: &DnsOptions) -> ResolvConf {
    let mut dns = dns.clone();
    if dns.servers.is_empty() {
        dns.servers = vec![IpAddr::V4(DNS_FORWARD)];
    }
    crate::etc_files::render_resolv_conf(host, &dns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(raw: &str) -> PortMapping {
        raw.parse().unwrap()
    }

    #[test]
    fn ports_become_pastas_forwards_and_nothing_else_is_forwarded() {
        let mut opts = PastaOptions::new("/run/ns/c1", "/run/c1.pid");
        let args = |o: &PastaOptions| -> Vec<String> {
            o.args()
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        let after = |args: &[String], flag: &str| -> String {
            let i = args.iter().position(|a| a == flag).unwrap();
            args[i + 1].clone()
        };
        let plain = args(&opts);
        assert!(plain.iter().any(|a| a == "--ipv4-only"), "{plain:?}");
        assert_eq!(after(&plain, "--tcp-ports"), "none");
        assert_eq!(after(&plain, "--udp-ports"), "none");
        assert_eq!(after(&plain, "--tcp-ns"), "none");
        assert_eq!(after(&plain, "--udp-ns"), "none");
        assert_eq!(after(&plain, "--netns"), "/run/ns/c1");
        assert_eq!(after(&plain, "--dns-forward"), "169.254.1.1");
        assert!(
            !plain.contains(&"--no-map-gw".to_string()),
            "the gateway is the host's loopback"
        );

        opts.ports = vec![
            mapping("8080:80"),
            mapping("127.0.0.1:8443:443"),
            mapping("0.0.0.0:9000:90"),
            mapping("5353:53/udp"),
        ];
        let published = args(&opts);
        let values = |flag: &str| -> Vec<String> {
            published
                .windows(2)
                .filter(|w| w[0] == flag)
                .map(|w| w[1].clone())
                .collect()
        };
        assert_eq!(
            values("--tcp-ports"),
            ["8080:80", "127.0.0.1/8443:443", "9000:90"]
        );
        assert_eq!(values("--udp-ports"), ["5353:53"]);
    }

    #[test]
    fn low_host_ports_are_refused_only_without_privilege() {
        assert!(check_host_port(80, 1024, true).is_ok());
        assert!(check_host_port(1024, 1024, false).is_ok());
        assert!(
            check_host_port(80, 0, false).is_ok(),
            "the sysctl lowered to 0"
        );
        let err = check_host_port(80, 1024, false).unwrap_err().to_string();
        assert!(err.contains("port 80"), "{err}");
        assert!(err.contains("net.ipv4.ip_unprivileged_port_start"), "{err}");
        assert!(err.contains("1024"), "{err}");

        let specs = |raw: &str| PortSpec::parse(raw).unwrap();
        assert!(
            check_port_specs(&specs("80"), 1024, false).is_ok(),
            "any port"
        );
        assert!(check_port_specs(&specs("1000-2000:80"), 1024, false).is_ok());
        assert!(check_port_specs(&specs("100-200:80"), 1024, false).is_err());
        assert!(check_port_specs(&specs("127.0.0.1:443:443"), 1024, false).is_err());
    }

    #[test]
    fn the_default_gateway_is_read_from_the_route_table() {
        let routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n\
                      eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n\
                      eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        assert_eq!(
            default_gateway(routes, "eth0"),
            Some(Ipv4Addr::new(192, 0, 2, 1))
        );
        assert_eq!(default_gateway(routes, "eth1"), None);
    }

    #[test]
    fn resolv_conf_names_pastas_forwarder_unless_dns_is_given() {
        let host = "nameserver 127.0.0.53\nsearch example.org\noptions edns0\n";
        let conf = render_resolv_conf(host, &DnsOptions::default());
        assert_eq!(
            conf.content,
            "nameserver 169.254.1.1\nsearch example.org\noptions edns0\n"
        );
        assert!(conf.warning.is_none());
        let dns = DnsOptions {
            servers: vec!["192.0.2.53".parse().unwrap()],
            ..DnsOptions::default()
        };
        assert!(
            render_resolv_conf(host, &dns)
                .content
                .starts_with("nameserver 192.0.2.53\n")
        );
    }
}
