//! Volumes, as docker's `local` driver keeps them: named or anonymous directories under
//! the store root that outlive the containers mounting them.
//!
//! The verbs take and return docker's API models (`bollard-stubs`: [`VolumeCreateRequest`],
//! [`Volume`]), so the Docker-compatible API serves them as they are. On disk and the
//! driver's options: see `local`. How containers mount them (`-v NAME:/path`, `--mount`,
//! the image's `VOLUME`s, `--volumes-from`, copy-up): see [`crate::mounts`].
//!
//! A volume is *in use* while any container (running or not) mounts it, as in docker
//! 20.10: it cannot be removed, and `prune` leaves it.

pub(crate) mod local;

use std::collections::{BTreeMap, HashMap};

pub use bollard_stubs::models::{Volume, VolumeCreateRequest, VolumeScopeEnum};

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::mounts::MountKind;
use local::{DRIVER, Local, Lock, Record};

/// The filter keys [`VolumeFilters`] knows (docker 20.10's, for `ls` and `prune`).
pub const FILTER_KEYS: &[&str] = &["dangling", "name", "driver", "label", "label!"];

/// docker's volume filters: a volume shows when, for each key given, one of its values
/// matches — except labels, which must all match (`label=KEY` or `label=KEY=VALUE`;
/// `label!=` the opposite).
#[derive(Debug, Clone, Default)]
pub struct VolumeFilters {
    by_key: BTreeMap<String, Vec<String>>,
}

impl VolumeFilters {
    /// From `key=value` strings, as the command line takes them (`label!=x` too).
    pub fn parse(filters: &[String]) -> Result<Self> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in filters {
            let (key, value) = match f.split_once("!=") {
                Some((k, v)) if !k.contains('=') => (format!("{k}!"), v),
                _ => match f.split_once('=') {
                    Some((k, v)) => (k.to_string(), v),
                    None => {
                        return Err(EngineError::InvalidArgument(format!(
                            "bad format of filter (expected name=value): {f}"
                        )));
                    }
                },
            };
            by_key.entry(key).or_default().push(value.to_string());
        }
        Self::from_map(by_key)
    }

    /// From docker's API shape: `{"dangling": ["true"], "label": ["a=b"]}`.
    pub fn from_map(by_key: BTreeMap<String, Vec<String>>) -> Result<Self> {
        if let Some(key) = by_key.keys().find(|k| !FILTER_KEYS.contains(&k.as_str())) {
            return Err(EngineError::InvalidArgument(format!(
                "Invalid filter '{key}': use dangling, name, driver or label"
            )));
        }
        for value in by_key.get("dangling").into_iter().flatten() {
            if dangling_value(value).is_none() {
                return Err(EngineError::InvalidArgument(format!(
                    "Invalid filter 'dangling={value}': use true or false"
                )));
            }
        }
        Ok(VolumeFilters { by_key })
    }

    /// Whether `record`, used by `users` containers, shows.
    fn matches(&self, record: &Record, users: usize) -> bool {
        self.by_key.iter().all(|(key, values)| match key.as_str() {
            "dangling" => values.iter().any(|v| dangling_value(v) == Some(users == 0)),
            "name" => values.iter().any(|v| record.name.contains(v.as_str())),
            "driver" => values.contains(&record.driver),
            "label" => values.iter().all(|v| has_label(&record.labels, v)),
            "label!" => values.iter().all(|v| !has_label(&record.labels, v)),
            _ => false,
        })
    }
}

fn dangling_value(value: &str) -> Option<bool> {
    match value {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// `KEY` (present with any value) or `KEY=VALUE`.
fn has_label(labels: &HashMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(filter),
    }
}

/// What [`Engine::prune_volumes`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumePruneReport {
    /// The names of the removed volumes.
    pub deleted: Vec<String>,
    /// Bytes their data held (apparent sizes, as docker counts them).
    pub reclaimed: u64,
}

