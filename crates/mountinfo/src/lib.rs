//! The Linux mount table, `/proc/<pid>/mountinfo`, parsed.
//!
//! Each line becomes a [`MountInfo`]. The kernel writes space, tab, newline
//! and backslash in paths as `\ooo` octal escapes (`/mnt/a\040b`); they are
//! undone here, in the root, the mount point and the source, so a mount point
//! compares equal to the path it names. Paths keep non-UTF-8 bytes.
//!
//! [`is_mount_point`] and [`mount_of`] answer the questions most callers
//! have (is something mounted here? which filesystem holds this path?), from
//! the calling thread's table (a thread may have unshared its mount namespace).
#![deny(missing_docs)]

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt as _;
use std::path::{Path, PathBuf};

/// One mount, as one line of `mountinfo` describes it (see `proc(5)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// The mount's id (reused after it is unmounted).
    pub id: u32,
    /// The parent mount's id (its own for the root of the namespace).
    pub parent: u32,
    /// `major:minor` of the filesystem's device (`st_dev`).
    pub major_minor: String,
    /// The directory of the filesystem that is the root of this mount (`/`,
    /// or the directory a bind mount took).
    pub root: PathBuf,
    /// Where it is mounted, relative to the process's root.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`, `nosuid`, `relatime`, ...).
    pub options: Vec<String>,
    /// Optional fields (`shared:1`, `master:2`, `propagate_from:3`, `unbindable`).
    pub optional: Vec<String>,
    /// The filesystem type (`ext4`, `overlay`, `nsfs`, ...).
    pub fs_type: String,
    /// The mount source (a device, `overlay`, `none`...), escapes undone.
    pub source: OsString,
    /// Per-superblock options (`lowerdir=...`, `errors=remount-ro`, ...).
    pub super_options: Vec<String>,
}

/// What can go wrong reading a mount table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The table could not be read.
    #[error("reading the mount table {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A line is not in the format `proc(5)` describes.
    #[error("mount table line {line}: {reason} in {text:?}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
        /// The line.
        text: String,
    },
    /// The path asked about cannot be resolved (a loop of symlinks, no permission).
    #[error("resolving {}", path.display())]
    Resolve {
        /// The path.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

/// Parses a whole table (the contents of a `mountinfo` file).
pub fn parse(text: &str) -> Result<Vec<MountInfo>, Error> {
    parse_bytes(text.as_bytes())
}

/// Reads and parses the table at `path` (`/proc/<pid>/mountinfo`).
pub fn read(path: &Path) -> Result<Vec<MountInfo>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    // Parsed as bytes: the kernel writes a path's bytes as they are (only
    // " \t\n\\" are escaped), and a name need not be UTF-8.
    parse_bytes(&bytes)
}

/// The calling thread's mount table (`/proc/thread-self/mountinfo`, or
/// `/proc/self/mountinfo` on kernels before 3.17).
pub fn mounts() -> Result<Vec<MountInfo>, Error> {
    let thread = Path::new("/proc/thread-self/mountinfo");
    if thread.exists() {
        read(thread)
    } else {
        read(Path::new("/proc/self/mountinfo"))
    }
}

/// Whether `path` is the root of a mount in the calling thread's mount
/// namespace. A directory bind-mounted onto itself counts; symlinks in `path`
/// are resolved first; a path that does not exist is no mount point.
pub fn is_mount_point(path: &Path) -> Result<bool, Error> {
    // The kernel answers for one path directly (statx, Linux 5.8); the table, which on a
    // host with many mounts is tens of kilobytes to parse, only where it cannot.
    if let Some(answer) = mount_root_attribute(path) {
        return answer;
    }
    let path = match path.canonicalize() {
        Ok(path) => path,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(Error::Resolve {
                path: path.to_owned(),
                source,
            });
        }
    };
    Ok(mounts()?.iter().any(|m| m.mount_point == path))
}

/// `STATX_ATTR_MOUNT_ROOT` of `path` (symlinks followed): `None` where the kernel does not
/// report it.
fn mount_root_attribute(path: &Path) -> Option<Result<bool, Error>> {
    use std::os::unix::ffi::OsStrExt as _;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statx(2) writes at most one `struct statx` into `buf`, which lives for the
    // call; `c_path` is a NUL-terminated string that outlives it.
    let (rc, buf) = unsafe {
        let mut buf: libc::statx = std::mem::zeroed();
        let rc = libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_STATX_SYNC_AS_STAT,
            0,
            &mut buf,
        );
        (rc, buf)
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Some(Ok(false)),
            Some(libc::ENOSYS) => None,
            _ => Some(Err(Error::Resolve {
                path: path.to_owned(),
                source: err,
            })),
        };
    }
    let mount_root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (buf.stx_attributes_mask & mount_root != 0).then_some(Ok(buf.stx_attributes & mount_root != 0))
}

