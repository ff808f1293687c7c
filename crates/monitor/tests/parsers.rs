//! Parsers on recorded files: cgroup v1 files recorded on the development
//! machine (hybrid layout, cpu and cpuacct mounted separately), hand-written
//! cgroup v2 files with round values, and /proc files recorded there. Files
//! recorded from a real pure-v2 kernel are tested in `recorded_v2.rs`.

use std::path::{Path, PathBuf};

use basic_monitor::{
    CgroupVersion, ContainerSampler, HostSampler, NetworkSampler, ProcessSampler, container_rates,
    host_rates,
};

fn data(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(sub)
}

#[test]
fn detects_both_layouts() {
    assert_eq!(CgroupVersion::detect(&data("v1")), Some(CgroupVersion::V1));
    assert_eq!(CgroupVersion::detect(&data("v2")), Some(CgroupVersion::V2));
    assert_eq!(CgroupVersion::detect(&data("proc")), None);
    assert!(ContainerSampler::detect(&data("proc"), "/").is_err());
}

#[test]
fn v1_recorded_files() {
    let mut s = ContainerSampler::detect(&data("v1"), "/").unwrap();
    assert_eq!(s.version(), CgroupVersion::V1);
    let st = s.sample().unwrap();
    let cpu = st.cpu.unwrap();
    assert_eq!(cpu.usage_ns, 654_662_245);
    let tick_ns = 1_000_000_000 / basic_monitor::clock_ticks_per_second();
    assert_eq!(cpu.user_ns, 51 * tick_ns);
    assert_eq!(cpu.system_ns, 14 * tick_ns);
    assert_eq!(
        (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_ns),
        (14, 12, 552_598_794)
    );
    assert_eq!((cpu.quota_us, cpu.period_us), (Some(50_000), Some(100_000)));

    let m = st.memory.unwrap();
    assert_eq!(m.usage_bytes, 43_520_000);
    assert_eq!(m.limit_bytes, Some(268_435_456));
    assert_eq!(m.max_usage_bytes, Some(106_700_800));
    assert_eq!(m.cache_bytes, 42_385_408);
    assert_eq!(m.rss_bytes, 159_744);
    assert_eq!(m.inactive_file_bytes, 42_070_016);
    assert_eq!(m.working_set_bytes, 43_520_000 - 42_070_016);
    assert_eq!(m.oom_kills, Some(0));

    let p = st.pids.unwrap();
    assert_eq!((p.current, p.limit), (2, Some(64)));
    // Recorded on a virtio disk that blk-throttle does not account: "Total 0".
    let b = st.blkio.unwrap();
    assert_eq!((b.read_bytes, b.write_bytes), (0, 0));
    assert!(st.network.is_none());

    let mut pids = Vec::new();
    s.pids(&mut pids).unwrap();
    assert_eq!(pids, [4242, 4250]);
}

#[test]
fn v1_blkio_devices_and_missing_controllers() {
    let st = ContainerSampler::v1(&data("v1-devices"), "/")
        .sample()
        .unwrap();
    // Only blkio is "mounted" here: the others are None, not errors.
    assert!(st.cpu.is_none() && st.memory.is_none() && st.pids.is_none());
    let b = st.blkio.unwrap();
    assert_eq!(b.read_bytes, 10_485_760 + 8192);
    assert_eq!(b.write_bytes, 4_194_304);
    assert_eq!((b.read_ops, b.write_ops), (162, 64));
}