impl Engine {
    pub(crate) fn local_volumes(&self) -> Local {
        Local::new(&self.paths)
    }

    /// Creates a volume (`docker volume create`, `POST /volumes/create`): named, or given
    /// a 64-hex-digit name when the request has none. Creating a name that exists returns
    /// that volume unchanged, as docker does. Only the `local` driver exists; its options
    /// are `type`, `device` and `o` (a tmpfs, a bind of a host directory, a device),
    /// mounted while containers use the volume.
    pub fn create_volume(&self, request: &VolumeCreateRequest) -> Result<Volume> {
        let name = match request.name.as_deref().filter(|n| !n.is_empty()) {
            Some(name) => name.to_string(),
            None => crate::names::new_container_id()?,
        };
        check_driver(&name, request.driver.as_deref())?;
        if request.cluster_volume_spec.is_some() {
            return Err(EngineError::InvalidArgument(format!(
                "create {name}: ClusterVolumeSpec is not supported: there is no swarm"
            )));
        }
        let local = self.local_volumes();
        let lock = local.lock()?;
        let (record, _) = local.create(
            &lock,
            &name,
            request.labels.clone().unwrap_or_default(),
            request.driver_opts.clone().unwrap_or_default(),
        )?;
        Ok(self.describe_volume(&record))
    }

    /// The volumes that match `filters` (`docker volume ls`, `GET /volumes`), by name.
    pub fn volumes(&self, filters: &VolumeFilters) -> Result<Vec<Volume>> {
        let records = self.local_volumes().list()?;
        let users = self.volume_users()?;
        Ok(records
            .iter()
            .filter(|r| filters.matches(r, users.get(&r.name).map_or(0, Vec::len)))
            .map(|r| self.describe_volume(r))
            .collect())
    }

    /// Volume `name` (`docker volume inspect`, `GET /volumes/{name}`).
    pub fn volume(&self, name: &str) -> Result<Volume> {
        let record = self
            .local_volumes()
            .get(name)?
            .ok_or_else(|| EngineError::NoSuchVolume(name.to_string()))?;
        Ok(self.describe_volume(&record))
    }

