//! A container, from its cgroup: CPU usage and throttling, memory, OOM kills,
//! pids and block I/O, from cgroup v1 (one directory per controller) or v2
//! (one unified directory), plus the network counters of one of its processes.
//! A container without a cgroup of its own is sampled from `/proc` instead
//! ([`ContainerSampler::for_process_tree`]), through the same API.
//!
//! Hand parsers rather than `libcgroups`' stats: they take a `cgroup_root`
//! so that recorded files from both versions can be tested anywhere, and
//! they fill a reused [`ContainerStats`] without allocating. Every file path
//! is computed once, when the sampler is built.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::network::{NetworkError, NetworkSampler, NetworkStats};
use crate::process::{CgroupMembership, parse_cgroup};
use crate::read::{
    FileError, FileReader, clock_ticks_per_second, for_each_kv, limit, monotonic_ns, num,
};
use crate::tree::ProcessTree;

/// Why sampling a container's cgroup failed.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Neither a v2 unified hierarchy nor v1 controller directories were found.
    #[error("no cgroup hierarchy found under {}", root.display())]
    NoHierarchy {
        /// The cgroup root looked at.
        root: PathBuf,
    },
    /// The process whose cgroup (or process tree) was asked for does not exist
    /// (any more).
    #[error("{} not found: no such process", path.display())]
    NoProcess {
        /// The file of its `/proc/PID` that was looked for (`cgroup`, `ns/pid`).
        path: PathBuf,
    },
    /// The process is not in a cgroup of the hierarchy being read.
    #[error("{} lists no cgroup for the {version:?} hierarchy", path.display())]
    NotInHierarchy {
        /// Its `/proc/PID/cgroup` file.
        path: PathBuf,
        /// The version looked for.
        version: CgroupVersion,
    },
    /// A cgroup file could not be read or parsed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The network counters could not be read.
    #[error(transparent)]
    Network(#[from] NetworkError),
}

/// The cgroup version of a hierarchy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    /// One hierarchy per controller (`/sys/fs/cgroup/memory/...`).
    #[default]
    V1,
    /// The unified hierarchy (`/sys/fs/cgroup/...`).
    V2,
}

impl CgroupVersion {
    /// Detects the layout under `cgroup_root` (normally `/sys/fs/cgroup`).
    ///
    /// A root that is itself a cgroup2 mount has `cgroup.controllers`; a v1 or
    /// hybrid layout is a tmpfs with controller directories. In a hybrid
    /// layout the controllers that matter live on v1, so hybrid is V1.
    pub fn detect(cgroup_root: &Path) -> Option<Self> {
        if cgroup_root.join("cgroup.controllers").exists() {
            Some(CgroupVersion::V2)
        } else if ["memory", "cpu", "cpuacct", "pids"]
            .iter()
            .any(|c| cgroup_root.join(c).is_dir())
        {
            Some(CgroupVersion::V1)
        } else {
            None
        }
    }
}

/// CPU accounting and CFS throttling.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuStats {
    /// Total CPU time used, ns (v1 `cpuacct.usage`, v2 `usage_usec`).
    pub usage_ns: u64,
    /// User-mode CPU time, ns.
    pub user_ns: u64,
    /// Kernel-mode CPU time, ns.
    pub system_ns: u64,
    /// CFS enforcement periods elapsed.
    pub nr_periods: u64,
    /// Periods in which the group was throttled.
    pub nr_throttled: u64,
    /// Total time throttled, ns.
    pub throttled_ns: u64,
    /// CFS quota per period, µs; `None` when unlimited.
    pub quota_us: Option<u64>,
    /// CFS period, µs.
    pub period_us: Option<u64>,
}

/// Memory usage, limit and OOM kills.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Charged memory, bytes (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub usage_bytes: u64,
    /// Peak usage, bytes, when the kernel reports it.
    pub max_usage_bytes: Option<u64>,
    /// The limit, bytes; `None` when unlimited.
    pub limit_bytes: Option<u64>,
    /// Page cache (v1 `cache`, v2 `file`).
    pub cache_bytes: u64,
    /// Anonymous memory (v1 `rss`, v2 `anon`).
    pub rss_bytes: u64,
    /// Inactive file pages (v1 `total_inactive_file`, v2 `inactive_file`).
    pub inactive_file_bytes: u64,
    /// Usage minus inactive file pages, as cAdvisor and `docker stats` compute it.
    pub working_set_bytes: u64,
    /// Processes killed by the OOM killer (v1 `memory.oom_control`, v2 `memory.events`).
    pub oom_kills: Option<u64>,
}

