//! The correlation view: one container across its six facets — what the
//! spec asked for, what is on disk, in memory, on the network, the runtime
//! context and the isolation — each row with its real value and where it
//! was read.
//!
//! The spec side comes from the caller (the engine knows the spec and the
//! rootfs; this crate does not know how containers are started); everything
//! else is sampled.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::{CgroupError, ContainerSampler, ContainerStats};
use crate::host::{DiskUsage, HostError, disk_usage};
use crate::process::{Namespaces, ProcessSample, ProcessSampler};
use crate::table;

/// Why the correlation view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CorrelationError {
    /// Reading the cgroup failed.
    #[error("container {container}: {source}")]
    Cgroup {
        /// The container.
        container: String,
        /// The error.
        #[source]
        source: CgroupError,
    },
    /// Reading disk usage failed.
    #[error("container {container}: {source}")]
    Disk {
        /// The container.
        container: String,
        /// The error.
        #[source]
        source: HostError,
    },
}

/// What the engine knows about the container: its spec and where it lives.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorrelationInput {
    /// Container id.
    pub container_id: String,
    /// Container name.
    pub name: Option<String>,
    /// Image reference.
    pub image: Option<String>,
    /// Command (spec `process.args`).
    pub command: Vec<String>,
    /// Memory limit in the spec, bytes.
    pub memory_limit: Option<u64>,
    /// CPU quota and period in the spec, µs.
    pub cpu_quota: Option<(i64, u64)>,
    /// Pids limit in the spec.
    pub pids_limit: Option<i64>,
    /// Namespaces the spec asks for (`pid`, `network`, ...).
    pub namespaces: Vec<String>,
    /// The container's root filesystem (merged view).
    pub rootfs: Option<PathBuf>,
    /// Its writable layer (overlay upperdir), whose size is what the
    /// container wrote.
    pub upper_dir: Option<PathBuf>,
}

/// The six facets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aspect {
    /// The OCI spec.
    Spec,
    /// Files.
    OnDisk,
    /// Memory.
    InMemory,
    /// Network.
    InNetwork,
    /// Processes, cgroup, runtime.
    RuntimeContext,
    /// Namespaces.
    Isolation,
}

impl Aspect {
    fn label(self) -> &'static str {
        match self {
            Aspect::Spec => "spec",
            Aspect::OnDisk => "on disk",
            Aspect::InMemory => "in memory",
            Aspect::InNetwork => "in network",
            Aspect::RuntimeContext => "runtime context",
            Aspect::Isolation => "isolation",
        }
    }
}

/// One row of the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelationRow {
    /// The facet.
    pub aspect: Aspect,
    /// What the row is about.
    pub item: String,
    /// Its value.
    pub value: String,
    /// Where the value came from (a file, the spec).
    pub source: String,
}

/// The correlation view of one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorrelationView {
    /// Container id.
    pub container_id: String,
    /// The rows, facet by facet.
    pub rows: Vec<CorrelationRow>,
}

/// Sampled values the view is built from.
#[derive(Debug, Clone, Default)]
pub struct CorrelationSamples<'a> {
    /// The container's cgroup stats (network included when sampled).
    pub stats: Option<&'a ContainerStats>,
    /// The cgroup path and its hierarchy root, for the source column.
    pub cgroup_path: Option<&'a str>,
    /// Host PIDs in the cgroup.
    pub pids: &'a [i32],
    /// The container's init process.
    pub init: Option<&'a ProcessSample>,
    /// The host's namespaces (host PID 1).
    pub host_namespaces: Option<&'a Namespaces>,
    /// Disk usage of the filesystem holding the rootfs.
    pub rootfs_disk: Option<&'a DiskUsage>,
    /// Bytes and files in the writable layer.
    pub upper_usage: Option<(u64, u64)>,
}

