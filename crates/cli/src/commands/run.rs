//! `run`: `create`, then the container under a supervisor process of its own — with this
//! process attached to it in the foreground, on its own with `-d`. The supervisor outlives
//! this process: killed, it leaves a container that still exits, is recorded and, with
//! `--rm`, removed.
//!
//! The work is split in two: [`prepare`] does the async part (creating, pulling the image
//! when absent) while the tokio runtime runs, and [`execute`] starts and attaches after
//! that runtime is gone, so that nothing of it outlives the pull.

use std::process::ExitCode;

use basic_engine::{Created, ENGINE_FAILURE, ForegroundOptions};

use super::{create, engine};
use crate::cli::{GlobalOptions, RunArgs};

/// A created container, about to start.
pub struct Prepared {
    created: Created,
    detach: bool,
    interactive: bool,
}

/// Creates the container (pulling the image when absent, as docker does) and leaves its
/// root mounted for the start.
pub async fn prepare(global: &GlobalOptions, args: RunArgs) -> anyhow::Result<Prepared> {
    let created = create::create(global, &args, true).await?;
    Ok(Prepared {
        created,
        detach: args.detach,
        interactive: args.interactive,
    })
}

/// Runs the prepared container: detached (prints its id) or in the foreground (the exit
/// code is the container's own, or docker's 125/126/127 when it could not start).
pub fn execute(global: &GlobalOptions, prepared: Prepared) -> ExitCode {
    let container = &prepared.created.container;
    let result = engine(global).and_then(|engine| {
        if prepared.detach {
            engine.start(container.id())?;
            println!("{}", container.id());
            Ok(0)
        } else {
            let options = ForegroundOptions {
                stdin: prepared.interactive,
                sig_proxy: true,
            };
            Ok(engine.start_attached(container.id(), options)?)
        }
    });
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(ENGINE_FAILURE as u8)),
        Err(e) => {
            eprintln!("Error: {}", super::error_text(&e));
            ExitCode::from(exit_code_of(&e))
        }
    }
}

/// docker's exit code for a failed `run`: 126 or 127 when the command could not be
/// executed or found, 125 for anything else.
pub fn exit_code_of(e: &anyhow::Error) -> u8 {
    let code = e
        .downcast_ref::<basic_engine::EngineError>()
        .map_or(ENGINE_FAILURE, |e| e.exit_code());
    u8::try_from(code).unwrap_or(ENGINE_FAILURE as u8)
}
