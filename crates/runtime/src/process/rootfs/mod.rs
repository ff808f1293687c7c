//! The container's root filesystem, in the order the kernel needs it: propagation, the rootfs
//! bind, the spec's mounts, /dev nodes, pivot_root, then masked and read-only paths.

use std::path::{Path, PathBuf};

use std::os::fd::AsFd;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknodat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use super::{ChildError, io, sys};
use crate::in_root::{Leaf, Resolved, Root, fd_path, lexical};

/// `no_pivot`: enter the root with `MS_MOVE` + `chroot` (runc's `--no-pivot`).
/// `cwd`, the process's working directory, is created when missing (0755, as runc does),
/// before the root may become read-only.
pub(crate) fn setup(
    spec: &Spec,
    rootfs: &Path,
    no_pivot: bool,
    cwd: &Path,
) -> Result<(), ChildError> {
    // What we create without an explicit mode (none: see in_root) must not come out
    // world-writable; device nodes get their spec's mode with a chmod.
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    let linux = spec.linux().as_ref();
    let propagation = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .unwrap_or("rslave");
    let prop = propagation_flag(propagation)
        .ok_or_else(|| ChildError::Spec(format!("unknown rootfsPropagation {propagation:?}")))?;
    // Our mounts must not leak back to the host: slave (or private) everything first.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        prop | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!("making / {propagation}")))?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!(
        "bind-mounting the rootfs {}",
        rootfs.display()
    )))?;

    let root =
        Root::open(rootfs).map_err(io(format!("opening the rootfs {}", rootfs.display())))?;
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for m in mounts {
        mount_one(&root, m)?;
    }
    let dev_is_ours = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs"));
    if dev_is_ours {
        for d in default_devices() {
            create_device(&root, &d)?;
        }
        dev_symlinks(&root)?;
    }
    for d in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        create_device(&root, d)?;
    }
    drop(root);

    enter_root(rootfs, no_pivot)?;
    // Before /proc/sys may become read-only below.
    super::security::apply_sysctl(spec)?;

    // The root is `/` now: these resolve inside it too (a bundle's own masked paths may
    // name symlinks of its rootfs).
    let root = Root::open(Path::new("/")).map_err(io("opening the new root"))?;
    if !cwd.as_os_str().is_empty() {
        root.create(cwd, Leaf::Dir).map_err(io(format!(
            "creating the working directory {}",
            cwd.display()
        )))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        mask(&root, p)?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        readonly(&root, p)?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount_ro(Path::new("/"))?;
    }
    if prop != MsFlags::MS_SLAVE {
        // A non-default propagation is applied to the new root once we stand in it.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            prop | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(sys(format!("making the new / {propagation}")))?;
    }
    Ok(())
}

fn propagation_flag(name: &str) -> Option<MsFlags> {
    Some(match name.trim_start_matches('r') {
        "private" => MsFlags::MS_PRIVATE,
        "slave" => MsFlags::MS_SLAVE,
        "shared" => MsFlags::MS_SHARED,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        _ => return None,
    })
}

/// Splits mount(8)-style options into flags, propagation flags and fs data.
pub(crate) fn parse_options(options: &[String]) -> (MsFlags, MsFlags, Vec<String>) {
    let mut flags = MsFlags::empty();
    let mut prop = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty()),
            "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty()),
            p if propagation_flag(p).is_some() => {
                prop |= propagation_flag(p).unwrap_or(MsFlags::empty());
                if p.starts_with('r') {
                    prop |= MsFlags::MS_REC;
                }
                continue;
            }
            other => {
                data.push(other.to_string());
                continue;
            }
        };
        flags = (flags | set) & !clear;
    }
    (flags, prop, data)
}

/// Mounts `m` at its destination resolved inside the root (created when missing: a
/// directory, or an empty file for a bind-mounted file), through the resolved handle so
/// that nothing can redirect it after resolution.
fn mount_one(root: &Root, m: &Mount) -> Result<(), ChildError> {
    let (flags, prop, data) = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().as_deref().unwrap_or("none");
    let is_bind = flags.contains(MsFlags::MS_BIND) || typ == "bind";
    let source = m.source().clone().unwrap_or_else(|| PathBuf::from(typ));
    let ctx = || {
        format!(
            "mounting {} ({typ}) on {}",
            source.display(),
            m.destination().display()
        )
    };
    let leaf = if is_bind && !source.is_dir() {
        Leaf::File
    } else {
        Leaf::Dir
    };
    let dest = root.create(m.destination(), leaf).map_err(io(ctx()))?;
    if matches!(typ, "proc" | "sysfs") && dest.path != lexical(m.destination()) {
        // runc's rule since CVE-2019-19921: /proc and /sys must not land elsewhere (their
        // masked paths would then mask nothing).
        return Err(ChildError::Spec(format!(
            "{}: the destination is a symlink in the rootfs (to {}); {typ} must be mounted on a real directory",
            ctx(),
            dest.path.display()
        )));
    }
    let target = fd_path(dest.fd.as_fd());

    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(root, &dest.path, &target, flags);
    }
    if is_bind {
        let rec = flags & MsFlags::MS_REC;
        mount(
            Some(&source),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | rec,
            None::<&str>,
        )
        .map_err(sys(ctx()))?;
        // Bind mounts ignore other flags on the first call: apply them in a remount. The
        // handle still names the covered directory: reach the new mount again.
        let extra = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            let mounted = root.resolve(&dest.path).map_err(io(ctx()))?;
            let target = fd_path(mounted.fd.as_fd());
            mount(
                None::<&str>,
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | locked_flags(&target),
                None::<&str>,
            )
            .map_err(sys(format!("{} (remount {extra:?})", ctx())))?;
        }
    } else {
        let data = data.join(",");
        let data = (!data.is_empty()).then_some(data);
        mount(Some(&source), &target, Some(typ), flags, data.as_deref()).map_err(sys(ctx()))?;
    }
    if !prop.is_empty() {
        let mounted = root.resolve(&dest.path).map_err(io(ctx()))?;
        mount(
            None::<&str>,
            &fd_path(mounted.fd.as_fd()),
            None::<&str>,
            prop,
            None::<&str>,
        )
        .map_err(sys(ctx()))?;
    }
    Ok(())
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