impl CorrelationView {
    /// Builds the view from values already sampled.
    pub fn build(input: &CorrelationInput, s: &CorrelationSamples<'_>) -> CorrelationView {
        let mut rows = Vec::new();
        let mut row = |aspect, item: &str, value: String, source: &str| {
            rows.push(CorrelationRow {
                aspect,
                item: item.to_string(),
                value,
                source: source.to_string(),
            })
        };
        use Aspect::*;
        row(Spec, "image", table::opt(input.image.clone()), "engine");
        row(
            Spec,
            "command",
            input.command.join(" "),
            "config.json process.args",
        );
        row(
            Spec,
            "memory limit",
            input.memory_limit.map_or("unlimited".into(), table::bytes),
            "config.json linux.resources.memory.limit",
        );
        row(
            Spec,
            "cpu quota",
            input
                .cpu_quota
                .map_or("none".into(), |(q, p)| format!("{q}/{p} µs")),
            "config.json linux.resources.cpu",
        );
        row(
            Spec,
            "pids limit",
            input
                .pids_limit
                .map_or("unlimited".into(), |p| p.to_string()),
            "config.json linux.resources.pids.limit",
        );
        row(
            Spec,
            "namespaces",
            input.namespaces.join(","),
            "config.json linux.namespaces",
        );

        if let Some(root) = &input.rootfs {
            row(OnDisk, "rootfs", root.display().to_string(), "engine");
        }
        if let Some(d) = s.rootfs_disk {
            row(
                OnDisk,
                "filesystem",
                format!(
                    "{} used of {}, {} available",
                    table::bytes(d.used_bytes),
                    table::bytes(d.total_bytes),
                    table::bytes(d.available_bytes)
                ),
                "statvfs(rootfs)",
            );
        }
        if let (Some(upper), Some((bytes, files))) = (&input.upper_dir, s.upper_usage) {
            row(
                OnDisk,
                "written by the container",
                format!("{} in {files} files", table::bytes(bytes)),
                &upper.display().to_string(),
            );
        }

        let cg = s.cgroup_path.unwrap_or("-");
        if let Some(m) = s.stats.and_then(|st| st.memory.as_ref()) {
            let src = format!("cgroup {cg} memory");
            row(InMemory, "usage", table::bytes(m.usage_bytes), &src);
            row(
                InMemory,
                "working set",
                table::bytes(m.working_set_bytes),
                &src,
            );
            row(InMemory, "rss (anon)", table::bytes(m.rss_bytes), &src);
            row(InMemory, "cache (file)", table::bytes(m.cache_bytes), &src);
            row(
                InMemory,
                "limit enforced",
                m.limit_bytes.map_or("unlimited".into(), table::bytes),
                &src,
            );
            row(InMemory, "OOM kills", table::opt(m.oom_kills), &src);
        }
        if let Some(init) = s.init {
            row(
                InMemory,
                "init rss",
                table::bytes(init.rss_bytes),
                &format!("/proc/{}/status", init.pid),
            );
        }

        if let Some(net) = s.stats.and_then(|st| st.network.as_ref()) {
            let src = s.init.map_or("net/dev".to_string(), |i| {
                format!("/proc/{}/net/dev", i.pid)
            });
            for i in &net.interfaces {
                row(
                    InNetwork,
                    &i.name,
                    format!(
                        "rx {} ({} pkts), tx {} ({} pkts)",
                        table::bytes(i.rx_bytes),
                        i.rx_packets,
                        table::bytes(i.tx_bytes),
                        i.tx_packets
                    ),
                    &src,
                );
            }
        }

        let pids: Vec<String> = s.pids.iter().map(i32::to_string).collect();
        row(
            RuntimeContext,
            "host PIDs",
            pids.join(","),
            &format!("cgroup {cg} cgroup.procs"),
        );
        if let Some(st) = s.stats {
            row(
                RuntimeContext,
                "cgroup",
                format!("{cg} ({:?})", st.version),
                "/proc/PID/cgroup",
            );
            if let Some(c) = &st.cpu {
                row(
                    RuntimeContext,
                    "cpu used",
                    format!(
                        "{:.3} s, throttled {} of {} periods",
                        c.usage_ns as f64 / 1e9,
                        c.nr_throttled,
                        c.nr_periods
                    ),
                    &format!("cgroup {cg} cpu"),
                );
            }
            if let Some(p) = &st.pids {
                row(
                    RuntimeContext,
                    "tasks",
                    format!(
                        "{} of {}",
                        p.current,
                        p.limit.map_or("unlimited".into(), |l| l.to_string())
                    ),
                    &format!("cgroup {cg} pids"),
                );
            }
        }
        if let Some(init) = s.init {
            row(
                RuntimeContext,
                "init",
                format!(
                    "{} (host PID {}, PID {} inside), uid {}",
                    init.comm,
                    init.pid,
                    table::opt(init.ns_pids.last()),
                    init.uid
                ),
                &format!("/proc/{}/status", init.pid),
            );
            for ((name, id), (_, host)) in init
                .namespaces
                .entries()
                .iter()
                .zip(s.host_namespaces.cloned().unwrap_or_default().entries())
            {
                let Some(id) = id else { continue };
                let shared = if host == Some(*id) {
                    "shared with host"
                } else {
                    "private"
                };
                row(
                    Isolation,
                    name,
                    format!("{id} ({shared})"),
                    &format!("/proc/{}/ns/{name}", init.pid),
                );
            }
        }
        CorrelationView {
            container_id: input.container_id.clone(),
            rows,
        }
    }

