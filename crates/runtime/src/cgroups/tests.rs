//! Both managers against fake hierarchies in a tempdir: what files they write, what they read.

use std::fs;
use std::path::Path;

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder,
};

use super::{CgroupManager, V1Manager, V2Manager, shares_to_weight};

fn resources() -> LinuxResources {
    LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(20i64 << 20)
                .swap(40i64 << 20)
                .build()
                .unwrap(),
        )
        .cpu(
            LinuxCpuBuilder::default()
                .quota(20_000i64)
                .period(100_000u64)
                .shares(512u64)
                .cpus("0")
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(20i64).build().unwrap())
        .devices(crate::spec::default_device_rules())
        .build()
        .unwrap()
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn v1_writes_each_controller() {
    let root = tempfile::tempdir().unwrap();
    for c in ["memory", "cpu", "cpuacct", "cpuset", "pids", "devices"] {
        fs::create_dir(root.path().join(c)).unwrap();
    }
    fs::write(root.path().join("cpuset/cpuset.cpus"), "0-1\n").unwrap();
    fs::write(root.path().join("cpuset/cpuset.mems"), "0\n").unwrap();
    // Swap accounting is detected by the presence of the memsw file.
    let rel = Path::new("basic-docker/c1");
    fs::create_dir_all(root.path().join("memory").join(rel)).unwrap();
    fs::write(
        root.path()
            .join("memory")
            .join(rel)
            .join("memory.memsw.limit_in_bytes"),
        "",
    )
    .unwrap();
    let m = V1Manager::new(root.path(), rel);
    m.create().unwrap();
    // cpuset values are inherited down every new level.
    assert_eq!(
        read(&root.path().join("cpuset/basic-docker/cpuset.cpus")),
        "0-1"
    );
    assert_eq!(
        read(&root.path().join("cpuset/basic-docker/c1/cpuset.mems")),
        "0"
    );
    m.apply(&resources()).unwrap();
    let f = |c: &str, file: &str| read(&root.path().join(c).join(rel).join(file));
    assert_eq!(f("memory", "memory.limit_in_bytes"), (20 << 20).to_string());
    assert_eq!(
        f("memory", "memory.memsw.limit_in_bytes"),
        (40 << 20).to_string()
    );
    assert_eq!(f("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(f("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(f("cpu", "cpu.shares"), "512");
    assert_eq!(f("cpuset", "cpuset.cpus"), "0");
    assert_eq!(f("pids", "pids.max"), "20");
    // Files hold only the last write; the last device rule is the tun allow rule.
    assert_eq!(f("devices", "devices.allow"), "c 10:200 rwm");
    assert_eq!(f("devices", "devices.deny"), "a");

    m.add_task(4242).unwrap();
    assert_eq!(f("pids", "cgroup.procs"), "4242");
    fs::write(
        root.path()
            .join("memory")
            .join(rel)
            .join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
    )
    .unwrap();
    assert!(!m.oom_killed().unwrap());
    fs::write(
        root.path()
            .join("memory")
            .join(rel)
            .join("memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    )
    .unwrap();
    assert!(m.oom_killed().unwrap());
    fs::write(
        root.path().join("cpuacct").join(rel).join("cpuacct.usage"),
        "1500000000\n",
    )
    .unwrap();
    assert_eq!(m.cpu_usage().unwrap().as_millis(), 1500);
    assert_eq!(
        m.controller_path("memory").unwrap(),
        root.path().join("memory").join(rel)
    );
    assert!(
        m.controller_path("blkio").is_none(),
        "blkio is not mounted in this fake"
    );
}

#[test]
fn v1_refuses_limits_without_their_hierarchy() {
    let root = tempfile::tempdir().unwrap();
    fs::create_dir(root.path().join("cpu")).unwrap();
    let m = V1Manager::new(root.path(), Path::new("x"));
    m.create().unwrap();
    let err = m.apply(&resources()).unwrap_err();
    assert!(err.to_string().contains("memory"), "{err}");
    // Removing an empty cgroup directory works on a plain filesystem too.
    m.remove().unwrap();
    assert!(!root.path().join("cpu/x").exists());
}

#[test]
fn v2_enables_controllers_and_writes_unified_files() {
    let root = tempfile::tempdir().unwrap();
    fs::write(
        root.path().join("cgroup.controllers"),
        "cpuset cpu io memory hugetlb pids rdma\n",
    )
    .unwrap();
    let rel = Path::new("basic-docker/c2");
    fs::create_dir_all(root.path().join("basic-docker")).unwrap();
    fs::write(
        root.path().join("basic-docker/cgroup.controllers"),
        "cpu memory pids\n",
    )
    .unwrap();
    let m = V2Manager::new(root.path(), rel);
    m.create().unwrap();
    assert_eq!(
        read(&root.path().join("cgroup.subtree_control")),
        "+cpu +cpuset +memory +pids +io +hugetlb"
    );
    assert_eq!(
        read(&root.path().join("basic-docker/cgroup.subtree_control")),
        "+cpu +memory +pids"
    );
    m.apply(&resources()).unwrap();
    let f = |file: &str| read(&root.path().join(rel).join(file));
    assert_eq!(f("memory.max"), (20 << 20).to_string());
    // OCI swap is memory+swap; v2 wants swap alone.
    assert_eq!(f("memory.swap.max"), (20 << 20).to_string());
    assert_eq!(f("cpu.max"), "20000 100000");
    assert_eq!(f("cpu.weight"), shares_to_weight(512).to_string());
    assert_eq!(f("pids.max"), "20");
    assert_eq!(f("cpuset.cpus"), "0");

    fs::write(
        root.path().join(rel).join("memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
    )
    .unwrap();
    assert!(m.oom_killed().unwrap());
    fs::write(
        root.path().join(rel).join("cpu.stat"),
        "usage_usec 250000\nuser_usec 1\n",
    )
    .unwrap();
    assert_eq!(m.cpu_usage().unwrap().as_millis(), 250);
    m.add_task(7).unwrap();
    assert_eq!(m.pids().unwrap(), [7]);
}

#[test]
fn shares_map_onto_weights_like_runc() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
}

fn from_json(json: serde_json::Value) -> LinuxResources {
    serde_json::from_value(json).unwrap()
}

fn blkio_net_hugetlb() -> LinuxResources {
    from_json(serde_json::json!({
        "blockIO": {
            "weight": 300, "leafWeight": 200,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 500, "leafWeight": 100}],
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2097152}],
            "throttleReadIOPSDevice": [{"major": 8, "minor": 0, "rate": 100}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}]
        },
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}]
    }))
}

