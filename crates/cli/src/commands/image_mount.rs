//! `image mount` / `image unmount`, as podman has them.

use std::process::ExitCode;

use super::engine;
use crate::cli::{GlobalOptions, ImageMountArgs};

/// Prints where the image's read-only view is mounted.
pub fn mount(global: &GlobalOptions, args: ImageMountArgs) -> anyhow::Result<ExitCode> {
    println!("{}", engine(global)?.mount_image(&args.image)?.display());
    Ok(ExitCode::SUCCESS)
}

/// Unmounts it; prints the image's id.
pub fn unmount(global: &GlobalOptions, args: ImageMountArgs) -> anyhow::Result<ExitCode> {
    println!("{}", engine(global)?.unmount_image(&args.image)?);
    Ok(ExitCode::SUCCESS)
}
