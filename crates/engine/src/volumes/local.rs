//! docker's `local` volume driver: a directory per volume under the store root, its record
//! beside its data, and (for the `type`/`device`/`o` options) a mount onto the data
//! directory while containers use it.
//!
//! ```text
//! <root>/volumes/                    0700
//! <root>/volumes/.lock               0600  held (flock) by whatever creates, removes or
//!                                          mounts volumes, and by container creates that
//!                                          use them
//! <root>/volumes/<name>/             0700
//! <root>/volumes/<name>/volume.json  0600  name, driver, labels, options, creation time
//! <root>/volumes/<name>/_data/       the data: 0755, or the image's directory after copy-up
//! ```
//!
//! A volume appears whole or not at all: it is built in `volumes/.new-*`, its record
//! written and synced there, and the directory renamed to its name (a rename is atomic;
//! it fails when another process made the same volume first). A removal renames the
//! directory to `volumes/.gone-*` before deleting it. Leftovers of either, from a crash,
//! are deleted by the next creation, removal or prune (under the lock, so never one in
//! progress).

use std::collections::HashMap;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::paths::EnginePaths;
use crate::privacy::{PRIVATE_DIR, PRIVATE_FILE};

/// The only volume driver.
pub const DRIVER: &str = "local";

/// The data directory's name inside a volume's directory, as docker's.
pub const DATA_DIR: &str = "_data";

/// The record's file name.
const RECORD: &str = "volume.json";

/// The options docker's local driver takes on Linux.
const OPTIONS: &[&str] = &["type", "o", "device", "size"];

/// A volume as the driver keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub name: String,
    pub driver: String,
    /// Unix nanoseconds.
    pub created: i64,
    #[serde(default)]
    pub labels: HashMap<String, String>,
    #[serde(default)]
    pub options: HashMap<String, String>,
}

impl Record {
    /// Whether the data directory gets a mount of its own (`type`/`device` options).
    pub fn needs_mount(&self) -> bool {
        ["type", "device"]
            .iter()
            .any(|k| self.options.get(*k).is_some_and(|v| !v.is_empty()))
    }
}

/// Proof that the volumes lock is held: functions that change volumes take it.
pub(crate) struct Lock {
    _file: File,
}

/// The volumes of one store.
pub(crate) struct Local {
    dir: PathBuf,
}

impl Local {
    pub fn new(paths: &EnginePaths) -> Local {
        Local {
            dir: paths.volumes(),
        }
    }

    /// Waits for and takes the volumes lock (creating `volumes/` when new).
    pub fn lock(&self) -> Result<Lock> {
        self.ensure_dir()?;
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(PRIVATE_FILE)
            .open(&path)
            .map_err(EngineError::io("opening", &path))?;
        file.lock().map_err(EngineError::io("locking", &path))?;
        Ok(Lock { _file: file })
    }

    fn ensure_dir(&self) -> Result<()> {
        crate::privacy::private_dir(&self.dir, PRIVATE_DIR)
    }