/// Process count and limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsStats {
    /// Tasks (threads included) in the group.
    pub current: u64,
    /// The limit; `None` when unlimited.
    pub limit: Option<u64>,
}

/// Block I/O summed over devices.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlkioStats {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub read_ops: u64,
    /// Write operations.
    pub write_ops: u64,
}

/// One sample of a container. A group is `None` when its controller is not
/// mounted or not enabled for the cgroup. From a process tree (a container
/// without a cgroup), every group but network is `Some`, with no limits, and
/// throttling, cache and OOM counts stay zero or `None`: `/proc` has none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// `CLOCK_MONOTONIC` time of the sample, ns.
    pub timestamp_ns: u64,
    /// Which layout the numbers came from (the default, V1, for a process tree).
    pub version: CgroupVersion,
    /// CPU.
    pub cpu: Option<CpuStats>,
    /// Memory.
    pub memory: Option<MemoryStats>,
    /// Pids.
    pub pids: Option<PidsStats>,
    /// Block I/O.
    pub blkio: Option<BlkioStats>,
    /// Network counters of the container's namespace, when a PID was given.
    pub network: Option<NetworkStats>,
}

#[derive(Debug)]
struct V1Files {
    cpuacct_usage: PathBuf,
    cpuacct_stat: PathBuf,
    cpu_stat: PathBuf,
    cpu_quota: PathBuf,
    cpu_period: PathBuf,
    mem_usage: PathBuf,
    mem_max_usage: PathBuf,
    mem_limit: PathBuf,
    mem_stat: PathBuf,
    mem_oom_control: PathBuf,
    pids_current: PathBuf,
    pids_max: PathBuf,
    blkio_bytes: [PathBuf; 2],
    blkio_ops: [PathBuf; 2],
    procs: Vec<PathBuf>,
}

#[derive(Debug)]
struct V2Files {
    cpu_stat: PathBuf,
    cpu_max: PathBuf,
    mem_current: PathBuf,
    mem_peak: PathBuf,
    mem_max: PathBuf,
    mem_stat: PathBuf,
    mem_events: PathBuf,
    pids_current: PathBuf,
    pids_max: PathBuf,
    io_stat: PathBuf,
    procs: PathBuf,
}

#[derive(Debug)]
enum Files {
    V1(Box<V1Files>),
    V2(Box<V2Files>),
    /// No cgroup: the processes in the init's pid namespace, from `/proc`.
    Tree(Box<ProcessTree>),
}

/// Samples one cgroup (a container), reusing its buffer; or, for a container
/// without a cgroup of its own, its processes in `/proc`
/// ([`for_process_tree`](Self::for_process_tree)).
#[derive(Debug)]
pub struct ContainerSampler {
    cgroup_path: String,
    files: Files,
    reader: FileReader,
    network: Option<NetworkSampler>,
    ticks_per_second: u64,
}

/// `cgroup_root/<controller>/<rel>`: `rel` is absolute in `/proc/PID/cgroup`
/// and `Path::join` would replace the root with it.
fn under(root: &Path, controller: &str, rel: &str) -> PathBuf {
    let mut p = root.join(controller);
    p.push(rel.trim_start_matches('/'));
    p
}

impl ContainerSampler {
    /// A sampler for the v1 cgroup `rel` (e.g. `/basic-docker/<id>`) in every
    /// controller hierarchy under `cgroup_root`.
    pub fn v1(cgroup_root: &Path, rel: &str) -> Self {
        Self::v1_per_controller(cgroup_root, rel, |_| rel.to_string())
    }

