//! A container's mounts: docker's `HostConfig.Binds` (`-v`), `HostConfig.Mounts`
//! (`--mount`), `HostConfig.VolumesFrom`, `Config.Volumes` and the image's `VOLUME`s,
//! resolved once, at create, into the list the engine keeps with the container
//! ([`ContainerMount`]): from then on a volume is known by name and path, an anonymous one
//! included, and `inspect`, `rm -v`, `--volumes-from` and `volume rm` read that list.
//!
//! At create, as docker's daemon does:
//! 1. `VolumesFrom`: the other container's mounts, read-only or read-write as asked (by
//!    default as they were there);
//! 2. `Binds` and `Mounts` (the same destination twice is an error), replacing those;
//! 3. an anonymous volume for each destination of `Config.Volumes` and the image's
//!    `VOLUME`s that has nothing mounted yet.
//!
//! A named volume that does not exist is created. A volume whose data directory is empty
//! is filled from the image's content at the destination (copy-up), unless `nocopy` was
//! asked for: the destination is resolved inside the container's root (a symlink there
//! leads somewhere inside the root, never to the host), and the copy goes through
//! descriptors without following any symlink (`basic_rootfs::tree`).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};

use basic_runtime::Spec;
use basic_runtime::in_root::{Root, lexical};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::MountBuilder;
use serde::{Deserialize, Serialize};

pub use bollard_stubs::models::{
    Mount, MountBindOptions, MountBindOptionsPropagationEnum, MountPoint, MountType,
    MountVolumeOptions, MountVolumeOptionsDriverConfig,
};

use crate::config::ContainerConfig;
use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::volumes::local::{self, Local, Lock, Record};

/// What a container mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A volume of the engine's (named or anonymous).
    Volume,
    /// A host path.
    Bind,
}

/// One mount of a container, as the engine keeps it: docker's `MountPoint`, plus whether
/// the volume was anonymous (then `rm -v` removes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerMount {
    /// Volume or bind.
    pub kind: MountKind,
    /// The volume's name (volumes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The host path mounted: a bind's source, a volume's data directory.
    pub source: PathBuf,
    /// Where, inside the container (absolute, without `.` or `..`).
    pub destination: String,
    /// Writable.
    pub read_write: bool,
    /// The mode as given (`ro`, `z`, …), as docker's inspect shows it.
    #[serde(default)]
    pub mode: String,
    /// Propagation (binds: `rprivate` unless given; volumes: none given).
    #[serde(default)]
    pub propagation: String,
    /// A bind of the source alone, without the mounts below it.
    #[serde(default)]
    pub non_recursive: bool,
    /// An anonymous volume (made for `-v /path`, `--mount` without a source, or an image's
    /// `VOLUME`): removed with its container by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous: bool,
}

impl ContainerMount {
    /// docker's `MountPoint`, as `inspect` shows it.
    pub fn mount_point(&self) -> MountPoint {
        let volume = self.kind == MountKind::Volume;
        MountPoint {
            typ: Some(if volume { "volume" } else { "bind" }.to_string()),
            name: self.name.clone().filter(|_| volume),
            source: Some(self.source.display().to_string()),
            destination: Some(self.destination.clone()),
            driver: volume.then(|| local::DRIVER.to_string()),
            mode: Some(self.mode.clone()),
            rw: Some(self.read_write),
            propagation: Some(self.propagation.clone()),
        }
    }
}

/// Where a requested mount comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// A volume: named (created when missing, with these labels and driver options), or
    /// anonymous.
    Volume {
        name: Option<String>,
        labels: HashMap<String, String>,
        options: HashMap<String, String>,
    },
    /// A host path; `create`: made when missing (`-v`), else it must exist (`--mount`).
    Bind { path: String, create: bool },
}

/// A mount a container asks for, before its volume is found or made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Request {
    pub source: Source,
    pub destination: String,
    pub read_only: bool,
    pub mode: String,
    pub propagation: Option<String>,
    /// Copy the image's content into an empty volume.
    pub copy: bool,
    pub non_recursive: bool,
}

