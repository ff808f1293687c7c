//! Where a member's parent really is: symlinks on the way (this layer's,
//! or a lower layer's in overlay mode with lower layers) resolved inside the
//! root, missing directories made, lower files copied up for hard links.

use super::*;

impl Applier<'_> {
    /// The parent directory of a member, created (0755) when missing.
    /// Returns the directory and its resolved path (see [`Applier::resolve`]).
    pub(super) fn parent(
        &mut self,
        parent: &[u8],
        member: &str,
    ) -> Result<(Rc<Dir>, Vec<u8>), ApplyError> {
        let resolved = self.resolve(parent, member)?;
        let parent = resolved.as_slice();
        let mut made = Vec::new();
        let dir = self
            .root
            .dir(parent, true, &mut |p| made.push(p.to_vec()))
            .map_err(|e| ApplyError::Fs {
                member: member.to_owned(),
                op: "open the parent directory",
                source: e,
            })?;
        if let Some(f) = &mut self.footprint {
            f.parent(parent, &made);
        }
        for p in made {
            self.mark(&p);
            self.lower_dir_meta(&p, member)?;
        }
        Ok((dir, resolved))
    }

    /// The path `path` (a member's parent) really names: every symlink on
    /// the way, of this layer or (overlay mode with lower layers) of a lower
    /// one, replaced by its target, `..` stopping at the root — what the
    /// kernel's `RESOLVE_IN_ROOT` walk finds, or applying onto the mounted
    /// overlay would. Whiteouts, opaque markers and the layer's own paths are
    /// compared on resolved paths, so a member written through a symlink
    /// counts where it landed.
    pub(super) fn resolve(&mut self, path: &[u8], member: &str) -> Result<Vec<u8>, ApplyError> {
        if path.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(r) = self.resolved.get(path) {
            return Ok(r.clone());
        }
        // Start from the longest prefix resolved before (iteratively: names
        // may be thousands of components deep).
        let ends: Vec<usize> = path
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'/')
            .map(|(i, _)| i)
            .chain(std::iter::once(path.len()))
            .collect();
        let mut base = Vec::new();
        let mut next = 0;
        for (i, &end) in ends.iter().enumerate().rev() {
            if let Some(r) = self.resolved.get(&path[..end]) {
                base = r.clone();
                next = i + 1;
                break;
            }
        }
        for (i, &end) in ends.iter().enumerate().skip(next) {
            let start = if i == 0 { 0 } else { ends[i - 1] + 1 };
            let candidate = join(&base, &path[start..end]);
            base = match self.merged_symlink(&candidate, member)? {
                None => candidate,
                Some(target) => {
                    let from = if target.starts_with(b"/") {
                        target
                    } else {
                        join(&base, &target)
                    };
                    self.resolve_slow(&from, member)?
                }
            };
            if self.resolved.len() >= 4096 {
                self.resolved.clear();
            }
            self.resolved.insert(path[..end].to_vec(), base.clone());
        }
        Ok(base)
    }

    /// Component by component, following every symlink (at most 40).
    pub(super) fn resolve_slow(
        &mut self,
        path: &[u8],
        member: &str,
    ) -> Result<Vec<u8>, ApplyError> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut todo: std::collections::VecDeque<Vec<u8>> =
            path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut followed = 1;
        while let Some(comp) = todo.pop_front() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    out.pop();
                    continue;
                }
                _ => {}
            }
            out.push(comp);
            let candidate = out.join(&b'/');
            if let Some(target) = self.merged_symlink(&candidate, member)? {
                followed += 1;
                if followed > 40 {
                    return Err(ApplyError::Fs {
                        member: member.to_owned(),
                        op: "resolve the parent directory",
                        source: io::Error::from_raw_os_error(libc::ELOOP),
                    });
                }
                out.pop();
                if target.starts_with(b"/") {
                    out.clear();
                }
                for (i, c) in target.split(|&b| b == b'/').enumerate() {
                    todo.insert(i, c.to_vec());
                }
            }
        }
        Ok(out.join(&b'/'))
    }

    /// The target of `path` in the merged view when it is a symlink there
    /// (its prefix is known to hold no symlink).
    pub(super) fn merged_symlink(
        &self,
        path: &[u8],
        member: &str,
    ) -> Result<Option<Vec<u8>>, ApplyError> {
        let err = Self::fs_err(member, "resolve the parent directory");
        let c = sys::cstr(path).map_err(Self::fs_err(member, "name"))?;
        // This layer first.
        match sys::openat2(
            self.root.fd(),
            &c,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            sys::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
        ) {
            Ok(fd) => {
                let st = sys::fstat(fd.as_fd_ref()).map_err(err)?;
                return match st.st_mode & libc::S_IFMT {
                    libc::S_IFLNK => Ok(Some(
                        crate::fsutil::readlinkat(fd.as_fd(), c"")
                            .map_err(Self::fs_err(member, "read a symlink"))?
                            .into_bytes(),
                    )),
                    // Anything else here (a whiteout included) hides the lower layers.
                    _ => Ok(None),
                };
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                return Ok(None);
            }
            Err(e) => return Err(err(e)),
        }
        if self.lowers.is_none() || self.layer_hides_lower(path) {
            return Ok(None);
        }
        let Some(found) = self.find_lower(path, member)? else {
            return Ok(None);
        };
        if found.st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Ok(None);
        }
        crate::fsutil::readlinkat(found.dir.as_fd(), &found.name)
            .map(|t| Some(t.into_bytes()))
            .map_err(Self::fs_err(member, "read a lower symlink"))
    }

    /// Whether this layer makes the lower layers' `path` invisible: an
    /// ancestor of it here is opaque, or not a directory.
    pub(super) fn layer_hides_lower(&self, path: &[u8]) -> bool {
        let mut end = 0;
        let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        for comp in &comps[..comps.len() - 1] {
            end += comp.len();
            let prefix = &path[..end];
            end += 1;
            let Ok(c) = sys::cstr(prefix) else {
                return true;
            };
            match sys::openat2(
                self.root.fd(),
                &c,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
                sys::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
            ) {
                Ok(fd) => {
                    if crate::fsutil::is_opaque(fd.as_fd()) {
                        return true;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return false,
                Err(_) => return true,
            }
        }
        false
    }

    /// Overlay mode with lower layers: give the implicitly created directory
    /// `path` the metadata of the lower directory it covers.
    pub(super) fn lower_dir_meta(&mut self, path: &[u8], member: &str) -> Result<(), ApplyError> {
        let err = Self::fs_err(member, "copy a lower directory's metadata");
        let Some(found) = self.find_lower(path, member)? else {
            return Ok(());
        };
        if !sys::is_dir(&found.st) {
            return Ok(());
        }
        let src = sys::openat(
            found.dir.as_fd(),
            &found.name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(err)?;
        let Some(dir) = self
            .root
            .existing_dir(path)
            .map_err(Self::fs_err(member, "open"))?
        else {
            return Ok(());
        };
        let dst = sys::openat(dir.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(Self::fs_err(member, "open"))?;
        crate::fsutil::copy_meta_fd(src.as_fd(), dst.as_fd(), &found.st)
            .map_err(Self::fs_err(member, "copy a lower directory's metadata"))?;
        self.dir_times
            .push((path.to_vec(), crate::fsutil::times(&found.st)));
        Ok(())
    }

    pub(super) fn find_lower(
        &self,
        path: &[u8],
        member: &str,
    ) -> Result<Option<lower::Found>, ApplyError> {
        match &self.lowers {
            Some(l) => l
                .find(path)
                .map_err(Self::fs_err(member, "look up the lower layers")),
            None => Ok(None),
        }
    }

    /// Overlay mode with lower layers: copy the lower non-directory at
    /// `path` into this layer (as overlayfs' copy-up would). Returns
    /// whether there was one.
    pub(super) fn copy_up(&mut self, path: &[u8], member: &str) -> Result<bool, ApplyError> {
        let Some(found) = self.find_lower(path, member)? else {
            return Ok(false);
        };
        if sys::is_dir(&found.st) {
            return Ok(false);
        }
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        crate::fsutil::copy_entry(
            found.dir.as_fd(),
            &found.name,
            &found.st,
            parent.fd(),
            &cname,
        )
        .map_err(Self::fs_err(member, "copy up the hard link target"))?;
        self.mark(&join(&rparent, name));
        Ok(true)
    }
}
