//! The push pipeline: an image of the store → a registry repository.
//!
//! For each layer, concurrently: a blob the repository has is skipped (`HEAD`), a blob
//! the store knows to be in another repository of the same registry (an image pulled
//! from there, or pushed there, has it) is mounted, anything else is uploaded from
//! `blobs/` in chunks that resume after a failure. Then the config, then the manifest.
//!
//! The image's own manifest goes out unchanged (so the pushed digest is the one it was
//! pulled by) unless a layer has to go out as another blob: a loaded image's plain tar
//! layer is compressed (gzip, level 6, no name or time in the header, so the same tar
//! always gives the same blob, which is recorded for the next push), and a layer whose
//! blob the store no longer has goes out as the blob it was extracted from. Both hold
//! the same tar, which the config's diff IDs vouch for; only the manifest changes.
//!
//! The store only ever holds one platform of a multi-platform image (a pull picks
//! one), so a push sends that platform's manifest, as docker's classic store does.

use std::fs;
use std::io::{self, Read, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use basic_escape::escape;
use basic_registry::{
    Manifest, ManifestContent, MountOutcome, Reference, RegistryClient, RegistryError,
    UploadOptions,
};
use bytes::Bytes;
use futures_util::{StreamExt as _, stream};
use sha2::{Digest as _, Sha256};

use crate::digest::short_id;
use crate::error::StoreError;
use crate::fsutil::{TempPath, temp_name};
use crate::load::{DOCKER_MANIFEST, OCI_LAYER_ZSTD};
use crate::record::{ImageRecord, LayerRecord, repo_name};
use crate::store::CompressedLayer;
use crate::store::ImageStore;

const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Layers sent at once (default 5, as docker's `max-concurrent-uploads`).
    pub concurrency: usize,
    /// How blobs are uploaded (chunk size).
    pub upload: UploadOptions,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            concurrency: 5,
            upload: UploadOptions::default(),
        }
    }
}

/// Progress of a push, for a display. Layers are named by their short diff ID
/// (12 hex digits), as docker names them in its push output.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushEvent {
    /// The image is found; these layers (short ids, top-most first) follow.
    Started {
        /// The layers, top-most first.
        layers: Vec<String>,
    },
    /// A layer changed state.
    Layer {
        /// Its short id.
        id: String,
        /// Its new state.
        status: PushStatus,
    },
}

/// Where one layer is, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushStatus {
    /// Queued ("Preparing").
    Preparing,
    /// Waiting for an upload slot ("Waiting").
    Waiting,
    /// Being compressed from its tar, before it can be sent.
    Compressing,
    /// Bytes the registry has taken, of the blob's size ("Pushing").
    Pushing {
        /// Taken so far.
        current: u64,
        /// The blob's size.
        total: u64,
    },
    /// Uploaded ("Pushed").
    Pushed,
    /// The repository had it ("Layer already exists").
    AlreadyExists,
    /// Linked from another repository of the registry ("Mounted from REPO").
    MountedFrom(String),
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The tag pushed (`latest` when the name had none).
    pub tag: String,
    /// The manifest's digest on the registry.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// The manifest's media type.
    pub media_type: String,
    /// The image id.
    pub image_id: String,
}

