//! The pull pipeline: reference → manifest → config → layers, each layer in
//! one streaming pass (download, verify, decompress, verify, extract).
//!
//! Each wait on the registry is watched: once nothing has arrived for
//! [`PullOptions::waiting_after`], [`PullEvent::Waiting`] says so every second,
//! until bytes come or the registry client's timeouts end the pull.

use std::fs;
use std::future::Future;
use std::io::{self, Read, Write as _};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use basic_escape::escape;
use basic_registry::{
    BlobRequest, Platform, Reference, Registry, RegistryError, ResolvedImage, fetch_config,
    resolve_image,
};
use basic_rootfs::{
    ApplyError, ApplyMode, ApplyOptions, Footprint, LayerStats, Settled, apply_layer,
};
use bytes::Bytes;
use futures_util::future::{Either, select};
use futures_util::{StreamExt as _, stream};
use oci_spec::image::Descriptor;

use tokio::sync::{Semaphore, mpsc, watch};

use crate::config::ImageConfig;
use crate::digest::chain_ids;
use crate::error::StoreError;
use crate::fsutil::{TempPath, temp_name};
use crate::record::repo_name;
use crate::storage::StorageFault;
use crate::store::{ImageStore, Lease, NewImage, NewLayer};

/// Chunks in flight between the download and the extraction of one layer.
/// Bounded, so a slow disk slows the download instead of filling memory.
const CHANNEL_DEPTH: usize = 16;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// The platform to pick from an index (default: the host's).
    pub platform: Option<Platform>,
    /// Layers downloaded and extracted at once (default 3, as docker).
    pub concurrency: usize,
    /// Silence after which [`PullEvent::Waiting`] is reported (default 3 s).
    pub waiting_after: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            platform: None,
            concurrency: 3,
            waiting_after: Duration::from_secs(3),
        }
    }
}

impl PullOptions {
    /// Picks `platform` from an index instead of the host's.
    pub fn platform(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    /// Sets how many layers are pulled at once (at least one).
    pub fn concurrency(mut self, layers: usize) -> Self {
        self.concurrency = layers.max(1);
        self
    }

    /// Sets how long the registry may be silent before [`PullEvent::Waiting`]
    /// reports it.
    pub fn waiting_after(mut self, silence: Duration) -> Self {
        self.waiting_after = silence;
        self
    }
}

/// Progress of a pull, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullEvent {
    /// The manifest is known: these layers (blob digests, bottom first) follow.
    Resolved {
        /// Digest of the image manifest.
        manifest_digest: String,
        /// The layers' blob digests.
        layers: Vec<String>,
    },
    /// A layer changed state.
    Layer {
        /// The layer's blob digest.
        digest: String,
        /// Its new state.
        status: LayerStatus,
    },
    /// Nothing has arrived from the source for `silent` while fetching
    /// `fetching`; repeated every second until something does.
    Waiting {
        /// What is being waited for.
        fetching: Fetching,
        /// How long nothing has arrived.
        silent: Duration,
    },
}

/// What a pull is fetching, as [`PullEvent::Waiting`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fetching {
    /// The manifest (or index, then the platform's manifest).
    Manifest,
    /// The image config.
    Config {
        /// Its digest.
        digest: String,
    },
    /// A layer.
    Layer {
        /// Its blob digest.
        digest: String,
    },
}

/// Where one layer is, in docker's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerStatus {
    /// Queued ("Pulling fs layer").
    Waiting,
    /// Present in the store by chain ID; not downloaded.
    AlreadyExists,
    /// Bytes received of the total.
    Downloading {
        /// Received.
        current: u64,
        /// The descriptor's size.
        total: u64,
    },
    /// All bytes in; digest being checked.
    Verifying,
    /// The compressed digest checked out.
    DownloadComplete,
    /// Waiting for the extraction to finish.
    Extracting,
    /// Extracted, diff ID verified, recorded.
    PullComplete,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullReport {
    /// The image id (config digest).
    pub image_id: String,
    /// The image manifest's digest.
    pub manifest_digest: String,
    /// The digest a user pulls by (the index's when there is one).
    pub repo_digest: String,
    /// The familiar `repo:tag` recorded, if the reference had a tag.
    pub tag: Option<String>,
    /// True when the tag already named this image.
    pub up_to_date: bool,
    /// Blob digests of the layers downloaded.
    pub downloaded: Vec<String>,
    /// Blob digests of the layers found in the store.
    pub reused: Vec<String>,
}