#[test]
fn v2_files() {
    let mut s = ContainerSampler::v2(&data("v2"), "/");
    let st = s.sample().unwrap();
    assert_eq!(st.version, CgroupVersion::V2);
    let cpu = st.cpu.unwrap();
    assert_eq!(cpu.usage_ns, 8_472_931_000);
    assert_eq!(cpu.user_ns, 6_123_400_000);
    assert_eq!(cpu.system_ns, 2_349_531_000);
    assert_eq!(
        (cpu.nr_periods, cpu.nr_throttled, cpu.throttled_ns),
        (1204, 318, 9_571_244_000)
    );
    assert_eq!((cpu.quota_us, cpu.period_us), (Some(50_000), Some(100_000)));
    let m = st.memory.unwrap();
    assert_eq!(m.usage_bytes, 55_214_080);
    assert_eq!(m.limit_bytes, Some(268_435_456));
    assert_eq!(m.max_usage_bytes, Some(61_865_984));
    assert_eq!((m.rss_bytes, m.cache_bytes), (52_428_800, 2_252_800));
    assert_eq!(m.working_set_bytes, 55_214_080 - 1_523_712);
    assert_eq!(m.oom_kills, Some(1));
    let p = st.pids.unwrap();
    assert_eq!((p.current, p.limit), (5, Some(100)));
    let b = st.blkio.unwrap();
    assert_eq!(
        (b.read_bytes, b.write_bytes),
        (10_485_760 + 4096, 4_194_304)
    );
    assert_eq!((b.read_ops, b.write_ops), (161, 64));
    let mut pids = Vec::new();
    s.pids(&mut pids).unwrap();
    assert_eq!(pids, [12345, 12390]);
}

#[test]
fn unlimited_values_and_missing_cgroup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cgroup.controllers"), "memory pids\n").unwrap();
    std::fs::write(dir.path().join("memory.current"), "4096\n").unwrap();
    std::fs::write(dir.path().join("memory.max"), "max\n").unwrap();
    std::fs::write(dir.path().join("pids.current"), "1\n").unwrap();
    std::fs::write(dir.path().join("pids.max"), "max\n").unwrap();
    let st = ContainerSampler::v2(dir.path(), "/").sample().unwrap();
    assert_eq!(st.memory.unwrap().limit_bytes, None);
    assert_eq!(st.pids.unwrap().limit, None);
    assert!(st.cpu.is_none() && st.blkio.is_none());

    // v1's "unlimited" is a huge page-rounded number.
    let v1 = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(v1.path().join("memory/c")).unwrap();
    std::fs::write(v1.path().join("memory/c/memory.usage_in_bytes"), "1\n").unwrap();
    std::fs::write(
        v1.path().join("memory/c/memory.limit_in_bytes"),
        "9223372036854771712\n",
    )
    .unwrap();
    let st = ContainerSampler::v1(v1.path(), "/c").sample().unwrap();
    assert_eq!(st.memory.unwrap().limit_bytes, None);

    // A cgroup that does not exist: every group None.
    let st = ContainerSampler::v1(&data("v1"), "/gone").sample().unwrap();
    assert!(st.cpu.is_none() && st.memory.is_none() && st.pids.is_none() && st.blkio.is_none());
}

#[test]
fn parse_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cgroup.controllers"), "memory\n").unwrap();
    std::fs::write(dir.path().join("memory.current"), "lots\n").unwrap();
    let err = ContainerSampler::v2(dir.path(), "/")
        .sample()
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory.current"), "{err}");
    assert!(err.contains("lots"), "{err}");

    let err = ProcessSampler::new(data("proc"))
        .sample(999_999)
        .unwrap_err()
        .to_string();
    assert!(err.contains("999999"), "{err}");
}

#[test]
fn process_recorded_files() {
    let mut ps = ProcessSampler::new(data("proc"));
    let p = ps.sample(13477).unwrap();
    assert_eq!(p.comm, "sleep");
    assert_eq!(p.state, 'S');
    assert_eq!(p.ppid, 13467);
    assert_eq!(p.threads, 1);
    assert_eq!(p.vsize_bytes, 2_990_080);
    assert_eq!(p.rss_bytes, 1756 * 1024);
    assert_eq!(p.ns_pids, [13477]);
    assert_eq!(p.uid, 0);
    let io = p.io.clone().unwrap();
    assert_eq!((io.rchar, io.syscr, io.wchar), (6976, 10, 0));
    assert_eq!(p.fd_count, Some(5));
    assert_eq!(p.namespaces.net, Some(4026531833));
    assert_eq!(p.namespaces.pid, Some(4026531836));
    assert_eq!(p.namespaces.uts, Some(4026531838));
    assert_eq!(p.cgroups.len(), 10);
    assert_eq!(
        p.cgroup_path(Some("memory")),
        Some("/process_api/8f583f140597ffa3f6efa74f098e7fea")
    );
    assert_eq!(p.cgroup_path(None), Some("/"));
    assert_eq!(
        ps.hostname(13477).unwrap().as_deref(),
        Some("recorded-host")
    );
}

