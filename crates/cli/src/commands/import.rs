//! `import FILE|- [REF]`: a rootfs tarball as a one-layer image.

use std::process::ExitCode;

use crate::cli::{GlobalOptions, ImportArgs};

/// Not yet wired.
pub async fn import(_global: &GlobalOptions, _args: ImportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("import is not implemented yet")
}
