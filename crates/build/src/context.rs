//! The build context: a directory on the host, its `.dockerignore` applied, read
//! without following a single symlink (a context's link to `/etc` is copied as that
//! link, never as the host's files), and written as the tar stream a `COPY` or `ADD`
//! extracts into a step's container.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::BuildError;
use crate::ignore::{Ignore, clean, glob};

/// What a context entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
}

/// One entry of the context, by its `/`-separated path relative to the context.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub rel: String,
    pub kind: Kind,
    pub mode: u32,
    pub mtime: i64,
}

/// A context directory and the entries `.dockerignore` leaves in it, sorted.
#[derive(Debug, Clone, Default)]
pub struct Context {
    root: Option<PathBuf>,
    entries: Vec<Entry>,
}

/// How copied files are owned and moded.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub chmod: Option<u32>,
    pub clamp: Option<i64>,
}

impl Context {
    /// No files at all (a Dockerfile read from standard input).
    pub fn empty() -> Context {
        Context::default()
    }

    /// A context sent as a tar stream (`docker build - < context.tar`; plain, gzip or
    /// zstd): extracted into the new directory `dir` with basic-rootfs' path-safe
    /// extraction (no member lands outside `dir`, links are made as links and never
    /// followed), then read as [`Context::open`] reads a directory. The caller removes
    /// `dir` after the build.
    pub fn extract(archive: impl Read + Send, dir: &Path) -> Result<Context, BuildError> {
        fs::create_dir(dir).map_err(BuildError::io("creating", dir))?;
        let options = basic_rootfs::ApplyOptions::untar()
            .device_nodes(false)
            .preserve_ownership(false);
        basic_rootfs::apply_layer(archive, dir, &options).map_err(|e| {
            BuildError::Invalid(format!("the build context archive cannot be read: {e}"))
        })?;
        Context::open(dir)
    }

