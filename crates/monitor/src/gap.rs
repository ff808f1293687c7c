//! The gap view: what the host sees of a container beside what the container
//! sees of itself, and which metrics exist at only one of the two levels.
//!
//! Everything is read through the host's proc root: `/proc/PID/root/...` is
//! the container's own filesystem (its `/etc/hostname`, its `/proc` mount),
//! `/proc/PID/net/dev` its network namespace.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::{CgroupError, CgroupVersion, ContainerSampler, ContainerStats};
use crate::host::{parse_cpu_list, parse_meminfo};
use crate::network::{NetworkError, NetworkSampler};
use crate::process::{Namespaces, ProcessError, ProcessSampler, read_namespaces};
use crate::read::FileReader;
use crate::table;

/// Why the gap view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GapError {
    /// The cgroup has no processes: the container is not running.
    #[error("cgroup {cgroup} has no processes: is container {container} running?")]
    NoProcesses {
        /// The container.
        container: String,
        /// Its cgroup path.
        cgroup: String,
    },
    /// Reading the cgroup failed.
    #[error("container {container}: {source}")]
    Cgroup {
        /// The container.
        container: String,
        /// The error.
        #[source]
        source: CgroupError,
    },
    /// Reading one of its processes failed.
    #[error("container {container}: {source}")]
    Process {
        /// The container.
        container: String,
        /// The error.
        #[source]
        source: ProcessError,
    },
    /// Reading its network namespace failed.
    #[error("container {container}: {source}")]
    Network {
        /// The container.
        container: String,
        /// The error.
        #[source]
        source: NetworkError,
    },
}

/// The level a metric is visible at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Only from the host (cgroup files, host PIDs).
    Host,
    /// Only from inside the container's namespaces.
    Container,
}

/// One process of the container, seen from both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapProcess {
    /// PID on the host.
    pub host_pid: i32,
    /// PID inside the container's PID namespace.
    pub container_pid: Option<i32>,
    /// Command name.
    pub comm: String,
}

/// A metric only one level can see, with the values observed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelOnlyMetric {
    /// What is measured.
    pub metric: String,
    /// The level that sees it.
    pub visible_at: Level,
    /// Its value there.
    pub value: String,
    /// What the other level sees instead.
    pub other_level_sees: String,
}

/// The host's side of the gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSide {
    /// Processes, by host PID.
    pub processes: Vec<GapProcess>,
    /// The container's cgroup path.
    pub cgroup_path: String,
    /// The cgroup layout.
    pub cgroup_version: CgroupVersion,
    /// The host's hostname.
    pub hostname: Option<String>,
    /// The host's namespaces (those of host PID 1).
    pub namespaces: Namespaces,
    /// The host end of the container's veth pair, when it has one.
    pub veth: Option<String>,
}

/// The container's side of the gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSide {
    /// Host PID of the container's init process.
    pub init_host_pid: i32,
    /// The PID the init process has inside (1 with a PID namespace).
    pub init_pid: Option<i32>,
    /// Hostname inside (`/etc/hostname` of its root).
    pub hostname: Option<String>,
    /// The container's namespaces (of its init process).
    pub namespaces: Namespaces,
    /// Network interfaces in its namespace.
    pub interfaces: Vec<String>,
    /// `MemTotal` its own `/proc/meminfo` shows, bytes.
    pub memory_total_seen: Option<u64>,
    /// CPUs its own `/sys` (or `/proc/stat`) shows.
    pub cpus_seen: Option<u32>,
}

/// The gap view of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapView {
    /// The container's id.
    pub container_id: String,
    /// What the host sees.
    pub host: HostSide,
    /// What the container sees.
    pub container: ContainerSide,
    /// Namespaces shared with the host (no isolation there).
    pub shared_namespaces: Vec<String>,
    /// Metrics visible at one level only.
    pub only_at_one_level: Vec<LevelOnlyMetric>,
}

