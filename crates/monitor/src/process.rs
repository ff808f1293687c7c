//! One process, from `/proc/PID`: CPU times, memory, I/O, file descriptors,
//! threads, namespaces and cgroup membership.
//!
//! Hand parsers rather than `procfs`: `procfs` 0.18 can take a custom root
//! (`Process::new_with_root`), but each call builds fresh structs (a `HashMap`
//! for `status`, a `String` per field), and the samplers here reuse one buffer
//! so that sampling many processes every second stays allocation-light. The
//! tests cross-check these parsers against `procfs` on live files.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::read::{FileError, FileReader, monotonic_ns, num};

/// Why sampling a process failed.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// `/proc/PID` does not exist: no such process (or it exited).
    #[error("process {pid} not found under {}", proc_root.display())]
    NotFound {
        /// The PID asked for.
        pid: i32,
        /// The proc root it was looked for in.
        proc_root: PathBuf,
    },
    /// A file could not be read or parsed.
    #[error(transparent)]
    File(#[from] FileError),
}

/// The namespace inode ids of a process (`/proc/PID/ns/*` link targets, e.g.
/// `net:[4026531833]`). Two processes share a namespace when the ids are equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    /// cgroup namespace.
    pub cgroup: Option<u64>,
    /// IPC namespace.
    pub ipc: Option<u64>,
    /// Mount namespace.
    pub mnt: Option<u64>,
    /// Network namespace.
    pub net: Option<u64>,
    /// PID namespace.
    pub pid: Option<u64>,
    /// User namespace.
    pub user: Option<u64>,
    /// UTS (hostname) namespace.
    pub uts: Option<u64>,
    /// Time namespace.
    pub time: Option<u64>,
}

impl Namespaces {
    /// `(name, id)` pairs in a fixed order, for tables and comparisons.
    pub fn entries(&self) -> [(&'static str, Option<u64>); 8] {
        [
            ("cgroup", self.cgroup),
            ("ipc", self.ipc),
            ("mnt", self.mnt),
            ("net", self.net),
            ("pid", self.pid),
            ("user", self.user),
            ("uts", self.uts),
            ("time", self.time),
        ]
    }
}

/// One line of `/proc/PID/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupMembership {
    /// Hierarchy id; 0 is the v2 unified hierarchy.
    pub hierarchy_id: u32,
    /// Controllers bound to the hierarchy (`cpu,cpuacct`, `name=systemd`); empty for v2.
    pub controllers: String,
    /// Path of the cgroup relative to the hierarchy's root.
    pub path: String,
}

/// `/proc/PID/io` counters (needs ptrace access to the process).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIo {
    /// Bytes read by read-like syscalls (including page cache hits).
    pub rchar: u64,
    /// Bytes written by write-like syscalls.
    pub wchar: u64,
    /// Read syscalls.
    pub syscr: u64,
    /// Write syscalls.
    pub syscw: u64,
    /// Bytes fetched from the storage layer.
    pub read_bytes: u64,
    /// Bytes sent to the storage layer.
    pub write_bytes: u64,
}

/// A sample of one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessSample {
    /// `CLOCK_MONOTONIC` time of the sample, in ns (see [`crate::monotonic_ns`]).
    pub timestamp_ns: u64,
    /// PID as seen from the proc root read (the host's, for the host's /proc).
    pub pid: i32,
    /// PIDs of this process in each PID namespace, outermost first (`NSpid`);
    /// the last one is what the process itself sees.
    pub ns_pids: Vec<i32>,
    /// Parent PID.
    pub ppid: i32,
    /// Command name (`comm`, at most 15 bytes).
    pub comm: String,
    /// State letter (R, S, D, Z, ...).
    pub state: char,
    /// User-mode CPU time, ns.
    pub utime_ns: u64,
    /// Kernel-mode CPU time, ns.
    pub stime_ns: u64,
    /// Start time after boot, ns.
    pub start_time_ns: u64,
    /// Threads (`num_threads`).
    pub threads: u64,
    /// Virtual memory size, bytes.
    pub vsize_bytes: u64,
    /// Resident set size, bytes (`VmRSS`).
    pub rss_bytes: u64,
    /// Peak resident set size, bytes (`VmHWM`).
    pub rss_peak_bytes: u64,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Voluntary context switches.
    pub voluntary_ctxt_switches: u64,
    /// Involuntary context switches.
    pub nonvoluntary_ctxt_switches: u64,
    /// I/O counters; `None` when not permitted or not compiled in.
    pub io: Option<ProcessIo>,
    /// Open file descriptors; `None` when not permitted.
    pub fd_count: Option<u64>,
    /// Namespace ids.
    pub namespaces: Namespaces,
    /// cgroup membership.
    pub cgroups: Vec<CgroupMembership>,
}

impl ProcessSample {
    /// User plus system CPU time, ns.
    pub fn cpu_time_ns(&self) -> u64 {
        self.utime_ns + self.stime_ns
    }

