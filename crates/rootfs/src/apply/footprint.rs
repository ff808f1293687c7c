//! What a layer applied without its lower layers relied on, so a caller that
//! extracts layers in parallel can tell afterwards, cheaply, whether the
//! lower layers would have changed the result (and only then apply the layer
//! again with [`ApplyOptions::lower_layers`]).
//!
//! The lower layers change an overlay-mode layer in three ways only (see
//! `resolve.rs`): a parent path is resolved through a lower symlink, a
//! directory the layer makes implicitly takes a lower directory's metadata,
//! and a hard link to a lower file copies it up. Every path where the first
//! two can happen is a directory the layer writes through, so the walk below
//! visits those directories in the lower layers' merged view; the third is
//! recorded as it happens. The second alone is settled in place (the lower
//! directory's owner, mode, xattrs and times copied onto the layer's), which
//! is what image tools that list no parent directories (GNU tar of a subtree)
//! cause in nearly every layer.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use basic_escape::escape;

use std::os::fd::AsFd as _;
use std::path::Path;

use super::lower::Lowers;
use super::{ApplyError, ApplyOptions, display, open_target};
use crate::sys;

/// The directories an overlay-mode layer applied without lower layers wrote
/// through, the ones it created without a member of their own, and the hard
/// links whose targets it did not hold. Recorded with
/// [`ApplyOptions::footprint`]; see [`Footprint::settle`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Resolved parent directories of the layer's members (sorted).
    dirs: Vec<Vec<u8>>,
    /// Directories created on the way, without a member of their own (sorted).
    implicit: Vec<Vec<u8>>,
    /// Of those, the ones a later member of the layer names (sorted).
    named_later: Vec<Vec<u8>>,
    /// Hard links (member, target) whose target the layer does not hold.
    missing_links: Vec<(String, String)>,
}

/// Why a layer applied without its lower layers is not what applying it onto
/// them gives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LowerDependency {
    /// The layer writes through `path`, which a lower layer made a symlink:
    /// its members belong where the symlink points (inside the root).
    Symlink {
        /// The directory, relative to the root.
        path: String,
    },
    /// The layer made directory `path` without a member for it, then named it
    /// in a later member, and a lower layer has that directory: the lower
    /// one's metadata (xattrs included) comes first, the member's on top.
    Directory {
        /// The directory, relative to the root.
        path: String,
    },
    /// A hard link names a file the layer does not hold: a lower file, to be
    /// copied up (or nothing, which applying with the lower layers reports).
    HardLink {
        /// The link member.
        member: String,
        /// The target it names.
        target: String,
    },
}

impl fmt::Display for LowerDependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LowerDependency::Symlink { path } => {
                write!(f, "`{}` is a symlink in a lower layer", escape(path))
            }
            LowerDependency::Directory { path } => write!(
                f,
                "`{}` is made implicitly before its member and exists in a lower layer",
                escape(path)
            ),
            LowerDependency::HardLink { member, target } => write!(
                f,
                "hard link `{}` names `{}`, which the layer does not hold",
                escape(member),
                escape(target)
            ),
        }
    }
}

/// What [`Footprint::settle`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Settled {
    /// The layer, as applied on its own, is what applying it onto the lower
    /// layers gives (after `directories` implicit directories took the
    /// metadata of the lower directories they cover).
    Complete {
        /// Implicit directories given their lower directory's metadata.
        directories: usize,
    },
    /// The lower layers change the layer beyond that: apply it again, into an
    /// empty directory, with [`ApplyOptions::lower_layers`].
    Reapply(LowerDependency),
}

