//! The copy snapshotter: where overlayfs is unavailable, a snapshot is a
//! flattened copy of its layers (reflinked where the filesystem can).
//!
//! Layout below its root: `snapshots/<key>/fs/` holds the copy, which is
//! bind-mounted on the target; `snapshots/<key>/snapshot.json` the record; a
//! committed snapshot has `diff/` instead (its changes against its parents,
//! found by comparing the trees). `snapshots/` and `snapshots/<key>/` are
//! owner-only (`0700`); `fs/` is the container's `/`, with the top layer's
//! owner and mode.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{
    Change, HOST_VIEW_OPTIONS, Mount, PRIVATE_DIR, PrepareOptions, Snapshot, SnapshotError,
    SnapshotInfo, SnapshotKind, Snapshotter, SnapshotterKind, Usage, absolute_all, adopt_in,
    discard_on_error, io_err, list_in, meta, new_snapshot_dir, private_dir, recorded, remove_in,
    remove_tree, root_like_top_layer, stat_in, usage_of,
};
use crate::apply::root::remove_contents;
use crate::fsutil::{self, copy_meta_fd, is_opaque};
use crate::sys;

/// Snapshots as flattened copies of their layers.
#[derive(Debug, Clone)]
pub struct CopySnapshotter {
    root: PathBuf,
}

impl CopySnapshotter {
    /// Snapshots below `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CopySnapshotter { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn snapshot_dir(&self, key: &str) -> PathBuf {
        self.root.join("snapshots").join(key)
    }

    fn create(
        &self,
        key: &str,
        layers: &[PathBuf],
        kind: SnapshotKind,
        volatile: bool,
    ) -> Result<Snapshot, SnapshotError> {
        let dir = new_snapshot_dir(&self.root.join("snapshots"), key)?;
        let made = (|| {
            let fs_dir = dir.join("fs");
            flatten(layers, &fs_dir)?;
            root_like_top_layer(&fs_dir, layers)?;
            let info = SnapshotInfo {
                key: key.to_owned(),
                kind,
                parents: absolute_all(layers)?,
                volatile,
            };
            meta::write(&dir, &info)?;
            Ok(Snapshot {
                key: key.to_owned(),
                mounts: self.mounts_of(&info)?,
                dir: dir.clone(),
                readonly: kind != SnapshotKind::Active,
            })
        })();
        discard_on_error(&dir, made)
    }

    fn mounts_of(&self, info: &SnapshotInfo) -> Result<Vec<Mount>, SnapshotError> {
        let mut options = vec!["bind".to_owned()];
        match info.kind {
            SnapshotKind::Active => {}
            // Read-only snapshots are views, looked at from the host.
            SnapshotKind::View => {
                options.push("ro".to_owned());
                options.extend(HOST_VIEW_OPTIONS.map(String::from));
            }
            kind => {
                return Err(SnapshotError::WrongKind {
                    key: info.key.clone(),
                    kind,
                    wanted: "an active snapshot or a view",
                });
            }
        }
        Ok(vec![Mount {
            fstype: "bind".into(),
            source: self.snapshot_dir(&info.key).join("fs"),
            options,
            relative_to: None,
        }])
    }

    /// Whether a bind mount shows `key`'s copy (mountinfo's root field is the
    /// path inside the filesystem, so the tail of it is compared).
    fn copy_in_use(&self, key: &str) -> Result<bool, SnapshotError> {
        let tail = std::path::PathBuf::from(format!("snapshots/{key}/fs"));
        let table = basic_mountinfo::mounts().map_err(SnapshotError::MountTable)?;
        Ok(table.iter().any(|m| m.root.ends_with(&tail)))
    }
}

/// The layers (bottom-most first) applied in order onto the new directory `dir`.
pub(super) fn flatten(layers: &[PathBuf], dir: &Path) -> Result<(), SnapshotError> {
    std::fs::create_dir(dir).map_err(io_err("create", dir))?;
    let dst = File::open(dir).map_err(io_err("open", dir))?;
    for layer in layers {
        let src = File::open(layer).map_err(io_err("open layer", layer))?;
        let mut m = Merger {
            dst_root: dst.as_fd(),
            links: HashMap::new(),
        };
        m.merge_dir(src.as_fd(), dst.as_fd(), Vec::new())
            .map_err(|(path, source)| SnapshotError::Io {
                op: "copy",
                path: layer.join(String::from_utf8_lossy(&path).as_ref()),
                source,
            })?;
    }
    Ok(())
}

