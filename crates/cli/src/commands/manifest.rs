//! `manifest inspect`.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use basic_registry::{ManifestContent, Platform, Reference, select_manifest};

use crate::cli::{GlobalOptions, ManifestInspectArgs};

/// Prints the manifest a reference names, or with `--platform` that platform's
/// manifest from the index, as indented JSON in the registry's own key order.
pub async fn inspect(
    global: &GlobalOptions,
    args: ManifestInspectArgs,
) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.reference)?;
    let client = super::registry_client(global)?;
    let mut manifest = client.fetch_manifest(&reference).await?;
    if let Some(platform) = &args.platform {
        let platform = Platform::parse(platform)?;
        if let ManifestContent::Index(index) = &manifest.content {
            let chosen = select_manifest(index, &platform)?;
            let by_digest = reference.with_digest(chosen.digest().as_ref())?;
            manifest = client.fetch_manifest(&by_digest).await?;
        }
    }
    let value: serde_json::Value = serde_json::from_slice(&manifest.raw)
        .with_context(|| format!("manifest {} is not JSON", manifest.digest))?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &value)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}