    /// The cgroup path in the v2 hierarchy (id 0), or in the v1 hierarchy
    /// holding `controller` when given.
    pub fn cgroup_path(&self, controller: Option<&str>) -> Option<&str> {
        self.cgroups
            .iter()
            .find(|c| match controller {
                None => c.hierarchy_id == 0,
                Some(name) => c.controllers.split(',').any(|x| x == name),
            })
            .map(|c| c.path.as_str())
    }
}

/// Samples processes under one proc root, reusing its buffers.
#[derive(Debug)]
pub struct ProcessSampler {
    proc_root: PathBuf,
    reader: FileReader,
    path: PathBuf,
    ticks_per_second: u64,
    page_size: u64,
}

impl ProcessSampler {
    /// A sampler reading `proc_root` (normally `/proc`).
    pub fn new(proc_root: impl Into<PathBuf>) -> Self {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        ProcessSampler {
            proc_root: proc_root.into(),
            reader: FileReader::with_capacity(4096),
            path: PathBuf::with_capacity(64),
            ticks_per_second: crate::read::clock_ticks_per_second(),
            page_size: if page > 0 { page as u64 } else { 4096 },
        }
    }

    /// The proc root this sampler reads.
    pub fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    /// Samples `pid`.
    pub fn sample(&mut self, pid: i32) -> Result<ProcessSample, ProcessError> {
        let mut s = ProcessSample::default();
        self.sample_into(pid, &mut s)?;
        Ok(s)
    }

    /// Samples `pid` into `out`, reusing its strings and vectors.
    pub fn sample_into(&mut self, pid: i32, out: &mut ProcessSample) -> Result<(), ProcessError> {
        out.timestamp_ns = monotonic_ns();
        out.pid = pid;
        self.set_path(pid, "stat");
        let Some(text) = self.reader.read(&self.path)? else {
            return Err(ProcessError::NotFound {
                pid,
                proc_root: self.proc_root.clone(),
            });
        };
        parse_stat(&self.path, text, self.ticks_per_second, self.page_size, out)?;

        self.set_path(pid, "status");
        if let Some(text) = self.reader.read(&self.path)? {
            parse_status(&self.path, text, out)?;
        }

        self.set_path(pid, "io");
        out.io = match self.reader.read(&self.path) {
            Ok(Some(text)) => Some(parse_io(&self.path, text)?),
            Ok(None) => None,
            // Reading another user's io needs ptrace rights; unprivileged
            // monitors still get everything else.
            Err(FileError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                None
            }
            Err(e) => return Err(e.into()),
        };

        self.set_path(pid, "fd");
        out.fd_count = std::fs::read_dir(&self.path).ok().map(|d| d.count() as u64);

        self.set_path(pid, "ns");
        read_namespaces(&self.path, &mut out.namespaces);

        self.set_path(pid, "cgroup");
        if let Some(text) = self.reader.read(&self.path)? {
            parse_cgroup(&self.path, text, &mut out.cgroups)?;
        }
        Ok(())
    }

    /// Reads `/proc/PID/root/etc/hostname`: the hostname a container was
    /// given (docker writes it there), as seen from the host.
    pub fn hostname(&mut self, pid: i32) -> Result<Option<String>, ProcessError> {
        self.set_path(pid, "root/etc/hostname");
        Ok(self.reader.read(&self.path)?.map(|t| t.trim().to_string()))
    }

    /// `proc_root/PID/<file>` into the reused path buffer.
    fn set_path(&mut self, pid: i32, file: &str) {
        set_proc_path(&mut self.path, &self.proc_root, pid, file);
    }
}

/// `proc_root/PID/<file>` into a reused path buffer, without formatting allocations.
pub(crate) fn set_proc_path(path: &mut PathBuf, proc_root: &Path, pid: i32, file: &str) {
    let mut digits = [0u8; 12];
    let mut cursor = std::io::Cursor::new(&mut digits[..]);
    let _ = write!(cursor, "{pid}");
    let len = cursor.position() as usize;
    let pid_str = std::str::from_utf8(&digits[..len]).unwrap_or("0");
    path.as_mut_os_string().clear();
    path.push(proc_root);
    path.push(pid_str);
    path.push(file);
}

/// Samples one process under `proc_root`. For repeated sampling, keep a
/// [`ProcessSampler`] instead.
pub fn sample_process(proc_root: &Path, pid: i32) -> Result<ProcessSample, ProcessError> {
    ProcessSampler::new(proc_root).sample(pid)
}

