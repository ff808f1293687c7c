//! `load`: images from a `docker save` archive (legacy layout, or docker ≥ 25's
//! OCI-in-docker layout) or an OCI archive (`oci-layout`, `index.json`,
//! `blobs/`), through the pull pipeline.
//!
//! Every image in the archive is checked before any is stored (members named
//! by the manifests exist, blobs hash to their names), so a broken archive
//! leaves the store as it was.

use std::io::Read;
use std::path::PathBuf;

use basic_escape::escape;
use basic_registry::Reference;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::archive::{ArchiveError, Member, Staged, stage};
use crate::error::StoreError;
use crate::pull::{Naming, PullError, PullEvent, PullOptions, ingest};
use crate::staged::StagedSource;
use crate::storage::StorageFault;
use crate::store::ImageStore;

/// Docker's media types for what `docker save` writes.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub(crate) const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub(crate) const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Why a load failed. Names and text from the archive are escaped in the
/// messages: an archive is not trusted to write to a terminal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The archive could not be read or staged.
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    /// The archive is neither a docker nor an OCI archive, or its index is broken.
    #[error("archive {archive}: {}", escape(reason))]
    Format {
        /// The archive.
        archive: String,
        /// What is wrong.
        reason: String,
    },
    /// A member a manifest names is not in the archive.
    #[error(
        "archive {archive}: member {} is missing (named by {})",
        escape(member),
        escape(by)
    )]
    MissingMember {
        /// The archive.
        archive: String,
        /// The missing name.
        member: String,
        /// What names it.
        by: String,
    },
    /// A blob's bytes do not hash to the digest that names it.
    #[error(
        "archive {archive}: member {} hashes to {actual}, but is named {}",
        escape(member),
        escape(expected)
    )]
    DigestMismatch {
        /// The archive.
        archive: String,
        /// The member.
        member: String,
        /// The digest its name or descriptor claims.
        expected: String,
        /// The digest of its bytes.
        actual: String,
    },
    /// An image of the archive failed in the pipeline (layer digest, diff ID, …).
    #[error("archive {archive}: loading image {}", escape(image))]
    Image {
        /// The archive.
        archive: String,
        /// The image's name or manifest digest.
        image: String,
        /// The pipeline's error.
        #[source]
        source: Box<PullError>,
    },
    /// The store failed.
    #[error("archive {archive}: storing")]
    Store {
        /// The archive.
        archive: String,
        /// The store's error.
        #[source]
        source: Box<StoreError>,
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
        source: Box<LoadError>,
    },
}

impl LoadError {
    /// This error, said as a full or read-only store filesystem when it comes down
    /// to one (see [`StorageFault::diagnose`]).
    pub(crate) fn on_storage(self, store: &ImageStore) -> Self {
        match StorageFault::diagnose(&self, &[store.root()]) {
            Some((fault, filesystem)) => LoadError::Storage {
                fault,
                filesystem,
                source: Box::new(self),
            },
            None => self,
        }
    }
}

/// One image a load stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// Its id (config digest).
    pub id: String,
    /// The familiar `repo:tag` names the archive gave it.
    pub tags: Vec<String>,
}

/// One image found in an archive, ready for the pipeline.
struct Entry {
    manifest_digest: String,
    tags: Vec<String>,
}

/// `manifest.json` of a docker archive.
#[derive(Debug, Deserialize)]
struct DockerEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Loads every image of the archive read from `input`; `archive` names it in
/// errors. Progress of each image's layers goes to `progress`.
pub async fn load<F>(
    store: &ImageStore,
    input: impl Read + Send + 'static,
    archive: &str,
    progress: F,
) -> Result<Vec<LoadedImage>, LoadError>
where
    F: Fn(PullEvent) + Send + Sync,
{
    let tmp = store.tmp_dir();
    let name = archive.to_string();
    // Staging reads and writes files: keep it off the async threads.
    let staged = tokio::task::spawn_blocking(move || stage(input, &tmp, &name))
        .await
        .map_err(|e| LoadError::Format {
            archive: archive.to_string(),
            reason: format!("the staging task failed: {e}"),
        })??;
    let (source, entries) = prepare(&staged)?;
    let result = ingest_all(store, &source, &entries, &progress).await;
    if result.is_err() {
        // What the failed image committed is referenced by nothing now that
        // its lease is gone: collect it, so a failed load leaves no trace.
        if let Err(e) = store.gc() {
            tracing::warn!(error = %e, "cannot collect what a failed load left");
        }
    }
    result.map_err(|e| e.on_storage(store))
}

