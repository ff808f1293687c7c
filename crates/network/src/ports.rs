//! Published ports: docker's `-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`
//! syntax, the concrete mappings handed to the `portmap` plugin, and a free
//! host port picker for `-P` and `-p CONTAINER_PORT`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        })
    }
}

/// A `-p` value docker would refuse, with docker's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortSpecError {
    /// The host address is not an IP address.
    #[error("invalid IP address: {0}")]
    InvalidIp(String),
    /// Nothing after the last colon.
    #[error("no port specified: {0}<empty>")]
    NoPort(String),
    /// The container port is not a port or range.
    #[error("invalid containerPort: {0}")]
    InvalidContainerPort(String),
    /// The host port is not a port or range.
    #[error("invalid hostPort: {0}")]
    InvalidHostPort(String),
    /// Host and container ranges differ in length.
    #[error("invalid ranges specified for container and host Ports: {0} and {1}")]
    RangeMismatch(String, String),
    /// Not tcp, udp or sctp.
    #[error("invalid proto: {0}")]
    InvalidProto(String),
}

/// Which host port a publish request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPort {
    /// Exactly this port.
    Fixed(u16),
    /// Any free port in this inclusive range.
    Range(u16, u16),
    /// Any free port.
    Any,
}

/// One requested publication, before host ports are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// Host address to listen on; `None` is every address.
    pub host_ip: Option<IpAddr>,
    /// The host port wanted.
    pub host_port: HostPort,
    /// The port inside the container.
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

impl PortSpec {
    /// Parses one `-p` value; a range expands to one spec per port.
    pub fn parse(raw: &str) -> Result<Vec<PortSpec>, PortSpecError> {
        let (ip, host, container) = split_parts(raw);
        let (container, proto) = match container.split_once('/') {
            Some((port, proto)) => (port, proto),
            None => (container, "tcp"),
        };
        let host_ip = parse_ip(ip)?;
        if container.is_empty() {
            return Err(PortSpecError::NoPort(raw.to_string()));
        }
        let (c_start, c_end) = parse_range(container)
            .ok_or_else(|| PortSpecError::InvalidContainerPort(container.to_string()))?;
        let host_range = match host {
            "" => None,
            h => Some(parse_range(h).ok_or_else(|| PortSpecError::InvalidHostPort(h.into()))?),
        };
        if let Some((h_start, h_end)) = host_range {
            // A host range with one container port means "any port of the range".
            if h_end - h_start != c_end - c_start && c_end != c_start {
                return Err(PortSpecError::RangeMismatch(container.into(), host.into()));
            }
        }
        let protocol = match proto.to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => return Err(PortSpecError::InvalidProto(proto.to_string())),
        };
        Ok((c_start..=c_end)
            .map(|container_port| {
                let offset = container_port - c_start;
                let host_port = match host_range {
                    None => HostPort::Any,
                    Some((a, b)) if c_start == c_end && a != b => HostPort::Range(a, b),
                    Some((a, _)) => HostPort::Fixed(a + offset),
                };
                PortSpec {
                    host_ip,
                    host_port,
                    container_port,
                    protocol,
                }
            })
            .collect())
    }

    /// `-P` for one exposed port (`80/tcp` as in an image's `ExposedPorts`): any free host port.
    pub fn exposed(exposed: &str) -> Result<PortSpec, PortSpecError> {
        let specs = PortSpec::parse(exposed)?;
        match specs.as_slice() {
            [one] if one.host_port == HostPort::Any => Ok(*one),
            _ => Err(PortSpecError::InvalidContainerPort(exposed.to_string())),
        }
    }
}

/// `ip:host:container`, `host:container` or `container`; an IPv6 address keeps its colons.
fn split_parts(raw: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = raw.split(':').collect();
    match parts.len() {
        1 => ("", "", parts[0]),
        2 => ("", parts[0], parts[1]),
        3 => (parts[0], parts[1], parts[2]),
        n => {
            let host_start = raw.len() - parts[n - 1].len() - parts[n - 2].len() - 2;
            (&raw[..host_start], parts[n - 2], parts[n - 1])
        }
    }
}

