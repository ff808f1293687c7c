//! `docker cp`: between a host path (or a tar stream) and a path in a container, with
//! the docker client's rules for names (its `archive.CopyInfo*` and
//! `PrepareArchiveCopy`):
//!
//! | source | destination exists as a directory | exists as a file | does not exist |
//! |---|---|---|---|
//! | file | copied into it, same name | overwritten | created with the destination's name (refused when the destination ends with `/`: "no such directory") |
//! | directory `d` | copied into it as `d` | "cannot copy directory" | created with the destination's name |
//! | `d/.` | its contents copied into it | "cannot copy directory" | created with the destination's name |
//!
//! A symlink given as the source is copied as a symlink, unless `-L`
//! ([`CpOptions::follow_link`]) asks for what it leads to (still named as the link). A
//! symlink as the destination is followed. `-` as the destination writes the tar stream
//! as the engine makes it; as the source, extracts a tar stream into a destination
//! directory.
//!
//! Host side: what comes out of a container is hostile. It is extracted by the same
//! applier as layers, every member resolved inside the destination directory (`..`,
//! absolute names, a symlink then a file through it cannot leave it), a directory is
//! never replaced by a file or the reverse, and device nodes are not created (a
//! container can make `/tmp/mem` as `c 1 1`; on the host, root's copy of it would open
//! the machine's memory to whoever can read it). setuid and setgid bits are kept, as
//! docker keeps them. Owners: the invoking user's, unless `-a` keeps the archive's.

use std::io::{self, Read, Write};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use basic_rootfs::ApplyOptions;
use basic_rootfs::export::EntryOptions;
use basic_runtime::in_root::lexical;
use nix::fcntl::OFlag;

use crate::archive::{CopyToOptions, asserts_directory, base_name};
use crate::engine::Engine;
use crate::error::{EngineError, Result};

/// `docker cp`'s flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpOptions {
    /// `-L`: copy what a source symlink leads to, not the link.
    pub follow_link: bool,
    /// `-a`: keep owners (into a container: the container's user when it has one, the
    /// files' own otherwise; out of one: the files' owners in the container).
    pub archive: bool,
}