    /// A v1 sampler whose cgroup may differ per controller, as
    /// `/proc/PID/cgroup` lists it. `display_path` names the cgroup in views.
    fn v1_per_controller(root: &Path, display_path: &str, rel: impl Fn(&str) -> String) -> Self {
        let dir = |c: &str| under(root, c, &rel(c));
        let (cpu, cpuacct, memory, pids, blkio) = (
            dir("cpu"),
            dir("cpuacct"),
            dir("memory"),
            dir("pids"),
            dir("blkio"),
        );
        let files = V1Files {
            cpuacct_usage: cpuacct.join("cpuacct.usage"),
            cpuacct_stat: cpuacct.join("cpuacct.stat"),
            cpu_stat: cpu.join("cpu.stat"),
            cpu_quota: cpu.join("cpu.cfs_quota_us"),
            cpu_period: cpu.join("cpu.cfs_period_us"),
            mem_usage: memory.join("memory.usage_in_bytes"),
            mem_max_usage: memory.join("memory.max_usage_in_bytes"),
            mem_limit: memory.join("memory.limit_in_bytes"),
            mem_stat: memory.join("memory.stat"),
            mem_oom_control: memory.join("memory.oom_control"),
            pids_current: pids.join("pids.current"),
            pids_max: pids.join("pids.max"),
            // Docker reads the recursive files; kernels without them have the plain ones.
            blkio_bytes: [
                blkio.join("blkio.throttle.io_service_bytes_recursive"),
                blkio.join("blkio.throttle.io_service_bytes"),
            ],
            blkio_ops: [
                blkio.join("blkio.throttle.io_serviced_recursive"),
                blkio.join("blkio.throttle.io_serviced"),
            ],
            procs: [&pids, &memory, &cpu, &cpuacct, &blkio]
                .iter()
                .map(|d| d.join("cgroup.procs"))
                .collect(),
        };
        Self::with_files(display_path, Files::V1(Box::new(files)))
    }

    /// A sampler for the v2 cgroup `rel` under the unified hierarchy at
    /// `cgroup_root`.
    pub fn v2(cgroup_root: &Path, rel: &str) -> Self {
        let d = under(cgroup_root, "", rel);
        let files = V2Files {
            cpu_stat: d.join("cpu.stat"),
            cpu_max: d.join("cpu.max"),
            mem_current: d.join("memory.current"),
            mem_peak: d.join("memory.peak"),
            mem_max: d.join("memory.max"),
            mem_stat: d.join("memory.stat"),
            mem_events: d.join("memory.events"),
            pids_current: d.join("pids.current"),
            pids_max: d.join("pids.max"),
            io_stat: d.join("io.stat"),
            procs: d.join("cgroup.procs"),
        };
        Self::with_files(rel, Files::V2(Box::new(files)))
    }

    /// A sampler for `rel` in whichever layout `cgroup_root` has.
    pub fn detect(cgroup_root: &Path, rel: &str) -> Result<Self, CgroupError> {
        match CgroupVersion::detect(cgroup_root) {
            Some(CgroupVersion::V1) => Ok(Self::v1(cgroup_root, rel)),
            Some(CgroupVersion::V2) => Ok(Self::v2(cgroup_root, rel)),
            None => Err(CgroupError::NoHierarchy {
                root: cgroup_root.to_path_buf(),
            }),
        }
    }

    /// A sampler for the cgroup(s) process `pid` is in, read from
    /// `proc_root/PID/cgroup`, in the layout `cgroup_root` has; its network
    /// counters come from the same process.
    pub fn for_pid(proc_root: &Path, cgroup_root: &Path, pid: i32) -> Result<Self, CgroupError> {
        let version =
            CgroupVersion::detect(cgroup_root).ok_or_else(|| CgroupError::NoHierarchy {
                root: cgroup_root.to_path_buf(),
            })?;
        let path = proc_root.join(pid.to_string()).join("cgroup");
        let mut reader = FileReader::default();
        let text = reader
            .read(&path)?
            .ok_or_else(|| CgroupError::NoProcess { path: path.clone() })?;
        let mut members: Vec<CgroupMembership> = Vec::new();
        parse_cgroup(&path, text, &mut members)?;
        let find = |controller: Option<&str>| {
            members
                .iter()
                .find(|m| match controller {
                    None => m.hierarchy_id == 0,
                    Some(c) => m.controllers.split(',').any(|x| x == c),
                })
                .map(|m| m.path.clone())
        };
        let not_in = || CgroupError::NotInHierarchy {
            path: path.clone(),
            version,
        };
        let sampler = match version {
            CgroupVersion::V2 => Self::v2(cgroup_root, &find(None).ok_or_else(not_in)?),
            CgroupVersion::V1 => {
                let display = find(Some("memory"))
                    .or_else(|| find(Some("pids")))
                    .or_else(|| find(Some("cpu")))
                    .ok_or_else(not_in)?;
                Self::v1_per_controller(cgroup_root, &display, |c| {
                    find(Some(c)).unwrap_or_else(|| display.clone())
                })
            }
        };
        Ok(sampler.with_network(proc_root, pid))
    }