/// Why a pull failed. The store is left as it was, except for verified
/// content that a later pull can reuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PullError {
    /// The reference could not be resolved to a manifest.
    #[error("pulling {reference}")]
    Resolve {
        /// The reference.
        reference: String,
        /// The registry's error.
        #[source]
        source: RegistryError,
    },
    /// The config blob could not be fetched.
    #[error("pulling config {digest} of {reference}")]
    FetchConfig {
        /// The reference.
        reference: String,
        /// The config's digest.
        digest: String,
        /// The registry's error.
        #[source]
        source: RegistryError,
    },
    /// The config is not an image config (not JSON, or a field of the wrong type).
    #[error(
        "image {reference}: config {digest} is not a valid image config: {}",
        escape(reason)
    )]
    InvalidConfig {
        /// The reference.
        reference: String,
        /// The config's digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// The manifest and the config disagree on the number of layers.
    #[error(
        "image {reference}: manifest {manifest} lists {layers} layers but its config has {diff_ids} rootfs.diff_ids"
    )]
    LayerCount {
        /// The reference.
        reference: String,
        /// The manifest digest.
        manifest: String,
        /// Layers in the manifest.
        layers: usize,
        /// diff_ids in the config.
        diff_ids: usize,
    },
    /// One layer failed.
    #[error("pulling layer {digest} from {registry}")]
    Layer {
        /// The layer's blob digest.
        digest: String,
        /// The registry.
        registry: String,
        /// What went wrong.
        #[source]
        source: LayerFailure,
    },
    /// The store failed.
    #[error("pulling {reference}: storing")]
    Store {
        /// The reference.
        reference: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The store's filesystem is full or read-only; `source` is what failed for it.
    #[error("{fault} ({} {})", filesystem.display(), fault.state())]
    Storage {
        /// Full or read-only.
        fault: StorageFault,
        /// The mount point of the filesystem.
        filesystem: PathBuf,
        /// What failed.
        #[source]
        source: Box<PullError>,
    },
}

impl PullError {
    /// This error, said as a full or read-only store filesystem when it comes down
    /// to one (see [`StorageFault::diagnose`]).
    fn on_storage(self, store: &ImageStore) -> Self {
        match StorageFault::diagnose(&self, &[store.root()]) {
            Some((fault, filesystem)) => PullError::Storage {
                fault,
                filesystem,
                source: Box::new(self),
            },
            None => self,
        }
    }
}

/// Why one layer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerFailure {
    /// The download failed or did not verify (digest, size).
    #[error(transparent)]
    Download(RegistryError),
    /// The layer could not be decompressed or extracted.
    #[error("extracting")]
    Apply(#[source] ApplyError),
    /// The uncompressed tar does not hash to the config's diff ID.
    #[error(
        "diff ID mismatch: the uncompressed layer is {actual}, the image config says {}",
        escape(expected)
    )]
    DiffId {
        /// From the config.
        expected: String,
        /// Of the bytes.
        actual: String,
    },
    /// Writing the blob's temp file failed.
    #[error("writing {}", path.display())]
    Io {
        /// The temp file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// Recording the layer failed.
    #[error("storing")]
    Store(#[source] StoreError),
    /// The extraction task panicked.
    #[error("the extraction task panicked")]
    Panicked,
    /// Stopped because another layer of the same pull failed.
    #[error("cancelled: another layer failed")]
    Cancelled,
}

/// The parts of an image config a pull needs.
/// What the pipeline needs from an image's config.
#[derive(Debug)]
struct ConfigFacts {
    created: Option<String>,
    architecture: Option<String>,
    os: Option<String>,
    diff_ids: Vec<String>,
}

impl ConfigFacts {
    /// Read through [`ImageConfig`], so a pull takes every config the store
    /// can read back (docker's `null`s, an image without layers).
    fn of(config: &ImageConfig) -> Self {
        let word = |w: String| Some(w).filter(|w| !w.is_empty());
        ConfigFacts {
            created: config.oci.created().clone(),
            architecture: word(config.oci.architecture().to_string()),
            os: word(config.oci.os().to_string()),
            diff_ids: config.oci.rootfs().diff_ids().clone(),
        }
    }
}

/// What every layer task shares.
struct Ctx<'a, R, F> {
    store: &'a ImageStore,
    registry: &'a R,
    reference: &'a Reference,
    source: &'a str,
    lease: &'a Lease,
    progress: &'a F,
    waiting_after: Duration,
    cancel: AtomicBool,
    /// Layers downloading and extracting at once. A layer gives its slot back
    /// once extracted, before it waits for the layers below it.
    slots: Semaphore,
}

