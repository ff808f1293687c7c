//! Garbage collection, by references only: a layer or blob is deleted when no
//! image and no live lease refers to it. Leases protect what a pull has
//! verified before its image is recorded; `remove` and `prune` delete images
//! and then collect; `disk_usage` measures what is kept.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use rusqlite::{Transaction, params};

use super::metadata::{
    Matched, children_of, delete_image_rows, doom_image, first_holder, in_use, names_of, parent_of,
    resolve_in, untag,
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
        self.write_collecting("remove image", |tx, garbage| {
            let (id, matched) = resolve_in(tx, name).map_err(|e| e.into_store(name, &db_path))?;
            let mut out = Vec::new();
            let by_id = matches!(matched, Matched::Id);
            let delete_image = untag(tx, &id, matched, force, &mut out)
                .map_err(|e| e.into_store(name, &db_path))?;
            let db = || self.db_error("delete image");
            // An image others were made from stays: by id that is an error (docker's,
            // even forced), by name it is only untagged and becomes intermediate.
            if delete_image && children_of(tx, &id).map_err(db())? > 0 {
                if by_id {
                    return Err(StoreError::HasChildren {
                        short: crate::short_id(&id).to_string(),
                    });
                }
            } else if delete_image {
                match first_holder(tx, &id).map_err(db())? {
                    // Returning the error rolls the transaction back: the tag
                    // untag() removed is still there.
                    Some(holder) if !force => return Err(in_use(name, &id, &holder, by_id)),
                    // docker keeps an image a container uses as `<none>`: the
                    // names go, the record (and so its layers) stays until the
                    // last holder releases it.
                    Some(_) => doom_image(tx, &id).map_err(db())?,
                    None => delete_with_parents(tx, &id, &mut out).map_err(db())?,
                }
            }
            self.collect(tx, garbage, &mut out)?;
            Ok(out)
        })
    }

    /// Deletes untagged images (`all`: also tagged ones), then collects garbage.
    ///
    /// All in one transaction; when the filesystem is too full for that one,
    /// image by image, each transaction freeing space for the next.
    pub fn prune(&self, all: bool) -> Result<Vec<Removal>, StoreError> {
        match self.prune_images(all, None) {
            Err(e) if e.is_no_space() => {
                let mut out = Vec::new();
                for id in self.read("prune images", |c| prunable(c, all))? {
                    out.extend(self.prune_images(all, Some(&id))?);
                }
                Ok(out)
            }
            other => other,
        }
    }

    /// Prunes every prunable image, or only `only` if it is one.
    fn prune_images(&self, all: bool, only: Option<&str>) -> Result<Vec<Removal>, StoreError> {
        self.write_collecting("prune images", |tx, garbage| {
            let db = || self.db_error("prune images");
            let ids = prunable(tx, all)
                .map_err(db())?
                .into_iter()
                .filter(|id| only.is_none_or(|only| only == id));
            let mut out = Vec::new();
            for id in ids {
                // An earlier one's parents may have included it.
                if !image_exists(tx, &id).map_err(db())? {
                    continue;
                }
                for name in names_of(tx, &id).map_err(db())? {
                    out.push(Removal::Untagged(name));
                }
                delete_with_parents(tx, &id, &mut out).map_err(db())?;
            }
            self.collect(tx, garbage, &mut out)?;
            Ok(out)
        })
    }

    /// Deletes layers and blobs that no image and no live lease refers to.
    pub fn gc(&self) -> Result<Vec<Removal>, StoreError> {
        self.write_collecting("collect garbage", |tx, garbage| {
            let mut out = Vec::new();
            self.collect(tx, garbage, &mut out)?;
            Ok(out)
        })
    }

    /// The GC pass, inside a write transaction: the records go here, the
    /// layer directories and blobs into `garbage` (see
    /// [`write_collecting`](ImageStore::write_collecting)).
    pub(crate) fn collect(
        &self,
        tx: &Transaction<'_>,
        garbage: &mut Garbage,
        out: &mut Vec<Removal>,
    ) -> Result<(), StoreError> {
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
        for chain_id in layers {
            tx.execute("DELETE FROM layers WHERE chain_id = ?1", [&chain_id])
                .map_err(db())?;
            garbage.add(self.layer_dir(&chain_id)?);
            out.push(Removal::Deleted(chain_id));
        }
        self.collect_blobs(tx, garbage)
    }

    fn collect_blobs(&self, tx: &Transaction<'_>, garbage: &mut Garbage) -> Result<(), StoreError> {
        let keep: HashSet<String> = tx
            .prepare("SELECT digest FROM image_blobs UNION SELECT key FROM lease_refs")
            .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
            .map_err(self.db_error("collect garbage"))?;
        tx.execute(
            "DELETE FROM compressed_layers WHERE digest NOT IN (SELECT digest FROM image_blobs)",
            [],
        )
        .map_err(self.db_error("collect garbage"))?;
        let dir = self.inner.root.join("blobs/sha256");
        let entries = fs::read_dir(&dir).map_err(StoreError::io("list", &dir))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&format!("sha256:{name}")) {
                garbage.add(entry.path());
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

/// Layer directories and blobs a transaction stopped referring to; see
/// [`ImageStore::write_collecting`].
#[derive(Debug, Default)]
pub(crate) struct Garbage(Vec<PathBuf>);

impl Garbage {
    /// `path` (a layer directory or a blob) goes once the transaction commits.
    pub(crate) fn add(&mut self, path: PathBuf) {
        self.0.push(path);
    }

    /// Moves everything into `tmp/` (a rename each, quick under the lock);
    /// the returned paths delete it when dropped. What cannot be moved stays
    /// unreferenced: the next collection takes a blob, and `system check
    /// --repair` (or the next pull of that layer) a layer directory.
    pub(in crate::store) fn move_aside(self, tmp: &Path) -> Vec<TempPath> {
        let mut trash = Vec::new();
        for path in self.0 {
            let to = temp_name(tmp, "trash");
            match fs::rename(&path, &to) {
                Ok(()) => trash.push(TempPath::new(to)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot move garbage aside")
                }
            }
        }
        trash
    }
}

/// The images `prune` removes: untagged ones other images were not made from
/// (`all`: every one), never one a container or mount holds (as docker's `image
/// prune`). Their nameless parents go with them ([`delete_with_parents`]), so an
/// intermediate image stays exactly while it has a descendant.
fn prunable(c: &rusqlite::Connection, all: bool) -> rusqlite::Result<Vec<String>> {
    let sql = if all {
        "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM holders)"
    } else {
        "SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM tags)
         AND id NOT IN (SELECT image_id FROM holders)
         AND id NOT IN (SELECT parent FROM image_parents)"
    };
    c.prepare(sql)?.query_map([], |r| r.get(0))?.collect()
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

fn image_exists(c: &rusqlite::Connection, id: &str) -> rusqlite::Result<bool> {
    c.query_row("SELECT COUNT(*) FROM images WHERE id = ?1", [id], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
}

/// Deletes the image `id`, then, as docker does, each parent up its chain that is
/// left without a name, a child or a holder (the intermediate images of the build
/// that made it), reporting each.
fn delete_with_parents(
    tx: &Transaction<'_>,
    id: &str,
    out: &mut Vec<Removal>,
) -> rusqlite::Result<()> {
    let mut parent = parent_of(tx, id)?;
    delete_image_rows(tx, id)?;
    out.push(Removal::Deleted(id.to_string()));
    // A parent link never points at its own descendant (an id is the digest of a
    // config that names its history), but a bound keeps a damaged table harmless.
    let mut left = tx.query_row("SELECT COUNT(*) FROM images", [], |r| r.get::<_, i64>(0))?;
    while let Some(id) = parent.take() {
        let removable: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM images WHERE id = ?1)
                AND NOT EXISTS (SELECT 1 FROM tags WHERE image_id = ?1)
                AND NOT EXISTS (SELECT 1 FROM repo_digests WHERE image_id = ?1)
                AND NOT EXISTS (SELECT 1 FROM image_parents WHERE parent = ?1)
                AND NOT EXISTS (SELECT 1 FROM holders WHERE image_id = ?1)",
            [&id],
            |r| r.get(0),
        )?;
        if !removable || left <= 0 {
            break;
        }
        left -= 1;
        parent = parent_of(tx, &id)?;
        delete_image_rows(tx, &id)?;
        out.push(Removal::Deleted(id));
    }
    Ok(())
}
