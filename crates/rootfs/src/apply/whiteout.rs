//! Whiteouts and opaque markers: overlayfs form in overlay mode, deletion
//! of lower entries in flatten mode.

use super::*;

impl Applier<'_> {
    pub(super) fn whiteout(&mut self, hidden: &[u8], member: &str) -> Result<(), ApplyError> {
        let (parent_path, name) = meta::split(hidden);
        let rparent = self.resolve(parent_path, member)?;
        let hidden = join(&rparent, name);
        self.resolved.clear();
        let own = self.layer_paths.contains(&hidden);
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        match self.opts.mode {
            ApplyMode::Overlay => {
                let (parent, _) = self.parent(&rparent, member)?;
                if own {
                    // The layer's own entry stays; if it is a directory, the
                    // lower one's contents must not show through it.
                    if let Ok(fd) = sys::openat(
                        parent.fd(),
                        &cname,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    ) {
                        sys::fsetxattr(fd.as_fd(), &overlay_opaque(), b"y")
                            .map_err(Self::fs_err(member, "mark the directory opaque"))?;
                    }
                    return Ok(());
                }
                match sys::mknodat(parent.fd(), &cname, libc::S_IFCHR, 0) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        self.clear(parent.fd(), &cname, member, false)?;
                        sys::mknodat(parent.fd(), &cname, libc::S_IFCHR, 0)
                            .map_err(Self::fs_err(member, "create the whiteout device"))?;
                    }
                    Err(e) => return Err(Self::fs_err(member, "create the whiteout device")(e)),
                }
                if self.root.euid != 0 || self.root.egid != 0 {
                    sys::lchownat(parent.fd(), &cname, 0, 0)
                        .map_err(Self::fs_err(member, "chown the whiteout device"))?;
                }
                self.whiteouts.insert(hidden);
                Ok(())
            }
            ApplyMode::Flatten => {
                let Some(parent) = self
                    .root
                    .existing_dir(&rparent)
                    .map_err(Self::fs_err(member, "open the whiteout's directory"))?
                else {
                    return Ok(());
                };
                self.remove_lower(parent.fd(), &cname, &hidden, member)
            }
        }
    }

    pub(super) fn opaque(&mut self, dir_path: &[u8], member: &str) -> Result<(), ApplyError> {
        let dir_path = self.resolve(dir_path, member)?;
        self.resolved.clear();
        match self.opts.mode {
            ApplyMode::Overlay => {
                let (dir, _) = self.parent(&dir_path, member)?;
                // Re-open for a descriptor fsetxattr accepts (cached ones are O_PATH).
                let fd = sys::openat(dir.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(Self::fs_err(member, "open the opaque directory"))?;
                sys::fsetxattr(fd.as_fd(), &overlay_opaque(), b"y")
                    .map_err(Self::fs_err(member, "mark the directory opaque"))?;
                self.mark(&dir_path);
                Ok(())
            }
            ApplyMode::Flatten => {
                let Some(dir) = self
                    .root
                    .existing_dir(&dir_path)
                    .map_err(Self::fs_err(member, "open the opaque directory"))?
                else {
                    return Ok(());
                };
                let dir_fd = sys::openat(dir.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(Self::fs_err(member, "open the opaque directory"))?;
                self.remove_lower_children(dir_fd.as_fd(), &dir_path, member)
            }
        }
    }

    /// Flatten mode: delete `path` unless this layer made it; if this layer
    /// made it and it is a directory, delete the lower entries inside it.
    pub(super) fn remove_lower(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        member: &str,
    ) -> Result<(), ApplyError> {
        if !self.layer_paths.contains(path) {
            self.root
                .remove_all(parent, name)
                .map_err(Self::fs_err(member, "remove the whited-out entry"))?;
            return Ok(());
        }
        let Ok(sub) = sys::openat(
            parent,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) else {
            return Ok(());
        };
        self.remove_lower_children(sub.as_fd(), path, member)
    }

    pub(super) fn remove_lower_children(
        &mut self,
        dir: BorrowedFd<'_>,
        dir_path: &[u8],
        member: &str,
    ) -> Result<(), ApplyError> {
        let names = sys::read_dir_names(dir).map_err(Self::fs_err(member, "list the directory"))?;
        for name in names {
            let mut child = dir_path.to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name.to_bytes());
            self.remove_lower(dir, &name, &child, member)?;
        }
        Ok(())
    }
}
