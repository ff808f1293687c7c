//! The overlayfs snapshotter.
//!
//! Layout below its root:
//!
//! ```text
//! snapshots/<key>/     snapshot.json (the record); upper/ and work/ of a
//!                      writable snapshot; diff/ of a committed one (its
//!                      former upper directory, a layer in overlay form);
//!                      l/<n>: short links to its lower directories (made
//!                      only when needed, see below)
//! empty/               the lower directory of a snapshot of no layers
//! l/                   short links older versions made (no longer used)
//! ```
//!
//! `l/`, `snapshots/` and each `snapshots/<key>/` with its `l/` are owner-only
//! (`0700`); `upper/` is the container's `/`, with the top layer's owner and mode.
//!
//! Two limits bound one overlay mount: its option string must fit in one page,
//! and overlayfs stacks at most [`MAX_LOWER_DIRS`] lower directories. When the
//! absolute lower directories do not fit in the page, they are named by short
//! links in the snapshot's own `l/` (`l/0`, `l/1`, ...) and the mount is made
//! from a child process working in the snapshot's directory, as docker's overlay2
//! driver does with its `l/`: that fits all 500. More layers than that are
//! refused ([`SnapshotError::TooManyLowerDirs`]): the caller merges the bottom
//! ones into one directory first ([`crate::merge_layers`]), where it can keep
//! the result for the next snapshot of the same layers (an image store, keyed
//! by chain ID).

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use super::{
    Change, HOST_VIEW_OPTIONS, Mount, PRIVATE_DIR, PrepareOptions, Snapshot, SnapshotError,
    SnapshotInfo, SnapshotKind, Snapshotter, SnapshotterKind, Usage, absolute_all, adopt_in, cpath,
    discard_on_error, io_err, list_in, meta, new_snapshot_dir, private_dir, recorded, remove_in,
    remove_tree, root_like_top_layer, stat_in, tighten, usage_of,
};

/// The most lower directories overlayfs stacks in one mount (the kernel's
/// `OVL_MAX_STACK`).
pub const MAX_LOWER_DIRS: usize = 500;

/// Overlay snapshots: layers as lower directories, an upper and a work
/// directory per snapshot.
#[derive(Debug, Clone)]
pub struct OverlaySnapshotter {
    root: PathBuf,
}

fn page_limit() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (if page > 0 { page as usize } else { 4096 }) - 1
}

impl OverlaySnapshotter {
    /// Snapshots below `root` (created when needed).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        OverlaySnapshotter { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn snapshot_dir(&self, key: &str) -> PathBuf {
        self.root.join("snapshots").join(key)
    }

    fn empty_dir(&self) -> Result<PathBuf, SnapshotError> {
        let empty = self.root.join("empty");
        std::fs::create_dir_all(&empty).map_err(io_err("create", &empty))?;
        Ok(empty)
    }

    /// The lower directories of a snapshot on `parents` (bottom-most first):
    /// the parents, or the empty directory when there are none.
    fn lower_dirs(&self, parents: &[PathBuf]) -> Result<Vec<PathBuf>, SnapshotError> {
        if parents.len() > MAX_LOWER_DIRS {
            return Err(SnapshotError::TooManyLowerDirs(parents.len()));
        }
        if parents.is_empty() {
            return Ok(vec![self.empty_dir()?]);
        }
        Ok(parents.to_vec())
    }

    /// The overlay mount for `lowers` (bottom-most first) and optional
    /// (upper, work) of the snapshot in `dir`: the lower directories named by
    /// their absolute paths when they fit, else by short links in `dir/l/`.
    fn overlay_mount(
        &self,
        lowers: &[PathBuf],
        upper_work: Option<(&Path, &Path)>,
        dir: &Path,
    ) -> Result<Mount, SnapshotError> {
        let mut absolute = Vec::with_capacity(lowers.len());
        for l in lowers.iter().rev() {
            absolute.push(absolute_path(l)?.display().to_string());
        }
        let options = overlay_options(&absolute, upper_work)?;
        if fits(&options) {
            return Ok(Mount {
                fstype: "overlay".into(),
                source: "overlay".into(),
                options,
                relative_to: None,
            });
        }
        let mut short = short_links(dir, lowers)?;
        short.reverse();
        let options = overlay_options(&short, upper_work)?;
        if !fits(&options) {
            return Err(SnapshotError::TooManyLayers(lowers.len()));
        }
        Ok(Mount {
            fstype: "overlay".into(),
            source: "overlay".into(),
            options,
            relative_to: Some(absolute_path(dir)?),
        })
    }

    fn new_dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        new_snapshot_dir(&self.root.join("snapshots"), key)
    }
}

