//! `run` and `create` flags as docker's container-create body, the way docker's command
//! line builds it: the engine reads the body; the command line only translates flags,
//! reads the files they name (`--env-file`, a seccomp profile) and the caller's
//! environment (`-e KEY`).

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use basic_engine::CreateOptions;
use basic_engine::config::{
    ContainerConfig, DeviceMapping, HostConfig, HostConfigLogConfig, JSON_FILE, parse_restart,
    parse_size, port_bindings,
};
use basic_engine::mounts::parse_mount_flag;
use basic_engine::spec::read_seccomp_option;

use crate::cli::RunArgs;

/// The body and the create options `args` ask for.
pub fn from_run_args(args: &RunArgs) -> anyhow::Result<(ContainerConfig, CreateOptions)> {
    let (image, command) = args
        .image_and_command
        .split_first()
        .context("\"create\" requires at least 1 argument: IMAGE [COMMAND] [ARG...]")?;
    let config = ContainerConfig {
        image: Some(image.clone()),
        cmd: (!command.is_empty()).then(|| command.to_vec()),
        entrypoint: args.entrypoint.as_ref().map(|e| vec![e.clone()]),
        env: Some(environment(args)?),
        working_dir: args.workdir.clone(),
        user: args.user.clone(),
        hostname: args.hostname.clone(),
        tty: Some(args.tty),
        open_stdin: Some(args.interactive),
        attach_stdin: Some(args.interactive && !args.detach),
        // As docker's command line: a container whose stdin this command attaches
        // closes it when that input ends.
        stdin_once: Some(args.interactive && !args.detach),
        // `-v /path` is an anonymous volume: docker's command line sends it here.
        volumes: Some(
            args.volumes
                .iter()
                .filter(|v| !v.contains(':'))
                .cloned()
                .collect(),
        ),
        host_config: Some(host_config(args)?),
        ..Default::default()
    };
    let options = CreateOptions {
        name: args.name.clone(),
        strict_isolation: args.isolation == "strict",
        keep_root_mounted: false,
    };
    Ok((config, options))
}

fn host_config(args: &RunArgs) -> anyhow::Result<HostConfig> {
    let memory = args.memory.as_deref().map(parse_size).transpose()?;
    let memory_swap = match args.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        Some(s) => Some(parse_size(s)?),
        None => None,
    };
    if let Some(cpus) = args.cpus
        && cpus <= 0.0
    {
        bail!("--cpus must be positive, got {cpus}");
    }
    let security_opt = args
        .security_opt
        .iter()
        .map(|o| read_seccomp_option(o))
        .collect::<Result<Vec<_>, _>>()?;
    let mounts = args
        .mounts
        .iter()
        .map(|m| parse_mount_flag(m))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HostConfig {
        binds: Some(binds(&args.volumes)?),
        mounts: Some(mounts),
        volumes_from: Some(args.volumes_from.clone()),
        network_mode: Some(args.network.clone()),
        port_bindings: Some(port_bindings(&args.publish)?),
        publish_all_ports: Some(args.publish_all),
        restart_policy: Some(parse_restart(&args.restart)?),
        auto_remove: Some(args.rm),
        dns: Some(args.dns.clone()),
        log_config: Some(log_config(&args.log_opt)?),
        memory,
        memory_swap,
        nano_cpus: args.cpus.map(|c| (c * 1e9).round() as i64),
        cpu_shares: args.cpu_shares.map(|s| s as i64),
        cpuset_cpus: args.cpuset_cpus.clone(),
        pids_limit: args.pids_limit,
        readonly_rootfs: Some(args.read_only),
        cap_add: Some(args.cap_add.clone()),
        cap_drop: Some(args.cap_drop.clone()),
        security_opt: Some(security_opt),
        privileged: Some(args.privileged),
        devices: Some(args.devices.iter().map(|d| device(d)).collect()),
        init: Some(args.init),
        ..Default::default()
    })
}

