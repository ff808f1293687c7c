//! The samplers on cgroup v2 and /proc files recorded from a real pure-v2
//! kernel by `scripts/record-cgroup-v2.sh` (tests/data/v2-recorded-*), checked
//! against the workload the recording script ran (`expected.json`) and
//! against the raw kernel files themselves.

use std::path::{Path, PathBuf};

use basic_monitor::{
    CgroupVersion, ContainerSampler, ContainerStats, HostSampler, NetworkSampler, ProcessSampler,
};
use serde_json::Value;

/// Memory a container's own processes and kernel objects use beyond what the
/// workload held (process pages, page tables, slab, the cgroup's percpu
/// data): about 1 MiB in the recordings, bounded generously.
const MEMORY_OVERHEAD_TOLERANCE: u64 = 8 << 20;

struct Recording {
    dir: PathBuf,
    expected: Value,
}

impl Recording {
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(self.expected[key].as_str().unwrap())
    }
    fn cgroup_root(&self) -> PathBuf {
        self.path("cgroup_root")
    }
    fn proc_root(&self) -> PathBuf {
        self.path("proc_root")
    }
    fn cgroup_path(&self) -> &str {
        self.expected["cgroup_path"].as_str().unwrap()
    }
    fn u64(&self, pointer: &str) -> u64 {
        self.expected
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{}: expected.json has no {pointer}", self.dir.display()))
    }
    fn pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = self.expected["pids"]["sleepers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_i64().unwrap() as i32)
            .collect();
        pids.push(self.u64("/pids/burner") as i32);
        pids.sort();
        pids
    }
    /// One of the cgroup's files, read straight from the recording.
    fn kernel_file(&self, file: &str) -> String {
        let path = self
            .cgroup_root()
            .join(self.cgroup_path().trim_start_matches('/'))
            .join(file);
        std::fs::read_to_string(&path).unwrap()
    }
    /// The value of `key` in one of the cgroup's `key value` files.
    fn kernel_value(&self, file: &str, key: &str) -> u64 {
        self.kernel_file(file)
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{file} has no {key}"))
            .trim()
            .parse()
            .unwrap()
    }
    fn sample(&self) -> ContainerStats {
        ContainerSampler::detect(&self.cgroup_root(), self.cgroup_path())
            .unwrap()
            .sample()
            .unwrap()
    }
}

/// Every recording under tests/data; there must be at least one.
fn recordings() -> Vec<Recording> {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut out: Vec<Recording> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("v2-recorded-"))
        })
        .map(|dir| {
            let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
            Recording {
                expected: serde_json::from_str(&text).unwrap(),
                dir,
            }
        })
        .collect();
    assert!(!out.is_empty(), "no v2-recorded-* under {}", data.display());
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}

#[test]
fn recording_is_a_pure_v2_machine() {
    for r in recordings() {
        let mountinfo = std::fs::read_to_string(r.proc_root().join("self/mountinfo")).unwrap();
        let fs_types: Vec<&str> = mountinfo
            .lines()
            .filter_map(|l| l.split(" - ").nth(1)?.split(' ').next())
            .collect();
        assert!(fs_types.contains(&"cgroup2"), "{mountinfo}");
        assert!(!fs_types.contains(&"cgroup"), "a v1 hierarchy: {mountinfo}");
        assert_eq!(
            CgroupVersion::detect(&r.cgroup_root()),
            Some(CgroupVersion::V2)
        );
    }
}

#[test]
fn container_cpu_usage_and_throttling() {
    for r in recordings() {
        let st = r.sample();
        assert_eq!(st.version, CgroupVersion::V2);
        let cpu = st.cpu.unwrap();
        // The burner alone had half a core for cpu_burn_seconds before the
        // recording; half of that is a floor that a µs/ns mix-up cannot pass.
        let quota_share =
            r.u64("/limits/cpu_quota_us") as f64 / r.u64("/limits/cpu_period_us") as f64;
        let floor_ns = r.u64("/cpu_burn_seconds") as f64 * quota_share * 1e9 / 2.0;
        assert!(
            cpu.usage_ns as f64 >= floor_ns,
            "{cpu:?} below {floor_ns} ns"
        );
        assert_eq!(
            cpu.usage_ns,
            r.kernel_value("cpu.stat", "usage_usec") * 1000
        );
        assert_eq!(cpu.user_ns, r.kernel_value("cpu.stat", "user_usec") * 1000);
        assert_eq!(
            cpu.system_ns,
            r.kernel_value("cpu.stat", "system_usec") * 1000
        );
        assert!(
            cpu.nr_throttled > 0,
            "cpu.max throttled the burner: {cpu:?}"
        );
        assert!(cpu.nr_periods >= cpu.nr_throttled, "{cpu:?}");
        assert!(cpu.throttled_ns > 0, "{cpu:?}");
        assert_eq!(cpu.quota_us, Some(r.u64("/limits/cpu_quota_us")));
        assert_eq!(cpu.period_us, Some(r.u64("/limits/cpu_period_us")));
    }
}

