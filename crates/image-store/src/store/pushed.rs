//! What a push learns and leaves: where the store knows a blob to be (the
//! repositories its images came from or went to), compressed forms of layers made
//! for a push, and the repo digest a push gives an image.

use rusqlite::params;

use crate::error::StoreError;
use crate::fsutil::TempPath;
use crate::store::ImageStore;

/// A compressed layer blob the store holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CompressedLayer {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

impl ImageStore {
    /// The repo digests (`registry/repo@sha256:…`, familiar) of every image whose
    /// blobs include `digest`: repositories where a registry has that blob.
    pub(crate) fn blob_repositories(&self, digest: &str) -> Result<Vec<String>, StoreError> {
        self.read("find where a blob was pulled from", |c| {
            c.prepare(
                "SELECT DISTINCT r.name FROM repo_digests r
                 JOIN image_blobs b ON b.image_id = r.image_id
                 WHERE b.digest = ?1 ORDER BY r.name",
            )?
            .query_map([digest], |r| r.get(0))?
            .collect()
        })
    }

    /// A compressed form of the layer `diff_id` made by an earlier push, if its blob
    /// is still here.
    pub(crate) fn compressed_layer(
        &self,
        diff_id: &str,
    ) -> Result<Option<CompressedLayer>, StoreError> {
        let found = self.read("find a compressed layer", |c| {
            c.prepare(
                "SELECT digest, media_type, size FROM compressed_layers
                 WHERE diff_id = ?1 ORDER BY digest",
            )?
            .query_map([diff_id], |r| {
                Ok(CompressedLayer {
                    digest: r.get(0)?,
                    media_type: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(found.into_iter().find(|l| self.has_blob(&l.digest)))
    }

    /// Records the verified temp file `blob` as the compressed form of layer
    /// `diff_id`, kept with image `image_id` (so GC keeps it while the image is
    /// here), in one transaction.
    pub(crate) fn record_compressed_layer(
        &self,
        image_id: &str,
        diff_id: &str,
        layer: &CompressedLayer,
        blob: TempPath,
    ) -> Result<(), StoreError> {
        let target = self.blob_path(&layer.digest)?;
        self.write("record a compressed layer", |tx| {
            let db = || self.db_error("record a compressed layer");
            self.require_image(tx, image_id, "record a compressed layer")?;
            tx.execute(
                "INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?1, ?2)",
                params![image_id, layer.digest],
            )
            .map_err(db())?;
            tx.execute(
                "INSERT OR REPLACE INTO compressed_layers (digest, diff_id, media_type, size)
                 VALUES (?1, ?2, ?3, ?4)",
                params![layer.digest, diff_id, layer.media_type, layer.size as i64],
            )
            .map_err(db())?;
            if !target.exists() {
                std::fs::rename(blob.path(), &target)
                    .map_err(StoreError::io("rename blob to", &target))?;
                blob.keep();
                if let Some(dir) = target.parent() {
                    crate::fsutil::fsync_dir(dir)?;
                }
            }
            Ok(())
        })
    }

    /// Records `name` (`registry/repo@sha256:…`, any reference form) as a repo digest
    /// of image `image_id`, as a push does: the registry now serves it by that name.
    pub fn add_repo_digest(&self, image_id: &str, name: &str) -> Result<(), StoreError> {
        let familiar = basic_registry::Reference::parse(name)
            .ok()
            .filter(|r| r.digest().is_some())
            .map(|r| r.familiar())
            .ok_or_else(|| StoreError::InvalidTag(name.to_string()))?;
        self.write("record repo digest", |tx| {
            let db = || self.db_error("record repo digest");
            self.require_image(tx, image_id, "record repo digest")?;
            tx.execute(
                "INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?1, ?2)",
                params![familiar, image_id],
            )
            .map_err(db())?;
            Ok(())
        })
    }

    /// Every tag of `repository`'s repository (its tag, if it has one, is ignored) in
    /// the store, sorted: what `push --all-tags` (and the API's push without a tag) sends.
    pub fn repository_tags(
        &self,
        repository: &basic_registry::Reference,
    ) -> Result<Vec<basic_registry::Reference>, StoreError> {
        let repo = crate::record::repo_name(repository);
        let mut tags: Vec<String> = self
            .images()?
            .into_iter()
            .flat_map(|image| image.repo_tags)
            .filter(|t| t.rsplit_once(':').is_some_and(|(r, _)| r == repo))
            .collect();
        tags.sort();
        Ok(tags
            .iter()
            .filter_map(|t| basic_registry::Reference::parse(t).ok())
            .collect())
    }
}