impl OverlaySnapshotter {
    /// The mounts of a recorded active snapshot or view.
    fn mounts_of(&self, info: &SnapshotInfo) -> Result<Vec<Mount>, SnapshotError> {
        let dir = self.snapshot_dir(&info.key);
        let mount = match info.kind {
            SnapshotKind::Active => {
                let (upper, work) = (dir.join("upper"), dir.join("work"));
                let lowers = self.lower_dirs(&info.parents)?;
                let mut m = self.overlay_mount(&lowers, Some((&upper, &work)), &dir)?;
                if info.volatile {
                    m.options.push("volatile".into());
                }
                m
            }
            SnapshotKind::View => self.view_mount(&info.parents, &dir)?,
            kind => {
                return Err(SnapshotError::WrongKind {
                    key: info.key.clone(),
                    kind,
                    wanted: "an active snapshot or a view",
                });
            }
        };
        Ok(vec![mount])
    }

    fn view_mount(&self, layers: &[PathBuf], dir: &Path) -> Result<Mount, SnapshotError> {
        Ok(match layers {
            // overlayfs wants two lower directories when there is no upper.
            [] | [_] => Mount {
                fstype: "bind".into(),
                source: match layers.first() {
                    Some(l) => l.clone(),
                    None => self.empty_dir()?,
                },
                options: ["bind", "ro"]
                    .into_iter()
                    .chain(HOST_VIEW_OPTIONS)
                    .map(String::from)
                    .collect(),
                relative_to: None,
            },
            _ => {
                let lowers = self.lower_dirs(layers)?;
                let mut m = self.overlay_mount(&lowers, None, dir)?;
                let flags = std::iter::once("ro").chain(HOST_VIEW_OPTIONS);
                m.options.splice(0..0, flags.map(String::from));
                m
            }
        })
    }

    /// Records a new snapshot in its fresh directory and derives its mounts.
    fn record(&self, dir: &Path, info: SnapshotInfo) -> Result<Snapshot, SnapshotError> {
        meta::write(dir, &info)?;
        Ok(Snapshot {
            mounts: self.mounts_of(&info)?,
            key: info.key,
            dir: dir.to_owned(),
            readonly: info.kind != SnapshotKind::Active,
        })
    }

    /// Whether an overlay mount uses `key`'s upper directory (named by its
    /// absolute path; older versions named it relative to the root).
    fn upper_in_use(&self, key: &str) -> Result<bool, SnapshotError> {
        let suffix = format!("snapshots/{key}/upper");
        let table = basic_mountinfo::mounts().map_err(SnapshotError::MountTable)?;
        Ok(table
            .iter()
            .filter(|m| m.fs_type == "overlay")
            .flat_map(|m| &m.super_options)
            .filter_map(|o| o.strip_prefix("upperdir="))
            .any(|upper| upper == suffix || upper.ends_with(&format!("/{suffix}"))))
    }
}

impl Snapshotter for OverlaySnapshotter {
    fn init(&self) -> Result<(), SnapshotError> {
        private_dir(&self.root.join("snapshots"), PRIVATE_DIR)?;
        tighten(&self.root.join("l"), PRIVATE_DIR)
    }

    fn prepare_with(
        &self,
        key: &str,
        parents: &[PathBuf],
        options: &PrepareOptions,
    ) -> Result<Snapshot, SnapshotError> {
        let dir = self.new_dir(key)?;
        let made = (|| {
            let upper = dir.join("upper");
            let work = dir.join("work");
            for d in [&upper, &work] {
                std::fs::create_dir(d).map_err(io_err("create", d))?;
            }
            // The merged root's owner and mode are the upper directory's.
            root_like_top_layer(&upper, parents)?;
            let info = SnapshotInfo {
                key: key.to_owned(),
                kind: SnapshotKind::Active,
                parents: absolute_all(parents)?,
                volatile: options.volatile,
            };
            self.record(&dir, info)
        })();
        discard_on_error(&dir, made)
    }