/// Why a push failed. The store is left as it was, except for a compressed form of a
/// layer made on the way (kept for the next push) and nothing else; what the registry
/// received stays there, and a push again sends only what is missing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// No image of the store has this name.
    #[error("an image does not exist locally with the tag: {name}")]
    NoSuchImage {
        /// The name given.
        name: String,
    },
    /// The reference is a digest: a push gives a tag.
    #[error("pushing {name}: push a tag (repository[:tag]), not a digest")]
    DigestReference {
        /// The name given.
        name: String,
    },
    /// The store failed.
    #[error("pushing {name}")]
    Store {
        /// The name given.
        name: String,
        /// The store's error.
        #[source]
        source: Box<StoreError>,
    },
    /// The image's stored manifest cannot be read as an image manifest.
    #[error(
        "pushing {name}: its manifest {digest} cannot be read: {}",
        escape(reason)
    )]
    Manifest {
        /// The name given.
        name: String,
        /// The manifest's digest.
        digest: String,
        /// What is wrong.
        reason: String,
    },
    /// Neither the store nor the registry has any blob of a layer.
    #[error(
        "pushing {name}: layer {diff_id} has no blob in the store (the image's manifest \
         names {digest}) and the registry does not have it; remove the image and pull it again"
    )]
    MissingLayerBlob {
        /// The name given.
        name: String,
        /// The layer's diff ID.
        diff_id: String,
        /// The blob the manifest names.
        digest: String,
    },
    /// A layer's tar could not be compressed.
    #[error("pushing {name}: compressing layer {diff_id}")]
    Compress {
        /// The name given.
        name: String,
        /// The layer's diff ID.
        diff_id: String,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// A plain tar blob does not hash to the diff ID it stands for.
    #[error("pushing {name}: the tar of layer {diff_id} hashes to {actual}; run `system check`")]
    DiffId {
        /// The name given.
        name: String,
        /// The config's diff ID.
        diff_id: String,
        /// What the stored tar hashes to.
        actual: String,
    },
    /// The registry refused or failed a step.
    #[error("pushing {what} of {name}")]
    Registry {
        /// The name given.
        name: String,
        /// The step: "layer 1a2b3c4d5e6f", "the config", "the manifest".
        what: String,
        /// The registry's error.
        #[source]
        source: Box<RegistryError>,
    },
}

/// One layer's blob as it will go out.
#[derive(Debug, Clone)]
struct Blob {
    digest: String,
    size: u64,
    media_type: String,
    /// Where the store keeps it; `None` when it does not (the registry may).
    path: Option<PathBuf>,
}

/// What every layer task shares.
struct Ctx<'a, F> {
    store: &'a ImageStore,
    client: &'a RegistryClient,
    target: &'a Reference,
    record: &'a ImageRecord,
    name: &'a str,
    docker_types: bool,
    options: &'a PushOptions,
    progress: &'a F,
}

