//! `export`: a container's root filesystem as a rootfs tarball (running or stopped), to
//! `-o FILE` (written to a temporary name and renamed) or to standard output.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;

use super::engine;
use crate::cli::GlobalOptions;

/// `export [-o FILE] CONTAINER`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The container: id, id prefix or name
    pub container: String,
}

/// Writes the tarball; refuses a terminal as docker does.
pub fn export(global: &GlobalOptions, args: ExportArgs) -> anyhow::Result<ExitCode> {
    if args.output.is_none() && io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let engine = engine(global)?;
    match &args.output {
        Some(path) => write_file(path, |file| {
            let mut out = BufWriter::new(file);
            engine.export(&args.container, &mut out)?;
            out.flush()?;
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()
                .with_context(|| format!("writing {}", path.display()))
        })?,
        None => {
            let mut out = BufWriter::new(io::stdout());
            engine.export(&args.container, &mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes through a temporary file renamed into place, so that a failed export leaves
/// no half archive under the name asked for.
fn write_file(path: &Path, write: impl FnOnce(&File) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".tmp-{}", std::process::id()));
    let temp = PathBuf::from(temp);
    let file = File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
    let written = write(&file).and_then(|()| {
        fs::rename(&temp, path)
            .with_context(|| format!("renaming the archive to {}", path.display()))
    });
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}