impl Snapshotter for CopySnapshotter {
    fn init(&self) -> Result<(), SnapshotError> {
        private_dir(&self.root.join("snapshots"), PRIVATE_DIR)
    }

    /// `volatile` is recorded, but has nothing to skip here: nobody syncs a
    /// bind mount's writes at unmount.
    fn prepare_with(
        &self,
        key: &str,
        parents: &[PathBuf],
        options: &PrepareOptions,
    ) -> Result<Snapshot, SnapshotError> {
        self.create(key, parents, SnapshotKind::Active, options.volatile)
    }

    fn adopt(
        &self,
        key: &str,
        parents: &[PathBuf],
        options: &PrepareOptions,
    ) -> Result<Snapshot, SnapshotError> {
        let dir = self.snapshot_dir(key);
        let info = adopt_in(&dir, "fs", key, parents, options)?;
        Ok(Snapshot {
            mounts: self.mounts_of(&info)?,
            key: info.key,
            dir,
            readonly: false,
        })
    }

    fn view(&self, key: &str, layers: &[PathBuf]) -> Result<Snapshot, SnapshotError> {
        self.create(key, layers, SnapshotKind::View, false)
    }

    /// A copy holds everything, not only the changes: they are found by
    /// comparing it with a fresh copy of its parents (see `diff`).
    fn commit(&self, key: &str, name: &str) -> Result<PathBuf, SnapshotError> {
        let from = self.snapshot_dir(key);
        let info = recorded(&from, key, &[SnapshotKind::Active], "an active snapshot")?;
        if self.copy_in_use(key)? {
            return Err(SnapshotError::Busy(key.to_owned()));
        }
        let to = new_snapshot_dir(&self.root.join("snapshots"), name)?;
        let diff = to.join("diff");
        let made = (|| {
            let base = to.join("base");
            flatten(&info.parents, &base)?;
            let written = super::diff::write_changes(&base, &from.join("fs"), &diff);
            remove_tree(&base)?;
            written?;
            let committed = SnapshotInfo {
                key: name.to_owned(),
                kind: SnapshotKind::Committed,
                parents: info.parents.clone(),
                volatile: false,
            };
            meta::write(&to, &committed)
        })();
        discard_on_error(&to, made)?;
        remove_tree(&from)?;
        Ok(diff)
    }

    fn stat(&self, key: &str) -> Result<SnapshotInfo, SnapshotError> {
        stat_in(&self.snapshot_dir(key), key)
    }

    fn snapshots(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        list_in(&self.root.join("snapshots"))
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        self.mounts_of(&self.stat(key)?)
    }

    fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        let dir = self.snapshot_dir(key);
        match self.stat(key)?.kind {
            SnapshotKind::Active | SnapshotKind::View => usage_of(&dir.join("fs")),
            SnapshotKind::Committed => usage_of(&dir.join("diff")),
        }
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        remove_in(&self.snapshot_dir(key), key)
    }

    fn kind(&self) -> SnapshotterKind {
        SnapshotterKind::Copy
    }

    fn changes(&self, key: &str, mount_points: &[PathBuf]) -> Result<Vec<Change>, SnapshotError> {
        let dir = self.snapshot_dir(key);
        let info = recorded(&dir, key, &[SnapshotKind::Active], "an active snapshot")?;
        // The copy holds every file, so it alone is the new tree (stacked on the
        // parents, what it deleted would show through them); the whole tree is
        // compared, as docker's vfs driver does.
        let old: Vec<PathBuf> = info.parents.iter().rev().cloned().collect();
        super::changes::changes(&[dir.join("fs")], &old, mount_points)
    }

    /// The copy compared with a fresh copy of its parents, as [`commit`](Self::commit) does.
    fn changes_dir(&self, key: &str, scratch: &Path) -> Result<PathBuf, SnapshotError> {
        let dir = self.snapshot_dir(key);
        let info = recorded(&dir, key, &[SnapshotKind::Active], "an active snapshot")?;
        std::fs::create_dir(scratch).map_err(super::io_err("create", scratch))?;
        let (base, diff) = (scratch.join("base"), scratch.join("diff"));
        flatten(&info.parents, &base)?;
        let written = super::diff::write_changes(&base, &dir.join("fs"), &diff);
        remove_tree(&base)?;
        written?;
        Ok(diff)
    }
}

