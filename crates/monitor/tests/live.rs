//! Live tests on this machine: the test's own process, the host, and a real
//! cgroup (v1 or v2, whichever the machine has) with one process burning a
//! core and one holding ~50 MB.
//!
//! The cgroup tests need root; they skip without it only when
//! `BASIC_DOCKER_REQUIRE_PRIVILEGED` is unset.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use basic_monitor::{
    CgroupVersion, ContainerSampler, GapView, HostSampler, ProcessSampler, container_rates,
    process_rates,
};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CHILD_ROLE: &str = "BASIC_MONITOR_TEST_CHILD";
const HOLD_BYTES: usize = 50 << 20;

/// Not a test of its own: the body of the memory-holding child, which is this
/// test binary run again with `CHILD_ROLE` set. It waits for "go" (so that it
/// allocates only after being moved into the cgroup: v1 does not move
/// charges), touches 50 MiB, says "ready" and holds until stdin closes.
#[test]
fn child_entry() {
    if std::env::var_os(CHILD_ROLE).is_none() {
        return;
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let block = vec![1u8; HOLD_BYTES];
    std::hint::black_box(&block);
    // libtest prints "test child_entry ... " on the same line first.
    println!("ready");
    std::io::stdout().flush().unwrap();
    line.clear();
    let _ = std::io::stdin().read_line(&mut line);
    std::hint::black_box(&block);
}

#[test]
fn own_process() {
    let pid = std::process::id() as i32;
    let mut s = ProcessSampler::new("/proc");
    let a = s.sample(pid).unwrap();
    assert_eq!(a.pid, pid);
    assert_eq!(a.ns_pids.last(), Some(&pid));
    assert!(a.rss_bytes > 1 << 20, "rss {}", a.rss_bytes);
    assert!(a.threads >= 1);
    assert!(a.fd_count.unwrap() >= 3);
    assert!(a.io.is_some());
    assert!(a.namespaces.net.is_some() && a.namespaces.pid.is_some());
    assert!(!a.cgroups.is_empty());

    // Cross-check with procfs on the same live files.
    let me = procfs::process::Process::myself().unwrap().stat().unwrap();
    assert_eq!(me.comm, a.comm);
    assert_eq!(me.ppid, a.ppid);
    assert_eq!(me.vsize > 0, a.vsize_bytes > 0);

    // Burn ~200 ms of CPU in this thread; the process rate sees it.
    let start = std::time::Instant::now();
    let mut x = 0u64;
    while start.elapsed() < Duration::from_millis(200) {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
    let b = s.sample(pid).unwrap();
    let r = process_rates(&a, &b);
    let cpu = r.cpu_percent.unwrap();
    assert!((30.0..=250.0).contains(&cpu), "cpu {cpu}%");
}

#[test]
fn host() {
    let mut h = HostSampler::new("/proc", "/sys").with_disk("/");
    let a = h.sample().unwrap();
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let cpu_lines = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    assert_eq!(a.cpus as usize, cpu_lines);
    use procfs::Current;
    let mi = procfs::Meminfo::current().unwrap();
    assert!(
        a.memory.total_bytes == mi.mem_total || a.memory.total_bytes == mi.mem_total * 1024,
        "{} vs procfs {}",
        a.memory.total_bytes,
        mi.mem_total
    );
    assert!(a.uptime_seconds > 0.0);
    assert!(a.network.interfaces.iter().any(|i| i.name == "lo"));
    let d = a.disk.as_ref().unwrap();
    assert!(d.total_bytes > 0 && d.used_bytes <= d.total_bytes);
    std::thread::sleep(Duration::from_millis(100));
    let b = h.sample().unwrap();
    let r = basic_monitor::host_rates(&a, &b);
    let cpu = r.cpu_percent.unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
}

/// A test cgroup in every controller the test uses; removed on drop, after
/// killing the children put in it.
/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces), from the 3rd on.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

struct TestCgroup {
    rel: String,
    dirs: Vec<PathBuf>,
    children: Vec<Child>,
}

impl TestCgroup {
    fn create(version: CgroupVersion, suffix: &str) -> TestCgroup {
        let rel = format!("basic-monitor-test-{}{suffix}", std::process::id());
        let root = Path::new(CGROUP_ROOT);
        let dirs: Vec<PathBuf> = match version {
            CgroupVersion::V1 => ["cpu", "cpuacct", "memory", "pids"]
                .iter()
                .map(|c| root.join(c).join(&rel))
                .collect(),
            CgroupVersion::V2 => {
                // Controllers must be enabled in the parent for the child's files to exist.
                let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu +memory +pids");
                vec![root.join(&rel)]
            }
        };
        for d in &dirs {
            // cpu and cpuacct may be one hierarchy (a symlink): tolerate "exists".
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        TestCgroup {
            rel: format!("/{rel}"),
            dirs,
            children: Vec::new(),
        }
    }

    /// Spawns `cmd` (which must wait for a line on stdin before doing its
    /// work), moves it into the cgroup, then says "go".
    fn add(&mut self, mut cmd: Command) -> usize {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        for d in &self.dirs {
            std::fs::write(d.join("cgroup.procs"), child.id().to_string())
                .unwrap_or_else(|e| panic!("moving {} into {}: {e}", child.id(), d.display()));
        }
        child.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        self.children.push(child);
        self.children.len() - 1
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Processes the children forked (a PID namespace's init outlives
        // `unshare`) are still in the cgroup: kill them too.
        for d in &self.dirs {
            if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                    // SAFETY: kill(2) on a PID read from our own test cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for d in &self.dirs {
            // The kernel needs a moment after the last task exits.
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn container_cgroup_cpu_memory_pids() {
    if !basic_test_support::require_root() {
        return;
    }
    let version = CgroupVersion::detect(Path::new(CGROUP_ROOT)).expect("a cgroup hierarchy");
    let mut cg = TestCgroup::create(version, "");

    let mut burner = Command::new("sh");
    burner.args(["-c", "read x; while :; do :; done"]);
    let burner = cg.add(burner);

    let mut holder = Command::new(std::env::current_exe().unwrap());
    holder
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, "hold");
    let holder = cg.add(holder);
    let out = cg.children[holder].stdout.take().unwrap();
    let ready = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.ends_with("ready"));
    assert!(ready, "the memory holder did not start");

    let mut sampler = ContainerSampler::detect(Path::new(CGROUP_ROOT), &cg.rel).unwrap();
    assert_eq!(sampler.version(), version);
    // The cgroup's figure is checked against what the kernel counted for the burner
    // itself over the same second: a loaded machine gives it less than a core.
    let burner_pid = cg.children[burner].id();
    let burned_before = cpu_ticks(burner_pid);
    let a = sampler.sample().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let b = sampler.sample().unwrap();
    let burned = (cpu_ticks(burner_pid) - burned_before) as f64;
    let rates = container_rates(&a, &b, None);
    let cpu = rates.cpu_percent.expect("cpu accounting");
    let elapsed = (b.timestamp_ns - a.timestamp_ns) as f64 / 1e9;
    let burner_percent = burned / clock_ticks_per_second() / elapsed * 100.0;
    assert!(
        burner_percent > 10.0,
        "the burner ran {burner_percent}% of one core"
    );
    assert!(
        (cpu - burner_percent).abs() <= (burner_percent * 0.15).max(5.0),
        "cgroup cpu {cpu}% of one core, the burner's own {burner_percent}%"
    );

    let m = b.memory.as_ref().expect("memory controller");
    let mb = m.usage_bytes as f64 / 1e6;
    assert!((40.0..=120.0).contains(&mb), "memory usage {mb} MB");
    assert!(m.working_set_bytes as f64 / 1e6 > 40.0, "{m:?}");
    assert_eq!(m.limit_bytes, None);

    let mut pids = Vec::new();
    sampler.pids(&mut pids).unwrap();
    pids.sort();
    let mut expected: Vec<i32> = cg.children.iter().map(|c| c.id() as i32).collect();
    expected.sort();
    assert_eq!(pids, expected);
    // pids.current counts tasks: the threads of the processes put in.
    let mut ps = ProcessSampler::new("/proc");
    let tasks: u64 = pids.iter().map(|p| ps.sample(*p).unwrap().threads).sum();
    assert_eq!(b.pids.as_ref().expect("pids controller").current, tasks);

    // Found from a PID, the same cgroup.
    let burner_pid = cg.children[burner].id() as i32;
    let from_pid =
        ContainerSampler::for_pid(Path::new("/proc"), Path::new(CGROUP_ROOT), burner_pid).unwrap();
    assert_eq!(from_pid.cgroup_path(), cg.rel);

    // The gap view over a "container" with no namespaces of its own: every
    // namespace is shared with the host and both processes are listed.
    let mut sampler = from_pid;
    let gap =
        GapView::collect("test", Path::new("/proc"), Path::new("/sys"), &mut sampler).unwrap();
    assert_eq!(gap.host.processes.len(), 2);
    assert!(
        gap.shared_namespaces.contains(&"net".to_string()),
        "{gap:?}"
    );
    assert_eq!(gap.host.veth, None, "no network namespace, no veth");
    assert!(gap.to_string().contains("HOST PID"));
    let json = serde_json::to_value(&gap).unwrap();
    assert_eq!(json["host"]["cgroup_path"], cg.rel);
}

/// A process with its own PID, UTS and network namespaces, like a container:
/// the gap view must see PID 1 inside, the hostname set inside, only `lo`,
/// and those namespaces as not shared with the host.
#[test]
fn gap_view_of_a_namespaced_process() {
    if !basic_test_support::require_root() {
        return;
    }
    let has_unshare = Command::new("unshare").arg("--version").output().is_ok();
    if !basic_test_support::prerequisite(has_unshare, "unshare(1)") {
        return;
    }
    let version = CgroupVersion::detect(Path::new(CGROUP_ROOT)).expect("a cgroup hierarchy");
    let mut cg = TestCgroup::create(version, "-gap");
    // The outer shell waits for "go" so that unshare and its child are
    // created inside the cgroup.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "read x; exec unshare --uts --pid --net --fork sh -c 'hostname bm-gap-test; exec sleep 30'",
    ]);
    let idx = cg.add(cmd);
    let unshare_pid = cg.children[idx].id() as i32;

    let mut sampler =
        ContainerSampler::for_pid(Path::new("/proc"), Path::new(CGROUP_ROOT), unshare_pid).unwrap();
    let mut gap = None;
    let mut last = None;
    // Under load the shell inside may take a while to set the hostname.
    for _ in 0..500 {
        let g = GapView::collect(
            "ns-test",
            Path::new("/proc"),
            Path::new("/sys"),
            &mut sampler,
        )
        .unwrap();
        if g.container.init_pid == Some(1) && g.container.hostname.as_deref() == Some("bm-gap-test")
        {
            gap = Some(g);
            break;
        }
        last = Some(g);
        std::thread::sleep(Duration::from_millis(20));
    }
    let gap = gap.unwrap_or_else(|| panic!("no init with PID 1 and its own hostname: {last:?}"));
    assert_ne!(
        gap.container.init_host_pid, unshare_pid,
        "init is unshare's child"
    );
    assert_eq!(gap.container.interfaces, ["lo"]);
    for ns in ["uts", "pid", "net"] {
        assert!(
            !gap.shared_namespaces.iter().any(|s| s == ns),
            "{ns} shared: {gap:?}"
        );
    }
    assert!(gap.shared_namespaces.iter().any(|s| s == "mnt"));
    assert_ne!(gap.host.hostname.as_deref(), Some("bm-gap-test"));
    let text = gap.to_string();
    assert!(text.contains("bm-gap-test"), "{text}");

    // The correlation view of the same process, with a writable layer.
    let upper = tempfile::tempdir().unwrap();
    std::fs::write(upper.path().join("written"), vec![7u8; 4096]).unwrap();
    let input = basic_monitor::CorrelationInput {
        container_id: "ns-test".into(),
        image: Some("busybox:latest".into()),
        command: vec!["sleep".into(), "30".into()],
        rootfs: Some("/".into()),
        upper_dir: Some(upper.path().to_path_buf()),
        ..Default::default()
    };
    let view =
        basic_monitor::CorrelationView::collect(&input, Path::new("/proc"), &mut sampler).unwrap();
    let row = |item: &str| {
        view.rows
            .iter()
            .find(|r| r.item == item)
            .unwrap_or_else(|| panic!("{item} missing: {view:?}"))
            .value
            .clone()
    };
    assert!(row("net").ends_with("(private)"), "{}", row("net"));
    assert!(row("mnt").ends_with("(shared with host)"), "{}", row("mnt"));
    assert_eq!(row("written by the container"), "4.00KiB in 1 files");
    assert!(row("init").contains("PID 1 inside"), "{}", row("init"));
    assert!(view.rows.iter().any(|r| r.item == "lo"));
    assert!(view.to_string().contains("runtime context"));
}
