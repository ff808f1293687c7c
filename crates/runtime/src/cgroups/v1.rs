//! cgroup v1: one directory per controller, each under its own hierarchy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::{LinuxBlockIo, LinuxDeviceCgroup, LinuxNetwork, LinuxResources};

use super::{
    CgroupError, CgroupManager, CgroupVersion, V2Manager, create_dir, hugetlb_files, keyed_value,
    read_file, read_pids, remove_dir, write_file,
};

/// Controllers we place a container in when their hierarchy is mounted.
pub(super) const CONTROLLERS: &[&str] = &[
    "memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "blkio", "hugetlb",
    "net_cls", "net_prio",
];

/// Where the hybrid layout's cgroup2 mount is, below the root (systemd's name for it).
const UNIFIED: &str = "unified";

/// A container's cgroup on v1 hierarchies mounted at `<root>/<controller>`.
#[derive(Debug, Clone)]
pub struct V1Manager {
    root: PathBuf,
    rel: PathBuf,
    controllers: Vec<&'static str>,
}

impl V1Manager {
    /// Manager for `rel` (relative to each hierarchy's root) under `root` (normally
    /// `/sys/fs/cgroup`). Only controllers whose hierarchy exists are used.
    pub fn new(root: &Path, rel: &Path) -> Self {
        let controllers = CONTROLLERS
            .iter()
            .copied()
            .filter(|c| root.join(c).is_dir())
            .collect();
        V1Manager {
            root: root.to_path_buf(),
            rel: rel.to_path_buf(),
            controllers,
        }
    }

    fn dir(&self, controller: &str) -> Option<PathBuf> {
        self.controllers
            .contains(&controller)
            .then(|| self.root.join(controller).join(&self.rel))
    }

    fn need(&self, controller: &str, what: &str) -> Result<PathBuf, CgroupError> {
        self.dir(controller)
            .ok_or_else(|| CgroupError::Unsupported {
                version: "v1",
                what: format!("{what} (the {controller} hierarchy is not mounted)"),
            })
    }