/// The mount that holds `path` in the calling thread's mount namespace: the
/// one whose mount point is the longest prefix of it, the latest of those
/// stacked on one point (what the kernel shows there). `path` need not exist:
/// its deepest existing ancestor is resolved (symlinks followed) instead, so
/// the filesystem a file *would* be written to is found too.
pub fn mount_of(path: &Path) -> Result<MountInfo, Error> {
    let resolved = resolve_existing(path)?;
    containing(mounts()?, &resolved).ok_or_else(|| Error::Resolve {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::NotFound, "no mount holds it"),
    })
}

/// Of `table`, the mount whose mount point holds `path` (already resolved).
fn containing(table: Vec<MountInfo>, path: &Path) -> Option<MountInfo> {
    // Later lines are mounted later: on equal length the last one covers the others.
    table
        .into_iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .fold(None, |best: Option<MountInfo>, m| match best {
            Some(b) if b.mount_point.as_os_str().len() > m.mount_point.as_os_str().len() => Some(b),
            _ => Some(m),
        })
}

/// `path` canonicalized, or its deepest ancestor that exists (with the rest
/// appended as it is).
fn resolve_existing(path: &Path) -> Result<PathBuf, Error> {
    let absolute = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|source| Error::Resolve {
                path: path.to_owned(),
                source,
            })?
            .join(path)
    };
    let mut rest = Vec::new();
    let mut at = absolute.as_path();
    loop {
        match at.canonicalize() {
            Ok(real) => return Ok(rest.iter().rev().fold(real, |p, c| p.join(c))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::Resolve {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                at = parent;
            }
            // `/` always exists; a path of `..`s ends here unresolved.
            _ => return Ok(absolute),
        }
    }
}

/// [`parse`] for a table read as bytes.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<MountInfo>, Error> {
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            parse_line_bytes(l).map_err(|reason| Error::Parse {
                line: i + 1,
                reason,
                text: String::from_utf8_lossy(l).into_owned(),
            })
        })
        .collect()
}

fn parse_line_bytes(line: &[u8]) -> Result<MountInfo, &'static str> {
    // Fields are separated by single spaces; escaped paths hold none.
    let mut fields = line.split(|&b| b == b' ');
    let mut next = |what| fields.next().ok_or(what);
    let id = number(next("no mount id")?).ok_or("bad mount id")?;
    let parent = number(next("no parent id")?).ok_or("bad parent id")?;
    let major_minor = text(next("no device")?);
    let root = path(next("no root")?);
    let mount_point = path(next("no mount point")?);
    let options = list(next("no mount options")?);
    let mut optional = Vec::new();
    loop {
        match next("no `-` separator")? {
            b"-" => break,
            field => optional.push(text(field)),
        }
    }
    let fs_type = text(next("no filesystem type")?);
    let source = OsString::from_vec(unescape(next("no mount source")?));
    let super_options = list(next("no superblock options")?);
    Ok(MountInfo {
        id,
        parent,
        major_minor,
        root,
        mount_point,
        options,
        optional,
        fs_type,
        source,
        super_options,
    })
}

fn number(field: &[u8]) -> Option<u32> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(field).into_owned()
}

fn list(field: &[u8]) -> Vec<String> {
    text(field).split(',').map(str::to_owned).collect()
}

