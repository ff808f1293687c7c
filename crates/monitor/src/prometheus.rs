//! Prometheus text exposition (format 0.0.4) with cAdvisor's metric names and
//! `id`/`name`/`image` labels, so existing dashboards work unchanged; and a
//! small blocking HTTP server answering `GET /metrics`.
//!
//! std::net rather than an HTTP crate: one route, one scraper, a few
//! requests a minute — a blocking accept loop is enough and adds no dependency.

use std::fmt::{Display, Write as _};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cgroup::ContainerStats;
use crate::host::HostStats;

/// Why the exporter's server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Bind {
        /// The address as given.
        addr: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Accepting connections failed.
    #[error("accepting on {addr}: {source}")]
    Accept {
        /// The bound address.
        addr: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// One container in a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerSnapshot {
    /// `id` label: cAdvisor uses the cgroup path (`/basic-docker/<id>`).
    pub id: String,
    /// `name` label: the container's name.
    pub name: String,
    /// `image` label: the image reference.
    pub image: String,
    /// Its sample.
    pub stats: ContainerStats,
}

/// Everything one scrape exposes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The host, for `machine_*` and `node_*` metrics.
    pub host: Option<HostStats>,
    /// The containers.
    pub containers: Vec<ContainerSnapshot>,
}

type Getter = fn(&ContainerStats) -> Option<f64>;

/// cAdvisor's per-container metrics this crate can fill: name, type, help, value.
const CONTAINER_METRICS: &[(&str, &str, &str, Getter)] = &[
    (
        "container_cpu_usage_seconds_total",
        "counter",
        "Cumulative cpu time consumed in seconds.",
        |s| s.cpu.as_ref().map(|c| c.usage_ns as f64 / 1e9),
    ),
    (
        "container_cpu_user_seconds_total",
        "counter",
        "Cumulative user cpu time consumed in seconds.",
        |s| s.cpu.as_ref().map(|c| c.user_ns as f64 / 1e9),
    ),
    (
        "container_cpu_system_seconds_total",
        "counter",
        "Cumulative system cpu time consumed in seconds.",
        |s| s.cpu.as_ref().map(|c| c.system_ns as f64 / 1e9),
    ),
    (
        "container_cpu_cfs_periods_total",
        "counter",
        "Number of elapsed enforcement period intervals.",
        |s| s.cpu.as_ref().map(|c| c.nr_periods as f64),
    ),
    (
        "container_cpu_cfs_throttled_periods_total",
        "counter",
        "Number of throttled period intervals.",
        |s| s.cpu.as_ref().map(|c| c.nr_throttled as f64),
    ),
    (
        "container_cpu_cfs_throttled_seconds_total",
        "counter",
        "Total time duration the container has been throttled.",
        |s| s.cpu.as_ref().map(|c| c.throttled_ns as f64 / 1e9),
    ),
    (
        "container_spec_cpu_quota",
        "gauge",
        "CPU quota of the container.",
        |s| s.cpu.as_ref().and_then(|c| c.quota_us).map(|q| q as f64),
    ),
    (
        "container_spec_cpu_period",
        "gauge",
        "CPU period of the container.",
        |s| s.cpu.as_ref().and_then(|c| c.period_us).map(|p| p as f64),
    ),
    (
        "container_memory_usage_bytes",
        "gauge",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        |s| s.memory.as_ref().map(|m| m.usage_bytes as f64),
    ),
    (
        "container_memory_working_set_bytes",
        "gauge",
        "Current working set in bytes.",
        |s| s.memory.as_ref().map(|m| m.working_set_bytes as f64),
    ),
    (
        "container_memory_rss",
        "gauge",
        "Size of RSS in bytes.",
        |s| s.memory.as_ref().map(|m| m.rss_bytes as f64),
    ),
    (
        "container_memory_cache",
        "gauge",
        "Number of bytes of page cache memory.",
        |s| s.memory.as_ref().map(|m| m.cache_bytes as f64),
    ),
    (
        "container_memory_max_usage_bytes",
        "gauge",
        "Maximum memory usage recorded in bytes",
        |s| {
            s.memory
                .as_ref()
                .and_then(|m| m.max_usage_bytes)
                .map(|v| v as f64)
        },
    ),
    // cAdvisor reports 0 for "no limit".
    (
        "container_spec_memory_limit_bytes",
        "gauge",
        "Memory limit for the container.",
        |s| s.memory.as_ref().map(|m| m.limit_bytes.unwrap_or(0) as f64),
    ),
    (
        "container_oom_events_total",
        "counter",
        "Count of out of memory events observed for the container",
        |s| {
            s.memory
                .as_ref()
                .and_then(|m| m.oom_kills)
                .map(|v| v as f64)
        },
    ),
    (
        "container_processes",
        "gauge",
        "Number of processes running inside the container.",
        |s| s.pids.as_ref().map(|p| p.current as f64),
    ),
    (
        "container_tasks_limit",
        "gauge",
        "Maximum number of tasks (pids.max) of the container; absent when unlimited.",
        |s| s.pids.as_ref().and_then(|p| p.limit).map(|v| v as f64),
    ),
    (
        "container_fs_reads_bytes_total",
        "counter",
        "Cumulative count of bytes read",
        |s| s.blkio.as_ref().map(|b| b.read_bytes as f64),
    ),
    (
        "container_fs_writes_bytes_total",
        "counter",
        "Cumulative count of bytes written",
        |s| s.blkio.as_ref().map(|b| b.write_bytes as f64),
    ),
    (
        "container_fs_reads_total",
        "counter",
        "Cumulative count of reads completed",
        |s| s.blkio.as_ref().map(|b| b.read_ops as f64),
    ),
    (
        "container_fs_writes_total",
        "counter",
        "Cumulative count of writes completed",
        |s| s.blkio.as_ref().map(|b| b.write_ops as f64),
    ),
];

