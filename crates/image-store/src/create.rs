//! Making images here rather than fetching them: a layer written by the caller
//! (a container's changes, a build step) becomes a blob and a layer under its
//! chain ID, and a config over recorded layers becomes an image with an OCI
//! manifest, as `docker commit` and `docker build` make them.
//!
//! The tar is written once: compressed into the blob's temp file while both
//! digests (the tar's, the diff ID; the blob's) are computed on the way. The
//! layer directory is then extracted from that blob with
//! [`basic_rootfs::apply_layer`], as a pulled layer is: what the store keeps
//! is exactly what the blob says, whatever the source directory held (a
//! container's files are not trusted, and a running container may change them
//! while they are read).

use std::fs;
use std::io::{self, Write};

use basic_rootfs::{ApplyMode, ApplyOptions, apply_layer};
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::digest::{chain_ids, sha256_of};
use crate::error::StoreError;
use crate::fsutil::{TempPath, temp_name};
use crate::record::LayerRecord;
use crate::store::{ImageStore, Lease, NewImage, NewLayer};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// How a new layer's blob is compressed. Levels are fixed, so the same tar
/// always gives the same blob (and the same digest) on any machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LayerCompression {
    /// gzip, level 6, no name and no time in its header (docker's default).
    #[default]
    Gzip,
    /// zstd, level 3, single-threaded.
    Zstd,
}

impl LayerCompression {
    /// The OCI media type of a layer compressed this way.
    pub fn media_type(self) -> &'static str {
        match self {
            LayerCompression::Gzip => OCI_LAYER_GZIP,
            LayerCompression::Zstd => OCI_LAYER_ZSTD,
        }
    }
}

impl std::str::FromStr for LayerCompression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gzip" => Ok(LayerCompression::Gzip),
            "zstd" => Ok(LayerCompression::Zstd),
            other => Err(format!(
                "unknown layer compression `{other}` (expected gzip or zstd)"
            )),
        }
    }
}

/// The error of the writer a caller gives [`ImageStore::create_layer`].
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

impl ImageStore {
    /// Makes a layer on top of the layer `parent` (a chain ID; `None` for a
    /// bottom layer) from the tar `write` writes: the blob is stored, the
    /// layer extracted under its chain ID (or, when that chain ID is there
    /// already, the existing one kept) and both leased by `lease` until an
    /// image refers to them ([`create_image`](Self::create_image)).
    ///
    /// `write` must write a whole tar stream (ended) and may fail; nothing of
    /// a failed layer stays in the store.
    pub fn create_layer(
        &self,
        lease: &Lease,
        parent: Option<&str>,
        compression: LayerCompression,
        write: impl FnOnce(&mut dyn Write) -> Result<(), SourceError>,
    ) -> Result<LayerRecord, StoreError> {
        self.create_layer_adopting(lease, parent, compression, write, None)
    }

