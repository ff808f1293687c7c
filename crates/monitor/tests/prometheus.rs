//! Scrapes the exporter over 127.0.0.1 and checks the exposition: every
//! family has HELP and TYPE before its samples, names are cAdvisor's, labels
//! are escaped and values parse.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;

use basic_monitor::prometheus::Server;
use basic_monitor::{ContainerSampler, ContainerSnapshot, HostSampler, Snapshot};

fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// `name{labels} value` → (name, labels, value), unescaping label values.
fn parse_sample(line: &str) -> (String, BTreeMap<String, String>, f64) {
    let (series, value) = line.rsplit_once(' ').unwrap();
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("value of {line:?}"));
    let Some((name, rest)) = series.split_once('{') else {
        return (series.to_string(), BTreeMap::new(), value);
    };
    let mut labels = BTreeMap::new();
    let mut chars = rest.strip_suffix('}').unwrap().chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut v = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next().unwrap() {
                    'n' => v.push('\n'),
                    c => v.push(c),
                },
                '"' => break,
                c => v.push(c),
            }
        }
        labels.insert(key.trim_start_matches(',').to_string(), v);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    (name.to_string(), labels, value)
}

#[test]
fn scrape_metrics_endpoint() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let v1 = data.join("v1");
    let proc_root = data.join("proc");
    std::thread::spawn(move || {
        let mut host = HostSampler::new("/proc", "/sys");
        let mut c1 = ContainerSampler::v1(&v1, "/").with_network(&proc_root, 13477);
        let mut c2 = ContainerSampler::v2(&data.join("v2"), "/");
        server
            .run(move || -> Result<Snapshot, Box<dyn std::error::Error>> {
                Ok(Snapshot {
                    host: Some(host.sample()?),
                    containers: vec![
                        ContainerSnapshot {
                            id: "/basic-docker/v1".into(),
                            name: "odd \"name\" \\ with\nnewline".into(),
                            image: "busybox:latest".into(),
                            stats: c1.sample()?,
                        },
                        ContainerSnapshot {
                            id: "/basic-docker/v2".into(),
                            name: "web".into(),
                            image: "127.0.0.1:5000/nginx:1".into(),
                            stats: c2.sample()?,
                        },
                    ],
                })
            })
            .unwrap();
    });

    let (head, body) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");

    let mut helped = BTreeSet::new();
    let mut typed = BTreeMap::new();
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(
                helped.insert(rest.split(' ').next().unwrap().to_string()),
                "HELP twice: {line}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge"].contains(&kind), "{line}");
            assert!(helped.contains(name), "TYPE before HELP: {line}");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line}"
            );
        } else {
            let (name, labels, value) = parse_sample(line);
            assert!(typed.contains_key(&name), "sample before its TYPE: {line}");
            if name.ends_with("_total") {
                assert_eq!(typed[&name], "counter", "{name}");
            }
            samples.push((name, labels, value));
        }
    }
    let find = |name: &str, id: &str| -> f64 {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l.get("id").map(String::as_str) == Some(id))
            .unwrap_or_else(|| panic!("{name} for {id} missing"))
            .2
    };
    // Values from the recorded files, in cAdvisor's units.
    assert_eq!(
        find("container_cpu_usage_seconds_total", "/basic-docker/v1"),
        0.654662245
    );
    assert_eq!(
        find("container_cpu_usage_seconds_total", "/basic-docker/v2"),
        8.472931
    );
    assert_eq!(
        find(
            "container_cpu_cfs_throttled_periods_total",
            "/basic-docker/v2"
        ),
        318.0
    );
    assert_eq!(
        find("container_memory_usage_bytes", "/basic-docker/v1"),
        43_520_000.0
    );
    assert_eq!(
        find("container_memory_working_set_bytes", "/basic-docker/v2"),
        53_690_368.0
    );
    assert_eq!(
        find("container_spec_memory_limit_bytes", "/basic-docker/v2"),
        268_435_456.0
    );
    assert_eq!(
        find("container_memory_rss", "/basic-docker/v2"),
        52_428_800.0
    );
    assert_eq!(
        find("container_memory_cache", "/basic-docker/v1"),
        42_385_408.0
    );
    assert_eq!(find("container_oom_events_total", "/basic-docker/v2"), 1.0);
    assert_eq!(find("container_processes", "/basic-docker/v2"), 5.0);
    assert_eq!(
        find("container_fs_reads_bytes_total", "/basic-docker/v2"),
        10_489_856.0
    );
    assert_eq!(
        find("container_fs_writes_bytes_total", "/basic-docker/v2"),
        4_194_304.0
    );
    let rx = samples
        .iter()
        .find(|(n, l, _)| {
            n == "container_network_receive_bytes_total"
                && l.get("interface").map(String::as_str) == Some("eth0")
        })
        .unwrap();
    assert_eq!(rx.2, 205_017_200.0);
    assert!(typed.contains_key("container_network_transmit_bytes_total"));
    // Labels survive escaping.
    assert_eq!(rx.1["name"], "odd \"name\" \\ with\nnewline");
    assert_eq!(rx.1["image"], "busybox:latest");
    for (_, l, _) in samples
        .iter()
        .filter(|(n, _, _)| n.starts_with("container_"))
    {
        assert!(l.contains_key("id") && l.contains_key("name") && l.contains_key("image"));
    }
    let cores = samples
        .iter()
        .find(|(n, _, _)| n == "machine_cpu_cores")
        .unwrap()
        .2;
    assert!(cores >= 1.0);
    assert!(
        samples
            .iter()
            .any(|(n, _, v)| n == "machine_memory_bytes" && *v > 0.0)
    );

    let (head, _) = get(addr, "/other");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[test]
fn failed_snapshot_is_a_500() {
    let server = Server::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    std::thread::spawn(move || {
        server
            .run(|| -> Result<Snapshot, String> { Err("cgroup gone".into()) })
            .unwrap()
    });
    let (head, body) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 500"), "{head}");
    assert!(body.contains("cgroup gone"));
}
