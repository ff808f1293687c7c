//! A spec an ordinary user can run directly, as `runc spec --rootless` writes it.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType, Mount, Spec};

use super::SpecError;

/// Turns `spec` into one that user `uid` (primary group `gid`) can run without root, as
/// runc's `spec --rootless` does: a user namespace of its own mapping the user's own ids
/// to 0 (and nothing else, so neither `newuidmap` nor subordinate ids are needed); no
/// network namespace (a new one would have no way out); `/sys` bound from the host
/// read-only (a new sysfs needs a network namespace the user owns); no `uid=`/`gid=` mount
/// options (they name ids the map lacks); no resource limits (cgroups are the host's).
pub fn make_rootless(spec: &mut Spec, uid: u32, gid: u32) -> Result<(), SpecError> {
    let linux = spec
        .linux_mut()
        .as_mut()
        .ok_or(SpecError::Incomplete("linux"))?;
    let mut namespaces: Vec<LinuxNamespace> = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            !matches!(
                n.typ(),
                LinuxNamespaceType::Network | LinuxNamespaceType::User
            )
        })
        .collect();
    let mut user = LinuxNamespace::default();
    user.set_typ(LinuxNamespaceType::User);
    namespaces.push(user);
    linux.set_namespaces(Some(namespaces));
    let own = |host: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(1u32)
            .build()
            .map(|m| vec![m])
            .map_err(SpecError::Build)
    };
    linux.set_uid_mappings(Some(own(uid)?));
    linux.set_gid_mappings(Some(own(gid)?));
    linux.set_resources(None);
    let mounts = spec
        .mounts()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| {
            if m.destination() == Path::new("/sys") {
                return sys_bind();
            }
            let mut m = m;
            let kept = m.options().clone().map(|o| {
                o.into_iter()
                    .filter(|o| !o.starts_with("uid=") && !o.starts_with("gid="))
                    .collect()
            });
            m.set_options(kept);
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
    Ok(())
}

fn sys_bind() -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from("/sys"));
    m.set_typ(Some("none".into()));
    m.set_source(Some(PathBuf::from("/sys")));
    m.set_options(Some(
        ["rbind", "nosuid", "noexec", "nodev", "ro"]
            .map(String::from)
            .to_vec(),
    ));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rootless_spec_maps_only_the_users_own_ids() {
        let mut spec = crate::default_spec(vec!["sh".into()], vec![], "/").unwrap();
        make_rootless(&mut spec, 1234, 2345).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let types: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(types.contains(&LinuxNamespaceType::User), "{types:?}");
        assert!(!types.contains(&LinuxNamespaceType::Network), "{types:?}");
        let uid = &linux.uid_mappings().as_ref().unwrap()[..];
        assert_eq!(
            (
                uid.len(),
                uid[0].container_id(),
                uid[0].host_id(),
                uid[0].size()
            ),
            (1, 0, 1234, 1)
        );
        assert_eq!(linux.gid_mappings().as_ref().unwrap()[0].host_id(), 2345);
        assert!(linux.resources().is_none());
        let mounts = spec.mounts().as_ref().unwrap();
        let sys = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/sys"))
            .unwrap();
        assert_eq!(sys.typ().as_deref(), Some("none"));
        assert!(
            sys.options()
                .as_ref()
                .unwrap()
                .contains(&"rbind".to_string())
        );
        let no_ids = mounts.iter().all(|m| {
            m.options()
                .as_ref()
                .is_none_or(|o| !o.iter().any(|o| o.starts_with("gid=")))
        });
        assert!(no_ids, "{mounts:?}");
    }
}
