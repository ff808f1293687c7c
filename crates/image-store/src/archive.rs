//! Reading an image archive (a tar, gzip- or zstd-compressed or not) into
//! `tmp/`: every regular member becomes one file there, hashed on the way.
//!
//! Member names are never used as paths: a staged file is named by its
//! position, and the archive's name only keys a map. A name that climbs out
//! (`..`) or is absolute is refused all the same, because an archive that
//! carries one is hostile or broken and nothing in it should be trusted.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write as _};
use std::path::{Component, Path, PathBuf};

use basic_escape::escape;
use sha2::{Digest as _, Sha256};

use crate::fsutil::{TempPath, temp_name};

/// Why an archive could not be staged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// The archive (or its decompression) could not be read.
    #[error("reading archive {archive}")]
    Read {
        /// The archive.
        archive: String,
        /// The system or format error.
        #[source]
        source: io::Error,
    },
    /// A member name is absolute, climbs out with `..`, or is not UTF-8.
    #[error(
        "archive {archive}: member \"{}\" has an unsafe name (absolute or containing `..`)",
        escape(member)
    )]
    UnsafeMember {
        /// The archive.
        archive: String,
        /// The name as found.
        member: String,
    },
    /// Writing the staged copy failed (a full disk, most likely).
    #[error(
        "archive {archive}: staging member {} in {}",
        escape(member),
        path.display()
    )]
    Stage {
        /// The archive.
        archive: String,
        /// The member being copied.
        member: String,
        /// The staged file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

/// One regular member, staged.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The staged copy.
    pub path: PathBuf,
    /// `sha256:` of its bytes.
    pub digest: String,
    /// Its size.
    pub size: u64,
}

/// An archive's members in `tmp/`, removed when dropped.
#[derive(Debug)]
pub(crate) struct Staged {
    /// The archive as errors name it.
    pub archive: String,
    _dir: TempPath,
    members: HashMap<String, Member>,
    links: HashMap<String, String>,
}

impl Staged {
    /// The member `name`, following symlinks inside the archive (docker ≥ 25
    /// links its legacy `<id>/layer.tar` to `blobs/sha256/…`).
    pub(crate) fn get(&self, name: &str) -> Option<&Member> {
        let mut name = normalize(Path::new(name))?;
        for _ in 0..16 {
            if let Some(m) = self.members.get(&name) {
                return Some(m);
            }
            name = self.links.get(&name)?.clone();
        }
        None
    }

    /// Whether the archive holds `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Every regular member, by name.
    pub(crate) fn members(&self) -> impl Iterator<Item = (&String, &Member)> {
        self.members.iter()
    }
}

/// Copies every regular member of `input` into a fresh directory in `tmp`.
pub(crate) fn stage(input: impl Read, tmp: &Path, archive: &str) -> Result<Staged, ArchiveError> {
    let read_err = |source| ArchiveError::Read {
        archive: archive.to_string(),
        source,
    };
    let dir = TempPath::new(temp_name(tmp, "load"));
    fs::create_dir(dir.path()).map_err(|source| ArchiveError::Stage {
        archive: archive.to_string(),
        member: String::new(),
        path: dir.path().to_path_buf(),
        source,
    })?;
    let mut tar = tar::Archive::new(decompressed(input).map_err(read_err)?);
    let mut staged = Staged {
        archive: archive.to_string(),
        _dir: dir,
        members: HashMap::new(),
        links: HashMap::new(),
    };
    for (i, entry) in tar.entries().map_err(read_err)?.enumerate() {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path().map_err(read_err)?.into_owned();
        let unsafe_name = || ArchiveError::UnsafeMember {
            archive: archive.to_string(),
            member: raw.display().to_string(),
        };
        let name = normalize(&raw).ok_or_else(unsafe_name)?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(read_err)?
                .ok_or_else(unsafe_name)?;
            let resolved = if kind.is_symlink() {
                resolve_link(&name, &target)
            } else {
                normalize(&target)
            };
            staged.links.insert(name, resolved.ok_or_else(unsafe_name)?);
        } else if kind.is_file() {
            let path = staged._dir.path().join(i.to_string());
            let member = copy_member(&mut entry, &path).map_err(|source| ArchiveError::Stage {
                archive: archive.to_string(),
                member: name.clone(),
                path: path.clone(),
                source,
            })?;
            staged.members.insert(name, member);
        }
    }
    Ok(staged)
}

/// Gzip and zstd archives are recognised by their magic bytes, as docker does.
pub(crate) fn decompressed<'a>(input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(input))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(input)?)
    } else {
        Box::new(input)
    })
}

fn copy_member(entry: &mut impl Read, path: &Path) -> io::Result<Member> {
    let mut file = fs::File::create(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 256 * 1024];
    let mut size = 0;
    loop {
        let n = entry.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])?;
        size += n as u64;
    }
    Ok(Member {
        path: path.to_path_buf(),
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        size,
    })
}

/// `a/./b/` → `a/b`; `None` for absolute names, `..`, or non-UTF-8.
pub(crate) fn normalize(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Where a symlink at `name` pointing at `target` lands inside the archive;
/// `None` when it would leave it.
fn resolve_link(name: &str, target: &Path) -> Option<String> {
    if target.is_absolute() {
        return None;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    parts.pop();
    for c in target.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_archive_are_refused() {
        assert_eq!(normalize(Path::new("./a/./b")).as_deref(), Some("a/b"));
        assert!(normalize(Path::new("../etc/passwd")).is_none());
        assert!(normalize(Path::new("a/../../b")).is_none());
        assert!(normalize(Path::new("/etc/passwd")).is_none());
    }

    #[test]
    fn links_resolve_inside_the_archive_only() {
        let link = resolve_link("abc/layer.tar", Path::new("../blobs/sha256/x"));
        assert_eq!(link.as_deref(), Some("blobs/sha256/x"));
        assert!(resolve_link("abc/layer.tar", Path::new("../../x")).is_none());
        assert!(resolve_link("a", Path::new("/etc/shadow")).is_none());
    }
}
