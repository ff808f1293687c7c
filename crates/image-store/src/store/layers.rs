//! Layers: extracted directories under `layers/<chain-id-hex>/diff`, each
//! recorded with its diff ID, its parent's chain ID and the blob it came from.
//! A directory without a record never counts: it is what a crash between the
//! rename and the commit leaves, and is replaced. `layers/<chain-id-hex>/merged`,
//! made only for images of more layers than one overlay mount stacks, holds the
//! layers up to that one merged into one directory; it goes with its layer.

use std::fs;
use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

use crate::digest::hex_of;
use crate::error::StoreError;
use crate::fsutil::{TempPath, fsync_dir, now_secs, temp_name};
use crate::record::{LayerRecord, LayerStack, MergedLayers};
use crate::store::ImageStore;
use crate::store::Lease;

impl ImageStore {
    /// The directory of the layer `chain_id`: `layers/<hex>`, holding `diff/`
    /// (the layer in overlay form) and `layer.json`.
    pub fn layer_dir(&self, chain_id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.inner.root.join("layers").join(hex_of(chain_id)?))
    }

    /// The extracted layers of image `id`, in overlay form, bottom-most
    /// first: the parents a snapshotter stacks a container's root on. Hold
    /// the image ([`hold`](Self::hold)) before using them, so that no `rmi`
    /// takes them away meanwhile.
    pub fn layer_paths(&self, id: &str) -> Result<Vec<PathBuf>, StoreError> {
        self.image(id)?
            .layers
            .iter()
            .map(|l| Ok(self.layer_dir(&l.chain_id)?.join("diff")))
            .collect()
    }

    /// The extracted layers of image `id` as one overlay mount stacks them: at most
    /// `max` directories, bottom-most first. When the image has more layers, its bottom
    /// ones are merged into one directory ([`basic_rootfs::merge_layers`]) standing for
    /// them under the top `max - 1`. The merge is made once and kept with the top-most
    /// merged layer (`layers/<chain-id>/merged`: the chain ID names exactly those
    /// layers), so later containers of this image, or of any image on the same bottom
    /// layers, stack at once; it is deleted with that layer. Hold the image first, as
    /// for [`layer_paths`](Self::layer_paths).
    pub fn stackable_layer_paths(&self, id: &str, max: usize) -> Result<LayerStack, StoreError> {
        let image = self.image(id)?;
        let mut paths = image
            .layers
            .iter()
            .map(|l| Ok(self.layer_dir(&l.chain_id)?.join("diff")))
            .collect::<Result<Vec<_>, StoreError>>()?;
        if paths.len() <= max.max(1) {
            return Ok(LayerStack {
                paths,
                merged: None,
            });
        }
        let layers = paths.len();
        let count = layers - (max.max(2) - 1);
        let chain_id = image.layers[count - 1].chain_id.clone();
        let target = self.layer_dir(&chain_id)?.join(MERGED);
        let made_now = !target.is_dir()
            && self
                .merge_into(&paths[..count], &target)
                .map_err(|e| match e {
                    MergeFailure::Merge(source) => StoreError::MergeLayers {
                        image: image.id.clone(),
                        layers,
                        merged: count,
                        max,
                        source: Box::new(source),
                    },
                    MergeFailure::Store(e) => e,
                })?;
        paths.splice(..count, [target]);
        Ok(LayerStack {
            paths,
            merged: Some(MergedLayers {
                merged: count,
                layers,
                max,
                chain_id,
                made_now,
            }),
        })
    }

    /// Merges `layers` into `target`: built in `tmp/`, renamed into place only
    /// complete. Returns `false` when another process put its merge there first.
    fn merge_into(
        &self,
        layers: &[PathBuf],
        target: &std::path::Path,
    ) -> Result<bool, MergeFailure> {
        let temp = TempPath::new(temp_name(&self.tmp_dir(), "merge"));
        basic_rootfs::merge_layers(layers, temp.path()).map_err(MergeFailure::Merge)?;
        match fs::rename(temp.path(), target) {
            Ok(()) => {
                temp.keep();
                let parent = target.parent().unwrap_or(target);
                fsync_dir(parent).map_err(MergeFailure::Store)?;
                Ok(true)
            }
            // Theirs is as good as ours (ours goes with `temp`).
            Err(_) if target.is_dir() => Ok(false),
            Err(e) => Err(MergeFailure::Store(StoreError::io(
                "move merged layers to",
                target,
            )(e))),
        }
    }

    /// If the layer is recorded, leases it and returns `true`.
    pub(crate) fn hold_layer(&self, lease: &Lease, chain_id: &str) -> Result<bool, StoreError> {
        self.write("look up layer", |tx| {
            let present = layer_exists(tx, chain_id).map_err(self.db_error("look up layer"))?;
            if present {
                self.add_lease_ref(tx, lease, chain_id)?;
            }
            Ok(present)
        })
    }

    /// Renames an extracted, verified layer directory into `layers/` and records
    /// it. Returns `false` when the layer was already there (another pull won
    /// the race); the temp directory is then discarded.
    pub(crate) fn commit_layer(
        &self,
        lease: &Lease,
        layer: &NewLayer,
        temp: TempPath,
    ) -> Result<bool, StoreError> {
        let target = self.layer_dir(&layer.chain_id)?;
        let mut orphan = None;
        let added = self.write("record layer", |tx| {
            self.add_lease_ref(tx, lease, &layer.chain_id)?;
            if layer_exists(tx, &layer.chain_id).map_err(self.db_error("look up layer"))? {
                return Ok(false);
            }
            // A directory without a record is what a crash between rename and
            // commit leaves: it never counted, so it is replaced.
            if target.exists() {
                let trash = temp_name(&self.tmp_dir(), "trash");
                fs::rename(&target, &trash).map_err(StoreError::io("move aside", &target))?;
                orphan = Some(TempPath::new(trash));
            }
            fs::rename(temp.path(), &target).map_err(StoreError::io("rename layer to", &target))?;
            insert_layer(tx, layer).map_err(self.db_error("record layer"))?;
            Ok(true)
        });
        match added {
            Ok(true) => {
                temp.keep();
                fsync_dir(&self.inner.root.join("layers"))?;
                Ok(true)
            }
            // The rename may have happened before the commit failed: a
            // directory without a record never counts and is replaced later.
            other => other,
        }
    }

    /// Every layer recorded.
    pub fn layers(&self) -> Result<Vec<LayerRecord>, StoreError> {
        self.read("list layers", |c| {
            c.prepare(&format!(
                "SELECT {LAYER_COLUMNS} FROM layers ORDER BY chain_id"
            ))?
            .query_map([], layer_from_row)?
            .collect()
        })
    }
}

