//! The copy snapshotter: where overlayfs is unavailable, a snapshot is a
//! flattened copy of its layers (reflinked where the filesystem can).
//!
//! Layout below its root: `snapshots/<key>/fs/` holds the copy, which is
//! bind-mounted on the target. `snapshots/` and `snapshots/<key>/` are
//! owner-only (`0700`); `fs/` is the container's `/`, with the top layer's
//! owner and mode.

use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::{
    HOST_VIEW_OPTIONS, Mount, PRIVATE_DIR, Snapshot, SnapshotError, Snapshotter, SnapshotterKind,
    check_key, io_err, new_snapshot_dir, private_dir, remove_tree, root_like_top_layer,
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

    fn create(
        &self,
        key: &str,
        layers: &[PathBuf],
        readonly: bool,
    ) -> Result<Snapshot, SnapshotError> {
        let dir = new_snapshot_dir(&self.root.join("snapshots"), key)?;
        let fs_dir = dir.join("fs");
        let result = (|| {
            std::fs::create_dir(&fs_dir).map_err(io_err("create", &fs_dir))?;
            let dst = File::open(&fs_dir).map_err(io_err("open", &fs_dir))?;
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
            root_like_top_layer(&fs_dir, layers)
        })();
        if let Err(e) = result {
            let _ = remove_tree(&dir);
            return Err(e);
        }
        let mut options = vec!["bind".to_owned()];
        if readonly {
            // Read-only snapshots are views, looked at from the host.
            options.push("ro".to_owned());
            options.extend(HOST_VIEW_OPTIONS.map(String::from));
        }
        Ok(Snapshot {
            key: key.to_owned(),
            dir,
            mounts: vec![Mount {
                fstype: "bind".into(),
                source: fs_dir,
                options,
                relative_to: None,
            }],
            readonly,
        })
    }
}

impl Snapshotter for CopySnapshotter {
    fn init(&self) -> Result<(), SnapshotError> {
        private_dir(&self.root.join("snapshots"), PRIVATE_DIR)
    }

    fn prepare(&self, key: &str, layers: &[PathBuf]) -> Result<Snapshot, SnapshotError> {
        self.create(key, layers, false)
    }

    fn view(&self, key: &str, layers: &[PathBuf]) -> Result<Snapshot, SnapshotError> {
        self.create(key, layers, true)
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        check_key(key)?;
        let dir = self.root.join("snapshots").join(key);
        if !dir.exists() {
            return Err(SnapshotError::NotFound(key.to_owned()));
        }
        remove_tree(&dir)
    }

    fn kind(&self) -> SnapshotterKind {
        SnapshotterKind::Copy
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