/// One layer to pull.
struct LayerJob {
    descriptor: Descriptor,
    diff_id: String,
    chain_id: String,
    parent: Option<String>,
    /// The chain IDs of the layers below, bottom-most first.
    lowers: Vec<String>,
    /// Turns `true` once the nearest layer below that this pull fetches is
    /// committed, which it is only after the ones below it.
    below: Option<watch::Receiver<bool>>,
    /// Set once this layer is committed; dropped unset when it fails, which
    /// the layers above read as their cancellation.
    committed: watch::Sender<bool>,
}

/// Pulls `reference` from `registry` into `store`, reporting progress to
/// `progress`, and records it under its tag and repo digest.
///
/// Runs on a Tokio runtime with its time driver enabled (`enable_all`), which
/// the [`PullEvent::Waiting`] reports use, as `load` and `import` do.
pub async fn pull<R, F>(
    store: &ImageStore,
    registry: &R,
    reference: &Reference,
    options: &PullOptions,
    progress: F,
) -> Result<PullReport, PullError>
where
    R: Registry,
    F: Fn(PullEvent) + Send + Sync,
{
    let naming = Naming {
        tag: reference.digest().is_none().then(|| reference.familiar()),
        repo_digest: true,
        source: reference.registry().to_string(),
    };
    ingest(store, registry, reference, options, progress, naming)
        .await
        .map_err(|e| e.on_storage(store))
}

/// How an ingested image is named, and what errors call its source.
pub(crate) struct Naming {
    /// The familiar `repo:tag` to record, if any.
    pub tag: Option<String>,
    /// Whether to record `repo@digest` (a registry's images have one; an
    /// archive's do not, as with docker).
    pub repo_digest: bool,
    /// The source as errors name it: a registry host or an archive's path.
    pub source: String,
}

