//! Metrics of processes, containers and the host, read from kernel files
//! under roots the caller passes in (`/proc`, `/sys/fs/cgroup`, `/sys`), so
//! every parser can be tested on recorded files.
//!
//! - [`ProcessSampler`]: `/proc/PID` — CPU, memory, I/O, fds, threads,
//!   namespaces, cgroups.
//! - [`ContainerSampler`]: a cgroup, v1 or v2 — CPU and throttling, memory
//!   and OOM kills, pids, block I/O — plus its network namespace's counters;
//!   or, for a container without a cgroup of its own (rootless on cgroup v1),
//!   the same numbers summed over its processes in `/proc`: those in its
//!   init's pid namespace and the namespaces nested below. There, CPU is the
//!   processes' `utime + stime` (with their reaped children's), memory the sum
//!   of their RSS (shared pages counted once per process), block I/O their
//!   `/proc/PID/io` bytes, and nothing has a limit.
//! - [`HostSampler`]: `/proc/stat`, `meminfo`, `loadavg`, `net/dev`, uptime,
//!   CPUs, disk usage of a path.
//! - [`rates`]: CPU % and bytes/s from two samples; the caller picks the interval.
//! - [`GapView`] and [`CorrelationView`]: what each isolation level sees.
//! - [`prometheus`]: text exposition with cAdvisor's metric names, and a
//!   small blocking HTTP server.
//!
//! Samplers keep their buffers: sampling into a reused value
//! (`sample_into`) allocates nothing in steady state.
#![deny(missing_docs)]

pub mod cgroup;
pub mod correlation;
pub mod gap;
pub mod host;
pub mod network;
pub mod process;
pub mod prometheus;
pub mod rates;
mod read;
mod table;
mod tree;

pub use cgroup::{
    BlkioStats, CgroupError, CgroupVersion, ContainerSampler, ContainerStats, CpuStats,
    MemoryStats, PidsStats,
};
pub use correlation::{CorrelationInput, CorrelationRow, CorrelationView};
pub use gap::{GapView, LevelOnlyMetric};
pub use host::{CpuTimes, DiskUsage, HostError, HostSampler, HostStats, LoadAvg, MemInfo};
pub use network::{InterfaceStats, NetworkError, NetworkSampler, NetworkStats};
pub use process::{
    CgroupMembership, Namespaces, ProcessError, ProcessIo, ProcessSample, ProcessSampler,
    sample_process,
};
pub use prometheus::{ContainerSnapshot, Snapshot};
pub use rates::{
    ContainerRates, HostRates, ProcessRates, container_rates, host_rates, process_rates,
};
pub use read::{FileError, clock_ticks_per_second, monotonic_ns};

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