/// `/sys/fs/cgroup`: the unified hierarchy on v2 hosts; on v1 a tmpfs holding each
/// controller's hierarchy (the cgroup namespace makes the container's cgroup their root).
fn mount_cgroup(root: &Root, dest: &Path, target: &Path, flags: MsFlags) -> Result<(), ChildError> {
    let flags = flags & !MsFlags::MS_BIND;
    if crate::cgroups::detect_version(Path::new(crate::cgroups::DEFAULT_ROOT))
        == crate::cgroups::CgroupVersion::V2
    {
        return mount(
            Some("cgroup2"),
            target,
            Some("cgroup2"),
            flags,
            None::<&str>,
        )
        .map_err(sys(format!("mounting cgroup2 on {}", dest.display())));
    }
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .map_err(sys(format!("mounting tmpfs on {}", dest.display())))?;
    let controllers =
        std::fs::read_dir(crate::cgroups::DEFAULT_ROOT).map_err(io("listing /sys/fs/cgroup"))?;
    for entry in controllers.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "unified" || !entry.path().is_dir() {
            continue;
        }
        let opts = match name.as_str() {
            "systemd" => "none,name=systemd".to_string(),
            n => n.to_string(),
        };
        let dir = dest.join(&name);
        let made = root
            .create(&dir, Leaf::Dir)
            .map_err(io(format!("creating {}", dir.display())))?;
        // A hierarchy we cannot mount (co-mounted under another name, say) is left out
        // rather than failing the container.
        let _ = mount(
            Some("cgroup"),
            &fd_path(made.fd.as_fd()),
            Some("cgroup"),
            flags | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some(opts.as_str()),
        );
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        let tmpfs = root
            .resolve(dest)
            .map_err(io(format!("reopening {}", dest.display())))?;
        mount(
            None::<&str>,
            &fd_path(tmpfs.fd.as_fd()),
            None::<&str>,
            MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            Some("mode=755"),
        )
        .map_err(sys(format!("remounting {} read-only", dest.display())))?;
    }
    Ok(())
}

fn dev(path: &str, major: i64, minor: i64) -> LinuxDevice {
    let mut d = LinuxDevice::default();
    d.set_path(PathBuf::from(path));
    d.set_typ(LinuxDeviceType::C);
    d.set_major(major);
    d.set_minor(minor);
    d.set_file_mode(Some(0o666));
    d
}

/// The nodes every container gets (runc's and docker's list).
pub(crate) fn default_devices() -> Vec<LinuxDevice> {
    vec![
        dev("/dev/null", 1, 3),
        dev("/dev/zero", 1, 5),
        dev("/dev/full", 1, 7),
        dev("/dev/random", 1, 8),
        dev("/dev/urandom", 1, 9),
        dev("/dev/tty", 5, 0),
    ]
}