/// Checks everything about the config's mounts that can be checked without the machine:
/// the syntax of `Binds`, `Mounts`, `VolumesFrom` and `Config.Volumes`, volume names,
/// duplicate destinations.
pub(crate) fn check(config: &ContainerConfig) -> Result<()> {
    requests(config)?;
    let host = config.host_config.clone().unwrap_or_default();
    for spec in host.volumes_from.iter().flatten() {
        volumes_from(spec)?;
    }
    for path in config.volumes.iter().flatten() {
        destination(path, path, "volume")?;
    }
    if let Some(driver) = host.volume_driver.as_deref() {
        crate::volumes::check_driver("the container's volumes", Some(driver))?;
    }
    Ok(())
}

/// Whether a container of `config` on an image with `image_volumes` mounts anything.
pub(crate) fn wanted(config: &ContainerConfig, image_volumes: &[String]) -> Result<bool> {
    let host = config.host_config.clone().unwrap_or_default();
    Ok(!requests(config)?.is_empty()
        || host.volumes_from.as_ref().is_some_and(|v| !v.is_empty())
        || !anonymous_destinations(config, image_volumes)?.is_empty())
}

/// `Binds` then `Mounts`, parsed; the same destination twice is docker's "Duplicate mount
/// point".
pub(crate) fn requests(config: &ContainerConfig) -> Result<Vec<Request>> {
    let host = config.host_config.clone().unwrap_or_default();
    let mut out: Vec<Request> = Vec::new();
    let binds = host.binds.iter().flatten().map(|b| parse_bind(b));
    let mounts = host.mounts.iter().flatten().map(from_mount);
    for request in binds.chain(mounts) {
        let request = request?;
        if out.iter().any(|r| r.destination == request.destination) {
            return Err(EngineError::InvalidArgument(format!(
                "Duplicate mount point: {}",
                request.destination
            )));
        }
        out.push(request);
    }
    Ok(out)
}

/// One `Binds` entry, as docker's Linux parser reads it: `[SOURCE:]DESTINATION[:MODE]`,
/// where an absolute source is a host path and any other a volume's name, and MODE is a
/// comma-separated list of `ro`/`rw`, `z`/`Z`, a propagation and `nocopy`.
fn parse_bind(raw: &str) -> Result<Request> {
    let invalid = || EngineError::InvalidArgument(format!("invalid volume specification: '{raw}'"));
    let parts: Vec<&str> = raw.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [t] if !t.is_empty() => ("", *t, ""),
        [t, m] if is_mode(m) => ("", *t, *m),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(invalid()),
    };
    if parts.len() > 1 && source.is_empty() && !is_mode(parts[1]) {
        return Err(invalid());
    }
    let bind = source.starts_with('/');
    let kind = if bind { "bind" } else { "volume" };
    let destination = destination(raw, target, kind)?;
    let mode_spec = parse_mode(mode)?;
    if bind && mode_spec.nocopy {
        return Err(EngineError::InvalidArgument(format!(
            "invalid mode: {mode}"
        )));
    }
    if !bind && mode_spec.propagation.is_some() {
        return Err(EngineError::InvalidArgument(format!(
            "invalid volume specification: '{raw}': a propagation is only for host paths"
        )));
    }
    let source = if bind {
        Source::Bind {
            path: clean_host_path(source),
            create: true,
        }
    } else {
        let name = (!source.is_empty()).then(|| source.to_string());
        if let Some(name) = &name {
            local::check_name(name)
                .map_err(|why| EngineError::InvalidArgument(format!("create {name}: {why}")))?;
        }
        Source::Volume {
            name,
            labels: HashMap::new(),
            options: HashMap::new(),
        }
    };
    let named_volume = matches!(&source, Source::Volume { name: Some(_), .. });
    Ok(Request {
        destination,
        read_only: mode_spec.read_only,
        // docker shows `z` for a named volume given without a mode.
        mode: if mode.is_empty() && named_volume {
            "z".to_string()
        } else {
            mode.to_string()
        },
        propagation: mode_spec.propagation,
        copy: !mode_spec.nocopy,
        non_recursive: false,
        source,
    })
}

#[derive(Debug, Default)]
struct ModeSpec {
    read_only: bool,
    propagation: Option<String>,
    nocopy: bool,
}