    fn adopt(
        &self,
        key: &str,
        parents: &[PathBuf],
        options: &PrepareOptions,
    ) -> Result<Snapshot, SnapshotError> {
        let dir = self.snapshot_dir(key);
        let info = adopt_in(&dir, "upper", key, parents, options)?;
        Ok(Snapshot {
            mounts: self.mounts_of(&info)?,
            key: info.key,
            dir,
            readonly: false,
        })
    }

    fn view(&self, key: &str, layers: &[PathBuf]) -> Result<Snapshot, SnapshotError> {
        let dir = self.new_dir(key)?;
        let made = (|| {
            let info = SnapshotInfo {
                key: key.to_owned(),
                kind: SnapshotKind::View,
                parents: absolute_all(layers)?,
                volatile: false,
            };
            self.record(&dir, info)
        })();
        discard_on_error(&dir, made)
    }

    /// The upper directory becomes the committed layer as it is: overlayfs
    /// already keeps a snapshot's changes apart, in overlay form (whiteouts,
    /// opaque directories), which is the form lower directories take.
    fn commit(&self, key: &str, name: &str) -> Result<PathBuf, SnapshotError> {
        let from = self.snapshot_dir(key);
        let info = recorded(&from, key, &[SnapshotKind::Active], "an active snapshot")?;
        if self.upper_in_use(key)? {
            return Err(SnapshotError::Busy(key.to_owned()));
        }
        let to = self.new_dir(name)?;
        let (upper, diff) = (from.join("upper"), to.join("diff"));
        if info.volatile {
            // Nothing synced a volatile upper directory; a layer must be durable.
            let dir = std::fs::File::open(&upper).map_err(io_err("open", &upper))?;
            crate::sys::syncfs(std::os::fd::AsFd::as_fd(&dir)).map_err(io_err("sync", &upper))?;
        }
        std::fs::rename(&upper, &diff)
            .map_err(io_err("move the changes to", &diff))
            .inspect_err(|_| {
                let _ = remove_tree(&to);
            })?;
        let committed = SnapshotInfo {
            key: name.to_owned(),
            kind: SnapshotKind::Committed,
            parents: info.parents,
            volatile: false,
        };
        if let Err(e) = meta::write(&to, &committed) {
            // Back where they were: the active snapshot is as it was.
            let _ = std::fs::rename(&diff, &upper);
            let _ = remove_tree(&to);
            return Err(e);
        }
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
            SnapshotKind::Active => usage_of(&dir.join("upper")),
            SnapshotKind::View => Ok(Usage::default()),
            SnapshotKind::Committed => usage_of(&dir.join("diff")),
        }
    }

    fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        remove_in(&self.snapshot_dir(key), key)
    }

    fn kind(&self) -> SnapshotterKind {
        SnapshotterKind::Overlay
    }

    fn changes(&self, key: &str, mount_points: &[PathBuf]) -> Result<Vec<Change>, SnapshotError> {
        let dir = self.snapshot_dir(key);
        let info = recorded(&dir, key, &[SnapshotKind::Active], "an active snapshot")?;
        super::changes_of(&info, dir.join("upper"), mount_points)
    }

    /// The upper directory: overlayfs keeps the changes there, in overlay form.
    fn changes_dir(&self, key: &str, _scratch: &Path) -> Result<PathBuf, SnapshotError> {
        let dir = self.snapshot_dir(key);
        recorded(&dir, key, &[SnapshotKind::Active], "an active snapshot")?;
        Ok(dir.join("upper"))
    }
}

/// `path` made absolute (against the working directory), without resolving links.
fn absolute_path(path: &Path) -> Result<PathBuf, SnapshotError> {
    std::path::absolute(path).map_err(io_err("resolve", path))
}

