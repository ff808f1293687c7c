//! `info`: what this engine is and what the host lets it do.

use std::process::ExitCode;

use basic_runtime::Environment;
use serde_json::json;

use basic_engine::{Status, host};

use super::{engine, paths, registry_client};

use crate::cli::{GlobalOptions, InfoArgs};

/// Prints versions, storage, snapshotter and the host's isolation features.
pub fn info(global: &GlobalOptions, args: InfoArgs) -> anyhow::Result<ExitCode> {
    let env = host::environment(&paths(global), true);
    // The probe mounts below the store; without a store yet, below the directory that
    // will hold it (the filesystem decides), unrecorded.
    let snapshotter = if global.root.is_dir() {
        host::snapshotter_kind(&paths(global))
    } else {
        let existing = global.root.ancestors().find(|d| d.is_dir());
        basic_rootfs::snapshot::detect(existing.unwrap_or(std::path::Path::new("/")))
    }
    .to_string();
    let counts = counts(global);
    let mirrors: Vec<String> = registry_client(global)?
        .mirrors()
        .iter()
        .map(|m| m.url().to_string())
        .collect();
    let report = json!({
        "Containers": counts.containers,
        "ContainersRunning": counts.running,
        "ContainersPaused": counts.paused,
        "ContainersStopped": counts.containers - counts.running - counts.paused,
        "Images": counts.images,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "DockerRootDir": global.root,
        "Driver": snapshotter,
        "CgroupVersion": env.cgroup_version.to_string(),
        "CgroupControllers": env.cgroup_controllers.iter()
            .map(|(name, writable)| json!({"Name": name, "Writable": writable}))
            .collect::<Vec<_>>(),
        "SwapAccounting": env.swap_accounting,
        "Namespaces": env.namespaces.iter()
            .map(|(ns, ok)| json!({"Name": ns.to_string(), "Available": ok}))
            .collect::<Vec<_>>(),
        "Overlayfs": env.overlayfs,
        "PivotRoot": env.pivot_root,
        "Root": env.root,
        "Rootless": basic_runtime::rootless::active(),
        "UidMap": id_map(&basic_runtime::rootless::uid_map()),
        "GidMap": id_map(&basic_runtime::rootless::gid_map()),
        "SecurityOptions": basic_api::security_options(),
        "NetworkStack": host::network_stack(),
        "InContainer": env.in_container,
        "MissingCapabilities": env.missing_capabilities,
        "HardNofileLimit": env.hard_nofile,
        "Isolation": isolation_summary(&env),
        "RegistryConfig": registry_config(global, &mirrors),
    });
    if args.format.as_deref() == Some("json") {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_table(&report);
    Ok(ExitCode::SUCCESS)
}

/// A user namespace's id map, one `INSIDE OUTSIDE COUNT` string per range.
fn id_map(ranges: &[basic_runtime::rootless::IdRange]) -> Vec<String> {
    ranges
        .iter()
        .map(|r| format!("{} {} {}", r.inside, r.outside, r.count))
        .collect()
}

/// docker's `RegistryConfig`: the insecure registries (loopback always is) and
/// Docker Hub's mirrors.
fn registry_config(global: &GlobalOptions, mirrors: &[String]) -> serde_json::Value {
    let mut index = serde_json::Map::new();
    index.insert(
        "docker.io".into(),
        json!({"Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true}),
    );
    for registry in &global.insecure_registries {
        index.insert(
            registry.clone(),
            json!({"Name": registry, "Mirrors": [], "Secure": false, "Official": false}),
        );
    }
    json!({
        "InsecureRegistryCIDRs": ["127.0.0.0/8"],
        "IndexConfigs": index,
        "Mirrors": mirrors,
    })
}

/// How many containers (by state) and images the store has.
#[derive(Default)]
struct Counts {
    containers: usize,
    running: usize,
    paused: usize,
    images: usize,
}

/// Zero when there is no store yet (`info` must not create one).
fn counts(global: &GlobalOptions) -> Counts {
    if !global.root.join("metadata.db").exists() {
        return Counts::default();
    }
    let Ok(engine) = engine(global) else {
        return Counts::default();
    };
    let containers = engine.containers().unwrap_or_default();
    let statuses: Vec<Status> = containers.iter().map(|c| engine.status(c)).collect();
    Counts {
        containers: containers.len(),
        running: statuses
            .iter()
            .filter(|s| matches!(s, Status::Running(_) | Status::Restarting))
            .count(),
        paused: statuses
            .iter()
            .filter(|s| matches!(s, Status::Paused(_)))
            .count(),
        images: engine.store().images().map(|i| i.len()).unwrap_or(0),
    }
}

/// One line per isolation feature a user asks about: available or why not.
fn isolation_summary(env: &Environment) -> Vec<String> {
    let mut lines = Vec::new();
    for (ns, ok) in &env.namespaces {
        lines.push(format!(
            "{ns} namespace: {}",
            if *ok { "yes" } else { "no" }
        ));
    }
    for (controller, writable) in &env.cgroup_controllers {
        lines.push(format!(
            "cgroup {controller}: {}",
            if *writable { "yes" } else { "not writable" }
        ));
    }
    lines.push(format!(
        "memory+swap limit: {}",
        if env.swap_accounting {
            "yes"
        } else {
            "no (swap accounting off)"
        }
    ));
    lines.push(format!(
        "overlayfs: {}",
        if env.overlayfs {
            "yes"
        } else {
            "no (copy snapshotter)"
        }
    ));
    lines.push(format!(
        "pivot_root: {}",
        if env.pivot_root {
            "yes"
        } else {
            "no (chroot fallback)"
        }
    ));
    lines
}

fn print_table(report: &serde_json::Value) {
    let text = |key: &str| match &report[key] {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    println!("Containers: {}", text("Containers"));
    println!(" Running: {}", text("ContainersRunning"));
    println!(" Paused: {}", text("ContainersPaused"));
    println!(" Stopped: {}", text("ContainersStopped"));
    println!("Images: {}", text("Images"));
    println!("Server Version: {}", text("ServerVersion"));
    println!("Storage Driver: {}", text("Driver"));
    println!("Docker Root Dir: {}", text("DockerRootDir"));
    println!("Cgroup Version: {}", text("CgroupVersion"));
    println!("Running as root: {}", text("Root"));
    println!("Rootless: {}", text("Rootless"));
    if report["Rootless"] == true {
        let ranges = |key: &str| {
            report[key]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(" UID Map: {}", ranges("UidMap"));
        println!(" GID Map: {}", ranges("GidMap"));
    }
    println!("Network Stack: {}", text("NetworkStack"));
    if let Some(evidence) = report["InContainer"].as_str() {
        println!("Inside a container: yes ({evidence})");
    }
    if let Some(missing) = report["MissingCapabilities"]
        .as_array()
        .filter(|m| !m.is_empty())
    {
        let names: Vec<&str> = missing.iter().filter_map(|m| m.as_str()).collect();
        println!(
            "Capabilities missing from the bounding set: {}",
            names.join(", ")
        );
    }
    println!("Hard open-files limit: {}", text("HardNofileLimit"));
    let registry = &report["RegistryConfig"];
    println!("Insecure Registries:");
    let insecure_names = registry["IndexConfigs"]
        .as_object()
        .into_iter()
        .flat_map(|index| index.values())
        .filter(|config| config["Secure"] == false)
        .map(|config| &config["Name"]);
    let cidrs = registry["InsecureRegistryCIDRs"]
        .as_array()
        .into_iter()
        .flatten();
    for name in insecure_names.chain(cidrs) {
        println!(" {}", name.as_str().unwrap_or_default());
    }
    if let Some(mirrors) = registry["Mirrors"].as_array().filter(|m| !m.is_empty()) {
        println!("Registry Mirrors:");
        for mirror in mirrors {
            println!(" {}", mirror.as_str().unwrap_or_default());
        }
    }
    println!("Isolation:");
    for line in report["Isolation"].as_array().into_iter().flatten() {
        println!(" {}", line.as_str().unwrap_or_default());
    }
}
