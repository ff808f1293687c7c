//! `save [-o FILE] IMAGE...`: a `docker save` archive.

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal as _};
use std::process::ExitCode;

use anyhow::Context as _;

use super::image_store;
use crate::cli::{GlobalOptions, SaveArgs};

/// Writes the archive to `-o FILE` (through a temp file renamed at the end,
/// so a failed save leaves no half archive) or to STDOUT.
pub fn save(global: &GlobalOptions, args: SaveArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    match &args.output {
        Some(path) => {
            let mut temp = path.as_os_str().to_owned();
            temp.push(format!(".tmp-{}", std::process::id()));
            let file = File::create(&temp)
                .with_context(|| format!("creating {}", temp.to_string_lossy()))?;
            let written = basic_image_store::save(&store, &args.images, BufWriter::new(file))
                .map_err(anyhow::Error::from)
                .and_then(|()| {
                    fs::rename(&temp, path)
                        .with_context(|| format!("renaming the archive to {}", path.display()))
                });
            if written.is_err() {
                let _ = fs::remove_file(&temp);
            }
            written?;
        }
        None => {
            // As docker: refuse to write binary to a terminal.
            if io::stdout().is_terminal() {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            basic_image_store::save(&store, &args.images, BufWriter::new(io::stdout().lock()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
