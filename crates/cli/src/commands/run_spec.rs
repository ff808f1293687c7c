//! The runtime spec for `run`: docker's defaults, the image config, then the flags.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use basic_runtime::seccomp::{DockerProfile, Program};
use basic_runtime::spec::{self as runtime_spec, DeviceMapping};
use basic_runtime::{Spec, default_spec, resolve_user};
use oci_spec::runtime::{
    Capability, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    MountBuilder,
};
use serde_json::Value;

use crate::cli::RunArgs;

/// The parts of an image config `run` uses.
#[derive(Debug, Default, Clone)]
pub struct ImageConfig {
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    env: Vec<String>,
    working_dir: String,
    user: String,
}

impl ImageConfig {
    /// Reads them from an OCI/Docker image config document.
    pub fn from_json(config: &Value) -> Self {
        let c = &config["config"];
        ImageConfig {
            entrypoint: strings(&c["Entrypoint"]).unwrap_or_default(),
            cmd: strings(&c["Cmd"]).unwrap_or_default(),
            env: strings(&c["Env"]).unwrap_or_default(),
            working_dir: c["WorkingDir"].as_str().unwrap_or_default().to_string(),
            user: c["User"].as_str().unwrap_or_default().to_string(),
        }
    }
}

/// Builds the spec for container `id` whose root is mounted at `rootfs`.
pub fn build(
    args: &RunArgs,
    command: &[String],
    image: &ImageConfig,
    rootfs: &Path,
    id: &str,
) -> anyhow::Result<Spec> {
    let argv = process_args(args, command, image)?;
    let env = environment(args, image)?;
    let cwd = args
        .workdir
        .clone()
        .unwrap_or_else(|| image.working_dir.clone());
    let mut spec = default_spec(argv, env, &cwd)?;
    spec.set_hostname(Some(
        args.hostname
            .clone()
            .unwrap_or_else(|| id[..12].to_string()),
    ));
    set_user(
        &mut spec,
        args.user.as_deref().unwrap_or(&image.user),
        rootfs,
    )?;
    set_root(&mut spec, rootfs, args.read_only);
    set_network(&mut spec, &args.network)?;
    set_capabilities(&mut spec, &args.cap_add, &args.cap_drop)?;
    add_volumes(&mut spec, &args.volumes)?;
    set_resources(&mut spec, args)?;
    // Last: the seccomp profile depends on the final capabilities.
    set_security(&mut spec, args)?;
    if let Some(name) = &args.name {
        check_name(name)?;
        let mut annotations = spec.annotations().clone().unwrap_or_default();
        annotations.insert("org.basic-docker.name".to_string(), name.clone());
        spec.set_annotations(Some(annotations));
    }
    Ok(spec)
}

/// docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        bail!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

/// docker's rule: `--entrypoint` replaces the image's Entrypoint and drops its Cmd;
/// command-line arguments replace Cmd.
fn process_args(
    args: &RunArgs,
    command: &[String],
    image: &ImageConfig,
) -> anyhow::Result<Vec<String>> {
    let (entrypoint, cmd) = match &args.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), command.to_vec()),
        Some(e) => (vec![e.clone()], command.to_vec()),
        None if command.is_empty() => (image.entrypoint.clone(), image.cmd.clone()),
        None => (image.entrypoint.clone(), command.to_vec()),
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        bail!(
            "no command specified: the image has no Entrypoint or Cmd; give one after the image name"
        );
    }
    Ok(argv)
}

/// The image's Env, then `--env-file`, then `-e`, later ones winning, as docker.
fn environment(args: &RunArgs, image: &ImageConfig) -> anyhow::Result<Vec<String>> {
    let mut env: Vec<String> = image.env.clone();
    for file in &args.env_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading env file {}", file.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            set_env(&mut env, line);
        }
    }
    for entry in &args.env {
        set_env(&mut env, entry);
    }
    Ok(env)
}

