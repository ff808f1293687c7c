//! Writing a directory tree as a tar stream: what `docker export` makes of a
//! container's root filesystem, and what `apply_layer` (or `import`) reads back.
//!
//! [`write_tree`] walks the tree depth first, each directory's entries sorted
//! by name (bytes), so the same tree always gives the same archive. Members are
//! named relative to the root (`bin/`, `bin/sh`), without a member for the root
//! itself, as `docker export` writes them. Each member is a POSIX ustar header,
//! preceded by a PAX extended header when something does not fit one: a long
//! name or link target, xattrs (`SCHILY.xattr.NAME`, `security.capability`
//! included), an owner id above 2097151, a size of 8 GiB or more, a negative or
//! far-future mtime. Times are whole seconds and owner names are left empty, as
//! docker's exports have them: ids are what the container's own `/etc/passwd`
//! gives meaning to.
//!
//! * Regular files, directories, symlinks, character and block devices and
//!   FIFOs are archived with their uid, gid, every mode bit (setuid, setgid,
//!   sticky) and mtime. Sockets are left out, as GNU tar leaves them out.
//! * A second name of an inode already archived becomes a hard link member.
//! * The walk never crosses into another mount: a directory another
//!   filesystem is mounted on is archived as an empty directory, a file
//!   mounted over is left out (compared by mount id where the kernel reports
//!   one, by device otherwise).
//! * Xattrs in `trusted.overlay.*` (overlayfs' bookkeeping) and `system.*`
//!   (ACLs and the like, which layers do not carry) are left out, as
//!   [`apply_layer`](crate::apply_layer) drops them.
//!
//! The walk is safe against a tree that changes while it is read (a running
//! container's root): every entry is opened relative to its parent's
//! descriptor with `O_PATH | O_NOFOLLOW`, so a name swapped for a symlink is
//! archived as that symlink, never followed; metadata, link targets and xattrs
//! come from that descriptor, and a regular file's data from the same inode
//! reopened through `/proc/self/fd` (so a name swapped for a device or FIFO is
//! never opened). A file that shrinks while it is read is padded with zeros to
//! the size in its header (and a warning logged), one that grows is cut at
//! that size; an entry removed before it is opened is skipped with a warning.
//! The archive is always well formed.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::sys;

/// Largest value of an 8-byte octal header field (uid, gid).
const MAX_OCTAL_ID: u64 = 0o7777777;
/// Largest value of a 12-byte octal header field (size, mtime).
const MAX_OCTAL_BIG: u64 = 0o77777777777;
/// Sizes of the ustar name, prefix and link name fields.
const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;

/// Errors writing a tree as a tar stream. Messages name the path concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Something in the tree could not be read.
    #[error("cannot {op} {}", path.display())]
    Read {
        /// What was being done.
        op: &'static str,
        /// The path, below the root given.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The archive could not be written to the writer given.
    #[error("cannot write the archive (at {})", path.display())]
    Write {
        /// The path whose member was being written.
        path: PathBuf,
        /// The writer's error.
        #[source]
        source: io::Error,
    },
}

/// What [`write_tree`] archived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportStats {
    /// Members written (PAX extended headers not counted).
    pub entries: u64,
    /// Bytes of regular file data.
    pub bytes: u64,
}

/// Writes the tree below the directory `root` to `out` as a tar stream, ended
/// by the two zero blocks of an archive's end, and flushes `out`.
///
/// `root` itself may be a symlink to the directory; nothing below it is
/// followed. Pass `&mut writer` to keep the writer.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let file = std::fs::File::create("rootfs.tar")?;
/// let stats = basic_rootfs::export::write_tree(std::path::Path::new("rootfs"), file)?;
/// println!("{} members, {} bytes of data", stats.entries, stats.bytes);
/// # Ok(())
/// # }
/// ```
pub fn write_tree<W: Write>(root: &Path, out: W) -> Result<ExportStats, ExportError> {
    walk_into(root, None, out)
}

/// How [`write_layer`] writes a layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerOptions {
    /// Modification times later than this (unix seconds; `SOURCE_DATE_EPOCH`)
    /// are written as it, for layers that do not depend on when they were made.
    pub clamp_mtime: Option<i64>,
    /// Paths inside the layer (`/etc/hosts`) where a runtime mounted something:
    /// an empty file or directory there is the runtime's mount point, not a
    /// change of the container's, and is left out (as docker's init layer
    /// keeps them out of `docker commit`).
    pub skip_if_empty: Vec<PathBuf>,
}

impl LayerOptions {
    /// Sets [`LayerOptions::clamp_mtime`].
    pub fn clamp_mtime(mut self, epoch: Option<i64>) -> Self {
        self.clamp_mtime = epoch;
        self
    }

