//! The fuse-overlayfs snapshotter: the overlay snapshotter's snapshots (the same
//! layout, records and layers), mounted by the `fuse-overlayfs` program instead of the
//! kernel's overlayfs. It is rootless mode's fallback where the kernel's overlayfs cannot
//! be mounted in a user namespace (before Linux 5.11), as podman falls back to it.
//!
//! What fuse-overlayfs (Debian's 1.10, measured as root and in a user namespace) reads
//! and writes, and how this crate meets it:
//!
//! - whiteouts: 0/0 character devices, read and written (an ordinary user may make them
//!   since Linux 5.8), as overlayfs does;
//! - opaque directories: it reads `trusted.overlay.opaque`, `user.overlay.opaque` (what
//!   extraction writes in a user namespace) and its own `user.fuseoverlayfs.opaque`; a
//!   directory it makes opaque gets `trusted.overlay.opaque` (or, where it may not write
//!   that, `user.fuseoverlayfs.opaque`) plus a `.wh..wh..opq` file and a `.wh..opq`
//!   whiteout inside. The readers of upper directories (`changes`, `changes_dir`'s
//!   export, merging) take all of these as one opaque mark.
//!
//! A mount is a `fuse-overlayfs` process serving it; it ends when the mount is unmounted
//! (umount(2) by root in this mount namespace, or `fusermount3 -u`).

use std::io;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{
    Change, Mount, OverlaySnapshotter, PrepareOptions, Snapshot, SnapshotError, SnapshotInfo,
    Snapshotter, SnapshotterKind, Usage, io_err,
};

/// The [`Mount::fstype`] of a mount made by the `fuse-overlayfs` program (the kernel
/// lists it as `fuse.fuse-overlayfs`).
pub const FUSE_OVERLAY_FSTYPE: &str = "fuse-overlayfs";

/// The program, looked up on `PATH`.
const PROGRAM: &str = "fuse-overlayfs";

/// The file system type the kernel lists for its mounts.
const KERNEL_FSTYPE: &str = "fuse.fuse-overlayfs";

/// Overlay snapshots mounted with fuse-overlayfs.
#[derive(Debug, Clone)]
pub struct FuseOverlaySnapshotter {
    overlay: OverlaySnapshotter,
}

impl FuseOverlaySnapshotter {
    /// Snapshots below `root` (created when needed), laid out as
    /// [`OverlaySnapshotter`]'s.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FuseOverlaySnapshotter {
            overlay: OverlaySnapshotter::new(root),
        }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        self.overlay.root()
    }

    fn snapshot(&self, mut s: Snapshot) -> Snapshot {
        s.mounts = s.mounts.into_iter().map(to_fuse).collect();
        s
    }

    /// Whether a fuse-overlayfs mount in this mount namespace writes into `key`'s upper
    /// directory. The kernel's table does not name it: it is in the command line of the
    /// process serving the mount, whose mount point must still be in the table (so a
    /// process that is still exiting after its unmount does not count).
    fn upper_in_use(&self, key: &str) -> Result<bool, SnapshotError> {
        let upper = std::path::absolute(self.root().join("snapshots").join(key).join("upper"))
            .map_err(io_err("resolve", self.root()))?;
        let wanted = format!("upperdir={}", upper.display());
        let table = basic_mountinfo::mounts().map_err(SnapshotError::MountTable)?;
        let targets: Vec<&Path> = table
            .iter()
            .filter(|m| m.fs_type == KERNEL_FSTYPE)
            .map(|m| m.mount_point.as_path())
            .collect();
        if targets.is_empty() {
            return Ok(false);
        }
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Ok(false);
        };
        for entry in entries.flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .collect();
            let is_program = args
                .first()
                .is_some_and(|a| a.rsplit(|&b| b == b'/').next() == Some(PROGRAM.as_bytes()));
            if !is_program {
                continue;
            }
            let writes_upper = args
                .iter()
                .any(|a| a.split(|&b| b == b',').any(|o| o == wanted.as_bytes()));
            let target = args
                .last()
                .map(|a| Path::new(std::ffi::OsStr::from_bytes(a)));
            if writes_upper && target.is_some_and(|t| targets.contains(&t)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Snapshotter for FuseOverlaySnapshotter {
    fn init(&self) -> Result<(), SnapshotError> {
        self.overlay.init()
    }

    fn prepare_with(
        &self,
        key: &str,
        parents: &[PathBuf],
        options: &PrepareOptions,
    ) -> Result<Snapshot, SnapshotError> {
        Ok(self.snapshot(self.overlay.prepare_with(key, parents, options)?))
    }

    fn adopt(
        &self,
        key: &str,
        parents: &[PathBuf],
        options: &PrepareOptions,
    ) -> Result<Snapshot, SnapshotError> {
        Ok(self.snapshot(self.overlay.adopt(key, parents, options)?))
    }

    fn view(&self, key: &str, layers: &[PathBuf]) -> Result<Snapshot, SnapshotError> {
        Ok(self.snapshot(self.overlay.view(key, layers)?))
    }

    /// As the overlay snapshotter commits: the upper directory becomes the layer. Its
    /// opaque directories keep fuse-overlayfs' marks, which fuse-overlayfs and this
    /// crate's readers take as overlay form.
    fn commit(&self, key: &str, name: &str) -> Result<PathBuf, SnapshotError> {
        if self.upper_in_use(key)? {
            return Err(SnapshotError::Busy(key.to_owned()));
        }
        self.overlay.commit(key, name)
    }

    fn stat(&self, key: &str) -> Result<SnapshotInfo, SnapshotError> {
        self.overlay.stat(key)
    }

    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        self.overlay.snapshots()
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        Ok(self.overlay.mounts(key)?.into_iter().map(to_fuse).collect())
    }

    fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        self.overlay.usage(key)
    }

    /// umount(2) (root in this mount namespace may), else `fusermount3 -u` (which lets
    /// the user who mounted it unmount it); the serving process then exits.
    fn unmount(&self, target: &Path) -> Result<(), SnapshotError> {
        match super::unmount(target) {
            Err(SnapshotError::Unmount { source, .. })
                if source.raw_os_error() == Some(libc::EPERM) =>
            {
                fusermount_unmount(target)
            }
            other => other,
        }
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        self.overlay.remove(key)
    }

    fn kind(&self) -> SnapshotterKind {
        SnapshotterKind::FuseOverlay
    }

    fn changes(&self, key: &str, mount_points: &[PathBuf]) -> Result<Vec<Change>, SnapshotError> {
        self.overlay.changes(key, mount_points)
    }

    fn changes_dir(&self, key: &str, scratch: &Path) -> Result<PathBuf, SnapshotError> {
        self.overlay.changes_dir(key, scratch)
    }
}

