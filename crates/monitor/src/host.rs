//! The host, from `/proc` and `/sys`: CPU times, memory, load, network,
//! uptime, CPU count and the disk usage of a path (the image store).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::network::{NetworkError, NetworkSampler, NetworkStats};
use crate::read::{FileError, FileReader, clock_ticks_per_second, monotonic_ns, num};

/// Why sampling the host failed.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A file every Linux host has is missing: the proc root is wrong.
    #[error("{} not found: is {} a proc root?", path.display(), proc_root.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The proc root.
        proc_root: PathBuf,
    },
    /// A file could not be read or parsed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The network counters could not be read.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// `statvfs` failed on the path whose disk usage was asked for.
    #[error("statvfs {}: {source}", path.display())]
    Statvfs {
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: nix::Error,
    },
}

/// Aggregate CPU times from the `cpu` line of `/proc/stat`, ns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    /// User mode.
    pub user_ns: u64,
    /// User mode at low priority.
    pub nice_ns: u64,
    /// Kernel mode.
    pub system_ns: u64,
    /// Idle.
    pub idle_ns: u64,
    /// Waiting for I/O.
    pub iowait_ns: u64,
    /// Servicing interrupts.
    pub irq_ns: u64,
    /// Servicing softirqs.
    pub softirq_ns: u64,
    /// Stolen by the hypervisor.
    pub steal_ns: u64,
}

impl CpuTimes {
    /// All time, summed over CPUs (guest time is already in user/nice).
    pub fn total_ns(&self) -> u64 {
        self.busy_ns() + self.idle_ns + self.iowait_ns
    }

    /// Time not idle.
    pub fn busy_ns(&self) -> u64 {
        self.user_ns + self.nice_ns + self.system_ns + self.irq_ns + self.softirq_ns + self.steal_ns
    }
}

/// The `/proc/meminfo` fields monitors use, bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemInfo {
    /// `MemTotal`.
    pub total_bytes: u64,
    /// `MemFree`.
    pub free_bytes: u64,
    /// `MemAvailable`.
    pub available_bytes: u64,
    /// `Buffers`.
    pub buffers_bytes: u64,
    /// `Cached`.
    pub cached_bytes: u64,
    /// `SwapTotal`.
    pub swap_total_bytes: u64,
    /// `SwapFree`.
    pub swap_free_bytes: u64,
}

/// `/proc/loadavg`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAvg {
    /// 1-minute load average.
    pub one: f64,
    /// 5-minute load average.
    pub five: f64,
    /// 15-minute load average.
    pub fifteen: f64,
    /// Runnable scheduling entities.
    pub running: u64,
    /// All scheduling entities.
    pub total: u64,
}

/// Disk usage of the filesystem holding a path.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// The path asked about.
    pub path: PathBuf,
    /// Size of the filesystem, bytes.
    pub total_bytes: u64,
    /// Used, bytes.
    pub used_bytes: u64,
    /// Available to unprivileged users, bytes.
    pub available_bytes: u64,
    /// Inodes in total.
    pub inodes_total: u64,
    /// Inodes free.
    pub inodes_free: u64,
}

/// One sample of the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostStats {
    /// `CLOCK_MONOTONIC` time of the sample, ns.
    pub timestamp_ns: u64,
    /// Online CPUs.
    pub cpus: u32,
    /// CPU times summed over CPUs.
    pub cpu: CpuTimes,
    /// Memory.
    pub memory: MemInfo,
    /// Load averages.
    pub load: LoadAvg,
    /// Seconds since boot.
    pub uptime_seconds: f64,
    /// Host network namespace's interfaces.
    pub network: NetworkStats,
    /// Disk usage of the path given to [`HostSampler::with_disk`].
    pub disk: Option<DiskUsage>,
}

/// Samples the host, reusing its buffers.
#[derive(Debug)]
pub struct HostSampler {
    proc_root: PathBuf,
    stat: PathBuf,
    meminfo: PathBuf,
    loadavg: PathBuf,
    uptime: PathBuf,
    cpu_online: PathBuf,
    disk_path: Option<PathBuf>,
    network: NetworkSampler,
    reader: FileReader,
    ticks_per_second: u64,
}

impl HostSampler {
    /// A sampler reading `proc_root` (normally `/proc`) and `sys_root`
    /// (normally `/sys`, for the online CPU list).
    pub fn new(proc_root: impl Into<PathBuf>, sys_root: impl Into<PathBuf>) -> Self {
        let proc_root = proc_root.into();
        let sys_root = sys_root.into();
        HostSampler {
            stat: proc_root.join("stat"),
            meminfo: proc_root.join("meminfo"),
            loadavg: proc_root.join("loadavg"),
            uptime: proc_root.join("uptime"),
            cpu_online: sys_root.join("devices/system/cpu/online"),
            network: NetworkSampler::for_host(&proc_root),
            disk_path: None,
            proc_root,
            reader: FileReader::with_capacity(8192),
            ticks_per_second: clock_ticks_per_second(),
        }
    }

    /// Also reports the disk usage of the filesystem holding `path`.
    pub fn with_disk(mut self, path: impl Into<PathBuf>) -> Self {
        self.disk_path = Some(path.into());
        self
    }

    /// Samples into a new value.
    pub fn sample(&mut self) -> Result<HostStats, HostError> {
        let mut out = HostStats::default();
        self.sample_into(&mut out)?;
        Ok(out)
    }