    /// Sets [`LayerOptions::skip_if_empty`].
    pub fn skip_if_empty(mut self, paths: Vec<PathBuf>) -> Self {
        self.skip_if_empty = paths;
        self
    }
}

/// Writes the overlay-form directory `dir` (a container's upper directory, a
/// committed snapshot) to `out` as an OCI image layer: as [`write_tree`]
/// (entries sorted by name, hard links kept, xattrs, owners and modes as on
/// disk, no host-dependent header field), with overlayfs' whiteouts (0/0
/// character devices) written as `.wh.NAME` files and each opaque directory
/// (`trusted.overlay.opaque=y`) followed by its `.wh..wh..opq` marker, so
/// [`apply_layer`](crate::apply_layer) (and docker, containerd, podman) read
/// back what overlayfs showed.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use basic_rootfs::export::{LayerOptions, write_layer};
/// let out = std::fs::File::create("layer.tar")?;
/// let options = LayerOptions::default().clamp_mtime(Some(0));
/// write_layer(std::path::Path::new("upper"), &options, out)?;
/// # Ok(())
/// # }
/// ```
pub fn write_layer<W: Write>(
    dir: &Path,
    options: &LayerOptions,
    out: W,
) -> Result<ExportStats, ExportError> {
    let skip_if_empty = options
        .skip_if_empty
        .iter()
        .map(|p| {
            let inside = p.strip_prefix("/").unwrap_or(p);
            inside.as_os_str().as_bytes().to_vec()
        })
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            // A directory's member name ends with `/`.
            let mut dir = p.clone();
            dir.push(b'/');
            [p, dir]
        })
        .collect();
    let layer = LayerMode {
        clamp_mtime: options.clamp_mtime,
        skip_if_empty,
    };
    walk_into(dir, Some(layer), out)
}

/// Writes the tree at `root` to `out` as a tar stream: as it is, or (with `layer`)
/// in a layer's form.
fn walk_into<W: Write>(
    root: &Path,
    layer: Option<LayerMode>,
    out: W,
) -> Result<ExportStats, ExportError> {
    let read_err = |op| {
        move |source| ExportError::Read {
            op,
            path: root.to_owned(),
            source,
        }
    };
    let root_fd = sys::openat(
        cwd(),
        &sys::cstr(root.as_os_str().as_bytes()).map_err(read_err("open"))?,
        libc::O_PATH | libc::O_DIRECTORY,
        0,
    )
    .map_err(read_err("open the directory"))?;
    let origin = Origin::of(&statx(root_fd.as_fd()).map_err(read_err("stat"))?);
    let mut walker = Walker {
        root,
        origin,
        cross_mounts: false,
        out: tar::Builder::new(out),
        links: HashMap::new(),
        stats: ExportStats::default(),
        layer,
    };
    let stack = vec![Dir::open(root_fd, Vec::new()).map_err(read_err("list"))?];
    walker.walk(stack)?;
    let end = |source| ExportError::Write {
        path: root.to_owned(),
        source,
    };
    let mut out = walker.out.into_inner().map_err(end)?;
    out.flush().map_err(end)?;
    Ok(walker.stats)
}

