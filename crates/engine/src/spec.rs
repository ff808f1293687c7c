//! The runtime spec of a container: docker's defaults, then the image's, then the
//! container's configuration, as docker's daemon builds it.
//!
//! [`build`] is a pure function of the configuration, the image's defaults and the
//! container's identity, except where docker itself looks at the machine: `-u NAME` is
//! looked up in the container's own `/etc/passwd` and `/etc/group` (inside its root),
//! `--device` reads the host's node, and `--cap-add ALL` and `--privileged` take the host's
//! bounding set. Volumes and binds come resolved (see [`crate::mounts`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use basic_runtime::seccomp::DockerProfile;
use basic_runtime::spec::{self as runtime_spec, DeviceMapping};
use basic_runtime::{Spec, default_spec, resolve_user};
use oci_spec::runtime::{
    Capability, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder,
};
use serde::Deserialize;

use crate::config::{ContainerConfig, HostConfig};
use crate::error::{EngineError, Result};
use crate::mounts::ContainerMount;

/// The spec annotation holding the container's name, for tools that see only the spec.
pub const NAME_ANNOTATION: &str = "org.basic-docker.name";

/// What of an image's config a container starts from (docker's `config` section).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageDefaults {
    /// `ENTRYPOINT`.
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`.
    pub cmd: Option<Vec<String>>,
    /// `ENV`.
    pub env: Option<Vec<String>>,
    /// `WORKDIR`.
    pub working_dir: Option<String>,
    /// `USER`.
    pub user: Option<String>,
    /// `STOPSIGNAL`.
    pub stop_signal: Option<String>,
    /// `EXPOSE`: `{"80/tcp": {}}`.
    pub exposed_ports: Option<HashMap<String, serde_json::Value>>,
    /// `VOLUME`: `{"/data": {}}`; each gets an anonymous volume unless something else is
    /// mounted there.
    pub volumes: Option<HashMap<String, serde_json::Value>>,
}

impl From<&basic_image_store::ImageConfig> for ImageDefaults {
    fn from(image: &basic_image_store::ImageConfig) -> Self {
        let list = |items: &[String]| (!items.is_empty()).then(|| items.to_vec());
        ImageDefaults {
            entrypoint: list(image.entrypoint()),
            cmd: list(image.cmd()),
            env: list(image.env()),
            working_dir: image.working_dir().map(str::to_string),
            user: image.user().map(str::to_string),
            stop_signal: image.stop_signal().map(str::to_string),
            exposed_ports: Some(
                image
                    .exposed_ports()
                    .iter()
                    .map(|p| (p.clone(), serde_json::json!({})))
                    .collect(),
            ),
            volumes: list(image.volumes())
                .map(|v| v.into_iter().map(|p| (p, serde_json::json!({}))).collect()),
        }
    }
}

/// Who the container is: its id (the hostname's default) and name, its root and what is
/// mounted in it.
#[derive(Debug, Clone)]
pub struct Identity<'a> {
    /// The 64-hex-digit id.
    pub id: &'a str,
    /// The name.
    pub name: &'a str,
    /// The mounted root filesystem.
    pub rootfs: &'a Path,
    /// Its volumes and binds, resolved from the config's `Binds`, `Mounts`, `VolumesFrom`
    /// and `Volumes` and the image's by [`crate::mounts`] (which [`build`] does not read).
    pub mounts: &'a [ContainerMount],
}

impl ImageDefaults {
    /// The image's `VOLUME` paths, sorted.
    pub fn volume_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .volumes
            .iter()
            .flat_map(|v| v.keys().cloned())
            .collect();
        paths.sort();
        paths
    }
}

/// docker's rule for what runs: the config's `Entrypoint` replaces the image's (`[""]`
/// removes it) and then the image's `Cmd` does not apply; the config's `Cmd` replaces
/// the image's.
pub fn command(config: &ContainerConfig, image: &ImageDefaults) -> Result<Vec<String>> {
    let config_cmd = config.cmd.clone().unwrap_or_default();
    let (entrypoint, cmd) = match &config.entrypoint {
        Some(e) if e.iter().all(String::is_empty) => (Vec::new(), config_cmd),
        Some(e) => (e.clone(), config_cmd),
        None if config_cmd.is_empty() => (
            image.entrypoint.clone().unwrap_or_default(),
            image.cmd.clone().unwrap_or_default(),
        ),
        None => (image.entrypoint.clone().unwrap_or_default(), config_cmd),
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(EngineError::InvalidArgument(
            "no command specified: the image has no Entrypoint or Cmd; give one after the image name"
                .into(),
        ));
    }
    Ok(argv)
}

/// The image's `Env`, then the config's, later ones winning.
pub fn environment(config: &ContainerConfig, image: &ImageDefaults) -> Vec<String> {
    let mut env = image.env.clone().unwrap_or_default();
    for entry in config.env.iter().flatten() {
        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
        env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
        // docker: an entry without `=` removes the variable.
        if entry.contains('=') {
            env.push(entry.clone());
        }
    }
    env
}

/// The signal `stop` sends: the config's, else the image's, else `SIGTERM`.
pub fn stop_signal(config: &ContainerConfig, image: &ImageDefaults) -> String {
    config
        .stop_signal
        .clone()
        .or_else(|| image.stop_signal.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "SIGTERM".to_string())
}

/// The ports the image and the config expose, sorted.
pub fn exposed_ports(config: &ContainerConfig, image: &ImageDefaults) -> Vec<String> {
    let mut ports: Vec<String> = image
        .exposed_ports
        .iter()
        .flat_map(|p| p.keys().cloned())
        .chain(config.exposed_ports.iter().flatten().cloned())
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// Builds the runtime spec. The values in `config` are taken as they are: what docker's
/// daemon refuses is refused by [`crate::validate::check`], which
/// [`Engine::create`](crate::Engine::create) runs first.
pub fn build(config: &ContainerConfig, image: &ImageDefaults, who: &Identity<'_>) -> Result<Spec> {
    refuse_unimplemented(config)?;
    let host = config.host_config.clone().unwrap_or_default();
    let argv = command(config, image)?;
    let env = environment(config, image);
    let cwd = config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image.working_dir.clone())
        .unwrap_or_default();
    // The config's was checked at create; the image's may be relative too.
    crate::validate::check_working_dir(&cwd)?;
    let mut spec = default_spec(argv, env, &cwd)?;
    let hostname = config
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| who.id[..12.min(who.id.len())].to_string());
    spec.set_hostname(Some(hostname));
    let user = config
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| image.user.clone())
        .unwrap_or_default();
    set_user(&mut spec, &user, who.rootfs)?;
    set_root(&mut spec, who.rootfs, host.readonly_rootfs.unwrap_or(false));
    if let Some(process) = spec.process_mut() {
        let tty = config.tty.unwrap_or(false);
        process.set_terminal(Some(tty));
        // A terminal starts at docker's `ConsoleSize` or, without one, at 24x80: a client
        // sends its size only once the container runs, and a program that asks before
        // that must not find a 0x0 terminal (busybox's `stty size` fails on one).
        if tty {
            let [rows, cols] = match host.console_size.as_deref() {
                Some([rows, cols]) if *rows > 0 && *cols > 0 => [*rows, *cols],
                _ => [24, 80],
            };
            let size = oci_spec::runtime::BoxBuilder::default()
                .height(u64::try_from(rows).unwrap_or(24))
                .width(u64::try_from(cols).unwrap_or(80))
                .build()?;
            process.set_console_size(Some(size));
        }
    }
    if host.network_mode.as_deref() == Some("host") {
        drop_namespace(&mut spec, LinuxNamespaceType::Network);
    }
    set_capabilities(
        &mut spec,
        host.cap_add.as_deref().unwrap_or_default(),
        host.cap_drop.as_deref().unwrap_or_default(),
    )?;
    crate::mounts::add_to_spec(&mut spec, who.mounts)?;
    set_resources(&mut spec, &host)?;
    // Last: the seccomp profile depends on the final capabilities.
    set_security(&mut spec, &host)?;
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    annotations.insert(NAME_ANNOTATION.to_string(), who.name.to_string());
    spec.set_annotations(Some(annotations));
    Ok(spec)
}

/// Fields of docker's config this engine does not implement, refused by name rather than
/// ignored: a container must not run otherwise than its config says.
fn refuse_unimplemented(config: &ContainerConfig) -> Result<()> {
    let host = config.host_config.clone().unwrap_or_default();
    let mut found = Vec::new();
    let mut set = |on: bool, field: &str| {
        if on {
            found.push(field.to_string());
        }
    };
    set(config.healthcheck.is_some(), "Healthcheck");
    set(
        host.tmpfs.as_ref().is_some_and(|t| !t.is_empty()),
        "HostConfig.Tmpfs",
    );
    set(
        host.ulimits.as_ref().is_some_and(|u| !u.is_empty()),
        "HostConfig.Ulimits",
    );
    set(
        host.extra_hosts.as_ref().is_some_and(|e| !e.is_empty()),
        "HostConfig.ExtraHosts",
    );
    set(
        host.links.as_ref().is_some_and(|l| !l.is_empty()),
        "HostConfig.Links",
    );
    set(
        host.sysctls.as_ref().is_some_and(|s| !s.is_empty()),
        "HostConfig.Sysctls",
    );
    set(
        host.pid_mode.as_deref().is_some_and(|m| !m.is_empty()),
        "HostConfig.PidMode",
    );
    set(
        host.ipc_mode
            .as_deref()
            .is_some_and(|m| !m.is_empty() && m != "private" && m != "shareable"),
        "HostConfig.IpcMode",
    );
    set(
        host.userns_mode.as_deref().is_some_and(|m| !m.is_empty()),
        "HostConfig.UsernsMode",
    );
    set(
        host.device_requests.as_ref().is_some_and(|d| !d.is_empty()),
        "HostConfig.DeviceRequests",
    );
    set(
        host.log_config
            .as_ref()
            .and_then(|l| l.typ.as_deref())
            .is_some_and(|t| !t.is_empty() && t != crate::config::JSON_FILE),
        "HostConfig.LogConfig.Type (only json-file)",
    );
    match found.as_slice() {
        [] => Ok(()),
        fields => Err(EngineError::InvalidArgument(format!(
            "{} {} not supported by this engine (refused rather than ignored)",
            fields.join(", "),
            if fields.len() == 1 { "is" } else { "are" }
        ))),
    }
}

fn set_user(spec: &mut Spec, user: &str, rootfs: &Path) -> Result<()> {
    if user.is_empty() {
        return Ok(());
    }
    let resolved = resolve_user(rootfs, user)?;
    let process = process_of(spec)?;
    let mut u = process.user().clone();
    u.set_uid(resolved.uid);
    u.set_gid(resolved.gid);
    u.set_additional_gids(Some(resolved.additional_gids));
    process.set_user(u);
    Ok(())
}

fn process_of(spec: &mut Spec) -> Result<&mut oci_spec::runtime::Process> {
    spec.process_mut()
        .as_mut()
        .ok_or_else(|| EngineError::InvalidArgument("the spec has no process".into()))
}

fn linux_of(spec: &mut Spec) -> Result<&mut oci_spec::runtime::Linux> {
    spec.linux_mut()
        .as_mut()
        .ok_or_else(|| EngineError::InvalidArgument("the spec has no linux section".into()))
}

fn set_root(spec: &mut Spec, rootfs: &Path, read_only: bool) {
    if let Some(root) = spec.root_mut().as_mut() {
        root.set_path(rootfs.to_path_buf());
        root.set_readonly(Some(read_only));
    }
}

fn drop_namespace(spec: &mut Spec, typ: LinuxNamespaceType) {
    if let Some(ns) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.namespaces_mut().as_mut())
    {
        ns.retain(|n| n.typ() != typ);
    }
}

/// Every capability the kernel knows, for `--cap-drop ALL`.
const ALL_CAPABILITIES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// Parses `NET_ADMIN`, `cap_net_admin` or `CAP_NET_ADMIN`; `ALL` stands for `all`.
fn capabilities(
    names: &[String],
    all: impl Fn() -> Result<HashSet<Capability>>,
) -> Result<HashSet<Capability>> {
    let mut set = HashSet::new();
    for name in names {
        if name.eq_ignore_ascii_case("all") {
            set.extend(all()?);
        } else {
            set.insert(parse_capability(name)?);
        }
    }
    Ok(set)
}

/// Every capability the kernel knows: what `--cap-drop ALL` removes.
fn every_capability() -> Result<HashSet<Capability>> {
    ALL_CAPABILITIES
        .iter()
        .map(|c| parse_capability(c))
        .collect()
}

/// Every capability this host can hand on (its bounding set): what `--cap-add ALL` gives.
/// A capability the host itself lacks (CAP_SYS_RESOURCE on some CI machines) cannot be
/// given to a container, and asking for it would only make the start fail.
fn every_host_capability() -> Result<HashSet<Capability>> {
    let caps = runtime_spec::privileged_capabilities()?;
    Ok(caps.bounding().clone().unwrap_or_default())
}

fn parse_capability(name: &str) -> Result<Capability> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| EngineError::InvalidArgument(format!("unknown capability: {name:?}")))
}

/// `CapDrop` first, then `CapAdd`, on the bounding, effective and permitted sets.
fn set_capabilities(spec: &mut Spec, add: &[String], drop: &[String]) -> Result<()> {
    if add.is_empty() && drop.is_empty() {
        return Ok(());
    }
    let add = capabilities(add, every_host_capability)?;
    let drop = capabilities(drop, every_capability)?;
    let process = process_of(spec)?;
    let mut caps = process.capabilities().clone().unwrap_or_default();
    let adjust = |set: &Option<HashSet<Capability>>| -> Option<HashSet<Capability>> {
        let mut s = set.clone().unwrap_or_default();
        s.retain(|c| !drop.contains(c));
        s.extend(add.iter().copied());
        Some(s)
    };
    caps.set_bounding(adjust(caps.bounding()));
    caps.set_effective(adjust(caps.effective()));
    caps.set_permitted(adjust(caps.permitted()));
    process.set_capabilities(Some(caps));
    Ok(())
}

/// What `SecurityOpt` asks for.
#[derive(Debug, Default)]
struct SecurityOptions {
    seccomp: SeccompChoice,
    no_new_privileges: bool,
    /// `systempaths=unconfined`: no masked or read-only paths.
    unconfined_paths: bool,
}

#[derive(Debug, Default)]
enum SeccompChoice {
    /// docker's default profile (also `seccomp=builtin`).
    #[default]
    Default,
    Unconfined,
    /// A profile in docker's format, inlined as docker's command line sends it.
    Profile(Box<DockerProfile>),
}

impl SecurityOptions {
    /// docker's reading: `KEY=VALUE`, the older `KEY:VALUE`, and a bare
    /// `no-new-privileges`; every other key is refused by name.
    fn parse(options: &[String]) -> Result<Self> {
        let mut out = SecurityOptions::default();
        for option in options {
            let (key, value) = split_security_option(option)?;
            let bad = |why: &str| {
                EngineError::InvalidArgument(format!("invalid --security-opt {option:?}: {why}"))
            };
            match key {
                "no-new-privileges" => {
                    out.no_new_privileges = match value {
                        None => true,
                        Some(v) => {
                            go_bool(v).ok_or_else(|| bad("use no-new-privileges=true or =false"))?
                        }
                    }
                }
                "seccomp" => out.seccomp = seccomp_choice(value.unwrap_or_default())?,
                "systempaths" if value == Some("unconfined") => out.unconfined_paths = true,
                "apparmor" => no_security_module("apparmor", value, "unconfined", apparmor_on())?,
                "label" => no_security_module("label", value, "disable", selinux_on())?,
                _ => {
                    return Err(bad(
                        "unknown option; known are seccomp=PROFILE.json|unconfined|builtin, \
                         no-new-privileges[=true|false], systempaths=unconfined, \
                         apparmor=PROFILE and label=OPTION",
                    ));
                }
            }
        }
        Ok(out)
    }
}

fn split_security_option(option: &str) -> Result<(&str, Option<&str>)> {
    let (key, value) = match option.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None if option == "no-new-privileges" => (option, None),
        None => match option.split_once(':') {
            Some((k, v)) => (k, Some(v)),
            None => (option, None),
        },
    };
    if key != "no-new-privileges" && value.is_none_or(str::is_empty) {
        return Err(EngineError::InvalidArgument(format!(
            "invalid --security-opt {option:?}: expected KEY=VALUE (or no-new-privileges)"
        )));
    }
    Ok((key, value))
}

/// Go's `strconv.ParseBool`, which docker uses for `no-new-privileges=`.
fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// `unconfined`, `builtin`, or a profile's JSON (docker's command line reads the file and
/// sends its contents; [`read_seccomp_option`] does that for a command line).
fn seccomp_choice(value: &str) -> Result<SeccompChoice> {
    match value {
        "unconfined" => Ok(SeccompChoice::Unconfined),
        "builtin" => Ok(SeccompChoice::Default),
        json => {
            let profile = DockerProfile::from_json(json)
                .map_err(|e| EngineError::InvalidArgument(format!("seccomp profile: {e}")))?;
            Ok(SeccompChoice::Profile(Box::new(profile)))
        }
    }
}

/// A command line's `--security-opt` as docker's command line sends it: a
/// `seccomp=PATH` becomes `seccomp=<the profile's JSON>`, checked and compiled now so that
/// a bad profile is refused naming its file before anything is created.
pub fn read_seccomp_option(option: &str) -> Result<String> {
    let Some(value) = option
        .strip_prefix("seccomp=")
        .or_else(|| option.strip_prefix("seccomp:"))
    else {
        return Ok(option.to_string());
    };
    if matches!(value, "unconfined" | "builtin" | "") {
        return Ok(option.to_string());
    }
    let path = PathBuf::from(value);
    let text = std::fs::read_to_string(&path)
        .map_err(EngineError::io("opening seccomp profile", &path))?;
    let named = |e: &dyn std::fmt::Display| {
        EngineError::InvalidArgument(format!("seccomp profile {}: {e}", path.display()))
    };
    let profile = DockerProfile::from_json(&text).map_err(|e| named(&e))?;
    let resolved = profile
        .to_oci(runtime_spec::DEFAULT_CAPABILITIES)
        .map_err(|e| named(&e))?;
    basic_runtime::seccomp::Program::compile(&resolved).map_err(|e| {
        EngineError::InvalidArgument(format!(
            "seccomp profile {} cannot be enforced: {e}",
            path.display()
        ))
    })?;
    Ok(format!("seccomp={text}"))
}