/// The pipeline behind [`pull`], `load` and `import`: any [`Registry`] (a real
/// one, or an archive staged in `tmp/`) feeds the same verified path.
pub(crate) async fn ingest<R, F>(
    store: &ImageStore,
    registry: &R,
    reference: &Reference,
    options: &PullOptions,
    progress: F,
    naming: Naming,
) -> Result<PullReport, PullError>
where
    R: Registry,
    F: Fn(PullEvent) + Send + Sync,
{
    let store_err = |source| PullError::Store {
        reference: reference.to_string(),
        source,
    };
    let lease = store.lease().map_err(store_err)?;
    let platform = options.platform.clone().unwrap_or_else(Platform::host);
    let waiting = |fetching: Fetching| {
        let progress = &progress;
        move |silent| {
            progress(PullEvent::Waiting {
                fetching: fetching.clone(),
                silent,
            })
        }
    };
    let resolved = watched(
        resolve_image(registry, reference, &platform),
        options.waiting_after,
        waiting(Fetching::Manifest),
    )
    .await
    .map_err(|source| PullError::Resolve {
        reference: reference.to_string(),
        source,
    })?;
    let config_fetch = fetch_facts(registry, reference, &resolved);
    let config = Fetching::Config {
        digest: resolved.image.config().digest().to_string(),
    };
    let (config_raw, facts) = watched(config_fetch, options.waiting_after, waiting(config)).await?;
    store_metadata(store, &lease, &resolved, &config_raw).map_err(store_err)?;

    let layers = resolved.image.layers();
    let chains = chain_ids(&facts.diff_ids);
    progress(PullEvent::Resolved {
        manifest_digest: resolved.manifest.digest.clone(),
        layers: layers.iter().map(|l| l.digest().to_string()).collect(),
    });
    let mut jobs = Vec::new();
    let mut reused = Vec::new();
    let mut committed: Option<watch::Receiver<bool>> = None;
    for (i, descriptor) in layers.iter().enumerate() {
        let digest = descriptor.digest().to_string();
        let present = store.hold_layer(&lease, &chains[i]).map_err(store_err)?;
        let status = if present {
            reused.push(digest.clone());
            LayerStatus::AlreadyExists
        } else {
            let (done, watcher) = watch::channel(false);
            jobs.push(LayerJob {
                descriptor: descriptor.clone(),
                diff_id: facts.diff_ids[i].clone(),
                chain_id: chains[i].clone(),
                parent: i.checked_sub(1).map(|p| chains[p].clone()),
                lowers: chains[..i].to_vec(),
                below: committed.replace(watcher),
                committed: done,
            });
            LayerStatus::Waiting
        };
        progress(PullEvent::Layer { digest, status });
    }
    let downloaded = jobs
        .iter()
        .map(|j| j.descriptor.digest().to_string())
        .collect();
    let ctx = Ctx {
        store,
        registry,
        reference,
        source: &naming.source,
        lease: &lease,
        progress: &progress,
        waiting_after: options.waiting_after,
        cancel: AtomicBool::new(false),
        slots: Semaphore::new(options.concurrency.max(1)),
    };
    run_layers(&ctx, jobs).await?;

    let tag = naming.tag;
    let repo_digest = resolved.repo_digest().to_string();
    let blobs = [resolved.index.as_ref().map(|i| i.digest.clone())]
        .into_iter()
        .flatten()
        .chain([
            resolved.manifest.digest.clone(),
            resolved.image.config().digest().to_string(),
        ])
        .chain(layers.iter().map(|l| l.digest().to_string()))
        .collect();
    let image = NewImage {
        id: resolved.image.config().digest().to_string(),
        manifest_digest: resolved.manifest.digest.clone(),
        manifest_media_type: resolved.manifest.media_type.clone(),
        created: facts.created,
        architecture: facts.architecture,
        os: facts.os,
        chain_ids: chains,
        blobs,
        tag: tag.clone(),
        repo_digest: naming
            .repo_digest
            .then(|| format!("{}@{repo_digest}", repo_name(reference))),
        parent: None,
    };
    let up_to_date = store.commit_image(&image).map_err(store_err)?;
    Ok(PullReport {
        image_id: image.id,
        manifest_digest: image.manifest_digest,
        repo_digest,
        tag,
        up_to_date,
        downloaded,
        reused,
    })
}

/// Fetches and checks the config: JSON, with as many diff_ids as layers.
async fn fetch_facts<R: Registry>(
    registry: &R,
    reference: &Reference,
    resolved: &ResolvedImage,
) -> Result<(Bytes, ConfigFacts), PullError> {
    let digest = resolved.image.config().digest().to_string();
    let raw = fetch_config(registry, reference, &resolved.image)
        .await
        .map_err(|source| PullError::FetchConfig {
            reference: reference.to_string(),
            digest: digest.clone(),
            source,
        })?;
    let config = ImageConfig::from_slice(&raw).map_err(|e| PullError::InvalidConfig {
        reference: reference.to_string(),
        digest: digest.clone(),
        reason: e.to_string(),
    })?;
    let facts = ConfigFacts::of(&config);
    let layers = resolved.image.layers().len();
    if facts.diff_ids.len() != layers {
        return Err(PullError::LayerCount {
            reference: reference.to_string(),
            manifest: resolved.manifest.digest.clone(),
            layers,
            diff_ids: facts.diff_ids.len(),
        });
    }
    Ok((raw, facts))
}

