//! `run`: `create`, then the container under a supervisor — in this process for a
//! foreground run, in a detached one with `-d`.
//!
//! The work is split in two because the runtime forks: [`prepare`] does the async part
//! (creating, pulling the image when absent) while the tokio runtime runs, and
//! [`execute`] runs the container after that runtime and its threads are gone, so the
//! forked child never inherits locks held by other threads.

use std::process::ExitCode;

use basic_engine::{Attachment, Created, ENGINE_FAILURE};

use super::{create, engine};
use crate::cli::{GlobalOptions, RunArgs};

/// A created container, about to start.
pub struct Prepared {
    created: Created,
    detach: bool,
}

/// Creates the container (pulling the image when absent, as docker does) and leaves its
/// root mounted for the start.
pub async fn prepare(global: &GlobalOptions, args: RunArgs) -> anyhow::Result<Prepared> {
    let created = create::create(global, &args, true).await?;
    Ok(Prepared {
        created,
        detach: args.detach,
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
            Ok(engine.supervise(container.id(), Attachment::Foreground)?)
        }
    });
    match result {
        Ok(code) => exit_code(code),
        Err(e) => {
            eprintln!("Error: {}", super::error_text(&e));
            let code = e
                .downcast_ref::<basic_engine::EngineError>()
                .map_or(ENGINE_FAILURE, |e| e.exit_code());
            exit_code(code)
        }
    }
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(ENGINE_FAILURE as u8))
}
