//! Container output in docker's `json-file` format, with size-based rotation.
//!
//! One JSON object per line: `{"log":"hello\n","stream":"stdout","time":"2024-…Z"}`.
//! The current file is `<path>`; rotated ones are `<path>.1` (newest) to
//! `<path>.N`, as docker's `max-size`/`max-file` options produce, so tools that
//! read docker's logs read these.
//!
//! A log holds whatever the container printed, secrets included: its files are
//! created readable by their owner only ([`LOG_FILE_MODE`]).

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead as _, BufReader, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The mode log files are created with (docker's json-file logs are `0640` root-owned;
/// owner-only here, since nothing else needs to read them).
pub const LOG_FILE_MODE: u32 = 0o600;

/// Opens `path` for appending, creating it owner-only.
fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(LOG_FILE_MODE)
        .open(path)
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

/// One logged line, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// The text, with its newline when it had one.
    pub log: String,
    /// Where it was written.
    pub stream: Stream,
    /// When it was read from the container, RFC 3339 with nanoseconds, UTC.
    pub time: String,
}

/// Rotation limits (docker's `--log-opt max-size` and `max-file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate when the current file would grow past this many bytes; 0 never rotates.
    pub max_size: u64,
    /// How many files to keep, the current one included (at least 1).
    pub max_files: u32,
}

impl Default for Rotation {
    /// docker's `local` driver defaults: 20 MB, 5 files.
    fn default() -> Self {
        Rotation {
            max_size: 20 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// Appends entries to a json-file log, rotating it by size.
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    rotation: Rotation,
    file: File,
    size: u64,
}

impl LogWriter {
    /// Opens (creating) `path` for appending.
    pub fn open(path: impl Into<PathBuf>, rotation: Rotation) -> io::Result<Self> {
        let path = path.into();
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path,
            rotation,
            file,
            size,
        })
    }

    /// Appends one line (the bytes as read, lossily made UTF-8).
    pub fn write(&mut self, stream: Stream, line: &[u8], at: SystemTime) -> io::Result<()> {
        let entry = LogEntry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream,
            time: humantime::format_rfc3339_nanos(at).to_string(),
        };
        let mut text = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        text.push(b'\n');
        let len = text.len() as u64;
        if self.rotation.max_size > 0 && self.size > 0 && self.size + len > self.rotation.max_size {
            self.rotate()?;
        }
        self.file.write_all(&text)?;
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.max_files.max(1);
        if keep == 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for n in (1..keep - 1).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Every entry of the log at `path`, its rotated files first (oldest first).
/// A missing log is empty; a line that is not an entry (a torn write at a
/// crash) is skipped.
pub fn read_all(path: &Path) -> io::Result<Vec<LogEntry>> {
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| numbered(path, n))
        .take_while(|p| p.exists())
        .collect();
    files.reverse();
    files.push(path.to_path_buf());
    let mut entries = Vec::new();
    for file in files {
        match File::open(&file) {
            Ok(f) => entries.extend(parse_lines(BufReader::new(f))?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(entries)
}

fn parse_lines(reader: impl io::BufRead) -> io::Result<Vec<LogEntry>> {
    let mut out = Vec::new();
    for line in reader.lines() {
        if let Ok(entry) = serde_json::from_str(&line?) {
            out.push(entry);
        }
    }
    Ok(out)
}

/// Reads what is appended to a log after a point, following rotation (`logs -f`).
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    inode: u64,
    partial: String,
}

impl LogFollower {
    /// Follows `path` from its current end.
    pub fn from_end(path: impl Into<PathBuf>) -> io::Result<Self> {
        let mut follower = LogFollower {
            path: path.into(),
            reader: None,
            inode: 0,
            partial: String::new(),
        };
        follower.reopen(true)?;
        Ok(follower)
    }

    fn reopen(&mut self, at_end: bool) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt as _;
        match File::open(&self.path) {
            Ok(mut f) => {
                self.inode = f.metadata()?.ino();
                if at_end {
                    f.seek(SeekFrom::End(0))?;
                }
                self.reader = Some(BufReader::new(f));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.reader = None,
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// The complete entries appended since the last call (none when nothing new).
    pub fn poll(&mut self) -> io::Result<Vec<LogEntry>> {
        use std::os::unix::fs::MetadataExt as _;
        let mut out = self.drain()?;
        // Rotated away: finish the old file (done above), then start the new one.
        let current = std::fs::metadata(&self.path).map(|m| m.ino()).ok();
        if current.is_some() && current != Some(self.inode) {
            self.partial.clear();
            self.reopen(false)?;
            out.extend(self.drain()?);
        }
        Ok(out)
    }

    fn drain(&mut self) -> io::Result<Vec<LogEntry>> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(out);
            }
            self.partial.push_str(&line);
            if !self.partial.ends_with('\n') {
                // A writer is mid-line: keep it for the next poll.
                return Ok(out);
            }
            if let Ok(entry) = serde_json::from_str(self.partial.trim_end()) {
                out.push(entry);
            }
            self.partial.clear();
        }
    }
}

/// Parses an entry's time back into a `SystemTime` (`--since`, `--timestamps`).
pub fn entry_time(entry: &LogEntry) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(&entry.time).ok()
}