    /// [`create_layer`](Self::create_layer), keeping a directory the caller already
    /// has instead of extracting the blob again: once the blob is stored (and only
    /// when the store lacks the layer), `adopt` returns a directory in overlay form,
    /// on the store's filesystem, that holds exactly what the tar held (the
    /// caller's promise: its files no longer change, and what the archive left out is
    /// gone from it), and it is renamed into place. Where it cannot be renamed (another
    /// filesystem), the blob is extracted as usual.
    pub fn create_layer_adopting(
        &self,
        lease: &Lease,
        parent: Option<&str>,
        compression: LayerCompression,
        write: impl FnOnce(&mut dyn Write) -> Result<(), SourceError>,
        adopt: Option<&mut dyn FnMut() -> Result<std::path::PathBuf, SourceError>>,
    ) -> Result<LayerRecord, StoreError> {
        self.writable("create a layer")?;
        let tmp = self.tmp_dir();
        let blob = TempPath::new(temp_name(&tmp, "blob"));
        let file = fs::File::create(blob.path()).map_err(StoreError::io("create", blob.path()))?;
        let hashed = Hashing::new(file);
        let mut encoder = match compression {
            LayerCompression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                hashed,
                flate2::Compression::new(6),
            )),
            LayerCompression::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(hashed, 3)
                    .map_err(StoreError::io("compress", blob.path()))?,
            ),
        };
        let mut tar = Hashing::new(&mut encoder);
        write(&mut tar).map_err(|source| StoreError::LayerSource { source })?;
        let (diff, tar_bytes) = (tar.hasher, tar.written);
        let hashed = encoder
            .finish()
            .map_err(StoreError::io("compress", blob.path()))?;
        hashed
            .inner
            .sync_all()
            .map_err(StoreError::io("write", blob.path()))?;
        let diff_id = format!("sha256:{}", hex::encode(diff.finalize()));
        let blob_digest = format!("sha256:{}", hex::encode(hashed.hasher.finalize()));
        let blob_size = hashed.written;
        tracing::debug!(%diff_id, %blob_digest, tar_bytes, blob_size, "layer written");

        let chain_id = match parent {
            None => diff_id.clone(),
            Some(parent) => chain_ids(&[parent.to_string(), diff_id.clone()])[1].clone(),
        };
        let media_type = compression.media_type().to_string();
        let blob_path = blob.path().to_path_buf();
        self.commit_blob(lease, &blob_digest, blob)?;
        if self.hold_layer(lease, &chain_id)? {
            return self.layer_record(&chain_id);
        }
        // Extracted from the blob as stored, onto the layers below it (a hard
        // link to a lower file, a path through a lower symlink).
        let lowers = match parent {
            Some(parent) => self.chain_paths(parent)?,
            None => Vec::new(),
        };
        let layer = TempPath::new(temp_name(&tmp, "layer"));
        let diff_dir = layer.path().join("diff");
        if let Some(adopt) = adopt {
            let dir = adopt().map_err(|source| StoreError::LayerSource { source })?;
            fs::create_dir_all(layer.path()).map_err(StoreError::io("create", layer.path()))?;
            match fs::rename(&dir, &diff_dir) {
                Ok(()) => {
                    let record = NewLayer {
                        chain_id: chain_id.clone(),
                        diff_id,
                        parent: parent.map(str::to_string),
                        blob_digest,
                        media_type,
                        compressed_size: blob_size,
                        size: file_bytes(&diff_dir),
                    };
                    self.commit_layer(lease, &record, layer)?;
                    return self.layer_record(&chain_id);
                }
                Err(e) => tracing::debug!(
                    "keeping {} as the layer: {e}; extracting the blob instead",
                    dir.display()
                ),
            }
        }
        fs::create_dir_all(&diff_dir).map_err(StoreError::io("create", &diff_dir))?;
        let stored = self.blob_path(&blob_digest)?;
        let reader = fs::File::open(&stored).map_err(StoreError::io("open", &stored))?;
        let options = ApplyOptions::new(ApplyMode::Overlay)
            .media_type(media_type.clone())
            .lower_layers(lowers);
        let stats = apply_layer(io::BufReader::new(reader), &diff_dir, &options).map_err(|e| {
            StoreError::Corrupt {
                what: format!("the new layer {diff_id} (blob {})", blob_path.display()),
                reason: e.to_string(),
            }
        })?;
        if stats.diff_id != diff_id {
            return Err(StoreError::Corrupt {
                what: format!("the new layer {diff_id}"),
                reason: format!("extracted again it reads as {}", stats.diff_id),
            });
        }
        let record = NewLayer {
            chain_id: chain_id.clone(),
            diff_id,
            parent: parent.map(str::to_string),
            blob_digest,
            media_type,
            compressed_size: blob_size,
            size: stats.file_bytes,
        };
        self.commit_layer(lease, &record, layer)?;
        self.layer_record(&chain_id)
    }

    /// Records the image whose config is `config` (its id is the config's
    /// digest) over `layers`, bottom first (recorded layers: an image's own,
    /// or what [`create_layer`](Self::create_layer) returned, leased by
    /// `lease`), with an OCI manifest naming their blobs, and tags it `tag`
    /// when given. The config's `rootfs.diff_ids` must be the layers' diff IDs.
    /// Returns the image id.
    pub fn create_image(
        &self,
        lease: &Lease,
        config: &[u8],
        layers: &[LayerRecord],
        tag: Option<&str>,
    ) -> Result<String, StoreError> {
        self.create_child_image(lease, config, layers, tag, None)
    }

    /// [`create_image`](Self::create_image) for an image made from the image
    /// `parent` (a build step's image from the step before it): the link is
    /// recorded with the image, so that [`ImageRecord::parent`](crate::ImageRecord::parent)
    /// names it and the parent counts as an intermediate image while this one
    /// is in the store (hidden from a plain listing, kept by
    /// [`prune`](Self::prune), removed with its last child by
    /// [`remove`](Self::remove) when it has no name). An image already recorded
    /// keeps the parent it had; a `parent` that is not recorded is ignored.
    pub fn create_child_image(
        &self,
        lease: &Lease,
        config: &[u8],
        layers: &[LayerRecord],
        tag: Option<&str>,
        parent: Option<&str>,
    ) -> Result<String, StoreError> {
        let parsed: serde_json::Value =
            serde_json::from_slice(config).map_err(|e| StoreError::Corrupt {
                what: "the new image's config".into(),
                reason: e.to_string(),
            })?;
        let diff_ids: Vec<&str> = parsed["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str()).collect())
            .unwrap_or_default();
        let wanted: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        if diff_ids != wanted {
            return Err(StoreError::Corrupt {
                what: "the new image's config".into(),
                reason: format!("its rootfs.diff_ids {diff_ids:?} are not its layers' {wanted:?}"),
            });
        }
        let id = sha256_of(config);
        self.put_blob(lease, &id, config)?;
        let mut descriptors = Vec::with_capacity(layers.len());
        for layer in layers {
            let digest = layer
                .blob_digest
                .clone()
                .ok_or_else(|| StoreError::Corrupt {
                    what: format!("layer {}", layer.chain_id),
                    reason: "it has no blob to name in a manifest".into(),
                })?;
            let size = match layer.compressed_size {
                Some(size) => size,
                None => {
                    let path = self.blob_path(&digest)?;
                    fs::metadata(&path)
                        .map_err(|_| StoreError::MissingBlob(digest.clone()))?
                        .len()
                }
            };
            let media_type = layer
                .media_type
                .clone()
                .unwrap_or_else(|| OCI_LAYER_GZIP.to_string());
            descriptors.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": id, "size": config.len()},
            "layers": descriptors,
        })
        .to_string();
        let manifest_digest = sha256_of(manifest.as_bytes());
        self.put_blob(lease, &manifest_digest, manifest.as_bytes())?;
        let blobs = [manifest_digest.clone(), id.clone()]
            .into_iter()
            .chain(layers.iter().filter_map(|l| l.blob_digest.clone()))
            .collect();
        let text = |key: &str| parsed[key].as_str().map(str::to_string);
        let image = NewImage {
            id: id.clone(),
            manifest_digest,
            manifest_media_type: OCI_MANIFEST.to_string(),
            created: text("created"),
            architecture: text("architecture"),
            os: text("os"),
            chain_ids: layers.iter().map(|l| l.chain_id.clone()).collect(),
            blobs,
            tag: None,
            repo_digest: None,
            parent: parent.map(str::to_string),
        };
        self.commit_image(&image)?;
        if let Some(tag) = tag {
            self.tag(&id, tag)?;
        }
        Ok(id)
    }

    /// The recorded layer `chain_id`.
    pub fn layer_record(&self, chain_id: &str) -> Result<LayerRecord, StoreError> {
        self.layers()?
            .into_iter()
            .find(|l| l.chain_id == chain_id)
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("layer {chain_id}"),
                reason: "it is not recorded".into(),
            })
    }

    /// The directories of the layer `chain_id` and every layer below it,
    /// bottom first.
    fn chain_paths(&self, chain_id: &str) -> Result<Vec<std::path::PathBuf>, StoreError> {
        let all = self.layers()?;
        let mut chain = Vec::new();
        let mut next = Some(chain_id.to_string());
        while let Some(id) = next {
            let layer =
                all.iter()
                    .find(|l| l.chain_id == id)
                    .ok_or_else(|| StoreError::Corrupt {
                        what: format!("layer {id}"),
                        reason: "it is not recorded".into(),
                    })?;
            chain.push(self.layer_dir(&id)?.join("diff"));
            next = layer.parent.clone();
        }
        chain.reverse();
        Ok(chain)
    }
}

/// Bytes of the regular files below `dir` (symlinks not followed), as a layer's size.
fn file_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => total += entry.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

/// The compressor of a new layer's blob.
enum Encoder<W: Write> {
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
