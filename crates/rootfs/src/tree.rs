//! Copying and measuring directory trees whose contents are not trusted: an image's
//! directory copied into a volume (docker's "copy-up" of a new volume), the size of a
//! volume a container filled.
//!
//! Both sides are held as directory descriptors, and every step below them is one name
//! opened relative to its parent's descriptor with `O_NOFOLLOW`: a symlink in the source
//! is recreated as a symlink (its target is only text) and never followed, a symlink that
//! appears in the destination while the copy runs (a container sharing the volume) makes
//! the copy stop with an error instead of writing through it, and nothing is ever created
//! over an existing name (`O_EXCL`, `mkdirat`). Hard links inside the copied tree stay
//! hard links, resolved with `openat2(RESOLVE_IN_ROOT)` inside the destination.
//!
//! Directories nested deeper than [`MAX_DEPTH`] are refused (copy) or not descended into
//! (size): a hostile tree must not exhaust the stack or the descriptor table.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use crate::fsutil::{copy_entry, copy_meta_fd};
use crate::sys;

/// How deep directories may nest below the copied or measured directory.
pub const MAX_DEPTH: usize = 256;

/// Why a tree could not be copied or measured; `path` is relative to the tree's top.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A system call on an entry failed.
    #[error("{}: {source}", shown(path))]
    Io {
        /// The entry, relative to the top of the tree.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Directories nest deeper than [`MAX_DEPTH`].
    #[error("{}: directories nest more than {MAX_DEPTH} deep", shown(path))]
    TooDeep {
        /// The directory that would be one level too deep.
        path: PathBuf,
    },
}

fn shown(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        ".".to_string()
    } else {
        path.display().to_string()
    }
}

/// What [`copy_contents`] copied.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopyStats {
    /// Entries created (files, directories, links, nodes).
    pub entries: u64,
    /// Bytes of regular files copied.
    pub bytes: u64,
}

/// Whether the directory `dir` has no entries.
pub fn is_empty(dir: BorrowedFd<'_>) -> Result<bool, TreeError> {
    let names = sys::read_dir_names(dir).map_err(at(b""))?;
    Ok(names.is_empty())
}

/// Copies everything in directory `src` into directory `dst` (which should be empty: an
/// entry that exists there already is an error, never overwritten), then gives `dst` the
/// owner, mode, xattrs and times of `src`. Owners, modes, xattrs (not overlayfs' own),
/// times, symlinks, device nodes, fifos and hard links are kept.
pub fn copy_contents(src: BorrowedFd<'_>, dst: BorrowedFd<'_>) -> Result<CopyStats, TreeError> {
    let mut copier = Copier {
        dst_root: dst,
        links: HashMap::new(),
        stats: CopyStats::default(),
    };
    copier
        .copy_dir(src, dst, Vec::new(), 0)
        .map_err(|(path, error)| error.at(path))?;
    let st = sys::fstat(src).map_err(at(b""))?;
    copy_meta_fd(src, dst, &st).map_err(at(b""))?;
    Ok(copier.stats)
}

/// The apparent size of everything below directory `dir` (docker's measure of a volume):
/// the sizes of all entries that are not directories, a hard-linked file once, symlinks
/// never followed. Directories deeper than [`MAX_DEPTH`] are not counted.
pub fn apparent_size(dir: BorrowedFd<'_>) -> Result<u64, TreeError> {
    let mut seen = HashSet::new();
    let mut total = 0;
    size_of_dir(dir, Vec::new(), 0, &mut seen, &mut total)
        .map_err(|(path, error)| error.at(path))?;
    Ok(total)
}

/// An error of the walk, with the entry it happened at.
type WalkResult<T> = Result<T, (Vec<u8>, WalkError)>;

enum WalkError {
    Io(io::Error),
    TooDeep,
}

impl WalkError {
    fn at(self, path: Vec<u8>) -> TreeError {
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&path));
        match self {
            WalkError::Io(source) => TreeError::Io { path, source },
            WalkError::TooDeep => TreeError::TooDeep { path },
        }
    }
}

fn at(path: &[u8]) -> impl FnOnce(io::Error) -> TreeError + '_ {
    move |source| WalkError::Io(source).at(path.to_vec())
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

