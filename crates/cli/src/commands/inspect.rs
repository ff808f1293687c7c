//! `inspect NAME...`: docker's JSON array of containers and images (plus the
//! layers' chain IDs); `container inspect` looks at containers only.

use std::process::ExitCode;

use basic_image_store::{ImageRecord, ImageStore};
use serde_json::{Value, json};

use super::engine;
use crate::cli::{GlobalOptions, InspectArgs};

/// Prints what was found as one JSON array; names not found are reported
/// on stderr and make the exit code 1, as docker does.
pub fn inspect(global: &GlobalOptions, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(global)?;
    let store = engine.store();
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.images {
        // docker looks for a container first, then an image.
        if let Ok(container) = engine.inspect(name) {
            found.push(serde_json::to_value(container)?);
            continue;
        }
        match store.resolve(name) {
            Ok(record) => found.push(describe(store, &record)?),
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
    let config = store.image_configuration(&record.id)?;
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
        "Comment": config.docker.comment.clone().unwrap_or_default(),
        "Created": record.created,
        "DockerVersion": config.docker.docker_version.clone().unwrap_or_default(),
        "Author": config.oci.author().clone().unwrap_or_default(),
        "Config": config.run_config(),
        "Architecture": record.architecture,
        "Variant": config.oci.variant(),
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

/// `container inspect`: docker's document for each container.
pub fn inspect_containers(global: &GlobalOptions, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(global)?;
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.images {
        match engine.inspect(name) {
            Ok(doc) => found.push(serde_json::to_value(doc)?),
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