#[test]
fn container_memory_held_limit_and_oom_kill() {
    for r in recordings() {
        let m = r.sample().memory.unwrap();
        let held = r.u64("/memory_held_bytes");
        let cached = r.u64("/io/page_cache_bytes");
        // docker stats' "MEM USAGE" is the working set: the held tmpfs data
        // counts, the clean page cache of the buffered read does not.
        assert!(
            (held..=held + MEMORY_OVERHEAD_TOLERANCE).contains(&m.working_set_bytes),
            "working set {} for {held} held: {m:?}",
            m.working_set_bytes
        );
        assert!(m.usage_bytes >= held + cached, "{m:?}");
        assert_eq!(
            m.usage_bytes,
            r.kernel_file("memory.current")
                .trim()
                .parse::<u64>()
                .unwrap()
        );
        // v2 counts shmem (tmpfs) and page cache as "file": both are there.
        assert!(m.cache_bytes >= held + cached, "{m:?}");
        assert!(
            m.rss_bytes < held,
            "the held memory is not anonymous: {m:?}"
        );
        assert_eq!(m.rss_bytes, r.kernel_value("memory.stat", "anon"));
        assert_eq!(
            m.inactive_file_bytes,
            r.kernel_value("memory.stat", "inactive_file")
        );
        assert_eq!(m.working_set_bytes, m.usage_bytes - m.inactive_file_bytes);
        assert!(m.max_usage_bytes.unwrap() >= m.usage_bytes, "{m:?}");
        assert_eq!(m.limit_bytes, Some(r.u64("/limits/memory_max_bytes")));
        // The kill happened in a child cgroup: the container's hierarchical
        // memory.events counts it (its memory.events.local does not).
        assert_eq!(m.oom_kills, Some(r.u64("/oom/oom_kills")));
        assert_eq!(r.kernel_value("memory.events.local", "oom_kill"), 0);
    }
}

#[test]
fn container_pids_and_block_io() {
    for r in recordings() {
        let mut sampler = ContainerSampler::v2(&r.cgroup_root(), r.cgroup_path());
        let st = sampler.sample().unwrap();
        let p = st.pids.unwrap();
        assert_eq!(p.current, r.u64("/pids/count"));
        assert_eq!(p.limit, Some(r.u64("/limits/pids_max")));
        let mut pids = Vec::new();
        sampler.pids(&mut pids).unwrap();
        pids.sort();
        assert_eq!(pids, r.pids());

        let devices = r.expected["io"]["devices"].as_array().unwrap();
        assert!(devices.len() >= 2, "the workload used two disks");
        let sum = |key: &str| {
            devices
                .iter()
                .map(|d| d[key].as_u64().unwrap())
                .sum::<u64>()
        };
        let b = st.blkio.unwrap();
        // At least what was asked for: readahead may read more.
        assert!(b.read_bytes >= sum("read_bytes"), "{b:?}");
        assert!(b.write_bytes >= sum("written_bytes"), "{b:?}");
        assert!(
            b.read_ops >= devices.len() as u64 && b.write_ops >= 1,
            "{b:?}"
        );
    }
}

#[test]
fn container_from_a_recorded_pid() {
    for r in recordings() {
        let burner = r.u64("/pids/burner") as i32;
        let mut s = ContainerSampler::for_pid(&r.proc_root(), &r.cgroup_root(), burner).unwrap();
        assert_eq!(s.version(), CgroupVersion::V2);
        assert_eq!(s.cgroup_path(), r.cgroup_path());
        let st = s.sample().unwrap();
        assert_eq!(st.pids.unwrap().current, r.u64("/pids/count"));
        let net = st.network.unwrap();
        assert!(net.interfaces.iter().any(|i| i.name == "lo"), "{net:?}");
    }
}

#[test]
fn processes_of_the_container() {
    for r in recordings() {
        let mut ps = ProcessSampler::new(r.proc_root());
        let burner = r.u64("/pids/burner") as i32;
        for pid in r.pids() {
            let p = ps.sample(pid).unwrap();
            assert_eq!(p.pid, pid);
            assert_eq!(p.ns_pids, [pid], "no pid namespace in the recording");
            assert_eq!(p.threads, 1);
            assert_eq!(p.uid, 0);
            assert!(p.rss_bytes > 0 && p.vsize_bytes >= p.rss_bytes, "{p:?}");
            assert!(p.io.is_some(), "{pid}/io was recorded");
            assert_eq!(p.cgroups.len(), 1, "one v2 line: {:?}", p.cgroups);
            assert_eq!(p.cgroup_path(None), Some(r.cgroup_path()));
            if pid == burner {
                assert_eq!((p.comm.as_str(), p.state), ("sh", 'R'));
                assert!(p.cpu_time_ns() > 0, "{p:?}");
            } else {
                assert_eq!((p.comm.as_str(), p.state), ("sleep", 'S'));
            }
        }
        let net = NetworkSampler::for_pid(&r.proc_root(), burner)
            .sample()
            .unwrap();
        assert_eq!(net.interfaces[0].name, "lo");
    }
}

#[test]
fn host_of_the_recording() {
    for r in recordings() {
        let st = HostSampler::new(r.proc_root(), r.path("sys_root"))
            .sample()
            .unwrap();
        assert_eq!(st.cpus as u64, r.u64("/cpus"));
        let vm_memory = r.u64("/vm_memory_bytes");
        assert!(
            st.memory.total_bytes > vm_memory / 2 && st.memory.total_bytes <= vm_memory,
            "{:?}",
            st.memory
        );
        assert!(st.memory.available_bytes <= st.memory.total_bytes);
        assert!(st.cpu.busy_ns() > 0 && st.cpu.idle_ns > 0, "{:?}", st.cpu);
        assert!(st.load.total >= r.u64("/pids/count"), "{:?}", st.load);
        assert!(st.uptime_seconds > r.u64("/cpu_burn_seconds") as f64);
        assert!(st.network.interfaces.iter().any(|i| i.name == "lo"));
    }
}