fn parse_ip(ip: &str) -> Result<Option<IpAddr>, PortSpecError> {
    if ip.is_empty() {
        return Ok(None);
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(ip);
    bare.parse()
        .map(Some)
        .map_err(|_| PortSpecError::InvalidIp(ip.to_string()))
}

fn parse_range(s: &str) -> Option<(u16, u16)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            (a <= b).then_some((a, b))
        }
        None => port(s).map(|p| (p, p)),
    }
}

/// A concrete mapping: what `portmap` gets in `runtimeConfig.portMappings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address; `None` is every address.
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    /// Host port.
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    /// Container port.
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    /// Protocol.
    pub protocol: Protocol,
}

/// Docker's `ps`/`port` form: `0.0.0.0:8080->80/tcp`.
impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let addr = SocketAddr::new(ip, self.host_port);
        write!(f, "{addr}->{}/{}", self.container_port, self.protocol)
    }
}

impl FromStr for PortMapping {
    type Err = PortSpecError;

    /// Parses a `-p` value that names exactly one host and one container port.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match PortSpec::parse(s)?.as_slice() {
            [
                PortSpec {
                    host_ip,
                    host_port: HostPort::Fixed(host_port),
                    container_port,
                    protocol,
                },
            ] => Ok(PortMapping {
                host_ip: *host_ip,
                host_port: *host_port,
                container_port: *container_port,
                protocol: *protocol,
            }),
            _ => Err(PortSpecError::InvalidHostPort(s.to_string())),
        }
    }
}

/// Chooses host ports for `specs`, avoiding `taken` (ports other containers publish)
/// and ports a host process holds. Fixed ports that are taken are an error.
pub fn assign_host_ports(
    specs: &[PortSpec],
    taken: &[PortMapping],
) -> crate::Result<Vec<PortMapping>> {
    let mut chosen: Vec<PortMapping> = Vec::with_capacity(specs.len());
    for spec in specs {
        let busy = |port: u16, chosen: &[PortMapping]| {
            taken.iter().chain(chosen.iter()).any(|m| {
                m.protocol == spec.protocol
                    && m.host_port == port
                    && overlaps(m.host_ip, spec.host_ip)
            })
        };
        let port = match spec.host_port {
            HostPort::Fixed(port) => {
                if busy(port, &chosen) || !bindable(spec.host_ip, port, spec.protocol) {
                    return Err(crate::Error::PortAllocated {
                        host_ip: spec.host_ip.map_or("0.0.0.0".into(), |ip| ip.to_string()),
                        port,
                    });
                }
                port
            }
            HostPort::Range(a, b) => (a..=b)
                .find(|p| !busy(*p, &chosen) && bindable(spec.host_ip, *p, spec.protocol))
                .ok_or_else(|| crate::Error::NoFreePort(format!("{a}-{b}/{}", spec.protocol)))?,
            HostPort::Any => (0..64)
                .filter_map(|_| ephemeral_port(spec.host_ip, spec.protocol))
                .find(|p| !busy(*p, &chosen))
                .ok_or_else(|| {
                    crate::Error::NoFreePort(format!("{}/{}", spec.container_port, spec.protocol))
                })?,
        };
        chosen.push(PortMapping {
            host_ip: spec.host_ip,
            host_port: port,
            container_port: spec.container_port,
            protocol: spec.protocol,
        });
    }
    Ok(chosen)
}

fn overlaps(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
        _ => true,
    }
}

fn bind_addr(ip: Option<IpAddr>, port: u16) -> SocketAddr {
    SocketAddr::new(ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port)
}

/// True when no host process holds the port (as docker's proxy would find on binding).
pub(crate) fn bindable(ip: Option<IpAddr>, port: u16, protocol: Protocol) -> bool {
    let addr = bind_addr(ip, port);
    match protocol {
        Protocol::Tcp => TcpListener::bind(addr).is_ok(),
        Protocol::Udp => UdpSocket::bind(addr).is_ok(),
        Protocol::Sctp => true,
    }
}