impl GapView {
    /// Builds the view of the container whose cgroup `sampler` reads, through
    /// the host's `proc_root` and `sys_root`.
    pub fn collect(
        container_id: &str,
        proc_root: &Path,
        sys_root: &Path,
        sampler: &mut ContainerSampler,
    ) -> Result<GapView, GapError> {
        let cgroup_err = |source| GapError::Cgroup {
            container: container_id.to_string(),
            source,
        };
        let mut pids = Vec::new();
        sampler.pids(&mut pids).map_err(cgroup_err)?;
        let stats = sampler.sample().map_err(cgroup_err)?;

        let mut ps = ProcessSampler::new(proc_root);
        let mut processes = Vec::new();
        let mut init: Option<(i32, crate::ProcessSample)> = None;
        for &pid in &pids {
            // A process may exit between listing and reading: skip it.
            let Ok(s) = ps.sample(pid) else { continue };
            processes.push(GapProcess {
                host_pid: pid,
                container_pid: s.ns_pids.last().copied(),
                comm: s.comm.clone(),
            });
            let is_init = s.ns_pids.last() == Some(&1);
            if init.is_none() || is_init {
                init = Some((pid, s));
            }
        }
        let Some((init_pid, init)) = init else {
            return Err(GapError::NoProcesses {
                container: container_id.to_string(),
                cgroup: sampler.cgroup_path().to_string(),
            });
        };
        // The UTS namespace holds what `hostname` prints inside; the file
        // is what the engine wrote, and readable without privileges.
        let hostname = match uts_hostname(proc_root, init_pid) {
            Some(h) => Some(h),
            None => ps.hostname(init_pid).map_err(|source| GapError::Process {
                container: container_id.to_string(),
                source,
            })?,
        };
        let net = NetworkSampler::for_pid(proc_root, init_pid)
            .sample()
            .map_err(|source| GapError::Network {
                container: container_id.to_string(),
                source,
            })?;
        let interfaces: Vec<String> = net.interfaces.iter().map(|i| i.name.clone()).collect();

        let host_ns = host_namespaces(proc_root);
        let root = proc_root.join(init_pid.to_string()).join("root");
        let mut reader = FileReader::default();
        let host_hostname = read_trimmed(&mut reader, &proc_root.join("sys/kernel/hostname"));
        let memory_total_seen = {
            let p = root.join("proc/meminfo");
            reader
                .read(&p)
                .ok()
                .flatten()
                .and_then(|t| parse_meminfo(&p, t).ok())
                .map(|m| m.total_bytes)
        };
        let cpus_seen = {
            let p = root.join("sys/devices/system/cpu/online");
            reader
                .read(&p)
                .ok()
                .flatten()
                .and_then(|t| parse_cpu_list(&p, t).ok())
        };
        // In the host's own network namespace there is no veth to find.
        let veth = if init.namespaces.net.is_some() && init.namespaces.net == host_ns.net {
            None
        } else {
            find_veth(&mut reader, &root, sys_root, &interfaces)
        };

        let shared_namespaces = init
            .namespaces
            .entries()
            .iter()
            .zip(host_ns.entries())
            .filter(|((_, c), (_, h))| c.is_some() && c == h)
            .map(|((name, _), _)| name.to_string())
            .collect();

        let host = HostSide {
            processes,
            cgroup_path: sampler.cgroup_path().to_string(),
            cgroup_version: sampler.version(),
            hostname: host_hostname,
            namespaces: host_ns,
            veth,
        };
        let container = ContainerSide {
            init_host_pid: init_pid,
            init_pid: init.ns_pids.last().copied(),
            hostname,
            namespaces: init.namespaces.clone(),
            interfaces,
            memory_total_seen,
            cpus_seen,
        };
        let only_at_one_level = level_only(&host, &container, &stats);
        Ok(GapView {
            container_id: container_id.to_string(),
            host,
            container,
            shared_namespaces,
            only_at_one_level,
        })
    }
}

