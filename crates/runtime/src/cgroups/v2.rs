//! cgroup v2: one unified directory; controllers enabled in every ancestor's subtree_control.

use std::path::{Path, PathBuf};
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use super::{
    CgroupError, CgroupManager, CgroupVersion, create_dir, hugetlb_files, keyed_value, read_file,
    read_pids, remove_dir, shares_to_weight, write_file,
};

/// Controllers we enable for the container's cgroup when the parent offers them.
const CONTROLLERS: &[&str] = &["cpu", "cpuset", "memory", "pids", "io", "hugetlb"];

/// A container's cgroup in the unified hierarchy at `root`.
#[derive(Debug, Clone)]
pub struct V2Manager {
    root: PathBuf,
    rel: PathBuf,
}

impl V2Manager {
    /// Manager for `rel` under `root` (normally `/sys/fs/cgroup`).
    pub fn new(root: &Path, rel: &Path) -> Self {
        V2Manager {
            root: root.to_path_buf(),
            rel: rel.to_path_buf(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.join(&self.rel)
    }

    /// Limits can only be written once the parent delegates the controller, so enable each
    /// available one from the root down to our parent.
    fn enable_controllers(&self) -> Result<(), CgroupError> {
        let mut dir = self.root.clone();
        for part in self.rel.components() {
            let available = read_file(&dir.join("cgroup.controllers")).unwrap_or_default();
            let wanted: Vec<String> = CONTROLLERS
                .iter()
                .filter(|c| available.split_whitespace().any(|a| a == **c))
                .map(|c| format!("+{c}"))
                .collect();
            if !wanted.is_empty() {
                write_file(&dir.join("cgroup.subtree_control"), &wanted.join(" "))?;
            }
            dir.push(part);
            create_dir(&dir)?;
        }
        Ok(())
    }
}

impl CgroupManager for V2Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn create(&self) -> Result<(), CgroupError> {
        self.enable_controllers()
    }

    fn apply(&self, res: &LinuxResources) -> Result<(), CgroupError> {
        let dir = self.dir();
        if let Some(mem) = res.memory() {
            if let Some(r) = mem.reservation() {
                write_file(&dir.join("memory.low"), &r.to_string())?;
            }
            if let Some(limit) = mem.limit() {
                write_file(&dir.join("memory.max"), &max_or(limit))?;
            }
            // OCI's swap is memory+swap (the v1 meaning); v2's swap.max is swap alone.
            if let Some(swap) = mem.swap() {
                let v = match (swap, mem.limit()) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l > 0 => (s - l).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                write_file(&dir.join("memory.swap.max"), &v)?;
            }
        }
        if let Some(cpu) = res.cpu() {
            if let Some(shares) = cpu.shares() {
                write_file(
                    &dir.join("cpu.weight"),
                    &shares_to_weight(shares).to_string(),
                )?;
            }
            if cpu.quota().is_some() || cpu.period().is_some() {
                let quota = cpu.quota().filter(|q| *q > 0).map(|q| q.to_string());
                let period = cpu.period().unwrap_or(100_000);
                let v = format!("{} {period}", quota.as_deref().unwrap_or("max"));
                write_file(&dir.join("cpu.max"), &v)?;
            }
            if let Some(cpus) = cpu.cpus() {
                write_file(&dir.join("cpuset.cpus"), cpus)?;
            }
            if let Some(mems) = cpu.mems() {
                write_file(&dir.join("cpuset.mems"), mems)?;
            }
        }
        if let Some(pids) = res.pids() {
            write_file(&dir.join("pids.max"), &max_or(pids.limit()))?;
        }
        if let Some(bio) = res.block_io() {
            self.apply_io(bio)?;
        }
        for (file, limit) in
            hugetlb_files(res.hugepage_limits().as_deref().unwrap_or_default(), "max")?
        {
            // 0 is a limit (no huge pages), not "unlimited".
            write_file(&dir.join(file), &limit.to_string())?;
        }
        if let Some(net) = res.network()
            && (net.class_id().is_some()
                || net.priorities().as_ref().is_some_and(|p| !p.is_empty()))
        {
            return Err(CgroupError::Unsupported {
                version: "v2",
                what: "linux.resources.network (not available on this host: cgroup v2 has no \
                       net_cls or net_prio controller)"
                    .into(),
            });
        }
        // Device rules need an eBPF program on v2; docker's defaults only restate what the
        // /dev we build already limits, so they are skipped here (detect::unsupported says so).
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<(), CgroupError> {
        write_file(&self.dir().join("cgroup.procs"), &pid.to_string())
    }

    fn oom_killed(&self) -> Result<bool, CgroupError> {
        let file = self.dir().join("memory.events");
        if !file.exists() {
            return Ok(false);
        }
        Ok(keyed_value(&file, "oom_kill")?.unwrap_or(0) > 0)
    }

    fn cpu_usage(&self) -> Result<Duration, CgroupError> {
        let file = self.dir().join("cpu.stat");
        let usec = keyed_value(&file, "usage_usec")?.ok_or_else(|| CgroupError::Parse {
            path: file.clone(),
            content: "no usage_usec".into(),
        })?;
        Ok(Duration::from_micros(usec))
    }

    fn pids(&self) -> Result<Vec<i32>, CgroupError> {
        read_pids(&self.dir().join("cgroup.procs"))
    }

    fn remove(&self) -> Result<(), CgroupError> {
        // cgroup.kill (5.14+) kills the whole subtree at once; older kernels fall back to
        // killing the pids listed in cgroup.procs inside remove_dir.
        let kill = self.dir().join("cgroup.kill");
        if kill.exists() && !self.pids()?.is_empty() {
            let _ = std::fs::write(&kill, "1");
        }
        remove_dir(&self.dir())
    }

    fn controller_path(&self, _controller: &str) -> Option<PathBuf> {
        Some(self.dir())
    }
}

impl V2Manager {
    /// Block IO in the io controller: blkio's weights (10..1000) map onto io.weight's
    /// (1..10000), throttles onto io.max. v2 has no leaf weights.
    fn apply_io(&self, bio: &oci_spec::runtime::LinuxBlockIo) -> Result<(), CgroupError> {
        let dir = self.dir();
        let weight = |w: u16| 1 + (u64::from(w).saturating_sub(10)) * 9999 / 990;
        let leaf = bio.leaf_weight().is_some()
            || bio
                .weight_device()
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|d| d.leaf_weight().is_some());
        if leaf {
            return Err(CgroupError::Unsupported {
                version: "v2",
                what: "linux.resources.blockIO leafWeight (not available on this host: cgroup \
                       v2 has no leaf weights)"
                    .into(),
            });
        }
        if let Some(w) = bio.weight() {
            write_file(&dir.join("io.weight"), &format!("default {}", weight(w)))?;
        }
        for d in bio.weight_device().as_deref().unwrap_or_default() {
            if let Some(w) = d.weight() {
                let line = format!("{}:{} {}", d.major(), d.minor(), weight(w));
                write_file(&dir.join("io.weight"), &line)?;
            }
        }
        let throttles = [
            ("rbps", bio.throttle_read_bps_device()),
            ("wbps", bio.throttle_write_bps_device()),
            ("riops", bio.throttle_read_iops_device()),
            ("wiops", bio.throttle_write_iops_device()),
        ];
        for (key, list) in throttles {
            for d in list.as_deref().unwrap_or_default() {
                let line = format!("{}:{} {key}={}", d.major(), d.minor(), d.rate());
                write_file(&dir.join("io.max"), &line)?;
            }
        }
        Ok(())
    }
}

fn max_or(v: i64) -> String {
    if v > 0 { v.to_string() } else { "max".into() }
}