/// `KEY=VALUE` sets; a bare `KEY` copies the caller's value, or nothing when unset.
fn set_env(env: &mut Vec<String>, entry: &str) {
    let (key, value) = match entry.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => match std::env::var(entry) {
            Ok(v) => (entry.to_string(), v),
            Err(_) => return,
        },
    };
    env.retain(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) != key);
    env.push(format!("{key}={value}"));
}

fn set_user(spec: &mut Spec, user: &str, rootfs: &Path) -> anyhow::Result<()> {
    if user.is_empty() {
        return Ok(());
    }
    let resolved = resolve_user(rootfs, user)?;
    let process = spec.process_mut().as_mut().context("spec has no process")?;
    let mut u = process.user().clone();
    u.set_uid(resolved.uid);
    u.set_gid(resolved.gid);
    u.set_additional_gids(Some(resolved.additional_gids));
    process.set_user(u);
    Ok(())
}

fn set_root(spec: &mut Spec, rootfs: &Path, read_only: bool) {
    if let Some(root) = spec.root_mut().as_mut() {
        root.set_path(rootfs.to_path_buf());
        root.set_readonly(Some(read_only));
    }
}

/// `none` keeps a private network namespace with only loopback; `host` shares the
/// host's. Bridge networks need CNI and come with the networking work.
fn set_network(spec: &mut Spec, network: &str) -> anyhow::Result<()> {
    match network {
        "none" => Ok(()),
        "host" => {
            if let Some(ns) = spec
                .linux_mut()
                .as_mut()
                .and_then(|l| l.namespaces_mut().as_mut())
            {
                ns.retain(|n| n.typ() != LinuxNamespaceType::Network);
            }
            Ok(())
        }
        other => bail!(
            "network {other:?} is not available: bridge and user-defined networks are not \
             implemented yet; use --network none (the default) or --network host"
        ),
    }
}

/// Every capability the kernel knows, for `--cap-add ALL`.
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
    all: impl Fn() -> anyhow::Result<HashSet<Capability>>,
) -> anyhow::Result<HashSet<Capability>> {
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
fn every_capability() -> anyhow::Result<HashSet<Capability>> {
    ALL_CAPABILITIES
        .iter()
        .map(|c| parse_capability(c))
        .collect()
}

/// Every capability this host can hand on (its bounding set): what `--cap-add ALL` gives.
/// A capability the host itself lacks (CAP_SYS_RESOURCE on some CI machines) cannot be
/// given to a container, and asking for it would only make the start fail.
fn every_host_capability() -> anyhow::Result<HashSet<Capability>> {
    let caps = runtime_spec::privileged_capabilities()?;
    Ok(caps.bounding().clone().unwrap_or_default())
}

fn parse_capability(name: &str) -> anyhow::Result<Capability> {
    serde_json::from_value(Value::String(name.to_string()))
        .map_err(|_| anyhow::anyhow!("unknown capability {name:?}"))
}

/// `--cap-drop` first, then `--cap-add`, on the bounding, effective and permitted sets.
fn set_capabilities(spec: &mut Spec, add: &[String], drop: &[String]) -> anyhow::Result<()> {
    if add.is_empty() && drop.is_empty() {
        return Ok(());
    }
    let add = capabilities(add, every_host_capability)?;
    let drop = capabilities(drop, every_capability)?;
    let process = spec.process_mut().as_mut().context("spec has no process")?;
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

/// What `--security-opt` asks for.
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
    Profile(PathBuf, Box<DockerProfile>),
}

impl SecurityOptions {
    /// docker's reading: `KEY=VALUE`, the older `KEY:VALUE`, and a bare
    /// `no-new-privileges`; every other key is refused by name.
    fn parse(options: &[String]) -> anyhow::Result<Self> {
        let mut out = SecurityOptions::default();
        for option in options {
            let (key, value) = split_security_option(option)?;
            match key {
                "no-new-privileges" => {
                    out.no_new_privileges = match value {
                        None => true,
                        Some(v) => go_bool(v).with_context(|| {
                            format!("invalid --security-opt {option:?}: use no-new-privileges=true or =false")
                        })?,
                    }
                }
                "seccomp" => out.seccomp = seccomp_choice(value.unwrap_or_default())?,
                "systempaths" if value == Some("unconfined") => out.unconfined_paths = true,
                "apparmor" => no_security_module("apparmor", value, "unconfined", apparmor_on())?,
                "label" => no_security_module("label", value, "disable", selinux_on())?,
                _ => bail!(
                    "invalid --security-opt {option:?}: unknown option; known are \
                     seccomp=PROFILE.json|unconfined|builtin, no-new-privileges[=true|false], \
                     systempaths=unconfined, apparmor=PROFILE and label=OPTION"
                ),
            }
        }
        Ok(out)
    }
}

fn split_security_option(option: &str) -> anyhow::Result<(&str, Option<&str>)> {
    let (key, value) = match option.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None if option == "no-new-privileges" => (option, None),
        None => match option.split_once(':') {
            Some((k, v)) => (k, Some(v)),
            None => (option, None),
        },
    };
    if key != "no-new-privileges" && value.is_none_or(str::is_empty) {
        bail!("invalid --security-opt {option:?}: expected KEY=VALUE (or no-new-privileges)");
    }
    Ok((key, value))
}