/// The hostname in the UTS namespace of `pid`, read by joining that
/// namespace from a short-lived thread (a thread's UTS namespace is its own,
/// so the rest of the process is unaffected). Needs CAP_SYS_ADMIN; `None`
/// without it or when the process is gone.
pub fn uts_hostname(proc_root: &Path, pid: i32) -> Option<String> {
    let ns = std::fs::File::open(proc_root.join(pid.to_string()).join("ns/uts")).ok()?;
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWUTS).ok()?;
        nix::unistd::gethostname().ok()?.into_string().ok()
    })
    .join()
    .ok()
    .flatten()
}

/// The host's namespaces: those of host PID 1, or, when PID 1's links
/// cannot be read (a sandbox that hides it), those of this process, which
/// runs on the host.
pub(crate) fn host_namespaces(proc_root: &Path) -> Namespaces {
    let mut ns = Namespaces::default();
    read_namespaces(&proc_root.join("1/ns"), &mut ns);
    if ns == Namespaces::default() {
        read_namespaces(&proc_root.join("self/ns"), &mut ns);
    }
    ns
}

fn read_trimmed(reader: &mut FileReader, path: &Path) -> Option<String> {
    reader
        .read(path)
        .ok()
        .flatten()
        .map(|t| t.trim().to_string())
}

/// The host interface whose `ifindex` is the `iflink` of one of the
/// container's interfaces (the peer of its veth). Needs the container to
/// have `/sys` mounted, as docker and runc set it up; otherwise `None`.
fn find_veth(
    reader: &mut FileReader,
    container_root: &Path,
    sys_root: &Path,
    interfaces: &[String],
) -> Option<String> {
    let host_net = sys_root.join("class/net");
    for name in interfaces.iter().filter(|n| *n != "lo") {
        let p: PathBuf = container_root
            .join("sys/class/net")
            .join(name)
            .join("iflink");
        let Some(iflink) = read_trimmed(reader, &p) else {
            continue;
        };
        // A device that is its own link (not one end of a pair) has no peer.
        let own = read_trimmed(reader, &p.with_file_name("ifindex"));
        if own.as_deref() == Some(iflink.as_str()) {
            continue;
        }
        for entry in std::fs::read_dir(&host_net).ok()?.flatten() {
            let idx = read_trimmed(reader, &entry.path().join("ifindex"));
            if idx.as_deref() == Some(iflink.as_str()) {
                return entry.file_name().to_str().map(str::to_string);
            }
        }
    }
    None
}