/// The `-v` values with a source, as docker's command line sends them in `Binds`: a host
/// path given as `.` or `./…` made absolute (docker's command line does that).
fn binds(volumes: &[String]) -> anyhow::Result<Vec<String>> {
    let mut binds = Vec::new();
    for volume in volumes.iter().filter(|v| v.contains(':')) {
        let (source, rest) = volume.split_once(':').unwrap_or((volume, ""));
        if source == "." || source.starts_with("./") {
            let cwd = std::env::current_dir().context("finding the working directory")?;
            binds.push(format!("{}:{rest}", cwd.join(source).display()));
        } else {
            binds.push(volume.clone());
        }
    }
    Ok(binds)
}

/// `--log-opt max-size=10m` and `max-file=3`, as docker's json-file driver takes them.
fn log_config(options: &[String]) -> anyhow::Result<HostConfigLogConfig> {
    let mut config = HashMap::new();
    for option in options {
        match option.split_once('=') {
            Some(("max-size", value)) => {
                parse_size(value)
                    .with_context(|| format!("invalid --log-opt max-size {value:?}"))?;
                config.insert("max-size".to_string(), value.to_string());
            }
            Some(("max-file", value)) => {
                value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| {
                        format!(
                            "invalid --log-opt max-file {value:?}: a number of files, at least 1"
                        )
                    })?;
                config.insert("max-file".to_string(), value.to_string());
            }
            _ => bail!("unknown log opt {option:?}: json-file takes max-size=SIZE and max-file=N"),
        }
    }
    Ok(HostConfigLogConfig {
        typ: Some(JSON_FILE.to_string()),
        config: Some(config),
    })
}

/// `--device HOST[:CONTAINER][:PERMISSIONS]` as docker's command line splits it.
fn device(text: &str) -> DeviceMapping {
    let parts: Vec<&str> = text.split(':').collect();
    let is_permissions = |p: &str| !p.is_empty() && p.chars().all(|c| "rwm".contains(c));
    let (host, container, permissions) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_permissions(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] => (*h, *c, *p),
        // Let the engine name what is wrong with it.
        _ => (text, text, "rwm"),
    };
    DeviceMapping {
        path_on_host: Some(host.to_string()),
        path_in_container: Some(container.to_string()),
        cgroup_permissions: Some(permissions.to_string()),
    }
}

/// `--env-file`, then `-e`, later ones winning; a bare `KEY` copies this shell's value,
/// or is left out when the shell has none (docker's command line does this).
fn environment(args: &RunArgs) -> anyhow::Result<Vec<String>> {
    let mut env = Vec::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_later_entries_win_and_bare_keys_copy_the_callers() {
        let mut env = vec!["PATH=/bin".to_string(), "A=1".to_string()];
        set_env(&mut env, "A=2");
        set_env(&mut env, "BASIC_DOCKER_SURELY_UNSET_VAR");
        assert_eq!(env, ["PATH=/bin", "A=2"]);
    }

    #[test]
    fn volumes_split_into_binds_and_anonymous_paths_as_dockers_command_line_does() {
        let binds = binds(&[
            "/anon".to_string(),
            "data:/d:ro".to_string(),
            "./here:/h".to_string(),
        ])
        .unwrap();
        assert_eq!(binds[0], "data:/d:ro");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(binds[1], format!("{}:/h", cwd.join("./here").display()));
        assert_eq!(binds.len(), 2, "/anon is no bind");
    }

    #[test]
    fn devices_split_as_dockers_command_line_splits_them() {
        let d = device("/dev/null:/dev/mynull:r");
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/mynull"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("r"));
        let d = device("/dev/fuse:rw");
        assert_eq!(d.path_in_container.as_deref(), Some("/dev/fuse"));
        assert_eq!(d.cgroup_permissions.as_deref(), Some("rw"));
    }
}
