//! A container without a cgroup of its own, sampled from `/proc`: fake proc
//! trees written in a tempdir (pid namespaces are `ns/pid` symlinks, as the
//! kernel shows them), and a real process tree in a new pid namespace.
//!
//! The live test needs root (`unshare --pid`); it skips without it only when
//! `BASIC_DOCKER_REQUIRE_PRIVILEGED` is unset.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use basic_monitor::{CgroupError, ContainerSampler, ContainerStats};

const CONTAINER_NS: &str = "pid:[4026532100]";
const NESTED_NS: &str = "pid:[4026532200]";
const HOST_NS: &str = "pid:[4026531836]";

/// A fake `/proc`.
struct FakeProc {
    dir: tempfile::TempDir,
}

/// One fake process: the fields of `stat` that matter and its `io` bytes.
struct Proc<'a> {
    pid: i32,
    ppid: i32,
    ns: &'a str,
    comm: &'a str,
    /// utime, stime, cutime, cstime in ticks.
    ticks: [u64; 4],
    threads: u64,
    rss_pages: u64,
    io: Option<(u64, u64)>,
}

impl FakeProc {
    fn new() -> FakeProc {
        let dir = tempfile::tempdir().unwrap();
        // Not processes: the scan must skip them.
        std::fs::create_dir(dir.path().join("sys")).unwrap();
        std::fs::write(dir.path().join("uptime"), "1.0 1.0\n").unwrap();
        std::os::unix::fs::symlink("1", dir.path().join("self")).unwrap();
        FakeProc { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn add(&self, p: &Proc) {
        let d = self.root().join(p.pid.to_string());
        std::fs::create_dir_all(d.join("ns")).unwrap();
        std::os::unix::fs::symlink(p.ns, d.join("ns/pid")).unwrap();
        let [u, s, cu, cs] = p.ticks;
        // Fields 1-24 as proc(5) numbers them; comm in parentheses.
        let stat = format!(
            "{} ({}) S {} {} {} 0 -1 4194560 100 0 0 0 {u} {s} {cu} {cs} 20 0 {} 0 1234 5000000 {} 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n",
            p.pid, p.comm, p.ppid, p.pid, p.pid, p.threads, p.rss_pages
        );
        std::fs::write(d.join("stat"), stat).unwrap();
        if let Some((r, w)) = p.io {
            std::fs::write(
                d.join("io"),
                format!(
                    "rchar: 999\nwchar: 999\nsyscr: 9\nsyscw: 9\nread_bytes: {r}\nwrite_bytes: {w}\ncancelled_write_bytes: 0\n"
                ),
            )
            .unwrap();
        }
        std::fs::create_dir_all(d.join("net")).unwrap();
        std::fs::write(
            d.join("net/dev"),
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
             lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
             eth0:    5000      10    0    0    0     0          0         0     3000       7    0    0    0     0       0          0\n",
        )
        .unwrap();
    }

    fn proc(pid: i32, ppid: i32, ns: &str) -> Proc<'_> {
        Proc {
            pid,
            ppid,
            ns,
            comm: "sh",
            ticks: [0; 4],
            threads: 1,
            rss_pages: 0,
            io: None,
        }
    }
}

/// A host with: a host init (1), the supervisor (100) whose child 200 is the
/// container's init; in the container 201 and 202 (202 with a comm that looks
/// like more fields); 300, a nested pid namespace's init, child of 201, and its
/// child 301; and 400, a host process in another namespace that is no child of
/// the container's.
fn host_with_container() -> FakeProc {
    let fake = FakeProc::new();
    fake.add(&Proc {
        ticks: [1000, 1000, 5000, 5000],
        threads: 1,
        rss_pages: 10_000,
        io: Some((1 << 30, 1 << 30)),
        ..FakeProc::proc(1, 0, HOST_NS)
    });
    fake.add(&Proc {
        ticks: [50, 50, 0, 0],
        rss_pages: 500,
        io: Some((7, 7)),
        ..FakeProc::proc(100, 1, HOST_NS)
    });
    fake.add(&Proc {
        ticks: [10, 5, 3, 2],
        rss_pages: 100,
        io: Some((4096, 8192)),
        ..FakeProc::proc(200, 100, CONTAINER_NS)
    });
    fake.add(&Proc {
        ticks: [20, 10, 0, 0],
        threads: 3,
        rss_pages: 200,
        io: Some((1000, 0)),
        ..FakeProc::proc(201, 200, CONTAINER_NS)
    });
    fake.add(&Proc {
        comm: "a) R 1 1 1 (b",
        ticks: [1, 1, 0, 0],
        rss_pages: 10,
        // Not readable here: counted everywhere but in block I/O.
        io: None,
        ..FakeProc::proc(202, 200, CONTAINER_NS)
    });
    fake.add(&Proc {
        ticks: [100, 0, 0, 0],
        rss_pages: 50,
        io: Some((0, 500)),
        ..FakeProc::proc(300, 201, NESTED_NS)
    });
    fake.add(&Proc {
        ticks: [0, 100, 0, 0],
        rss_pages: 50,
        ..FakeProc::proc(301, 300, NESTED_NS)
    });
    fake.add(&Proc {
        ticks: [7, 7, 0, 0],
        rss_pages: 70,
        ..FakeProc::proc(400, 100, NESTED_NS)
    });
    fake
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    page as u64
}

fn tick_ns() -> u64 {
    1_000_000_000 / basic_monitor::clock_ticks_per_second()
}

#[test]
fn the_containers_processes_are_its_pid_namespace_and_the_namespaces_nested_below() {
    let fake = host_with_container();
    let mut s = ContainerSampler::for_process_tree(fake.root(), 200).unwrap();
    assert!(!s.has_cgroup());
    let mut pids = Vec::new();
    s.pids(&mut pids).unwrap();
    // Not 1 and 100 (the host's), nor 400 (a nested namespace's process whose
    // parent is outside the container).
    assert_eq!(pids, [200, 201, 202, 300, 301]);
}

#[test]
fn the_sample_sums_the_containers_processes_and_has_no_limits() {
    let fake = host_with_container();
    let mut s = ContainerSampler::for_process_tree(fake.root(), 200).unwrap();
    let st = s.sample().unwrap();
    let cpu = st.cpu.unwrap();
    // utime + cutime and stime + cstime of 200, 201, 202, 300, 301.
    let (user, system) = (10 + 3 + 20 + 1 + 100, 5 + 2 + 10 + 1 + 100);
    assert_eq!(cpu.user_ns, user * tick_ns());
    assert_eq!(cpu.system_ns, system * tick_ns());
    assert_eq!(cpu.usage_ns, (user + system) * tick_ns());
    assert_eq!(cpu.quota_us, None);
    let mem = st.memory.unwrap();
    let rss = (100 + 200 + 10 + 50 + 50) * page_size();
    assert_eq!(
        (mem.usage_bytes, mem.working_set_bytes, mem.rss_bytes),
        (rss, rss, rss)
    );
    assert_eq!(mem.limit_bytes, None);
    let pids = st.pids.unwrap();
    assert_eq!((pids.current, pids.limit), (1 + 3 + 1 + 1 + 1, None));
    let blkio = st.blkio.unwrap();
    assert_eq!(
        (blkio.read_bytes, blkio.write_bytes),
        (4096 + 1000, 8192 + 500)
    );
    let net = st.network.unwrap().total();
    assert_eq!((net.rx_bytes, net.tx_bytes), (5000, 3000));
}

#[test]
fn a_process_that_exits_leaves_the_tree_and_a_gone_init_is_an_error() {
    let fake = host_with_container();
    let mut s = ContainerSampler::for_process_tree(fake.root(), 200).unwrap();
    std::fs::remove_dir_all(fake.root().join("201")).unwrap();
    let mut pids = Vec::new();
    s.pids(&mut pids).unwrap();
    // 300 and 301 were reachable through 201 only: their parent is gone.
    // (In the kernel, 300 would be reparented to 200 and stay listed.)
    assert_eq!(pids, [200, 202]);

    // The init's pid reused by a process of another namespace: not the container.
    std::fs::remove_file(fake.root().join("200/ns/pid")).unwrap();
    std::os::unix::fs::symlink(HOST_NS, fake.root().join("200/ns/pid")).unwrap();
    let err = s.sample().unwrap_err();
    assert!(matches!(err, CgroupError::NoProcess { .. }), "{err}");
    std::fs::remove_dir_all(fake.root().join("200")).unwrap();
    let err = s.pids(&mut pids).unwrap_err();
    assert!(err.to_string().contains("200/ns/pid"), "{err}");
    let err = ContainerSampler::for_process_tree(fake.root(), 200).unwrap_err();
    assert!(matches!(err, CgroupError::NoProcess { .. }), "{err}");
}

#[test]
fn a_malformed_stat_is_an_error_naming_the_file() {
    let fake = host_with_container();
    std::fs::write(fake.root().join("201/stat"), "201 (sh) S 200 x\n").unwrap();
    let mut s = ContainerSampler::for_process_tree(fake.root(), 200).unwrap();
    let err = s.sample().unwrap_err().to_string();
    assert!(err.contains("201/stat"), "{err}");
}

// Live: a process tree in a new pid namespace.

/// `unshare`, killed (and with it, by `--kill-child`, the namespace) on drop.
struct Unshared {
    child: Child,
}

impl Drop for Unshared {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
    {
        let Ok(task) = task else { continue };
        let text = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    out.sort_unstable();
    out
}

fn stat_ticks(pid: i32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &text[text.rfind(')').unwrap() + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) is index 11 after comm, field 15 (stime) index 12.
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_real_pid_namespace_is_listed_exactly_and_its_cpu_follows_the_burners_ticks() {
    if !basic_test_support::require_root() {
        return;
    }
    // The shell (pid 1 inside) starts a burner and, in a pid namespace nested
    // below (where a hostile process would hide), a sleeper; says "started"
    // and waits. The Drop kills unshare and with it (--kill-child) the namespace.
    let mut child = Command::new("unshare")
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            "sh",
            "-c",
            "sh -c 'while :; do :; done' & unshare --pid --fork sleep 300 & echo started; wait",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("running unshare");
    let stdout = child.stdout.take().unwrap();
    let unshare_pid = child.id() as i32;
    let _guard = Unshared { child };
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "started");

    // unshare's only child is the namespace's init (the outer sh); its
    // children are the burner and the inner unshare, whose child is the sleeper.
    let init = *children_of(unshare_pid)
        .first()
        .expect("unshare's child, the namespace's init");
    let comm = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (inner, nested) = loop {
        let c = children_of(init);
        let nested: Vec<i32> = c.iter().flat_map(|p| children_of(*p)).collect();
        if c.len() == 2 && nested.len() == 1 && comm(nested[0]).trim() == "sleep" {
            break (c, nested);
        }
        assert!(
            Instant::now() < deadline,
            "the init's children: {c:?}, theirs: {nested:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut expected = vec![init];
    expected.extend(&inner);
    expected.extend(&nested);
    expected.sort_unstable();

    let mut s = ContainerSampler::for_process_tree(Path::new("/proc"), init).unwrap();
    let mut pids = Vec::new();
    s.pids(&mut pids).unwrap();
    assert_eq!(
        pids, expected,
        "exactly the namespace's processes, the nested namespace's included"
    );

    let burner = *inner
        .iter()
        .find(|p| comm(**p).trim() == "sh")
        .expect("the burner, a shell");
    let mut a = ContainerStats::default();
    let mut b = ContainerStats::default();
    let burner_before = stat_ticks(burner);
    s.sample_into(&mut a).unwrap();
    // Until the burner has run 50 ticks more (the machine is loaded: wall
    // time says little), bounded.
    let deadline = Instant::now() + Duration::from_secs(60);
    while stat_ticks(burner) < burner_before + 50 {
        assert!(Instant::now() < deadline, "the burner did not run");
        std::thread::sleep(Duration::from_millis(50));
    }
    let burner_after = stat_ticks(burner);
    s.sample_into(&mut b).unwrap();
    let grown = b.cpu.as_ref().unwrap().usage_ns - a.cpu.as_ref().unwrap().usage_ns;
    let burned = (burner_after - burner_before) * tick_ns();
    // The burner's ticks, and the others' (idle). Each sample is read a moment
    // after the burner's own counter, so a few ticks either way.
    let slack = 10 * tick_ns();
    assert!(
        grown + slack >= burned && grown <= burned + slack,
        "tree cpu grew {grown} ns, the burner's own counters {burned} ns"
    );
    let mem = b.memory.unwrap();
    assert!(mem.usage_bytes > 0, "{mem:?}");
    assert_eq!(mem.limit_bytes, None);
    assert_eq!(b.pids.unwrap().current, 4);
    assert!(b.network.is_some());
}
