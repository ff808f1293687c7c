//! Carrying out the plan's mounts: each onto its destination resolved inside the root,
//! through the resolved handle; masked and read-only paths inside the new root.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{MsFlags, mount};
use nix::sys::stat::SFlag;

use super::super::{ChildError, io, sys};
use super::plan::{MountAction, MountStep};
use super::set_propagation;
use crate::in_root::{Leaf, Resolved, Root, fd_path, lexical};

/// Mounts `step` at its destination resolved inside the root (created when missing),
/// through the resolved handle, so that nothing can redirect it after resolution.
pub(super) fn mount_one(root: &Root, step: &MountStep) -> Result<(), ChildError> {
    let what = || step.what.clone();
    let dest = root
        .create(&step.destination, step.mount_point)
        .map_err(io(what()))?;
    if step.real_directory && dest.path != lexical(&step.destination) {
        return Err(ChildError::Spec(format!(
            "{}: the destination is a symlink in the rootfs (to {}); it must be a real directory",
            what(),
            dest.path.display()
        )));
    }
    let target = fd_path(dest.fd.as_fd());
    match &step.action {
        MountAction::Bind {
            source,
            recursive,
            remount,
        } => bind(root, &dest, source, *recursive, *remount, &step.what)?,
        MountAction::Filesystem {
            source,
            fstype,
            flags,
            data,
        } => filesystem(
            root,
            &dest,
            source,
            fstype,
            *flags,
            data.as_deref(),
            &step.what,
        )?,
        MountAction::Cgroup2 { flags } => {
            mount(
                Some("cgroup2"),
                &target,
                Some("cgroup2"),
                *flags,
                None::<&str>,
            )
            .map_err(sys(format!("mounting cgroup2 on {}", dest.path.display())))?;
        }
        MountAction::CgroupV1 {
            flags,
            hierarchies,
            readonly,
        } => cgroup_v1(root, &dest, *flags, hierarchies, *readonly)?,
    }
    if !step.propagation.is_empty() {
        let mounted = root.resolve(&dest.path).map_err(io(what()))?;
        set_propagation(&fd_path(mounted.fd.as_fd()), step.propagation).map_err(sys(what()))?;
    }
    Ok(())
}

/// A filesystem of its own, with the fallbacks runc and crun use where a user namespace
/// does not own what the filesystem shows.
fn filesystem(
    root: &Root,
    dest: &Resolved,
    source: &Path,
    fstype: &str,
    flags: MsFlags,
    data: Option<&str>,
    what: &str,
) -> Result<(), ChildError> {
    let target = fd_path(dest.fd.as_fd());
    let err = match mount(Some(source), &target, Some(fstype), flags, data) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    match (fstype, err) {
        // A new sysfs needs the network namespace to belong to our user namespace; one
        // shared with the host's (`--network host` in rootless mode) does not, so the
        // host's /sys is bound instead, read-only, as runc does.
        ("sysfs", nix::Error::EPERM) => {
            let sealed = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            bind(
                root,
                dest,
                Path::new("/sys"),
                true,
                sealed | MsFlags::MS_RDONLY,
                &format!("{what} (bind-mounting the host's /sys instead of a new sysfs)"),
            )
        }
        // Likewise a new mqueue needs the IPC namespace to be ours: the host's (`--ipc
        // host` in rootless mode) gets the host's /dev/mqueue, bound, as podman does.
        ("mqueue", nix::Error::EPERM) => {
            let host = Path::new("/dev/mqueue");
            if !host.is_dir() {
                return Err(ChildError::Spec(format!(
                    "{what}: the IPC namespace is not owned by this user namespace (the \
                     host's, shared), so no mqueue can be mounted, and the host has no \
                     {} to bind instead: give the container an IPC namespace of its own, \
                     or leave /dev/mqueue out of the spec's mounts",
                    host.display()
                )));
            }
            bind(
                root,
                dest,
                host,
                false,
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                &format!("{what} (bind-mounting the host's /dev/mqueue instead)"),
            )
        }
        // `gid=5` names a group the user namespace may not map (a rootless spec with
        // only the user's own id): the pty group is then left out.
        ("devpts", nix::Error::EINVAL) if data.is_some_and(|d| d.contains("gid=")) => {
            let kept: Vec<&str> = data
                .unwrap_or_default()
                .split(',')
                .filter(|o| !o.starts_with("gid="))
                .collect();
            mount(
                Some(source),
                &target,
                Some(fstype),
                flags,
                Some(kept.join(",").as_str()),
            )
            .map_err(sys(what))
        }
        (_, e) => Err(sys(what)(e)),
    }
}