    /// Samples into `out`, reusing its allocations.
    pub fn sample_into(&mut self, out: &mut HostStats) -> Result<(), HostError> {
        out.timestamp_ns = monotonic_ns();
        let tick_ns = 1_000_000_000 / self.ticks_per_second;
        let (r, root) = (&mut self.reader, &self.proc_root);
        let text = required(r, &self.stat, root)?;
        let stat_cpus = parse_proc_stat(&self.stat, text, tick_ns, &mut out.cpu)?;
        out.cpus = match r.read(&self.cpu_online)? {
            Some(text) => parse_cpu_list(&self.cpu_online, text)?,
            // No /sys: the cpuN lines of /proc/stat are the online CPUs too.
            None => stat_cpus,
        };
        let text = required(r, &self.meminfo, root)?;
        out.memory = parse_meminfo(&self.meminfo, text)?;
        let text = required(r, &self.loadavg, root)?;
        out.load = parse_loadavg(&self.loadavg, text)?;
        let text = required(r, &self.uptime, root)?;
        out.uptime_seconds = parse_uptime(&self.uptime, text)?;
        self.network.sample_into(&mut out.network)?;
        out.disk = match &self.disk_path {
            Some(p) => Some(disk_usage(p)?),
            None => None,
        };
        Ok(())
    }
}

/// Reads one of the files every host has; missing means a wrong root.
fn required<'a>(
    r: &'a mut FileReader,
    path: &Path,
    proc_root: &Path,
) -> Result<&'a str, HostError> {
    match r.read(path)? {
        Some(t) => Ok(t),
        None => Err(HostError::Missing {
            path: path.to_path_buf(),
            proc_root: proc_root.to_path_buf(),
        }),
    }
}

/// `statvfs` of the filesystem holding `path`.
pub fn disk_usage(path: &Path) -> Result<DiskUsage, HostError> {
    let v = nix::sys::statvfs::statvfs(path).map_err(|source| HostError::Statvfs {
        path: path.to_path_buf(),
        source,
    })?;
    let frag = v.fragment_size() as u64;
    let total = v.blocks() as u64 * frag;
    let free = v.blocks_free() as u64 * frag;
    Ok(DiskUsage {
        path: path.to_path_buf(),
        total_bytes: total,
        used_bytes: total - free,
        available_bytes: v.blocks_available() as u64 * frag,
        inodes_total: v.files() as u64,
        inodes_free: v.files_free() as u64,
    })
}

/// Parses the `cpu` line of `/proc/stat` into `out`; returns the number of
/// `cpuN` lines.
pub(crate) fn parse_proc_stat(
    path: &Path,
    text: &str,
    tick_ns: u64,
    out: &mut CpuTimes,
) -> Result<u32, FileError> {
    let mut cpus = 0;
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        match it.next() {
            Some("cpu") => {
                let mut next = |what: &str| -> Result<u64, FileError> {
                    match it.next() {
                        Some(v) => Ok(num(path, what, v)? * tick_ns),
                        // Old kernels lack the later columns.
                        None => Ok(0),
                    }
                };
                out.user_ns = next("user")?;
                out.nice_ns = next("nice")?;
                out.system_ns = next("system")?;
                out.idle_ns = next("idle")?;
                out.iowait_ns = next("iowait")?;
                out.irq_ns = next("irq")?;
                out.softirq_ns = next("softirq")?;
                out.steal_ns = next("steal")?;
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    if cpus == 0 {
        return Err(FileError::parse(path, "no cpuN lines"));
    }
    Ok(cpus)
}

/// Counts the CPUs of a list like `0-3,6,8-9` (`/sys/devices/system/cpu/online`).
pub(crate) fn parse_cpu_list(path: &Path, text: &str) -> Result<u32, FileError> {
    let mut n = 0;
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => num(path, "cpu", b)? - num(path, "cpu", a)? + 1,
            None => {
                num(path, "cpu", part)?;
                1
            }
        };
    }
    Ok(n as u32)
}

/// Parses `/proc/meminfo` (`Key:   N kB` lines).
pub(crate) fn parse_meminfo(path: &Path, text: &str) -> Result<MemInfo, FileError> {
    let mut m = MemInfo::default();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut m.total_bytes,
            "MemFree" => &mut m.free_bytes,
            "MemAvailable" => &mut m.available_bytes,
            "Buffers" => &mut m.buffers_bytes,
            "Cached" => &mut m.cached_bytes,
            "SwapTotal" => &mut m.swap_total_bytes,
            "SwapFree" => &mut m.swap_free_bytes,
            _ => continue,
        };
        let v = rest.split_ascii_whitespace().next().unwrap_or("");
        *slot = num(path, key, v)? * 1024;
    }
    if m.total_bytes == 0 {
        return Err(FileError::parse(path, "no MemTotal"));
    }
    Ok(m)
}

/// Parses `/proc/loadavg` (`0.52 0.58 0.59 2/1234 5678`).
pub(crate) fn parse_loadavg(path: &Path, text: &str) -> Result<LoadAvg, FileError> {
    let mut it = text.split_ascii_whitespace();
    let mut f = |what: &str| -> Result<f64, FileError> {
        it.next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| FileError::parse(path, format!("bad {what} in {text:?}")))
    };
    let (one, five, fifteen) = (
        f("1-minute load")?,
        f("5-minute load")?,
        f("15-minute load")?,
    );
    let entities = it.next().unwrap_or("");
    let (running, total) = entities
        .split_once('/')
        .ok_or_else(|| FileError::parse(path, format!("bad running/total {entities:?}")))?;
    Ok(LoadAvg {
        one,
        five,
        fifteen,
        running: num(path, "running", running)?,
        total: num(path, "total", total)?,
    })
}

/// Parses `/proc/uptime` (`12345.67 23456.78`): seconds since boot.
pub(crate) fn parse_uptime(path: &Path, text: &str) -> Result<f64, FileError> {
    text.split_ascii_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| FileError::parse(path, format!("bad uptime {text:?}")))
}