    /// `<root>/volumes/<name>`.
    fn volume_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Where volume `name` keeps its data (docker's `Mountpoint`).
    pub fn data(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join(DATA_DIR)
    }

    /// The volume `name`, `None` when there is none (or the name is not one a volume can
    /// have: it is never used as a path then).
    pub fn get(&self, name: &str) -> Result<Option<Record>> {
        if check_name(name).is_err() {
            return Ok(None);
        }
        let path = self.volume_dir(name).join(RECORD);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EngineError::io("reading", &path)(e)),
        };
        let record: Record = serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
            what: path.display().to_string(),
            message: e.to_string(),
        })?;
        if record.name != name {
            return Err(EngineError::Corrupt {
                what: path.display().to_string(),
                message: format!("the record names volume {:?}", record.name),
            });
        }
        Ok(Some(record))
    }

    /// Every volume, by name. A directory whose record cannot be read is left out with a
    /// warning, so one damaged volume does not hide the others.
    pub fn list(&self) -> Result<Vec<Record>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::io("listing", &self.dir)(e)),
        };
        let mut records = Vec::new();
        for entry in entries {
            let entry = entry.map_err(EngineError::io("listing", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            match self.get(&name) {
                Ok(Some(record)) => records.push(record),
                Ok(None) => tracing::warn!("volumes/{name} has no record: not a volume"),
                Err(e) => tracing::warn!("volume {name}: {e}"),
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Creates volume `name` unless it exists; returns it and whether it is new.
    pub fn create(
        &self,
        _lock: &Lock,
        name: &str,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    ) -> Result<(Record, bool)> {
        check_name(name)
            .map_err(|why| EngineError::InvalidArgument(format!("create {name}: {why}")))?;
        check_options(&options)
            .map_err(|why| EngineError::InvalidArgument(format!("create {name}: {why}")))?;
        if let Some(existing) = self.get(name)? {
            return Ok((existing, false));
        }
        self.sweep();
        let record = Record {
            name: name.to_string(),
            driver: DRIVER.to_string(),
            created: crate::status::now_nanos(),
            labels,
            options,
        };
        let staging = self.dir.join(format!(
            ".new-{}-{}",
            std::process::id(),
            crate::names::new_container_id()?
        ));
        let built = self.build(&staging, &record);
        let placed = built.and_then(|()| {
            let target = self.volume_dir(name);
            fs::rename(&staging, &target).map_err(EngineError::io("creating volume", &target))?;
            sync_dir(&self.dir)
        });
        if let Err(e) = placed {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        Ok((record, true))
    }

    /// The volume's directory, data directory and synced record, in `staging`.
    fn build(&self, staging: &Path, record: &Record) -> Result<()> {
        DirBuilder::new()
            .mode(PRIVATE_DIR)
            .create(staging)
            .map_err(EngineError::io("creating", staging))?;
        let data = staging.join(DATA_DIR);
        DirBuilder::new()
            .mode(0o755)
            .create(&data)
            .map_err(EngineError::io("creating", &data))?;
        let bytes = serde_json::to_vec_pretty(record).map_err(|e| EngineError::Corrupt {
            what: format!("the record of volume {}", record.name),
            message: e.to_string(),
        })?;
        let path = staging.join(RECORD);
        let written = (|| -> io::Result<()> {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(PRIVATE_FILE)
                .open(&path)?;
            file.write_all(&bytes)?;
            file.sync_all()
        })();
        written.map_err(EngineError::io("writing", &path))?;
        sync_dir(staging)
    }

    /// Deletes volume `name` and its data; its data directory must not be mounted (an
    /// option volume's mount is undone first, and the removal refused if it stays).
    pub fn remove(&self, _lock: &Lock, name: &str) -> Result<()> {
        check_name(name).map_err(EngineError::InvalidArgument)?;
        self.unmount(name)?;
        let dir = self.volume_dir(name);
        let gone = self.dir.join(format!(
            ".gone-{}-{}",
            std::process::id(),
            crate::names::new_container_id()?
        ));
        fs::rename(&dir, &gone).map_err(EngineError::io("removing volume", &dir))?;
        sync_dir(&self.dir)?;
        // Not following symlinks, whatever a container left in the data.
        fs::remove_dir_all(&gone).map_err(EngineError::io("removing", &gone))
    }

    /// Deletes what a crash left of creations and removals. Only called with the lock
    /// held, so none is in progress.
    pub fn sweep(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !(name.starts_with(".new-") || name.starts_with(".gone-")) {
                continue;
            }
            let path = entry.path();
            if mounted(&path.join(DATA_DIR)) {
                tracing::warn!("{} is still mounted: left alone", path.display());
                continue;
            }
            if let Err(e) = fs::remove_dir_all(&path) {
                tracing::warn!("removing {}: {e}", path.display());
            }
        }
    }

    /// Mounts an option volume's data directory unless it is mounted already.
    pub fn mount(&self, _lock: &Lock, record: &Record) -> Result<()> {
        let target = self.data(&record.name);
        if !record.needs_mount() || mounted(&target) {
            return Ok(());
        }
        let options = record.options.get("o").map(String::as_str).unwrap_or("");
        let device = record
            .options
            .get("device")
            .map(String::as_str)
            .unwrap_or("");
        let fstype = record.options.get("type").map(String::as_str).unwrap_or("");
        let (flags, data) = mount_flags(options);
        let failed = |e: nix::Error| {
            EngineError::InvalidArgument(format!(
                "mounting volume {} (type={fstype} device={device} o={}): {e}",
                record.name,
                redacted(options)
            ))
        };
        let fstype = (!fstype.is_empty() && fstype != "none").then_some(fstype);
        let data = (!data.is_empty()).then_some(data.as_str());
        nix::mount::mount(Some(device), &target, fstype, flags, data).map_err(failed)?;
        // A bind ignores every other flag in its first mount: they need a remount.
        let rest = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
        if flags.contains(MsFlags::MS_BIND) && !rest.is_empty() {
            let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | rest;
            if let Err(e) =
                nix::mount::mount(None::<&str>, &target, None::<&str>, remount, None::<&str>)
            {
                let _ = nix::mount::umount2(&target, MntFlags::MNT_DETACH);
                return Err(failed(e));
            }
        }
        Ok(())
    }

    /// Undoes [`Local::mount`]; a data directory that is no mount point is left alone.
    pub fn unmount(&self, name: &str) -> Result<()> {
        let target = self.data(name);
        if !mounted(&target) {
            return Ok(());
        }
        // Detached: containers still holding it keep their view, the path is free now.
        nix::mount::umount2(&target, MntFlags::MNT_DETACH).map_err(EngineError::sys(format!(
            "unmounting volume {name} from {}",
            target.display()
        )))?;
        if mounted(&target) {
            return Err(EngineError::Conflict(format!(
                "volume {name} is still mounted on {}: not removing what is below it",
                target.display()
            )));
        }
        Ok(())
    }
}

/// Whether `path` is a mount point; unknown counts as mounted, so that nothing is removed
/// below what might be a mount.
fn mounted(path: &Path) -> bool {
    basic_mountinfo::is_mount_point(path).unwrap_or(true)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(EngineError::io("syncing", dir))
}

/// docker's rule for a local volume's name (it becomes a directory name): two or more of
/// `[a-zA-Z0-9][a-zA-Z0-9_.-]`. The text is docker's.
pub(crate) fn check_name(name: &str) -> std::result::Result<(), String> {
    let mut chars = name.chars();
    let first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if first && rest && name.len() >= 2 && name.len() <= 255 {
        return Ok(());
    }
    if first && rest && name.len() < 2 {
        return Err(
            "volume name is too short, names should be at least two alphanumeric characters".into(),
        );
    }
    if first && rest {
        return Err("volume name is too long, at most 255 characters".into());
    }
    Err(format!(
        "{name:?} includes invalid characters for a local volume name, only \
         \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host \
         directory, use absolute path"
    ))
}

/// docker's local driver options on Linux: `type`, `device`, `o` (each of `type` and
/// `device` needs the other, `o` needs both), and `size`, which needs filesystem quotas
/// this engine does not set up.
pub(crate) fn check_options(options: &HashMap<String, String>) -> std::result::Result<(), String> {
    let mut keys: Vec<&String> = options.keys().collect();
    keys.sort();
    if let Some(bad) = keys.iter().find(|k| !OPTIONS.contains(&k.as_str())) {
        return Err(format!(
            "invalid option: {bad:?} (the local driver takes type, device and o)"
        ));
    }
    if options.contains_key("size") {
        return Err(
            "quota size requested but no quota support: the size option is not supported".into(),
        );
    }
    let needs: [(&str, &[&str]); 3] = [
        ("device", &["type"]),
        ("type", &["device"]),
        ("o", &["device", "type"]),
    ];
    for (option, required) in needs {
        if !options.contains_key(option) {
            continue;
        }
        if let Some(missing) = required.iter().find(|r| !options.contains_key(**r)) {
            return Err(format!("missing required option: {missing:?}"));
        }
    }
    let o = options.get("o").map(String::as_str).unwrap_or("");
    let (flags, _) = mount_flags(o);
    let device = options.get("device").map(String::as_str).unwrap_or("");
    if flags.contains(MsFlags::MS_BIND) && !device.starts_with('/') {
        return Err(format!(
            "device {device:?}: a bind volume's device must be an absolute host path"
        ));
    }
    Ok(())
}

/// `o` as mount(8) reads it: the words that are mount flags, and the rest as the
/// filesystem's data (`size=64m,uid=1000` for tmpfs, `addr=…` for nfs).
fn mount_flags(options: &str) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for word in options.split(',').filter(|w| !w.is_empty()) {
        let (set, clear) = match word {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            "defaults" => (MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other);
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, data.join(","))
}

/// `o` with a password's value hidden, for messages (docker does the same).
fn redacted(options: &str) -> String {
    options
        .split(',')
        .map(|w| match w.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=********"),
            _ => w.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_follow_dockers_rule_and_paths_are_never_names() {
        for good in ["ab", "my-vol", "data_1.2", "0x", &"a".repeat(255)] {
            check_name(good).unwrap();
        }
        let short = check_name("a").unwrap_err();
        assert!(short.contains("too short"), "{short}");
        for bad in [
            "", "../x", "..", ".hidden", "/etc", "a/b", "-x", "_x", "x y", "é", "x\0y",
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("invalid characters"), "{bad:?}: {e}");
        }
        assert!(
            check_name(&"a".repeat(256))
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn options_follow_dockers_local_driver() {
        check_options(&options(&[])).unwrap();
        check_options(&options(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m"),
        ]))
        .unwrap();
        check_options(&options(&[
            ("type", "none"),
            ("device", "/srv/x"),
            ("o", "bind"),
        ]))
        .unwrap();
        let e = check_options(&options(&[("foo", "bar")])).unwrap_err();
        assert!(e.starts_with("invalid option: \"foo\""), "{e}");
        let e = check_options(&options(&[("type", "tmpfs")])).unwrap_err();
        assert_eq!(e, "missing required option: \"device\"");
        let e = check_options(&options(&[("o", "size=1m"), ("device", "tmpfs")])).unwrap_err();
        assert_eq!(e, "missing required option: \"type\"");
        let e = check_options(&options(&[("size", "1g")])).unwrap_err();
        assert!(e.contains("quota"), "{e}");
        let e = check_options(&options(&[
            ("type", "none"),
            ("device", "rel"),
            ("o", "bind"),
        ]))
        .unwrap_err();
        assert!(e.contains("absolute"), "{e}");
    }

    #[test]
    fn mount_options_split_into_flags_and_data() {
        let (flags, data) = mount_flags("size=64m,ro,uid=1000,nosuid");
        assert_eq!(flags, MsFlags::MS_RDONLY | MsFlags::MS_NOSUID);
        assert_eq!(data, "size=64m,uid=1000");
        let (flags, data) = mount_flags("rbind");
        assert_eq!(flags, MsFlags::MS_BIND | MsFlags::MS_REC);
        assert!(data.is_empty());
        assert_eq!(
            redacted("user=u,password=secret"),
            "user=u,password=********"
        );
    }

    #[test]
    fn a_volume_is_created_whole_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = EnginePaths {
            root: tmp.path().to_path_buf(),
            state: tmp.path().join("state"),
        };
        let local = Local::new(&paths);
        let lock = local.lock().unwrap();
        let labels = options(&[("team", "db")]);
        let (made, new) = local
            .create(&lock, "data", labels.clone(), HashMap::new())
            .unwrap();
        assert!(new);
        let (again, new) = local
            .create(&lock, "data", HashMap::new(), HashMap::new())
            .unwrap();
        assert!(!new, "an existing name is returned as it is");
        assert_eq!(again, made);
        assert_eq!(again.labels, labels);
        assert!(local.data("data").is_dir());
        // Leftovers of an interrupted creation and removal are swept, never listed.
        fs::create_dir_all(tmp.path().join("volumes/.new-1-x/_data")).unwrap();
        fs::create_dir_all(tmp.path().join("volumes/.gone-1-y/_data")).unwrap();
        assert_eq!(local.list().unwrap(), std::slice::from_ref(&made));
        local.sweep();
        let names: Vec<String> = fs::read_dir(tmp.path().join("volumes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !names
                .iter()
                .any(|n| n.starts_with(".new") || n.starts_with(".gone")),
            "{names:?}"
        );
        local.remove(&lock, "data").unwrap();
        assert_eq!(local.get("data").unwrap(), None);
        assert!(local.list().unwrap().is_empty());
        let e = local
            .create(&lock, "../escape", HashMap::new(), HashMap::new())
            .unwrap_err();
        assert!(e.to_string().contains("invalid characters"), "{e}");
        assert!(!tmp.path().join("escape").exists());
        assert_eq!(local.get("../../etc").unwrap(), None);
    }
}
