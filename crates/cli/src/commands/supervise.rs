//! `container-supervise ID`: the detached supervisor of one container (see
//! [`basic_engine::Engine::supervise`]), started by the engine for `run -d`, `start` and
//! `restart`.

use basic_engine::Attachment;

use super::engine;
use crate::cli::GlobalOptions;

/// Supervises container `id` until it exits for good; returns docker's exit code.
pub fn supervise(global: &GlobalOptions, id: &str) -> anyhow::Result<i32> {
    Ok(engine(global)?.supervise(id, Attachment::Detached)?)
}
