//! Resolve an image for this machine's platform and download its layers, verified,
//! with `basic-registry` alone.
//!
//! ```sh
//! cargo run -p basic-docker-examples --example pull-manifest -- 127.0.0.1:5100/fixtures/busybox
//! cargo run -p basic-docker-examples --example pull-manifest -- busybox linux/arm64
//! ```

use anyhow::Context as _;
use basic_registry::{
    BlobRequest, Platform, Reference, RegistryClient, fetch_config, resolve_image,
};
use futures_util::TryStreamExt as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let reference = Reference::parse(&args.next().context("usage: pull-manifest REF [PLATFORM]")?)?;
    let platform = match args.next() {
        Some(p) => Platform::parse(&p)?,
        None => Platform::host(),
    };
    let client = RegistryClient::from_env()?;

    let image = resolve_image(&client, &reference, &platform).await?;
    println!("{reference} for {platform}");
    println!("  digest   {}", image.repo_digest());
    println!("  manifest {}", image.manifest.digest);
    let config = fetch_config(&client, &reference, &image.image).await?;
    println!(
        "  config   {} ({} bytes)",
        image.image.config().digest(),
        config.len()
    );

    for layer in image.image.layers() {
        let mut stream = client
            .fetch_blob(&reference, &BlobRequest::from_descriptor(layer))
            .await?;
        let mut bytes = 0u64;
        // Every chunk counts as unverified until the stream ends without an error.
        while let Some(chunk) = stream.try_next().await? {
            bytes += chunk.len() as u64;
        }
        println!("  layer    {} {} bytes, verified", layer.digest(), bytes);
    }
    Ok(())
}
