//! Creating each kind of entry, never following a symlink in the last
//! component, and giving it its owner, mode, xattrs and times (chown before
//! chmod, xattrs last: both chown and writes clear what comes after).

use super::*;

impl Applier<'_> {
    /// Make room for a new entry `name` in `dir`, a directory when `for_dir`:
    /// remove what is there (unless [`ApplyOptions::no_overwrite_dir_non_dir`]
    /// forbids replacing a directory by a non-directory or the reverse).
    pub(super) fn clear(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        member: &str,
        for_dir: bool,
    ) -> Result<(), ApplyError> {
        if self.opts.no_overwrite_dir_non_dir {
            let existing_dir = sys::lstatat(dir, name).is_ok_and(|st| sys::is_dir(&st));
            if existing_dir != for_dir {
                let reason = match for_dir {
                    true => "cannot overwrite a non-directory with a directory",
                    false => "cannot overwrite a directory with a non-directory",
                };
                return Err(ApplyError::InvalidMember {
                    member: member.to_owned(),
                    reason: reason.to_owned(),
                });
            }
        }
        self.resolved.clear();
        self.root
            .remove_all(dir, name)
            .map(drop)
            .map_err(|e| ApplyError::Fs {
                member: member.to_owned(),
                op: "replace the existing entry",
                source: e,
            })
    }

    /// Whether a new entry in `dir` needs chown to get `meta`'s owner.
    pub(super) fn needs_chown(&self, dir: &Dir, meta: &Meta) -> bool {
        if !self.opts.preserve_ownership {
            return false;
        }
        let gid = if dir.setgid { dir.gid } else { self.root.egid };
        meta.uid != self.root.euid || meta.gid != gid
    }

    /// Whether a new entry created with `mode & 0o777` (under the umask)
    /// needs chmod to get `mode`.
    pub(super) fn needs_chmod(&self, dir: &Dir, mode: u32, is_dir: bool) -> bool {
        mode & 0o7000 != 0 || mode & self.umask != 0 || (is_dir && dir.setgid)
    }

    pub(super) fn set_xattrs_fd(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        member: &str,
    ) -> Result<(), ApplyError> {
        for (key, value) in &meta.xattrs {
            if skip_xattr(key) {
                continue;
            }
            match sys::fsetxattr(fd, key, value) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    tracing::warn!(member, xattr = ?key, "filesystem does not support this xattr; skipped");
                }
                Err(e) => return Err(Self::fs_err(member, "set an xattr")(e)),
            }
        }
        Ok(())
    }

    pub(super) fn set_xattrs_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        member: &str,
    ) -> Result<(), ApplyError> {
        for (key, value) in &meta.xattrs {
            if skip_xattr(key) {
                continue;
            }
            match sys::lsetxattrat(dir, name, key, value) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) => {
                    tracing::warn!(member, xattr = ?key, "cannot set this xattr here; skipped");
                }
                // Linux allows user.* xattrs only on files and directories;
                // like docker, skip them on links, devices and FIFOs.
                Err(e)
                    if e.raw_os_error() == Some(libc::EPERM)
                        && key.to_bytes().starts_with(b"user.") =>
                {
                    tracing::warn!(member, xattr = ?key, "user xattrs are not allowed on this kind of file; skipped");
                }
                Err(e) => return Err(Self::fs_err(member, "set an xattr")(e)),
            }
        }
        Ok(())
    }

    pub(super) fn root_dir(&mut self, meta: &Meta, member: &str) -> Result<(), ApplyError> {
        self.stats.dirs += 1;
        let fd = self.root.fd();
        if self.opts.preserve_ownership {
            sys::fchown(fd, meta.uid, meta.gid).map_err(Self::fs_err(member, "chown"))?;
        }
        sys::fchmod(fd, meta.mode).map_err(Self::fs_err(member, "chmod"))?;
        self.set_xattrs_fd(fd, meta, member)?;
        self.dir_times.push((Vec::new(), [meta.atime, meta.mtime]));
        Ok(())
    }

    pub(super) fn directory(
        &mut self,
        path: &[u8],
        meta: &Meta,
        member: &str,
    ) -> Result<(), ApplyError> {
        self.stats.dirs += 1;
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let full = join(&rparent, name);
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        let mut fresh = true;
        match sys::mkdirat(parent.fd(), &cname, meta.mode & 0o777) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let st = sys::lstatat(parent.fd(), &cname).map_err(Self::fs_err(member, "stat"))?;
                if sys::is_dir(&st) {
                    fresh = false;
                } else {
                    self.clear(parent.fd(), &cname, member, true)?;
                    sys::mkdirat(parent.fd(), &cname, meta.mode & 0o777)
                        .map_err(Self::fs_err(member, "create the directory"))?;
                }
            }
            Err(e) => return Err(Self::fs_err(member, "create the directory")(e)),
        }
        let fd = sys::openat(
            parent.fd(),
            &cname,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(Self::fs_err(member, "open the directory"))?;
        if self.opts.preserve_ownership && (!fresh || self.needs_chown(&parent, meta)) {
            sys::fchown(fd.as_fd(), meta.uid, meta.gid).map_err(Self::fs_err(member, "chown"))?;
        }
        if !fresh || self.needs_chown(&parent, meta) || self.needs_chmod(&parent, meta.mode, true) {
            sys::fchmod(fd.as_fd(), meta.mode).map_err(Self::fs_err(member, "chmod"))?;
        }
        self.set_xattrs_fd(fd.as_fd(), meta, member)?;
        if self.opts.mode == ApplyMode::Overlay && self.whiteouts.contains(&full) {
            // This layer whited out a lower `path` and then made a directory
            // there: the lower directory's contents must stay hidden.
            sys::fsetxattr(fd.as_fd(), &overlay_opaque(), b"y")
                .map_err(Self::fs_err(member, "mark the directory opaque"))?;
        }
        let setgid = meta.mode & libc::S_ISGID != 0;
        let gid = if self.opts.preserve_ownership {
            meta.gid
        } else {
            self.root.egid
        };
        if fresh && self.lowers.is_some() {
            // A directory here may cover a lower symlink: resolutions change.
            self.resolved.clear();
        }
        if let Some(f) = &mut self.footprint {
            f.directory(&full);
        }
        self.root.remember(&full, Rc::new(Dir { fd, setgid, gid }));
        self.mark(&full);
        self.dir_times.push((full, [meta.atime, meta.mtime]));
        Ok(())
    }

    pub(super) fn file<R: Read>(
        &mut self,
        path: &[u8],
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
        member: &str,
        gnu_sparse: bool,
    ) -> Result<(), ApplyError> {
        self.stats.files += 1;
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd = match sys::openat(parent.fd(), &cname, flags, meta.mode & 0o777) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.clear(parent.fd(), &cname, member, false)?;
                sys::openat(parent.fd(), &cname, flags, meta.mode & 0o777)
                    .map_err(Self::fs_err(member, "create the file"))?
            }
            Err(e) => return Err(Self::fs_err(member, "create the file")(e)),
        };
        let mut file = File::from(fd);
        let size = entry.size();
        let written = if let Some(sparse) = &meta.pax_sparse {
            self.write_pax_sparse(&mut file, entry, sparse, member)?
        } else if gnu_sparse {
            self.write_holey(&mut file, entry, size, member)?
        } else {
            self.write_plain(&mut file, entry, size, member)?
        };
        self.stats.file_bytes += written;
        let fd = file.as_fd();
        let chown = self.needs_chown(&parent, meta);
        if chown {
            sys::fchown(fd, meta.uid, meta.gid).map_err(Self::fs_err(member, "chown"))?;
        }
        // After chown, which clears setuid and setgid.
        if chown || self.needs_chmod(&parent, meta.mode, false) {
            sys::fchmod(fd, meta.mode).map_err(Self::fs_err(member, "chmod"))?;
        }
        // After the last write and chown, which clear security.capability.
        self.set_xattrs_fd(fd, meta, member)?;
        sys::futimens(fd, &[meta.atime, meta.mtime]).map_err(Self::fs_err(member, "set times"))?;
        self.mark(&join(&rparent, name));
        Ok(())
    }

    pub(super) fn hardlink(
        &mut self,
        path: &[u8],
        target: &[u8],
        member: &str,
    ) -> Result<(), ApplyError> {
        self.stats.hardlinks += 1;
        let target_path = meta::normalize(target).map_err(|reason| ApplyError::Escape {
            member: member.to_owned(),
            reason: format!("hard link target `{}`: {reason}", display(target)),
        })?;
        if target_path.is_empty() {
            return Err(ApplyError::InvalidMember {
                member: member.to_owned(),
                reason: "hard link to the root directory".to_owned(),
            });
        }
        let link_err = |source: io::Error| ApplyError::LinkTarget {
            member: member.to_owned(),
            target: display(target),
            source,
        };
        let (tparent, tname) = meta::split(&target_path);
        let tparent = self.resolve(tparent, member)?;
        let tparent = tparent.as_slice();
        let mut target_path = tparent.to_vec();
        if !target_path.is_empty() {
            target_path.push(b'/');
        }
        target_path.extend_from_slice(tname);
        let mut tdir = self
            .root
            .existing_dir(tparent)
            .map_err(Self::fs_err(member, "open the link target's directory"))?;
        let ctname = sys::cstr(tname).map_err(Self::fs_err(member, "name"))?;
        let mut present = match &tdir {
            Some(d) => sys::lstatat(d.fd(), &ctname).is_ok(),
            None => false,
        };
        if !present && self.copy_up(&target_path, member)? {
            tdir = self
                .root
                .existing_dir(tparent)
                .map_err(Self::fs_err(member, "open the link target's directory"))?;
            present = true;
        }
        if !present && let Some(f) = &mut self.footprint {
            // Applied without its lower layers: the target may be a lower
            // file, which only applying with them can tell.
            f.missing_link(member, target);
            return Ok(());
        }
        let tdir = tdir.ok_or_else(|| link_err(io::Error::from_raw_os_error(libc::ENOENT)))?;
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        match sys::linkat(tdir.fd(), &ctname, parent.fd(), &cname) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let a = sys::lstatat(tdir.fd(), &ctname).map_err(link_err)?;
                let b = sys::lstatat(parent.fd(), &cname).map_err(Self::fs_err(member, "stat"))?;
                if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
                    self.clear(parent.fd(), &cname, member, false)?;
                    sys::linkat(tdir.fd(), &ctname, parent.fd(), &cname)
                        .map_err(Self::fs_err(member, "create the hard link"))?;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(link_err(e)),
            Err(e) => return Err(Self::fs_err(member, "create the hard link")(e)),
        }
        self.mark(&join(&rparent, name));
        Ok(())
    }

    pub(super) fn symlink(
        &mut self,
        path: &[u8],
        target: &[u8],
        meta: &Meta,
        member: &str,
    ) -> Result<(), ApplyError> {
        self.stats.symlinks += 1;
        self.resolved.clear();
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        let ctarget = sys::cstr(target).map_err(Self::fs_err(member, "symlink target"))?;
        match sys::symlinkat(&ctarget, parent.fd(), &cname) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.clear(parent.fd(), &cname, member, false)?;
                sys::symlinkat(&ctarget, parent.fd(), &cname)
                    .map_err(Self::fs_err(member, "create the symlink"))?;
            }
            Err(e) => return Err(Self::fs_err(member, "create the symlink")(e)),
        }
        self.finish_at(&parent, &cname, meta, member, false)?;
        self.mark(&join(&rparent, name));
        Ok(())
    }

    pub(super) fn special(
        &mut self,
        path: &[u8],
        fmt: libc::mode_t,
        dev: libc::dev_t,
        meta: &Meta,
        member: &str,
    ) -> Result<(), ApplyError> {
        self.stats.special += 1;
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        let mode = fmt | (meta.mode & 0o777);
        match sys::mknodat(parent.fd(), &cname, mode, dev) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.clear(parent.fd(), &cname, member, false)?;
                sys::mknodat(parent.fd(), &cname, mode, dev)
                    .map_err(Self::fs_err(member, "create the device node"))?;
            }
            Err(e) => return Err(Self::fs_err(member, "create the device node")(e)),
        }
        self.finish_at(&parent, &cname, meta, member, true)?;
        self.mark(&join(&rparent, name));
        Ok(())
    }

    /// Owner, mode, xattrs and times of a just-created non-regular,
    /// non-directory entry, by name and never through a symlink.
    pub(super) fn finish_at(
        &self,
        parent: &Dir,
        name: &CStr,
        meta: &Meta,
        member: &str,
        chmod: bool,
    ) -> Result<(), ApplyError> {
        let chown = self.needs_chown(parent, meta);
        if chown {
            sys::lchownat(parent.fd(), name, meta.uid, meta.gid)
                .map_err(Self::fs_err(member, "chown"))?;
        }
        if chmod && (chown || self.needs_chmod(parent, meta.mode, false)) {
            sys::lchmodat(parent.fd(), name, meta.mode).map_err(Self::fs_err(member, "chmod"))?;
        }
        self.set_xattrs_at(parent.fd(), name, meta, member)?;
        sys::lutimensat(parent.fd(), name, &[meta.atime, meta.mtime])
            .map_err(Self::fs_err(member, "set times"))?;
        Ok(())
    }
}