/// The overlay mount `m` as fuse-overlayfs takes it (a bind stays a bind): lower
/// directories named absolutely (fuse-overlayfs reads its options from its command line,
/// which has no one-page limit), `volatile` as its `fsync=0`, without `userxattr` (it
/// reads the `user.` xattrs by itself).
fn to_fuse(m: Mount) -> Mount {
    if m.fstype != "overlay" {
        return m;
    }
    let base = m.relative_to.clone();
    let absolute = |p: &str| match &base {
        Some(dir) if !p.starts_with('/') => dir.join(p).display().to_string(),
        _ => p.to_owned(),
    };
    let options = m
        .options
        .iter()
        .filter(|o| *o != "userxattr")
        .map(|o| {
            if o == "volatile" {
                "fsync=0".to_owned()
            } else if let Some(lowers) = o.strip_prefix("lowerdir=") {
                let lowers: Vec<String> = lowers.split(':').map(absolute).collect();
                format!("lowerdir={}", lowers.join(":"))
            } else if let Some(dir) = o.strip_prefix("upperdir=") {
                format!("upperdir={}", absolute(dir))
            } else if let Some(dir) = o.strip_prefix("workdir=") {
                format!("workdir={}", absolute(dir))
            } else {
                o.clone()
            }
        })
        .collect();
    Mount {
        fstype: FUSE_OVERLAY_FSTYPE.into(),
        source: FUSE_OVERLAY_FSTYPE.into(),
        options,
        relative_to: None,
    }
}

/// Mounts `m` (of [`FUSE_OVERLAY_FSTYPE`]) on `target`: runs fuse-overlayfs, which
/// returns once the mount is there and leaves a process serving it. The process starts
/// in the calling thread's mount namespace, where the mount is made.
pub(crate) fn mount(m: &Mount, target: &Path) -> Result<(), SnapshotError> {
    let options = m.options.join(",");
    let fail = |reason: String| SnapshotError::FuseOverlay {
        target: target.to_owned(),
        options: options.clone(),
        reason,
    };
    let target_abs = std::path::absolute(target).map_err(|e| fail(e.to_string()))?;
    // Its stdio goes to /dev/null once it has mounted (libfuse's daemonize), so reading
    // its error output ends when the first process exits.
    let out = Command::new(PROGRAM)
        .arg("-o")
        .arg(&options)
        .arg(&target_abs)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => fail(format!(
                "the program `{PROGRAM}` is not installed (Debian package `fuse-overlayfs`)"
            )),
            _ => fail(format!("cannot run `{PROGRAM}`: {e}")),
        })?;
    if out.status.success() {
        return Ok(());
    }
    // fuse-overlayfs 1.10 says it ignores `lazytime` whatever the options: not the reason.
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("unknown argument ignored"))
        .collect();
    Err(fail(format!("{} ({})", said.join("; "), out.status)))
}

/// `fusermount3 -u target`.
fn fusermount_unmount(target: &Path) -> Result<(), SnapshotError> {
    let err = |source: io::Error| SnapshotError::Unmount {
        target: target.to_owned(),
        source,
    };
    let out = Command::new("fusermount3")
        .arg("-u")
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(err)?;
    if out.status.success() {
        return Ok(());
    }
    Err(err(io::Error::other(format!(
        "fusermount3 -u: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ))))
}

/// Whether fuse-overlayfs is installed and a writable mount of it (with a whiteout in
/// the upper directory) works with directories on `root`'s filesystem: the program, the
/// `/dev/fuse` device and the right to mount it are all needed.
pub(crate) fn probe(root: &Path) -> Result<(), SnapshotError> {
    super::overlay::probe_with(
        root,
        ".fuse-overlay-probe",
        |view, target| mount(&to_fuse(view.clone()), target),
        |target| FuseOverlaySnapshotter::new(root).unmount(target),
    )
}
