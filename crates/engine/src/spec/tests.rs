//! The config → spec planning, without root: everything here is data, except the
//! rootfs directory the user lookup reads (a temporary one).

use std::collections::HashMap;

use oci_spec::runtime::LinuxNamespaceType;

use super::*;
use crate::config::{DeviceMapping as DockerDevice, HostConfig};

fn image() -> ImageDefaults {
    ImageDefaults {
        entrypoint: Some(vec!["/entry".into()]),
        cmd: Some(vec!["serve".into(), "--port=80".into()]),
        env: Some(vec!["PATH=/bin".into(), "MODE=image".into()]),
        working_dir: Some("/srv".into()),
        user: None,
        stop_signal: Some("SIGQUIT".into()),
        exposed_ports: Some(HashMap::from([(
            "80/tcp".to_string(),
            serde_json::json!({}),
        )])),
        volumes: None,
    }
}

fn build_with(config: ContainerConfig) -> Result<Spec> {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    std::fs::write(
        root.path().join("etc/passwd"),
        "root:x:0:0::/:/bin/sh\nweb:x:33:44::/:/bin/sh\n",
    )
    .unwrap();
    let who = Identity {
        id: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        name: "web-1",
        rootfs: root.path(),
        mounts: &[],
    };
    build(&config, &image(), &who)
}

fn host(h: HostConfig) -> ContainerConfig {
    ContainerConfig {
        host_config: Some(h),
        ..Default::default()
    }
}

#[test]
fn the_command_follows_dockers_entrypoint_and_cmd_rules() {
    let img = image();
    let run = |entrypoint: Option<Vec<&str>>, cmd: Option<Vec<&str>>| {
        let config = ContainerConfig {
            entrypoint: entrypoint.map(|e| e.into_iter().map(String::from).collect()),
            cmd: cmd.map(|c| c.into_iter().map(String::from).collect()),
            ..Default::default()
        };
        command(&config, &img)
    };
    assert_eq!(run(None, None).unwrap(), ["/entry", "serve", "--port=80"]);
    assert_eq!(run(None, Some(vec!["sh"])).unwrap(), ["/entry", "sh"]);
    assert_eq!(run(Some(vec!["/other"]), None).unwrap(), ["/other"]);
    assert_eq!(run(Some(vec![""]), Some(vec!["ls"])).unwrap(), ["ls"]);
    let e = command(&ContainerConfig::default(), &ImageDefaults::default()).unwrap_err();
    assert!(e.to_string().contains("no command specified"), "{e}");
}

#[test]
fn the_environment_is_the_images_then_the_configs() {
    let config = ContainerConfig {
        env: Some(vec!["MODE=run".into(), "EXTRA=1".into(), "PATH".into()]),
        ..Default::default()
    };
    assert_eq!(environment(&config, &image()), ["MODE=run", "EXTRA=1"]);
}

#[test]
fn a_default_container_gets_dockers_confinement_and_its_name() {
    let spec = build_with(ContainerConfig::default()).unwrap();
    assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.cwd(), Path::new("/srv"));
    assert_eq!(process.terminal(), Some(false));
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_some(), "docker's default profile");
    assert!(
        linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Network)
    );
    assert_eq!(
        spec.annotations().as_ref().unwrap()[NAME_ANNOTATION],
        "web-1"
    );
    assert_eq!(
        stop_signal(&ContainerConfig::default(), &image()),
        "SIGQUIT"
    );
    assert_eq!(
        exposed_ports(&ContainerConfig::default(), &image()),
        ["80/tcp"]
    );
}