type NetGetter = fn(&crate::network::InterfaceStats) -> u64;

/// Per-interface network metrics (label `interface`), as cAdvisor exports them.
const NETWORK_METRICS: &[(&str, &str, NetGetter)] = &[
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        |i| i.rx_bytes,
    ),
    (
        "container_network_receive_packets_total",
        "Cumulative count of packets received",
        |i| i.rx_packets,
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        |i| i.rx_errors,
    ),
    (
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        |i| i.rx_dropped,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        |i| i.tx_bytes,
    ),
    (
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
        |i| i.tx_packets,
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        |i| i.tx_errors,
    ),
    (
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        |i| i.tx_dropped,
    ),
];

type HostGetter = fn(&HostStats) -> f64;

/// Machine metrics (cAdvisor's `machine_*`) and a few node_exporter-style ones.
const HOST_METRICS: &[(&str, &str, &str, HostGetter)] = &[
    (
        "machine_cpu_cores",
        "gauge",
        "Number of logical CPU cores.",
        |h| h.cpus as f64,
    ),
    (
        "machine_memory_bytes",
        "gauge",
        "Amount of memory installed on the machine.",
        |h| h.memory.total_bytes as f64,
    ),
    (
        "node_memory_MemAvailable_bytes",
        "gauge",
        "Memory information field MemAvailable_bytes.",
        |h| h.memory.available_bytes as f64,
    ),
    ("node_load1", "gauge", "1m load average.", |h| h.load.one),
    ("node_load5", "gauge", "5m load average.", |h| h.load.five),
    ("node_load15", "gauge", "15m load average.", |h| {
        h.load.fifteen
    }),
    ("node_uptime_seconds", "gauge", "Seconds since boot.", |h| {
        h.uptime_seconds
    }),
    (
        "node_cpu_busy_seconds_total",
        "counter",
        "CPU time not idle, summed over CPUs.",
        |h| h.cpu.busy_ns() as f64 / 1e9,
    ),
    (
        "node_cpu_idle_seconds_total",
        "counter",
        "CPU time idle, summed over CPUs.",
        |h| (h.cpu.idle_ns + h.cpu.iowait_ns) as f64 / 1e9,
    ),
];

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // HELP text escapes backslash and newline only.
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn labels(out: &mut String, c: &ContainerSnapshot, extra: Option<(&str, &str)>) {
    out.push_str("{id=\"");
    escape_label(&c.id, out);
    out.push_str("\",image=\"");
    escape_label(&c.image, out);
    out.push_str("\",name=\"");
    escape_label(&c.name, out);
    out.push('"');
    if let Some((k, v)) = extra {
        let _ = write!(out, ",{k}=\"");
        escape_label(v, out);
        out.push('"');
    }
    out.push('}');
}