type MergeResult<T> = Result<T, (Vec<u8>, io::Error)>;

/// Copies one overlay-form layer onto the flattened tree.
struct Merger<'a> {
    dst_root: BorrowedFd<'a>,
    /// Hard links inside the layer: source inode -> copied path.
    links: HashMap<(u64, u64), Vec<u8>>,
}

fn join(base: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = base.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

fn open_dir(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    sys::openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

impl Merger<'_> {
    fn merge_dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        path: Vec<u8>,
    ) -> MergeResult<()> {
        let names = sys::read_dir_names(src).map_err(|e| (path.clone(), e))?;
        for name in names {
            if crate::overlay_xattr::is_fuse_marker(name.to_bytes()) {
                // fuse-overlayfs' opaque marks: `is_opaque` read them already.
                continue;
            }
            let child = join(&path, name.to_bytes());
            self.merge_entry(src, dst, &name, &child)
                .map_err(|e| match e {
                    (p, e) if p.is_empty() => (child.clone(), e),
                    other => other,
                })?;
        }
        Ok(())
    }

    fn merge_entry(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
    ) -> MergeResult<()> {
        let e = |err: io::Error| (path.to_vec(), err);
        let st = sys::lstatat(src, name).map_err(e)?;
        let existing = match sys::lstatat(dst, name) {
            Ok(st) => Some(st),
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => None,
            Err(err) => return Err(e(err)),
        };
        let fmt = st.st_mode & libc::S_IFMT;
        if fmt == libc::S_IFCHR && st.st_rdev == 0 {
            // A whiteout: what it names in lower layers disappears.
            if existing.is_some() {
                remove_at(dst, name, existing.as_ref()).map_err(e)?;
            }
            return Ok(());
        }
        if fmt == libc::S_IFDIR {
            let src_sub = open_dir(src, name).map_err(e)?;
            let opaque = is_opaque(src_sub.as_fd());
            match existing {
                Some(ex) if sys::is_dir(&ex) => {
                    if opaque {
                        let d = open_dir(dst, name).map_err(e)?;
                        remove_contents(d.as_fd()).map_err(e)?;
                    }
                }
                Some(ex) => {
                    remove_at(dst, name, Some(&ex)).map_err(e)?;
                    sys::mkdirat(dst, name, 0o700).map_err(e)?;
                }
                None => sys::mkdirat(dst, name, 0o700).map_err(e)?,
            }
            let dst_sub = open_dir(dst, name).map_err(e)?;
            self.merge_dir(src_sub.as_fd(), dst_sub.as_fd(), path.to_vec())?;
            copy_meta_fd(src_sub.as_fd(), dst_sub.as_fd(), &st).map_err(e)?;
            return Ok(());
        }
        if existing.is_some() {
            remove_at(dst, name, existing.as_ref()).map_err(e)?;
        }
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 && fmt != libc::S_IFDIR {
            if let Some(first) = self.links.get(&key) {
                let (dir, base) = match first.iter().rposition(|&b| b == b'/') {
                    Some(i) => (&first[..i], &first[i + 1..]),
                    None => (&b""[..], &first[..]),
                };
                let dir_fd = if dir.is_empty() {
                    sys::openat(self.dst_root, c".", libc::O_PATH | libc::O_DIRECTORY, 0)
                } else {
                    sys::openat2(
                        self.dst_root,
                        &sys::cstr(dir).map_err(e)?,
                        libc::O_PATH | libc::O_DIRECTORY,
                        0,
                        sys::RESOLVE_IN_ROOT,
                    )
                }
                .map_err(e)?;
                let cbase = sys::cstr(base).map_err(e)?;
                sys::linkat(dir_fd.as_fd(), &cbase, dst, name).map_err(e)?;
                return Ok(());
            }
            self.links.insert(key, path.to_vec());
        }
        fsutil::copy_entry(src, name, &st, dst, name).map_err(e)?;
        Ok(())
    }
}

fn remove_at(dir: BorrowedFd<'_>, name: &CStr, st: Option<&libc::stat>) -> io::Result<()> {
    if st.is_some_and(sys::is_dir) {
        let d = open_dir(dir, name)?;
        remove_contents(d.as_fd())?;
        sys::unlinkat(dir, name, true)
    } else {
        sys::unlinkat(dir, name, false)
    }
}
