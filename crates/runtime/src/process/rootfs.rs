//! The container's root filesystem, in the order the kernel needs it: propagation, the rootfs
//! bind, the spec's mounts, /dev nodes, pivot_root, then masked and read-only paths.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, makedev, mknod};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount, Spec};

use super::{ChildError, io, sys};

/// `no_pivot`: enter the root with `MS_MOVE` + `chroot` (runc's `--no-pivot`).
pub(crate) fn setup(spec: &Spec, rootfs: &Path, no_pivot: bool) -> Result<(), ChildError> {
    // Nodes and mount points get exactly the modes we ask for.
    nix::sys::stat::umask(Mode::empty());
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

    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for m in mounts {
        mount_one(rootfs, m)?;
    }
    let dev_is_ours = mounts
        .iter()
        .any(|m| m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs"));
    if dev_is_ours {
        for d in default_devices() {
            create_device(rootfs, &d)?;
        }
        dev_symlinks(rootfs)?;
    }
    for d in linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default()
    {
        create_device(rootfs, d)?;
    }

    enter_root(rootfs, no_pivot)?;
    // Before /proc/sys may become read-only below.
    super::security::apply_sysctl(spec)?;

    for p in linux
        .and_then(|l| l.masked_paths().as_deref())
        .unwrap_or_default()
    {
        mask(p)?;
    }
    for p in linux
        .and_then(|l| l.readonly_paths().as_deref())
        .unwrap_or_default()
    {
        readonly(p)?;
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

/// `dest` inside `rootfs`. Symlinks in the rootfs are not resolved inside it (a hostile
/// image could point a mount outside); rootfs trees come from our own extraction.
fn inside(rootfs: &Path, dest: &Path) -> PathBuf {
    rootfs.join(dest.strip_prefix("/").unwrap_or(dest))
}

fn mount_one(rootfs: &Path, m: &Mount) -> Result<(), ChildError> {
    let dest = inside(rootfs, m.destination());
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

    if is_bind && source.is_file() {
        if !dest.exists() {
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io(ctx()))?;
            }
            std::fs::write(&dest, b"").map_err(io(ctx()))?;
        }
    } else {
        std::fs::create_dir_all(&dest).map_err(io(ctx()))?;
    }

    if typ == "cgroup" || typ == "cgroup2" {
        return mount_cgroup(&dest, flags);
    }
    if is_bind {
        let rec = flags & MsFlags::MS_REC;
        mount(
            Some(&source),
            &dest,
            None::<&str>,
            MsFlags::MS_BIND | rec,
            None::<&str>,
        )
        .map_err(sys(ctx()))?;
        // Bind mounts ignore other flags on the first call: apply them in a remount.
        let extra = flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !extra.is_empty() {
            mount(
                None::<&str>,
                &dest,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | extra | locked_flags(&dest),
                None::<&str>,
            )
            .map_err(sys(format!("{} (remount {extra:?})", ctx())))?;
        }
    } else {
        let data = data.join(",");
        let data = (!data.is_empty()).then_some(data);
        mount(Some(&source), &dest, Some(typ), flags, data.as_deref()).map_err(sys(ctx()))?;
    }
    if !prop.is_empty() {
        mount(None::<&str>, &dest, None::<&str>, prop, None::<&str>).map_err(sys(ctx()))?;
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
fn mount_cgroup(dest: &Path, flags: MsFlags) -> Result<(), ChildError> {
    let flags = flags & !MsFlags::MS_BIND;
    if crate::cgroups::detect_version(Path::new(crate::cgroups::DEFAULT_ROOT))
        == crate::cgroups::CgroupVersion::V2
    {
        return mount(Some("cgroup2"), dest, Some("cgroup2"), flags, None::<&str>)
            .map_err(sys(format!("mounting cgroup2 on {}", dest.display())));
    }
    mount(
        Some("tmpfs"),
        dest,
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
        let (opts, target) = match name.as_str() {
            "systemd" => ("none,name=systemd".to_string(), name.clone()),
            n => (n.to_string(), name.clone()),
        };
        let target = dest.join(target);
        std::fs::create_dir_all(&target).map_err(io(format!("creating {}", target.display())))?;
        // A hierarchy we cannot mount (co-mounted under another name, say) is left out
        // rather than failing the container.
        let _ = mount(
            Some("cgroup"),
            &target,
            Some("cgroup"),
            flags & !MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC
                | (flags & MsFlags::MS_RDONLY),
            Some(opts.as_str()),
        );
    }
    if flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            dest,
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

fn create_device(rootfs: &Path, d: &LinuxDevice) -> Result<(), ChildError> {
    let dest = inside(rootfs, d.path());
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    }
    let kind = match d.typ() {
        LinuxDeviceType::B => SFlag::S_IFBLK,
        LinuxDeviceType::P => SFlag::S_IFIFO,
        _ => SFlag::S_IFCHR,
    };
    let mode = d.file_mode().unwrap_or(0o666);
    let _ = std::fs::remove_file(&dest);
    let made = mknod(
        &dest,
        kind,
        Mode::from_bits_truncate(mode),
        makedev(d.major() as u64, d.minor() as u64),
    );
    match made {
        Ok(()) => {}
        // In a user namespace mknod is refused: bind the host's node instead, as runc does.
        Err(nix::Error::EPERM) => {
            std::fs::write(&dest, b"").map_err(io(format!("creating {}", dest.display())))?;
            mount(
                Some(d.path()),
                &dest,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(sys(format!("bind-mounting device {}", d.path().display())))?;
            return Ok(());
        }
        Err(e) => return Err(sys(format!("mknod {}", dest.display()))(e)),
    }
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("chmod {}", dest.display())))?;
    if d.uid().is_some() || d.gid().is_some() {
        nix::unistd::chown(
            &dest,
            d.uid().map(nix::unistd::Uid::from_raw),
            d.gid().map(nix::unistd::Gid::from_raw),
        )
        .map_err(sys(format!("chown {}", dest.display())))?;
    }
    Ok(())
}

fn dev_symlinks(rootfs: &Path) -> Result<(), ChildError> {
    for (target, link) in [
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
        ("pts/ptmx", "dev/ptmx"),
        ("/proc/kcore", "dev/core"),
    ] {
        let link = rootfs.join(link);
        let _ = std::fs::remove_file(&link);
        symlink(target, &link).map_err(io(format!("symlink {}", link.display())))?;
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

fn mask(path: &str) -> Result<(), ChildError> {
    let p = Path::new(path);
    let meta = match std::fs::metadata(p) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(format!("masking {path}"))(e)),
    };
    if meta.is_dir() {
        mount(
            Some("tmpfs"),
            p,
            Some("tmpfs"),
            MsFlags::MS_RDONLY,
            None::<&str>,
        )
    } else {
        mount(
            Some("/dev/null"),
            p,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    }
    .map_err(sys(format!("masking {path}")))
}

fn readonly(path: &str) -> Result<(), ChildError> {
    let p = Path::new(path);
    if !p.exists() {
        return Ok(());
    }
    mount(
        Some(p),
        p,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!("bind-mounting {path} for read-only")))?;
    remount_ro(p)
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