    /// Removes volume `name` and its data (`docker volume rm`, `DELETE /volumes/{name}`).
    /// A volume any container mounts is refused (a conflict naming the containers), as in
    /// docker; `force` makes a missing volume no error.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        let local = self.local_volumes();
        let lock = local.lock()?;
        if local.get(name)?.is_none() {
            return match force {
                true => Ok(()),
                false => Err(EngineError::NoSuchVolume(name.to_string())),
            };
        }
        self.remove_unused_volume(&local, &lock, name, None)
    }

    /// Removes `name` unless a container uses it (the lock held).
    fn remove_unused_volume(
        &self,
        local: &Local,
        lock: &Lock,
        name: &str,
        leaving: Option<&str>,
    ) -> Result<()> {
        let mut users = self.volume_users()?.remove(name).unwrap_or_default();
        users.retain(|id| Some(id.as_str()) != leaving);
        if !users.is_empty() {
            return Err(EngineError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        local.sweep();
        local.remove(lock, name)
    }

    /// Removes every volume no container uses (`docker volume prune`, `POST
    /// /volumes/prune`), as docker 20.10 does: named and anonymous ones alike, except those
    /// with driver options (their data may be a host directory), and only those with the
    /// labels `filters` asks for (`label`, `label!`; no other key).
    pub fn prune_volumes(&self, filters: &VolumeFilters) -> Result<VolumePruneReport> {
        if let Some(key) = filters
            .by_key
            .keys()
            .find(|k| !matches!(k.as_str(), "label" | "label!"))
        {
            return Err(EngineError::InvalidArgument(format!(
                "Invalid filter '{key}': prune takes label and label!"
            )));
        }
        let local = self.local_volumes();
        let lock = local.lock()?;
        local.sweep();
        let users = self.volume_users()?;
        let mut report = VolumePruneReport::default();
        for record in local.list()? {
            if users.contains_key(&record.name)
                || !record.options.is_empty()
                || !filters.matches(&record, 0)
            {
                continue;
            }
            let size = data_size(&local.data(&record.name));
            local.remove(&lock, &record.name)?;
            report.reclaimed += size;
            report.deleted.push(record.name);
        }
        Ok(report)
    }

    /// Which containers mount each volume: name → container ids.
    pub(crate) fn volume_users(&self) -> Result<BTreeMap<String, Vec<String>>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in self.containers()? {
            for name in volume_names(&c) {
                let ids = users.entry(name).or_default();
                if !ids.contains(&c.record.id) {
                    ids.push(c.record.id.clone());
                }
            }
        }
        Ok(users)
    }

    /// Removes the anonymous volumes of container `c`, which is being removed, that no
    /// other container uses (`rm -v`, `--rm`); named volumes stay. Failures are logged:
    /// the container goes either way. Returns the volumes lock, for the caller to hold
    /// until `c`'s record is gone (no `--volumes-from c` may pick up a volume in between).
    pub(crate) fn remove_anonymous_volumes(&self, c: &Container) -> Option<Lock> {
        let anonymous: Vec<&str> = c
            .config
            .mounts
            .iter()
            .filter(|m| m.kind == MountKind::Volume && m.anonymous)
            .filter_map(|m| m.name.as_deref())
            .collect();
        if anonymous.is_empty() {
            return None;
        }
        let local = self.local_volumes();
        let lock = match local.lock() {
            Ok(lock) => lock,
            Err(e) => {
                tracing::warn!("removing the anonymous volumes of {}: {e}", c.id());
                return None;
            }
        };
        let removed = anonymous.into_iter().try_for_each(|name| {
            if local.get(name)?.is_none() {
                return Ok(());
            }
            match self.remove_unused_volume(&local, &lock, name, Some(c.id())) {
                // Another container (--volumes-from) still has it.
                Err(EngineError::Conflict(_)) => Ok(()),
                other => other,
            }
        });
        if let Err(e) = removed {
            tracing::warn!("removing the anonymous volumes of {}: {e}", c.id());
        }
        Some(lock)
    }

    /// Mounts the option volumes (tmpfs, bind, device) `c` uses, for its start.
    pub(crate) fn mount_volumes(&self, c: &Container) -> Result<()> {
        let local = self.local_volumes();
        let records = option_volumes(&local, c)?;
        if records.is_empty() {
            return Ok(());
        }
        let lock = local.lock()?;
        for record in &records {
            local.mount(&lock, record)?;
        }
        Ok(())
    }

    /// After `c`'s final exit: unmounts the option volumes it used that no other live
    /// container (or starting one: its supervisor is alive) uses, as docker unmounts a
    /// volume when its last user stops. A tmpfs volume's data goes with it.
    pub(crate) fn release_volumes(&self, c: &Container) {
        let local = self.local_volumes();
        let released = option_volumes(&local, c).and_then(|records| {
            if records.is_empty() {
                return Ok(());
            }
            let _lock = local.lock()?;
            let others: Vec<Container> = self
                .containers()?
                .into_iter()
                .filter(|o| o.id() != c.id())
                .filter(|o| self.status(o).is_up() || crate::status::supervisor_alive(&o.paths))
                .collect();
            for record in records {
                let busy = others
                    .iter()
                    .any(|o| volume_names(o).any(|n| n == record.name));
                if !busy {
                    local.unmount(&record.name)?;
                }
            }
            Ok(())
        });
        if let Err(e) = released {
            tracing::warn!("unmounting the volumes of {}: {e}", c.id());
        }
    }

    pub(crate) fn describe_volume(&self, record: &Record) -> Volume {
        Volume {
            name: record.name.clone(),
            driver: record.driver.clone(),
            mountpoint: self
                .local_volumes()
                .data(&record.name)
                .display()
                .to_string(),
            created_at: Some(created_at(record.created)),
            status: None,
            labels: record.labels.clone(),
            scope: Some(VolumeScopeEnum::LOCAL),
            cluster_volume: None,
            options: record.options.clone(),
            usage_data: None,
        }
    }
}