/// Stores the index, manifest and config blobs (all already verified).
fn store_metadata(
    store: &ImageStore,
    lease: &Lease,
    resolved: &ResolvedImage,
    config: &[u8],
) -> Result<(), StoreError> {
    if let Some(index) = &resolved.index {
        store.put_blob(lease, &index.digest, &index.raw)?;
    }
    store.put_blob(lease, &resolved.manifest.digest, &resolved.manifest.raw)?;
    store.put_blob(lease, resolved.image.config().digest().as_ref(), config)
}

/// Runs every layer job to completion (so no temp state outlives the call),
/// and returns the first real failure. `ctx.slots` bounds the downloads and
/// extractions in flight; every job is polled, so one that waits for the
/// layers below it holds no slot.
async fn run_layers<R: Registry, F: Fn(PullEvent) + Send + Sync>(
    ctx: &Ctx<'_, R, F>,
    jobs: Vec<LayerJob>,
) -> Result<(), PullError> {
    let all = jobs.len().max(1);
    let results: Vec<Result<(), PullError>> = stream::iter(jobs)
        .map(|job| async move {
            let digest = job.descriptor.digest().to_string();
            let result = pull_layer(ctx, job).await;
            if result.is_err() {
                ctx.cancel.store(true, Ordering::Relaxed);
            }
            result.map_err(|source| PullError::Layer {
                digest,
                registry: ctx.source.to_string(),
                source,
            })
        })
        .buffer_unordered(all)
        .collect()
        .await;
    // A cancelled layer only echoes the failure that cancelled it.
    let is_echo = |e: &PullError| {
        matches!(
            e,
            PullError::Layer {
                source: LayerFailure::Cancelled,
                ..
            }
        )
    };
    match results
        .into_iter()
        .filter_map(Result::err)
        .find(|e| !is_echo(e))
    {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn pull_layer<R: Registry, F: Fn(PullEvent) + Send + Sync>(
    ctx: &Ctx<'_, R, F>,
    job: LayerJob,
) -> Result<(), LayerFailure> {
    // Jobs are polled in order and the semaphore is fair: slots go bottom layer first.
    let slot = ctx
        .slots
        .acquire()
        .await
        .map_err(|_| LayerFailure::Cancelled)?;
    if ctx.cancel.load(Ordering::Relaxed) {
        return Err(LayerFailure::Cancelled);
    }
    let digest = job.descriptor.digest().to_string();
    let emit = |status| {
        (ctx.progress)(PullEvent::Layer {
            digest: digest.clone(),
            status,
        })
    };
    let tmp = ctx.store.tmp_dir();
    let blob = TempPath::new(temp_name(&tmp, "blob"));
    let layer = TempPath::new(temp_name(&tmp, "layer"));
    let io_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| LayerFailure::Io { path, source }
    };
    fs::create_dir_all(layer.path().join("diff")).map_err(io_err(layer.path()))?;
    let blob_file = fs::File::create(blob.path()).map_err(io_err(blob.path()))?;

    let (tx, rx) = mpsc::channel(CHANNEL_DEPTH);
    let media_type = job.descriptor.media_type().to_string();
    let blob_path = blob.path().to_path_buf();
    // Above the bottom layer, record what the layer relied on: whether the
    // layers below change it is known only once they are in place.
    let footprint = !job.lowers.is_empty();
    let extraction = tokio::task::spawn_blocking(move || {
        extract(rx, blob_file, blob_path, layer, media_type, footprint)
    });
    let downloaded = download(ctx, &job.descriptor, &tx, &emit).await;
    if downloaded.is_err() {
        // The extraction must see a failure, not an end of stream: read as
        // an (empty or short) layer it would judge bytes that never came.
        let _ = tx.send(Feed::Failed).await;
    }
    drop(tx);
    if downloaded.is_ok() {
        emit(LayerStatus::Verifying);
        emit(LayerStatus::DownloadComplete);
        emit(LayerStatus::Extracting);
    }
    // Always wait for the extraction: it owns the temp directory, and returns
    // only after it stopped writing there.
    let (layer, extracted) = extraction.await.map_err(|_| LayerFailure::Panicked)?;
    downloaded?;
    let mut stats = extracted?;
    if stats.diff_id != job.diff_id {
        return Err(LayerFailure::DiffId {
            expected: job.diff_id,
            actual: stats.diff_id,
        });
    }
    drop(slot);
    let layer = match stats.footprint.take() {
        Some(footprint) => onto_lowers(ctx, &job, &blob, layer, footprint, &mut stats).await?,
        None => layer,
    };
    commit(ctx, &job, blob, layer, &stats)?;
    job.committed.send_replace(true);
    emit(LayerStatus::PullComplete);
    Ok(())
}

/// Makes `layer`, extracted on its own, what applying it onto the layers
/// below gives, as containerd and umoci apply layers: once those are
/// committed, settles the layer's footprint against them (directories it
/// made without members take the metadata of the lower ones they cover)
/// and, only where they change it more (it writes through a directory a
/// lower layer made a symlink, or hard-links a lower file), extracts it
/// again from its blob with the lower layers in view.
async fn onto_lowers<R: Registry, F: Fn(PullEvent) + Send + Sync>(
    ctx: &Ctx<'_, R, F>,
    job: &LayerJob,
    blob: &TempPath,
    layer: TempPath,
    footprint: Footprint,
    stats: &mut LayerStats,
) -> Result<TempPath, LayerFailure> {
    if let Some(below) = &job.below {
        below
            .clone()
            .wait_for(|done| *done)
            .await
            .map_err(|_| LayerFailure::Cancelled)?;
    }
    if ctx.cancel.load(Ordering::Relaxed) {
        return Err(LayerFailure::Cancelled);
    }
    let lowers = job
        .lowers
        .iter()
        .map(|chain| Ok(ctx.store.layer_dir(chain)?.join("diff")))
        .collect::<Result<Vec<PathBuf>, StoreError>>()
        .map_err(LayerFailure::Store)?;
    let blob_path = blob.path().to_path_buf();
    let media_type = job.descriptor.media_type().to_string();
    let tmp = ctx.store.tmp_dir();
    // On the blocking pool, which also removes whichever extraction is dropped.
    let (kept, result) = tokio::task::spawn_blocking(move || {
        let again = TempPath::new(temp_name(&tmp, "layer"));
        match reapply(&footprint, &layer, &lowers, &blob_path, &again, media_type) {
            Ok(None) => (layer, Ok(None)),
            other => (again, other),
        }
    })
    .await
    .map_err(|_| LayerFailure::Panicked)?;
    match result? {
        None => Ok(kept),
        Some(again) if again.diff_id != job.diff_id => Err(LayerFailure::DiffId {
            expected: job.diff_id.clone(),
            actual: again.diff_id,
        }),
        Some(again) => {
            *stats = again;
            Ok(kept)
        }
    }
}

/// The blocking half of [`onto_lowers`]: `None` when `layer` is complete
/// (settled in place), else the stats of its new extraction into `again`.
fn reapply(
    footprint: &Footprint,
    layer: &TempPath,
    lowers: &[PathBuf],
    blob: &std::path::Path,
    again: &TempPath,
    media_type: String,
) -> Result<Option<LayerStats>, LayerFailure> {
    let dependency = match footprint
        .settle(&layer.path().join("diff"), lowers)
        .map_err(LayerFailure::Apply)?
    {
        Settled::Reapply(dependency) => dependency,
        _ => return Ok(None),
    };
    tracing::debug!(%dependency, "applying the layer again onto the layers below it");
    let diff = again.path().join("diff");
    fs::create_dir_all(&diff).map_err(|source| LayerFailure::Io {
        path: diff.clone(),
        source,
    })?;
    let file = fs::File::open(blob).map_err(|source| LayerFailure::Io {
        path: blob.to_path_buf(),
        source,
    })?;
    let options = layer_options(media_type).lower_layers(lowers.to_vec());
    apply_layer(
        io::BufReader::with_capacity(256 << 10, file),
        &diff,
        &options,
    )
    .map(Some)
    .map_err(LayerFailure::Apply)
}

/// How every layer of a pull is applied. The diff_id check after extraction
/// pins every byte of the tar, so an archive without end-of-archive blocks
/// (as `umoci insert` writes, and as docker accepts) cannot hide a
/// truncation here.
fn layer_options(media_type: String) -> ApplyOptions {
    ApplyOptions::new(ApplyMode::Overlay)
        .media_type(media_type)
        .allow_unterminated(true)
}

/// What the download hands the extraction.
enum Feed {
    /// The next bytes of the blob.
    Bytes(Bytes),
    /// The download failed: what came so far is not the layer.
    Failed,
}

/// Streams the blob into the extraction's channel. Returns once the stream
/// ended verified (`Ok`), or with the first error; the caller then tells the
/// extraction which it was.
async fn download<R: Registry, F: Fn(PullEvent) + Send + Sync>(
    ctx: &Ctx<'_, R, F>,
    descriptor: &Descriptor,
    tx: &mpsc::Sender<Feed>,
    emit: &impl Fn(LayerStatus),
) -> Result<(), LayerFailure> {
    let request = BlobRequest::from_descriptor(descriptor);
    let fetching = Fetching::Layer {
        digest: request.digest.clone(),
    };
    let waiting = |silent| {
        (ctx.progress)(PullEvent::Waiting {
            fetching: fetching.clone(),
            silent,
        })
    };
    let opened = ctx.registry.fetch_blob(ctx.reference, &request);
    let mut stream = watched(opened, ctx.waiting_after, &waiting)
        .await
        .map_err(LayerFailure::Download)?;
    let mut current = 0;
    while let Some(chunk) = watched(stream.next(), ctx.waiting_after, &waiting).await {
        let chunk = chunk.map_err(LayerFailure::Download)?;
        if ctx.cancel.load(Ordering::Relaxed) {
            return Err(LayerFailure::Cancelled);
        }
        current += chunk.len() as u64;
        emit(LayerStatus::Downloading {
            current,
            total: request.size,
        });
        if tx.send(Feed::Bytes(chunk)).await.is_err() {
            // The extraction stopped reading: it failed, and says why.
            return Ok(());
        }
    }
    Ok(())
}

/// Runs `step`; once it has taken `after` without finishing, calls `waiting`
/// with the time so far, and again every second until it finishes.
async fn watched<T>(
    step: impl Future<Output = T>,
    after: Duration,
    waiting: impl Fn(Duration),
) -> T {
    let started = tokio::time::Instant::now();
    let mut step = std::pin::pin!(step);
    let mut next = started + after;
    loop {
        let tick = std::pin::pin!(tokio::time::sleep_until(next));
        match select(step.as_mut(), tick).await {
            Either::Left((out, _)) => return out,
            Either::Right(((), _)) => {
                waiting(started.elapsed());
                next += Duration::from_secs(1);
            }
        }
    }
}

/// Writes the layer's record file, then renames blob and layer into place.
fn commit<R, F>(
    ctx: &Ctx<'_, R, F>,
    job: &LayerJob,
    blob: TempPath,
    layer: TempPath,
    stats: &LayerStats,
) -> Result<(), LayerFailure> {
    let record = NewLayer {
        chain_id: job.chain_id.clone(),
        diff_id: job.diff_id.clone(),
        parent: job.parent.clone(),
        blob_digest: job.descriptor.digest().to_string(),
        media_type: job.descriptor.media_type().to_string(),
        compressed_size: job.descriptor.size(),
        size: stats.file_bytes,
    };
    let meta = serde_json::json!({
        "chain_id": record.chain_id,
        "diff_id": record.diff_id,
        "parent": record.parent,
        "blob_digest": record.blob_digest,
        "media_type": record.media_type,
        "size": record.size,
    });
    let meta_path = layer.path().join("layer.json");
    fs::write(&meta_path, meta.to_string()).map_err(|source| LayerFailure::Io {
        path: meta_path,
        source,
    })?;
    ctx.store
        .commit_blob(ctx.lease, &record.blob_digest, blob)
        .map_err(LayerFailure::Store)?;
    ctx.store
        .commit_layer(ctx.lease, &record, layer)
        .map_err(LayerFailure::Store)?;
    Ok(())
}

/// The blocking half of a layer: tees the chunks into the blob's temp file
/// and through the extractor. Returns the layer's temp directory with the
/// result, so that dropping it (the pull was abandoned) removes the directory.
fn extract(
    rx: mpsc::Receiver<Feed>,
    file: fs::File,
    path: PathBuf,
    layer: TempPath,
    media_type: String,
    footprint: bool,
) -> (TempPath, Result<LayerStats, LayerFailure>) {
    let mut tee = Tee {
        rx,
        current: Bytes::new(),
        file,
        write_error: None,
        written: 0,
        flushing_from: 0,
    };
    let options = layer_options(media_type).footprint(footprint);
    let applied = apply_layer(&mut tee, &layer.path().join("diff"), &options)
        .map_err(LayerFailure::Apply)
        .and_then(|stats| {
            // The extractor reads to the end, but the blob must hold every byte
            // whatever it does; then it must be durable before it is renamed.
            io::copy(&mut tee, &mut io::sink())
                .and_then(|_| tee.file.sync_all())
                .map_err(|source| LayerFailure::Io {
                    path: path.clone(),
                    source,
                })?;
            Ok(stats)
        });
    let result = match tee.write_error.take() {
        Some(source) => Err(LayerFailure::Io { path, source }),
        None => applied,
    };
    (layer, result)
}

/// A `Read` over the download channel that also writes every chunk to the
/// blob's temp file. A failed download reads as an error, never as the end.
///
/// The blob must be durable before it is recorded (an `fsync` once it is
/// complete). Left to that `fsync`, the whole blob would be written to the
/// disk then, after the extraction, on the layer's critical path (64 MB take
/// about 0.35 s on the development machine's disk). So the writeback of each
/// [`WRITEBACK_STEP`] written is started at once (`sync_file_range`, which does
/// not wait): the disk writes the blob while the layer is decompressed and
/// extracted, and the final `fsync` waits only for the rest.
struct Tee {
    rx: mpsc::Receiver<Feed>,
    current: Bytes,
    file: fs::File,
    write_error: Option<io::Error>,
    /// Bytes written to the blob file.
    written: u64,
    /// Where the bytes whose writeback was not started yet begin.
    flushing_from: u64,
}

/// How much of a blob is written before its writeback is started.
const WRITEBACK_STEP: u64 = 8 << 20;

impl Tee {
    /// Starts the writeback of what was written since the last call, once that
    /// is [`WRITEBACK_STEP`] or more. Only a head start: failures are left to
    /// the final `fsync`, which reports them.
    fn start_writeback(&mut self) {
        let pending = self.written - self.flushing_from;
        if pending < WRITEBACK_STEP {
            return;
        }
        use std::os::fd::AsRawFd as _;
        // SAFETY: sync_file_range only reads its arguments; the descriptor is the open
        // blob file this struct owns, and the range lies within what was written.
        let _ = unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                self.flushing_from as libc::off64_t,
                pending as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        self.flushing_from = self.written;
    }
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // A loop, not an `if`: an empty chunk must not read as end of stream.
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Feed::Failed) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "the layer download failed",
                    ));
                }
                Some(Feed::Bytes(chunk)) => {
                    if let Err(e) = self.file.write_all(&chunk) {
                        let kind = e.kind();
                        self.write_error = Some(e);
                        return Err(io::Error::new(kind, "cannot write the layer blob"));
                    }
                    self.written += chunk.len() as u64;
                    self.start_writeback();
                    self.current = chunk;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}
