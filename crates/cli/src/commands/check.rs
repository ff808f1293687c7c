//! `system check [--repair]`.

use std::process::ExitCode;

use crate::cli::{CheckArgs, GlobalOptions};

/// Not yet wired.
pub fn check(_global: &GlobalOptions, _args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("system check is not implemented yet")
}