struct Copier<'a> {
    dst_root: BorrowedFd<'a>,
    /// Hard links: source (device, inode) -> the path of its first copy.
    links: HashMap<(u64, u64), Vec<u8>>,
    stats: CopyStats,
}

impl Copier<'_> {
    fn copy_dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        path: Vec<u8>,
        depth: usize,
    ) -> WalkResult<()> {
        let io = |p: &[u8]| {
            let p = p.to_vec();
            move |e: io::Error| (p, WalkError::Io(e))
        };
        for name in sys::read_dir_names(src).map_err(io(&path))? {
            let child = join(&path, name.to_bytes());
            let st = sys::lstatat(src, &name).map_err(io(&child))?;
            if sys::is_dir(&st) {
                if depth + 1 > MAX_DEPTH {
                    return Err((child, WalkError::TooDeep));
                }
                // Private until its contents and metadata are in place.
                sys::mkdirat(dst, &name, 0o700).map_err(io(&child))?;
                let src_sub = open_dir(src, &name).map_err(io(&child))?;
                let dst_sub = open_dir(dst, &name).map_err(io(&child))?;
                self.stats.entries += 1;
                self.copy_dir(src_sub.as_fd(), dst_sub.as_fd(), child.clone(), depth + 1)?;
                copy_meta_fd(src_sub.as_fd(), dst_sub.as_fd(), &st).map_err(io(&child))?;
                continue;
            }
            self.copy_file(src, dst, &name, &st, &child)
                .map_err(io(&child))?;
        }
        Ok(())
    }

    fn copy_file(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        name: &CStr,
        st: &libc::stat,
        path: &[u8],
    ) -> io::Result<()> {
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 {
            if let Some(first) = self.links.get(&key) {
                let (dir, base) = match first.iter().rposition(|&b| b == b'/') {
                    Some(i) => (&first[..i], &first[i + 1..]),
                    None => (&b""[..], &first[..]),
                };
                let dir_fd = if dir.is_empty() {
                    sys::openat(self.dst_root, c".", libc::O_PATH | libc::O_DIRECTORY, 0)?
                } else {
                    sys::openat2(
                        self.dst_root,
                        &sys::cstr(dir)?,
                        libc::O_PATH | libc::O_DIRECTORY,
                        0,
                        sys::RESOLVE_IN_ROOT,
                    )?
                };
                sys::linkat(dir_fd.as_fd(), &sys::cstr(base)?, dst, name)?;
                self.stats.entries += 1;
                return Ok(());
            }
            self.links.insert(key, path.to_vec());
        }
        copy_entry(src, name, st, dst, name)?;
        self.stats.entries += 1;
        if st.st_mode & libc::S_IFMT == libc::S_IFREG {
            self.stats.bytes += st.st_size as u64;
        }
        Ok(())
    }
}