/// overlayfs' options for `lowers` (top-most first, as overlayfs lists them)
/// and the absolute upper and work directories.
fn overlay_options(
    lowers: &[String],
    upper_work: Option<(&Path, &Path)>,
) -> Result<Vec<String>, SnapshotError> {
    let mut options = vec![format!("lowerdir={}", lowers.join(":"))];
    if let Some((u, w)) = upper_work {
        options.push(format!("upperdir={}", absolute_path(u)?.display()));
        options.push(format!("workdir={}", absolute_path(w)?.display()));
    }
    options.extend(crate::overlay_xattr::mount_option().map(String::from));
    Ok(options)
}

/// Whether `options` fit in the one page mount(2) copies, with room for a
/// `volatile` added later.
fn fits(options: &[String]) -> bool {
    options.join(",").len() + ",volatile".len() <= page_limit()
}

/// Short links `dir/l/<i>` to each of `lowers`, as names relative to `dir`.
fn short_links(dir: &Path, lowers: &[PathBuf]) -> Result<Vec<String>, SnapshotError> {
    let links = dir.join("l");
    private_dir(&links, PRIVATE_DIR)?;
    let mut names = Vec::with_capacity(lowers.len());
    for (i, lower) in lowers.iter().enumerate() {
        point_link(&links.join(i.to_string()), &absolute_path(lower)?)?;
        names.push(format!("l/{i}"));
    }
    Ok(names)
}

/// Makes `link` a symlink to `target`, replacing one that points elsewhere.
fn point_link(link: &Path, target: &Path) -> Result<(), SnapshotError> {
    match std::fs::read_link(link) {
        Ok(existing) if existing == target => return Ok(()),
        Ok(_) => std::fs::remove_file(link).map_err(io_err("replace", link))?,
        Err(_) => {}
    }
    match std::os::unix::fs::symlink(target, link) {
        // Another process mounting the same snapshot made the same link.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other.map_err(io_err("create", link)),
    }
}

/// Split mount(8)-style options into flags and the data string.
fn flags_and_data(options: &[String]) -> (libc::c_ulong, String) {
    let mut flags = 0;
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= libc::MS_RDONLY,
            "rw" => {}
            "bind" => flags |= libc::MS_BIND,
            "rbind" => flags |= libc::MS_BIND | libc::MS_REC,
            "nosuid" => flags |= libc::MS_NOSUID,
            "nodev" => flags |= libc::MS_NODEV,
            "noexec" => flags |= libc::MS_NOEXEC,
            _ => data.push(o.as_str()),
        }
    }
    (flags, data.join(","))
}

/// mount(2) a [`Mount`] on `target`.
pub(crate) fn do_mount(m: &Mount, target: &Path) -> Result<(), SnapshotError> {
    let (flags, data) = flags_and_data(&m.options);
    let err = |source: io::Error| SnapshotError::Mount {
        fstype: m.fstype.clone(),
        target: target.to_owned(),
        options: m.options.join(","),
        source,
    };
    let target_abs = std::path::absolute(target).map_err(err)?;
    let ctarget = cpath(&target_abs);
    let csource = cpath(&m.source);
    let cdata = CString::new(data).map_err(|_| err(io::ErrorKind::InvalidInput.into()))?;
    if m.fstype == "bind" {
        // A bind ignores the flags given with it: read-only, nosuid, nodev and
        // noexec take a remount of the new bind.
        // SAFETY: valid C strings.
        let r = unsafe {
            libc::mount(
                csource.as_ptr(),
                ctarget.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | (flags & libc::MS_REC),
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Err(err(io::Error::last_os_error()));
        }
        let per_mount =
            flags & (libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC);
        if per_mount != 0 {
            // SAFETY: valid C strings.
            let r = unsafe {
                libc::mount(
                    std::ptr::null(),
                    ctarget.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | per_mount,
                    std::ptr::null(),
                )
            };
            if r != 0 {
                let e = io::Error::last_os_error();
                let _ = nix::mount::umount2(&target_abs, nix::mount::MntFlags::MNT_DETACH);
                return Err(err(e));
            }
        }
        return Ok(());
    }
    let cfstype =
        CString::new(m.fstype.as_str()).map_err(|_| err(io::ErrorKind::InvalidInput.into()))?;
    match &m.relative_to {
        None => {
            // SAFETY: valid C strings.
            let r = unsafe {
                libc::mount(
                    csource.as_ptr(),
                    ctarget.as_ptr(),
                    cfstype.as_ptr(),
                    flags,
                    cdata.as_ptr().cast(),
                )
            };
            if r != 0 {
                return Err(err(io::Error::last_os_error()));
            }
            Ok(())
        }
        Some(dir) => mount_from(dir, &csource, &ctarget, &cfstype, flags, &cdata).map_err(err),
    }
}

/// mount(2) from a child process working in `dir`, so relative paths in
/// `data` resolve there without changing this process' working directory.
fn mount_from(
    dir: &Path,
    source: &CString,
    target: &CString,
    fstype: &CString,
    flags: libc::c_ulong,
    data: &CString,
) -> io::Result<()> {
    let cdir = cpath(dir);
    // SAFETY: the child only makes async-signal-safe calls (chdir, mount,
    // _exit) on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            if libc::chdir(cdir.as_ptr()) != 0 {
                libc::_exit(*libc::__errno_location());
            }
            if libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                flags,
                data.as_ptr().cast(),
            ) != 0
            {
                libc::_exit(*libc::__errno_location());
            }
            libc::_exit(0);
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if libc::WIFEXITED(status) {
        match libc::WEXITSTATUS(status) {
            0 => Ok(()),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    } else {
        Err(io::Error::other("mount helper process died"))
    }
}