fn path(field: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

/// Undoes the kernel's `\ooo` escapes; a backslash not followed by three
/// octal digits stays as it is.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field
            .get(i + 1..i + 4)
            .filter(|d| field[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .map(|d| d.iter().fold(0u32, |n, b| n * 8 + u32::from(b - b'0')));
        match octal {
            Some(code) if code <= 0xff => {
                out.push(code as u8);
                i += 4;
            }
            _ => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt as _;

    const PROC5: &str =
        "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue";

    #[test]
    fn the_example_of_proc5_parses_field_by_field() {
        let m = &parse(PROC5).unwrap()[0];
        assert_eq!((m.id, m.parent), (36, 35));
        assert_eq!(m.major_minor, "98:0");
        assert_eq!(m.root, Path::new("/mnt1"));
        assert_eq!(m.mount_point, Path::new("/mnt2"));
        assert_eq!(m.options, ["rw", "noatime"]);
        assert_eq!(m.optional, ["master:1"]);
        assert_eq!(m.fs_type, "ext3");
        assert_eq!(m.source, "/dev/root");
        assert_eq!(m.super_options, ["rw", "errors=continue"]);
    }

    #[test]
    fn escapes_are_undone_in_paths_and_source() {
        let line = r"40 1 0:50 /a\134b /run/a\040b\011c\012d rw - tmpfs my\040fs rw";
        let m = &parse(line).unwrap()[0];
        assert_eq!(m.root, Path::new("/a\\b"));
        assert_eq!(m.mount_point, Path::new("/run/a b\tc\nd"));
        assert_eq!(m.source, "my fs");
        assert!(m.optional.is_empty());
    }

    #[test]
    fn bytes_that_are_not_utf8_survive() {
        let line = b"41 1 0:51 / /run/\xff rw - tmpfs none rw\n";
        let m = &parse_bytes(line).unwrap()[0];
        assert_eq!(m.mount_point.as_os_str().as_bytes(), b"/run/\xff");
    }

    #[test]
    fn the_longest_and_latest_mount_point_holds_a_path() {
        let table = parse(
            "1 0 8:1 / / rw - ext4 /dev/vda rw\n\
             2 1 0:40 / /var/lib rw - tmpfs a rw\n\
             3 1 0:41 / /var/library rw - tmpfs b rw\n\
             4 2 0:42 / /var/lib rw - tmpfs c rw\n",
        )
        .unwrap();
        let of = |p: &str| containing(table.clone(), Path::new(p)).map(|m| m.id);
        assert_eq!(of("/var/lib/basic-docker/metadata.db"), Some(4));
        assert_eq!(of("/var/lib"), Some(4));
        // A prefix of the name is no prefix of the path.
        assert_eq!(of("/var/libx"), Some(1));
        assert_eq!(of("/var/library/x"), Some(3));
    }

    #[test]
    fn a_path_that_does_not_exist_yet_is_on_its_ancestors_mount() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("a/b/c");
        let found = mount_of(&missing).unwrap();
        assert_eq!(found, mount_of(dir.path()).unwrap());
        assert!(missing.canonicalize().is_err());
        assert_eq!(mount_of(Path::new("/proc/self")).unwrap().fs_type, "proc");
    }

    #[test]
    fn a_lone_backslash_stays() {
        assert_eq!(unescape(br"a\b\0"), br"a\b\0");
        assert_eq!(unescape(br"\040\400"), br" \400");
    }

    #[test]
    fn malformed_lines_name_their_number_and_fault() {
        let text = format!("{PROC5}\n36 35 98:0 /mnt1 /mnt2 rw shared:2 ext3\n");
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Parse {
                    line: 2,
                    reason: "no `-` separator",
                    ..
                }
            ),
            "{err}"
        );
        assert!(parse("x 1 0:1 / / rw - t s o").is_err());
    }

    #[test]
    fn this_threads_table_has_a_root() {
        let table = mounts().unwrap();
        assert!(table.iter().any(|m| m.mount_point == Path::new("/")));
        assert!(is_mount_point(Path::new("/")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()).unwrap());
        assert!(!is_mount_point(&dir.path().join("missing")).unwrap());
        let looped = dir.path().join("loop");
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        assert!(matches!(
            is_mount_point(&looped),
            Err(Error::Resolve { .. })
        ));
    }

    /// The kernel's answer and the table's agree: a directory bind-mounted onto itself is a
    /// mount point, through a symlink too, and no longer once unmounted.
    #[test]
    fn a_bind_mount_is_seen_by_the_kernel_and_the_table_alike() {
        if !basic_test_support::require_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::create_dir(&target).unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let c = |p: &Path| {
            std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str())).unwrap()
        };
        let c_target = c(&target);
        // SAFETY: both strings are NUL-terminated and outlive the calls.
        let bound = unsafe {
            libc::mount(
                c_target.as_ptr(),
                c_target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        assert_eq!(bound, 0, "{}", io::Error::last_os_error());
        let in_table = |p: &Path| mounts().unwrap().iter().any(|m| m.mount_point == p);
        let seen = (
            is_mount_point(&target),
            is_mount_point(&link),
            in_table(&target),
        );
        // SAFETY: as above.
        let unbound = unsafe { libc::umount2(c_target.as_ptr(), libc::MNT_DETACH) };
        assert_eq!(unbound, 0, "{}", io::Error::last_os_error());
        assert!(matches!(seen, (Ok(true), Ok(true), true)), "{seen:?}");
        assert!(!is_mount_point(&target).unwrap());
        assert!(!in_table(&target));
    }
}

/// The README's example, compiled as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
