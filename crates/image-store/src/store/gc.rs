//! Garbage collection, by references only: a layer or blob is deleted when no
//! image and no live lease refers to it. Leases protect what a pull has
//! verified before its image is recorded; `remove` and `prune` delete images
//! and then collect; `disk_usage` measures what is kept.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use rusqlite::{Transaction, params};

use super::metadata::{
    Matched, delete_image_rows, doom_image, first_holder, in_use, names_of, resolve_in, untag,
};
use crate::error::StoreError;
use crate::fsutil::{TempPath, now_secs, pid_alive, temp_name};
use crate::record::{DiskUsage, Removal};
use crate::store::ImageStore;

impl ImageStore {
    /// Starts a lease for this process.
    pub fn lease(&self) -> Result<Lease, StoreError> {
        let id = temp_name(Path::new(""), "lease").display().to_string();
        self.read("create lease", |c| {
            c.execute(
                "INSERT INTO leases (id, pid, created) VALUES (?1, ?2, ?3)",
                params![id, std::process::id(), now_secs()],
            )
        })?;
        Ok(Lease {
            store: self.clone(),
            id,
        })
    }

    pub(in crate::store) fn add_lease_ref(
        &self,
        tx: &Transaction<'_>,
        lease: &Lease,
        key: &str,
    ) -> Result<(), StoreError> {
        tx.execute(
            "INSERT OR IGNORE INTO lease_refs (lease_id, key) VALUES (?1, ?2)",
            params![lease.id, key],
        )
        .map_err(self.db_error("record lease reference"))?;
        Ok(())
    }

    /// Removes what `name` names, as `docker rmi` does: a tag or repo digest is
    /// untagged, and the image goes with its last name; an id removes the
    /// image (with `force` even when it is tagged in several repositories).
    /// Layers and blobs nothing refers to any more are then deleted.
    pub fn remove(&self, name: &str, force: bool) -> Result<Vec<Removal>, StoreError> {
        let db_path = self.inner.db_path.clone();
        let (removals, trash) = self.write("remove image", |tx| {
            let (id, matched) = resolve_in(tx, name).map_err(|e| e.into_store(name, &db_path))?;
            let mut out = Vec::new();
            let by_id = matches!(matched, Matched::Id);
            let delete_image = untag(tx, &id, matched, force, &mut out)
                .map_err(|e| e.into_store(name, &db_path))?;
            if delete_image {
                let db = || self.db_error("delete image");
                match first_holder(tx, &id).map_err(db())? {
                    // Returning the error rolls the transaction back: the tag
                    // untag() removed is still there.
                    Some(holder) if !force => return Err(in_use(name, &id, &holder, by_id)),
                    // docker keeps an image a container uses as `<none>`: the
                    // names go, the record (and so its layers) stays until the
                    // last holder releases it.
                    Some(_) => doom_image(tx, &id).map_err(db())?,
                    None => {
                        delete_image_rows(tx, &id).map_err(db())?;
                        out.push(Removal::Deleted(id));
                    }
                }
            }
            let trash = self.collect(tx, &mut out)?;
            Ok((out, trash))
        })?;
        drop(trash);
        Ok(removals)
    }

    /// Deletes untagged images (`all`: also tagged ones), then collects garbage.
    pub fn prune(&self, all: bool) -> Result<Vec<Removal>, StoreError> {
        let (removals, trash) = self.write("prune images", |tx| {
            let db = || self.db_error("prune images");
            let sql = if all {
                "SELECT id FROM images"
            } else {
                "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM tags)"
            };
            // docker's `image prune` never removes what a container uses.
            let sql = format!(
                "{sql} {} id NOT IN (SELECT image_id FROM holders)",
                if all { "WHERE" } else { "AND" }
            );
            let ids: Vec<String> = tx
                .prepare(&sql)
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(db())?;
            let mut out = Vec::new();
            for id in ids {
                for name in names_of(tx, &id).map_err(db())? {
                    out.push(Removal::Untagged(name));
                }
                delete_image_rows(tx, &id).map_err(db())?;
                out.push(Removal::Deleted(id));
            }
            let trash = self.collect(tx, &mut out)?;
            Ok((out, trash))
        })?;
        drop(trash);
        Ok(removals)
    }

    /// Deletes layers and blobs that no image and no live lease refers to.
    pub fn gc(&self) -> Result<Vec<Removal>, StoreError> {
        let (removals, trash) = self.write("collect garbage", |tx| {
            let mut out = Vec::new();
            let trash = self.collect(tx, &mut out)?;
            Ok((out, trash))
        })?;
        drop(trash);
        Ok(removals)
    }