impl Footprint {
    /// Makes the layer at `target`, applied on its own with
    /// [`ApplyOptions::footprint`], what applying it onto `lower_layers`
    /// (bottom-most first, in overlay form, as [`ApplyOptions::lower_layers`]
    /// takes them) gives — or says why only applying it again can.
    ///
    /// Conservative: opaque directories and whiteouts of the layer itself are
    /// not taken into account, so a [`Settled::Reapply`] may occasionally be
    /// needless (it costs an application with the lower layers); a
    /// [`Settled::Complete`] never is wrong. Costs one lookup per directory the
    /// layer writes through and per lower layer, stopping below directories
    /// the lower layers do not have. `target` is changed only for
    /// [`Settled::Complete`].
    pub fn settle(&self, target: &Path, lower_layers: &[PathBuf]) -> Result<Settled, ApplyError> {
        if let Some((member, target)) = self.missing_links.first() {
            return Ok(Settled::Reapply(LowerDependency::HardLink {
                member: member.clone(),
                target: target.clone(),
            }));
        }
        if lower_layers.is_empty() || self.dirs.is_empty() {
            return Ok(Settled::Complete { directories: 0 });
        }
        let lowers = Lowers::open(lower_layers).map_err(|(path, source)| ApplyError::Target {
            op: "open the lower layer",
            path,
            source,
        })?;
        let lookup = |source| ApplyError::Target {
            op: "look up a directory in the lower layers",
            path: lower_layers[lower_layers.len() - 1].clone(),
            source,
        };
        let mut nodes: Vec<&[u8]> = Vec::new();
        for dir in &self.dirs {
            let mut end = 0;
            for comp in dir.split(|&b| b == b'/') {
                end += comp.len();
                nodes.push(&dir[..end]);
                end += 1;
            }
        }
        // Shorter paths first, so a parent is settled before its children.
        nodes.sort_by(|a, b| a.len().cmp(&b.len()).then(a.cmp(b)));
        nodes.dedup();
        let implicit: HashSet<&[u8]> = self.implicit.iter().map(Vec::as_slice).collect();
        let named_later: HashSet<&[u8]> = self.named_later.iter().map(Vec::as_slice).collect();
        // Whether the lower layers have a directory at the path.
        let mut below: HashMap<&[u8], bool> = HashMap::new();
        let mut covered = Vec::new();
        for node in nodes {
            let parent = node
                .iter()
                .rposition(|&b| b == b'/')
                .map_or(&node[..0], |i| &node[..i]);
            if !parent.is_empty() && !below.get(parent).copied().unwrap_or(false) {
                below.insert(node, false);
                continue;
            }
            let found = lowers.find(node).map_err(lookup)?;
            let lower_dir = match found {
                None => None,
                Some(f) => match f.st.st_mode & libc::S_IFMT {
                    libc::S_IFLNK => {
                        return Ok(Settled::Reapply(LowerDependency::Symlink {
                            path: display(node),
                        }));
                    }
                    libc::S_IFDIR => Some(f),
                    _ => None,
                },
            };
            below.insert(node, lower_dir.is_some());
            match lower_dir {
                Some(_) if named_later.contains(node) => {
                    return Ok(Settled::Reapply(LowerDependency::Directory {
                        path: display(node),
                    }));
                }
                Some(f) if implicit.contains(node) => covered.push((node, f)),
                _ => {}
            }
        }
        let root = open_target(target)?;
        let directories = covered.len();
        for (path, lower) in covered {
            let member = display(path);
            let fs_err = |op| {
                let member = member.clone();
                move |source| ApplyError::Fs { member, op, source }
            };
            let src = sys::openat(
                lower.dir.as_fd(),
                &lower.name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(fs_err("open the lower directory"))?;
            let c = sys::cstr(path).map_err(fs_err("name"))?;
            // The layer's own directory, made by the application that recorded
            // the footprint: no symlink may be on the way.
            let dst = match sys::openat2(
                root.as_fd(),
                &c,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
                sys::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
            ) {
                Ok(fd) => fd,
                // Replaced later in the layer by something else.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {
                    continue;
                }
                Err(e) => return Err(fs_err("open the implicit directory")(e)),
            };
            crate::fsutil::copy_meta_fd(src.as_fd(), dst.as_fd(), &lower.st)
                .map_err(fs_err("copy a lower directory's metadata"))?;
        }
        Ok(Settled::Complete { directories })
    }
}

/// The footprint under construction, while a layer is applied.
#[derive(Default)]
pub(super) struct Recorder {
    dirs: HashSet<Vec<u8>>,
    last: Vec<u8>,
    implicit: HashSet<Vec<u8>>,
    named_later: HashSet<Vec<u8>>,
    missing_links: Vec<(String, String)>,
}

impl Recorder {
    pub(super) fn new(opts: &ApplyOptions) -> Option<Recorder> {
        opts.footprint.then(Recorder::default)
    }

    /// A member's parent, resolved; `made` are the directories created for it.
    pub(super) fn parent(&mut self, resolved: &[u8], made: &[Vec<u8>]) {
        self.implicit.extend(made.iter().cloned());
        // Members come grouped by directory: most repeat the last parent.
        if resolved.is_empty() || resolved == self.last.as_slice() {
            return;
        }
        self.last = resolved.to_vec();
        if !self.dirs.contains(resolved) {
            self.dirs.insert(resolved.to_vec());
        }
    }

    /// A directory member.
    pub(super) fn directory(&mut self, path: &[u8]) {
        if self.implicit.contains(path) {
            self.named_later.insert(path.to_vec());
        }
    }

    pub(super) fn missing_link(&mut self, member: &str, target: &[u8]) {
        self.missing_links
            .push((member.to_owned(), display(target)));
    }

    pub(super) fn finish(self) -> Footprint {
        let mut dirs: Vec<Vec<u8>> = self.dirs.into_iter().collect();
        dirs.sort();
        let mut implicit: Vec<Vec<u8>> = self.implicit.into_iter().collect();
        implicit.sort();
        let mut named_later: Vec<Vec<u8>> = self.named_later.into_iter().collect();
        named_later.sort();
        Footprint {
            dirs,
            implicit,
            named_later,
            missing_links: self.missing_links,
        }
    }
}
