//! `import FILE|- [REF]`: a rootfs tarball as a one-layer image.

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;

use anyhow::Context as _;

use super::image_store;
use crate::cli::{GlobalOptions, ImportArgs};

/// Imports the tarball and prints the new image's id, as docker does.
pub async fn import(global: &GlobalOptions, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let (input, name): (Box<dyn Read + Send>, String) = if args.file == "-" {
        (Box::new(std::io::stdin()), "STDIN".to_string())
    } else {
        let file = File::open(&args.file).with_context(|| format!("opening {}", args.file))?;
        (Box::new(file), args.file.clone())
    };
    let id =
        basic_image_store::import(&store, input, &name, args.reference.as_deref(), |_| {}).await?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