    /// The GC pass, inside a write transaction. Layer directories are only
    /// moved into `tmp/` here (a rename is quick); the returned paths delete
    /// them when dropped, after the lock is released.
    pub(crate) fn collect(
        &self,
        tx: &Transaction<'_>,
        out: &mut Vec<Removal>,
    ) -> Result<Vec<TempPath>, StoreError> {
        let db = || self.db_error("collect garbage");
        drop_dead_leases(tx).map_err(db())?;
        // Images `rmi -f` left behind for their holders go once nothing holds them.
        let released: Vec<String> = tx
            .prepare(
                "SELECT image_id FROM doomed_images
                 WHERE image_id NOT IN (SELECT image_id FROM holders)",
            )
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(db())?;
        for id in released {
            delete_image_rows(tx, &id).map_err(db())?;
            out.push(Removal::Deleted(id));
        }
        let layers: Vec<String> = tx
            .prepare(
                "SELECT chain_id FROM layers
                 WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)
                   AND chain_id NOT IN (SELECT key FROM lease_refs)
                 ORDER BY added DESC",
            )
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(db())?;
        let mut trash = Vec::new();
        for chain_id in layers {
            tx.execute("DELETE FROM layers WHERE chain_id = ?1", [&chain_id])
                .map_err(db())?;
            let dir = self.layer_dir(&chain_id)?;
            if dir.exists() {
                let to = temp_name(&self.tmp_dir(), "trash");
                fs::rename(&dir, &to).map_err(StoreError::io("move aside", &dir))?;
                trash.push(TempPath::new(to));
            }
            out.push(Removal::Deleted(chain_id));
        }
        self.collect_blobs(tx)?;
        Ok(trash)
    }

    fn collect_blobs(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        let keep: HashSet<String> = tx
            .prepare("SELECT digest FROM image_blobs UNION SELECT key FROM lease_refs")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(self.db_error("collect garbage"))?;
        let dir = self.inner.root.join("blobs/sha256");
        let entries = fs::read_dir(&dir).map_err(StoreError::io("list", &dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&format!("sha256:{name}")) {
                fs::remove_file(entry.path())
                    .map_err(StoreError::io("remove blob", entry.path()))?;
            }
        }
        Ok(())
    }

    /// What the store holds, for `system df`.
    pub fn disk_usage(&self) -> Result<DiskUsage, StoreError> {
        let mut usage = self.read("measure", |c| {
            let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0));
            Ok(DiskUsage {
                images: count("SELECT COUNT(*) FROM images")? as usize,
                dangling_images: count(
                    "SELECT COUNT(*) FROM images WHERE id NOT IN (SELECT image_id FROM tags)",
                )? as usize,
                images_size: count("SELECT COALESCE(SUM(size), 0) FROM images")? as u64,
                layers: count("SELECT COUNT(*) FROM layers")? as usize,
                layers_size: count("SELECT COALESCE(SUM(size), 0) FROM layers")? as u64,
                unused_layers_size: count(
                    "SELECT COALESCE(SUM(size), 0) FROM layers
                     WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)",
                )? as u64,
                ..DiskUsage::default()
            })
        })?;
        let dir = self.inner.root.join("blobs/sha256");
        for entry in fs::read_dir(&dir)
            .map_err(StoreError::io("list", &dir))?
            .flatten()
        {
            usage.blobs += 1;
            usage.blobs_size += entry.metadata().map_or(0, |m| m.len());
        }
        Ok(usage)
    }
}

/// What a pull (or load) holds while it works: the blobs and layers it has
/// verified or found stay out of GC's reach until the image is recorded.
/// Dropping it releases them; a lease of a dead process is ignored.
#[derive(Debug)]
pub struct Lease {
    store: ImageStore,
    id: String,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let conn = self.store.conn();
        if let Err(e) = conn.execute("DELETE FROM leases WHERE id = ?1", [&self.id]) {
            tracing::warn!(lease = %self.id, error = %e, "cannot release lease");
        }
    }
}

pub(in crate::store) fn drop_dead_leases(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let leases: Vec<(String, u32)> = tx
        .prepare("SELECT id, pid FROM leases")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, pid) in leases {
        if !pid_alive(pid) {
            tx.execute("DELETE FROM leases WHERE id = ?1", [&id])?;
        }
    }
    Ok(())
}