    /// A sampler for a container without a cgroup of its own (a rootless
    /// container on a host that gives its user no cgroups, which runs in its
    /// user's cgroup): its processes are those in the pid namespace of `pid`
    /// (its init) and in namespaces nested below, found under `proc_root`;
    /// its network counters are the init's. The crate docs say how the sums
    /// differ from a cgroup's: memory is the sum of RSS, shared pages counted
    /// once per process, and nothing has a limit.
    ///
    /// Each sample lists `proc_root`; it fails with [`CgroupError::NoProcess`]
    /// once the init is gone.
    pub fn for_process_tree(proc_root: &Path, pid: i32) -> Result<Self, CgroupError> {
        let tree = ProcessTree::new(proc_root, pid)?;
        Ok(Self::with_files("", Files::Tree(Box::new(tree))).with_network(proc_root, pid))
    }

    /// Whether this sampler reads a cgroup (false for
    /// [`for_process_tree`](Self::for_process_tree)).
    pub fn has_cgroup(&self) -> bool {
        !matches!(self.files, Files::Tree(_))
    }

    /// Also samples the network counters of `pid`'s network namespace.
    pub fn with_network(mut self, proc_root: &Path, pid: i32) -> Self {
        self.network = Some(NetworkSampler::for_pid(proc_root, pid));
        self
    }