/// Makes the overlay-form directory `dir`, which [`write_layer`] has just written
/// with `options`, what extracting that layer would give, so that a store can keep
/// `dir` itself as the layer rather than extract the layer again: the empty mount
/// points and the sockets the archive left out are removed, so are the xattrs it
/// does not carry (`trusted.overlay.*` but the opaque marker, `system.*`), and every
/// time becomes the archive's (whole seconds, no later than the clamp).
///
/// Only for a directory nothing changes any more (a stopped container's committed
/// snapshot): it is walked through descriptors without following a symlink, but not
/// guarded against concurrent renames as [`write_layer`] is.
pub fn settle_layer_dir(dir: &Path, options: &LayerOptions) -> Result<(), ExportError> {
    let err = |op| {
        move |source| ExportError::Read {
            op,
            path: dir.to_owned(),
            source,
        }
    };
    let fd = sys::openat(
        cwd(),
        &sys::cstr(dir.as_os_str().as_bytes()).map_err(err("open"))?,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
    .map_err(err("open"))?;
    let skip: Vec<Vec<u8>> = options
        .skip_if_empty
        .iter()
        .map(|p| {
            let inside = p.strip_prefix("/").unwrap_or(p);
            inside.as_os_str().as_bytes().to_vec()
        })
        .filter(|p| !p.is_empty())
        .collect();
    settle_dir(fd.as_fd(), b"", &skip, options.clamp_mtime).map_err(|(path, source)| {
        ExportError::Read {
            op: "settle",
            path: dir.join(OsStr::from_bytes(&path)),
            source,
        }
    })?;
    // The root's own times are not in the layer; its xattrs are.
    drop_foreign_xattrs(&sys::cstr(dir.as_os_str().as_bytes()).map_err(err("open"))?)
        .map_err(err("clean the xattrs of"))
}

/// `/proc/self/fd/DIR/NAME`: the entry `name` of the open directory `dir`, for the
/// `l*xattr` calls (which do not follow the last component; the magic link before
/// it leads to the directory itself, never through a name again).
fn entry_path(dir: BorrowedFd<'_>, name: &CStr) -> CString {
    let mut full = proc_path(dir).into_bytes();
    full.push(b'/');
    full.extend_from_slice(name.to_bytes());
    CString::new(full).unwrap_or_default()
}

type SettleResult = Result<(), (Vec<u8>, io::Error)>;

fn settle_dir(
    dir: BorrowedFd<'_>,
    prefix: &[u8],
    skip: &[Vec<u8>],
    clamp: Option<i64>,
) -> SettleResult {
    let at = |path: &[u8]| {
        let path = path.to_vec();
        move |e| (path, e)
    };
    for name in sys::read_dir_names(dir).map_err(at(prefix))? {
        let mut path = prefix.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(name.to_bytes());
        let st = sys::lstatat(dir, &name).map_err(at(&path))?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFSOCK {
            sys::unlinkat(dir, &name, false).map_err(at(&path))?;
            continue;
        }
        if kind == libc::S_IFDIR {
            let child = sys::openat(
                dir,
                &name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(at(&path))?;
            settle_dir(child.as_fd(), &path, skip, clamp)?;
            if skip.contains(&path)
                && sys::read_dir_names(child.as_fd()).is_ok_and(|n| n.is_empty())
            {
                drop(child);
                sys::unlinkat(dir, &name, true).map_err(at(&path))?;
                continue;
            }
            drop_foreign_xattrs(&entry_path(dir, &name)).map_err(at(&path))?;
        } else if kind == libc::S_IFREG && st.st_size == 0 && skip.contains(&path) {
            sys::unlinkat(dir, &name, false).map_err(at(&path))?;
            continue;
        } else if kind != libc::S_IFLNK {
            drop_foreign_xattrs(&entry_path(dir, &name)).map_err(at(&path))?;
        }
        let mut secs = st.st_mtime;
        if let Some(clamp) = clamp {
            secs = secs.min(clamp);
        }
        let time = sys::timespec(secs, 0);
        sys::lutimensat(dir, &name, &[time, time]).map_err(at(&path))?;
    }
    Ok(())
}

/// Removes the xattrs a layer does not carry from what `path` names (not followed).
fn drop_foreign_xattrs(path: &CStr) -> io::Result<()> {
    // SAFETY: a valid C string and a buffer of the length given.
    let names = read_growing(|buf| unsafe {
        libc::llistxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    });
    let names = match names {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(()),
        other => other?,
    };
    for key in names.split(|&b| b == 0).filter(|k| !k.is_empty()) {
        let foreign = (crate::overlay_xattr::is_overlay_key(key)
            && !crate::overlay_xattr::is_opaque_key(key))
            || key.starts_with(b"system.");
        if !foreign {
            continue;
        }
        let key = sys::cstr(key)?;
        // SAFETY: valid C strings.
        if unsafe { libc::lremovexattr(path.as_ptr(), key.as_ptr()) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENODATA) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// How [`write_entry`] archives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EntryOptions {
    /// Walk into filesystems mounted below the entry (a container's volumes,
    /// as `docker cp` sees them); by default, as [`write_tree`], a mount
    /// point is archived as an empty directory.
    pub cross_mounts: bool,
}

impl EntryOptions {
    /// Sets [`EntryOptions::cross_mounts`].
    pub fn cross_mounts(mut self, cross: bool) -> Self {
        self.cross_mounts = cross;
        self
    }
}

/// Writes one entry and, when it is a directory, everything below it, to
/// `out` as a tar stream (ended, and `out` flushed): what `docker cp` sends
/// for a path. `entry` is a descriptor of the entry itself (`O_PATH` will do;
/// a symlink opened with `O_NOFOLLOW` is archived as the symlink); `name` is
/// its member name (`file`, `dir` giving `dir/`, `dir/a`, ...; `.` gives
/// `./`, `./a`, ..., docker's names for `dir/.`). Otherwise as
/// [`write_tree`]: nothing below is followed, every entry is opened relative
/// to its parent's descriptor.
pub fn write_entry<W: Write>(
    entry: BorrowedFd<'_>,
    name: &[u8],
    options: &EntryOptions,
    out: W,
) -> Result<ExportStats, ExportError> {
    let shown = PathBuf::from(OsStr::from_bytes(name));
    let read_err = |op| {
        let path = shown.clone();
        move |source| ExportError::Read { op, path, source }
    };
    let fd = entry.try_clone_to_owned().map_err(read_err("open"))?;
    let origin = Origin::of(&statx(fd.as_fd()).map_err(read_err("stat"))?);
    let mut walker = Walker {
        root: Path::new(""),
        origin,
        cross_mounts: options.cross_mounts,
        out: tar::Builder::new(out),
        links: HashMap::new(),
        stats: ExportStats::default(),
        layer: None,
    };
    let mut stack = Vec::new();
    if let Some(dir) = walker.entry_fd(fd, name.to_vec())? {
        stack.push(dir);
    }
    walker.walk(stack)?;
    let end = |source| ExportError::Write {
        path: shown.clone(),
        source,
    };
    let mut out = walker.out.into_inner().map_err(end)?;
    out.flush().map_err(end)?;
    Ok(walker.stats)
}

fn cwd() -> BorrowedFd<'static> {
    // SAFETY: AT_FDCWD is valid for the whole process' life.
    unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) }
}

