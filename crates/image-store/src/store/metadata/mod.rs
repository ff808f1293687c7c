//! Metadata: image records (id = config digest) with their layers and blobs,
//! the names that point at them, the holders that keep them, and an image's
//! config read back typed.

mod holders;
mod names;

pub(in crate::store) use holders::{first_holder, in_use};
pub(in crate::store) use names::{Matched, names_of, resolve_in, untag};

use rusqlite::{Connection, OptionalExtension as _, Transaction, params};

use super::layers::{LAYER_COLUMNS, layer_from_row};
use crate::config::ImageConfig;
use crate::error::StoreError;
use crate::fsutil::now_secs;
use crate::record::ImageRecord;
use crate::store::ImageStore;

impl ImageStore {
    /// Records an image, its tag and repo digest, in one transaction.
    /// Returns `true` when the tag already named this image (nothing new).
    pub(crate) fn commit_image(&self, image: &NewImage) -> Result<bool, StoreError> {
        self.write("record image", |tx| {
            let db = self.db_error("record image");
            let before: Option<String> = match &image.tag {
                Some(tag) => tx
                    .query_row("SELECT image_id FROM tags WHERE name = ?1", [tag], |r| {
                        r.get(0)
                    })
                    .optional()
                    .map_err(self.db_error("record image"))?,
                None => None,
            };
            insert_image(tx, image).map_err(db)?;
            Ok(before.as_deref() == Some(image.id.as_str()))
        })
    }

    /// Every image, most recently added first.
    pub fn images(&self) -> Result<Vec<ImageRecord>, StoreError> {
        self.read("list images", |c| {
            let ids: Vec<String> = c
                .prepare("SELECT id FROM images ORDER BY added DESC, id")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            ids.iter().map(|id| load_image(c, id)).collect()
        })
    }

    /// The image with this exact id.
    pub fn image(&self, id: &str) -> Result<ImageRecord, StoreError> {
        let found = self.read("read image", |c| {
            let exists = c
                .query_row("SELECT 1 FROM images WHERE id = ?1", [id], |_| Ok(()))
                .optional()?;
            exists.map(|()| load_image(c, id)).transpose()
        })?;
        found.ok_or_else(|| StoreError::NoSuchImage(id.to_string()))
    }

    /// The image's config, typed: the OCI configuration and docker's additions
    /// (see [`ImageConfig`]). Fails with [`StoreError::Corrupt`] when the blob
    /// is not a config document.
    pub fn image_configuration(&self, id: &str) -> Result<ImageConfig, StoreError> {
        let raw = self.read_blob(id)?;
        ImageConfig::from_slice(&raw).map_err(|e| StoreError::Corrupt {
            what: format!("config blob {id}"),
            reason: e.to_string(),
        })
    }
}

/// An image whose blobs and layers are all in place, ready to be recorded.
#[derive(Debug, Clone)]
pub(crate) struct NewImage {
    pub id: String,
    pub manifest_digest: String,
    pub manifest_media_type: String,
    pub created: Option<String>,
    pub architecture: Option<String>,
    pub os: Option<String>,
    pub chain_ids: Vec<String>,
    pub blobs: Vec<String>,
    pub tag: Option<String>,
    pub repo_digest: Option<String>,
    /// The image this one was made from (a build's previous step).
    pub parent: Option<String>,
}

