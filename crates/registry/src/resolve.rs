//! From a reference to one platform's image manifest and config: the first steps of a pull.

use std::future::Future;

use bytes::Bytes;
use oci_spec::image::ImageManifest;

use crate::blob::{BlobRequest, BlobStream};
use crate::client::RegistryClient;
use crate::error::RegistryError;
use crate::manifest::{Manifest, ManifestContent};
use crate::platform::{Platform, select_manifest};
use crate::reference::Reference;

/// Largest image config accepted. Configs are JSON metadata; real ones are a few KiB.
pub const MAX_CONFIG_SIZE: u64 = 16 * 1024 * 1024;

/// What a pull needs from a source of images: manifests by reference, blobs as
/// verified streams. [`RegistryClient`] implements it over HTTP; other sources
/// (an archive on disk, a test double) can implement it too.
pub trait Registry: Send + Sync {
    /// Fetches the manifest or index `reference` names, digest-verified.
    fn fetch_manifest(
        &self,
        reference: &Reference,
    ) -> impl Future<Output = Result<Manifest, RegistryError>> + Send;

    /// Streams a blob of `reference`'s repository; see [`BlobStream`] for when its
    /// bytes count as verified.
    fn fetch_blob(
        &self,
        reference: &Reference,
        request: &BlobRequest,
    ) -> impl Future<Output = Result<BlobStream, RegistryError>> + Send;
}

impl Registry for RegistryClient {
    async fn fetch_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        RegistryClient::fetch_manifest(self, reference).await
    }

    async fn fetch_blob(
        &self,
        reference: &Reference,
        request: &BlobRequest,
    ) -> Result<BlobStream, RegistryError> {
        RegistryClient::fetch_blob(self, reference, request).await
    }
}

/// One platform's image, resolved from a reference.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The index the reference named, when it named one.
    pub index: Option<Manifest>,
    /// The image manifest (for the chosen platform).
    pub manifest: Manifest,
    /// `manifest`, parsed.
    pub image: ImageManifest,
}

impl ResolvedImage {
    /// The digest a user pulls by: the index's when there is one, as docker reports it.
    pub fn repo_digest(&self) -> &str {
        self.index
            .as_ref()
            .map_or(&self.manifest.digest, |i| &i.digest)
    }
}

/// Resolves `reference` to an image manifest: when it names an index, the manifest
/// for `platform` is selected from it and fetched by digest.
pub async fn resolve_image<R: Registry>(
    registry: &R,
    reference: &Reference,
    platform: &Platform,
) -> Result<ResolvedImage, RegistryError> {
    let top = registry.fetch_manifest(reference).await?;
    let (index, manifest) = match &top.content {
        ManifestContent::Image(_) => (None, top),
        ManifestContent::Index(list) => {
            let chosen = select_manifest(list, platform)?;
            let by_digest = reference.with_digest(chosen.digest().as_ref())?;
            let manifest = registry.fetch_manifest(&by_digest).await?;
            (Some(top), manifest)
        }
    };
    let image = match &manifest.content {
        ManifestContent::Image(image) => (**image).clone(),
        ManifestContent::Index(_) => {
            return Err(RegistryError::Manifest {
                registry: reference.registry().to_string(),
                reference: format!("{}@{}", reference.repository(), manifest.digest),
                source: crate::manifest::ManifestError::UnsupportedMediaType(
                    "an index nested in an index".to_string(),
                ),
            });
        }
    };
    Ok(ResolvedImage {
        index,
        manifest,
        image,
    })
}

/// Fetches an image's config blob whole, verified against the manifest's descriptor.
pub async fn fetch_config<R: Registry>(
    registry: &R,
    reference: &Reference,
    image: &ImageManifest,
) -> Result<Bytes, RegistryError> {
    let request = BlobRequest::from_descriptor(image.config());
    fetch_blob_bytes(registry, reference, &request, MAX_CONFIG_SIZE).await
}

/// Fetches a small blob whole, verified, refusing one whose descriptor says it is
/// larger than `limit` bytes (the stream itself refuses more bytes than that size).
pub async fn fetch_blob_bytes<R: Registry>(
    registry: &R,
    reference: &Reference,
    request: &BlobRequest,
    limit: u64,
) -> Result<Bytes, RegistryError> {
    use futures_util::TryStreamExt as _;
    if request.size > limit {
        return Err(RegistryError::SizeMismatch {
            registry: reference.registry().to_string(),
            what: format!("blob {} (limit {limit} bytes)", request.digest),
            expected: limit,
            actual: request.size,
        });
    }
    let chunks: Vec<Bytes> = registry
        .fetch_blob(reference, request)
        .await?
        .try_collect()
        .await?;
    Ok(chunks.concat().into())
}