#[test]
fn user_names_resolve_in_the_containers_files() {
    let spec = build_with(ContainerConfig {
        user: Some("web".into()),
        ..Default::default()
    })
    .unwrap();
    let user = spec.process().as_ref().unwrap().user().clone();
    assert_eq!((user.uid(), user.gid()), (33, 44));
    let e = build_with(ContainerConfig {
        user: Some("2147483648".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("0-2147483647"), "{e}");
}

#[test]
fn host_network_shares_the_hosts_namespace() {
    let spec = build_with(host(HostConfig {
        network_mode: Some("host".into()),
        ..Default::default()
    }))
    .unwrap();
    let namespaces = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    assert!(
        namespaces
            .iter()
            .all(|n| n.typ() != LinuxNamespaceType::Network)
    );
}

#[test]
fn resources_become_cgroup_limits() {
    let spec = build_with(host(HostConfig {
        memory: Some(64 << 20),
        memory_swap: Some(128 << 20),
        nano_cpus: Some(1_500_000_000),
        cpu_shares: Some(512),
        cpuset_cpus: Some("0".into()),
        pids_limit: Some(50),
        ..Default::default()
    }))
    .unwrap();
    let r = spec.linux().as_ref().unwrap().resources().clone().unwrap();
    let memory = (*r.memory()).unwrap();
    assert_eq!(
        (memory.limit(), memory.swap()),
        (Some(64 << 20), Some(128 << 20))
    );
    let cpu = r.cpu().clone().unwrap();
    assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
    assert_eq!(cpu.shares(), Some(512));
    assert_eq!(r.pids().as_ref().unwrap().limit(), 50);
    let e = build_with(host(HostConfig {
        memory_swap: Some(1 << 20),
        ..Default::default()
    }))
    .unwrap_err();
    assert!(e.to_string().contains("needs --memory"), "{e}");
}

#[test]
fn security_options_and_privileged_as_docker_reads_them() {
    let spec = build_with(host(HostConfig {
        security_opt: Some(vec![
            "seccomp=unconfined".into(),
            "no-new-privileges".into(),
            "systempaths=unconfined".into(),
        ]),
        ..Default::default()
    }))
    .unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert_eq!(
        spec.process().as_ref().unwrap().no_new_privileges(),
        Some(true)
    );
    let profile = r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#;
    let spec = build_with(host(HostConfig {
        security_opt: Some(vec![format!("seccomp={profile}")]),
        ..Default::default()
    }))
    .unwrap();
    let seccomp = spec.linux().as_ref().unwrap().seccomp().clone().unwrap();
    assert_eq!(seccomp.syscalls().as_ref().unwrap().len(), 1);
    for bad in ["bogus=1", "seccomp", "no-new-privileges=maybe"] {
        let e = build_with(host(HostConfig {
            security_opt: Some(vec![bad.into()]),
            ..Default::default()
        }))
        .unwrap_err();
        assert!(e.to_string().contains(bad), "{bad}: {e}");
    }
}

#[test]
fn capability_names_in_every_spelling() {
    let spec = build_with(host(HostConfig {
        cap_add: Some(vec!["net_admin".into(), "CAP_SYS_TIME".into()]),
        cap_drop: Some(vec!["chown".into()]),
        ..Default::default()
    }))
    .unwrap();
    let caps = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .clone()
        .unwrap();
    let bounding = caps.bounding().clone().unwrap();
    assert!(bounding.contains(&Capability::NetAdmin));
    assert!(bounding.contains(&Capability::SysTime));
    assert!(!bounding.contains(&Capability::Chown));
    let e = build_with(host(HostConfig {
        cap_add: Some(vec!["NOT_A_CAP".into()]),
        ..Default::default()
    }))
    .unwrap_err();
    assert!(e.to_string().contains("NOT_A_CAP"), "{e}");
}

#[test]
fn a_device_mapping_needs_its_host_node() {
    let e = build_with(host(HostConfig {
        devices: Some(vec![DockerDevice {
            path_on_host: Some("/dev/surely-not-here".into()),
            path_in_container: None,
            cgroup_permissions: None,
        }]),
        ..Default::default()
    }))
    .unwrap_err();
    assert!(e.to_string().contains("/dev/surely-not-here"), "{e}");
}

#[test]
fn fields_this_engine_does_not_implement_are_refused_by_name() {
    let e = build_with(host(HostConfig {
        tmpfs: Some(HashMap::from([("/run".to_string(), String::new())])),
        pid_mode: Some("host".into()),
        ..Default::default()
    }))
    .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("HostConfig.Tmpfs") && text.contains("HostConfig.PidMode"),
        "{text}"
    );
    assert!(text.contains("not supported"), "{text}");
}

#[test]
fn a_relative_working_directory_is_refused_as_docker_does() {
    let e = build_with(ContainerConfig {
        working_dir: Some("relative".into()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        e.to_string().contains("needs to be an absolute path"),
        "{e}"
    );
}
