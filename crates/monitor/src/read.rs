//! Reading small kernel files into a reused buffer, and the few parsing
//! helpers every sampler shares.
//!
//! Kernel interface files are tiny and re-read on every sample, so the reader
//! keeps one `String` and reads into it: in steady state a sample opens files
//! but allocates nothing.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Why reading or parsing one kernel file failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file exists but could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file was read but its content is not what the kernel writes.
    #[error("parsing {}: {what}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
}

impl FileError {
    /// A parse error for `path`.
    pub(crate) fn parse(path: &Path, what: impl Into<String>) -> Self {
        FileError::Parse {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }
}

/// Reads files into one reused buffer.
#[derive(Debug, Default)]
pub(crate) struct FileReader {
    buf: String,
}

impl FileReader {
    /// A reader whose buffer starts at `capacity` bytes, so the first reads
    /// of typical files (memory.stat is ~1 KiB, /proc/PID/status ~1.5 KiB)
    /// do not grow it.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        FileReader {
            buf: String::with_capacity(capacity),
        }
    }

    /// The file's content, or `None` when it does not exist: a controller that
    /// is not mounted, a process that exited, a file an older kernel lacks.
    pub(crate) fn read(&mut self, path: &Path) -> Result<Option<&str>, FileError> {
        self.buf.clear();
        let mut file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(source) => {
                return Err(FileError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        match file.read_to_string(&mut self.buf) {
            Ok(_) => Ok(Some(&self.buf)),
            // A process that exits between open and read makes /proc files
            // return ESRCH; that is "gone", like a missing file.
            Err(e) if is_absent(&e) => Ok(None),
            Err(source) => Err(FileError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

/// Errors meaning "this file is not there (any more)".
pub(crate) fn is_absent(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Parses a number, naming the file and the field on failure.
pub(crate) fn num(path: &Path, field: &str, text: &str) -> Result<u64, FileError> {
    text.trim()
        .parse()
        .map_err(|_| FileError::parse(path, format!("{field}: {text:?} is not a number")))
}

/// A limit file's value: `max` (v2) and the v1 "unlimited" sentinel
/// (`PAGE_COUNTER_MAX` rounded to pages, ≥ 2^62 in practice) both mean `None`.
pub(crate) fn limit(path: &Path, text: &str) -> Result<Option<u64>, FileError> {
    let text = text.trim();
    if text == "max" {
        return Ok(None);
    }
    let v = num(path, "limit", text)?;
    Ok((v < 1 << 62).then_some(v))
}

/// Calls `f(key, value)` for each `key value` line (memory.stat, cpu.stat,
/// cpuacct.stat, memory.events, memory.oom_control).
pub(crate) fn for_each_kv(
    path: &Path,
    text: &str,
    mut f: impl FnMut(&str, u64),
) -> Result<(), FileError> {
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        f(k, num(path, k, v)?);
    }
    Ok(())
}

/// Nanoseconds on `CLOCK_MONOTONIC`: the clock rates must use, since wall time
/// can jump (NTP, manual changes) between two samples.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Kernel clock ticks per second (`USER_HZ`), the unit of /proc/PID/stat
/// times, /proc/stat and cpuacct.stat.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}
