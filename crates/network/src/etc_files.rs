//! The files a container gets in `/etc`: `hosts`, `hostname` and `resolv.conf`.
//!
//! They are written into a directory of the engine's choosing, which bind-mounts
//! each file over the image's. Rewrites happen in place (truncate and write),
//! never by rename: a file bind mount keeps pointing at the inode it was given.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// File names inside the directory the engine bind-mounts from.
pub const HOSTS: &str = "hosts";
/// See [`HOSTS`].
pub const HOSTNAME: &str = "hostname";
/// See [`HOSTS`].
pub const RESOLV_CONF: &str = "resolv.conf";

/// `--dns`, `--dns-search` and `--dns-option`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsOptions {
    /// Name servers replacing the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<IpAddr>,
    /// Search domains replacing the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options replacing the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// One line of a hosts file: an address and its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The address.
    pub ip: IpAddr,
    /// Names, first one canonical.
    pub names: Vec<String>,
}

/// `/etc/hosts`: the loopback lines every docker container has, then the
/// container's own addresses, then other containers (user-defined networks).
pub fn render_hosts(own: &[HostEntry], peers: &[HostEntry]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    for entry in own.iter().chain(peers) {
        if entry.names.is_empty() {
            continue;
        }
        out.push_str(&format!("{}\t{}\n", entry.ip, entry.names.join(" ")));
    }
    out
}

/// A rendered `resolv.conf` and what the caller should tell the user about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// The file's text.
    pub content: String,
    /// Set when the file has no name server (the host's were all loopback).
    pub warning: Option<String>,
}

/// The container's `resolv.conf` from the host's: `--dns` servers replace the
/// host's; otherwise the host's minus loopback ones (unreachable from a
/// network namespace). When none remain the file has no name server — no
/// public resolver is put in silently — and [`ResolvConf::warning`] says so.
pub fn render_resolv_conf(host: &str, dns: &DnsOptions) -> ResolvConf {
    let mut servers: Vec<String> = Vec::new();
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut dropped = Vec::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                let Some(addr) = words.next() else { continue };
                if is_loopback(addr) {
                    dropped.push(addr.to_string());
                } else {
                    servers.push(addr.to_string());
                }
            }
            // A later `search` or `domain` line overrides earlier ones, as in the resolver.
            Some("search") | Some("domain") => search = words.map(str::to_string).collect(),
            Some("options") => options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    if !dns.servers.is_empty() {
        servers = dns.servers.iter().map(|s| s.to_string()).collect();
    }
    if !dns.search.is_empty() {
        search = dns.search.clone();
    }
    if !dns.options.is_empty() {
        options = dns.options.clone();
    }
    let mut content = String::new();
    for server in &servers {
        content.push_str(&format!("nameserver {server}\n"));
    }
    if !search.is_empty() {
        content.push_str(&format!("search {}\n", search.join(" ")));
    }
    if !options.is_empty() {
        content.push_str(&format!("options {}\n", options.join(" ")));
    }
    let warning = servers.is_empty().then(|| {
        let why = if dropped.is_empty() {
            "the host's resolv.conf lists no name server".to_string()
        } else {
            format!(
                "the host's only name servers ({}) are loopback addresses a container cannot reach",
                dropped.join(", ")
            )
        };
        format!("no DNS server for the container: {why}; pass --dns to set one")
    });
    if let Some(warning) = &warning {
        content.insert_str(0, &format!("# {warning}\n"));
    }
    ResolvConf { content, warning }
}

fn is_loopback(addr: &str) -> bool {
    addr.split('%')
        .next()
        .and_then(|a| a.parse::<IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// Writes `text` to `dir/name`, in place when the file exists (it may be bind-mounted).
pub fn write_in_place(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| Error::io("writing", &path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| Error::io("writing", &path, e))?;
    Ok(path)
}

/// Paths of the three files, for the engine's bind mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcFiles {
    /// Mount at `/etc/hosts`.
    pub hosts: PathBuf,
    /// Mount at `/etc/hostname`.
    pub hostname: PathBuf,
    /// Mount at `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
}

impl EtcFiles {
    /// The paths inside `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        EtcFiles {
            hosts: dir.join(HOSTS),
            hostname: dir.join(HOSTNAME),
            resolv_conf: dir.join(RESOLV_CONF),
        }
    }

    /// `(container path, host path)` pairs for bind mounts.
    pub fn mounts(&self) -> [(&'static str, &Path); 3] {
        [
            ("/etc/hosts", self.hosts.as_path()),
            ("/etc/hostname", self.hostname.as_path()),
            ("/etc/resolv.conf", self.resolv_conf.as_path()),
        ]
    }
}

/// The files of a container sharing the host's network (`--network host`):
/// the host's hosts and resolv.conf as they are, and the container's hostname.
pub fn write_host_network_files(dir: &Path, hostname: &str) -> Result<EtcFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    for (name, source) in [(HOSTS, "/etc/hosts"), (RESOLV_CONF, "/etc/resolv.conf")] {
        let text = std::fs::read_to_string(source).unwrap_or_default();
        write_in_place(dir, name, &text)?;
    }
    write_in_place(dir, HOSTNAME, &format!("{hostname}\n"))?;
    Ok(EtcFiles::in_dir(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_has_localhost_self_and_peers() {
        let own = [HostEntry {
            ip: "172.29.0.2".parse().unwrap(),
            names: vec!["abc123".into(), "web".into()],
        }];
        let peers = [HostEntry {
            ip: "172.29.0.3".parse().unwrap(),
            names: vec!["db".into(), "database".into()],
        }];
        let text = render_hosts(&own, &peers);
        assert!(
            text.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
        );
        assert!(text.contains("\n172.29.0.2\tabc123 web\n"), "{text}");
        assert!(text.ends_with("172.29.0.3\tdb database\n"), "{text}");
    }

    #[test]
    fn resolv_conf_drops_loopback_servers_and_keeps_search_and_options() {
        let host = "# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.1\nnameserver ::1\n\
                    search corp.example\noptions edns0 trust-ad\n";
        let r = render_resolv_conf(host, &DnsOptions::default());
        assert_eq!(
            r.content,
            "nameserver 10.0.0.1\nsearch corp.example\noptions edns0 trust-ad\n"
        );
        assert_eq!(r.warning, None);
    }

    #[test]
    fn dns_flags_replace_the_hosts_settings() {
        let host = "nameserver 10.0.0.1\nsearch a.example\n";
        let dns = DnsOptions {
            servers: vec!["192.0.2.53".parse().unwrap()],
            search: vec!["b.example".into()],
            options: vec!["ndots:2".into()],
        };
        let r = render_resolv_conf(host, &dns);
        assert_eq!(
            r.content,
            "nameserver 192.0.2.53\nsearch b.example\noptions ndots:2\n"
        );
    }

    #[test]
    fn only_loopback_servers_leave_none_and_say_so() {
        let r = render_resolv_conf(
            "nameserver 127.0.0.53\nsearch lan\n",
            &DnsOptions::default(),
        );
        let warning = r.warning.expect("a warning");
        assert!(
            warning.contains("127.0.0.53") && warning.contains("--dns"),
            "{warning}"
        );
        assert!(!r.content.contains("nameserver"), "{}", r.content);
        assert!(r.content.contains("search lan"));
    }

    #[test]
    fn rewrites_keep_the_inode_a_bind_mount_points_at() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = write_in_place(dir.path(), HOSTS, "first version, longer\n").unwrap();
        let inode = std::fs::metadata(&path).unwrap().ino();
        write_in_place(dir.path(), HOSTS, "second\n").unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().ino(), inode);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
    }
}
