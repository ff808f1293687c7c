//! A content-addressed image store and the pipeline that fills it.
//!
//! * [`ImageStore`] keeps verified blobs under `blobs/sha256/<hex>`, extracted
//!   layers under `layers/<chain-id-hex>/diff` (one directory per layer, overlay
//!   form), and image records (id = config digest, repo tags, repo digests) in
//!   one SQLite database. Every write is a temp file or directory in `tmp/`,
//!   verified, then renamed into place; metadata changes are transactions.
//!   Processes coordinate through a lock file, so concurrent commands are safe.
//! * [`pull`] resolves a reference on any [`basic_registry::Registry`], then
//!   downloads, verifies and extracts the layers concurrently in one streaming
//!   pass each, reusing the layers already present (by chain ID).
//! * [`ImageStore::create_layer`] and [`ImageStore::create_image`] make
//!   images here (`commit`, `build`): a layer tar written once, compressed
//!   with both digests computed on the way, recorded under its chain ID.
//! * [`push`] sends an image to a registry repository: blobs the repository has are
//!   skipped, blobs another repository of the registry has are mounted, the rest are
//!   uploaded in resumable chunks, then the manifest.
//! * [`ImageStore::image_configuration`] reads an image's config as an
//!   [`ImageConfig`]: OCI's `ImageConfiguration`, plus the fields only docker
//!   writes (`Healthcheck`, `OnBuild`, `Shell`, `container_config`, ...).
//! * Removing the last reference to an image ([`ImageStore::remove`]) collects
//!   the layers and blobs nothing else refers to. Containers and mounts
//!   [`hold`](ImageStore::hold) the image they use: it cannot be removed
//!   without `force`, and even then its layers stay until it is released.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use basic_image_store::{ImageStore, PullOptions, pull};
//! use basic_registry::{Reference, RegistryClient};
//!
//! let store = ImageStore::open("/var/lib/basic-docker")?;
//! let client = RegistryClient::from_env()?;
//! let reference = Reference::parse("busybox")?;
//! let report = pull(&store, &client, &reference, &PullOptions::default(), |event| {
//!     println!("{event:?}")
//! })
//! .await?;
//! println!("{} is {}", reference, report.image_id);
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod archive;
mod check;
mod config;
mod containers;
mod create;
mod digest;
mod error;
mod fsutil;
mod import;
mod load;
mod pull;
mod push;
mod record;
mod save;
mod schema;
mod staged;
mod storage;
mod store;

pub use archive::ArchiveError;
pub use check::{CheckReport, Problem};
pub use config::{DockerImageConfig, DockerRunConfig, HealthConfig, ImageConfig, RunConfig};
pub use containers::{ContainerExit, ContainerRecord};
pub use create::{LayerCompression, SourceError};
pub use digest::{chain_ids, short_id};
pub use error::StoreError;
pub use import::{import, import_with_run_config};
pub use load::{LoadError, LoadedImage, load};
pub use pull::{
    Fetching, LayerFailure, LayerStatus, PullError, PullEvent, PullOptions, PullReport, pull,
};
pub use push::{PushError, PushEvent, PushOptions, PushReport, PushStatus, push};
pub use record::{
    DiskUsage, Holder, HolderKind, ImageRecord, LayerRecord, LayerStack, MergedLayers, Removal,
};
pub use save::{SaveError, save};
pub use storage::{StorageFault, filesystem_of};
pub use store::{ImageStore, Lease};

/// The root used when neither `--root` nor `BASIC_DOCKER_ROOT` says otherwise.
pub const DEFAULT_ROOT: &str = "/var/lib/basic-docker";

/// The README's example, compiled as a doc test so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