/// Makes device node `d` inside the root: `mknod` in its resolved parent directory, or,
/// where mknod is refused (a user namespace), a bind mount of the host's node, as runc does.
fn create_device(root: &Root, d: &LinuxDevice) -> Result<(), ChildError> {
    let path = d.path();
    let ctx = |what: &str| format!("{what} device {}", path.display());
    let name = path
        .file_name()
        .ok_or_else(|| ChildError::Spec(format!("device path {} has no name", path.display())))?;
    let parent = root
        .create(path.parent().unwrap_or(Path::new("/")), Leaf::Dir)
        .map_err(io(ctx("creating the directory of")))?;
    // An O_PATH handle cannot be used as a directory for *at calls that write: open it.
    let dir = nix::fcntl::openat(
        parent.fd.as_fd(),
        ".",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys(ctx("opening the directory of")))?;
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let mode = d.file_mode().unwrap_or(0o666);
    // A file the image put there is replaced; a directory is not (unlinkat fails on it).
    let _ = nix::unistd::unlinkat(&dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
    let made = mknodat(
        &dir,
        name,
        kind,
        Mode::from_bits_truncate(mode),
        makedev(d.major() as u64, d.minor() as u64),
    );
    match made {
        Ok(()) => {}
        Err(nix::Error::EPERM) => {
            let node = root
                .create(path, Leaf::File)
                .map_err(io(ctx("creating the mount point of")))?;
            mount(
                Some(path),
                &fd_path(node.fd.as_fd()),
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys(ctx("bind-mounting")))?;
            return Ok(());
        }
        Err(e) => return Err(sys(ctx("mknod"))(e)),
    }
    let at = nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW;
    nix::sys::stat::fchmodat(
        &dir,
        name,
        Mode::from_bits_truncate(mode),
        nix::sys::stat::FchmodatFlags::NoFollowSymlink,
    )
    .or_else(|e| {
        // Older kernels refuse AT_SYMLINK_NOFOLLOW for chmod; the node was just made by
        // us in a directory we resolved, so following is harmless there.
        if e == nix::Error::EOPNOTSUPP || e == nix::Error::ENOTSUP {
            nix::sys::stat::fchmodat(
                &dir,
                name,
                Mode::from_bits_truncate(mode),
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
        } else {
            Err(e)
        }
    })
    .map_err(sys(ctx("chmod")))?;
    if d.uid().is_some() || d.gid().is_some() {
        nix::unistd::fchownat(
            &dir,
            name,
            d.uid().map(nix::unistd::Uid::from_raw),
            d.gid().map(nix::unistd::Gid::from_raw),
            at,
        )
        .map_err(sys(ctx("chown")))?;
    }
    Ok(())
}

/// docker's `/dev` symlinks, made in the resolved `/dev` of the root.
fn dev_symlinks(root: &Root) -> Result<(), ChildError> {
    let dev = root
        .create(Path::new("/dev"), Leaf::Dir)
        .map_err(io("opening /dev in the rootfs"))?;
    let dir = nix::fcntl::openat(
        dev.fd.as_fd(),
        ".",
        nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(sys("opening /dev in the rootfs"))?;
    for (target, link) in [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
        ("/proc/kcore", "core"),
    ] {
        let _ = nix::unistd::unlinkat(&dir, link, nix::unistd::UnlinkatFlags::NoRemoveDir);
        nix::unistd::symlinkat(target, &dir, link).map_err(sys(format!("symlink /dev/{link}")))?;
    }
    Ok(())
}

/// pivot_root into `rootfs` and detach the old root; chroot (with one warning) only where
/// pivot_root cannot work, i.e. when the current root is the initramfs.
fn enter_root(rootfs: &Path, no_pivot: bool) -> Result<(), ChildError> {
    nix::unistd::chdir(rootfs).map_err(sys(format!("chdir {}", rootfs.display())))?;
    if no_pivot {
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
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        let mut halves = l.split(" - ");
        let left: Vec<&str> = halves.next().unwrap_or("").split(' ').collect();
        let fstype = halves
            .next()
            .and_then(|r| r.split(' ').next())
            .unwrap_or("");
        left.get(4) == Some(&"/")
            && left.get(3) == Some(&"/")
            && matches!(fstype, "rootfs" | "ramfs")
    })
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
fn existing(root: &Root, path: &str, what: &str) -> Result<Option<Resolved>, ChildError> {
    match root.resolve(Path::new(path)) {
        Ok(r) => Ok(Some(r)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("{what} {path}"))(e)),
    }
}

fn mask(root: &Root, path: &str) -> Result<(), ChildError> {
    let Some(found) = existing(root, path, "masking")? else {
        return Ok(());
    };
    let is_dir = nix::sys::stat::fstat(&found.fd)
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
        .map_err(sys(format!("masking {path}")))?;
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
    .map_err(sys(format!("masking {path}")))
}

fn readonly(root: &Root, path: &str) -> Result<(), ChildError> {
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
    .map_err(sys(format!("bind-mounting {path} for read-only")))?;
    // The handle names the covered file: reach the new bind mount for the remount.
    let mounted = root
        .resolve(&found.path)
        .map_err(io(format!("reopening {path}")))?;
    remount_ro(&target(&mounted))
}

fn remount_ro(p: &Path) -> Result<(), ChildError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_propagation_and_data() {
        let opts: Vec<String> = ["nosuid", "ro", "rbind", "rslave", "mode=755", "size=65536k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, prop, data) = parse_options(&opts);
        assert_eq!(
            flags,
            MsFlags::MS_NOSUID | MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC
        );
        assert_eq!(prop, MsFlags::MS_SLAVE | MsFlags::MS_REC);
        assert_eq!(data, ["mode=755", "size=65536k"]);
        let (flags, _, _) = parse_options(&["ro".to_string(), "rw".to_string()]);
        assert!(!flags.contains(MsFlags::MS_RDONLY), "a later rw wins");
    }
}