/// Go's `strconv.ParseBool`, which docker uses for `no-new-privileges=`.
fn go_bool(text: &str) -> anyhow::Result<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => bail!("{text:?} is not a boolean"),
    }
}

/// `unconfined`, `builtin`, or a profile file in docker's format (read, checked and
/// compiled now, so that a bad one is refused before the container exists).
fn seccomp_choice(value: &str) -> anyhow::Result<SeccompChoice> {
    match value {
        "unconfined" => return Ok(SeccompChoice::Unconfined),
        "builtin" => return Ok(SeccompChoice::Default),
        _ => {}
    }
    let path = PathBuf::from(value);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("opening seccomp profile {}", path.display()))?;
    let profile = DockerProfile::from_json(&text)
        .with_context(|| format!("seccomp profile {}", path.display()))?;
    let resolved = profile
        .to_oci(runtime_spec::DEFAULT_CAPABILITIES)
        .with_context(|| format!("seccomp profile {}", path.display()))?;
    Program::compile(&resolved)
        .with_context(|| format!("seccomp profile {} cannot be enforced", path.display()))?;
    Ok(SeccompChoice::Profile(path, Box::new(profile)))
}

/// `apparmor=` and `label=`: docker ignores them on a host without that security module,
/// and so do we; where the module is on, a profile we would not apply is refused rather
/// than silently dropped (only the value meaning "none" is accepted).
fn no_security_module(
    key: &str,
    value: Option<&str>,
    off: &str,
    host_has_it: bool,
) -> anyhow::Result<()> {
    if host_has_it && value != Some(off) {
        let module = if key == "apparmor" {
            "AppArmor"
        } else {
            "SELinux"
        };
        bail!(
            "--security-opt {key}={}: basic-docker does not apply {module} confinement, and \
             this host has {module}: the container would run without what was asked; \
             leave the option out or use {key}={off}",
            value.unwrap_or_default()
        );
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

/// `--privileged`, `--device`, `--security-opt`, in docker's order: privileges first,
/// then devices, then the seccomp profile for the capabilities the container ends with
/// (a privileged container has none, whatever `seccomp=` says, as in docker).
fn set_security(spec: &mut Spec, args: &RunArgs) -> anyhow::Result<()> {
    let options = SecurityOptions::parse(&args.security_opt)?;
    if args.privileged {
        runtime_spec::make_privileged(spec)?;
    }
    for device in &args.devices {
        let mapping: DeviceMapping = device.parse()?;
        runtime_spec::add_device(spec, &mapping).with_context(|| format!("--device {device}"))?;
    }
    if options.no_new_privileges {
        let process = spec.process_mut().as_mut().context("spec has no process")?;
        process.set_no_new_privileges(Some(true));
    }
    if options.unconfined_paths {
        let linux = spec
            .linux_mut()
            .as_mut()
            .context("spec has no linux section")?;
        linux.set_masked_paths(Some(Vec::new()));
        linux.set_readonly_paths(Some(Vec::new()));
    }
    if args.privileged {
        return Ok(());
    }
    match options.seccomp {
        SeccompChoice::Default => runtime_spec::set_default_seccomp(spec)?,
        SeccompChoice::Unconfined => {
            if let Some(linux) = spec.linux_mut() {
                linux.set_seccomp(None);
            }
        }
        SeccompChoice::Profile(path, profile) => runtime_spec::set_seccomp_profile(spec, &profile)
            .with_context(|| format!("seccomp profile {}", path.display()))?,
    }
    Ok(())
}

/// `-v HOST:CONTAINER[:ro|rw]` bind mounts. Named volumes are not supported.
fn add_volumes(spec: &mut Spec, volumes: &[String]) -> anyhow::Result<()> {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for volume in volumes {
        let parts: Vec<&str> = volume.split(':').collect();
        let (host, target, mode) = match parts.as_slice() {
            [h, t] => (*h, *t, "rw"),
            [h, t, m] => (*h, *t, *m),
            _ => bail!("invalid volume specification {volume:?}: expected HOST:CONTAINER[:ro|rw]"),
        };
        if !host.starts_with('/') {
            bail!(
                "invalid volume {volume:?}: named volumes are not supported, give an absolute host path"
            );
        }
        if !target.starts_with('/') {
            bail!("invalid volume {volume:?}: the container path must be absolute");
        }
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        match mode {
            "ro" => options.push("ro".to_string()),
            "rw" => {}
            other => bail!("invalid mode {other:?} in volume {volume:?}: expected ro or rw"),
        }
        // docker creates a missing host directory for -v.
        std::fs::create_dir_all(host).with_context(|| format!("creating volume source {host}"))?;
        mounts.push(
            MountBuilder::default()
                .destination(target)
                .typ("bind")
                .source(host)
                .options(options)
                .build()?,
        );
    }
    spec.set_mounts(Some(mounts));
    Ok(())
}

fn set_resources(spec: &mut Spec, args: &RunArgs) -> anyhow::Result<()> {
    let linux = spec
        .linux_mut()
        .as_mut()
        .context("spec has no linux section")?;
    let mut resources = linux.resources().clone().unwrap_or_default();
    let memory = args.memory.as_deref().map(parse_bytes).transpose()?;
    let swap = match args.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        Some(s) => Some(parse_bytes(s)?),
        None => None,
    };
    if swap.is_some() && memory.is_none() {
        bail!("--memory-swap needs --memory: set a memory limit as well");
    }
    if let (Some(m), Some(s)) = (memory, swap)
        && s != -1
        && s < m
    {
        bail!(
            "--memory-swap ({s} bytes) must be at least --memory ({m} bytes), or -1 for unlimited"
        );
    }
    if let Some(limit) = memory {
        let mut mem = LinuxMemoryBuilder::default().limit(limit);
        if let Some(s) = swap {
            mem = mem.swap(s);
        }
        resources.set_memory(Some(mem.build()?));
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any_cpu = false;
    if let Some(cpus) = args.cpus {
        if cpus <= 0.0 {
            bail!("--cpus must be positive, got {cpus}");
        }
        let period: u64 = 100_000;
        cpu = cpu
            .period(period)
            .quota((cpus * period as f64).round() as i64);
        any_cpu = true;
    }
    if let Some(shares) = args.cpu_shares {
        cpu = cpu.shares(shares);
        any_cpu = true;
    }
    if let Some(set) = &args.cpuset_cpus {
        cpu = cpu.cpus(set.clone());
        any_cpu = true;
    }
    if any_cpu {
        resources.set_cpu(Some(cpu.build()?));
    }
    if let Some(limit) = args.pids_limit {
        resources.set_pids(Some(LinuxPidsBuilder::default().limit(limit).build()?));
    }
    linux.set_resources(Some(resources));
    Ok(())
}

/// docker's sizes: `512`, `100k`, `20m`, `1.5g` (binary units, optional `b`).
pub fn parse_bytes(text: &str) -> anyhow::Result<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (number, unit) = match lower.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => lower.split_at(i),
        None => (lower, ""),
    };
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => bail!("invalid size {text:?}: use a number with an optional unit b, k, m, g or t"),
    };
    let value: f64 = number
        .parse()
        .with_context(|| format!("invalid size {text:?}"))?;
    if value.is_nan() || value < 0.0 {
        bail!("invalid size {text:?}: must not be negative");
    }
    Ok((value * (1u64 << shift) as f64) as i64)
}

