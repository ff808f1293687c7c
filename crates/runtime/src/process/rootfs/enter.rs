//! Entering the new root: `pivot_root`, or `MS_MOVE` and `chroot` where that cannot work.

use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::super::{ChildError, sys};
use super::plan::Enter;

/// pivot_root into `rootfs` and detach the old root; chroot (with one warning) only where
/// pivot_root cannot work, i.e. when the current root is the initramfs.
pub(super) fn enter_root(rootfs: &Path, how: Enter) -> Result<(), ChildError> {
    nix::unistd::chdir(rootfs).map_err(sys(format!("chdir {}", rootfs.display())))?;
    if how == Enter::MoveAndChroot {
        move_and_chroot(rootfs)?;
        return nix::unistd::chdir("/").map_err(sys("chdir /"));
    }
    match nix::unistd::pivot_root(".", ".") {
        Ok(()) => {
            // The old root is stacked under "."; make sure its unmount cannot propagate to
            // the host, then drop it.
            mount(
                None::<&str>,
                ".",
                None::<&str>,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(sys("making the old root a slave"))?;
            umount2(".", MntFlags::MNT_DETACH).map_err(sys("detaching the old root"))?;
        }
        Err(nix::Error::EINVAL) if root_is_ramfs() => {
            eprintln!(
                "basic-runtime: warning: pivot_root is impossible on an initramfs root; using chroot (the host root stays reachable to processes that can escape a chroot)"
            );
            move_and_chroot(rootfs)?;
        }
        Err(e) => return Err(sys(format!("pivot_root to {}", rootfs.display()))(e)),
    }
    nix::unistd::chdir("/").map_err(sys("chdir /"))
}

fn move_and_chroot(rootfs: &Path) -> Result<(), ChildError> {
    mount(
        Some(rootfs),
        "/",
        None::<&str>,
        MsFlags::MS_MOVE,
        None::<&str>,
    )
    .map_err(sys("moving the rootfs onto /"))?;
    nix::unistd::chroot(".").map_err(sys("chroot"))
}

/// Whether `/` is the initramfs (rootfs/ramfs/tmpfs-as-rootfs), where pivot_root fails.
pub(crate) fn root_is_ramfs() -> bool {
    basic_mountinfo::mounts().is_ok_and(|table| {
        table.iter().any(|m| {
            m.root == std::path::Path::new("/")
                && m.mount_point == std::path::Path::new("/")
                && matches!(m.fs_type.as_str(), "rootfs" | "ramfs")
        })
    })
}