pub(in crate::store) fn insert_image(
    tx: &Transaction<'_>,
    image: &NewImage,
) -> rusqlite::Result<()> {
    let size: i64 = image
        .chain_ids
        .iter()
        .map(|c| {
            tx.query_row("SELECT size FROM layers WHERE chain_id = ?1", [c], |r| {
                r.get::<_, i64>(0)
            })
        })
        .sum::<rusqlite::Result<i64>>()?;
    let new = tx.execute(
        "INSERT OR IGNORE INTO images (id, manifest_digest, manifest_media_type, created, architecture, os, size, added)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            image.id,
            image.manifest_digest,
            image.manifest_media_type,
            image.created,
            image.architecture,
            image.os,
            size,
            now_secs()
        ],
    )?;
    if new == 1 {
        for (i, chain_id) in image.chain_ids.iter().enumerate() {
            tx.execute(
                "INSERT INTO image_layers (image_id, position, chain_id) VALUES (?1, ?2, ?3)",
                params![image.id, i as i64, chain_id],
            )?;
        }
        if let Some(parent) = image.parent.as_deref().filter(|p| *p != image.id) {
            tx.execute(
                "INSERT OR IGNORE INTO image_parents (image_id, parent)
                 SELECT ?1, id FROM images WHERE id = ?2",
                params![image.id, parent],
            )?;
        }
    }
    for digest in &image.blobs {
        tx.execute(
            "INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?1, ?2)",
            params![image.id, digest],
        )?;
    }
    if let Some(tag) = &image.tag {
        tx.execute(
            "INSERT OR REPLACE INTO tags (name, image_id) VALUES (?1, ?2)",
            params![tag, image.id],
        )?;
    }
    // Pulled or loaded again, a doomed image is wanted after all.
    tx.execute("DELETE FROM doomed_images WHERE image_id = ?1", [&image.id])?;
    if let Some(digest) = &image.repo_digest {
        tx.execute(
            "INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?1, ?2)",
            params![digest, image.id],
        )?;
    }
    Ok(())
}

pub(in crate::store) fn load_image(c: &Connection, id: &str) -> rusqlite::Result<ImageRecord> {
    let strings = |sql: &str| -> rusqlite::Result<Vec<String>> {
        c.prepare(sql)?.query_map([id], |r| r.get(0))?.collect()
    };
    let repo_tags = strings("SELECT name FROM tags WHERE image_id = ?1 ORDER BY name")?;
    let repo_digests = strings("SELECT name FROM repo_digests WHERE image_id = ?1 ORDER BY name")?;
    let parent = parent_of(c, id)?;
    let children = children_of(c, id)?;
    let layers = c
        .prepare(&format!(
            "SELECT {} FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id
             WHERE il.image_id = ?1 ORDER BY il.position",
            LAYER_COLUMNS
                .split(", ")
                .map(|col| format!("l.{col}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))?
        .query_map([id], layer_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    c.query_row(
        "SELECT manifest_digest, manifest_media_type, created, architecture, os, size, added
         FROM images WHERE id = ?1",
        [id],
        |r| {
            Ok(ImageRecord {
                id: id.to_string(),
                repo_tags,
                repo_digests,
                created: r.get(2)?,
                size: r.get::<_, i64>(5)? as u64,
                architecture: r.get(3)?,
                os: r.get(4)?,
                manifest_digest: r.get(0)?,
                manifest_media_type: r.get(1)?,
                added: r.get(6)?,
                layers,
                parent,
                children,
            })
        },
    )
}

/// Strips every name of a held image and marks it for collection on release.
pub(in crate::store) fn doom_image(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM tags WHERE image_id = ?1", [id])?;
    tx.execute("DELETE FROM repo_digests WHERE image_id = ?1", [id])?;
    tx.execute(
        "INSERT OR IGNORE INTO doomed_images (image_id) VALUES (?1)",
        [id],
    )?;
    Ok(())
}

pub(in crate::store) fn delete_image_rows(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<()> {
    // ON DELETE CASCADE removes tags, repo digests, image_layers, image_blobs and
    // its own parent link; its children lose theirs here.
    tx.execute("DELETE FROM images WHERE id = ?1", [id])?;
    tx.execute("DELETE FROM image_parents WHERE parent = ?1", [id])?;
    Ok(())
}

/// The image `id` was made from, when recorded.
pub(in crate::store) fn parent_of(c: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    c.query_row(
        "SELECT parent FROM image_parents WHERE image_id = ?1",
        [id],
        |r| r.get(0),
    )
    .optional()
}

/// How many recorded images were made from `id`.
pub(in crate::store) fn children_of(c: &Connection, id: &str) -> rusqlite::Result<usize> {
    c.query_row(
        "SELECT COUNT(*) FROM image_parents WHERE parent = ?1",
        [id],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
}