/// A directory being walked: its descriptor (`O_PATH`), the member name
/// prefix of its entries (`""` or `"a/b/"`) and the names still to visit.
struct Dir {
    fd: OwnedFd,
    prefix: Vec<u8>,
    names: std::vec::IntoIter<CString>,
}

impl Dir {
    fn open(fd: OwnedFd, prefix: Vec<u8>) -> io::Result<Dir> {
        let mut names = sys::read_dir_names(fd.as_fd())?;
        names.sort();
        Ok(Dir {
            fd,
            prefix,
            names: names.into_iter(),
        })
    }
}

/// Where the root lives: entries elsewhere are on another mount.
struct Origin {
    mount_id: Option<u64>,
    dev: (u32, u32),
}

impl Origin {
    fn of(stx: &libc::statx) -> Self {
        Origin {
            mount_id: (stx.stx_mask & libc::STATX_MNT_ID != 0).then_some(stx.stx_mnt_id),
            dev: (stx.stx_dev_major, stx.stx_dev_minor),
        }
    }

    fn holds(&self, stx: &libc::statx) -> bool {
        match self.mount_id {
            Some(id) if stx.stx_mask & libc::STATX_MNT_ID != 0 => stx.stx_mnt_id == id,
            // overlayfs reports the real device of a non-directory when its
            // layers are on several filesystems: only a directory's device
            // says which mount it is on.
            _ => {
                file_type(stx) != libc::S_IFDIR
                    || self.dev == (stx.stx_dev_major, stx.stx_dev_minor)
            }
        }
    }
}

struct Walker<'a, W: Write> {
    root: &'a Path,
    origin: Origin,
    /// Archive what is mounted below the root as well.
    cross_mounts: bool,
    out: tar::Builder<W>,
    /// Inodes with several names already archived: (device, inode) -> member name.
    links: HashMap<(u32, u32, u64), Vec<u8>>,
    stats: ExportStats,
    /// Set when writing an image layer from an overlay-form directory.
    layer: Option<LayerMode>,
}

/// What [`write_layer`] changes in the walk.
struct LayerMode {
    /// Later modification times are written as this one.
    clamp_mtime: Option<i64>,
    /// Member names (`etc/hosts`, `dev/`) left out when empty.
    skip_if_empty: Vec<Vec<u8>>,
}

