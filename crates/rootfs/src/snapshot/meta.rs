//! What a snapshotter records about each snapshot, in the snapshot's own
//! directory (`snapshots/<key>/snapshot.json`), so that callers keep nothing
//! but the key: the mounts are derived from it again whenever they are asked
//! for, after a reboot too.

use std::collections::HashSet;
use std::io::{self, Write as _};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{SnapshotError, io_err};

const FILE: &str = "snapshot.json";
/// Bumped when the record changes incompatibly.
const VERSION: u32 = 1;

/// What a snapshot is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Writable, from [`Snapshotter::prepare_with`](super::Snapshotter::prepare_with):
    /// a container's root.
    Active,
    /// Read-only, from [`Snapshotter::view`](super::Snapshotter::view).
    View,
    /// The changes of an active snapshot, kept as a read-only layer by
    /// [`Snapshotter::commit`](super::Snapshotter::commit).
    Committed,
}

/// A snapshot as its snapshotter recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its key.
    pub key: String,
    /// Active, view or committed.
    pub kind: SnapshotKind,
    /// The layer directories below it, bottom-most first.
    pub parents: Vec<PathBuf>,
    /// Whether its writes skip syncing (see [`PrepareOptions::volatile`](super::PrepareOptions)).
    pub volatile: bool,
}

/// Disk use of a snapshot's own files (an active snapshot's writes, a
/// committed snapshot's layer; a view has none).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes allocated (512-byte blocks, as `du` counts; a hard-linked file once).
    pub bytes: u64,
    /// Inodes: files, directories, links, each once.
    pub inodes: u64,
}

#[derive(Serialize, Deserialize)]
struct Record {
    version: u32,
    kind: SnapshotKind,
    parents: Vec<PathBuf>,
    #[serde(default)]
    volatile: bool,
}

/// Writes `info` into `dir` (temp file, fsync, rename), owner-only.
pub(crate) fn write(dir: &Path, info: &SnapshotInfo) -> Result<(), SnapshotError> {
    let record = Record {
        version: VERSION,
        kind: info.kind,
        parents: info.parents.clone(),
        volatile: info.volatile,
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| io_err("encode", dir)(e.into()))?;
    let temp = dir.join(format!("{FILE}.tmp"));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()));
    written.map_err(io_err("write", &temp))?;
    let path = dir.join(FILE);
    std::fs::rename(&temp, &path).map_err(io_err("rename into place", &path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync", dir))
}

/// Reads the record of snapshot `key` kept in `dir`.
pub(crate) fn read(dir: &Path, key: &str) -> Result<SnapshotInfo, SnapshotError> {
    let path = dir.join(FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound && dir.is_dir() => {
            return Err(SnapshotError::NoMetadata(key.to_owned()));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(SnapshotError::NotFound(key.to_owned()));
        }
        Err(e) => return Err(io_err("read", &path)(e)),
    };
    let corrupt = |reason: String| SnapshotError::Metadata {
        path: path.clone(),
        reason,
    };
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    if record.version != VERSION {
        return Err(corrupt(format!(
            "version {} (this version reads {VERSION})",
            record.version
        )));
    }
    Ok(SnapshotInfo {
        key: key.to_owned(),
        kind: record.kind,
        parents: record.parents,
        volatile: record.volatile,
    })
}

/// Every recorded snapshot below `snapshots`, by key. Directories without a
/// record (made before snapshotters kept one) are left out.
pub(crate) fn list(snapshots: &Path) -> Result<Vec<SnapshotInfo>, SnapshotError> {
    let entries = match std::fs::read_dir(snapshots) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list", snapshots)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("list", snapshots))?;
        let Some(key) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        match read(&entry.path(), &key) {
            Ok(info) => out.push(info),
            Err(SnapshotError::NoMetadata(_) | SnapshotError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(out)
}

/// The disk use of the tree at `root` (absent: nothing), never following
/// symlinks; hard links count once.
pub(crate) fn usage(root: &Path) -> Result<Usage, SnapshotError> {
    let mut usage = Usage::default();
    let mut seen = HashSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("measure", &path)(e)),
        };
        if seen.insert((meta.dev(), meta.ino())) {
            usage.inodes += 1;
            usage.bytes += meta.blocks() * 512;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(io_err("list", &path))? {
                stack.push(entry.map_err(io_err("list", &path))?.path());
            }
        }
    }
    Ok(usage)
}