/// A port the kernel considers free right now, from its ephemeral range.
fn ephemeral_port(ip: Option<IpAddr>, protocol: Protocol) -> Option<u16> {
    let addr = bind_addr(ip, 0);
    match protocol {
        Protocol::Udp => UdpSocket::bind(addr)
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
        _ => TcpListener::bind(addr)
            .ok()?
            .local_addr()
            .ok()
            .map(|a| a.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(raw: &str) -> PortSpec {
        let specs = PortSpec::parse(raw).unwrap();
        assert_eq!(specs.len(), 1, "{raw}");
        specs[0]
    }

    #[test]
    fn docker_forms_parse() {
        let s = one("8080:80");
        assert_eq!(
            (s.host_ip, s.host_port, s.container_port),
            (None, HostPort::Fixed(8080), 80)
        );
        assert_eq!(s.protocol, Protocol::Tcp);
        let s = one("127.0.0.1:18080:80/udp");
        assert_eq!(s.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(s.protocol, Protocol::Udp);
        assert_eq!(one("80").host_port, HostPort::Any);
        assert_eq!(one("127.0.0.1::80").host_port, HostPort::Any);
        assert_eq!(one("[::1]:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(one("::1:8080:80").host_ip, Some("::1".parse().unwrap()));
        assert_eq!(one("8000-8010:80").host_port, HostPort::Range(8000, 8010));
        assert_eq!(one("80/TCP").protocol, Protocol::Tcp);
        let range = PortSpec::parse("9000-9002:80-82").unwrap();
        let pairs: Vec<_> = range
            .iter()
            .map(|s| (s.host_port, s.container_port))
            .collect();
        assert_eq!(
            pairs,
            [
                (HostPort::Fixed(9000), 80),
                (HostPort::Fixed(9001), 81),
                (HostPort::Fixed(9002), 82)
            ]
        );
    }

    #[test]
    fn bad_values_get_dockers_errors() {
        let err = |raw: &str| PortSpec::parse(raw).unwrap_err().to_string();
        assert_eq!(err("8080:"), "no port specified: 8080:<empty>");
        assert_eq!(err("8080:http"), "invalid containerPort: http");
        assert_eq!(err("99999:80"), "invalid hostPort: 99999");
        assert_eq!(err("0:80"), "invalid hostPort: 0");
        assert_eq!(err("8080:80/icmp"), "invalid proto: icmp");
        assert_eq!(err("300.1.1.1:8080:80"), "invalid IP address: 300.1.1.1");
        assert_eq!(
            err("8000-8001:80-82"),
            "invalid ranges specified for container and host Ports: 80-82 and 8000-8001"
        );
        assert_eq!(err("90-80"), "invalid containerPort: 90-80");
    }

    #[test]
    fn mappings_display_as_docker_ps_does_and_serialize_for_portmap() {
        let m: PortMapping = "8080:80".parse().unwrap();
        assert_eq!(m.to_string(), "0.0.0.0:8080->80/tcp");
        let m: PortMapping = "127.0.0.1:53:53/udp".parse().unwrap();
        assert_eq!(m.to_string(), "127.0.0.1:53->53/udp");
        let json = serde_json::to_value(m).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"hostIP": "127.0.0.1", "hostPort": 53, "containerPort": 53, "protocol": "udp"})
        );
        assert!(
            "80".parse::<PortMapping>().is_err(),
            "no host port: not a concrete mapping"
        );
    }

    #[test]
    fn host_ports_avoid_taken_ones_and_fixed_conflicts_fail() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let held_port = held.local_addr().unwrap().port();
        let spec = one(&format!("127.0.0.1:{held_port}:80"));
        let err = assign_host_ports(&[spec], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Bind for 127.0.0.1:{held_port} failed: port is already allocated")
        );

        let other = PortMapping {
            host_ip: None,
            host_port: 40123,
            container_port: 80,
            protocol: Protocol::Tcp,
        };
        let clash = one("40123:81");
        assert!(
            assign_host_ports(&[clash], &[other]).is_err(),
            "another container has it"
        );
        let udp = one("40123:81/udp");
        assert_eq!(
            assign_host_ports(&[udp], &[other]).unwrap()[0].host_port,
            40123
        );

        let any = [one("80"), one("81")];
        let chosen = assign_host_ports(&any, &[]).unwrap();
        assert_ne!(chosen[0].host_port, chosen[1].host_port);
        assert!(chosen.iter().all(|m| m.host_port != 0));
        let ranged =
            assign_host_ports(&[one(&format!("{held_port}-{}:80", held_port + 5))], &[]).unwrap();
        assert!(ranged[0].host_port > held_port, "the held port is skipped");
    }
}
