//! `inspect NAME...`: docker's JSON array of containers and images (plus the
//! layers' chain IDs), or `-f TEMPLATE` per object; `container inspect` looks at
//! containers only.

use std::process::ExitCode;

use serde_json::Value;

use super::engine;
use super::template::{InspectFormat, canonical};
use crate::cli::{GlobalOptions, InspectArgs};

/// Prints what was found as one JSON array, or `-f`'s template once per object; names
/// not found are reported on stderr and make the exit code 1, as docker does.
pub fn inspect(global: &GlobalOptions, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let Some(format) = checked_format(&args)? else {
        return Ok(ExitCode::from(BAD_FORMAT));
    };
    let engine = engine(global)?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.images {
        // docker looks for a container first, then an image.
        if let Ok(container) = engine.inspect(name) {
            found.push(serde_json::to_value(container)?);
            continue;
        }
        match engine.inspect_image(name) {
            Ok(image) => found.push(serde_json::to_value(image)?),
            Err(e) => errors.push(format!("Error: No such object: {name} ({e})")),
        }
    }
    Ok(print_documents(&format, found, errors))
}

/// docker's exit code for a `--format` that does not parse.
const BAD_FORMAT: u8 = 64;

/// The `-f` template, or `None` after printing why it does not parse.
fn checked_format(args: &InspectArgs) -> anyhow::Result<Option<InspectFormat>> {
    match InspectFormat::new(args.format.as_deref()) {
        Ok(format) => Ok(Some(format)),
        Err(e) => {
            eprintln!("{e}");
            Ok(None)
        }
    }
}

/// Prints the documents (as docker writes them: struct fields in order, maps sorted)
/// through the format, then the errors; exit code 1 when there were any.
pub fn print_documents(
    format: &InspectFormat,
    documents: Vec<Value>,
    mut errors: Vec<String>,
) -> ExitCode {
    let documents: Vec<Value> = documents.into_iter().map(canonical).collect();
    let out = format.render(&documents);
    print!("{}", out.stdout);
    errors.extend(out.errors);
    for e in &errors {
        eprintln!("{e}");
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `container inspect`: docker's document for each container.
pub fn inspect_containers(global: &GlobalOptions, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let Some(format) = checked_format(&args)? else {
        return Ok(ExitCode::from(BAD_FORMAT));
    };
    let engine = engine(global)?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.images {
        match engine.inspect(name) {
            Ok(doc) => found.push(serde_json::to_value(doc)?),
            Err(e) => errors.push(format!("Error: {e}")),
        }
    }
    Ok(print_documents(&format, found, errors))
}
