//! `system check [--repair]`.

use std::process::ExitCode;

use basic_image_store::Removal;

use super::image_store;
use crate::cli::{CheckArgs, GlobalOptions};

/// Prints every problem; exits 1 when some were found and not repaired.
pub fn check(global: &GlobalOptions, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let report = store.check(args.repair)?;
    if report.problems.is_empty() {
        println!("No problems found");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    if !args.repair {
        println!(
            "{} problem(s) found; run `system check --repair` to remove what is broken, then pull again",
            report.problems.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    for removal in &report.removed {
        match removal {
            Removal::Untagged(name) => println!("Untagged: {name}"),
            Removal::Deleted(id) => println!("Deleted: {id}"),
        }
    }
    println!("Repaired: pull the affected images again");
    Ok(ExitCode::SUCCESS)
}