/// The volumes container `c` mounts, by name.
fn volume_names(c: &Container) -> impl Iterator<Item = String> + '_ {
    c.config
        .mounts
        .iter()
        .filter(|m| m.kind == MountKind::Volume)
        .filter_map(|m| m.name.clone())
}

/// The records of `c`'s volumes that need a mount of their own.
fn option_volumes(local: &Local, c: &Container) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    for name in volume_names(c) {
        if let Some(record) = local.get(&name)?
            && record.needs_mount()
            && !records.iter().any(|r: &Record| r.name == name)
        {
            records.push(record);
        }
    }
    Ok(records)
}

/// `None`, empty or `local`; anything else is docker's "plugin not found".
pub(crate) fn check_driver(name: &str, driver: Option<&str>) -> Result<()> {
    match driver {
        None | Some("") | Some(DRIVER) => Ok(()),
        Some(other) => Err(EngineError::InvalidArgument(format!(
            "create {name}: error looking up volume plugin {other}: plugin {other:?} not \
             found (only the local driver is available)"
        ))),
    }
}

/// docker's `CreatedAt`: RFC 3339 to the second.
fn created_at(nanos: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The apparent size of a volume's data; 0 when it cannot be measured (the number is
/// only reported).
fn data_size(data: &std::path::Path) -> u64 {
    let measured = std::fs::File::open(data)
        .map_err(|e| e.to_string())
        .and_then(|dir| {
            basic_rootfs::tree::apparent_size(std::os::fd::AsFd::as_fd(&dir))
                .map_err(|e| e.to_string())
        });
    measured.unwrap_or_else(|e| {
        tracing::debug!("measuring {}: {e}", data.display());
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, labels: &[(&str, &str)]) -> Record {
        Record {
            name: name.into(),
            driver: DRIVER.into(),
            created: 0,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            options: HashMap::new(),
        }
    }

    fn shows(filters: &[&str], r: &Record, users: usize) -> bool {
        let filters: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
        VolumeFilters::parse(&filters).unwrap().matches(r, users)
    }

    #[test]
    fn filters_as_docker_reads_them() {
        let web = record("web-data", &[("team", "web"), ("tier", "front")]);
        assert!(shows(&[], &web, 1));
        assert!(shows(&["dangling=true"], &web, 0));
        assert!(!shows(&["dangling=true"], &web, 2));
        assert!(shows(&["dangling=0"], &web, 2));
        assert!(shows(&["name=data"], &web, 0));
        assert!(
            shows(&["name=nope", "name=web"], &web, 0),
            "one name of several"
        );
        assert!(!shows(&["name=nope"], &web, 0));
        assert!(shows(&["label=team", "label=tier=front"], &web, 0));
        assert!(
            !shows(&["label=team", "label=tier=back"], &web, 0),
            "all labels"
        );
        assert!(shows(&["label!=tier=back"], &web, 0));
        assert!(!shows(&["label!=team"], &web, 0));
        assert!(shows(&["driver=local"], &web, 0));
        for bad in ["colour=red", "dangling=maybe", "novalue"] {
            let e = VolumeFilters::parse(&[bad.to_string()]).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{bad}: {e}");
        }
    }

    #[test]
    fn only_the_local_driver_exists() {
        check_driver("v", None).unwrap();
        check_driver("v", Some("local")).unwrap();
        let e = check_driver("v", Some("nfs-plugin")).unwrap_err();
        assert!(
            e.to_string().contains("plugin \"nfs-plugin\" not found"),
            "{e}"
        );
        assert_eq!(
            created_at(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20Z"
        );
    }
}
