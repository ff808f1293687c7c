//! `container-supervise ID`: the supervisor of one container (see
//! [`basic_engine::Engine::supervise`]), started by the engine for `run` (attached to it),
//! `run -d`, `start` and `restart`. Its stdio is `/dev/null`, or the pipes or pty of the
//! `run` attached to it.

use basic_engine::Attachment;

use super::engine;
use crate::cli::GlobalOptions;

/// Supervises container `id` until it exits for good; returns docker's exit code.
pub fn supervise(global: &GlobalOptions, id: &str) -> anyhow::Result<i32> {
    Ok(engine(global)?.supervise(id, Attachment::of_supervisor_process())?)
}
