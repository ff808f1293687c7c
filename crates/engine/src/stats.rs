//! `stats`: a running container's resource usage, sampled from its cgroup and network
//! namespace, as docker's stats document (API 1.41) and as the numbers `docker stats`
//! shows. A container without a cgroup of its own (rootless mode where the user may
//! create no cgroups) is sampled from `/proc`: its processes are those of its pid
//! namespace, which `/sys/fs/cgroup` cannot tell from the rest of its user's.
//!
//! A [`StatsSampler`] keeps the sample before the last, so a caller that resamples it
//! once a second has docker's `precpu_stats` (and rates) for free.

use std::collections::HashMap;
use std::path::Path;

use basic_monitor::{
    CgroupError, CgroupVersion, ContainerRates, ContainerSampler, ContainerStats, HostSampler,
};
use bollard_stubs::models::{
    ContainerBlkioStatEntry, ContainerBlkioStats, ContainerCpuStats, ContainerCpuUsage,
    ContainerMemoryStats, ContainerNetworkStats, ContainerPidsStats, ContainerStatsResponse,
};

use crate::engine::Engine;
use crate::error::{EngineError, Result};

/// One sample: the container's counters, when they were read, and the host's CPU time
/// then (docker's `system_cpu_usage`, the denominator of its CPU %).
#[derive(Debug, Clone, Default)]
struct Sample {
    stats: ContainerStats,
    read: String,
    system_ns: u64,
    online_cpus: u32,
}

/// A running container being sampled (see [`Engine::stats`]).
pub struct StatsSampler {
    id: String,
    name: String,
    sampler: ContainerSampler,
    current: Sample,
    previous: Option<Sample>,
    host_memory: u64,
}

/// The numbers of one `docker stats` row, between the last two samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsSummary {
    /// CPU time over wall time between the samples, % of one core.
    pub cpu_percent: f64,
    /// Memory in use, page cache that can be dropped excluded (docker's usage).
    pub memory_usage: u64,
    /// The cgroup's memory limit, capped at the host's memory.
    pub memory_limit: u64,
    /// `memory_usage` of `memory_limit`, %.
    pub memory_percent: f64,
    /// Bytes received on every interface of the container's network namespace.
    pub network_rx: u64,
    /// Bytes sent.
    pub network_tx: u64,
    /// Bytes read from block devices.
    pub block_read: u64,
    /// Bytes written.
    pub block_write: u64,
    /// Processes (tasks) in the cgroup.
    pub pids: u64,
}

impl Engine {
    /// Starts sampling running (or paused) container `query`: one sample is taken now.
    /// A container that is not running is a conflict, as docker answers it.
    pub fn stats(&self, query: &str) -> Result<StatsSampler> {
        let c = self.container(query)?;
        let pid = self.running_pid(&c)?;
        let metrics = |what, source| EngineError::Metrics {
            container: c.id().to_string(),
            what,
            source,
        };
        let sampler = sampler_for(c.id(), pid).map_err(|e| metrics("finding the cgroup", e))?;
        let host_memory = HostSampler::new("/proc", "/sys")
            .sample()
            .map(|h| h.memory.total_bytes)
            .unwrap_or(0);
        let mut s = StatsSampler {
            id: c.id().to_string(),
            name: format!("/{}", c.name()),
            sampler,
            current: Sample::default(),
            previous: None,
            host_memory,
        };
        s.current = s.take()?;
        Ok(s)
    }
}

impl Engine {
    /// A sampler of running (or paused) container `query`'s cgroup, or of its processes
    /// in `/proc` when it has no cgroup of its own (see [`ContainerSampler::has_cgroup`]).
    pub fn container_sampler(&self, query: &str) -> Result<ContainerSampler> {
        let c = self.container(query)?;
        let pid = self.running_pid(&c)?;
        sampler_for(c.id(), pid).map_err(|source| EngineError::Metrics {
            container: c.id().to_string(),
            what: "finding the cgroup",
            source,
        })
    }
}

/// Whether container `id`, whose init is `pid`, has a cgroup of its own: the runtime
/// names a container's cgroup after its id (`basic-docker/<id>`, under whatever parent),
/// while a container run without cgroups sits in its user's cgroup. Read from the init's
/// `/proc/PID/cgroup`, so it holds however the host's cgroups are laid out and whatever
/// mode created the container. A process that is gone has none.
pub(crate) fn has_own_cgroup(id: &str, pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .any(|path| path.trim_end_matches('/').rsplit('/').next() == Some(id))
}