    /// A new cpuset cgroup starts with empty cpus/mems and refuses tasks: copy the parent's
    /// values down every level we create.
    fn create_cpuset(&self) -> Result<(), CgroupError> {
        let Some(base) = self
            .controllers
            .contains(&"cpuset")
            .then(|| self.root.join("cpuset"))
        else {
            return Ok(());
        };
        let mut dir = base;
        for part in self.rel.components() {
            let parent = dir.clone();
            dir.push(part);
            create_dir(&dir)?;
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let current = read_file(&dir.join(file)).unwrap_or_default();
                if current.trim().is_empty() {
                    let inherited = read_file(&parent.join(file))?;
                    write_file(&dir.join(file), inherited.trim())?;
                }
            }
        }
        Ok(())
    }

    fn apply_memory(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(mem) = res.memory() else {
            return Ok(());
        };
        if mem.limit().is_none() && mem.swap().is_none() && mem.reservation().is_none() {
            return Ok(());
        }
        let dir = self.need("memory", "a memory limit")?;
        if let Some(r) = mem.reservation() {
            write_file(&dir.join("memory.soft_limit_in_bytes"), &r.to_string())?;
        }
        // The kernel requires limit <= memsw at all times: on a fresh cgroup both are
        // unlimited, so lower the memory limit first, then memsw. An update that raises the
        // limit (above the memsw of before) goes the other way round, as runc's does.
        let raising = match (mem.limit(), mem.swap()) {
            (Some(limit), Some(_)) => {
                let current = read_file(&dir.join("memory.limit_in_bytes")).ok();
                limit == -1
                    || current
                        .and_then(|c| c.trim().parse::<i64>().ok())
                        .is_some_and(|c| limit > c)
            }
            _ => false,
        };
        if let Some(limit) = mem.limit().filter(|_| !raising) {
            write_file(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
        }
        if let Some(swap) = mem.swap() {
            let file = dir.join("memory.memsw.limit_in_bytes");
            if file.exists() {
                write_file(&file, &swap.to_string())?;
            } else if swap != -1 {
                return Err(CgroupError::Unsupported {
                    version: "v1",
                    what: "memory+swap limit (swap accounting is off)".into(),
                });
            }
        }
        if let Some(limit) = mem.limit().filter(|_| raising) {
            write_file(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
        }
        if let Some(sw) = mem.swappiness() {
            write_file(&dir.join("memory.swappiness"), &sw.to_string())?;
        }
        Ok(())
    }

    fn apply_cpu(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        let Some(cpu) = res.cpu() else {
            return Ok(());
        };
        if cpu.shares().is_some() || cpu.quota().is_some() || cpu.period().is_some() {
            let dir = self.need("cpu", "a CPU quota or shares")?;
            if let Some(shares) = cpu.shares() {
                write_file(&dir.join("cpu.shares"), &shares.to_string())?;
            }
            // Period first: a quota is validated against the current period.
            if let Some(period) = cpu.period() {
                write_file(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
            }
            if let Some(quota) = cpu.quota() {
                write_file(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        if cpu.cpus().is_some() || cpu.mems().is_some() {
            let dir = self.need("cpuset", "a cpuset")?;
            if let Some(cpus) = cpu.cpus() {
                write_file(&dir.join("cpuset.cpus"), cpus)?;
            }
            if let Some(mems) = cpu.mems() {
                write_file(&dir.join("cpuset.mems"), mems)?;
            }
        }
        Ok(())
    }

    /// A blkio file the spec needs; missing means the kernel's I/O scheduler does not offer
    /// it (weights need BFQ or CFQ), which no runtime can change.
    fn blkio_file(&self, file: &str, field: &str) -> Result<PathBuf, CgroupError> {
        let path = self.need("blkio", field)?.join(file);
        if !path.exists() {
            return Err(CgroupError::Unsupported {
                version: "v1",
                what: format!(
                    "{field} (not available on this host: {file} does not exist; proportional \
                     block IO weights need the BFQ or CFQ I/O scheduler)"
                ),
            });
        }
        Ok(path)
    }

    fn apply_blkio(&self, bio: &LinuxBlockIo) -> Result<(), CgroupError> {
        if let Some(w) = bio.weight() {
            let f = self.blkio_file("blkio.weight", "linux.resources.blockIO.weight")?;
            write_file(&f, &w.to_string())?;
        }
        if let Some(w) = bio.leaf_weight() {
            let f = self.blkio_file("blkio.leaf_weight", "linux.resources.blockIO.leafWeight")?;
            write_file(&f, &w.to_string())?;
        }
        for dev in bio.weight_device().as_deref().unwrap_or_default() {
            let id = format!("{}:{}", dev.major(), dev.minor());
            if let Some(w) = dev.weight() {
                let f = self.blkio_file(
                    "blkio.weight_device",
                    "linux.resources.blockIO.weightDevice",
                )?;
                write_file(&f, &format!("{id} {w}"))?;
            }
            if let Some(w) = dev.leaf_weight() {
                let f = self.blkio_file(
                    "blkio.leaf_weight_device",
                    "linux.resources.blockIO.weightDevice[].leafWeight",
                )?;
                write_file(&f, &format!("{id} {w}"))?;
            }
        }
        let throttles = [
            (
                "blkio.throttle.read_bps_device",
                "throttleReadBpsDevice",
                bio.throttle_read_bps_device(),
            ),
            (
                "blkio.throttle.write_bps_device",
                "throttleWriteBpsDevice",
                bio.throttle_write_bps_device(),
            ),
            (
                "blkio.throttle.read_iops_device",
                "throttleReadIOPSDevice",
                bio.throttle_read_iops_device(),
            ),
            (
                "blkio.throttle.write_iops_device",
                "throttleWriteIOPSDevice",
                bio.throttle_write_iops_device(),
            ),
        ];
        for (file, field, list) in throttles {
            for dev in list.as_deref().unwrap_or_default() {
                let f = self.blkio_file(file, &format!("linux.resources.blockIO.{field}"))?;
                write_file(
                    &f,
                    &format!("{}:{} {}", dev.major(), dev.minor(), dev.rate()),
                )?;
            }
        }
        Ok(())
    }

    /// Hugetlb limits: in the v1 hugetlb hierarchy; on the hybrid layout whose hugetlb
    /// controller lives in the cgroup2 mount (`unified/`), there, in a cgroup of the same
    /// path that [`CgroupManager::add_task`] also puts the init in.
    fn apply_hugetlb(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        let limits = res.hugepage_limits().as_deref().unwrap_or_default();
        if limits.is_empty() {
            return Ok(());
        }
        if let Some(dir) = self.dir("hugetlb") {
            for (file, limit) in hugetlb_files(limits, "limit_in_bytes")? {
                write_file(&dir.join(file), &limit.to_string())?;
            }
            return Ok(());
        }
        match self.unified_hugetlb() {
            Some(m) => {
                m.create()?;
                // Only the hugetlb limits: the other controllers are the v1 hierarchies'.
                let mut only = LinuxResources::default();
                only.set_hugepage_limits(Some(limits.to_vec()));
                m.apply(&only)
            }
            None => Err(CgroupError::Unsupported {
                version: "v1",
                what: "hugetlb limits (not available on this host: no hugetlb controller \
                       in any mounted hierarchy)"
                    .into(),
            }),
        }
    }

    /// The cgroup2 side of a hybrid layout, when its mount offers hugetlb.
    fn unified_hugetlb(&self) -> Option<V2Manager> {
        let unified = self.root.join(UNIFIED);
        let offered = read_file(&unified.join("cgroup.controllers")).ok()?;
        offered
            .split_whitespace()
            .any(|c| c == "hugetlb")
            .then(|| V2Manager::new(&unified, &self.rel))
    }

    fn apply_network(&self, net: &LinuxNetwork) -> Result<(), CgroupError> {
        let missing = |controller: &str, field: &str| CgroupError::Unsupported {
            version: "v1",
            what: format!(
                "{field} (not available on this host: the {controller} hierarchy is not mounted)"
            ),
        };
        if let Some(id) = net.class_id() {
            let dir = self
                .dir("net_cls")
                .ok_or_else(|| missing("net_cls", "linux.resources.network.classID"))?;
            write_file(&dir.join("net_cls.classid"), &id.to_string())?;
        }
        for p in net.priorities().as_deref().unwrap_or_default() {
            let dir = self
                .dir("net_prio")
                .ok_or_else(|| missing("net_prio", "linux.resources.network.priorities"))?;
            write_file(
                &dir.join("net_prio.ifpriomap"),
                &format!("{} {}", p.name(), p.priority()),
            )?;
        }
        Ok(())
    }

    fn apply_devices(&self, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
        if rules.is_empty() {
            return Ok(());
        }
        let dir = self.need("devices", "device rules")?;
        for rule in rules {
            let file = if rule.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            let mut line = rule.to_string();
            // "a *:* rwm" is the kernel's spelling for "everything" only as plain "a".
            if line.starts_with("a ") {
                line = "a".into();
            }
            write_file(&dir.join(file), &line)?;
        }
        Ok(())
    }
}

impl CgroupManager for V1Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn create(&self) -> Result<(), CgroupError> {
        self.create_cpuset()?;
        for c in &self.controllers {
            create_dir(&self.root.join(c).join(&self.rel))?;
        }
        Ok(())
    }

    fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        self.apply_memory(res)?;
        self.apply_cpu(res)?;
        if let Some(pids) = res.pids() {
            let dir = self.need("pids", "a pids limit")?;
            let v = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".into()
            };
            write_file(&dir.join("pids.max"), &v)?;
        }
        if let Some(bio) = res.block_io() {
            self.apply_blkio(bio)?;
        }
        self.apply_hugetlb(res)?;
        if let Some(net) = res.network() {
            self.apply_network(net)?;
        }
        self.apply_devices(res.devices().as_deref().unwrap_or_default())
    }

    fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        for c in &self.controllers {
            write_file(
                &self.root.join(c).join(&self.rel).join("cgroup.procs"),
                &pid.to_string(),
            )?;
        }
        // The hybrid hugetlb cgroup, when `apply` made one.
        let unified = self.root.join(UNIFIED).join(&self.rel);
        if unified.is_dir() && !self.controllers.contains(&"hugetlb") {
            write_file(&unified.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn oom_killed(&self) -> Result<bool, CgroupError> {
        let Some(dir) = self.dir("memory") else {
            return Ok(false);
        };
        // `oom_kill` exists since Linux 4.13; `under_oom` only says "right now".
        let file = dir.join("memory.oom_control");
        Ok(keyed_value(&file, "oom_kill")?.unwrap_or(0) > 0
            || keyed_value(&file, "under_oom")?.unwrap_or(0) > 0)
    }

    fn cpu_usage(&self) -> Result<Duration, CgroupError> {
        let dir = self.need("cpuacct", "CPU accounting")?;
        let file = dir.join("cpuacct.usage");
        let s = read_file(&file)?;
        let ns: u64 = s.trim().parse().map_err(|_| CgroupError::Parse {
            path: file.clone(),
            content: s.clone(),
        })?;
        Ok(Duration::from_nanos(ns))
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        let c = if self.controllers.contains(&"pids") {
            "pids"
        } else {
            self.controllers.first().copied().unwrap_or("memory")
        };
        read_pids(&self.root.join(c).join(&self.rel).join("cgroup.procs"))
    }

    fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for c in &self.controllers {
            if let Err(e) = remove_dir(&self.root.join(c).join(&self.rel)) {
                first_err.get_or_insert(e);
            }
        }
        if !self.controllers.contains(&"hugetlb")
            && let Err(e) = remove_dir(&self.root.join(UNIFIED).join(&self.rel))
        {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    }

    fn controller_path(&self, controller: &str) -> Option<PathBuf> {
        self.dir(controller)
    }
}