/// Reads a JSON string array field.
fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_reads_them() {
        assert_eq!(parse_bytes("512").unwrap(), 512);
        assert_eq!(parse_bytes("20m").unwrap(), 20 << 20);
        assert_eq!(parse_bytes("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        assert!(parse_bytes("ten").is_err());
        assert!(parse_bytes("5x").is_err());
    }

    #[test]
    fn env_later_entries_win_and_bare_keys_copy_the_callers() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        set_env(&mut env, "A=2");
        set_env(&mut env, "BASIC_DOCKER_SURELY_UNSET_VAR");
        assert_eq!(env, ["PATH=/bin", "A=2"]);
    }

    #[test]
    fn capability_names_in_every_spelling() {
        let caps = capabilities(
            &["net_admin".into(), "CAP_SYS_TIME".into()],
            every_capability,
        )
        .unwrap();
        assert!(caps.contains(&Capability::NetAdmin) && caps.contains(&Capability::SysTime));
        assert_eq!(
            capabilities(&["ALL".into()], every_capability)
                .unwrap()
                .len(),
            ALL_CAPABILITIES.len()
        );
        assert!(capabilities(&["NOT_A_CAP".into()], every_capability).is_err());
    }

    fn options(list: &[&str]) -> anyhow::Result<SecurityOptions> {
        SecurityOptions::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn security_options_read_as_docker_reads_them() {
        for (given, nnp) in [
            ("no-new-privileges", true),
            ("no-new-privileges=true", true),
            ("no-new-privileges:true", true),
            ("no-new-privileges=1", true),
            ("no-new-privileges=false", false),
        ] {
            assert_eq!(options(&[given]).unwrap().no_new_privileges, nnp, "{given}");
        }
        for given in ["seccomp=unconfined", "seccomp:unconfined"] {
            assert!(matches!(
                options(&[given]).unwrap().seccomp,
                SeccompChoice::Unconfined
            ));
        }
        assert!(matches!(
            options(&["seccomp=builtin"]).unwrap().seccomp,
            SeccompChoice::Default
        ));
        assert!(
            options(&["systempaths=unconfined"])
                .unwrap()
                .unconfined_paths
        );
        for (bad, says) in [
            ("bogus=1", "\"bogus=1\": unknown option"),
            ("seccomp", "expected KEY=VALUE"),
            ("seccomp=", "expected KEY=VALUE"),
            (
                "no-new-privileges=maybe",
                "no-new-privileges=true or =false",
            ),
            ("systempaths=confined", "unknown option"),
            ("seccomp=/surely/not/here.json", "/surely/not/here.json"),
        ] {
            let e = format!("{:#}", options(&[bad]).unwrap_err());
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn apparmor_and_label_are_no_ops_only_without_the_module() {
        assert!(no_security_module("apparmor", Some("my-profile"), "unconfined", false).is_ok());
        assert!(no_security_module("apparmor", Some("unconfined"), "unconfined", true).is_ok());
        let e = no_security_module("apparmor", Some("my-profile"), "unconfined", true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("apparmor=my-profile") && e.contains("AppArmor"),
            "{e}"
        );
        assert!(no_security_module("label", Some("disable"), "disable", true).is_ok());
        assert!(no_security_module("label", Some("level:s0"), "disable", true).is_err());
    }
}
