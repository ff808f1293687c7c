//! docker's archive routes on a container's files (`GET`, `HEAD` and `PUT
//! /containers/{id}/archive`): a path's stat, a tar stream of a path, a tar stream
//! extracted into a directory. Running and stopped containers alike, through a
//! [`view`](crate::view) of their files.
//!
//! The container is hostile. Every path is resolved inside its root
//! (`openat2(RESOLVE_IN_ROOT)`, or [`Root`]'s userspace walk where the kernel lacks it),
//! never by joining strings, and what is found is used through the descriptor the
//! resolution returned: a directory swapped for a symlink afterwards changes nothing
//! (CVE-2018-15664). Archives are written by walking descriptors (nothing below the
//! path is followed) and extracted by basic-rootfs's applier, which resolves every
//! member inside the destination directory: `..`, absolute names and a symlink
//! followed by a file through it (`a -> /etc`, then `a/passwd`) all stay below it.
//! Nothing of the container is ever executed (CVE-2019-14271: docker ran the
//! container's own libraries to make the archive).

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use basic_image_store::short_id;
use basic_rootfs::export::EntryOptions;
use basic_rootfs::{ApplyError, ApplyOptions};
use basic_runtime::in_root::{Root, fd_path, lexical};
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, SFlag};

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::view::{Access, View};

/// docker's stat of a path in a container (`X-Docker-Container-Path-Stat`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathStat {
    /// The last element of the path as given (`.` for `dir/.`, `/` for the root).
    pub name: String,
    /// Size in bytes (a symlink's: the length of its target).
    pub size: i64,
    /// Go's `os.FileMode` bits: permissions, and type and special bits above them.
    pub mode: u32,
    /// Modification time, RFC 3339 with nanoseconds (as Go writes a `time.Time`).
    pub mtime: String,
    /// For a symlink, where it leads, resolved inside the container; empty otherwise.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.FileMode` bits.
pub mod file_mode {
    /// A directory.
    pub const DIR: u32 = 1 << 31;
    /// A symbolic link.
    pub const SYMLINK: u32 = 1 << 27;
    /// A device.
    pub const DEVICE: u32 = 1 << 26;
    /// A named pipe.
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// A socket.
    pub const SOCKET: u32 = 1 << 24;
    /// setuid.
    pub const SETUID: u32 = 1 << 23;
    /// setgid.
    pub const SETGID: u32 = 1 << 22;
    /// A character device (with [`DEVICE`]).
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// Sticky.
    pub const STICKY: u32 = 1 << 20;
}

impl PathStat {
    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & file_mode::DIR != 0
    }

    /// Whether it is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & file_mode::SYMLINK != 0
    }

    /// Whether it is a regular file.
    pub fn is_regular(&self) -> bool {
        self.mode & 0xfff0_0000 & !(file_mode::SETUID | file_mode::SETGID | file_mode::STICKY) == 0
    }

    /// The JSON docker sends.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The value of docker's `X-Docker-Container-Path-Stat` header: the JSON, base64.
    pub fn header_value(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.to_json())
    }
}

/// How [`Engine::copy_to`] extracts (docker's `PUT /containers/{id}/archive` query).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CopyToOptions {
    /// Refuse to replace a directory by a non-directory or the reverse
    /// (`noOverwriteDirNonDir`).
    pub no_overwrite_dir_non_dir: bool,
    /// Give everything the container's user and group (`copyUIDGID`), when it has a
    /// user; otherwise owners are the archive's.
    pub copy_uid_gid: bool,
}

impl Engine {
    /// docker's `HEAD /containers/{id}/archive?path=`: what is at `path` (relative
    /// paths are relative to `/`; a final symlink is not followed unless the path ends
    /// with `/` or `/.`).
    pub fn path_stat(&self, query: &str, path: &str) -> Result<PathStat> {
        let c = self.container(query)?;
        self.with_view(&c, Access::Read, true, |view| {
            let found = locate(&view.root, path).map_err(|e| not_found(query, path, e))?;
            found.stat(&view.root)
        })
    }

    /// docker's `GET /containers/{id}/archive?path=`: writes `path` (and, for a
    /// directory, everything below it, volumes included) to `out` as a tar stream,
    /// the entry named as docker names it (`file`, `dir/...`, `./...` for `dir/.`);
    /// returns its stat.
    pub fn copy_from(&self, query: &str, path: &str, out: impl Write + Send) -> Result<PathStat> {
        self.copy_from_with(query, path, |_| Ok(out))
    }

