//! `create` (and the first half of `run`): docker's create body from the flags, the
//! image pulled when it is not in the store (as docker's command line does), and the
//! engine's create.

use anyhow::Context as _;
use basic_engine::{Created, EngineError};
use basic_registry::{Platform, Reference};

use super::{container_config, engine};
use crate::cli::{GlobalOptions, RunArgs};

/// Creates the container `args` describe, pulling its image first when the store does not
/// have it; prints docker's warnings.
pub async fn create(
    global: &GlobalOptions,
    args: &RunArgs,
    keep_root_mounted: bool,
) -> anyhow::Result<Created> {
    let (config, mut options) = container_config::from_run_args(args)?;
    options.keep_root_mounted = keep_root_mounted;
    let engine = engine(global)?;
    let image = config.image.clone().unwrap_or_default();
    let created = match engine.create(config.clone(), &options) {
        Err(EngineError::NoSuchImage(_)) => {
            pull(global, &image, args.platform.as_deref()).await?;
            engine.create(config, &options)?
        }
        other => other?,
    };
    for warning in &created.warnings {
        eprintln!("WARNING: {}", basic_escape::escape(warning));
    }
    Ok(created)
}

async fn pull(global: &GlobalOptions, image: &str, platform: Option<&str>) -> anyhow::Result<()> {
    let reference = Reference::parse(image)?;
    eprintln!("Unable to find image '{}' locally", reference.familiar());
    let platform = platform.map(Platform::parse).transpose()?;
    super::pull::pull_to_stderr(global, &reference, platform)
        .await
        .with_context(|| format!("pulling {}", reference.familiar()))?;
    Ok(())
}

/// `create`: prints the new container's id.
pub async fn run_create(global: &GlobalOptions, args: &RunArgs) -> anyhow::Result<()> {
    let created = create(global, args, false).await?;
    println!("{}", created.container.id());
    Ok(())
}
