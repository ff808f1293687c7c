//! What docker's daemon refuses in a create body before it makes anything, refused here
//! with the daemon's own words, so that a command line and the Docker API see the same
//! errors (the API answers them with a 400).
//!
//! The limits that depend on the machine (how many CPUs, which of them) are read once per
//! create into [`HostCpus`]; [`check`] itself reads nothing, so every rule is tested
//! without the machine.

use std::path::Path;

use crate::config::{ContainerConfig, HostConfig};
use crate::error::{EngineError, Result};

/// docker's smallest memory limit: 6 MiB (`linuxMinMemory`); below it a container
/// cannot even start its runtime.
pub const MIN_MEMORY: i64 = 6 << 20;

/// The smallest `NanoCpus` docker accepts above zero: 0.01 CPU. Below it the CFS quota
/// (`--cpus` × a 100 ms period) is under the kernel's 1 ms minimum, so the start would
/// fail instead.
pub const MIN_NANO_CPUS: i64 = 10_000_000;

/// The CPUs a container may use on this machine, as docker's daemon sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCpus {
    /// How many CPUs this process may run on (its affinity mask): the top of `--cpus`.
    pub count: usize,
    /// The CPUs of the root cpuset (`0-3`): what `--cpuset-cpus` may name.
    pub available: String,
}

impl HostCpus {
    /// Reads this machine's: the affinity mask's size, and the root cgroup's cpuset
    /// (v1 `cpuset.cpus`, v2 `cpuset.cpus.effective`), else the online CPUs.
    pub fn read() -> Self {
        let count = affinity_count()
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
            .unwrap_or(1);
        let available = [
            "/sys/fs/cgroup/cpuset/cpuset.cpus",
            "/sys/fs/cgroup/cpuset.cpus.effective",
            "/sys/devices/system/cpu/online",
        ]
        .iter()
        .find_map(|p| read_list(Path::new(p)))
        .unwrap_or_else(|| format!("0-{}", count.saturating_sub(1)));
        HostCpus { count, available }
    }
}

fn affinity_count() -> Option<usize> {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).ok()?;
    let count = (0..nix::sched::CpuSet::count())
        .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
        .count();
    (count > 0).then_some(count)
}

fn read_list(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// Refuses what docker's daemon refuses in `config` on a host with `cpus`.
pub fn check(config: &ContainerConfig, cpus: &HostCpus) -> Result<()> {
    for entry in config.env.iter().flatten() {
        check_env(entry)?;
    }
    if let Some(dir) = config.working_dir.as_deref() {
        check_working_dir(dir)?;
    }
    if let Some(host) = &config.host_config {
        check_memory(host)?;
        check_cpus(host, cpus)?;
    }
    Ok(())
}

/// An environment entry needs a name: `""`, `=x` and `  =x` have none.
pub fn check_env(entry: &str) -> Result<()> {
    let name = entry.split_once('=').map_or(entry, |(name, _)| name);
    if name.trim().is_empty() {
        return Err(invalid(format!("invalid environment variable: {entry}")));
    }
    Ok(())
}

/// A working directory is absolute (an empty one means the image's).
pub fn check_working_dir(dir: &str) -> Result<()> {
    if dir.is_empty() || dir.starts_with('/') {
        return Ok(());
    }
    Err(invalid(format!(
        "the working directory '{dir}' is invalid, it needs to be an absolute path"
    )))
}

fn check_memory(host: &HostConfig) -> Result<()> {
    let memory = host.memory.unwrap_or(0);
    let swap = host.memory_swap.unwrap_or(0);
    if memory != 0 && memory < MIN_MEMORY {
        return Err(invalid("Minimum memory limit allowed is 6MB".into()));
    }
    if memory > 0 && swap > 0 && swap < memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        ));
    }
    if memory == 0 && swap > 0 {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        ));
    }
    Ok(())
}

fn check_cpus(host: &HostConfig, cpus: &HostCpus) -> Result<()> {
    let nano = host.nano_cpus.unwrap_or(0);
    let most = i64::try_from(cpus.count).unwrap_or(i64::MAX / 1_000_000_000) * 1_000_000_000;
    if nano != 0 && !(MIN_NANO_CPUS..=most).contains(&nano) {
        return Err(invalid(format!(
            "Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available",
            n = cpus.count
        )));
    }
    match host.cpuset_cpus.as_deref() {
        None | Some("") => Ok(()),
        Some(wanted) => check_cpuset(wanted, &cpus.available),
    }
}

/// `--cpuset-cpus` names only CPUs of the host's cpuset.
fn check_cpuset(wanted: &str, available: &str) -> Result<()> {
    let bad_value = || {
        invalid(format!(
            "Invalid value {wanted} for cpuset cpus: invalid format: {wanted}"
        ))
    };
    let wanted_ranges = cpu_list(wanted).ok_or_else(bad_value)?;
    // The host's own list is well formed; if it is not, leave the check to the kernel.
    let Some(host_ranges) = cpu_list(available) else {
        return Ok(());
    };
    let covered = |cpu: u32| host_ranges.iter().any(|(a, b)| (*a..=*b).contains(&cpu));
    let all_there = wanted_ranges.iter().all(|(a, b)| (*a..=*b).all(covered));
    if all_there {
        return Ok(());
    }
    Err(invalid(format!(
        "Requested CPUs are not available - requested {wanted}, available: {available}"
    )))
}

/// The most CPUs a list may name: more than any machine has, few enough to walk.
const MAX_CPU: u32 = 1 << 16;

/// A cgroup CPU list (`0-3,8,10-11`) as inclusive ranges; `None` when malformed.
fn cpu_list(text: &str) -> Option<Vec<(u32, u32)>> {
    text.split(',')
        .map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let number = |s: &str| {
                s.parse::<u32>()
                    .ok()
                    .filter(|n| *n < MAX_CPU && s.bytes().all(|b| b.is_ascii_digit()))
            };
            let (a, b) = (number(a)?, number(b)?);
            (a <= b).then_some((a, b))
        })
        .collect()
}

fn invalid(message: String) -> EngineError {
    EngineError::InvalidArgument(message)
}

#[cfg(test)]
mod tests;
