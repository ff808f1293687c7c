//! A container without a cgroup of its own (a rootless container on a host that
//! gives ordinary users no cgroups), sampled from `/proc` alone.
//!
//! Its processes are those in its init's pid namespace, plus those in pid
//! namespaces nested below it: a process whose parent is one of the
//! container's is the container's too, so a process cannot hide its usage by
//! unsharing a new pid namespace. Pid namespaces only nest downwards (a
//! process's children are in its namespace or a descendant, and `setns` only
//! enters descendants), so the parent rule never reaches outside.
//!
//! The numbers are sums over those processes, so they differ from a cgroup's:
//! - CPU: `utime + stime` of each process, plus `cutime + cstime` (the time
//!   of the children it reaped), so the total does not drop when a process
//!   exits and its parent waits for it. Time of processes reaped by a parent
//!   outside the container (an exec'd process) or auto-reaped is lost.
//! - memory: the sum of RSS; pages shared between processes (a library, a
//!   forked parent's pages) are counted once per process, and page cache is
//!   not counted at all. There is no limit.
//! - pids: tasks, threads included, as `pids.current` counts them.
//! - block I/O: `read_bytes` and `write_bytes` of `/proc/PID/io`; a process's
//!   I/O leaves the sum when it exits.
//!
//! Listing `/proc` uses `opendir` (libc's allocator) and every path is built
//! in reused buffers, so steady-state sampling allocates nothing here either.

use std::ffi::CStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use crate::cgroup::{BlkioStats, CgroupError, ContainerStats, CpuStats, MemoryStats, PidsStats};
use crate::process::parse_io;
use crate::read::{FileError, FileReader, num};

/// What one scan learns of a process that may be the container's.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    pid: i32,
    ppid: i32,
    /// In the container: its pid namespace is the init's, or its parent is a member.
    member: bool,
    user_ticks: u64,
    system_ticks: u64,
    threads: u64,
    rss_pages: u64,
}

/// Finds and sums a container's processes under a proc root.
#[derive(Debug)]
pub(crate) struct ProcessTree {
    proc_root: PathBuf,
    init: i32,
    /// The init's `ns/pid` link target (`pid:[4026532451]`): the container's namespace.
    namespace: Vec<u8>,
    reader: FileReader,
    path: PathBuf,
    /// `path` as a NUL-terminated C string, for readlink.
    c_path: Vec<u8>,
    link: Vec<u8>,
    entries: Vec<Entry>,
    page_size: u64,
}