    /// Samples what the view needs and builds it.
    pub fn collect(
        input: &CorrelationInput,
        proc_root: &Path,
        sampler: &mut ContainerSampler,
    ) -> Result<CorrelationView, CorrelationError> {
        let cgroup_err = |source| CorrelationError::Cgroup {
            container: input.container_id.clone(),
            source,
        };
        let stats = sampler.sample().map_err(cgroup_err)?;
        let mut pids = Vec::new();
        sampler.pids(&mut pids).map_err(cgroup_err)?;
        let mut ps = ProcessSampler::new(proc_root);
        let samples: Vec<ProcessSample> = pids.iter().filter_map(|p| ps.sample(*p).ok()).collect();
        let init = samples
            .iter()
            .find(|s| s.ns_pids.last() == Some(&1))
            .or(samples.first());
        let host_ns = crate::gap::host_namespaces(proc_root);
        let rootfs_disk = match &input.rootfs {
            Some(p) => Some(disk_usage(p).map_err(|source| CorrelationError::Disk {
                container: input.container_id.clone(),
                source,
            })?),
            None => None,
        };
        let upper_usage = input.upper_dir.as_deref().map(dir_usage);
        Ok(Self::build(
            input,
            &CorrelationSamples {
                stats: Some(&stats),
                cgroup_path: Some(sampler.cgroup_path()),
                pids: &pids,
                init,
                host_namespaces: Some(&host_ns),
                rootfs_disk: rootfs_disk.as_ref(),
                upper_usage,
            },
        ))
    }
}

/// Bytes and files under `dir`, not following symlinks nor crossing into
/// unreadable directories (a partial answer beats none for a view).
fn dir_usage(dir: &Path) -> (u64, u64) {
    let (mut bytes, mut files) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else {
                bytes += md.len();
                files += 1;
            }
        }
    }
    (bytes, files)
}

impl fmt::Display for CorrelationView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "CORRELATION VIEW: container {}", self.container_id)?;
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.aspect.label().to_string(),
                    r.item.clone(),
                    r.value.clone(),
                    r.source.clone(),
                ]
            })
            .collect();
        f.write_str(&table::render(
            &["ASPECT", "ITEM", "VALUE", "SOURCE"],
            &rows,
        ))
    }
}
