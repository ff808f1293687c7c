//! Carrying out the plan's `/dev` entries: device nodes made in their directory resolved
//! inside the root, and docker's symlinks.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sys::stat::{FchmodatFlags, Mode, makedev, mknodat};
use nix::unistd::UnlinkatFlags;

use super::super::{ChildError, io, sys};
use super::plan::{DeviceNode, MakeNode};
use crate::in_root::{Leaf, Root, fd_path};

/// Makes `node` inside the root: `mknod` in its resolved parent directory, or a bind mount
/// of the host's node where the plan says so or the kernel refuses `mknod`.
pub(super) fn make_node(root: &Root, node: &DeviceNode) -> Result<(), ChildError> {
    let path = &node.path;
    let ctx = |what: &str| format!("{what} device {}", path.display());
    // The plan checked that the path has a name.
    let name = path.file_name().unwrap_or_default();
    let dir = open_dir(root, path.parent().unwrap_or(Path::new("/")))
        .map_err(|e| wrap(e, &ctx("creating the directory of")))?;
    // A file the image put there is replaced; a directory is not (unlinkat fails on it).
    let _ = nix::unistd::unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir);
    if node.how == MakeNode::Bind {
        return bind_host_node(root, path);
    }
    let mode = Mode::from_bits_truncate(node.mode);
    match mknodat(&dir, name, node.kind, mode, makedev(node.major, node.minor)) {
        Ok(()) => {}
        Err(nix::Error::EPERM) => return bind_host_node(root, path),
        Err(e) => return Err(sys(ctx("mknod"))(e)),
    }
    // The umask took bits off the node's mode.
    nix::sys::stat::fchmodat(&dir, name, mode, FchmodatFlags::NoFollowSymlink)
        .or_else(|e| {
            // Older kernels refuse AT_SYMLINK_NOFOLLOW for chmod; the node was just made by
            // us in a directory we resolved, so following is harmless there.
            if e == nix::Error::EOPNOTSUPP || e == nix::Error::ENOTSUP {
                nix::sys::stat::fchmodat(&dir, name, mode, FchmodatFlags::FollowSymlink)
            } else {
                Err(e)
            }
        })
        .map_err(sys(ctx("chmod")))?;
    if node.uid.is_some() || node.gid.is_some() {
        nix::unistd::fchownat(
            &dir,
            name,
            node.uid.map(nix::unistd::Uid::from_raw),
            node.gid.map(nix::unistd::Gid::from_raw),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(sys(ctx("chown")))?;
    }
    Ok(())
}

/// runc's answer where `mknod` is not allowed: the host's node, bind-mounted onto an empty
/// file at the same path inside the root.
fn bind_host_node(root: &Root, path: &Path) -> Result<(), ChildError> {
    let ctx = |what: &str| format!("{what} device {}", path.display());
    let at = root
        .create(path, Leaf::File)
        .map_err(io(ctx("creating the mount point of")))?;
    mount(
        Some(path),
        &fd_path(at.fd.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(sys(ctx("bind-mounting")))
}

/// `/dev/<link>` → `target`, replacing what the image had there.
pub(super) fn symlink(root: &Root, target: &str, link: &str) -> Result<(), ChildError> {
    let dev =
        open_dir(root, Path::new("/dev")).map_err(|e| wrap(e, "opening /dev in the rootfs"))?;
    let _ = nix::unistd::unlinkat(&dev, link, UnlinkatFlags::NoRemoveDir);
    nix::unistd::symlinkat(target, &dev, link).map_err(sys(format!("symlink /dev/{link}")))
}

/// Why opening a directory inside the root failed.
enum OpenDirError {
    Resolve(std::io::Error),
    Open(nix::Error),
}

fn wrap(e: OpenDirError, what: &str) -> ChildError {
    match e {
        OpenDirError::Resolve(e) => io(what)(e),
        OpenDirError::Open(e) => sys(what)(e),
    }
}

/// The directory `path` inside the root (created when missing), opened for the `*at` calls
/// that write in it (an `O_PATH` handle cannot serve them).
fn open_dir(root: &Root, path: &Path) -> Result<OwnedFd, OpenDirError> {
    let dir = root
        .create(path, Leaf::Dir)
        .map_err(OpenDirError::Resolve)?;
    nix::fcntl::openat(
        dir.fd.as_fd(),
        ".",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(OpenDirError::Open)
}