#[test]
fn v1_writes_blkio_network_and_hugetlb_where_the_host_has_them() {
    let root = tempfile::tempdir().unwrap();
    let rel = Path::new("basic-docker/c3");
    for c in ["blkio", "net_cls", "net_prio", "hugetlb"] {
        fs::create_dir_all(root.path().join(c).join(rel)).unwrap();
    }
    // A real blkio directory has the files its I/O scheduler offers.
    for file in [
        "blkio.weight",
        "blkio.leaf_weight",
        "blkio.weight_device",
        "blkio.leaf_weight_device",
        "blkio.throttle.read_bps_device",
        "blkio.throttle.write_bps_device",
        "blkio.throttle.read_iops_device",
        "blkio.throttle.write_iops_device",
    ] {
        fs::write(root.path().join("blkio").join(rel).join(file), "").unwrap();
    }
    let m = V1Manager::new(root.path(), rel);
    m.create().unwrap();
    m.apply(&blkio_net_hugetlb()).unwrap();
    let f = |c: &str, file: &str| read(&root.path().join(c).join(rel).join(file));
    assert_eq!(f("blkio", "blkio.weight"), "300");
    assert_eq!(f("blkio", "blkio.leaf_weight"), "200");
    assert_eq!(f("blkio", "blkio.weight_device"), "8:0 500");
    assert_eq!(f("blkio", "blkio.leaf_weight_device"), "8:0 100");
    assert_eq!(f("blkio", "blkio.throttle.read_bps_device"), "8:0 1048576");
    assert_eq!(f("blkio", "blkio.throttle.write_bps_device"), "8:0 2097152");
    assert_eq!(f("blkio", "blkio.throttle.read_iops_device"), "8:0 100");
    assert_eq!(f("blkio", "blkio.throttle.write_iops_device"), "8:0 200");
    assert_eq!(f("net_cls", "net_cls.classid"), "1048577");
    assert_eq!(f("net_prio", "net_prio.ifpriomap"), "eth0 5");
    assert_eq!(f("hugetlb", "hugetlb.2MB.limit_in_bytes"), "4194304");
    m.add_task(99).unwrap();
    assert_eq!(f("net_cls", "cgroup.procs"), "99");
    assert_eq!(f("hugetlb", "cgroup.procs"), "99");
}