/// How long to sleep between polls of a followed log.
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> Vec<u8> {
        format!("line {n}\n").into_bytes()
    }

    #[test]
    fn entries_round_trip_in_docker_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, Rotation::default()).unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        w.write(Stream::Stdout, b"hello\n", at).unwrap();
        w.write(Stream::Stderr, b"\xffbad utf8", at).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"{"log":"hello\n","stream":"stdout","time":"2023-11-14T22:13:20.123456789Z"}"#
        );
        let all = read_all(&path).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].stream, Stream::Stderr);
        assert_eq!(all[1].log, "\u{fffd}bad utf8");
        assert_eq!(entry_time(&all[0]), Some(at));
    }

    #[test]
    fn rotation_keeps_max_files_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        let rotation = Rotation {
            max_size: 300,
            max_files: 3,
        };
        let mut w = LogWriter::open(&path, rotation).unwrap();
        for n in 0..40 {
            w.write(Stream::Stdout, &line(n), SystemTime::now())
                .unwrap();
        }
        assert!(numbered(&path, 2).exists());
        assert!(
            !numbered(&path, 3).exists(),
            "max_files counts the current file"
        );
        for p in [path.clone(), numbered(&path, 1), numbered(&path, 2)] {
            assert!(
                std::fs::metadata(&p).unwrap().len() <= 300,
                "{}",
                p.display()
            );
        }
        let all = read_all(&path).unwrap();
        let numbers: Vec<usize> = all
            .iter()
            .map(|e| e.log.trim()[5..].parse().unwrap())
            .collect();
        assert_eq!(*numbers.last().unwrap(), 39);
        assert!(numbers.windows(2).all(|w| w[1] == w[0] + 1), "{numbers:?}");
        assert!(numbers[0] > 0, "the oldest lines were rotated out");
    }

    #[test]
    fn follower_sees_appends_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        let rotation = Rotation {
            max_size: 200,
            max_files: 2,
        };
        let mut w = LogWriter::open(&path, rotation).unwrap();
        w.write(Stream::Stdout, &line(0), SystemTime::now())
            .unwrap();
        let mut f = LogFollower::from_end(&path).unwrap();
        assert!(f.poll().unwrap().is_empty(), "starts at the end");
        let mut seen = Vec::new();
        for n in 1..20 {
            w.write(Stream::Stdout, &line(n), SystemTime::now())
                .unwrap();
            seen.extend(f.poll().unwrap());
        }
        let logs: Vec<String> = seen.iter().map(|e| e.log.clone()).collect();
        let want: Vec<String> = (1..20).map(|n| format!("line {n}\n")).collect();
        assert_eq!(logs, want);
    }
}