fn size_of_dir(
    dir: BorrowedFd<'_>,
    path: Vec<u8>,
    depth: usize,
    seen: &mut HashSet<(u64, u64)>,
    total: &mut u64,
) -> WalkResult<()> {
    let io = |p: &[u8]| {
        let p = p.to_vec();
        move |e: io::Error| (p, WalkError::Io(e))
    };
    for name in sys::read_dir_names(dir).map_err(io(&path))? {
        let child = join(&path, name.to_bytes());
        let st = match sys::lstatat(dir, &name) {
            Ok(st) => st,
            // Removed since it was listed.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(io(&child)(e)),
        };
        if sys::is_dir(&st) {
            if depth + 1 > MAX_DEPTH {
                continue;
            }
            let sub = match open_dir(dir, &name) {
                Ok(sub) => sub,
                // Replaced by something else since it was looked at.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ELOOP)) => {
                    continue;
                }
                Err(e) => return Err(io(&child)(e)),
            };
            size_of_dir(sub.as_fd(), child, depth + 1, seen, total)?;
        } else if st.st_nlink <= 1 || seen.insert((st.st_dev, st.st_ino)) {
            *total += st.st_size as u64;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink};

    fn dir_fd(path: &Path) -> File {
        File::open(path).unwrap()
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_tree_is_copied_with_its_links_modes_and_hard_links() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(src.join("file"), "hello").unwrap();
        std::fs::set_permissions(src.join("file"), std::fs::Permissions::from_mode(0o4750))
            .unwrap();
        std::fs::hard_link(src.join("file"), src.join("sub/hardlink")).unwrap();
        symlink("/etc/passwd", src.join("sub/abs")).unwrap();
        symlink("../../../../../x", src.join("sub/deeper/up")).unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o751)).unwrap();
        let stats = copy_contents(dir_fd(&src).as_fd(), dir_fd(&dst).as_fd()).unwrap();
        assert_eq!(stats.bytes, 5);
        assert_eq!(listing(&dst), ["file", "sub"]);
        assert_eq!(
            std::fs::read_to_string(dst.join("sub/hardlink")).unwrap(),
            "hello"
        );
        let (a, b) = (
            std::fs::metadata(dst.join("file")).unwrap(),
            std::fs::metadata(dst.join("sub/hardlink")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "hard links stay hard links");
        assert_eq!(a.permissions().mode() & 0o7777, 0o4750);
        assert_eq!(
            std::fs::read_link(dst.join("sub/abs")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            std::fs::read_link(dst.join("sub/deeper/up")).unwrap(),
            Path::new("../../../../../x")
        );
        let top = std::fs::metadata(&dst).unwrap().permissions().mode() & 0o7777;
        assert_eq!(top, 0o751, "the top takes the source's mode");
        // Apparent size: the file once (it is hard-linked), and the two links' targets.
        let size = apparent_size(dir_fd(&dst).as_fd()).unwrap();
        assert_eq!(
            size,
            5 + "/etc/passwd".len() as u64 + "../../../../../x".len() as u64
        );
    }

    #[test]
    fn a_symlink_planted_in_the_destination_is_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst, outside) = (
            tmp.path().join("src"),
            tmp.path().join("dst"),
            tmp.path().join("outside"),
        );
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("etc/passwd"), "from-the-image").unwrap();
        std::fs::write(src.join("file"), "from-the-image").unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // What a container sharing the volume could plant while the copy runs.
        symlink(&outside, dst.join("etc")).unwrap();
        symlink(outside.join("file"), dst.join("file")).unwrap();
        // Positive control: a copy that follows paths writes outside.
        std::fs::write(dst.join("etc/control"), "x").unwrap();
        assert!(outside.join("control").exists());
        std::fs::remove_file(outside.join("control")).unwrap();
        let e = copy_contents(dir_fd(&src).as_fd(), dir_fd(&dst).as_fd()).unwrap_err();
        assert!(matches!(e, TreeError::Io { .. }), "{e}");
        assert!(listing(&outside).is_empty(), "nothing written outside: {e}");
    }

    #[test]
    fn the_source_is_never_followed_out_of_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst, outside) = (
            tmp.path().join("src"),
            tmp.path().join("dst"),
            tmp.path().join("outside"),
        );
        std::fs::create_dir_all(&src).unwrap();
        std::fs::create_dir_all(&dst).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "host-secret").unwrap();
        symlink(&outside, src.join("dir-link")).unwrap();
        symlink(outside.join("secret"), src.join("file-link")).unwrap();
        copy_contents(dir_fd(&src).as_fd(), dir_fd(&dst).as_fd()).unwrap();
        for link in ["dir-link", "file-link"] {
            let meta = std::fs::symlink_metadata(dst.join(link)).unwrap();
            assert!(meta.file_type().is_symlink(), "{link} copied as a link");
        }
        assert_eq!(listing(&outside), ["secret"]);
        let size = apparent_size(dir_fd(&dst).as_fd()).unwrap();
        assert!(size < "host-secret".len() as u64 * 10, "links not followed");
    }

    #[test]
    fn trees_deeper_than_the_limit_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
        let mut deep = src.clone();
        for _ in 0..=MAX_DEPTH {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("f"), "x").unwrap();
        std::fs::create_dir(&dst).unwrap();
        let e = copy_contents(dir_fd(&src).as_fd(), dir_fd(&dst).as_fd()).unwrap_err();
        assert!(matches!(e, TreeError::TooDeep { .. }), "{e}");
        assert!(e.to_string().contains("nest more than"), "{e}");
        assert_eq!(apparent_size(dir_fd(&src).as_fd()).unwrap(), 0);
        assert!(!is_empty(dir_fd(&src).as_fd()).unwrap());
        assert!(is_empty(dir_fd(&deep).as_fd()).is_ok_and(|e| !e));
    }
}
