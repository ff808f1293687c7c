//! `inspect NAME...`: docker's JSON array of containers and images, the documents the
//! API returns; `container inspect` looks at containers only.

use std::process::ExitCode;

use serde_json::Value;

use super::engine;
use crate::cli::{GlobalOptions, InspectArgs};

/// Prints what was found as one JSON array; names not found are reported
/// on stderr and make the exit code 1, as docker does.
pub fn inspect(global: &GlobalOptions, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(global)?;
    let mut found = Vec::new();
    let mut failed = false;
    for name in &args.images {
        // docker looks for a container first, then an image.
        if let Ok(container) = engine.inspect(name) {
            found.push(serde_json::to_value(container)?);
            continue;
        }
        match engine.inspect_image(name) {
            Ok(image) => found.push(serde_json::to_value(image)?),
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