/// The sampler for container `id` whose init is `pid`: its cgroup's, or its process
/// tree's without a cgroup of its own.
pub(crate) fn sampler_for(
    id: &str,
    pid: i32,
) -> std::result::Result<ContainerSampler, CgroupError> {
    let proc_root = Path::new("/proc");
    if has_own_cgroup(id, pid) {
        ContainerSampler::for_pid(proc_root, Path::new("/sys/fs/cgroup"), pid)
    } else {
        ContainerSampler::for_process_tree(proc_root, pid)
    }
}

impl StatsSampler {
    /// The container's full id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Takes another sample; the last one becomes the previous (`precpu_stats`). Fails
    /// once the container's cgroup is gone (it stopped).
    pub fn resample(&mut self) -> Result<()> {
        let next = self.take()?;
        self.previous = Some(std::mem::replace(&mut self.current, next));
        Ok(())
    }

    /// The last sample's raw counters.
    pub fn current(&self) -> &ContainerStats {
        &self.current.stats
    }

    /// The host's memory, the limit of a container without one.
    pub fn host_memory(&self) -> u64 {
        self.host_memory
    }

    fn take(&mut self) -> Result<Sample> {
        let mut stats = self.previous.take().map(|p| p.stats).unwrap_or_default();
        self.sampler
            .sample_into(&mut stats)
            .map_err(|source| EngineError::Metrics {
                container: self.id.clone(),
                what: if self.sampler.has_cgroup() {
                    "sampling the cgroup"
                } else {
                    "sampling the processes"
                },
                source,
            })?;
        let (system_ns, online_cpus) = host_cpu();
        Ok(Sample {
            stats,
            read: jiff::Timestamp::now().to_string(),
            system_ns,
            online_cpus,
        })
    }

    /// The memory limit docker shows: the cgroup's, capped at the host's memory.
    fn memory_limit(&self) -> u64 {
        let host = self.host_memory;
        self.current
            .stats
            .memory
            .as_ref()
            .and_then(|m| m.limit_bytes)
            .map_or(host, |l| if host > 0 { l.min(host) } else { l })
    }

    /// The rates between the last two samples (zeros before a second sample).
    pub fn rates(&self) -> ContainerRates {
        match &self.previous {
            Some(prev) => basic_monitor::container_rates(
                &prev.stats,
                &self.current.stats,
                Some(self.host_memory),
            ),
            None => ContainerRates::default(),
        }
    }

    /// The numbers of a `docker stats` row (CPU % is zero before a second sample).
    pub fn summary(&self) -> StatsSummary {
        let rates = self.rates();
        let s = &self.current.stats;
        let memory_usage = s.memory.as_ref().map_or(0, |m| m.working_set_bytes);
        let memory_limit = self.memory_limit();
        let memory_percent = if memory_limit > 0 {
            memory_usage as f64 / memory_limit as f64 * 100.0
        } else {
            0.0
        };
        let net = s.network.as_ref().map(|n| n.total()).unwrap_or_default();
        let blk = s.blkio.clone().unwrap_or_default();
        StatsSummary {
            cpu_percent: rates.cpu_percent.unwrap_or(0.0),
            memory_usage,
            memory_limit,
            memory_percent,
            network_rx: net.rx_bytes,
            network_tx: net.tx_bytes,
            block_read: blk.read_bytes,
            block_write: blk.write_bytes,
            pids: s.pids.as_ref().map_or(0, |p| p.current),
        }
    }

