//! File copying shared by the copy snapshotter and overlay-mode copy-up:
//! content (reflinked where possible), owner, mode, xattrs and times, never
//! following symlinks.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::sys;

/// Recreate the non-directory `name` of `src` (whose lstat is `st`) as
/// `dst_name` in `dst`, which must not exist.
pub(crate) fn copy_entry(
    src: BorrowedFd<'_>,
    name: &CStr,
    st: &libc::stat,
    dst: BorrowedFd<'_>,
    dst_name: &CStr,
) -> io::Result<()> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            let src_f = File::from(sys::openat(
                src,
                name,
                libc::O_RDONLY | libc::O_NOFOLLOW,
                0,
            )?);
            let dst_f = File::from(sys::openat(
                dst,
                dst_name,
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                0o600,
            )?);
            clone_or_copy(&src_f, &dst_f)?;
            copy_meta_fd(src_f.as_fd(), dst_f.as_fd(), st)
        }
        libc::S_IFLNK => {
            let target = readlinkat(src, name)?;
            sys::symlinkat(&target, dst, dst_name)?;
            sys::lchownat(dst, dst_name, st.st_uid, st.st_gid)?;
            sys::lutimensat(dst, dst_name, &times(st))
        }
        libc::S_IFDIR => Err(io::Error::from_raw_os_error(libc::EISDIR)),
        _ => {
            sys::mknodat(dst, dst_name, st.st_mode, st.st_rdev)?;
            sys::lchownat(dst, dst_name, st.st_uid, st.st_gid)?;
            sys::lchmodat(dst, dst_name, st.st_mode & 0o7777)?;
            sys::lutimensat(dst, dst_name, &times(st))
        }
    }
}

pub(crate) fn times(st: &libc::stat) -> [libc::timespec; 2] {
    [
        sys::timespec(st.st_atime, st.st_atime_nsec as u32),
        sys::timespec(st.st_mtime, st.st_mtime_nsec as u32),
    ]
}

/// Whether the directory `dir` is opaque in overlay form: one of the opaque xattrs, or the
/// `.wh..wh..opq` file fuse-overlayfs also leaves.
pub(crate) fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    opaque_xattr(dir) || has_fuse_opaque_file(dir)
}

/// Whether the directory `dir` holds fuse-overlayfs' `.wh..wh..opq` file. (An `O_PATH`
/// descriptor serves as well: only its name is looked up.)
pub(crate) fn has_fuse_opaque_file(dir: BorrowedFd<'_>) -> bool {
    sys::lstatat(dir, crate::overlay_xattr::FUSE_OPAQUE_FILE)
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

fn opaque_xattr(dir: BorrowedFd<'_>) -> bool {
    crate::overlay_xattr::opaque_names().iter().any(|name| {
        let mut buf = [0u8; 2];
        // SAFETY: buffer pointer and length are valid.
        let n = unsafe {
            libc::fgetxattr(
                dir.as_raw_fd(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        n == 1 && buf[0] == b'y'
    })
}

/// FICLONE (a reflink: shared extents) where the filesystem can, a copy
/// (`copy_file_range` under `std::io::copy`) otherwise.
pub(crate) fn clone_or_copy(src: &File, dst: &File) -> io::Result<()> {
    // SAFETY: FICLONE takes the source fd as its argument.
    let r = unsafe { libc::ioctl(dst.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) };
    if r == 0 {
        return Ok(());
    }
    let (mut s, mut d) = (src, dst);
    io::copy(&mut s, &mut d).map(drop)
}

/// Owner, mode, xattrs (not overlayfs' own) and times, in that order
/// (chown clears setuid and file capabilities).
pub(crate) fn copy_meta_fd(
    src: BorrowedFd<'_>,
    dst: BorrowedFd<'_>,
    st: &libc::stat,
) -> io::Result<()> {
    sys::fchown(dst, st.st_uid, st.st_gid)?;
    sys::fchmod(dst, st.st_mode & 0o7777)?;
    for (k, v) in list_xattrs(src)? {
        if k.to_bytes().starts_with(b"trusted.overlay.") {
            continue;
        }
        sys::fsetxattr(dst, &k, &v)?;
    }
    sys::futimens(dst, &times(st))
}

pub(crate) fn list_xattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<(CString, Vec<u8>)>> {
    let mut names = vec![0u8; 4096];
    let n = loop {
        // SAFETY: buffer pointer and length are valid.
        let n = unsafe { libc::flistxattr(fd.as_raw_fd(), names.as_mut_ptr().cast(), names.len()) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ERANGE) => names.resize(names.len() * 4, 0),
            Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
            _ => return Err(e),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let cname = sys::cstr(name)?;
        let mut value = vec![0u8; 256];
        loop {
            // SAFETY: buffer pointer and length are valid.
            let m = unsafe {
                libc::fgetxattr(
                    fd.as_raw_fd(),
                    cname.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            if m >= 0 {
                value.truncate(m as usize);
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) && value.len() < 1 << 17 {
                value.resize(value.len() * 4, 0);
            } else {
                return Err(e);
            }
        }
        out.push((cname, value));
    }
    Ok(out)
}

pub(crate) fn readlinkat(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<CString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
    // SAFETY: buffer pointer and length are valid.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    sys::cstr(&buf)
}