/// `apparmor=` and `label=`: docker ignores them on a host without that security module,
/// and so does this engine; where the module is on, a profile that would not be applied
/// is refused rather than silently dropped (only the value meaning "none" is accepted).
fn no_security_module(key: &str, value: Option<&str>, off: &str, host_has_it: bool) -> Result<()> {
    if host_has_it && value != Some(off) {
        let module = if key == "apparmor" {
            "AppArmor"
        } else {
            "SELinux"
        };
        return Err(EngineError::InvalidArgument(format!(
            "--security-opt {key}={}: this engine does not apply {module} confinement, and \
             this host has {module}: the container would run without what was asked; \
             leave the option out or use {key}={off}",
            value.unwrap_or_default()
        )));
    }
    Ok(())
}

fn apparmor_on() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_on() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// `Privileged`, `Devices`, `SecurityOpt`, in docker's order: privileges first, then
/// devices, then the seccomp profile for the capabilities the container ends with (a
/// privileged container has none, whatever `seccomp=` says, as in docker).
fn set_security(spec: &mut Spec, host: &HostConfig) -> Result<()> {
    let options = SecurityOptions::parse(host.security_opt.as_deref().unwrap_or_default())?;
    let privileged = host.privileged.unwrap_or(false);
    if privileged {
        runtime_spec::make_privileged(spec)?;
    }
    for device in host.devices.iter().flatten() {
        let mapping = device_mapping(device)?;
        runtime_spec::add_device(spec, &mapping)?;
    }
    if options.no_new_privileges {
        process_of(spec)?.set_no_new_privileges(Some(true));
    }
    if options.unconfined_paths {
        let linux = linux_of(spec)?;
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
    }
    if privileged {
        return Ok(());
    }
    match options.seccomp {
        SeccompChoice::Default => runtime_spec::set_default_seccomp(spec)?,
        SeccompChoice::Unconfined => {
            if let Some(linux) = spec.linux_mut() {
                linux.set_seccomp(None);
            }
        }
        SeccompChoice::Profile(profile) => runtime_spec::set_seccomp_profile(spec, &profile)?,
    }
    Ok(())
}

