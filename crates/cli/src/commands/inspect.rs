//! `inspect NAME...`: docker's JSON array of containers and images (plus the
//! layers' chain IDs); `container inspect` looks at containers only.

use std::process::ExitCode;

use basic_image_store::{ImageRecord, ImageStore};
use serde_json::{Value, json};

use super::create::Settings;
use super::image_store;
use super::live::{self, Paths, Status, rfc3339};
use crate::cli::{GlobalOptions, InspectArgs};

/// Prints what was found as one JSON array; names not found are reported
/// on stderr and make the exit code 1, as docker does.
pub fn inspect(global: &GlobalOptions, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.images {
        // docker looks for a container first, then an image.
        if let Ok(container) = store.container(name) {
            found.push(describe_container(&global.root, &container)?);
            continue;
        }
        match store.resolve(name) {
            Ok(record) => found.push(describe(&store, &record)?),
            Err(e) => {
                eprintln!("Error: No such object: {name} ({e})");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&Value::Array(found))?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn describe(store: &ImageStore, record: &ImageRecord) -> anyhow::Result<Value> {
    let config = store.image_config(&record.id)?;
    let layer_dirs: Vec<String> = record
        .layers
        .iter()
        .rev()
        .map(|l| {
            store
                .layer_dir(&l.chain_id)
                .map(|d| d.join("diff").display().to_string())
        })
        .collect::<Result<_, _>>()?;
    Ok(json!({
        "Id": record.id,
        "RepoTags": record.repo_tags,
        "RepoDigests": record.repo_digests,
        "Parent": "",
        "Comment": config.get("comment").cloned().unwrap_or(json!("")),
        "Created": record.created,
        "DockerVersion": config.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": config.get("author").cloned().unwrap_or(json!("")),
        "Config": config.get("config").cloned().unwrap_or(Value::Null),
        "Architecture": record.architecture,
        "Variant": config.get("variant").cloned(),
        "Os": record.os,
        "Size": record.size,
        "GraphDriver": {
            "Name": "overlay",
            "Data": { "LowerDir": layer_dirs.join(":") },
        },
        "RootFS": {
            "Type": "layers",
            "Layers": record.layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "ChainIDs": record.layers.iter().map(|l| l.chain_id.clone()).collect::<Vec<_>>(),
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    }))
}

/// `container inspect`: containers only.
pub fn inspect_containers(global: &GlobalOptions, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.images {
        match store.container(name) {
            Ok(container) => found.push(describe_container(&global.root, &container)?),
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&Value::Array(found))?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// docker's container document, for the fields this engine has.
fn describe_container(
    root: &std::path::Path,
    record: &basic_image_store::ContainerRecord,
) -> anyhow::Result<Value> {
    let settings = Settings::of(record)?;
    let status = live::status(root, record);
    let paths = Paths::new(root, &record.id);
    let spec: Value = std::fs::read(paths.spec())
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let (path, args) = settings
        .command
        .split_first()
        .map(|(p, a)| (p.clone(), a.to_vec()))
        .unwrap_or_default();
    let restart = settings.restart_policy();
    let (policy, retries) = match restart {
        basic_runtime::supervisor::RestartPolicy::OnFailure { max_retries } => {
            ("on-failure".to_string(), max_retries.unwrap_or(0))
        }
        other => (other.to_string(), 0),
    };
    let error = std::fs::read_to_string(paths.start_error()).unwrap_or_default();
    Ok(json!({
        "Id": record.id,
        "Created": rfc3339(Some(record.created)),
        "Path": path,
        "Args": args,
        "State": {
            "Status": status.word(),
            "Running": matches!(status, Status::Running(_) | Status::Paused(_)),
            "Paused": matches!(status, Status::Paused(_)),
            "Restarting": status == Status::Restarting,
            "OOMKilled": record.exit.is_some_and(|e| e.oom_killed),
            "Dead": false,
            "Pid": status.pid().unwrap_or(0),
            "ExitCode": match status {
                Status::Exited(code) => code,
                _ => 0,
            },
            "Error": error,
            "StartedAt": rfc3339(record.started),
            "FinishedAt": rfc3339(record.exit.map(|e| e.finished)),
        },
        "Image": record.image_id,
        "LogPath": paths.log(),
        "Name": format!("/{}", record.name),
        "RestartCount": record.restart_count,
        "Driver": super::host::snapshotter_kind(root).to_string(),
        "HostConfig": {
            "RestartPolicy": {"Name": policy, "MaximumRetryCount": retries},
            "AutoRemove": settings.auto_remove,
            "NetworkMode": settings.network,
            "Init": settings.init,
        },
        "Config": {
            "Hostname": spec["hostname"],
            "Env": spec.pointer("/process/env").cloned().unwrap_or(Value::Null),
            "Cmd": settings.command,
            "Image": record.image,
            "WorkingDir": spec.pointer("/process/cwd").cloned().unwrap_or(Value::Null),
            "OpenStdin": settings.interactive,
            "StopSignal": settings.stop_signal,
        },
        "GraphDriver": {"Data": {"MergedDir": paths.rootfs}},
    }))
}