impl<W: Write> Walker<'_, W> {
    /// Archives every entry below the directories of `stack`, depth first.
    fn walk(&mut self, mut stack: Vec<Dir>) -> Result<(), ExportError> {
        while let Some(top) = stack.last_mut() {
            let Some(name) = top.names.next() else {
                stack.pop();
                continue;
            };
            let mut path = top.prefix.clone();
            path.extend_from_slice(name.to_bytes());
            if let Some(dir) = self.entry(top.fd.as_fd(), &name, path)? {
                stack.push(dir);
            }
        }
        Ok(())
    }

    /// Archives the entry `name` of `parent`, member name `path`; returns the
    /// directory to walk next when it is one.
    fn entry(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        path: Vec<u8>,
    ) -> Result<Option<Dir>, ExportError> {
        if self.layer.is_some() && crate::overlay_xattr::is_fuse_marker(name.to_bytes()) {
            // fuse-overlayfs' marks of an opaque directory: the directory's own
            // `.wh..wh..opq` member (written after it) says it once.
            return Ok(None);
        }
        let fd = match sys::openat(parent, name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tracing::warn!(path = %self.full(&path).display(), "removed before it was archived; skipped");
                return Ok(None);
            }
            Err(e) => return Err(self.read_err("open", &path, e)),
        };
        self.entry_fd(fd, path)
    }

    /// Archives the entry `fd` (`O_PATH`, not followed), member name `path`.
    fn entry_fd(&mut self, fd: OwnedFd, path: Vec<u8>) -> Result<Option<Dir>, ExportError> {
        let stx = statx(fd.as_fd()).map_err(|e| self.read_err("stat", &path, e))?;
        let kind = file_type(&stx);
        let foreign = !self.cross_mounts && !self.origin.holds(&stx);
        if kind == libc::S_IFSOCK || (foreign && kind != libc::S_IFDIR) {
            return Ok(None);
        }
        if self.skipped_as_empty(&fd, &path, &stx) {
            return Ok(None);
        }
        let mut member = Member::new(&stx, self.layer.as_ref().and_then(|l| l.clamp_mtime));
        if self.layer.is_some()
            && kind == libc::S_IFCHR
            && (stx.stx_rdev_major, stx.stx_rdev_minor) == (0, 0)
        {
            // overlayfs' whiteout: the OCI form is an empty file `.wh.NAME`.
            member.header.set_entry_type(tar::EntryType::Regular);
            self.append(member, &whiteout_name(&path), io::empty())?;
            return Ok(None);
        }
        if !foreign {
            for (key, value) in
                xattrs(fd.as_fd()).map_err(|e| self.read_err("read the xattrs of", &path, e))?
            {
                let mut record = b"SCHILY.xattr.".to_vec();
                record.extend_from_slice(key.to_bytes());
                member.pax.push((record, value));
            }
        }
        let key = (stx.stx_dev_major, stx.stx_dev_minor, stx.stx_ino);
        if kind != libc::S_IFDIR && stx.stx_nlink > 1 {
            if let Some(first) = self.links.get(&key) {
                let first = first.clone();
                member.header.set_entry_type(tar::EntryType::Link);
                member.link_name(&first);
                self.append(member, &path, io::empty())?;
                return Ok(None);
            }
            self.links.insert(key, path.clone());
        }
        match kind {
            libc::S_IFDIR => {
                let mut dir_path = path.clone();
                // `/` (docker's name for a container's root) stays `/`.
                if !dir_path.ends_with(b"/") {
                    dir_path.push(b'/');
                }
                member.header.set_entry_type(tar::EntryType::Directory);
                let marker = self.layer.is_some() && !foreign && opaque(fd.as_fd());
                let mut opq = marker.then(|| Member {
                    header: member.header.clone(),
                    pax: Vec::new(),
                });
                self.append(member, &dir_path, io::empty())?;
                if let Some(mut opq) = opq.take() {
                    // Right after its directory, before what the layer puts in it.
                    opq.header.set_entry_type(tar::EntryType::Regular);
                    let mut name = dir_path.clone();
                    name.extend_from_slice(crate::OPAQUE_MARKER.as_bytes());
                    self.append(opq, &name, io::empty())?;
                }
                if foreign {
                    return Ok(None);
                }
                let dir = Dir::open(fd, dir_path).map_err(|e| self.read_err("list", &path, e))?;
                return Ok(Some(dir));
            }
            libc::S_IFREG => return self.file(member, &fd, &path, stx.stx_size).map(|()| None),
            libc::S_IFLNK => {
                let target = crate::fsutil::readlinkat(fd.as_fd(), c"")
                    .map_err(|e| self.read_err("read the link", &path, e))?;
                member.header.set_entry_type(tar::EntryType::Symlink);
                member.link_name(target.to_bytes());
            }
            libc::S_IFCHR | libc::S_IFBLK => {
                member.header.set_entry_type(if kind == libc::S_IFCHR {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                set_device(&mut member.header, &stx)
                    .map_err(|e| self.read_err("archive", &path, e))?;
            }
            libc::S_IFIFO => member.header.set_entry_type(tar::EntryType::Fifo),
            _ => {
                let unknown = io::Error::new(io::ErrorKind::Unsupported, "unknown file type");
                return Err(self.read_err("archive", &path, unknown));
            }
        }
        self.append(member, &path, io::empty())?;
        Ok(None)
    }

    /// A regular file: its data read from the inode `fd` refers to.
    fn file(
        &mut self,
        mut member: Member,
        fd: &OwnedFd,
        path: &[u8],
        size: u64,
    ) -> Result<(), ExportError> {
        let file = reopen(fd.as_fd()).map_err(|e| self.read_err("open", path, e))?;
        member.header.set_entry_type(tar::EntryType::Regular);
        member.size(size);
        let mut data = Exactly {
            file,
            left: size,
            short: false,
            error: None,
        };
        let written = self.append(member, path, &mut data);
        if let Some(e) = data.error {
            return Err(self.read_err("read", path, e));
        }
        written?;
        if data.short {
            tracing::warn!(path = %self.full(path).display(), "shrank while it was archived; padded with zeros");
        }
        self.stats.bytes += size;
        Ok(())
    }

    /// Writes `member`, named `path`, and its `data`.
    fn append(
        &mut self,
        mut member: Member,
        path: &[u8],
        data: impl Read,
    ) -> Result<(), ExportError> {
        member.name(path);
        let root = self.root;
        let write_err = |source| ExportError::Write {
            path: root.join(OsStr::from_bytes(path)),
            source,
        };
        if !member.pax.is_empty() {
            let records = pax_records(&member.pax);
            let mut pax = ustar_header();
            pax.set_entry_type(tar::EntryType::XHeader);
            pax.set_mode(0o644);
            pax.set_size(records.len() as u64);
            set_name_field(&mut pax, &pax_name(path));
            pax.set_cksum();
            self.out
                .append(&pax, records.as_slice())
                .map_err(write_err)?;
        }
        member.header.set_cksum();
        self.out.append(&member.header, data).map_err(write_err)?;
        self.stats.entries += 1;
        Ok(())
    }

    /// Whether `path` is one of the layer's mount points and empty: a file or
    /// directory the runtime made to mount something on, not the container's.
    fn skipped_as_empty(&self, fd: &OwnedFd, path: &[u8], stx: &libc::statx) -> bool {
        let Some(layer) = &self.layer else {
            return false;
        };
        if !layer.skip_if_empty.iter().any(|p| p == path) {
            return false;
        }
        match file_type(stx) {
            libc::S_IFREG => stx.stx_size == 0,
            libc::S_IFDIR => sys::read_dir_names(fd.as_fd()).is_ok_and(|n| n.is_empty()),
            _ => false,
        }
    }

    fn full(&self, path: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(path))
    }

    fn read_err(&self, op: &'static str, path: &[u8], source: io::Error) -> ExportError {
        ExportError::Read {
            op,
            path: self.full(path),
            source,
        }
    }
}