#[test]
fn comm_with_spaces_and_parens() {
    let dir = tempfile::tempdir().unwrap();
    let pdir = dir.path().join("77");
    std::fs::create_dir(&pdir).unwrap();
    let stat = "77 (a) b (c)) R 1 77 77 0 -1 4194560 10 0 0 0 300 200 0 0 20 0 3 0 500 1048576 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    std::fs::write(pdir.join("stat"), stat).unwrap();
    let p = ProcessSampler::new(dir.path()).sample(77).unwrap();
    assert_eq!(p.comm, "a) b (c)");
    assert_eq!(p.state, 'R');
    assert_eq!(p.threads, 3);
    let tick_ns = 1_000_000_000 / basic_monitor::clock_ticks_per_second();
    assert_eq!(p.cpu_time_ns(), 500 * tick_ns);
    // No status, io, fd, ns, cgroup: tolerated.
    assert!(p.io.is_none() && p.fd_count.is_none() && p.cgroups.is_empty());
}

#[test]
fn cgroup_from_pid() {
    // The recorded process's memory cgroup is /process_api/<id>, its cpu
    // cgroup is /: the sampler must use the right one per controller.
    let s = ContainerSampler::for_pid(&data("proc"), &data("v1"), 13477).unwrap();
    assert_eq!(
        s.cgroup_path(),
        "/process_api/8f583f140597ffa3f6efa74f098e7fea"
    );
    let mut s = s;
    let st = s.sample().unwrap();
    assert!(
        st.memory.is_none(),
        "that memory cgroup is not in the recording"
    );
    assert_eq!(st.cpu.unwrap().usage_ns, 654_662_245);
    let net = st.network.unwrap();
    assert_eq!(net.interfaces.len(), 4);
}

#[test]
fn host_recorded_files() {
    let mut h = HostSampler::new(data("proc"), data("no-sys"));
    let st = h.sample().unwrap();
    assert_eq!(st.cpus, 2, "from the cpuN lines when /sys is absent");
    let tick_ns = 1_000_000_000 / basic_monitor::clock_ticks_per_second();
    assert_eq!(st.cpu.user_ns, 216_286 * tick_ns);
    assert_eq!(st.cpu.idle_ns, 378_277 * tick_ns);
    assert_eq!(st.memory.total_bytes, 24_684_084 * 1024);
    assert_eq!(st.memory.available_bytes, 23_994_460 * 1024);
    assert_eq!(
        (st.load.one, st.load.five, st.load.fifteen),
        (1.26, 1.60, 1.61)
    );
    assert_eq!((st.load.running, st.load.total), (4, 118));
    assert_eq!(st.uptime_seconds, 3448.94);
    let eth0 = st
        .network
        .interfaces
        .iter()
        .find(|i| i.name == "eth0")
        .unwrap();
    assert_eq!(
        (
            eth0.rx_bytes,
            eth0.rx_packets,
            eth0.tx_bytes,
            eth0.tx_packets
        ),
        (205_017_200, 9992, 624_993, 6209)
    );
    // Loopback is not traffic in or out.
    assert_eq!(st.network.total().rx_bytes, 205_017_200);
    assert!(st.disk.is_none());

    let err = HostSampler::new(data("v1"), data("no-sys"))
        .sample()
        .unwrap_err()
        .to_string();
    assert!(err.contains("stat") && err.contains("proc root"), "{err}");
}