/// The metrics one level has and the other lacks, with the values seen now.
fn level_only(host: &HostSide, c: &ContainerSide, stats: &ContainerStats) -> Vec<LevelOnlyMetric> {
    let mut v = Vec::new();
    let mut add = |metric: &str, visible_at, value: String, other: String| {
        v.push(LevelOnlyMetric {
            metric: metric.to_string(),
            visible_at,
            value,
            other_level_sees: other,
        })
    };
    let host_pids: Vec<String> = host
        .processes
        .iter()
        .map(|p| p.host_pid.to_string())
        .collect();
    add(
        "host PIDs",
        Level::Host,
        host_pids.join(","),
        format!("PID {} for its init", table::opt(c.init_pid)),
    );
    add(
        "cgroup path",
        Level::Host,
        host.cgroup_path.clone(),
        "/ (with a cgroup namespace) or nothing".to_string(),
    );
    if let Some(m) = &stats.memory {
        add(
            "memory limit",
            Level::Host,
            m.limit_bytes.map_or("unlimited".to_string(), table::bytes),
            format!(
                "MemTotal {} in its /proc/meminfo",
                c.memory_total_seen.map_or("-".to_string(), table::bytes)
            ),
        );
        add(
            "OOM kills",
            Level::Host,
            table::opt(m.oom_kills),
            "a process that vanished (SIGKILL)".to_string(),
        );
        add(
            "memory working set",
            Level::Host,
            table::bytes(m.working_set_bytes),
            "host-wide MemFree/MemAvailable".to_string(),
        );
    }
    if let Some(cpu) = &stats.cpu {
        let quota = match (cpu.quota_us, cpu.period_us) {
            (Some(q), Some(p)) if p > 0 => format!("{:.2} CPUs ({q}/{p} µs)", q as f64 / p as f64),
            _ => "no quota".to_string(),
        };
        add(
            "CPU quota",
            Level::Host,
            quota,
            format!("{} online CPUs", table::opt(c.cpus_seen)),
        );
        add(
            "CPU throttling",
            Level::Host,
            format!(
                "{} of {} periods, {:.3} s",
                cpu.nr_throttled,
                cpu.nr_periods,
                cpu.throttled_ns as f64 / 1e9
            ),
            "slower progress only".to_string(),
        );
    }
    if let Some(veth) = &host.veth {
        add(
            "veth peer",
            Level::Host,
            veth.clone(),
            c.interfaces.join(","),
        );
    }
    add(
        "PID numbers",
        Level::Container,
        format!("init is PID {}", table::opt(c.init_pid)),
        format!("host PID {}", c.init_host_pid),
    );
    add(
        "hostname",
        Level::Container,
        table::opt(c.hostname.clone()),
        table::opt(host.hostname.clone()),
    );
    add(
        "network interfaces",
        Level::Container,
        c.interfaces.join(","),
        "only the veth peer (or nothing)".to_string(),
    );
    v
}

impl fmt::Display for GapView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "GAP VIEW: container {}", self.container_id)?;
        let h = &self.host;
        let c = &self.container;
        let ns = |n: &Namespaces| {
            n.entries()
                .iter()
                .map(|(k, v)| format!("{k}:{}", table::opt(*v)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let rows = vec![
            vec![
                "init PID".into(),
                c.init_host_pid.to_string(),
                table::opt(c.init_pid),
            ],
            vec![
                "hostname".into(),
                table::opt(h.hostname.clone()),
                table::opt(c.hostname.clone()),
            ],
            vec![
                "cgroup".into(),
                format!("{} ({:?})", h.cgroup_path, h.cgroup_version),
                "-".into(),
            ],
            vec![
                "network".into(),
                table::opt(h.veth.clone()),
                c.interfaces.join(","),
            ],
            vec![
                "memory total".into(),
                "-".into(),
                c.memory_total_seen.map_or("-".into(), table::bytes),
            ],
            vec!["CPUs".into(), "-".into(), table::opt(c.cpus_seen)],
            vec!["namespaces".into(), ns(&h.namespaces), ns(&c.namespaces)],
        ];
        f.write_str(&table::render(&["", "HOST SEES", "CONTAINER SEES"], &rows))?;
        writeln!(f)?;
        let rows: Vec<Vec<String>> = h
            .processes
            .iter()
            .map(|p| {
                vec![
                    p.host_pid.to_string(),
                    table::opt(p.container_pid),
                    p.comm.clone(),
                ]
            })
            .collect();
        f.write_str(&table::render(
            &["HOST PID", "CONTAINER PID", "COMMAND"],
            &rows,
        ))?;
        writeln!(f)?;
        writeln!(
            f,
            "shared with the host: {}",
            if self.shared_namespaces.is_empty() {
                "no namespaces".to_string()
            } else {
                self.shared_namespaces.join(", ")
            }
        )?;
        writeln!(f)?;
        let rows: Vec<Vec<String>> = self
            .only_at_one_level
            .iter()
            .map(|m| {
                vec![
                    m.metric.clone(),
                    format!("{:?}", m.visible_at).to_lowercase(),
                    m.value.clone(),
                    m.other_level_sees.clone(),
                ]
            })
            .collect();
        f.write_str(&table::render(
            &["METRIC", "ONLY AT", "VALUE", "THE OTHER LEVEL SEES"],
            &rows,
        ))
    }
}