impl ProcessTree {
    /// The tree of the container whose init is `init` under `proc_root`.
    pub(crate) fn new(proc_root: &Path, init: i32) -> Result<Self, CgroupError> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let mut tree = ProcessTree {
            proc_root: proc_root.to_path_buf(),
            init,
            namespace: Vec::new(),
            reader: FileReader::with_capacity(1024),
            path: PathBuf::with_capacity(64),
            c_path: Vec::with_capacity(64),
            link: vec![0; 64],
            entries: Vec::with_capacity(64),
            page_size: if page > 0 { page as u64 } else { 4096 },
        };
        match tree.pid_namespace(init)? {
            Some(n) => {
                tree.namespace = tree.link[..n].to_vec();
                Ok(tree)
            }
            None => Err(tree.init_gone()),
        }
    }

    fn init_gone(&self) -> CgroupError {
        CgroupError::NoProcess {
            path: self.proc_root.join(self.init.to_string()).join("ns/pid"),
        }
    }

    /// Scans the proc root: afterwards `entries` holds the container's processes
    /// (members) and others, sorted by pid. Fails when the init is gone (its pid
    /// namespace link is missing, or names another namespace: the pid was reused).
    fn scan(&mut self) -> Result<(), CgroupError> {
        if self.in_namespace(self.init)? != Some(true) {
            return Err(self.init_gone());
        }
        self.entries.clear();
        self.c_path.clear();
        self.c_path
            .extend_from_slice(self.proc_root.as_os_str().as_bytes());
        self.c_path.push(0);
        let listing_error = |source| FileError::Io {
            path: self.proc_root.clone(),
            source,
        };
        let root = CStr::from_bytes_with_nul(&self.c_path)
            .map_err(|_| listing_error(std::io::ErrorKind::InvalidInput.into()))?;
        // The pids are collected first, and the files read after the listing is
        // closed: fewer open descriptors, and the listing borrows nothing of `self`.
        let mut dir = ProcDir::open(root).map_err(listing_error)?;
        while let Some(name) = dir.next_name() {
            if let Some(pid) = pid_of(name) {
                self.entries.push(Entry {
                    pid,
                    ..Entry::default()
                });
            }
        }
        drop(dir);
        for i in 0..self.entries.len() {
            let pid = self.entries[i].pid;
            // Unreadable: another user's process we may not inspect (never the
            // container's: the engine owns its user namespace), or gone.
            let Some(member) = self.in_namespace(pid)? else {
                self.entries[i].pid = 0;
                continue;
            };
            let mut e = Entry {
                pid,
                member,
                ..Entry::default()
            };
            self.set_path(pid, "stat");
            match self.reader.read(&self.path)? {
                Some(text) => parse_stat_fields(&self.path, text, &mut e)?,
                None => e.pid = 0,
            }
            self.entries[i] = e;
        }
        self.entries.retain(|e| e.pid != 0);
        self.entries.sort_unstable_by_key(|e| e.pid);
        // Nested pid namespaces: children of members are members. Each round
        // reaches one more level of nesting, so this ends after at most the
        // nesting depth (the kernel allows 32) plus one rounds.
        loop {
            let mut grew = false;
            for i in 0..self.entries.len() {
                let e = self.entries[i];
                if !e.member && self.is_member(e.ppid) {
                    self.entries[i].member = true;
                    grew = true;
                }
            }
            if !grew {
                break;
            }
        }
        Ok(())
    }

    fn is_member(&self, pid: i32) -> bool {
        self.entries
            .binary_search_by_key(&pid, |e| e.pid)
            .is_ok_and(|i| self.entries[i].member)
    }

    /// Host pids of the container's processes, ascending.
    pub(crate) fn pids(&mut self, out: &mut Vec<i32>) -> Result<(), CgroupError> {
        out.clear();
        self.scan()?;
        out.extend(self.entries.iter().filter(|e| e.member).map(|e| e.pid));
        Ok(())
    }

    /// Sums the container's processes into `out`'s CPU, memory, pids and block I/O.
    pub(crate) fn sample_into(
        &mut self,
        tick_ns: u64,
        out: &mut ContainerStats,
    ) -> Result<(), CgroupError> {
        self.scan()?;
        let (mut user, mut system, mut threads, mut rss) = (0u64, 0u64, 0u64, 0u64);
        let mut blkio = BlkioStats::default();
        for i in 0..self.entries.len() {
            let e = self.entries[i];
            if !e.member {
                continue;
            }
            user += e.user_ticks;
            system += e.system_ticks;
            threads += e.threads;
            rss += e.rss_pages;
            self.set_path(e.pid, "io");
            match self.reader.read(&self.path) {
                Ok(Some(text)) => {
                    let io = parse_io(&self.path, text)?;
                    blkio.read_bytes += io.read_bytes;
                    blkio.write_bytes += io.write_bytes;
                }
                // Exited since the scan, or not ours to read: nothing to add.
                Ok(None) | Err(FileError::Io { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        out.cpu = Some(CpuStats {
            usage_ns: (user + system) * tick_ns,
            user_ns: user * tick_ns,
            system_ns: system * tick_ns,
            ..CpuStats::default()
        });
        let rss_bytes = rss * self.page_size;
        out.memory = Some(MemoryStats {
            usage_bytes: rss_bytes,
            rss_bytes,
            working_set_bytes: rss_bytes,
            ..MemoryStats::default()
        });
        out.pids = Some(PidsStats {
            current: threads,
            limit: None,
        });
        out.blkio = Some(blkio);
        Ok(())
    }

    /// Whether `pid` is in the container's pid namespace; `None` when it is gone
    /// or its links are not ours to read.
    fn in_namespace(&mut self, pid: i32) -> Result<Option<bool>, CgroupError> {
        let n = self.pid_namespace(pid)?;
        Ok(n.map(|n| self.link[..n] == self.namespace[..]))
    }

    /// Reads the target of `proc_root/PID/ns/pid` into `link` and returns its
    /// length, or `None` when the process is gone or its links are not ours to read.
    fn pid_namespace(&mut self, pid: i32) -> Result<Option<usize>, CgroupError> {
        self.set_path(pid, "ns/pid");
        self.c_path.clear();
        self.c_path
            .extend_from_slice(self.path.as_os_str().as_bytes());
        self.c_path.push(0);
        let Ok(c_path) = CStr::from_bytes_with_nul(&self.c_path) else {
            // A NUL inside the proc root: no such file.
            return Ok(None);
        };
        // SAFETY: `c_path` is NUL-terminated and `link` is a writable buffer of
        // `link.len()` bytes; readlink writes at most that many and returns how many.
        let n = unsafe {
            libc::readlink(
                c_path.as_ptr(),
                self.link.as_mut_ptr().cast(),
                self.link.len(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT | libc::ESRCH | libc::EACCES | libc::EPERM) => Ok(None),
                _ => Err(FileError::Io {
                    path: self.path.clone(),
                    source: e,
                }
                .into()),
            };
        }
        // `pid:[N]` is far shorter than the buffer; a longer target is not a namespace link.
        let n = n as usize;
        if n >= self.link.len() {
            return Ok(None);
        }
        Ok(Some(n))
    }

    /// `proc_root/PID/<file>` into the reused path buffer.
    fn set_path(&mut self, pid: i32, file: &str) {
        crate::process::set_proc_path(&mut self.path, &self.proc_root, pid, file);
    }
}

/// A directory listing through libc's `opendir`: nix's allocates a name per
/// entry, this one nothing on Rust's heap.
struct ProcDir(std::ptr::NonNull<libc::DIR>);

impl ProcDir {
    fn open(path: &CStr) -> std::io::Result<ProcDir> {
        // SAFETY: `path` is a valid NUL-terminated string.
        let dir = unsafe { libc::opendir(path.as_ptr()) };
        std::ptr::NonNull::new(dir)
            .map(ProcDir)
            .ok_or_else(std::io::Error::last_os_error)
    }

    /// The next entry's name; `None` at the end (or on a read error, which for
    /// `/proc` only means entries vanished: the next sample lists them again).
    fn next_name(&mut self) -> Option<&CStr> {
        // SAFETY: the stream is open until drop. The entry readdir returns stays
        // valid until the next readdir or the closedir on this stream; both need
        // `self` mutably, which the returned borrow prevents while it lives.
        let entry = unsafe { libc::readdir(self.0.as_ptr()) };
        if entry.is_null() {
            return None;
        }
        // SAFETY: a non-null dirent from readdir has a NUL-terminated `d_name`.
        Some(unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) })
    }
}

impl Drop for ProcDir {
    fn drop(&mut self) {
        // SAFETY: the stream came from opendir and is closed only here.
        unsafe { libc::closedir(self.0.as_ptr()) };
    }
}

/// A `/proc` entry's pid: a name of digits only.
fn pid_of(name: &CStr) -> Option<i32> {
    let bytes = name.to_bytes();
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The fields of `/proc/PID/stat` the tree needs: ppid (4), utime, stime, cutime,
/// cstime (14-17), num_threads (20), rss (24). `comm` may hold spaces and
/// parentheses, so fields are counted from the last `)`.
fn parse_stat_fields(path: &Path, text: &str, e: &mut Entry) -> Result<(), FileError> {
    let close = text
        .rfind(')')
        .ok_or_else(|| FileError::parse(path, "no ')' after comm"))?;
    let mut fields = text[close + 1..].split_ascii_whitespace();
    // The iterator starts at field 3 (state).
    let mut next = 3;
    let mut field = |n: usize, what: &str| -> Result<u64, FileError> {
        let mut value = None;
        while next <= n {
            value = fields.next();
            next += 1;
        }
        let value = value.ok_or_else(|| FileError::parse(path, format!("missing {what}")))?;
        num(path, what, value)
    };
    e.ppid = field(4, "ppid")? as i32;
    let (utime, stime) = (field(14, "utime")?, field(15, "stime")?);
    // Signed in the kernel's format, never negative in practice.
    let (cutime, cstime) = (field(16, "cutime")?, field(17, "cstime")?);
    e.user_ticks = utime + cutime;
    e.system_ticks = stime + cstime;
    e.threads = field(20, "num_threads")?;
    e.rss_pages = field(24, "rss")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let text = "42 (a) b) (c) S 7 42 42 0 -1 4194560 100 0 0 0 \
                    11 5 3 2 20 0 3 0 1234 5000000 250 18446744073709551615";
        let mut e = Entry::default();
        parse_stat_fields(Path::new("stat"), text, &mut e).unwrap();
        assert_eq!(e.ppid, 7);
        assert_eq!((e.user_ticks, e.system_ticks), (11 + 3, 5 + 2));
        assert_eq!(e.threads, 3);
        assert_eq!(e.rss_pages, 250);
    }

    #[test]
    fn a_short_stat_names_the_missing_field() {
        let mut e = Entry::default();
        let err = parse_stat_fields(Path::new("/proc/1/stat"), "1 (x) S 0 1 1", &mut e)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/proc/1/stat") && err.contains("utime"),
            "{err}"
        );
    }

    #[test]
    fn only_digit_names_are_pids() {
        assert_eq!(pid_of(c"123"), Some(123));
        assert_eq!(pid_of(c"self"), None);
        assert_eq!(pid_of(c"12a"), None);
        assert_eq!(pid_of(c""), None);
    }
}