/// Pushes the image `reference` names in `store` to the repository and tag
/// `reference` names, reporting progress to `progress`; records the pushed manifest's
/// digest as a repo digest of the image.
pub async fn push<F>(
    store: &ImageStore,
    client: &RegistryClient,
    reference: &Reference,
    options: &PushOptions,
    progress: F,
) -> Result<PushReport, PushError>
where
    F: Fn(PushEvent) + Send + Sync,
{
    let name = reference.familiar();
    if reference.digest().is_some() {
        return Err(PushError::DigestReference { name });
    }
    let store_err = |source| PushError::Store {
        name: name.clone(),
        source: Box::new(source),
    };
    let record = match store.resolve(&name) {
        Ok(record) => record,
        Err(StoreError::NoSuchImage(_)) => return Err(PushError::NoSuchImage { name }),
        Err(e) => return Err(store_err(e)),
    };
    let raw_manifest = store
        .read_blob(&record.manifest_digest)
        .map_err(store_err)?;
    let manifest = read_manifest(&name, &record, &raw_manifest)?;
    if manifest.len() != record.layers.len() {
        return Err(PushError::Manifest {
            name,
            digest: record.manifest_digest.clone(),
            reason: format!(
                "it lists {} layers, the image has {}",
                manifest.len(),
                record.layers.len()
            ),
        });
    }
    let docker_types = record.manifest_media_type == DOCKER_MANIFEST;
    progress(PushEvent::Started {
        layers: record
            .layers
            .iter()
            .rev()
            .map(|l| short_id(&l.diff_id).to_string())
            .collect(),
    });
    for layer in record.layers.iter().rev() {
        progress(PushEvent::Layer {
            id: short_id(&layer.diff_id).to_string(),
            status: PushStatus::Preparing,
        });
    }
    // Layers past the first `concurrency` (top-most first) wait for a slot, as docker says.
    for layer in record.layers.iter().rev().skip(options.concurrency.max(1)) {
        progress(PushEvent::Layer {
            id: short_id(&layer.diff_id).to_string(),
            status: PushStatus::Waiting,
        });
    }
    let ctx = Ctx {
        store,
        client,
        target: reference,
        record: &record,
        name: &name,
        docker_types,
        options,
        progress: &progress,
    };
    // Top-most first, as docker sends them.
    let jobs: Vec<(usize, Blob)> = manifest.into_iter().enumerate().rev().collect();
    let results: Vec<Result<(usize, Blob), PushError>> = stream::iter(jobs)
        .map(|(i, wanted)| {
            let ctx = &ctx;
            async move {
                push_layer(ctx, &ctx.record.layers[i], wanted)
                    .await
                    .map(|b| (i, b))
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    let mut pushed: Vec<Option<Blob>> = vec![None; record.layers.len()];
    for result in results {
        let (i, blob) = result?;
        pushed[i] = Some(blob);
    }
    let pushed: Vec<Blob> = pushed.into_iter().flatten().collect();

    push_config(&ctx).await?;
    let body = manifest_to_push(&name, &record, &raw_manifest, &pushed)?;
    let tag = reference.tag().unwrap_or("latest").to_string();
    let digest = client
        .put_manifest(reference, &record.manifest_media_type, body.clone())
        .await
        .map_err(|source| PushError::Registry {
            name: name.clone(),
            what: "the manifest".to_string(),
            source: Box::new(source),
        })?;
    let repo_digest = format!("{}@{digest}", repo_name(reference));
    store
        .add_repo_digest(&record.id, &repo_digest)
        .map_err(store_err)?;
    Ok(PushReport {
        tag,
        digest,
        size: body.len() as u64,
        media_type: record.manifest_media_type.clone(),
        image_id: record.id.clone(),
    })
}

/// The layer blobs the stored manifest names, bottom first.
fn read_manifest(name: &str, record: &ImageRecord, raw: &[u8]) -> Result<Vec<Blob>, PushError> {
    let bad = |reason: String| PushError::Manifest {
        name: name.to_string(),
        digest: record.manifest_digest.clone(),
        reason,
    };
    let manifest = Manifest::from_bytes(
        Bytes::copy_from_slice(raw),
        Some(&record.manifest_media_type),
    )
    .map_err(|e| bad(e.to_string()))?;
    let ManifestContent::Image(image) = manifest.content else {
        return Err(bad("it is an index, not an image manifest".to_string()));
    };
    Ok(image
        .layers()
        .iter()
        .map(|l| Blob {
            digest: l.digest().to_string(),
            size: l.size(),
            media_type: l.media_type().to_string(),
            path: None,
        })
        .collect())
}

async fn push_layer<F: Fn(PushEvent) + Send + Sync>(
    ctx: &Ctx<'_, F>,
    layer: &LayerRecord,
    wanted: Blob,
) -> Result<Blob, PushError> {
    let id = short_id(&layer.diff_id).to_string();
    let emit = |status| {
        (ctx.progress)(PushEvent::Layer {
            id: id.clone(),
            status,
        })
    };
    let registry_err = |source| PushError::Registry {
        name: ctx.name.to_string(),
        what: format!("layer {id}"),
        source: Box::new(source),
    };
    let wanted_here = ctx.store.has_blob(&wanted.digest)
        && ctx
            .store
            .blob_path(&wanted.digest)
            .ok()
            .and_then(|p| compressed_kind(&p).ok().flatten())
            .is_some();
    let mut session = None;
    if !wanted_here {
        // The registry may have the manifest's own blob, here or in a repository the
        // store knows: then the manifest goes out unchanged, whatever the store lacks.
        match settle_remotely(ctx, &wanted, &emit).await? {
            Remotely::Done => return Ok(wanted),
            Remotely::Send(opened) => session = opened,
        }
    }
    let blob = match local_blob(ctx, layer, &wanted, &emit).await? {
        Some(blob) => blob,
        None => {
            return Err(PushError::MissingLayerBlob {
                name: ctx.name.to_string(),
                diff_id: layer.diff_id.clone(),
                digest: wanted.digest,
            });
        }
    };
    if wanted_here || blob.digest != wanted.digest {
        match settle_remotely(ctx, &blob, &emit).await? {
            Remotely::Done => return Ok(blob),
            Remotely::Send(opened) => session = opened.or(session),
        }
    }
    let Some(path) = &blob.path else {
        return Err(PushError::MissingLayerBlob {
            name: ctx.name.to_string(),
            diff_id: layer.diff_id.clone(),
            digest: wanted.digest,
        });
    };
    let file = fs::File::open(path).map_err(|e| PushError::Store {
        name: ctx.name.to_string(),
        source: Box::new(StoreError::io("open blob", path)(e)),
    })?;
    let session = match session {
        Some(s) => s,
        None => ctx
            .client
            .start_upload(ctx.target)
            .await
            .map_err(registry_err)?,
    };
    let total = blob.size;
    emit(PushStatus::Pushing { current: 0, total });
    ctx.client
        .upload_blob(
            ctx.target,
            session,
            &blob.digest,
            total,
            Arc::new(file),
            &ctx.options.upload,
            &|current| emit(PushStatus::Pushing { current, total }),
        )
        .await
        .map_err(registry_err)?;
    emit(PushStatus::Pushed);
    Ok(blob)
}

/// What the registry did with a blob without its bytes.
enum Remotely {
    /// It has it (`AlreadyExists`) or linked it from another repository (`MountedFrom`).
    Done,
    /// The bytes must be sent; through this upload when a mount opened one.
    Send(Option<basic_registry::UploadSession>),
}

/// Asks whether the repository has `blob`, then tries to mount it from a repository
/// of the same registry the store knows it in (one mount: a registry that cannot
/// mount opens an upload in its answer, which the bytes then go through).
async fn settle_remotely<F: Fn(PushEvent) + Send + Sync>(
    ctx: &Ctx<'_, F>,
    blob: &Blob,
    emit: &(dyn Fn(PushStatus) + Send + Sync),
) -> Result<Remotely, PushError> {
    let registry_err = |source| PushError::Registry {
        name: ctx.name.to_string(),
        what: format!("blob {}", blob.digest),
        source: Box::new(source),
    };
    if ctx
        .client
        .blob_exists(ctx.target, &blob.digest)
        .await
        .map_err(registry_err)?
    {
        emit(PushStatus::AlreadyExists);
        return Ok(Remotely::Done);
    }
    let Some(from) = mount_sources(ctx, &blob.digest)?.into_iter().next() else {
        return Ok(Remotely::Send(None));
    };
    match ctx
        .client
        .mount_blob(ctx.target, &blob.digest, &from)
        .await
        .map_err(registry_err)?
    {
        MountOutcome::Mounted => {
            emit(PushStatus::MountedFrom(from));
            Ok(Remotely::Done)
        }
        MountOutcome::Upload(opened) => Ok(Remotely::Send(Some(opened))),
    }
}

/// Other repositories of the target's registry where the store knows `digest` to be.
fn mount_sources<F>(ctx: &Ctx<'_, F>, digest: &str) -> Result<Vec<String>, PushError> {
    let names = ctx
        .store
        .blob_repositories(digest)
        .map_err(|source| PushError::Store {
            name: ctx.name.to_string(),
            source: Box::new(source),
        })?;
    let mut repos: Vec<String> = Vec::new();
    for name in names {
        let Ok(r) = Reference::parse(&name) else {
            continue;
        };
        if r.registry() == ctx.target.registry()
            && r.repository() != ctx.target.repository()
            && !repos.iter().any(|x| x == r.repository())
        {
            repos.push(r.repository().to_string());
        }
    }
    Ok(repos)
}

/// The blob of `layer` the store can send: the manifest's, else the one the layer
/// was extracted from, else a compressed form made earlier, else its plain tar
/// compressed now. `None` when the store has none of them.
async fn local_blob<F: Fn(PushEvent) + Send + Sync>(
    ctx: &Ctx<'_, F>,
    layer: &LayerRecord,
    wanted: &Blob,
    emit: &(dyn Fn(PushStatus) + Send + Sync),
) -> Result<Option<Blob>, PushError> {
    let store = ctx.store;
    let store_err = |source| PushError::Store {
        name: ctx.name.to_string(),
        source: Box::new(source),
    };
    let mut plain: Option<PathBuf> = None;
    let candidates = [Some(wanted.digest.clone()), layer.blob_digest.clone()];
    for digest in candidates.into_iter().flatten() {
        if !store.has_blob(&digest) {
            continue;
        }
        let path = store.blob_path(&digest).map_err(store_err)?;
        let size = fs::metadata(&path)
            .map_err(|e| store_err(StoreError::io("stat blob", &path)(e)))?
            .len();
        let Some(kind) =
            compressed_kind(&path).map_err(|e| store_err(StoreError::io("read blob", &path)(e)))?
        else {
            plain.get_or_insert(path);
            continue;
        };
        let media_type = if digest == wanted.digest {
            wanted.media_type.clone()
        } else {
            media_type_for(kind, ctx.docker_types).to_string()
        };
        return Ok(Some(Blob {
            digest,
            size,
            media_type,
            path: Some(path),
        }));
    }
    if let Some(made) = store.compressed_layer(&layer.diff_id).map_err(store_err)? {
        let path = store.blob_path(&made.digest).map_err(store_err)?;
        return Ok(Some(Blob {
            media_type: media_type_for(Kind::Gzip, ctx.docker_types).to_string(),
            digest: made.digest,
            size: made.size,
            path: Some(path),
        }));
    }
    // The uncompressed tar is named by its diff ID when a load stored it as such.
    if plain.is_none() && store.has_blob(&layer.diff_id) {
        plain = Some(store.blob_path(&layer.diff_id).map_err(store_err)?);
    }
    let Some(tar) = plain else {
        return Ok(None);
    };
    emit(PushStatus::Compressing);
    let temp = TempPath::new(temp_name(&store.tmp_dir(), "push-gzip"));
    let out = temp.path().to_path_buf();
    let compressed = tokio::task::spawn_blocking(move || compress(&tar, &out))
        .await
        .map_err(|e| PushError::Compress {
            name: ctx.name.to_string(),
            diff_id: layer.diff_id.clone(),
            source: io::Error::other(e.to_string()),
        })?
        .map_err(|source| PushError::Compress {
            name: ctx.name.to_string(),
            diff_id: layer.diff_id.clone(),
            source,
        })?;
    if compressed.diff_id != layer.diff_id {
        return Err(PushError::DiffId {
            name: ctx.name.to_string(),
            diff_id: layer.diff_id.clone(),
            actual: compressed.diff_id,
        });
    }
    let made = CompressedLayer {
        digest: compressed.digest,
        media_type: media_type_for(Kind::Gzip, ctx.docker_types).to_string(),
        size: compressed.size,
    };
    store
        .record_compressed_layer(&ctx.record.id, &layer.diff_id, &made, temp)
        .map_err(store_err)?;
    let path = store.blob_path(&made.digest).map_err(store_err)?;
    Ok(Some(Blob {
        digest: made.digest,
        size: made.size,
        media_type: made.media_type,
        path: Some(path),
    }))
}

async fn push_config<F>(ctx: &Ctx<'_, F>) -> Result<(), PushError> {
    let registry_err = |source| PushError::Registry {
        name: ctx.name.to_string(),
        what: "the config".to_string(),
        source: Box::new(source),
    };
    let digest = &ctx.record.id;
    if ctx
        .client
        .blob_exists(ctx.target, digest)
        .await
        .map_err(registry_err)?
    {
        return Ok(());
    }
    let config = Bytes::from(
        ctx.store
            .read_blob(digest)
            .map_err(|source| PushError::Store {
                name: ctx.name.to_string(),
                source: Box::new(source),
            })?,
    );
    let session = ctx
        .client
        .start_upload(ctx.target)
        .await
        .map_err(registry_err)?;
    let size = config.len() as u64;
    ctx.client
        .upload_blob(
            ctx.target,
            session,
            digest,
            size,
            Arc::new(config),
            &ctx.options.upload,
            &|_| {},
        )
        .await
        .map_err(registry_err)
}

/// The stored manifest when every layer goes out as it names; otherwise the same
/// manifest with those layers' descriptors replaced.
fn manifest_to_push(
    name: &str,
    record: &ImageRecord,
    raw: &[u8],
    pushed: &[Blob],
) -> Result<Bytes, PushError> {
    let bad = |reason: String| PushError::Manifest {
        name: name.to_string(),
        digest: record.manifest_digest.clone(),
        reason,
    };
    let mut doc: serde_json::Value = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
    let layers = doc
        .get_mut("layers")
        .and_then(|l| l.as_array_mut())
        .ok_or_else(|| bad("it has no layers list".to_string()))?;
    let mut changed = false;
    for (entry, blob) in layers.iter_mut().zip(pushed) {
        if entry.get("digest").and_then(|d| d.as_str()) == Some(blob.digest.as_str()) {
            continue;
        }
        changed = true;
        entry["digest"] = blob.digest.clone().into();
        entry["size"] = blob.size.into();
        entry["mediaType"] = blob.media_type.clone().into();
        // What described the old blob (urls, annotations of its compression) does not
        // describe this one.
        if let Some(map) = entry.as_object_mut() {
            map.retain(|k, _| matches!(k.as_str(), "digest" | "size" | "mediaType"));
        }
    }
    if !changed {
        return Ok(Bytes::copy_from_slice(raw));
    }
    serde_json::to_vec(&doc)
        .map(Bytes::from)
        .map_err(|e| bad(e.to_string()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gzip,
    Zstd,
}

/// The compression of a blob, by its magic bytes; `None` for a plain tar.
fn compressed_kind(path: &std::path::Path) -> io::Result<Option<Kind>> {
    let mut head = [0u8; 4];
    let mut file = fs::File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => Some(Kind::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd] => Some(Kind::Zstd),
        _ => None,
    })
}

fn media_type_for(kind: Kind, docker_types: bool) -> &'static str {
    match (kind, docker_types) {
        (Kind::Gzip, true) => DOCKER_LAYER_GZIP,
        (Kind::Gzip, false) => OCI_LAYER_GZIP,
        (Kind::Zstd, true) => DOCKER_LAYER_ZSTD,
        (Kind::Zstd, false) => OCI_LAYER_ZSTD,
    }
}

/// A tar compressed for a push.
struct Compressed {
    digest: String,
    size: u64,
    diff_id: String,
}

/// Gzips the tar at `tar` into `out` with fixed parameters (level 6, header without
/// name or time), hashing both forms on the way, and syncs the result.
fn compress(tar: &std::path::Path, out: &std::path::Path) -> io::Result<Compressed> {
    let mut input = fs::File::open(tar)?;
    let file = fs::File::create(out)?;
    let mut writer = HashingWriter {
        file,
        hasher: Sha256::new(),
        written: 0,
    };
    let mut diff = Sha256::new();
    {
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(&mut writer, flate2::Compression::new(6));
        let mut buf = vec![0; 256 * 1024];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            diff.update(&buf[..n]);
            gz.write_all(&buf[..n])?;
        }
        gz.finish()?;
    }
    writer.file.sync_all()?;
    Ok(Compressed {
        digest: format!("sha256:{}", hex::encode(writer.hasher.finalize())),
        size: writer.written,
        diff_id: format!("sha256:{}", hex::encode(diff.finalize())),
    })
}

struct HashingWriter {
    file: fs::File,
    hasher: Sha256,
    written: u64,
}

impl io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_deterministic_and_keeps_the_diff_id() {
        let dir = tempfile::tempdir().unwrap();
        let tar = dir.path().join("layer.tar");
        let mut data = Vec::new();
        {
            let mut b = tar::Builder::new(&mut data);
            let mut h = tar::Header::new_ustar();
            h.set_size(5);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, "hello.txt", &b"hello"[..]).unwrap();
            b.finish().unwrap();
        }
        fs::write(&tar, &data).unwrap();
        let a = compress(&tar, &dir.path().join("a.gz")).unwrap();
        let b = compress(&tar, &dir.path().join("b.gz")).unwrap();
        assert_eq!(a.digest, b.digest);
        assert_eq!(a.diff_id, crate::digest::sha256_of(&data));
        assert_eq!(
            compressed_kind(&dir.path().join("a.gz")).unwrap(),
            Some(Kind::Gzip)
        );
        assert_eq!(compressed_kind(&tar).unwrap(), None);
    }
}
