//! `load [-i FILE]`: images from a `docker save` or OCI archive.

use std::fs::File;
use std::io::Read;
use std::process::ExitCode;

use anyhow::Context as _;

use super::image_store;
use crate::cli::{GlobalOptions, LoadArgs};

/// Loads every image of the archive and names them as docker does:
/// `Loaded image: REPO:TAG` per tag, `Loaded image ID: sha256:…` when untagged.
pub async fn load(global: &GlobalOptions, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let (input, name): (Box<dyn Read + Send>, String) = match &args.input {
        Some(path) => {
            let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            (Box::new(file), path.display().to_string())
        }
        None => (Box::new(std::io::stdin()), "STDIN".to_string()),
    };
    let loaded = basic_image_store::load(&store, input, &name, |_| {}).await?;
    if !args.quiet {
        for image in loaded {
            if image.tags.is_empty() {
                println!("Loaded image ID: {}", image.id);
            }
            for tag in image.tags {
                println!("Loaded image: {tag}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
