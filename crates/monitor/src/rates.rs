//! Rates from two samples. The caller decides the interval (no sleeping
//! here); every sample carries its own `CLOCK_MONOTONIC` timestamp, so the
//! rate uses the time that really passed between the two reads.

use serde::{Deserialize, Serialize};

use crate::cgroup::ContainerStats;
use crate::host::HostStats;
use crate::process::ProcessSample;

/// Per-second rates of a container between two samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerRates {
    /// Seconds between the samples.
    pub interval_seconds: f64,
    /// CPU use, % of one core (200 = two cores busy), as `docker stats` shows it.
    pub cpu_percent: Option<f64>,
    /// Share of the CFS periods in the interval that were throttled, %.
    pub throttled_percent: Option<f64>,
    /// Working set over the limit (or over host memory when unlimited, if
    /// given), % — `docker stats`' MEM %.
    pub memory_percent: Option<f64>,
    /// Block bytes read per second.
    pub blkio_read_bytes_per_second: Option<f64>,
    /// Block bytes written per second.
    pub blkio_write_bytes_per_second: Option<f64>,
    /// Network bytes received per second (loopback excluded).
    pub network_rx_bytes_per_second: Option<f64>,
    /// Network bytes sent per second (loopback excluded).
    pub network_tx_bytes_per_second: Option<f64>,
}

/// `(cur - prev) / seconds`, or `None` when a counter went backwards (the
/// cgroup was recreated) or no time passed.
fn per_second(prev: u64, cur: u64, seconds: f64) -> Option<f64> {
    (cur >= prev && seconds > 0.0).then(|| (cur - prev) as f64 / seconds)
}

fn interval(prev_ns: u64, cur_ns: u64) -> f64 {
    cur_ns.saturating_sub(prev_ns) as f64 / 1e9
}

/// Rates between two samples of the same container. `host_memory_bytes`
/// is the denominator of MEM % when the container has no limit, as docker does.
///
/// CPU %: Δusage_ns / Δwall_ns × 100. Docker computes Δusage / Δsystem ×
/// online CPUs × 100, where Δsystem is the host's CPU time summed over all
/// CPUs: that is Δwall × CPUs, so both give the same number; the wall clock
/// is read directly here, and needs no /proc/stat read per container.
pub fn container_rates(
    prev: &ContainerStats,
    cur: &ContainerStats,
    host_memory_bytes: Option<u64>,
) -> ContainerRates {
    let secs = interval(prev.timestamp_ns, cur.timestamp_ns);
    let mut r = ContainerRates {
        interval_seconds: secs,
        ..ContainerRates::default()
    };
    if let (Some(a), Some(b)) = (&prev.cpu, &cur.cpu) {
        r.cpu_percent = per_second(a.usage_ns, b.usage_ns, secs).map(|ns| ns / 1e9 * 100.0);
        let periods = b.nr_periods.saturating_sub(a.nr_periods);
        if periods > 0 {
            r.throttled_percent =
                Some(b.nr_throttled.saturating_sub(a.nr_throttled) as f64 / periods as f64 * 100.0);
        }
    }
    if let Some(m) = &cur.memory {
        r.memory_percent = m
            .limit_bytes
            .or(host_memory_bytes)
            .filter(|l| *l > 0)
            .map(|l| m.working_set_bytes as f64 / l as f64 * 100.0);
    }
    if let (Some(a), Some(b)) = (&prev.blkio, &cur.blkio) {
        r.blkio_read_bytes_per_second = per_second(a.read_bytes, b.read_bytes, secs);
        r.blkio_write_bytes_per_second = per_second(a.write_bytes, b.write_bytes, secs);
    }
    if let (Some(a), Some(b)) = (&prev.network, &cur.network) {
        let (a, b) = (a.total(), b.total());
        r.network_rx_bytes_per_second = per_second(a.rx_bytes, b.rx_bytes, secs);
        r.network_tx_bytes_per_second = per_second(a.tx_bytes, b.tx_bytes, secs);
    }
    r
}

/// Per-second rates of the host between two samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostRates {
    /// Seconds between the samples.
    pub interval_seconds: f64,
    /// Busy share of all CPUs' time, % (100 = every CPU busy).
    pub cpu_percent: Option<f64>,
    /// Network bytes received per second (loopback excluded).
    pub network_rx_bytes_per_second: Option<f64>,
    /// Network bytes sent per second (loopback excluded).
    pub network_tx_bytes_per_second: Option<f64>,
}

/// Rates between two samples of the host.
pub fn host_rates(prev: &HostStats, cur: &HostStats) -> HostRates {
    let secs = interval(prev.timestamp_ns, cur.timestamp_ns);
    let total = cur.cpu.total_ns().saturating_sub(prev.cpu.total_ns());
    let busy = cur.cpu.busy_ns().saturating_sub(prev.cpu.busy_ns());
    let (a, b) = (prev.network.total(), cur.network.total());
    HostRates {
        interval_seconds: secs,
        cpu_percent: (total > 0).then(|| busy as f64 / total as f64 * 100.0),
        network_rx_bytes_per_second: per_second(a.rx_bytes, b.rx_bytes, secs),
        network_tx_bytes_per_second: per_second(a.tx_bytes, b.tx_bytes, secs),
    }
}

/// Per-second rates of one process between two samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessRates {
    /// Seconds between the samples.
    pub interval_seconds: f64,
    /// CPU use, % of one core.
    pub cpu_percent: Option<f64>,
    /// Storage bytes read per second.
    pub read_bytes_per_second: Option<f64>,
    /// Storage bytes written per second.
    pub write_bytes_per_second: Option<f64>,
}

/// Rates between two samples of the same process. `None` everywhere when
/// the PID was reused by another process in between (start times differ).
pub fn process_rates(prev: &ProcessSample, cur: &ProcessSample) -> ProcessRates {
    let secs = interval(prev.timestamp_ns, cur.timestamp_ns);
    let mut r = ProcessRates {
        interval_seconds: secs,
        ..ProcessRates::default()
    };
    if prev.pid != cur.pid || prev.start_time_ns != cur.start_time_ns {
        return r;
    }
    r.cpu_percent =
        per_second(prev.cpu_time_ns(), cur.cpu_time_ns(), secs).map(|ns| ns / 1e9 * 100.0);
    if let (Some(a), Some(b)) = (&prev.io, &cur.io) {
        r.read_bytes_per_second = per_second(a.read_bytes, b.read_bytes, secs);
        r.write_bytes_per_second = per_second(a.write_bytes, b.write_bytes, secs);
    }
    r
}
