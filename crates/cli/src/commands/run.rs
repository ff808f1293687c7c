//! `run`: `create`, then the container under a supervisor — in this process
//! for a foreground run, in a detached one with `-d`.
//!
//! The work is split in two because the runtime forks: [`prepare`] does the async
//! part (finding or pulling the image) while the tokio runtime runs, and
//! [`execute`] runs the container after that runtime and its threads are gone,
//! so the forked child never inherits locks held by other threads.

use std::process::ExitCode;

use basic_image_store::ImageStore;

use super::create::{self, Created};
use super::supervise::{self, ENGINE_FAILURE};
use super::{cleanup, host};
use crate::cli::{GlobalOptions, RunArgs};

/// A created container, about to start.
pub struct Prepared {
    created: Created,
    detach: bool,
}

/// Finds the image (pulling it when absent, as docker does), creates the
/// container and mounts its root.
pub async fn prepare(global: &GlobalOptions, args: RunArgs) -> anyhow::Result<Prepared> {
    let created = create::create(global, &args).await?;
    if let Err(e) = create::check_isolation(&created.paths, args.isolation == "strict") {
        discard(global, &created);
        return Err(e);
    }
    Ok(Prepared {
        created,
        detach: args.detach,
    })
}

/// Runs the prepared container: detached (prints its id) or in the foreground
/// (the exit code is the container's own, or docker's 125/126/127 when it could
/// not start).
pub fn execute(global: &GlobalOptions, prepared: Prepared) -> ExitCode {
    let record = &prepared.created.record;
    if prepared.detach {
        return match supervise::start_detached(&global.root, record) {
            Ok(Ok(())) => {
                println!("{}", record.id);
                ExitCode::SUCCESS
            }
            Ok(Err(code)) => exit_code(code),
            Err(e) => {
                eprintln!("Error: {e:#}");
                exit_code(ENGINE_FAILURE)
            }
        };
    }
    match supervise::supervise(&global.root, &record.id, true) {
        Ok(code) => exit_code(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            exit_code(ENGINE_FAILURE)
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(ENGINE_FAILURE as u8))
}

fn discard(global: &GlobalOptions, created: &Created) {
    let _ = host::snapshotter(&global.root).unmount(&created.paths.rootfs);
    if let Ok(store) = ImageStore::open(&global.root) {
        let _ = cleanup::remove(&global.root, &store, &created.record);
    }
}