/// A bind mount, then a remount for the flags a first bind ignores.
fn bind(
    root: &Root,
    dest: &Resolved,
    source: &Path,
    recursive: bool,
    remount: MsFlags,
    what: &str,
) -> Result<(), ChildError> {
    let rec = match recursive {
        true => MsFlags::MS_REC,
        false => MsFlags::empty(),
    };
    mount(
        Some(source),
        &fd_path(dest.fd.as_fd()),
        None::<&str>,
        MsFlags::MS_BIND | rec,
        None::<&str>,
    )
    .map_err(sys(what))?;
    if remount.is_empty() {
        return Ok(());
    }
    // The handle still names the covered directory: reach the new mount again.
    let mounted = root.resolve(&dest.path).map_err(io(what))?;
    let target = fd_path(mounted.fd.as_fd());
    mount(
        None::<&str>,
        &target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | remount | locked_flags(&target),
        None::<&str>,
    )
    .map_err(sys(format!("{what} (remount {remount:?})")))
}

/// `/sys/fs/cgroup` on a v1 host: a tmpfs with each hierarchy mounted in it.
fn cgroup_v1(
    root: &Root,
    dest: &Resolved,
    flags: MsFlags,
    hierarchies: &[(String, String, Option<PathBuf>)],
    readonly: bool,
) -> Result<(), ChildError> {
    let shown = dest.path.display();
    let sealed = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        &fd_path(dest.fd.as_fd()),
        Some("tmpfs"),
        sealed,
        Some("mode=755"),
    )
    .map_err(sys(format!("mounting tmpfs on {shown}")))?;
    for (name, options, own) in hierarchies {
        let dir = dest.path.join(name);
        let made = root
            .create(&dir, Leaf::Dir)
            .map_err(io(format!("creating {}", dir.display())))?;
        let target = fd_path(made.fd.as_fd());
        // A hierarchy we cannot mount (co-mounted under another name, say) is left out
        // rather than failing the container.
        match own {
            // Without a cgroup namespace a fresh mount would show the host's whole
            // hierarchy: bind the container's own cgroup from the host's instead (we are
            // still in the host's view of /sys/fs/cgroup), then give it the flags.
            Some(own) => {
                let source = Path::new(crate::cgroups::DEFAULT_ROOT)
                    .join(name)
                    .join(own.strip_prefix("/").unwrap_or(own));
                let bound = mount(
                    Some(&source),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                );
                if bound.is_ok() {
                    let _ = mount(
                        None::<&str>,
                        &target,
                        None::<&str>,
                        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | flags,
                        None::<&str>,
                    );
                }
            }
            None => {
                let _ = mount(
                    Some("cgroup"),
                    &target,
                    Some("cgroup"),
                    flags,
                    Some(options.as_str()),
                );
            }
        }
    }
    if !readonly {
        return Ok(());
    }
    let tmpfs = root
        .resolve(&dest.path)
        .map_err(io(format!("reopening {shown}")))?;
    mount(
        None::<&str>,
        &fd_path(tmpfs.fd.as_fd()),
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | sealed,
        Some("mode=755"),
    )
    .map_err(sys(format!("remounting {shown} read-only")))
}

/// Flags the kernel refuses to drop in a remount from a less privileged namespace.
fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let Ok(st) = statvfs(path) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

/// Where a mount onto `resolved` is aimed: its handle through `/proc/self/fd` (nothing can
/// redirect that), or, in a root without `/proc`, its symlink-free path.
fn target(resolved: &Resolved) -> PathBuf {
    if Path::new("/proc/self/fd").is_dir() {
        fd_path(resolved.fd.as_fd())
    } else {
        resolved.path.clone()
    }
}

/// `root.resolve(path)`, with a missing path as `None`.
fn existing(root: &Root, path: &Path, what: &str) -> Result<Option<Resolved>, ChildError> {
    match root.resolve(path) {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("{what} {}", path.display()))(e)),
    }
}

/// Hides `path` under an empty read-only tmpfs (a directory) or `/dev/null` (anything
/// else), as found at this moment; a missing path needs no hiding.
pub(super) fn mask(root: &Root, path: &Path) -> Result<(), ChildError> {
    let shown = path.display();
    let Some(found) = existing(root, path, "masking")? else {
        return Ok(());
    };
    let is_dir = nix::sys::stat::fstat(&found.fd)
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
        .map_err(sys(format!("masking {shown}")))?;
    let at = target(&found);
    if is_dir {
        mount(
            Some("tmpfs"),
            &at,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            &at,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
    .map_err(sys(format!("masking {shown}")))
}

/// Bind-mounts `path` onto itself read-only; a missing path is left alone.
pub(super) fn readonly(root: &Root, path: &Path) -> Result<(), ChildError> {
    let shown = path.display();
    let Some(found) = existing(root, path, "making read-only")? else {
        return Ok(());
    };
    let at = target(&found);
    mount(
        Some(&at),
        &at,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!("bind-mounting {shown} for read-only")))?;
    // The handle names the covered file: reach the new bind mount for the remount.
    let mounted = root
        .resolve(&found.path)
        .map_err(io(format!("reopening {shown}")))?;
    remount_ro(&target(&mounted))
}

/// Remounts the mount at `p` read-only, keeping the flags it is locked with.
pub(super) fn remount_ro(p: &Path) -> Result<(), ChildError> {
    mount(
        None::<&str>,
        p,
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_REC
            | locked_flags(p),
        None::<&str>,
    )
    .map_err(sys(format!("remounting {} read-only", p.display())))
}