    /// [`Engine::copy_from`] with the writer made once the stat is known (an HTTP
    /// handler sends the stat as a header before the body).
    pub fn copy_from_with<W: Write>(
        &self,
        query: &str,
        path: &str,
        out: impl FnOnce(&PathStat) -> Result<W> + Send,
    ) -> Result<PathStat> {
        self.archive_path(query, path, |stat| Ok((out(stat)?, stat.name.clone())))
    }

    /// The archive of `path`, its entry named as `out` says once it has seen the stat.
    pub(crate) fn archive_path<W: Write>(
        &self,
        query: &str,
        path: &str,
        out: impl FnOnce(&PathStat) -> Result<(W, String)> + Send,
    ) -> Result<PathStat> {
        let c = self.container(query)?;
        self.with_view(&c, Access::Read, true, |view| {
            let found = locate(&view.root, path).map_err(|e| not_found(query, path, e))?;
            let stat = found.stat(&view.root)?;
            let (writer, name) = out(&stat)?;
            let options = EntryOptions::default().cross_mounts(true);
            basic_rootfs::export::write_entry(found.fd.as_fd(), name.as_bytes(), &options, writer)?;
            Ok(stat)
        })
    }

    /// docker's `PUT /containers/{id}/archive?path=`: extracts the tar stream `tar`
    /// (plain, gzip or zstd) into the directory `dest` of the container (a final
    /// symlink is followed, inside the container). Owners, modes (setuid, setgid and
    /// sticky bits included), times and xattrs are the archive's; device nodes are
    /// created, as docker creates them (the container's device cgroup still decides
    /// whether it may open them). Refused for a read-only volume, or a container with a
    /// read-only root when no volume holds `dest`.
    pub fn copy_to(
        &self,
        query: &str,
        dest: &str,
        tar: impl Read + Send,
        options: &CopyToOptions,
    ) -> Result<()> {
        let c = self.container(query)?;
        let owner = match options.copy_uid_gid {
            true => container_user(&c)?,
            false => None,
        };
        self.with_view(&c, Access::Write, true, |view| {
            let target = resolve_dir(view, query, dest)?;
            let readonly_rootfs = c.config.host().readonly_rootfs.unwrap_or(false);
            if view.read_only_at(&target.path, readonly_rootfs) {
                let what = match view.mounts.iter().any(|(m, _)| target.path.starts_with(m)) {
                    true => "mounted volume is marked read-only",
                    false => "container rootfs is marked read-only",
                };
                return Err(EngineError::InvalidArgument(format!(
                    "cannot copy to {dest} in container {query}: {what}"
                )));
            }
            let apply = ApplyOptions::untar()
                .no_overwrite_dir_non_dir(options.no_overwrite_dir_non_dir)
                .owner(owner);
            basic_rootfs::apply_layer(tar, &fd_path(target.fd.as_fd()), &apply)
                .map_err(|e| archive_error(e, dest, &c))?;
            Ok(())
        })
    }
}

/// The directory `dest` inside the view, following symlinks (inside it).
fn resolve_dir(view: &View, query: &str, dest: &str) -> Result<basic_runtime::in_root::Resolved> {
    let path = lexical(Path::new(dest));
    let resolved = view
        .root
        .resolve(&path)
        .map_err(|e| not_found(query, dest, e))?;
    let st = nix::sys::stat::fstat(&resolved.fd).map_err(EngineError::sys(format!(
        "reading {dest} in container {query}"
    )))?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return Err(EngineError::InvalidArgument(
            "extraction point is not a directory".into(),
        ));
    }
    Ok(resolved)
}

/// docker's answer for a path that is not there (404).
fn not_found(query: &str, path: &str, e: std::io::Error) -> EngineError {
    tracing::debug!("resolving {path} in container {query}: {e}");
    let shown = lexical(Path::new(path));
    if e.raw_os_error() == Some(libc::ENOTDIR) {
        return EngineError::InvalidArgument(format!(
            "{path} in container {query}: not a directory"
        ));
    }
    EngineError::NoSuchPath {
        container: query.to_string(),
        path: shown.display().to_string(),
    }
}