/// Parses `/proc/PID/stat`. `comm` may contain spaces and parentheses, so
/// the fields are counted from the last `)`.
pub(crate) fn parse_stat(
    path: &Path,
    text: &str,
    ticks: u64,
    page_size: u64,
    out: &mut ProcessSample,
) -> Result<(), FileError> {
    let open = text
        .find('(')
        .ok_or_else(|| FileError::parse(path, "no '(' before comm"))?;
    let close = text
        .rfind(')')
        .ok_or_else(|| FileError::parse(path, "no ')' after comm"))?;
    out.comm.clear();
    out.comm.push_str(&text[open + 1..close]);
    // Field 3 (state) is the first after comm; fields are numbered from 1 in proc(5).
    let mut fields = text[close + 1..].split_ascii_whitespace();
    let mut field = |n: usize| -> Result<&str, FileError> {
        let _ = n;
        fields
            .next()
            .ok_or_else(|| FileError::parse(path, format!("missing field {n}")))
    };
    out.state = field(3)?.chars().next().unwrap_or('?');
    out.ppid = num(path, "ppid", field(4)?)? as i32;
    for n in 5..=13 {
        field(n)?;
    }
    let to_ns = |t: u64| t * (1_000_000_000 / ticks);
    out.utime_ns = to_ns(num(path, "utime", field(14)?)?);
    out.stime_ns = to_ns(num(path, "stime", field(15)?)?);
    for n in 16..=19 {
        field(n)?;
    }
    out.threads = num(path, "num_threads", field(20)?)?;
    field(21)?;
    out.start_time_ns = to_ns(num(path, "starttime", field(22)?)?);
    out.vsize_bytes = num(path, "vsize", field(23)?)?;
    // Overwritten by VmRSS from status when present; the same number in pages.
    out.rss_bytes = num(path, "rss", field(24)?)? * page_size;
    Ok(())
}

/// Parses the fields of `/proc/PID/status` that `stat` lacks.
pub(crate) fn parse_status(
    path: &Path,
    text: &str,
    out: &mut ProcessSample,
) -> Result<(), FileError> {
    out.ns_pids.clear();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let first = || value.split_ascii_whitespace().next().unwrap_or("");
        match key {
            "Uid" => out.uid = num(path, key, first())? as u32,
            "Gid" => out.gid = num(path, key, first())? as u32,
            // Reported in kB (really KiB).
            "VmRSS" => out.rss_bytes = num(path, key, first())? * 1024,
            "VmHWM" => out.rss_peak_bytes = num(path, key, first())? * 1024,
            "Threads" => out.threads = num(path, key, first())?,
            "voluntary_ctxt_switches" => out.voluntary_ctxt_switches = num(path, key, first())?,
            "nonvoluntary_ctxt_switches" => {
                out.nonvoluntary_ctxt_switches = num(path, key, first())?
            }
            "NSpid" => {
                for p in value.split_ascii_whitespace() {
                    out.ns_pids.push(num(path, key, p)? as i32);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses `/proc/PID/io`.
pub(crate) fn parse_io(path: &Path, text: &str) -> Result<ProcessIo, FileError> {
    let mut io = ProcessIo::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let v = || num(path, key, value);
        match key {
            "rchar" => io.rchar = v()?,
            "wchar" => io.wchar = v()?,
            "syscr" => io.syscr = v()?,
            "syscw" => io.syscw = v()?,
            "read_bytes" => io.read_bytes = v()?,
            "write_bytes" => io.write_bytes = v()?,
            _ => {}
        }
    }
    Ok(io)
}

/// Parses `/proc/PID/cgroup` (`hierarchy-id:controllers:path` lines) into
/// `out`, reusing its entries' strings.
pub(crate) fn parse_cgroup(
    path: &Path,
    text: &str,
    out: &mut Vec<CgroupMembership>,
) -> Result<(), FileError> {
    let mut n = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(cg_path)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(FileError::parse(path, format!("malformed line {line:?}")));
        };
        if n == out.len() {
            out.push(CgroupMembership::default());
        }
        let entry = &mut out[n];
        entry.hierarchy_id = num(path, "hierarchy id", id)? as u32;
        entry.controllers.clear();
        entry.controllers.push_str(controllers);
        entry.path.clear();
        entry.path.push_str(cg_path);
        n += 1;
    }
    out.truncate(n);
    Ok(())
}

/// Reads the namespace links under `ns_dir`. A missing link (older kernel, no
/// time namespaces) or an unreadable one (another user's process) stays `None`.
pub(crate) fn read_namespaces(ns_dir: &Path, out: &mut Namespaces) {
    let read = |name: &str| -> Option<u64> {
        let target = std::fs::read_link(ns_dir.join(name)).ok()?;
        parse_ns_link(target.to_str()?)
    };
    out.cgroup = read("cgroup");
    out.ipc = read("ipc");
    out.mnt = read("mnt");
    out.net = read("net");
    out.pid = read("pid");
    out.user = read("user");
    out.uts = read("uts");
    out.time = read("time");
}

/// `net:[4026531833]` → 4026531833.
pub(crate) fn parse_ns_link(target: &str) -> Option<u64> {
    let start = target.find('[')? + 1;
    let end = target.rfind(']')?;
    target.get(start..end)?.parse().ok()
}
