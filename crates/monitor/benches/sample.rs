//! Sampling 50 containers once: 50 real v1 (or v2) cgroups, each with a
//! sleeping process whose network namespace is read too, when run as root;
//! otherwise the recorded v1 directory 50 times. Also prints the CPU time
//! of one round (process CPU clock, not wall time), the figure issue 7 sets
//! a budget for (< 50 ms).
//!
//! Run: `cargo bench -p basic-monitor --bench sample`

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use basic_monitor::{CgroupVersion, ContainerSampler, ContainerStats};
use criterion::Criterion;

const N: usize = 50;
const ROOT: &str = "/sys/fs/cgroup";

/// 50 cgroups with a `sleep` each; removed on drop.
struct Fleet {
    dirs: Vec<PathBuf>,
    children: Vec<Child>,
    samplers: Vec<ContainerSampler>,
    what: &'static str,
}

impl Fleet {
    fn live() -> Option<Fleet> {
        let version = CgroupVersion::detect(Path::new(ROOT))?;
        if !std::fs::read_to_string("/proc/self/status")
            .ok()?
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        {
            return None;
        }
        let mut fleet = Fleet {
            dirs: Vec::new(),
            children: Vec::new(),
            samplers: Vec::new(),
            what: "live cgroups",
        };
        let controllers: &[&str] = match version {
            CgroupVersion::V1 => &["cpu", "cpuacct", "memory", "pids", "blkio"],
            CgroupVersion::V2 => &[""],
        };
        for i in 0..N {
            let rel = format!("basic-monitor-bench-{}-{i}", std::process::id());
            let child = Command::new("sleep").arg("3600").spawn().ok()?;
            let pid = child.id();
            fleet.children.push(child);
            for c in controllers {
                let d = Path::new(ROOT).join(c).join(&rel);
                std::fs::create_dir_all(&d).ok()?;
                fleet.dirs.push(d.clone());
                std::fs::write(d.join("cgroup.procs"), pid.to_string()).ok()?;
            }
            let s = match version {
                CgroupVersion::V1 => ContainerSampler::v1(Path::new(ROOT), &rel),
                CgroupVersion::V2 => ContainerSampler::v2(Path::new(ROOT), &rel),
            };
            fleet
                .samplers
                .push(s.with_network(Path::new("/proc"), pid as i32));
        }
        Some(fleet)
    }

    fn recorded() -> Fleet {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
        Fleet {
            dirs: Vec::new(),
            children: Vec::new(),
            samplers: (0..N)
                .map(|_| {
                    ContainerSampler::v1(&data.join("v1"), "/")
                        .with_network(&data.join("proc"), 13477)
                })
                .collect(),
            what: "recorded v1 files",
        }
    }

    fn round(&mut self, out: &mut [ContainerStats]) {
        for (s, o) in self.samplers.iter_mut().zip(out) {
            s.sample_into(o).expect("sampling");
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in &self.dirs {
            for _ in 0..50 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn cpu_time_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec; the process CPU clock always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn main() {
    let mut fleet = Fleet::live().unwrap_or_else(Fleet::recorded);
    let mut out = vec![ContainerStats::default(); N];
    fleet.round(&mut out);

    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    let name = format!("sample {N} containers ({})", fleet.what);
    c.bench_function(&name, |b| b.iter(|| fleet.round(&mut out)));

    const ROUNDS: u64 = 200;
    let (cpu0, wall0) = (cpu_time_ns(), std::time::Instant::now());
    for _ in 0..ROUNDS {
        fleet.round(&mut out);
    }
    let cpu = (cpu_time_ns() - cpu0) as f64 / ROUNDS as f64 / 1e6;
    let wall = wall0.elapsed().as_secs_f64() / ROUNDS as f64 * 1e3;
    println!(
        "{name}: CPU time per round {cpu:.3} ms, wall {wall:.3} ms ({:.1} µs CPU per container)",
        cpu * 1e3 / N as f64
    );
    c.final_summary();
}
