//! Pull images from, and push them to, OCI and Docker registries.
//!
//! - [`Reference`]: image references with docker's normalisation (`busybox` is
//!   `docker.io/library/busybox:latest`).
//! - [`RegistryClient`]: the OCI distribution protocol over HTTP(S), answering
//!   Bearer and Basic challenges with credentials from docker's store
//!   ([`CredentialStore`]), retrying transient failures within [`Timeouts`], and
//!   streaming blobs that are verified against their digest while they arrive
//!   ([`BlobStream`]).
//! - [`Mirror`]: Docker Hub's registry mirrors, as dockerd's `registry-mirrors`:
//!   a client given some ([`RegistryClientBuilder::registry_mirror`]) fetches
//!   `docker.io` references from each in turn, then from Docker Hub.
//! - Pushing ([`RegistryClient::blob_exists`], [`RegistryClient::mount_blob`],
//!   [`RegistryClient::upload_blob`], [`RegistryClient::put_manifest`]): blobs the
//!   repository has are skipped, blobs another repository has are mounted, uploads are
//!   chunked and resume where the registry says they stopped.
//! - [`Registry`]: what a pull needs from any source of images; [`resolve_image`]
//!   turns a reference into one platform's manifest ([`Platform`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), basic_registry::RegistryError> {
//! use basic_registry::{Platform, Reference, RegistryClient, fetch_config, resolve_image};
//!
//! let client = RegistryClient::from_env()?;
//! let reference = Reference::parse("busybox")?;
//! let image = resolve_image(&client, &reference, &Platform::host()).await?;
//! let config = fetch_config(&client, &reference, &image.image).await?;
//! println!("{} has {} layers, config {} bytes", reference, image.image.layers().len(), config.len());
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod auth;
mod blob;
pub mod challenge;
mod client;
pub mod credentials;
mod digest;
mod error;
pub mod manifest;
mod mirror;
pub mod platform;
mod push;
pub mod reference;
mod resolve;
mod sources;
mod timeout;

pub use blob::{BlobRequest, BlobStream};
pub use challenge::{Challenge, ChallengeError};
pub use client::{ManifestHead, RegistryClient, RegistryClientBuilder, RetryPolicy};
pub use credentials::{CredentialStore, Credentials, CredentialsError, normalize_registry};
pub use digest::{Digester, UnsupportedDigest};
pub use error::{ErrorDetail, ErrorEnvelope, Missing, RegistryError};
pub use manifest::{Manifest, ManifestContent, ManifestError};
pub use mirror::{Mirror, MirrorError};
pub use platform::{Platform, PlatformError, select_manifest};
pub use push::{BlobSource, MountOutcome, UploadOptions, UploadSession};
pub use reference::{Reference, ReferenceError};
pub use resolve::{
    MAX_CONFIG_SIZE, Registry, ResolvedImage, fetch_blob_bytes, fetch_config, resolve_image,
};
pub use timeout::{Stall, Timeouts};

/// The README's example, compiled as a doc test so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