/// The directory in a layer's own holding it and every layer below merged into one.
const MERGED: &str = "merged";

/// Why [`ImageStore::merge_into`] failed: merging, or the store around it.
enum MergeFailure {
    Merge(basic_rootfs::SnapshotError),
    Store(StoreError),
}

/// A layer extracted and verified in `tmp/`, ready to be recorded.
#[derive(Debug, Clone)]
pub(crate) struct NewLayer {
    pub chain_id: String,
    pub diff_id: String,
    pub parent: Option<String>,
    pub blob_digest: String,
    pub media_type: String,
    pub compressed_size: u64,
    pub size: u64,
}

pub(in crate::store) const LAYER_COLUMNS: &str =
    "chain_id, diff_id, parent, blob_digest, media_type, compressed_size, size";

pub(in crate::store) fn layer_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LayerRecord> {
    Ok(LayerRecord {
        chain_id: r.get(0)?,
        diff_id: r.get(1)?,
        parent: r.get(2)?,
        blob_digest: r.get(3)?,
        media_type: r.get(4)?,
        compressed_size: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        size: r.get::<_, i64>(6)? as u64,
    })
}

pub(in crate::store) fn layer_exists(c: &Connection, chain_id: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT 1 FROM layers WHERE chain_id = ?1",
        [chain_id],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

pub(in crate::store) fn insert_layer(tx: &Transaction<'_>, l: &NewLayer) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO layers (chain_id, diff_id, parent, blob_digest, media_type, compressed_size, size, added)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            l.chain_id,
            l.diff_id,
            l.parent,
            l.blob_digest,
            l.media_type,
            l.compressed_size as i64,
            l.size as i64,
            now_secs()
        ],
    )?;
    Ok(())
}
