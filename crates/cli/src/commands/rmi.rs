//! `rmi` and `image prune`.

use std::process::ExitCode;

use basic_image_store::Removal;

use super::format::human_size;
use super::image_store;
use crate::cli::{GlobalOptions, PruneArgs, RmiArgs};

/// `rmi [-f] IMAGE...`: every name is tried; the exit code is 1 if any failed.
pub fn rmi(global: &GlobalOptions, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let mut failed = false;
    for name in &args.images {
        match store.remove(name, args.force) {
            Ok(removals) => {
                for removal in removals {
                    println!("{}", line(&removal, false));
                }
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `image prune [-a]`.
pub fn prune(global: &GlobalOptions, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let before = store.disk_usage()?;
    let removals = store.prune(args.all)?;
    let after = store.disk_usage()?;
    if !removals.is_empty() {
        println!("Deleted Images:");
        for removal in &removals {
            println!("{}", line(removal, true));
        }
        println!();
    }
    let reclaimed = (before.layers_size + before.blobs_size)
        .saturating_sub(after.layers_size + after.blobs_size);
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(ExitCode::SUCCESS)
}

/// Docker's words: `Untagged: …` / `Deleted: …` (lower case in prune's list).
fn line(removal: &Removal, lower: bool) -> String {
    let (word, what) = match removal {
        Removal::Untagged(name) => ("Untagged", name),
        Removal::Deleted(id) => ("Deleted", id),
    };
    if lower {
        format!("{}: {what}", word.to_lowercase())
    } else {
        format!("{word}: {what}")
    }
}