/// A ustar header with every numeric field written as 0: a field left as NUL bytes is 0
/// to GNU tar, but an error to stricter readers (the `tar` crate among them).
fn ustar_header() -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_size(0);
    // Cannot fail on a ustar header.
    let _ = header.set_device_major(0);
    let _ = header.set_device_minor(0);
    header
}

/// One member's header and the PAX records it needs.
struct Member {
    header: tar::Header,
    pax: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Member {
    /// A header with the entry's owner, mode and mtime (no later than `clamp`).
    fn new(stx: &libc::statx, clamp: Option<i64>) -> Self {
        let mut header = ustar_header();
        let mut pax = Vec::new();
        header.set_mode(u32::from(stx.stx_mode) & 0o7777);
        for (key, id) in [("uid", stx.stx_uid), ("gid", stx.stx_gid)] {
            if u64::from(id) > MAX_OCTAL_ID {
                pax.push((key.as_bytes().to_vec(), id.to_string().into_bytes()));
            }
        }
        header.set_uid(u64::from(stx.stx_uid));
        header.set_gid(u64::from(stx.stx_gid));
        let mut mtime = stx.stx_mtime.tv_sec;
        if let Some(clamp) = clamp {
            mtime = mtime.min(clamp);
        }
        match u64::try_from(mtime) {
            Ok(secs) if secs <= MAX_OCTAL_BIG => header.set_mtime(secs),
            _ => {
                header.set_mtime(mtime.clamp(0, MAX_OCTAL_BIG as i64) as u64);
                pax.push((b"mtime".to_vec(), mtime.to_string().into_bytes()));
            }
        }
        header.set_size(0);
        Member { header, pax }
    }

    fn size(&mut self, size: u64) {
        self.header.set_size(size);
        if size > MAX_OCTAL_BIG {
            self.pax
                .push((b"size".to_vec(), size.to_string().into_bytes()));
        }
    }

    /// The member name: in the ustar name (and prefix) fields when it fits,
    /// else a PAX `path` record (and a truncated name for older readers).
    fn name(&mut self, path: &[u8]) {
        match split_ustar(path) {
            Some((prefix, name)) => {
                if let Some(ustar) = self.header.as_ustar_mut() {
                    ustar.prefix[..prefix.len()].copy_from_slice(prefix);
                }
                set_name_field(&mut self.header, name);
            }
            None => {
                set_name_field(&mut self.header, &path[..NAME_LEN]);
                self.pax_text(b"path", path);
            }
        }
    }

    /// A symlink's target or a hard link's first name.
    fn link_name(&mut self, target: &[u8]) {
        let field = &mut self.header.as_old_mut().linkname;
        let n = target.len().min(NAME_LEN);
        field[..n].copy_from_slice(&target[..n]);
        if target.len() > NAME_LEN {
            self.pax_text(b"linkpath", target);
        }
    }

    /// A PAX text record; a value that is not UTF-8 marks the header binary,
    /// as GNU tar does.
    fn pax_text(&mut self, key: &[u8], value: &[u8]) {
        if std::str::from_utf8(value).is_err() && !self.pax.iter().any(|(k, _)| k == b"hdrcharset")
        {
            self.pax
                .insert(0, (b"hdrcharset".to_vec(), b"BINARY".to_vec()));
        }
        self.pax.push((key.to_vec(), value.to_vec()));
    }
}

/// `dir/.wh.name` for the member name `dir/name`.
fn whiteout_name(path: &[u8]) -> Vec<u8> {
    let split = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let mut name = path[..split].to_vec();
    name.extend_from_slice(crate::WHITEOUT_PREFIX.as_bytes());
    name.extend_from_slice(&path[split..]);
    name
}

/// Whether the directory `fd` (`O_PATH`) is opaque in overlay form.
fn opaque(fd: BorrowedFd<'_>) -> bool {
    if crate::fsutil::has_fuse_opaque_file(fd) {
        return true;
    }
    let path = proc_path(fd);
    crate::overlay_xattr::opaque_names().iter().any(|name| {
        let mut buf = [0u8; 2];
        // SAFETY: valid C strings and a buffer of the length given.
        let n = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        n == 1 && buf[0] == b'y'
    })
}

fn set_name_field(header: &mut tar::Header, name: &[u8]) {
    let field = &mut header.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name);
}