/// Where [`Engine::copy_out`] puts what it copies.
pub enum CpTarget<'a> {
    /// A host path.
    Path(&'a Path),
    /// The tar stream itself (`-`).
    Stream(&'a mut (dyn Write + Send)),
}

/// What [`Engine::copy_in`] copies.
pub enum CpSource<'a> {
    /// A host path.
    Path(&'a Path),
    /// A tar stream (`-`), extracted into the destination directory.
    Stream(&'a mut (dyn Read + Send)),
}

/// A destination on either side, after its symlinks: docker's `CopyInfo`.
#[derive(Debug, Clone)]
struct Destination {
    path: String,
    exists: bool,
    is_dir: bool,
}

impl Engine {
    /// `docker cp CONTAINER:SRC DEST`.
    pub fn copy_out(
        &self,
        query: &str,
        src: &str,
        dest: CpTarget<'_>,
        options: &CpOptions,
    ) -> Result<()> {
        let (src, rename) = self.follow_source(query, src, options)?;
        let dest = match dest {
            CpTarget::Stream(out) => {
                self.copy_from(query, &src, out)?;
                return Ok(());
            }
            CpTarget::Path(dest) => dest,
        };
        let dest_text = std::path::absolute(dest)
            .map_err(EngineError::io("resolving", dest))?
            .to_string_lossy()
            .into_owned();
        let dest_text = keep_trailing(&dest_text, &dest.to_string_lossy());
        validate_output_path(Path::new(&dest_text))?;
        let dest_info = host_destination(&dest_text)?;
        let mut apply = None;
        let result = self.archive_path(query, &src, |stat| {
            let name = rename.clone().unwrap_or_else(|| stat.name.clone());
            let (dir, member) = prepare(stat.is_dir(), &name, &dest_info)?;
            let (writer, reader) = pipe();
            let options = ApplyOptions::untar()
                .no_overwrite_dir_non_dir(true)
                .preserve_ownership(options.archive)
                .device_nodes(false);
            apply = Some(std::thread::spawn(move || {
                basic_rootfs::apply_layer(reader, &dir, &options).map_err(|e| (dir, e))
            }));
            Ok((writer, member))
        });
        // The extraction's own error says more than the broken pipe it left the
        // archive with.
        if let Some(handle) = apply {
            match handle.join() {
                Ok(Ok(_)) => {}
                Ok(Err((dir, e))) => {
                    return Err(EngineError::Archive {
                        what: format!("extracting into {}", dir.display()),
                        source: e,
                    });
                }
                Err(_) => {
                    return Err(EngineError::Conflict(
                        "the extraction thread panicked".into(),
                    ));
                }
            }
        }
        result.map(drop)
    }

    /// `docker cp SRC CONTAINER:DEST`.
    pub fn copy_in(
        &self,
        src: CpSource<'_>,
        query: &str,
        dest: &str,
        options: &CpOptions,
    ) -> Result<()> {
        let dest_info = self.container_destination(query, dest)?;
        let copy = CopyToOptions {
            // docker's client: AllowOverwriteDirWithFile is false.
            no_overwrite_dir_non_dir: true,
            copy_uid_gid: options.archive,
        };
        let src = match src {
            CpSource::Stream(input) => {
                if !dest_info.is_dir {
                    return Err(EngineError::InvalidArgument(format!(
                        "destination \"{query}:{dest}\" must be a directory"
                    )));
                }
                return self.copy_to(query, &dest_info.path, input, &copy);
            }
            CpSource::Path(src) => src,
        };
        let given = src.to_string_lossy().into_owned();
        let absolute = std::path::absolute(src).map_err(EngineError::io("resolving", src))?;
        let absolute = keep_trailing(&absolute.to_string_lossy(), &given);
        let (resolved, rename) = host_source(&absolute, options.follow_link)?;
        let meta = std::fs::symlink_metadata(&resolved).map_err(|e| {
            EngineError::InvalidArgument(format!("lstat {}: {}", resolved.display(), os_text(&e)))
        })?;
        let name = rename.unwrap_or_else(|| base_name(&resolved.to_string_lossy()));
        let (dir, member) = prepare(meta.is_dir(), &name, &dest_info)?;
        let entry = nix::fcntl::open(
            &resolved,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| EngineError::io("opening", &resolved)(e.into()))?;
        let (writer, reader) = pipe();
        std::thread::scope(|scope| {
            let tar = scope.spawn(move || {
                let entry_options = EntryOptions::default().cross_mounts(true);
                basic_rootfs::export::write_entry(
                    entry.as_fd(),
                    member.as_bytes(),
                    &entry_options,
                    writer,
                )
            });
            let copied = self.copy_to(query, &dir.to_string_lossy(), reader, &copy);
            let archived = tar
                .join()
                .map_err(|_| EngineError::Conflict("the archiving thread panicked".into()))?;
            // The extraction's error first: an archive cut short by it only says "broken pipe".
            copied?;
            archived?;
            Ok(())
        })
    }

    /// With `-L`, a source symlink's target (absolute in the container), and the
    /// link's name to give it.
    fn follow_source(
        &self,
        query: &str,
        src: &str,
        options: &CpOptions,
    ) -> Result<(String, Option<String>)> {
        if !options.follow_link {
            return Ok((src.to_string(), None));
        }
        match self.path_stat(query, src) {
            Ok(stat) if stat.is_symlink() => Ok(rebase_name(src, &stat.link_target)),
            Ok(_) => Ok((src.to_string(), None)),
            Err(EngineError::NoSuchPath { .. }) => Ok((src.to_string(), None)),
            Err(e) => Err(e),
        }
    }

    /// docker's stat of the destination in the container, a final symlink followed.
    fn container_destination(&self, query: &str, dest: &str) -> Result<Destination> {
        let mut path = dest.to_string();
        let mut stat = self.path_stat(query, dest);
        if let Ok(s) = &stat
            && s.is_symlink()
        {
            path = s.link_target.clone();
            stat = self.path_stat(query, &path);
        }
        match stat {
            Ok(s) if !s.is_dir() && !s.is_regular() => Err(EngineError::InvalidArgument(format!(
                "destination \"{query}:{dest}\" must be a directory or a regular file"
            ))),
            Ok(s) => Ok(Destination {
                path,
                exists: true,
                is_dir: s.is_dir(),
            }),
            // Missing: the copy may still make it, in its parent (checked by the copy).
            Err(EngineError::NoSuchPath { .. } | EngineError::InvalidArgument(_)) => {
                Ok(Destination {
                    path,
                    exists: false,
                    is_dir: false,
                })
            }
            Err(e) => Err(e),
        }
    }
}

/// docker's `PrepareArchiveCopy`: the directory to extract into and the member name the
/// source gets there, for a source named `src_name` (a directory when `src_is_dir`).
fn prepare(src_is_dir: bool, src_name: &str, dest: &Destination) -> Result<(PathBuf, String)> {
    let clean = lexical_keep_relative(&dest.path);
    let dest_dir = clean.parent().unwrap_or(Path::new("/")).to_path_buf();
    let dest_base = clean
        .file_name()
        .map_or_else(|| ".".to_string(), |n| n.to_string_lossy().into_owned());
    match (dest.exists, dest.is_dir, src_is_dir) {
        (true, true, _) => Ok((PathBuf::from(&dest.path), src_name.to_string())),
        (true, false, true) => Err(EngineError::InvalidArgument("cannot copy directory".into())),
        (true, false, false) | (false, _, true) => Ok((dest_dir, dest_base)),
        (false, _, false) if asserts_directory(&dest.path) => {
            Err(EngineError::InvalidArgument("no such directory".into()))
        }
        (false, _, false) => Ok((dest_dir, dest_base)),
    }
}

/// `path` cleaned (`.`, `..`, double slashes) without making it relative to anything.
fn lexical_keep_relative(path: &str) -> PathBuf {
    lexical(Path::new(path))
}

/// docker's `GetRebaseName`: `resolved` with `path`'s trailing `/.` or `/`, and the name
/// to give it when its last element differs from `path`'s.
fn rebase_name(path: &str, resolved: &str) -> (String, Option<String>) {
    let mut resolved = resolved.to_string();
    if (path == "." || path.ends_with("/.")) && !resolved.ends_with("/.") {
        resolved.push_str("/.");
    }
    if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    let (a, b) = (base_name(path), base_name(&resolved));
    let rename = (a != b).then_some(a);
    (resolved, rename)
}

/// `absolute` with the trailing `/` or `/.` of `given` that making it absolute dropped.
fn keep_trailing(absolute: &str, given: &str) -> String {
    let mut out = absolute.trim_end_matches('/').to_string();
    if out.is_empty() {
        out.push('/');
        return out;
    }
    if (given == "." || given.ends_with("/.")) && !out.ends_with("/.") {
        out.push_str("/.");
    } else if given.ends_with('/') {
        out.push('/');
    }
    out
}

/// docker's `ValidateOutputPath`.
fn validate_output_path(path: &Path) -> Result<()> {
    let clean = lexical(path);
    if let Some(dir) = clean.parent()
        && !dir.exists()
    {
        return Err(EngineError::InvalidArgument(format!(
            "invalid output path: directory {:?} does not exist",
            dir.display().to_string()
        )));
    }
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_dir()
        && !meta.is_file()
    {
        return Err(EngineError::InvalidArgument(format!(
            "invalid output path: {:?} must be a directory or a regular file",
            path.display().to_string()
        )));
    }
    Ok(())
}

/// docker's `CopyInfoDestinationPath` on the host: symlinks followed (at most 10), a
/// missing destination needs an existing parent directory.
fn host_destination(path: &str) -> Result<Destination> {
    let original = path.to_string();
    let mut path = path.to_string();
    let mut followed = 0;
    loop {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                followed += 1;
                if followed > 10 {
                    return Err(EngineError::InvalidArgument(format!(
                        "too many symlinks in {original}"
                    )));
                }
                let target = std::fs::read_link(&path)
                    .map_err(EngineError::io("reading the link", &path))?;
                path = match target.is_absolute() {
                    true => target.to_string_lossy().into_owned(),
                    false => Path::new(&path)
                        .parent()
                        .unwrap_or(Path::new("/"))
                        .join(target)
                        .to_string_lossy()
                        .into_owned(),
                };
            }
            Ok(meta) => {
                return Ok(Destination {
                    path,
                    exists: true,
                    is_dir: meta.is_dir(),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = lexical(Path::new(&path));
                let parent = parent.parent().unwrap_or(Path::new("/"));
                return match std::fs::metadata(parent) {
                    Ok(meta) if meta.is_dir() => Ok(Destination {
                        path,
                        exists: false,
                        is_dir: false,
                    }),
                    Ok(_) => Err(EngineError::InvalidArgument("not a directory".into())),
                    Err(e) => Err(EngineError::InvalidArgument(format!(
                        "stat {}: {}",
                        parent.display(),
                        os_text(&e)
                    ))),
                };
            }
            Err(e) => {
                return Err(EngineError::InvalidArgument(format!(
                    "stat {path}: {}",
                    os_text(&e)
                )));
            }
        }
    }
}

/// docker's `ResolveHostSourcePath`: the source with its directories' symlinks
/// resolved (and the last element's too, with `-L`), and the name to give it.
fn host_source(path: &str, follow: bool) -> Result<(PathBuf, Option<String>)> {
    let missing =
        |e: io::Error| EngineError::InvalidArgument(format!("lstat {path}: {}", os_text(&e)));
    if follow {
        let resolved = std::fs::canonicalize(path).map_err(missing)?;
        let (resolved, rename) = rebase_name(path, &resolved.to_string_lossy());
        return Ok((PathBuf::from(resolved), rename));
    }
    let trimmed = path.trim_end_matches("/.").trim_end_matches('/');
    let (dir, base) = match trimmed.rsplit_once('/') {
        Some((d, b)) => (if d.is_empty() { "/" } else { d }, b),
        None => ("/", trimmed),
    };
    let dir = std::fs::canonicalize(dir).map_err(missing)?;
    let mut resolved = dir.join(base).to_string_lossy().into_owned();
    let rest = &path[trimmed.len()..];
    resolved.push_str(rest);
    let mut rename = None;
    if !rest.is_empty() {
        // A trailing `/` follows a final symlink: name it as the user did.
        let target = std::fs::canonicalize(&resolved).map_err(missing)?;
        let (target, r) = rebase_name(path, &target.to_string_lossy());
        resolved = target;
        rename = r;
    }
    Ok((PathBuf::from(resolved), rename))
}

/// An errno's text as Go prints it ("no such file or directory").
fn os_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// A bounded in-process pipe between a thread writing a tar stream and one reading it.
/// (Not an OS pipe: this process may have SIGPIPE's default action, and a reader that
/// stops early must fail the writer, not kill the process.)
fn pipe() -> (ChanWriter, ChanReader) {
    let (tx, rx) = sync_channel(16);
    (
        ChanWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        },
        ChanReader {
            rx,
            chunk: Vec::new(),
            pos: 0,
        },
    )
}

const CHUNK: usize = 256 << 10;

struct ChanWriter {
    tx: SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChanWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(chunk)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the extraction stopped"))
    }
}