async fn ingest_all<F: Fn(PullEvent) + Send + Sync>(
    store: &ImageStore,
    source: &StagedSource,
    entries: &[Entry],
    progress: &F,
) -> Result<Vec<LoadedImage>, LoadError> {
    let archive = source.name().to_string();
    let mut out = Vec::new();
    for entry in entries {
        let report = ingest_one(store, source, entry, progress).await?;
        for tag in entry.tags.iter().skip(1) {
            store.tag(&report, tag).map_err(|source| LoadError::Store {
                archive: archive.clone(),
                source: Box::new(source),
            })?;
        }
        out.push(LoadedImage {
            id: report,
            tags: entry.tags.clone(),
        });
    }
    Ok(out)
}

/// Runs one image through the pipeline; returns its id.
pub(crate) async fn ingest_one<F: Fn(PullEvent) + Send + Sync>(
    store: &ImageStore,
    source: &StagedSource,
    entry_digest_and_tag: impl Into<EntryRef<'_>>,
    progress: &F,
) -> Result<String, LoadError> {
    let EntryRef {
        manifest_digest,
        tag,
    } = entry_digest_and_tag.into();
    let archive = source.name().to_string();
    let image = tag.unwrap_or(manifest_digest).to_string();
    let wrap = |e: PullError| LoadError::Image {
        archive: archive.clone(),
        image: image.clone(),
        source: Box::new(e),
    };
    // The pipeline resolves by reference; an archive's images are found by
    // manifest digest, under a name that is never recorded.
    let reference =
        Reference::parse(&format!("archive.invalid/image@{manifest_digest}")).map_err(|e| {
            LoadError::Format {
                archive: archive.clone(),
                reason: format!("manifest digest {manifest_digest}: {e}"),
            }
        })?;
    let naming = Naming {
        tag: tag.map(str::to_string),
        repo_digest: false,
        source: archive.clone(),
    };
    let options = PullOptions::default();
    let report = ingest(store, source, &reference, &options, progress, naming)
        .await
        .map_err(wrap)?;
    Ok(report.image_id)
}

/// A manifest digest and the first tag to record for it.
pub(crate) struct EntryRef<'a> {
    pub manifest_digest: &'a str,
    pub tag: Option<&'a str>,
}

impl<'a> From<&'a Entry> for EntryRef<'a> {
    fn from(e: &'a Entry) -> Self {
        EntryRef {
            manifest_digest: &e.manifest_digest,
            tag: e.tags.first().map(String::as_str),
        }
    }
}

/// Finds the images of a staged archive and checks that everything they name
/// is there and hashes right.
fn prepare(staged: &Staged) -> Result<(StagedSource, Vec<Entry>), LoadError> {
    let mut source = StagedSource::new(&staged.archive);
    verify_blob_names(staged, &mut source)?;
    let entries = if staged.contains("manifest.json") {
        docker_entries(staged, &mut source)?
    } else if staged.contains("index.json") {
        oci_entries(staged)?
    } else {
        return Err(LoadError::Format {
            archive: staged.archive.clone(),
            reason: "neither manifest.json (docker save) nor index.json (OCI) found".to_string(),
        });
    };
    Ok((source, entries))
}

/// Every `blobs/sha256/<hex>` must hash to `<hex>`; each is served by digest.
fn verify_blob_names(staged: &Staged, source: &mut StagedSource) -> Result<(), LoadError> {
    for (name, member) in staged.members() {
        let Some(hex) = name.strip_prefix("blobs/sha256/") else {
            continue;
        };
        let expected = format!("sha256:{hex}");
        if member.digest != expected {
            return Err(LoadError::DigestMismatch {
                archive: staged.archive.clone(),
                member: name.clone(),
                expected,
                actual: member.digest.clone(),
            });
        }
        source.add_blob(member.digest.clone(), member.path.clone());
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(staged: &Staged, name: &str) -> Result<T, LoadError> {
    let format = |reason: String| LoadError::Format {
        archive: staged.archive.clone(),
        reason: format!("{name}: {reason}"),
    };
    let member = staged.get(name).ok_or_else(|| LoadError::MissingMember {
        archive: staged.archive.clone(),
        member: name.to_string(),
        by: "the archive's layout".to_string(),
    })?;
    let raw = std::fs::read(&member.path).map_err(|e| format(e.to_string()))?;
    serde_json::from_slice(&raw).map_err(|e| format(e.to_string()))
}

fn member<'a>(staged: &'a Staged, name: &str, by: &str) -> Result<&'a Member, LoadError> {
    staged.get(name).ok_or_else(|| LoadError::MissingMember {
        archive: staged.archive.clone(),
        member: name.to_string(),
        by: by.to_string(),
    })
}