/// Splits `path` into ustar's prefix and name fields (joined by a `/`), or
/// `None` when it cannot be.
fn split_ustar(path: &[u8]) -> Option<(&[u8], &[u8])> {
    if path.len() <= NAME_LEN {
        return Some((&[], path));
    }
    // The name part must not be empty: never split at a directory's trailing `/`.
    let body = &path[..path.len() - 1];
    body.iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'/' && i <= PREFIX_LEN && path.len() - i - 1 <= NAME_LEN)
        .map(|(i, _)| (&path[..i], &path[i + 1..]))
        .next()
}

/// The name of a PAX extended header: `PaxHeaders.0/BASENAME`, as Go's
/// archive/tar writes it (GNU tar's puts its pid there: not reproducible).
fn pax_name(path: &[u8]) -> Vec<u8> {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    let base = trimmed.rsplit(|&b| b == b'/').next().unwrap_or(trimmed);
    let mut name = b"PaxHeaders.0/".to_vec();
    name.extend_from_slice(base);
    name.truncate(NAME_LEN);
    name
}

/// PAX records: `LEN KEY=VALUE\n`, where LEN counts the whole record, its own
/// digits included.
fn pax_records(records: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(key);
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

fn set_device(header: &mut tar::Header, stx: &libc::statx) -> io::Result<()> {
    header.set_device_major(stx.stx_rdev_major)?;
    header.set_device_minor(stx.stx_rdev_minor)
}

fn file_type(stx: &libc::statx) -> libc::mode_t {
    libc::mode_t::from(stx.stx_mode) & libc::S_IFMT
}

/// `statx` of what `fd` refers to (an `O_PATH` descriptor), never following it.
fn statx(fd: BorrowedFd<'_>) -> io::Result<libc::statx> {
    // SAFETY: an all-zero statx is a valid value to be overwritten.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd, an empty C string and a valid out pointer.
    let ret = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_BASIC_STATS | libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(stx)
}

/// The magic link naming `fd`'s inode: following it lands on that inode
/// itself, even a symlink, and never resolves a name again.
fn proc_path(fd: BorrowedFd<'_>) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap_or_default()
}

/// The regular file `fd` (`O_PATH`) refers to, opened for reading.
fn reopen(fd: BorrowedFd<'_>) -> io::Result<File> {
    let path = proc_path(fd);
    sys::openat(cwd(), &path, libc::O_RDONLY | libc::O_NOCTTY, 0).map(File::from)
}

/// The xattrs of what `fd` refers to, but the overlay implementations' own
/// (`trusted.overlay.*`, `user.overlay.*`, `user.fuseoverlayfs.*`) and `system.*`.
fn xattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let path = proc_path(fd);
    // SAFETY: a valid C string and a buffer of the length given.
    let names = read_growing(|buf| unsafe {
        libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    });
    let names = match names {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
        other => other?,
    };
    let mut out = Vec::new();
    for key in names.split(|&b| b == 0).filter(|k| !k.is_empty()) {
        if crate::overlay_xattr::is_overlay_key(key) || key.starts_with(b"system.") {
            continue;
        }
        let key = sys::cstr(key)?;
        // SAFETY: valid C strings and a buffer of the length given.
        let value = read_growing(|buf| unsafe {
            libc::getxattr(
                path.as_ptr(),
                key.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        });
        match value {
            Ok(value) => out.push((key, value)),
            // Removed between the listing and the read.
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort();
    Ok(out)
}

/// Calls `get` with a buffer that grows while the kernel says it is too small.
fn read_growing(mut get: impl FnMut(&mut [u8]) -> isize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    loop {
        let n = get(&mut buf);
        if n >= 0 {
            buf.truncate(n as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        // xattr values and name lists are at most 64 KiB.
        if e.raw_os_error() == Some(libc::ERANGE) && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
        } else {
            return Err(e);
        }
    }
}

/// Exactly `left` bytes of `file`: zeros after an early end (a file that
/// shrank), nothing past it (one that grew). A read error is kept in
/// `error`, apart from the writer's errors.
struct Exactly {
    file: File,
    left: u64,
    short: bool,
    error: Option<io::Error>,
}

impl Read for Exactly {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        while !self.short {
            match self.file.read(&mut buf[..want]) {
                Ok(0) => self.short = true,
                Ok(n) => {
                    self.left -= n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = e.kind();
                    self.error = Some(e);
                    return Err(io::Error::new(kind, "reading the file"));
                }
            }
        }
        buf[..want].fill(0);
        self.left -= want as u64;
        Ok(want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_lengths_count_themselves() {
        // Around each power of ten the length's own digits change the length.
        for value_len in 0..300 {
            let value = vec![b'x'; value_len];
            let records = pax_records(&[(b"path".to_vec(), value)]);
            let text = String::from_utf8(records.clone()).unwrap();
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), records.len(), "{text}");
        }
    }

    #[test]
    fn names_split_into_prefix_and_name() {
        assert_eq!(split_ustar(b"a/b"), Some((&b""[..], &b"a/b"[..])));
        let long = [vec![b'd'; 120], b"/".to_vec(), vec![b'f'; 90]].concat();
        assert_eq!(split_ustar(&long), Some((&long[..120], &long[121..])));
        // A name part over 100 bytes cannot be split.
        let unsplittable = [vec![b'd'; 10], b"/".to_vec(), vec![b'f'; 101]].concat();
        assert_eq!(split_ustar(&unsplittable), None);
        // A prefix over 155 bytes cannot be split.
        let deep = [vec![b'd'; 160], b"/".to_vec(), vec![b'f'; 10]].concat();
        assert_eq!(split_ustar(&deep), None);
        // A directory's trailing slash stays with its name.
        let dir = [vec![b'd'; 100], b"/".to_vec()].concat();
        assert_eq!(split_ustar(&dir), None);
        let dir = [vec![b'p'; 20], b"/".to_vec(), vec![b'd'; 99], b"/".to_vec()].concat();
        assert_eq!(split_ustar(&dir), Some((&dir[..20], &dir[21..])));
    }

    #[test]
    fn pax_header_names_are_short_and_stable() {
        assert_eq!(pax_name(b"a/b/c"), b"PaxHeaders.0/c");
        assert_eq!(pax_name(b"a/dir/"), b"PaxHeaders.0/dir");
        assert_eq!(pax_name(&[b'x'; 300]).len(), NAME_LEN);
    }

    #[test]
    fn a_shrinking_file_is_padded_and_a_growing_one_cut() {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(b"hello").unwrap();
        let reopened = |f: &File| {
            let mut f = f.try_clone().unwrap();
            std::io::Seek::rewind(&mut f).unwrap();
            f
        };
        let mut longer = Exactly {
            file: reopened(&tmp),
            left: 8,
            short: false,
            error: None,
        };
        let mut out = Vec::new();
        longer.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello\0\0\0");
        assert!(longer.short);
        let mut shorter = Exactly {
            file: reopened(&tmp),
            left: 3,
            short: false,
            error: None,
        };
        let mut out = Vec::new();
        shorter.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hel");
        assert!(!shorter.short);
    }
}