fn archive_error(e: ApplyError, dest: &str, c: &Container) -> EngineError {
    EngineError::Archive {
        what: format!("extracting into {dest} in container {}", short_id(c.id())),
        source: e,
    }
}

/// The uid and gid of the container's user (`--user`, or the image's), as its start
/// resolved them; `None` when it has none (root's files stay as the archive says).
fn container_user(c: &Container) -> Result<Option<(u32, u32)>> {
    let user = c.config.config.user.clone().unwrap_or_default();
    if user.is_empty() {
        return Ok(None);
    }
    let spec_path = c.paths.spec();
    let spec = basic_runtime::Spec::load(&spec_path).map_err(|e| EngineError::Corrupt {
        what: spec_path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(spec
        .process()
        .as_ref()
        .map(|p| (p.user().uid(), p.user().gid())))
}

/// A path found in the view: its descriptor (`O_PATH`), docker's name for it, and
/// where it is inside the container.
pub(crate) struct Found {
    /// The entry, not followed when it is a final symlink.
    pub fd: OwnedFd,
    /// The last element of the path as given (docker's `filepath.Base`).
    pub name: String,
    /// The path (lexically cleaned, symlinks before the last element not resolved).
    pub path: PathBuf,
}

impl Found {
    fn stat(&self, root: &Root) -> Result<PathStat> {
        let st = nix::sys::stat::fstat(&self.fd)
            .map_err(EngineError::sys(format!("reading {}", self.path.display())))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let link_target = if kind == SFlag::S_IFLNK {
            link_target(root, &self.path, &self.fd)
        } else {
            String::new()
        };
        Ok(PathStat {
            name: self.name.clone(),
            size: st.st_size,
            mode: go_mode(&st),
            mtime: go_time(st.st_mtime, st.st_mtime_nsec),
            link_target,
        })
    }
}

/// Where the symlink `fd` at `path` leads, as a path inside the container (docker's
/// `FollowSymlinkInScope`); a dangling one names the path it would create.
fn link_target(root: &Root, path: &Path, fd: &OwnedFd) -> String {
    if let Ok(resolved) = root.resolve(path) {
        return resolved.path.display().to_string();
    }
    let raw = nix::fcntl::readlinkat(fd, "").unwrap_or_default();
    let raw = Path::new(&raw);
    let joined = match raw.is_absolute() {
        true => raw.to_path_buf(),
        false => path.parent().unwrap_or(Path::new("/")).join(raw),
    };
    lexical(&joined).display().to_string()
}

/// Finds `path` in the container as docker does: relative to `/`, `.` and `..` taken
/// lexically first, every symlink before the last element followed (inside the root),
/// the last one followed only when the path ends with `/` or `/.`.
pub(crate) fn locate(root: &Root, path: &str) -> std::io::Result<Found> {
    let clean = lexical(Path::new(path));
    let bytes = path.as_bytes();
    let dot = bytes == b"." || bytes.ends_with(b"/.");
    let slash = bytes.ends_with(b"/");
    let base = clean
        .file_name()
        .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned());
    if clean == Path::new("/") || dot || slash {
        let fd = open_following(root, &clean, true)?;
        let name = if dot { ".".to_string() } else { base };
        return Ok(Found {
            fd,
            name,
            path: clean,
        });
    }
    let parent = clean.parent().unwrap_or(Path::new("/"));
    let dir = open_following(root, parent, true)?;
    let last = clean.file_name().unwrap_or(OsStr::new("."));
    let fd = nix::fcntl::openat(
        &dir,
        last,
        OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    Ok(Found {
        fd,
        name: base,
        path: clean,
    })
}

/// `path` opened (`O_PATH`) inside the root, every symlink followed inside it: the
/// kernel's `RESOLVE_IN_ROOT`, or the userspace walk where openat2 is missing.
fn open_following(root: &Root, path: &Path, directory: bool) -> std::io::Result<OwnedFd> {
    let flags = match directory {
        true => OFlag::O_PATH | OFlag::O_DIRECTORY,
        false => OFlag::O_PATH,
    };
    match root.open_file(path, flags) {
        Ok(file) => Ok(file.into()),
        // Without openat2 (or refused by a seccomp filter), or raced by renames for
        // longer than it retries: the userspace walk, which keeps inside the root too.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOSYS | libc::EPERM | libc::EAGAIN)
            ) =>
        {
            Ok(root.resolve(path)?.fd)
        }
        Err(e) => Err(e),
    }
}

/// Go's `os.FileMode` of a stat.
fn go_mode(st: &FileStat) -> u32 {
    use file_mode as m;
    let mode = st.st_mode;
    let mut out = mode & 0o777;
    let kind = SFlag::from_bits_truncate(mode) & SFlag::S_IFMT;
    out |= match kind {
        SFlag::S_IFDIR => m::DIR,
        SFlag::S_IFLNK => m::SYMLINK,
        SFlag::S_IFCHR => m::DEVICE | m::CHAR_DEVICE,
        SFlag::S_IFBLK => m::DEVICE,
        SFlag::S_IFIFO => m::NAMED_PIPE,
        SFlag::S_IFSOCK => m::SOCKET,
        _ => 0,
    };
    if mode & libc::S_ISUID != 0 {
        out |= m::SETUID;
    }
    if mode & libc::S_ISGID != 0 {
        out |= m::SETGID;
    }
    if mode & libc::S_ISVTX != 0 {
        out |= m::STICKY;
    }
    out
}

/// A time as Go's `time.Time` JSON writes it in UTC: RFC 3339, nanoseconds without
/// trailing zeros (none at all for a whole second).
fn go_time(secs: i64, nanos: i64) -> String {
    let Ok(secs) = u64::try_from(secs) else {
        return "1970-01-01T00:00:00Z".to_string();
    };
    let at = UNIX_EPOCH + Duration::new(secs, u32::try_from(nanos).unwrap_or(0));
    let text = humantime::format_rfc3339_nanos(at).to_string();
    // "2026-12-07T07:19:09.084153970Z" -> "...09.08415397Z"; ".000000000Z" -> "Z".
    let (head, frac) = text
        .trim_end_matches('Z')
        .split_once('.')
        .unwrap_or((&text, ""));
    let frac = frac.trim_end_matches('0');
    match frac.is_empty() {
        true => format!("{head}Z"),
        false => format!("{head}.{frac}Z"),
    }
}

/// Whether `path` names a directory by its form: ends with `/` or `/.` (docker's
/// `assertsDirectory`).
pub(crate) fn asserts_directory(path: &str) -> bool {
    path.ends_with('/') || path.ends_with("/.") || path == "."
}

/// The last element of `path` as docker's `SplitPathDirEntry` gives it (`.` for
/// `dir/.`, `/` for the root).
pub(crate) fn base_name(path: &str) -> String {
    if path == "." || path.ends_with("/.") {
        return ".".to_string();
    }
    let clean = Path::new(path);
    match clean.components().next_back() {
        Some(Component::Normal(n)) => n.to_string_lossy().into_owned(),
        Some(Component::RootDir) | None => "/".to_string(),
        Some(_) => lexical(clean)
            .file_name()
            .map_or_else(|| "/".to_string(), |n| n.to_string_lossy().into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_times_trim_their_zeros() {
        assert_eq!(go_time(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(go_time(1, 84_153_970), "1970-01-01T00:00:01.08415397Z");
        assert_eq!(go_time(1, 500_000_000), "1970-01-01T00:00:01.5Z");
    }

    #[test]
    fn names_are_dockers_base_names() {
        assert_eq!(base_name("/tmp/dir/."), ".");
        assert_eq!(base_name("/tmp/dir/"), "dir");
        assert_eq!(base_name("/"), "/");
        assert_eq!(base_name("tmp/file"), "file");
        assert!(asserts_directory("/x/"));
        assert!(!asserts_directory("/x"));
    }

    #[test]
    fn stat_json_has_dockers_field_names() {
        let stat = PathStat {
            name: "etclink".into(),
            size: 4,
            mode: file_mode::SYMLINK | 0o777,
            mtime: "2026-12-07T07:19:09.084153971Z".into(),
            link_target: "/etc".into(),
        };
        // As docker 20.10 sent it for the same symlink.
        assert_eq!(
            stat.to_json(),
            r#"{"name":"etclink","size":4,"mode":134218239,"mtime":"2026-12-07T07:19:09.084153971Z","linkTarget":"/etc"}"#
        );
        assert!(stat.is_symlink() && !stat.is_dir() && !stat.is_regular());
    }
}