/// docker's `Devices` entry as the runtime's mapping (`rwm` when no permissions).
fn device_mapping(device: &crate::config::DeviceMapping) -> Result<DeviceMapping> {
    let host = device.path_on_host.clone().unwrap_or_default();
    if host.is_empty() {
        return Err(EngineError::InvalidArgument(
            "a device needs PathOnHost".into(),
        ));
    }
    let container = device
        .path_in_container
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| host.clone());
    let permissions = device
        .cgroup_permissions
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "rwm".to_string());
    Ok(format!("{host}:{container}:{permissions}").parse()?)
}

fn set_resources(spec: &mut Spec, host: &HostConfig) -> Result<()> {
    let linux = linux_of(spec)?;
    let mut resources = linux.resources().clone().unwrap_or_default();
    // The values were checked against docker's rules at create (crate::validate).
    let memory = host.memory.filter(|m| *m > 0);
    let swap = host.memory_swap.filter(|s| *s != 0);
    if let Some(limit) = memory {
        let mut mem = LinuxMemoryBuilder::default().limit(limit);
        if let Some(s) = swap {
            mem = mem.swap(s);
        }
        resources.set_memory(Some(mem.build()?));
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any_cpu = false;
    if let Some(nano) = host.nano_cpus.filter(|n| *n > 0) {
        let period: u64 = 100_000;
        let quota = (nano as f64 * period as f64 / 1e9).round() as i64;
        cpu = cpu.period(period).quota(quota);
        any_cpu = true;
    }
    if let Some(shares) = host.cpu_shares.filter(|s| *s > 0) {
        cpu = cpu.shares(shares as u64);
        any_cpu = true;
    }
    if let Some(set) = host.cpuset_cpus.clone().filter(|s| !s.is_empty()) {
        cpu = cpu.cpus(set);
        any_cpu = true;
    }
    if any_cpu {
        resources.set_cpu(Some(cpu.build()?));
    }
    if let Some(limit) = host.pids_limit.filter(|l| *l != 0) {
        resources.set_pids(Some(LinuxPidsBuilder::default().limit(limit).build()?));
    }
    linux.set_resources(Some(resources));
    Ok(())
}

#[cfg(test)]
mod tests;