const PROPAGATIONS: &[&str] = &[
    "shared", "rshared", "slave", "rslave", "private", "rprivate",
];

fn is_mode(text: &str) -> bool {
    parse_mode(text).is_ok() && !text.is_empty()
}

/// `ro`/`rw`, `z`/`Z` (SELinux relabelling: nothing to do on a host without it), one
/// propagation, `nocopy`; each at most once.
fn parse_mode(mode: &str) -> Result<ModeSpec> {
    let bad = || EngineError::InvalidArgument(format!("invalid mode: {mode}"));
    let mut spec = ModeSpec::default();
    let (mut access, mut label) = (false, false);
    for word in mode.split(',').filter(|w| !w.is_empty()) {
        match word {
            "ro" | "rw" if !access => {
                access = true;
                spec.read_only = word == "ro";
            }
            "z" | "Z" if !label => label = true,
            "nocopy" if !spec.nocopy => spec.nocopy = true,
            p if PROPAGATIONS.contains(&p) && spec.propagation.is_none() => {
                spec.propagation = Some(p.to_string());
            }
            _ => return Err(bad()),
        }
    }
    Ok(spec)
}

/// A mount destination: absolute, not `/`, taken lexically (`/data/` is `/data`).
fn destination(raw: &str, target: &str, kind: &str) -> Result<String> {
    if !target.starts_with('/') {
        return Err(EngineError::InvalidArgument(format!(
            "invalid volume specification: '{raw}': invalid mount config for type \"{kind}\": \
             invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    let clean = lexical(Path::new(target));
    if clean == Path::new("/") {
        return Err(EngineError::InvalidArgument(format!(
            "invalid volume specification: '{raw}': invalid mount config for type \"{kind}\": \
             destination can't be '/'"
        )));
    }
    Ok(clean.display().to_string())
}

/// A host path without `.`/`..` or a trailing `/` (the user's path, trusted: taken
/// lexically, as docker's `filepath.Clean`).
fn clean_host_path(path: &str) -> String {
    lexical(Path::new(path)).display().to_string()
}

/// One `Mounts` entry (`--mount`): types `volume` and `bind`; the others are refused by
/// name rather than ignored.
fn from_mount(m: &Mount) -> Result<Request> {
    let typ = m.typ.unwrap_or(MountType::VOLUME);
    let target = m.target.clone().unwrap_or_default();
    let shown = format!("{typ}:{target}");
    let invalid = |why: &str| {
        EngineError::InvalidArgument(format!("invalid mount config for type \"{typ}\": {why}"))
    };
    if target.is_empty() {
        return Err(invalid("field Target must not be empty"));
    }
    let destination = destination(&shown, &target, &typ.to_string())?;
    let read_only = m.read_only.unwrap_or(false);
    let source = m.source.clone().unwrap_or_default();
    match typ {
        MountType::VOLUME => {
            if m.bind_options.is_some() {
                return Err(invalid("field BindOptions must not be specified"));
            }
            let options = m.volume_options.clone().unwrap_or_default();
            if options.subpath.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(invalid(
                    "VolumeOptions.Subpath is not supported by this engine (refused rather than ignored)",
                ));
            }
            let driver = options.driver_config.clone().unwrap_or_default();
            let name = (!source.is_empty()).then_some(source);
            if let Some(name) = &name {
                local::check_name(name)
                    .map_err(|why| EngineError::InvalidArgument(format!("create {name}: {why}")))?;
            }
            crate::volumes::check_driver(
                name.as_deref().unwrap_or("an anonymous volume"),
                driver.name.as_deref(),
            )?;
            Ok(Request {
                mode: if name.is_some() { "z" } else { "" }.to_string(),
                source: Source::Volume {
                    name,
                    labels: options.labels.unwrap_or_default(),
                    options: driver.options.unwrap_or_default(),
                },
                destination,
                read_only,
                propagation: None,
                copy: !options.no_copy.unwrap_or(false),
                non_recursive: false,
            })
        }
        MountType::BIND => {
            if m.volume_options.is_some() {
                return Err(invalid("field VolumeOptions must not be specified"));
            }
            if !source.starts_with('/') {
                return Err(invalid(&format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            let options = m.bind_options.clone().unwrap_or_default();
            if options.read_only_force_recursive == Some(true) {
                return Err(invalid(
                    "BindOptions.ReadOnlyForceRecursive is not supported by this engine (refused rather than ignored)",
                ));
            }
            let create = options.create_mountpoint.unwrap_or(false);
            Ok(Request {
                source: Source::Bind {
                    path: clean_host_path(&source),
                    create,
                },
                destination,
                read_only,
                mode: String::new(),
                propagation: options
                    .propagation
                    .filter(|p| *p != MountBindOptionsPropagationEnum::EMPTY)
                    .map(|p| p.to_string()),
                copy: false,
                non_recursive: options.non_recursive.unwrap_or(false),
            })
        }
        other => Err(EngineError::InvalidArgument(format!(
            "HostConfig.Mounts of type {other} are not supported by this engine (refused rather than ignored)"
        ))),
    }
}

/// A `VolumesFrom` entry: `CONTAINER[:ro|:rw]`: the container, and whether its mounts
/// are forced read-only (`Some(true)`) or writable (`Some(false)`).
pub(crate) fn volumes_from(spec: &str) -> Result<(String, Option<bool>)> {
    let bad =
        || EngineError::InvalidArgument(format!("malformed volumes-from specification: {spec}"));
    let (container, mode) = match spec.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (spec, None),
    };
    if container.is_empty() {
        return Err(bad());
    }
    let read_only = match mode {
        None => None,
        Some(m) => {
            let parsed = parse_mode(m).map_err(|_| bad())?;
            if parsed.nocopy || parsed.propagation.is_some() {
                return Err(bad());
            }
            // `z` alone keeps each mount as it was.
            m.split(',')
                .any(|w| w == "ro" || w == "rw")
                .then_some(parsed.read_only)
        }
    };
    Ok((container.to_string(), read_only))
}

/// The destinations that get anonymous volumes when nothing else is mounted there:
/// `Config.Volumes` (`-v /path`) and the image's `VOLUME`s, cleaned, sorted, once each.
pub(crate) fn anonymous_destinations(
    config: &ContainerConfig,
    image_volumes: &[String],
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for path in config.volumes.iter().flatten().chain(image_volumes) {
        let dest = destination(path, path, "volume")?;
        if !out.contains(&dest) {
            out.push(dest);
        }
    }
    out.sort();
    Ok(out)
}

/// Adds `mounts` to the spec as bind mounts, parents before what is mounted inside them.
pub fn add_to_spec(spec: &mut Spec, mounts: &[ContainerMount]) -> Result<()> {
    let mut ordered: Vec<&ContainerMount> = mounts.iter().collect();
    ordered.sort_by_key(|m| {
        (
            Path::new(&m.destination).components().count(),
            m.destination.clone(),
        )
    });
    let mut all = spec.mounts().clone().unwrap_or_default();
    for m in ordered {
        let bind = if m.non_recursive { "bind" } else { "rbind" };
        let propagation = if m.propagation.is_empty() {
            "rprivate"
        } else {
            m.propagation.as_str()
        };
        let mut options = vec![bind.to_string(), propagation.to_string()];
        if !m.read_write {
            options.push("ro".to_string());
        }
        all.push(
            MountBuilder::default()
                .destination(&m.destination)
                .typ("bind")
                .source(&m.source)
                .options(options)
                .build()?,
        );
    }
    spec.set_mounts(Some(all));
    Ok(())
}

/// `--mount` as docker's command line reads it: comma-separated `KEY=VALUE` fields
/// (`type`, `source`/`src`, `target`/`destination`/`dst`, `readonly`/`ro`,
/// `volume-nocopy`, `volume-label`, `volume-driver`, `volume-opt`, `bind-propagation`,
/// `bind-nonrecursive`, `consistency`); the type defaults to `volume`.
pub fn parse_mount_flag(text: &str) -> Result<Mount> {
    let bad = |why: String| {
        EngineError::InvalidArgument(format!(
            "invalid argument \"{text}\" for \"--mount\" flag: {why}"
        ))
    };
    let mut mount = Mount::default();
    let mut volume = MountVolumeOptions::default();
    let mut bind = MountBindOptions::default();
    let (mut any_volume, mut any_bind) = (false, false);
    let boolean = |key: &str, value: Option<&str>| -> Result<bool> {
        match value {
            None | Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err(bad(format!("invalid value for {key}: {v}"))),
        }
    };
    for field in text.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let needs = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| bad(format!("invalid field '{field}' must be a key=value pair")))
        };
        match key.as_str() {
            "type" => {
                let v = needs(value)?;
                mount.typ = Some(
                    v.parse()
                        .map_err(|()| bad(format!("invalid type {v:?}: use volume or bind")))?,
                );
            }
            "source" | "src" => mount.source = Some(needs(value)?),
            "target" | "destination" | "dst" => mount.target = Some(needs(value)?),
            "readonly" | "ro" => mount.read_only = Some(boolean(&key, value)?),
            "consistency" => mount.consistency = Some(needs(value)?),
            "volume-nocopy" => {
                volume.no_copy = Some(boolean(&key, value)?);
                any_volume = true;
            }
            "volume-label" => {
                let v = needs(value)?;
                let (k, v) = v.split_once('=').unwrap_or((v.as_str(), ""));
                volume
                    .labels
                    .get_or_insert_with(HashMap::new)
                    .insert(k.to_string(), v.to_string());
                any_volume = true;
            }
            "volume-driver" => {
                volume
                    .driver_config
                    .get_or_insert_with(Default::default)
                    .name = Some(needs(value)?);
                any_volume = true;
            }
            "volume-opt" => {
                let v = needs(value)?;
                let (k, v) = v
                    .split_once('=')
                    .ok_or_else(|| bad(format!("invalid volume-opt {v:?}: expected KEY=VALUE")))?;
                volume
                    .driver_config
                    .get_or_insert_with(Default::default)
                    .options
                    .get_or_insert_with(HashMap::new)
                    .insert(k.to_string(), v.to_string());
                any_volume = true;
            }
            "bind-propagation" => {
                let v = needs(value)?;
                bind.propagation = Some(v.parse().map_err(|_| {
                    bad(format!(
                        "invalid bind-propagation {v:?}: use one of {}",
                        PROPAGATIONS.join(", ")
                    ))
                })?);
                any_bind = true;
            }
            "bind-nonrecursive" => {
                bind.non_recursive = Some(boolean(&key, value)?);
                any_bind = true;
            }
            _ => return Err(bad(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    let typ = mount.typ.unwrap_or(MountType::VOLUME);
    mount.typ = Some(typ);
    if mount.target.as_deref().unwrap_or("").is_empty() {
        return Err(bad("target is required".into()));
    }
    match typ {
        MountType::VOLUME if any_bind => {
            return Err(bad(
                "cannot mix 'bind-*' options with mount type 'volume'".into()
            ));
        }
        MountType::BIND if any_volume => {
            return Err(bad(
                "cannot mix 'volume-*' options with mount type 'bind'".into()
            ));
        }
        _ => {}
    }
    if any_volume {
        mount.volume_options = Some(volume);
    }
    if any_bind {
        mount.bind_options = Some(bind);
    }
    Ok(mount)
}

impl Engine {
    /// Resolves `config`'s mounts for a new container whose root is mounted at `rootfs`:
    /// finds or creates its volumes (recording each new one in `made`, so a failed create
    /// can remove them), fills empty ones from the image, creates missing `-v` host
    /// directories. Called with the volumes lock held.
    pub(crate) fn resolve_mounts(
        &self,
        config: &ContainerConfig,
        image_volumes: &[String],
        rootfs: &Path,
        lock: &Lock,
        made: &mut Vec<String>,
    ) -> Result<Vec<ContainerMount>> {
        let host = config.host_config.clone().unwrap_or_default();
        let mut by_destination: BTreeMap<String, ContainerMount> = BTreeMap::new();
        for spec in host.volumes_from.iter().flatten() {
            let (query, read_only) = volumes_from(spec)?;
            let from = self.container(&query)?;
            for m in &from.config.mounts {
                let mut inherited = m.clone();
                inherited.mode = spec
                    .split_once(':')
                    .map(|(_, mode)| mode.to_string())
                    .unwrap_or_default();
                if let Some(read_only) = read_only {
                    inherited.read_write = !read_only;
                }
                by_destination.insert(inherited.destination.clone(), inherited);
            }
        }
        let local = Local::new(&self.paths);
        for request in requests(config)? {
            let m = self.realize(&local, lock, request, rootfs, made)?;
            by_destination.insert(m.destination.clone(), m);
        }
        for dest in anonymous_destinations(config, image_volumes)? {
            if by_destination.contains_key(&dest) {
                continue;
            }
            let request = Request {
                source: Source::Volume {
                    name: None,
                    labels: HashMap::new(),
                    options: HashMap::new(),
                },
                destination: dest,
                read_only: false,
                mode: String::new(),
                propagation: None,
                copy: true,
                non_recursive: false,
            };
            let m = self.realize(&local, lock, request, rootfs, made)?;
            by_destination.insert(m.destination.clone(), m);
        }
        Ok(by_destination.into_values().collect())
    }

    fn realize(
        &self,
        local: &Local,
        lock: &Lock,
        request: Request,
        rootfs: &Path,
        made: &mut Vec<String>,
    ) -> Result<ContainerMount> {
        match request.source {
            Source::Volume {
                name,
                labels,
                options,
            } => {
                let anonymous = name.is_none();
                let name = match name {
                    Some(name) => name,
                    None => crate::names::new_container_id()?,
                };
                let (record, new) = local.create(lock, &name, labels, options)?;
                if new {
                    made.push(name.clone());
                }
                if request.copy {
                    self.copy_up(local, lock, &record, rootfs, &request.destination)?;
                }
                Ok(ContainerMount {
                    kind: MountKind::Volume,
                    source: local.data(&name),
                    name: Some(name),
                    destination: request.destination,
                    read_write: !request.read_only,
                    mode: request.mode,
                    propagation: String::new(),
                    non_recursive: false,
                    anonymous,
                })
            }
            Source::Bind { path, create } => {
                let source = PathBuf::from(&path);
                if !source.exists() {
                    if !create {
                        return Err(EngineError::InvalidArgument(format!(
                            "invalid mount config for type \"bind\": bind source path does not exist: {path}"
                        )));
                    }
                    // docker creates a missing `-v` source directory.
                    std::fs::create_dir_all(&source)
                        .map_err(EngineError::io("creating volume source", &source))?;
                }
                Ok(ContainerMount {
                    kind: MountKind::Bind,
                    name: None,
                    source,
                    destination: request.destination,
                    read_write: !request.read_only,
                    mode: request.mode,
                    propagation: request.propagation.unwrap_or_else(|| "rprivate".into()),
                    non_recursive: request.non_recursive,
                    anonymous: false,
                })
            }
        }
    }

    /// docker's copy-up: when the volume's data is empty, the image's content at
    /// `destination` (resolved inside the root) is copied into it. An option volume is
    /// mounted for the copy and unmounted after unless a container uses it (a tmpfs
    /// volume thus starts empty, as in docker).
    fn copy_up(
        &self,
        local: &Local,
        lock: &Lock,
        record: &Record,
        rootfs: &Path,
        destination: &str,
    ) -> Result<()> {
        if record.needs_mount() {
            local.mount(lock, record)?;
        }
        let copied = copy_image_content(rootfs, destination, &local.data(&record.name));
        if record.needs_mount() && !self.volume_busy(&record.name, None)? {
            local.unmount(&record.name)?;
        }
        copied.map_err(|source| EngineError::CopyUp {
            volume: record.name.clone(),
            destination: destination.to_string(),
            source,
        })
    }

    /// Whether a container other than `except` runs with volume `name` (or is about to:
    /// its supervisor is alive).
    pub(crate) fn volume_busy(&self, name: &str, except: Option<&str>) -> Result<bool> {
        for c in self.containers()? {
            if Some(c.id()) == except {
                continue;
            }
            let uses = c
                .config
                .mounts
                .iter()
                .any(|m| m.kind == MountKind::Volume && m.name.as_deref() == Some(name));
            if uses && (self.status(&c).is_up() || crate::status::supervisor_alive(&c.paths)) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Copies what the root at `rootfs` has at `destination` into `data` when `data` is
/// empty. A destination that is missing or not a directory gives nothing to copy.
fn copy_image_content(
    rootfs: &Path,
    destination: &str,
    data: &Path,
) -> std::result::Result<(), basic_rootfs::tree::TreeError> {
    let io = |source: std::io::Error| basic_rootfs::tree::TreeError::Io {
        path: PathBuf::new(),
        source,
    };
    let root = Root::open(rootfs).map_err(io)?;
    let resolved = match root.resolve(Path::new(destination)) {
        Ok(resolved) => resolved,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => return Ok(()),
        Err(e) => return Err(io(e)),
    };
    // The resolved handle is O_PATH: open the directory itself through it.
    let src = match nix::fcntl::openat(
        &resolved.fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::Error::ENOTDIR) => return Ok(()),
        Err(e) => return Err(io(e.into())),
    };
    let dst = nix::fcntl::open(
        data,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    if !basic_rootfs::tree::is_empty(dst.as_fd())? {
        return Ok(());
    }
    basic_rootfs::tree::copy_contents(src.as_fd(), dst.as_fd()).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HostConfig;

    fn host(h: HostConfig) -> ContainerConfig {
        ContainerConfig {
            host_config: Some(h),
            ..Default::default()
        }
    }

    fn binds(list: &[&str]) -> Result<Vec<Request>> {
        requests(&host(HostConfig {
            binds: Some(list.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }))
    }

    #[test]
    fn binds_read_as_dockers_linux_parser_reads_them() {
        let r = binds(&[
            "data:/srv/data/",
            "/host/dir/../x:/x:ro,rshared",
            "/anon",
            "/anon-ro:ro",
            "cache:/c:nocopy,z",
        ])
        .unwrap();
        assert_eq!(r[0].destination, "/srv/data");
        assert!(matches!(&r[0].source, Source::Volume { name: Some(n), .. } if n == "data"));
        assert_eq!(r[0].mode, "z");
        assert!(r[0].copy && !r[0].read_only);
        assert!(matches!(&r[1].source, Source::Bind { path, create: true } if path == "/host/x"));
        assert!(r[1].read_only);
        assert_eq!(r[1].propagation.as_deref(), Some("rshared"));
        assert!(matches!(&r[2].source, Source::Volume { name: None, .. }));
        assert_eq!(r[2].mode, "");
        assert!(r[3].read_only && matches!(&r[3].source, Source::Volume { name: None, .. }));
        assert!(!r[4].copy, "nocopy");
        for (bad, says) in [
            ("a:b:c:d", "invalid volume specification: 'a:b:c:d'"),
            ("data:relative", "mount path must be absolute"),
            ("/x:/y:rx", "invalid mode: rx"),
            ("/x:/y:ro,rw", "invalid mode: ro,rw"),
            ("/x:/y:nocopy", "invalid mode: nocopy"),
            ("data:/y:rshared", "only for host paths"),
            ("../x:/y", "includes invalid characters"),
            ("a:/y", "too short"),
            ("data:/", "can't be '/'"),
            (":/y", "invalid volume specification"),
        ] {
            let e = binds(&[bad]).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = binds(&["a1:/x", "/h:/x/"]).unwrap_err().to_string();
        assert_eq!(e, "Duplicate mount point: /x");
    }

    #[test]
    fn mount_flags_become_dockers_mounts() {
        let m = parse_mount_flag("type=volume,source=data,target=/d,readonly,volume-nocopy,volume-label=a=b,volume-opt=type=tmpfs,volume-opt=device=tmpfs").unwrap();
        assert_eq!(m.typ, Some(MountType::VOLUME));
        assert_eq!(m.read_only, Some(true));
        let v = m.volume_options.clone().unwrap();
        assert_eq!(v.no_copy, Some(true));
        assert_eq!(v.labels.unwrap()["a"], "b");
        assert_eq!(v.driver_config.unwrap().options.unwrap()["type"], "tmpfs");
        let r = from_mount(&m).unwrap();
        assert!(r.read_only && !r.copy);
        assert!(
            matches!(&r.source, Source::Volume { options, .. } if options["device"] == "tmpfs")
        );
        let m =
            parse_mount_flag("type=bind,src=/srv,dst=/s,bind-propagation=rslave,ro=false").unwrap();
        let r = from_mount(&m).unwrap();
        assert!(!r.read_only);
        assert_eq!(r.propagation.as_deref(), Some("rslave"));
        assert!(matches!(&r.source, Source::Bind { create: false, .. }));
        let anonymous = from_mount(&parse_mount_flag("target=/a").unwrap()).unwrap();
        assert!(matches!(
            &anonymous.source,
            Source::Volume { name: None, .. }
        ));
        for (bad, says) in [
            ("type=volume", "target is required"),
            (
                "type=volume,target=/x,colour=red",
                "unexpected key 'colour'",
            ),
            ("type=bind,target=/x,volume-nocopy", "cannot mix"),
            ("type=floppy,target=/x", "invalid type"),
            ("target=/x,readonly=maybe", "invalid value for readonly"),
            ("target=/x,source", "must be a key=value pair"),
        ] {
            let e = parse_mount_flag(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        for (mount, says) in [
            (
                parse_mount_flag("type=tmpfs,target=/t").unwrap(),
                "of type tmpfs are not supported",
            ),
            (
                parse_mount_flag("type=bind,source=rel,target=/t").unwrap(),
                "must be absolute",
            ),
            (
                parse_mount_flag("source=../x,target=/t").unwrap(),
                "invalid characters",
            ),
            (
                parse_mount_flag("source=ok,target=/t,volume-driver=flocker").unwrap(),
                "plugin \"flocker\" not found",
            ),
        ] {
            let e = from_mount(&mount).unwrap_err().to_string();
            assert!(e.contains(says), "{mount:?}: {e}");
        }
    }

    #[test]
    fn volumes_from_takes_a_container_and_a_mode() {
        assert_eq!(volumes_from("web").unwrap(), ("web".to_string(), None));
        assert_eq!(
            volumes_from("web:ro").unwrap(),
            ("web".to_string(), Some(true))
        );
        assert_eq!(
            volumes_from("web:rw").unwrap(),
            ("web".to_string(), Some(false))
        );
        for bad in [":ro", "web:bogus", "web:nocopy"] {
            assert!(volumes_from(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn mounts_go_into_the_spec_parents_first() {
        let mount = |dest: &str, kind: MountKind, rw: bool| ContainerMount {
            kind,
            name: (kind == MountKind::Volume).then(|| "v1".to_string()),
            source: PathBuf::from("/src"),
            destination: dest.to_string(),
            read_write: rw,
            mode: String::new(),
            propagation: if kind == MountKind::Bind {
                "rprivate".into()
            } else {
                String::new()
            },
            non_recursive: false,
            anonymous: false,
        };
        let mut spec = Spec::default();
        spec.set_mounts(Some(Vec::new()));
        add_to_spec(
            &mut spec,
            &[
                mount("/data/inner", MountKind::Bind, false),
                mount("/data", MountKind::Volume, true),
            ],
        )
        .unwrap();
        let mounts = spec.mounts().clone().unwrap();
        assert_eq!(mounts[0].destination(), Path::new("/data"));
        assert_eq!(mounts[0].options().clone().unwrap(), ["rbind", "rprivate"]);
        assert_eq!(
            mounts[1].options().clone().unwrap(),
            ["rbind", "rprivate", "ro"]
        );
        let point = mount("/data", MountKind::Volume, true).mount_point();
        let json = serde_json::to_value(&point).unwrap();
        assert_eq!(json["Type"], "volume");
        assert_eq!(json["Driver"], "local");
        assert_eq!(json["Name"], "v1");
        let json = serde_json::to_value(mount("/b", MountKind::Bind, false).mount_point()).unwrap();
        assert_eq!(json["Type"], "bind");
        assert_eq!(json["RW"], false);
        assert!(json.get("Name").is_none() && json.get("Driver").is_none());
    }
}
