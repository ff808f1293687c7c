//! `save [-o FILE] IMAGE...`: a `docker save` archive.

use std::process::ExitCode;

use crate::cli::{GlobalOptions, SaveArgs};

/// Not yet wired.
pub fn save(_global: &GlobalOptions, _args: SaveArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("save is not implemented yet")
}