    /// The directory `root`, with its `.dockerignore` applied.
    pub fn open(root: &Path) -> Result<Context, BuildError> {
        let ignore = match fs::read_to_string(root.join(".dockerignore")) {
            Ok(text) => Ignore::parse(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ignore::default(),
            Err(e) => return Err(BuildError::io("reading", root.join(".dockerignore"))(e)),
        };
        let mut entries = Vec::new();
        walk(root, "", &ignore, &mut entries)?;
        entries.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(Context {
            root: Some(root.to_path_buf()),
            entries,
        })
    }

    /// The entries a `COPY`/`ADD` source names: a path (the entry itself, and for a
    /// directory what is below it) or a glob. An error names a source that matches
    /// nothing.
    pub(crate) fn sources(&self, src: &str) -> Result<Vec<Entry>, String> {
        let pattern = clean(src);
        let is_glob = pattern.contains(['*', '?', '[']);
        let found: Vec<Entry> = if pattern.is_empty() {
            vec![Entry {
                rel: String::new(),
                kind: Kind::Dir,
                mode: 0o755,
                mtime: 0,
            }]
        } else {
            self.entries
                .iter()
                .filter(|e| match is_glob {
                    true => glob(&pattern, &e.rel),
                    false => e.rel == pattern,
                })
                .cloned()
                .collect()
        };
        if found.is_empty() {
            return Err(format!(
                "file not found in build context or excluded by .dockerignore: {src}"
            ));
        }
        Ok(found)
    }

    /// Everything below the directory entry `dir` (`""`: the whole context).
    pub(crate) fn below<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| {
            dir.is_empty()
                || (e.rel.len() > dir.len()
                    && e.rel.starts_with(dir)
                    && e.rel.as_bytes()[dir.len()] == b'/')
        })
    }

    /// The members a source gives, `(entry, name relative to the destination)`.
    pub(crate) fn members<'a>(&'a self, source: &'a Entry) -> Vec<(&'a Entry, String)> {
        match source.kind {
            Kind::Dir => {
                let strip = if source.rel.is_empty() {
                    0
                } else {
                    source.rel.len() + 1
                };
                self.below(&source.rel)
                    .map(|e| (e, e.rel[strip..].to_string()))
                    .collect()
            }
            _ => vec![(source, String::new())],
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.clone().unwrap_or_default().join(rel)
    }

    /// Content hash of what `members` copy (names, kinds, modes, owners, contents,
    /// link targets; not times): the cache key of a `COPY`/`ADD`.
    pub(crate) fn hash(
        &self,
        members: &[(&Entry, String)],
        meta: &Meta,
    ) -> Result<String, BuildError> {
        let mut h = Sha256::new();
        for (entry, name) in members {
            h.update(format!(
                "{}\0{name}\0{:?}\0{:o}\0{}:{}\0",
                entry.rel,
                entry.kind,
                meta.chmod.unwrap_or(entry.mode),
                meta.uid,
                meta.gid
            ));
            match entry.kind {
                Kind::File => {
                    let mut file = self.open_file(&entry.rel)?;
                    let mut buf = vec![0; 128 * 1024];
                    loop {
                        let n = file
                            .read(&mut buf)
                            .map_err(BuildError::io("reading", self.path(&entry.rel)))?;
                        if n == 0 {
                            break;
                        }
                        h.update(&buf[..n]);
                    }
                }
                Kind::Symlink => {
                    let target = fs::read_link(self.path(&entry.rel))
                        .map_err(BuildError::io("reading the link", self.path(&entry.rel)))?;
                    h.update(target.as_os_str().as_encoded_bytes());
                }
                Kind::Dir => {}
            }
            h.update([0]);
        }
        Ok(format!("sha256:{}", hex::encode(h.finalize())))
    }

    /// A regular file of the context, opened without following a symlink.
    pub(crate) fn open_file(&self, rel: &str) -> Result<File, BuildError> {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(self.path(rel))
            .map_err(BuildError::io("opening", self.path(rel)))
    }

    /// Writes `members` as a tar stream, each named `prefix` joined with its name
    /// (`prefix` itself for a member named `""`).
    pub(crate) fn write_tar(
        &self,
        members: &[(&Entry, String)],
        prefix: &str,
        meta: &Meta,
        out: impl Write,
    ) -> Result<(), BuildError> {
        let mut tar = tar::Builder::new(out);
        let write_err = |e| BuildError::io("writing the copy of", PathBuf::from(prefix))(e);
        for (entry, name) in members {
            let mut member = prefix.trim_end_matches('/').to_string();
            if !name.is_empty() {
                if !member.is_empty() {
                    member.push('/');
                }
                member.push_str(name);
            }
            if member.is_empty() {
                continue;
            }
            let mut header = tar::Header::new_gnu();
            header.set_uid(u64::from(meta.uid));
            header.set_gid(u64::from(meta.gid));
            header.set_mode(meta.chmod.unwrap_or(entry.mode));
            let mtime = meta
                .clamp
                .map_or(entry.mtime, |c| entry.mtime.min(c))
                .max(0);
            header.set_mtime(mtime as u64);
            match entry.kind {
                Kind::Dir => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{member}/"), io::empty())
                        .map_err(write_err)?;
                }
                Kind::Symlink => {
                    let target = fs::read_link(self.path(&entry.rel))
                        .map_err(BuildError::io("reading the link", self.path(&entry.rel)))?;
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    tar.append_link(&mut header, &member, &target)
                        .map_err(write_err)?;
                }
                Kind::File => {
                    let file = self.open_file(&entry.rel)?;
                    let size = file
                        .metadata()
                        .map_err(BuildError::io("reading", self.path(&entry.rel)))?
                        .len();
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(size);
                    tar.append_data(&mut header, &member, file.take(size))
                        .map_err(write_err)?;
                }
            }
        }
        tar.into_inner()
            .map_err(write_err)?
            .flush()
            .map_err(write_err)
    }
}

/// Collects the entries below `dir` (context path `rel`) that `.dockerignore` keeps.
fn walk(root: &Path, rel: &str, ignore: &Ignore, out: &mut Vec<Entry>) -> Result<(), BuildError> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(BuildError::io("reading the build context at", &dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(BuildError::io("reading the build context at", &dir))?;
    names.sort();
    for name in names {
        let Some(name) = name.to_str() else {
            tracing::warn!("{}: a name that is not UTF-8 is left out", dir.display());
            continue;
        };
        let child = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let meta = fs::symlink_metadata(root.join(&child))
            .map_err(BuildError::io("reading", root.join(&child)))?;
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else {
            // Devices, fifos and sockets are not sent with a context.
            continue;
        };
        let excluded = ignore.excludes(&child);
        if !excluded {
            out.push(Entry {
                rel: child.clone(),
                kind,
                mode: meta.mode() & 0o7777,
                mtime: meta.mtime(),
            });
        }
        if kind == Kind::Dir && (!excluded || ignore.has_exceptions()) {
            walk(root, &child, ignore, out)?;
        }
    }
    Ok(())
}