#[test]
fn v1_says_which_controller_this_host_lacks() {
    let root = tempfile::tempdir().unwrap();
    let rel = Path::new("c4");
    // blkio mounted, but without weight files (an I/O scheduler without weights, as here).
    fs::create_dir_all(root.path().join("blkio").join(rel)).unwrap();
    fs::write(
        root.path()
            .join("blkio")
            .join(rel)
            .join("blkio.throttle.read_bps_device"),
        "",
    )
    .unwrap();
    let m = V1Manager::new(root.path(), rel);
    m.create().unwrap();
    let weight = from_json(serde_json::json!({"blockIO": {"weight": 300}}));
    let e = m.apply(&weight).unwrap_err().to_string();
    assert!(
        e.contains("blockIO.weight") && e.contains("not available on this host"),
        "{e}"
    );
    let throttle = from_json(serde_json::json!({"blockIO": {
        "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 10}]}}));
    m.apply(&throttle).unwrap();
    let net = from_json(serde_json::json!({"network": {"classID": 1}}));
    let e = m.apply(&net).unwrap_err().to_string();
    assert!(
        e.contains("net_cls hierarchy is not mounted") && e.contains("not available on this host"),
        "{e}"
    );
    let huge = from_json(serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}));
    let e = m.apply(&huge).unwrap_err().to_string();
    assert!(
        e.contains("hugetlb") && e.contains("not available on this host"),
        "{e}"
    );
}

#[test]
fn v1_on_the_hybrid_layout_puts_hugetlb_limits_in_the_cgroup2_mount() {
    let root = tempfile::tempdir().unwrap();
    let rel = Path::new("basic-docker/c5");
    fs::create_dir(root.path().join("pids")).unwrap();
    fs::create_dir(root.path().join("unified")).unwrap();
    fs::write(root.path().join("unified/cgroup.controllers"), "hugetlb\n").unwrap();
    fs::create_dir(root.path().join("unified/basic-docker")).unwrap();
    fs::write(
        root.path().join("unified/basic-docker/cgroup.controllers"),
        "hugetlb\n",
    )
    .unwrap();
    let m = V1Manager::new(root.path(), rel);
    m.create().unwrap();
    let huge =
        from_json(serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}));
    m.apply(&huge).unwrap();
    let unified = root.path().join("unified");
    assert_eq!(read(&unified.join("cgroup.subtree_control")), "+hugetlb");
    assert_eq!(read(&unified.join(rel).join("hugetlb.2MB.max")), "2097152");
    m.add_task(7).unwrap();
    assert_eq!(read(&unified.join(rel).join("cgroup.procs")), "7");
}

#[test]
fn hugepage_sizes_that_are_not_the_kernels_spelling_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let rel = Path::new("c6");
    fs::create_dir_all(root.path().join("hugetlb").join(rel)).unwrap();
    let m = V1Manager::new(root.path(), rel);
    for size in ["../../../tmp/x", "2MB/../x", "2mb", "MB", "2 MB", ""] {
        let huge =
            from_json(serde_json::json!({"hugepageLimits": [{"pageSize": size, "limit": 1}]}));
        let e = m.apply(&huge).unwrap_err().to_string();
        assert!(e.contains(&format!("hugepage size {size:?}")), "{e}");
    }
    let entries: Vec<_> = fs::read_dir(root.path().join("hugetlb").join(rel))
        .unwrap()
        .collect();
    assert!(entries.is_empty(), "nothing was written");
}

#[test]
fn v2_writes_io_and_hugetlb_and_refuses_what_v2_lacks() {
    let root = tempfile::tempdir().unwrap();
    fs::write(root.path().join("cgroup.controllers"), "io hugetlb\n").unwrap();
    let rel = Path::new("c7");
    let m = V2Manager::new(root.path(), rel);
    m.create().unwrap();
    let ok = from_json(serde_json::json!({
        "blockIO": {
            "weight": 1000,
            "weightDevice": [{"major": 8, "minor": 0, "weight": 10}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 200}]
        },
        "hugepageLimits": [{"pageSize": "1GB", "limit": 0}]
    }));
    m.apply(&ok).unwrap();
    let f = |file: &str| read(&root.path().join(rel).join(file));
    // Files hold the last write: the per-device weight after the default one.
    assert_eq!(f("io.weight"), "8:0 1");
    assert_eq!(f("io.max"), "8:0 wiops=200");
    assert_eq!(f("hugetlb.1GB.max"), "0");
    let e = m.apply(&blkio_net_hugetlb()).unwrap_err().to_string();
    assert!(e.contains("leaf"), "{e}");
    let net = from_json(serde_json::json!({"network": {"classID": 1}}));
    let e = m.apply(&net).unwrap_err().to_string();
    assert!(e.contains("net_cls"), "{e}");
}
