//! Host device nodes in a container: docker's `--device HOST[:CONTAINER[:PERMISSIONS]]`
//! and the whole `/dev` of `--privileged`.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{Linux, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Spec};

use super::SpecError;
use super::security::linux;

/// A host device for a container, as docker's `--device` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceMapping {
    /// The node (or a directory of nodes) on the host.
    pub host: PathBuf,
    /// Where it appears in the container.
    pub container: PathBuf,
    /// Device cgroup access: a combination of `r`, `w` and `m` (mknod).
    pub permissions: String,
}

impl FromStr for DeviceMapping {
    type Err = SpecError;

    /// `HOST`, `HOST:CONTAINER`, `HOST:PERMISSIONS` or `HOST:CONTAINER:PERMISSIONS`, with
    /// `rwm` when no permissions are given, as docker reads them.
    fn from_str(text: &str) -> Result<Self, SpecError> {
        let bad = |reason: &str| SpecError::DeviceMapping {
            value: text.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = text.split(':').collect();
        let (host, container, permissions) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if valid_permissions(p) => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] if valid_permissions(p) => (*h, *c, *p),
            [_, _, p] => return Err(bad(&format!("bad permissions {p:?}: use r, w and m"))),
            _ => return Err(bad("expected HOST[:CONTAINER[:PERMISSIONS]]")),
        };
        if host.is_empty() {
            return Err(bad("the host path is empty"));
        }
        if !container.starts_with('/') {
            return Err(bad(&format!("{container} is not an absolute path")));
        }
        Ok(DeviceMapping {
            host: PathBuf::from(host),
            container: clean(Path::new(container)),
            permissions: permissions.to_string(),
        })
    }
}

/// `r`, `w` and `m`, each at most once, at least one.
fn valid_permissions(text: &str) -> bool {
    let mut seen = String::new();
    !text.is_empty()
        && text.chars().all(|c| {
            let fresh = "rwm".contains(c) && !seen.contains(c);
            seen.push(c);
            fresh
        })
}

/// Lexical clean-up (`/dev//x/` is `/dev/x`), as docker does with the container path.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Adds the host device (or every device under the host directory, recursively) as
/// `linux.devices` at the container path, and a device cgroup rule allowing it with the
/// mapping's permissions. A symbolic link on the host is followed, as docker does.
pub fn add_device(spec: &mut Spec, mapping: &DeviceMapping) -> Result<(), SpecError> {
    let host = resolve(&mapping.host);
    let found = match node(&host) {
        Ok(Some(device)) => vec![at(device, mapping.container.clone())],
        Ok(None) if host.is_dir() => nodes_below(&host, &mapping.container)?,
        Ok(None) => Vec::new(),
        Err(source) => {
            return Err(SpecError::Device {
                path: mapping.host.clone(),
                source,
            });
        }
    };
    if found.is_empty() {
        return Err(SpecError::NotADevice {
            path: mapping.host.clone(),
        });
    }
    let linux = linux(spec)?;
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    for device in found {
        rules.push(allow(&device, &mapping.permissions));
        put_device(linux, device);
    }
    resources.set_devices(Some(rules));
    linux.set_resources(Some(resources));
    Ok(())
}