/// Appends the exposition of `snapshot` to `out`: one HELP/TYPE pair per
/// metric family, families with no value are left out.
pub fn render(snapshot: &Snapshot, out: &mut String) {
    for &(name, kind, help, get) in CONTAINER_METRICS {
        let mut headed = false;
        for c in &snapshot.containers {
            let Some(v) = get(&c.stats) else { continue };
            if !headed {
                header(out, name, kind, help);
                headed = true;
            }
            out.push_str(name);
            labels(out, c, None);
            let _ = writeln!(out, " {v}");
        }
    }
    for &(name, help, get) in NETWORK_METRICS {
        let mut headed = false;
        for c in &snapshot.containers {
            let Some(net) = &c.stats.network else {
                continue;
            };
            for i in &net.interfaces {
                if !headed {
                    header(out, name, "counter", help);
                    headed = true;
                }
                out.push_str(name);
                labels(out, c, Some(("interface", &i.name)));
                let _ = writeln!(out, " {}", get(i));
            }
        }
    }
    if let Some(h) = &snapshot.host {
        for &(name, kind, help, get) in HOST_METRICS {
            header(out, name, kind, help);
            let _ = writeln!(out, "{name} {}", get(h));
        }
    }
}

/// The exposition of `snapshot` as a new string.
pub fn render_to_string(snapshot: &Snapshot) -> String {
    let mut s = String::with_capacity(4096);
    render(snapshot, &mut s);
    s
}

/// A bound exporter: bind first (so a test can learn the port), then run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: String,
}

impl Server {
    /// Binds `listen_addr` (e.g. `127.0.0.1:9323`; port 0 picks one).
    pub fn bind(listen_addr: impl ToSocketAddrs + Display) -> Result<Server, ServeError> {
        let addr = listen_addr.to_string();
        let listener = TcpListener::bind(listen_addr).map_err(|source| ServeError::Bind {
            addr: addr.clone(),
            source,
        })?;
        Ok(Server { listener, addr })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Answers requests one at a time, forever: `GET /metrics` calls
    /// `snapshot` and renders it; a failed snapshot is a 500 with its message.
    /// A misbehaving client only loses its own connection.
    pub fn run<F, E>(&self, mut snapshot: F) -> Result<(), ServeError>
    where
        F: FnMut() -> Result<Snapshot, E>,
        E: Display,
    {
        let mut body = String::with_capacity(16 * 1024);
        loop {
            let (stream, _) = match self.listener.accept() {
                Ok(s) => s,
                // The client gave up before we accepted: not our failure.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(source) => {
                    return Err(ServeError::Accept {
                        addr: self.addr.clone(),
                        source,
                    });
                }
            };
            let _ = handle(stream, &mut snapshot, &mut body);
        }
    }
}

/// Binds `listen_addr` and serves `GET /metrics` forever (see [`Server::run`]).
pub fn serve<F, E>(listen_addr: impl ToSocketAddrs + Display, snapshot: F) -> Result<(), ServeError>
where
    F: FnMut() -> Result<Snapshot, E>,
    E: Display,
{
    Server::bind(listen_addr)?.run(snapshot)
}

fn handle<F, E>(mut stream: TcpStream, snapshot: &mut F, body: &mut String) -> io::Result<()>
where
    F: FnMut() -> Result<Snapshot, E>,
    E: Display,
{
    // A client that connects and sends nothing must not stall the exporter.
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req = [0u8; 8192];
    let mut len = 0;
    while !req[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < req.len() {
        let n = stream.read(&mut req[len..])?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&req[..len]);
    let mut first = head.lines().next().unwrap_or("").split_ascii_whitespace();
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    body.clear();
    let (status, ctype) = match (method, path) {
        ("GET", "/metrics") => match snapshot() {
            Ok(s) => {
                render(&s, body);
                ("200 OK", "text/plain; version=0.0.4; charset=utf-8")
            }
            Err(e) => {
                let _ = writeln!(body, "snapshot failed: {e}");
                ("500 Internal Server Error", "text/plain; charset=utf-8")
            }
        },
        ("GET", _) => {
            body.push_str("not found: try /metrics\n");
            ("404 Not Found", "text/plain; charset=utf-8")
        }
        _ => {
            body.push_str("only GET is supported\n");
            ("405 Method Not Allowed", "text/plain; charset=utf-8")
        }
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_escaping() {
        let mut s = String::new();
        escape_label("a\\b\"c\nd", &mut s);
        assert_eq!(s, "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn empty_snapshot_renders_nothing() {
        assert_eq!(render_to_string(&Snapshot::default()), "");
    }
}