#[test]
fn rates_from_two_samples() {
    let a = ContainerSampler::v2(&data("v2"), "/").sample().unwrap();
    let mut b = a.clone();
    b.timestamp_ns = a.timestamp_ns + 2_000_000_000;
    b.cpu.as_mut().unwrap().usage_ns += 3_000_000_000;
    b.cpu.as_mut().unwrap().nr_periods += 20;
    b.cpu.as_mut().unwrap().nr_throttled += 5;
    b.blkio.as_mut().unwrap().write_bytes += 1_000_000;
    let r = container_rates(&a, &b, None);
    assert_eq!(r.interval_seconds, 2.0);
    assert_eq!(r.cpu_percent, Some(150.0));
    assert_eq!(r.throttled_percent, Some(25.0));
    assert_eq!(r.blkio_write_bytes_per_second, Some(500_000.0));
    assert_eq!(r.blkio_read_bytes_per_second, Some(0.0));
    let m = b.memory.as_ref().unwrap();
    let expect = m.working_set_bytes as f64 / 268_435_456.0 * 100.0;
    assert_eq!(r.memory_percent, Some(expect));
    // A counter going backwards (cgroup recreated) gives no rate, not garbage.
    let r = container_rates(&b, &a, None);
    assert_eq!(r.cpu_percent, None);

    let mut h = HostSampler::new(data("proc"), data("no-sys"));
    let h1 = h.sample().unwrap();
    let mut h2 = h1.clone();
    h2.timestamp_ns += 1_000_000_000;
    h2.cpu.user_ns += 1_000_000_000;
    h2.cpu.idle_ns += 1_000_000_000;
    h2.network.interfaces[3].rx_bytes += 4096;
    let r = host_rates(&h1, &h2);
    assert_eq!(r.cpu_percent, Some(50.0));
    assert_eq!(r.network_rx_bytes_per_second, Some(4096.0));
}

#[test]
fn network_of_a_pid() {
    let net = NetworkSampler::for_pid(&data("proc"), 13477)
        .sample()
        .unwrap();
    let names: Vec<&str> = net.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["lo", "ifb0", "ifb1", "eth0"]);
    assert!(NetworkSampler::for_pid(&data("proc"), 1).sample().is_err());
}

#[test]
fn views_serialise_and_render() {
    use basic_monitor::correlation::CorrelationSamples;
    use basic_monitor::{CorrelationInput, CorrelationView};
    let st = ContainerSampler::for_pid(&data("proc"), &data("v2"), 13477)
        .unwrap()
        .sample()
        .unwrap();
    let p = ProcessSampler::new(data("proc")).sample(13477).unwrap();
    let input = CorrelationInput {
        container_id: "abc123".into(),
        image: Some("busybox:latest".into()),
        command: vec!["sleep".into(), "100".into()],
        memory_limit: Some(268_435_456),
        namespaces: vec!["pid".into(), "network".into()],
        ..Default::default()
    };
    let v = CorrelationView::build(
        &input,
        &CorrelationSamples {
            stats: Some(&st),
            cgroup_path: Some("/"),
            pids: &[13477],
            init: Some(&p),
            host_namespaces: Some(&p.namespaces),
            ..Default::default()
        },
    );
    let text = v.to_string();
    assert!(
        text.contains("CORRELATION VIEW: container abc123"),
        "{text}"
    );
    assert!(text.contains("256.00MiB"), "{text}");
    assert!(text.contains("4026531833 (shared with host)"), "{text}");
    assert!(text.contains("eth0"), "{text}");
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["rows"][0]["aspect"], "spec");
    let aspects: std::collections::BTreeSet<String> = json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["aspect"].as_str().unwrap().to_string())
        .collect();
    for a in [
        "spec",
        "in_memory",
        "in_network",
        "runtime_context",
        "isolation",
    ] {
        assert!(aspects.contains(a), "{a} missing: {aspects:?}");
    }
}