/// Whether a writable overlay mount (with a whiteout in a lower layer)
/// works with directories on `root`'s filesystem.
pub(crate) fn probe(root: &Path) -> Result<(), SnapshotError> {
    probe_with(root, ".overlay-probe", do_mount, super::unmount)
}

/// A writable overlay-form mount of a lower directory holding a file and an upper one
/// whiting it out, made in a scratch directory on `root` by `mount` and removed by
/// `unmount`: it works when the merged view is writable and hides the file. The mount
/// has overlayfs' own options (plus `userxattr` in a user namespace); `mount` may
/// translate them (fuse-overlayfs does).
pub(super) fn probe_with(
    root: &Path,
    prefix: &str,
    mount: impl FnOnce(&Mount, &Path) -> Result<(), SnapshotError>,
    unmount: impl FnOnce(&Path) -> Result<(), SnapshotError>,
) -> Result<(), SnapshotError> {
    std::fs::create_dir_all(root).map_err(io_err("create", root))?;
    let tmp = root.join(format!("{prefix}-{}", std::process::id()));
    remove_tree(&tmp)?;
    let result = (|| {
        let lower = tmp.join("lower");
        let upper = tmp.join("upper");
        let work = tmp.join("work");
        let merged = tmp.join("merged");
        for d in [&lower, &upper, &work, &merged] {
            std::fs::create_dir_all(d).map_err(io_err("create", d))?;
        }
        std::fs::write(lower.join("hidden"), b"").map_err(io_err("write", &lower))?;
        // A whiteout in the upper layer: what overlay-mode layers rely on.
        crate::sys::mknodat(
            std::os::fd::AsFd::as_fd(&std::fs::File::open(&upper).map_err(io_err("open", &upper))?),
            c"hidden",
            libc::S_IFCHR,
            0,
        )
        .map_err(io_err("create a whiteout in", &upper))?;
        let options = overlay_options(
            &[lower.display().to_string()],
            Some((upper.as_path(), work.as_path())),
        )?;
        let view = Mount {
            fstype: "overlay".into(),
            source: "overlay".into(),
            options,
            relative_to: None,
        };
        mount(&view, &merged)?;
        let hidden = merged.join("hidden").symlink_metadata().is_ok();
        let writable = std::fs::write(merged.join("probe"), b"ok");
        let unmounted = unmount(&merged);
        writable.map_err(io_err("write in", &merged))?;
        unmounted?;
        if hidden {
            return Err(SnapshotError::Io {
                op: "hide a whited-out file in",
                path: merged,
                source: io::Error::other("whiteout not honoured"),
            });
        }
        Ok(())
    })();
    let _ = remove_tree(&tmp);
    result
}
