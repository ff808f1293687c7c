//! `system check [--repair]`: containers first (what they left behind), then the store
//! (blobs, layers, records).

use std::process::ExitCode;

use basic_engine::check::ContainerCheck;
use basic_image_store::{Removal, short_id};

use super::engine;
use crate::cli::{CheckArgs, GlobalOptions};

/// Prints every problem; exits 1 when some were found and not repaired.
pub fn check(global: &GlobalOptions, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(global)?;
    let containers = engine.check_containers(args.repair)?;
    let report = engine.store().check(args.repair)?;
    let found = containers.problems.len() + report.problems.len();
    if found == 0 {
        println!("No problems found");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &containers.problems {
        println!("{problem}");
    }
    for problem in &report.problems {
        println!("{problem}");
    }
    if !args.repair {
        println!(
            "{found} problem(s) found; run `system check --repair` to remove what is broken or \
             left behind{}",
            match report.problems.is_empty() {
                true => "",
                false => ", then pull again",
            }
        );
        return Ok(ExitCode::FAILURE);
    }
    let cleaned = print_container_repairs(&containers);
    for removal in &report.removed {
        match removal {
            Removal::Untagged(name) => println!("Untagged: {name}"),
            Removal::Deleted(id) => println!("Deleted: {id}"),
        }
    }
    if !report.problems.is_empty() {
        println!("Repaired: pull the affected images again");
    }
    Ok(match cleaned {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// "Cleaned up" for each container repaired, the reason for each that was not; whether
/// all were.
fn print_container_repairs(check: &ContainerCheck) -> bool {
    for id in &check.repaired {
        println!("Cleaned up: {}", short_id(id));
    }
    for (id, why) in &check.failed {
        println!("Not cleaned up: {}: {why}", short_id(id));
    }
    check.failed.is_empty()
}