    fn with_files(cgroup_path: &str, files: Files) -> Self {
        ContainerSampler {
            cgroup_path: cgroup_path.to_string(),
            files,
            reader: FileReader::with_capacity(4096),
            network: None,
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    /// The cgroup's path relative to its hierarchy (for v1, the memory
    /// controller's when they differ); empty for a process tree.
    pub fn cgroup_path(&self) -> &str {
        &self.cgroup_path
    }

    /// The layout this sampler reads (V1, the default, for a process tree).
    pub fn version(&self) -> CgroupVersion {
        match self.files {
            Files::V1(_) | Files::Tree(_) => CgroupVersion::V1,
            Files::V2(_) => CgroupVersion::V2,
        }
    }

    /// Samples into a new value.
    pub fn sample(&mut self) -> Result<ContainerStats, CgroupError> {
        let mut out = ContainerStats::default();
        self.sample_into(&mut out)?;
        Ok(out)
    }

    /// Samples into `out`, reusing its allocations: in steady state this
    /// allocates nothing.
    pub fn sample_into(&mut self, out: &mut ContainerStats) -> Result<(), CgroupError> {
        out.timestamp_ns = monotonic_ns();
        out.version = self.version();
        match &mut self.files {
            Files::V1(f) => sample_v1(&mut self.reader, f, self.ticks_per_second, out)?,
            Files::V2(f) => sample_v2(&mut self.reader, f, out)?,
            Files::Tree(t) => t.sample_into(1_000_000_000 / self.ticks_per_second, out)?,
        }
        match &mut self.network {
            Some(net) => net.sample_into(out.network.get_or_insert_with(Default::default))?,
            None => out.network = None,
        }
        Ok(())
    }

    /// Host PIDs of the processes in the cgroup (`cgroup.procs`), or of the
    /// process tree (ascending).
    pub fn pids(&mut self, out: &mut Vec<i32>) -> Result<(), CgroupError> {
        out.clear();
        let candidates: &[PathBuf] = match &mut self.files {
            Files::V1(f) => &f.procs,
            Files::V2(f) => std::slice::from_ref(&f.procs),
            Files::Tree(t) => return t.pids(out),
        };
        for path in candidates {
            if let Some(text) = self.reader.read(path)? {
                for line in text.lines().filter(|l| !l.is_empty()) {
                    out.push(num(path, "pid", line)? as i32);
                }
                return Ok(());
            }
        }
        Ok(())
    }
}

fn sample_v1(
    r: &mut FileReader,
    f: &V1Files,
    ticks: u64,
    out: &mut ContainerStats,
) -> Result<(), FileError> {
    out.cpu = match r.read(&f.cpuacct_usage)? {
        None => None,
        Some(text) => {
            let mut cpu = CpuStats {
                usage_ns: num(&f.cpuacct_usage, "usage", text)?,
                ..CpuStats::default()
            };
            let tick_ns = 1_000_000_000 / ticks;
            if let Some(text) = r.read(&f.cpuacct_stat)? {
                for_each_kv(&f.cpuacct_stat, text, |k, v| match k {
                    "user" => cpu.user_ns = v * tick_ns,
                    "system" => cpu.system_ns = v * tick_ns,
                    _ => {}
                })?;
            }
            if let Some(text) = r.read(&f.cpu_stat)? {
                for_each_kv(&f.cpu_stat, text, |k, v| match k {
                    "nr_periods" => cpu.nr_periods = v,
                    "nr_throttled" => cpu.nr_throttled = v,
                    "throttled_time" => cpu.throttled_ns = v,
                    _ => {}
                })?;
            }
            if let Some(text) = r.read(&f.cpu_quota)? {
                // -1 means no quota.
                cpu.quota_us = text
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|q| *q > 0)
                    .map(|q| q as u64);
            }
            if let Some(text) = r.read(&f.cpu_period)? {
                cpu.period_us = Some(num(&f.cpu_period, "period", text)?);
            }
            Some(cpu)
        }
    };

    out.memory = match r.read(&f.mem_usage)? {
        None => None,
        Some(text) => {
            let mut m = MemoryStats {
                usage_bytes: num(&f.mem_usage, "usage", text)?,
                ..MemoryStats::default()
            };
            if let Some(text) = r.read(&f.mem_max_usage)? {
                m.max_usage_bytes = Some(num(&f.mem_max_usage, "max usage", text)?);
            }
            if let Some(text) = r.read(&f.mem_limit)? {
                m.limit_bytes = limit(&f.mem_limit, text)?;
            }
            if let Some(text) = r.read(&f.mem_stat)? {
                let (mut total_inactive, mut inactive) = (None, 0);
                for_each_kv(&f.mem_stat, text, |k, v| match k {
                    "cache" => m.cache_bytes = v,
                    "rss" => m.rss_bytes = v,
                    "inactive_file" => inactive = v,
                    // Hierarchical (includes child cgroups), as cAdvisor uses.
                    "total_inactive_file" => total_inactive = Some(v),
                    _ => {}
                })?;
                m.inactive_file_bytes = total_inactive.unwrap_or(inactive);
            }
            m.working_set_bytes = m.usage_bytes.saturating_sub(m.inactive_file_bytes);
            if let Some(text) = r.read(&f.mem_oom_control)? {
                for_each_kv(&f.mem_oom_control, text, |k, v| {
                    if k == "oom_kill" {
                        m.oom_kills = Some(v);
                    }
                })?;
            }
            Some(m)
        }
    };

    out.pids = read_pids(r, &f.pids_current, &f.pids_max)?;

    out.blkio = None;
    for (bytes, ops) in f.blkio_bytes.iter().zip(&f.blkio_ops) {
        if let Some(text) = r.read(bytes)? {
            let mut b = BlkioStats::default();
            (b.read_bytes, b.write_bytes) = parse_blkio_v1(bytes, text)?;
            if let Some(text) = r.read(ops)? {
                (b.read_ops, b.write_ops) = parse_blkio_v1(ops, text)?;
            }
            out.blkio = Some(b);
            break;
        }
    }
    Ok(())
}

fn sample_v2(r: &mut FileReader, f: &V2Files, out: &mut ContainerStats) -> Result<(), FileError> {
    out.cpu = match r.read(&f.cpu_stat)? {
        None => None,
        Some(text) => {
            let mut cpu = CpuStats::default();
            // v2 reports µs; the API is ns for both versions.
            for_each_kv(&f.cpu_stat, text, |k, v| match k {
                "usage_usec" => cpu.usage_ns = v * 1000,
                "user_usec" => cpu.user_ns = v * 1000,
                "system_usec" => cpu.system_ns = v * 1000,
                "nr_periods" => cpu.nr_periods = v,
                "nr_throttled" => cpu.nr_throttled = v,
                "throttled_usec" => cpu.throttled_ns = v * 1000,
                _ => {}
            })?;
            if let Some(text) = r.read(&f.cpu_max)? {
                let mut it = text.split_ascii_whitespace();
                cpu.quota_us = it.next().and_then(|q| q.parse().ok());
                cpu.period_us = it.next().and_then(|p| p.parse().ok());
            }
            Some(cpu)
        }
    };

    out.memory = match r.read(&f.mem_current)? {
        None => None,
        Some(text) => {
            let mut m = MemoryStats {
                usage_bytes: num(&f.mem_current, "memory.current", text)?,
                ..MemoryStats::default()
            };
            if let Some(text) = r.read(&f.mem_peak)? {
                m.max_usage_bytes = Some(num(&f.mem_peak, "memory.peak", text)?);
            }
            if let Some(text) = r.read(&f.mem_max)? {
                m.limit_bytes = limit(&f.mem_max, text)?;
            }
            if let Some(text) = r.read(&f.mem_stat)? {
                for_each_kv(&f.mem_stat, text, |k, v| match k {
                    "file" => m.cache_bytes = v,
                    "anon" => m.rss_bytes = v,
                    "inactive_file" => m.inactive_file_bytes = v,
                    _ => {}
                })?;
            }
            m.working_set_bytes = m.usage_bytes.saturating_sub(m.inactive_file_bytes);
            if let Some(text) = r.read(&f.mem_events)? {
                for_each_kv(&f.mem_events, text, |k, v| {
                    if k == "oom_kill" {
                        m.oom_kills = Some(v);
                    }
                })?;
            }
            Some(m)
        }
    };

    out.pids = read_pids(r, &f.pids_current, &f.pids_max)?;

    out.blkio = match r.read(&f.io_stat)? {
        None => None,
        Some(text) => Some(parse_io_stat(&f.io_stat, text)?),
    };
    Ok(())
}

fn read_pids(
    r: &mut FileReader,
    current: &Path,
    max: &Path,
) -> Result<Option<PidsStats>, FileError> {
    let Some(text) = r.read(current)? else {
        return Ok(None);
    };
    let mut p = PidsStats {
        current: num(current, "pids.current", text)?,
        limit: None,
    };
    if let Some(text) = r.read(max)? {
        p.limit = limit(max, text)?;
    }
    Ok(Some(p))
}

/// Sums the `Read` and `Write` lines of a v1 blkio file
/// (`MAJ:MIN Read N`), skipping the per-device and final `Total` lines.
pub(crate) fn parse_blkio_v1(path: &Path, text: &str) -> Result<(u64, u64), FileError> {
    let (mut read, mut write) = (0, 0);
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(_dev), Some(op), Some(v)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        match op {
            "Read" => read += num(path, "Read", v)?,
            "Write" => write += num(path, "Write", v)?,
            _ => {}
        }
    }
    Ok((read, write))
}

/// Sums `io.stat` (`MAJ:MIN rbytes=N wbytes=N rios=N wios=N dbytes=N dios=N`).
pub(crate) fn parse_io_stat(path: &Path, text: &str) -> Result<BlkioStats, FileError> {
    let mut b = BlkioStats::default();
    for line in text.lines() {
        for kv in line.split_ascii_whitespace().skip(1) {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            match k {
                "rbytes" => b.read_bytes += num(path, k, v)?,
                "wbytes" => b.write_bytes += num(path, k, v)?,
                "rios" => b.read_ops += num(path, k, v)?,
                "wios" => b.write_ops += num(path, k, v)?,
                _ => {}
            }
        }
    }
    Ok(b)
}