impl Write for ChanWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl Drop for ChanWriter {
    fn drop(&mut self) {
        let _ = self.send();
    }
}

struct ChanReader {
    rx: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChanReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                // The writer is gone: the end of the stream.
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.chunk.len() - self.pos);
        out[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(path: &str, exists: bool, is_dir: bool) -> Destination {
        Destination {
            path: path.into(),
            exists,
            is_dir,
        }
    }

    #[test]
    fn dockers_table_of_names() {
        let p = |src_dir, name: &str, d: &Destination| {
            prepare(src_dir, name, d).map_err(|e| e.to_string())
        };
        assert_eq!(
            p(false, "f", &dest("/out", true, true)).unwrap(),
            ("/out".into(), "f".into())
        );
        assert_eq!(
            p(false, "f", &dest("/out/g", true, false)).unwrap(),
            ("/out".into(), "g".into())
        );
        assert_eq!(
            p(false, "f", &dest("/out/new", false, false)).unwrap(),
            ("/out".into(), "new".into())
        );
        assert_eq!(
            p(false, "f", &dest("/out/new/", false, false)).unwrap_err(),
            "no such directory"
        );
        assert_eq!(
            p(true, "d", &dest("/out", true, true)).unwrap(),
            ("/out".into(), "d".into())
        );
        assert_eq!(
            p(true, ".", &dest("/out", true, true)).unwrap(),
            ("/out".into(), ".".into())
        );
        assert_eq!(
            p(true, "d", &dest("/out/f", true, false)).unwrap_err(),
            "cannot copy directory"
        );
        assert_eq!(
            p(true, ".", &dest("/out/new", false, false)).unwrap(),
            ("/out".into(), "new".into())
        );
        assert_eq!(
            p(true, "d", &dest("/out/new/", false, false)).unwrap(),
            ("/out".into(), "new".into())
        );
    }

    #[test]
    fn rebase_names_keep_what_the_user_wrote() {
        assert_eq!(
            rebase_name("/bin/sh", "/bin/busybox"),
            ("/bin/busybox".into(), Some("sh".into()))
        );
        assert_eq!(rebase_name("/l/.", "/etc"), ("/etc/.".into(), None));
        assert_eq!(
            rebase_name("/l/", "/etc"),
            ("/etc/".into(), Some("l".into()))
        );
        assert_eq!(keep_trailing("/a/b", "b/."), "/a/b/.");
        assert_eq!(keep_trailing("/a/b", "b/"), "/a/b/");
    }

    #[test]
    fn the_pipe_carries_everything_and_stops_a_writer_whose_reader_left() {
        let (mut w, mut r) = pipe();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
        let sent = data.clone();
        let t = std::thread::spawn(move || {
            w.write_all(&sent).unwrap();
        });
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        t.join().unwrap();
        assert_eq!(got, data);
        let (mut w, r) = pipe();
        drop(r);
        let err = w.write_all(&vec![0; 4 * CHUNK]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }
}