    /// The last sample as docker's stats document: `precpu_stats` and `preread` are the
    /// sample before (empty, with docker's zero time, before there is one).
    pub fn document(&self) -> ContainerStatsResponse {
        let s = &self.current.stats;
        let (precpu, preread) = match &self.previous {
            Some(p) => (cpu_stats(p), p.read.clone()),
            None => (ContainerCpuStats::default(), "0001-01-01T00:00:00Z".into()),
        };
        let memory = s.memory.as_ref().map(|m| {
            let stats: HashMap<String, u64> = match s.version {
                CgroupVersion::V2 => [
                    ("anon", m.rss_bytes),
                    ("file", m.cache_bytes),
                    ("inactive_file", m.inactive_file_bytes),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
                CgroupVersion::V1 => [
                    ("cache", m.cache_bytes),
                    ("rss", m.rss_bytes),
                    ("total_cache", m.cache_bytes),
                    ("total_rss", m.rss_bytes),
                    ("total_inactive_file", m.inactive_file_bytes),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            };
            ContainerMemoryStats {
                usage: Some(m.usage_bytes),
                max_usage: m.max_usage_bytes,
                stats: Some(stats),
                limit: Some(self.memory_limit()),
                ..ContainerMemoryStats::default()
            }
        });
        let networks = s.network.as_ref().map(|n| {
            n.interfaces
                .iter()
                .filter(|i| i.name != "lo")
                .map(|i| {
                    let stats = ContainerNetworkStats {
                        rx_bytes: Some(i.rx_bytes),
                        rx_packets: Some(i.rx_packets),
                        rx_errors: Some(i.rx_errors),
                        rx_dropped: Some(i.rx_dropped),
                        tx_bytes: Some(i.tx_bytes),
                        tx_packets: Some(i.tx_packets),
                        tx_errors: Some(i.tx_errors),
                        tx_dropped: Some(i.tx_dropped),
                        ..ContainerNetworkStats::default()
                    };
                    (i.name.clone(), stats)
                })
                .collect::<HashMap<_, _>>()
        });
        // The monitor sums the devices: one entry per operation, as docker's CLI adds
        // them up by operation.
        let blkio = s.blkio.as_ref().map(|b| ContainerBlkioStats {
            io_service_bytes_recursive: Some(vec![
                blkio_entry("read", b.read_bytes),
                blkio_entry("write", b.write_bytes),
            ]),
            ..ContainerBlkioStats::default()
        });
        ContainerStatsResponse {
            id: Some(self.id.clone()),
            name: Some(self.name.clone()),
            read: Some(self.current.read.clone()),
            preread: Some(preread),
            cpu_stats: Some(cpu_stats(&self.current)),
            precpu_stats: Some(precpu),
            memory_stats: memory,
            networks: networks.filter(|n| !n.is_empty()),
            pids_stats: s.pids.as_ref().map(|p| ContainerPidsStats {
                current: Some(p.current),
                limit: p.limit,
            }),
            blkio_stats: Some(blkio.unwrap_or_default()),
            num_procs: Some(0),
            ..ContainerStatsResponse::default()
        }
    }
}

fn blkio_entry(op: &str, value: u64) -> ContainerBlkioStatEntry {
    ContainerBlkioStatEntry {
        major: Some(0),
        minor: Some(0),
        op: Some(op.to_string()),
        value: Some(value),
    }
}

fn cpu_stats(sample: &Sample) -> ContainerCpuStats {
    let cpu = sample.stats.cpu.clone().unwrap_or_default();
    ContainerCpuStats {
        cpu_usage: Some(ContainerCpuUsage {
            total_usage: Some(cpu.usage_ns),
            percpu_usage: None,
            usage_in_kernelmode: Some(cpu.system_ns),
            usage_in_usermode: Some(cpu.user_ns),
        }),
        system_cpu_usage: Some(sample.system_ns),
        online_cpus: Some(sample.online_cpus),
        throttling_data: None,
    }
}

/// The host's CPU time in nanoseconds (the sum of `/proc/stat`'s `cpu` line, as docker
/// reads it) and the number of CPUs listed there.
fn host_cpu() -> (u64, u32) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_host_cpu(&text, basic_monitor::clock_ticks_per_second())
}

fn parse_host_cpu(text: &str, ticks_per_second: u64) -> (u64, u32) {
    let mut total = 0;
    let mut cpus = 0;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                // user nice system idle iowait irq softirq (steal and guests are not
                // counted by docker).
                let ticks: u64 = fields.take(7).filter_map(|f| f.parse::<u64>().ok()).sum();
                total = ticks.saturating_mul(1_000_000_000 / ticks_per_second.max(1));
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_of_its_own_is_one_named_after_the_container() {
        let me = std::process::id() as i32;
        // This test runs in no cgroup named like a container id.
        assert!(!has_own_cgroup("0123abcd", me));
        assert!(!has_own_cgroup("0123abcd", i32::MAX));
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let last = own
            .lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .filter_map(|p| p.rsplit('/').next())
            .find(|n| !n.is_empty());
        // Unless it runs in the root cgroup everywhere, its own leaf counts.
        if let Some(last) = last {
            assert!(has_own_cgroup(last, me));
        }
    }

    #[test]
    fn host_cpu_is_the_cpu_line_in_nanoseconds_and_the_cpus_counted() {
        let stat = "cpu  10 0 20 70 0 0 0 5 0 0\ncpu0 5 0 10 35 0 0 0 0 0 0\ncpu1 5 0 10 35 0 0 0 5 0 0\nintr 1\n";
        assert_eq!(parse_host_cpu(stat, 100), (100 * 10_000_000, 2));
    }
}