fn resolve(path: &Path) -> PathBuf {
    match path.symlink_metadata() {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

fn at(mut device: LinuxDevice, path: PathBuf) -> LinuxDevice {
    device.set_path(path);
    device
}

fn allow(device: &LinuxDevice, permissions: &str) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(true);
    rule.set_typ(Some(device.typ()));
    rule.set_major(Some(device.major()));
    rule.set_minor(Some(device.minor()));
    rule.set_access(Some(permissions.to_string()));
    rule
}

/// Adds `device` to `linux.devices`, replacing one already at its path.
pub(super) fn put_device(linux: &mut Linux, device: LinuxDevice) {
    let mut devices = linux.devices().clone().unwrap_or_default();
    devices.retain(|d| d.path() != device.path());
    devices.push(device);
    linux.set_devices(Some(devices));
}

/// The character or block device at `path` (not followed if a link), with the host's
/// mode and owner; `None` for anything else.
fn node(path: &Path) -> std::io::Result<Option<LinuxDevice>> {
    let meta = path.symlink_metadata()?;
    let kind = meta.file_type();
    let typ = if kind.is_char_device() {
        LinuxDeviceType::C
    } else if kind.is_block_device() {
        LinuxDeviceType::B
    } else {
        return Ok(None);
    };
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    if major == 0 {
        return Ok(None);
    }
    let mut device = LinuxDevice::default();
    device.set_path(path.to_path_buf());
    device.set_typ(typ);
    device.set_major(i64::from(major));
    device.set_minor(i64::from(minor));
    device.set_file_mode(Some(meta.mode() & 0o7777));
    device.set_uid(Some(meta.uid()));
    device.set_gid(Some(meta.gid()));
    Ok(Some(device))
}

/// Every device below `dir`, at the same place below `target`; what cannot be read is
/// skipped, as docker's walk does.
fn nodes_below(dir: &Path, target: &Path) -> Result<Vec<LinuxDevice>, SpecError> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| SpecError::Device {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let (path, inside) = (entry.path(), target.join(entry.file_name()));
        match entry.file_type() {
            Ok(t) if t.is_dir() => out.extend(nodes_below(&path, &inside).unwrap_or_default()),
            Ok(_) => {
                if let Ok(Some(device)) = node(&path) {
                    out.push(at(device, inside));
                }
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

/// The device nodes of the host's `/dev`, as docker gives a privileged container:
/// recursively, without following links, leaving out what the container has its own of
/// (`pts`, `shm`, `mqueue`, `fd`, the console, `ptmx`) and the directories of LXD and
/// udev.
pub fn host_devices() -> Result<Vec<LinuxDevice>, SpecError> {
    devices_in(Path::new("/dev"))
}

/// [`host_devices`] for another directory (its paths are kept as found).
pub fn devices_in(dir: &Path) -> Result<Vec<LinuxDevice>, SpecError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SpecError::Device {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !matches!(
                name.as_ref(),
                "pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev"
            ) {
                out.extend(devices_in(&entry.path())?);
            }
            continue;
        }
        if name == "console" || name == "ptmx" {
            continue;
        }
        // Anything else, or gone since the listing, is not a device for the container.
        if let Ok(Some(device)) = node(&entry.path()) {
            out.push(device);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(text: &str) -> Result<(String, String, String), String> {
        text.parse::<DeviceMapping>()
            .map(|m| {
                (
                    m.host.display().to_string(),
                    m.container.display().to_string(),
                    m.permissions,
                )
            })
            .map_err(|e| e.to_string())
    }

    fn triple(h: &str, c: &str, p: &str) -> Result<(String, String, String), String> {
        Ok((h.into(), c.into(), p.into()))
    }

    #[test]
    fn mappings_read_as_docker_reads_them() {
        assert_eq!(
            mapping("/dev/fuse"),
            triple("/dev/fuse", "/dev/fuse", "rwm")
        );
        assert_eq!(
            mapping("/dev/fuse:r"),
            triple("/dev/fuse", "/dev/fuse", "r")
        );
        assert_eq!(
            mapping("/dev/null:/dev/x"),
            triple("/dev/null", "/dev/x", "rwm")
        );
        assert_eq!(
            mapping("/dev/null:/dev//x/:mw"),
            triple("/dev/null", "/dev/x", "mw")
        );
        for (bad, says) in [
            ("/dev/null:/dev/x:rx", "bad permissions \"rx\""),
            ("/dev/null:/dev/x:rr", "bad permissions"),
            ("/dev/null:relative", "relative is not an absolute path"),
            ("/a:/b:r:extra", "expected HOST[:CONTAINER[:PERMISSIONS]]"),
            (":/dev/x", "the host path is empty"),
        ] {
            let e = mapping(bad).unwrap_err();
            assert!(e.contains(says) && e.contains(bad), "{bad}: {e}");
        }
    }

    fn spec() -> Spec {
        crate::default_spec(vec!["true".into()], vec![], "/").unwrap()
    }

    #[test]
    fn a_device_gets_a_node_and_a_cgroup_rule_with_its_permissions() {
        let mut s = spec();
        add_device(&mut s, &"/dev/null:/dev/mynull:r".parse().unwrap()).unwrap();
        let linux = s.linux().as_ref().unwrap();
        let d = &linux.devices().as_ref().unwrap()[0];
        assert_eq!(d.path(), Path::new("/dev/mynull"));
        assert_eq!((d.typ(), d.major(), d.minor()), (LinuxDeviceType::C, 1, 3));
        let rule = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        let last = rule.last().unwrap();
        assert_eq!(
            (
                last.allow(),
                last.major(),
                last.minor(),
                last.access().as_deref()
            ),
            (true, Some(1), Some(3), Some("r"))
        );
    }

    #[test]
    fn a_directory_adds_every_device_below_it() {
        let mut s = spec();
        add_device(&mut s, &"/dev:/hostdev".parse().unwrap()).unwrap();
        let devices = s.linux().as_ref().unwrap().devices().clone().unwrap();
        assert!(
            devices
                .iter()
                .any(|d| d.path() == Path::new("/hostdev/null")),
            "{devices:?}"
        );
        assert!(devices.iter().all(|d| d.path().starts_with("/hostdev")));
    }

    #[test]
    fn errors_name_the_host_path() {
        let mut s = spec();
        let e = add_device(&mut s, &"/etc/passwd".parse().unwrap()).unwrap_err();
        assert!(matches!(e, SpecError::NotADevice { .. }), "{e}");
        assert!(e.to_string().contains("/etc/passwd"), "{e}");
        let e = add_device(&mut s, &"/dev/surely-not-here".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("/dev/surely-not-here"), "{e}");
    }

    #[test]
    fn host_devices_leave_out_what_the_container_has_its_own_of() {
        let devices = host_devices().unwrap();
        assert!(devices.iter().any(|d| d.path() == Path::new("/dev/null")));
        for own in ["/dev/ptmx", "/dev/console"] {
            assert!(devices.iter().all(|d| d.path() != Path::new(own)), "{own}");
        }
        assert!(devices.iter().all(|d| !d.path().starts_with("/dev/pts")));
        assert!(devices.iter().all(|d| d.major() != 0));
    }
}