/// Docker archives carry no manifest: one is made up from `manifest.json`
/// (config and layer members, hashed while staged), as docker itself does.
fn docker_entries(staged: &Staged, source: &mut StagedSource) -> Result<Vec<Entry>, LoadError> {
    let list: Vec<DockerEntry> = read_json(staged, "manifest.json")?;
    let mut entries = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let by = format!("manifest.json entry {i}");
        let config = member(staged, &entry.config, &by)?;
        check_hex_name(staged, &entry.config, config)?;
        source.add_blob(config.digest.clone(), config.path.clone());
        let mut layers = Vec::new();
        for name in &entry.layers {
            let layer = member(staged, name, &by)?;
            source.add_blob(layer.digest.clone(), layer.path.clone());
            layers.push(json!({
                "mediaType": layer_media_type(staged, layer)?,
                "size": layer.size,
                "digest": layer.digest,
            }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": config.size, "digest": config.digest},
            "layers": layers,
        });
        let raw = Bytes::from(manifest.to_string());
        let digest = crate::digest::sha256_of(&raw);
        source.add_manifest(digest.clone(), raw);
        let tags = entry
            .repo_tags
            .iter()
            .flatten()
            .map(|t| familiar_tag(staged, t))
            .collect::<Result<_, _>>()?;
        entries.push(Entry {
            manifest_digest: digest,
            tags,
        });
    }
    Ok(entries)
}

/// Legacy configs are named `<hex>.json` by the digest of their bytes.
fn check_hex_name(staged: &Staged, name: &str, member: &Member) -> Result<(), LoadError> {
    let stem = name.strip_suffix(".json").unwrap_or(name);
    let is_hex = stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit());
    let expected = format!("sha256:{stem}");
    if is_hex && member.digest != expected {
        return Err(LoadError::DigestMismatch {
            archive: staged.archive.clone(),
            member: name.to_string(),
            expected,
            actual: member.digest.clone(),
        });
    }
    Ok(())
}

/// Docker writes plain tars; docker ≥ 25 and our `save` may write compressed
/// blobs. The magic bytes tell.
fn layer_media_type(staged: &Staged, layer: &Member) -> Result<&'static str, LoadError> {
    let mut head = [0u8; 4];
    let n = std::fs::File::open(&layer.path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| LoadError::Format {
            archive: staged.archive.clone(),
            reason: format!("reading staged layer {}: {e}", layer.digest),
        })?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => DOCKER_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => OCI_LAYER_ZSTD,
        _ => DOCKER_LAYER_TAR,
    })
}

fn familiar_tag(staged: &Staged, tag: &str) -> Result<String, LoadError> {
    Reference::parse(tag)
        .map(|r| r.familiar())
        .map_err(|e| LoadError::Format {
            archive: staged.archive.clone(),
            reason: format!("RepoTags entry \"{tag}\": {e}"),
        })
}

/// `index.json` of an OCI archive.
#[derive(Debug, Deserialize)]
struct OciIndex {
    manifests: Vec<OciDescriptor>,
}

#[derive(Debug, Deserialize)]
struct OciDescriptor {
    digest: String,
    #[serde(default)]
    annotations: std::collections::HashMap<String, String>,
}

/// Each entry of `index.json` is an image (or an index, resolved for the
/// host's platform). Its name is containerd's `io.containerd.image.name`,
/// else `org.opencontainers.image.ref.name` when that is a full reference
/// (skopeo's `oci-archive:FILE:busybox:1`); a bare tag names nothing.
fn oci_entries(staged: &Staged) -> Result<Vec<Entry>, LoadError> {
    let index: OciIndex = read_json(staged, "index.json")?;
    let mut entries = Vec::new();
    for (i, d) in index.manifests.iter().enumerate() {
        let member_name = d
            .digest
            .strip_prefix("sha256:")
            .map(|hex| format!("blobs/sha256/{hex}"))
            .ok_or_else(|| LoadError::Format {
                archive: staged.archive.clone(),
                reason: format!("index.json entry {i}: unsupported digest {}", d.digest),
            })?;
        member(staged, &member_name, &format!("index.json entry {i}"))?;
        let name = d
            .annotations
            .get("io.containerd.image.name")
            .or_else(|| d.annotations.get("org.opencontainers.image.ref.name"))
            .filter(|n| n.contains(':') || n.contains('/'))
            .and_then(|n| Reference::parse(n).ok())
            .filter(|r| r.digest().is_none())
            .map(|r| r.familiar());
        entries.push(Entry {
            manifest_digest: d.digest.clone(),
            tags: name.into_iter().collect(),
        });
    }
    Ok(entries)
}
