//! The store on disk: blobs, layer directories, the database, the lock.

use std::collections::HashSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use basic_registry::Reference;
use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior, params};

use crate::config::ImageConfig;
use crate::digest::{hex_of, sha256_of, short_id};
use crate::error::StoreError;
use crate::fsutil::{
    self, PRIVATE_DIR, PRIVATE_FILE, ROOT_MODE, TempPath, fsync_dir, now_secs, pid_alive, temp_name,
};
use crate::record::{DiskUsage, Holder, HolderKind, ImageRecord, LayerRecord, Removal, repo_name};
use crate::schema;

/// A store rooted at one directory. Cheap to clone; clones share one
/// database connection.
#[derive(Clone, Debug)]
pub struct ImageStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    db_path: PathBuf,
    lock_path: PathBuf,
    conn: Mutex<Connection>,
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
}

/// How a name given by the user matched an image.
enum Matched {
    Tag(String),
    Digest(String),
    Id,
}

/// Below the root: see [`ImageStore::containers_dir`].
const CONTAINERS_DIR: &str = "containers";

/// An exclusive `flock` on the store's lock file; released when dropped.
struct FileLock(#[allow(dead_code)] fs::File);

impl ImageStore {
    /// Opens (creating when needed) the store at `root`, and removes what dead
    /// processes left in `tmp/`.
    ///
    /// The store is private to its owner: the root is `0711` (others may not
    /// list it), `blobs/`, `layers/`, `tmp/` and `containers/` are `0700`, the
    /// database and the lock file `0600`. A store an older version made with
    /// wider modes is tightened here, on every open, which costs a `stat` per
    /// path once it is done; only those gating directories and files change,
    /// never what is inside layers (their modes are the image's).
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = root.as_ref().to_path_buf();
        fsutil::private_dir(&root, ROOT_MODE)?;
        for dir in ["blobs", "blobs/sha256", "layers", "tmp", CONTAINERS_DIR] {
            fsutil::private_dir(&root.join(dir), PRIVATE_DIR)?;
        }
        let db_path = root.join("metadata.db");
        // SQLite gives its -wal and -shm files the database file's mode, so a
        // database made 0600 before SQLite first opens it keeps them private too.
        fsutil::private_file(&db_path, PRIVATE_FILE)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut side = db_path.clone().into_os_string();
            side.push(suffix);
            fsutil::tighten(Path::new(&side), PRIVATE_FILE)?;
        }
        fsutil::private_file(&root.join("lock"), PRIVATE_FILE)?;
        let conn = Connection::open(&db_path).map_err(|source| StoreError::Database {
            op: "open",
            path: db_path.clone(),
            source,
        })?;
        schema::init(&conn).map_err(|source| StoreError::Database {
            op: "create tables",
            path: db_path.clone(),
            source,
        })?;
        let store = ImageStore {
            inner: Arc::new(Inner {
                lock_path: root.join("lock"),
                root,
                db_path,
                conn: Mutex::new(conn),
            }),
        };
        fsutil::sweep_tmp(&store.tmp_dir())?;
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the blob `digest` lives (it may not exist).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.inner.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    /// The directory of the layer `chain_id`: `layers/<hex>`, holding `diff/`
    /// (the layer in overlay form) and `layer.json`.
    pub fn layer_dir(&self, chain_id: &str) -> Result<PathBuf, StoreError> {
        Ok(self.inner.root.join("layers").join(hex_of(chain_id)?))
    }

    /// `tmp/`: ingest in progress, never read as content.
    pub fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    /// `containers/`, owner-only (`0700`): where an engine keeps each container's
    /// files (its runtime spec with the environment, its logs, its root mount),
    /// one directory per container. The store makes it and keeps it private;
    /// what goes in it is the engine's.
    pub fn containers_dir(&self) -> PathBuf {
        self.inner.root.join(CONTAINERS_DIR)
    }

    /// Whether the blob is stored (blobs are only ever renamed in verified).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.exists())
    }

    /// Reads a whole blob (manifests and configs; not meant for layers).
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => StoreError::MissingBlob(digest.to_string()),
            _ => StoreError::Io {
                op: "read blob",
                path,
                source: e,
            },
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection leaves no half transaction
        // (rusqlite rolls back on drop), so the poison carries no meaning.
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn db_error(
        &self,
        op: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Database {
            op,
            path: self.inner.db_path.clone(),
            source,
        }
    }

    fn file_lock(&self) -> Result<FileLock, StoreError> {
        let path = &self.inner.lock_path;
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(PRIVATE_FILE)
            .open(path)
            .map_err(StoreError::io("open lock file", path))?;
        // Blocking is fine: every critical section is a few renames and one
        // transaction, and none of them awaits while holding the lock.
        file.lock().map_err(StoreError::io("lock", path))?;
        Ok(FileLock(file))
    }

    /// Runs `f` in one immediate transaction while holding the store's lock
    /// file, so filesystem renames and the records that describe them change
    /// together as far as any other process can see.
    pub(crate) fn write<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let _lock = self.file_lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.db_error(op))?;
        let value = f(&tx)?;
        tx.commit().map_err(self.db_error(op))?;
        Ok(value)
    }

    pub(crate) fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.conn();
        f(&conn).map_err(self.db_error(op))
    }

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

    fn add_lease_ref(
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

    /// Stores `bytes` as the blob `digest` after checking that they hash to it.
    pub fn put_blob(&self, lease: &Lease, digest: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let actual = sha256_of(bytes);
        if actual != digest {
            return Err(StoreError::BlobMismatch {
                expected: digest.to_string(),
                actual,
            });
        }
        let temp = TempPath::new(temp_name(&self.tmp_dir(), "blob"));
        let mut file =
            fs::File::create(temp.path()).map_err(StoreError::io("create", temp.path()))?;
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .map_err(StoreError::io("write", temp.path()))?;
        self.commit_blob(lease, digest, temp)
    }

    /// Renames a verified, fsynced temp file into `blobs/` (unless another
    /// pull got there first: the content is the same) and leases it.
    pub(crate) fn commit_blob(
        &self,
        lease: &Lease,
        digest: &str,
        temp: TempPath,
    ) -> Result<(), StoreError> {
        let target = self.blob_path(digest)?;
        self.write("record blob", |tx| {
            self.add_lease_ref(tx, lease, digest)?;
            if !target.exists() {
                fs::rename(temp.path(), &target)
                    .map_err(StoreError::io("rename blob to", &target))?;
                temp.keep();
                fsync_dir(target.parent().unwrap_or(Path::new(".")))?;
            }
            Ok(())
        })
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

    /// Points the tag `name` (any reference form; stored familiar) at the image
    /// `id`, moving it from another image if it named one, as `docker tag` does.
    pub fn tag(&self, id: &str, name: &str) -> Result<(), StoreError> {
        let familiar = Reference::parse(name)
            .ok()
            .filter(|r| r.digest().is_none())
            .map(|r| r.familiar())
            .ok_or_else(|| StoreError::InvalidTag(name.to_string()))?;
        self.write("tag image", |tx| {
            let db = || self.db_error("tag image");
            let exists = tx
                .query_row("SELECT 1 FROM images WHERE id = ?1", [id], |_| Ok(()))
                .optional()
                .map_err(db())?;
            if exists.is_none() {
                return Err(StoreError::NoSuchImage(id.to_string()));
            }
            tx.execute(
                "INSERT OR REPLACE INTO tags (name, image_id) VALUES (?1, ?2)",
                params![familiar, id],
            )
            .map_err(db())?;
            // Named again, it is an ordinary image: releasing it must not delete it.
            tx.execute("DELETE FROM doomed_images WHERE image_id = ?1", [id])
                .map_err(db())?;
            Ok(())
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

    /// The image a user means by `name`: a tag (`busybox`, `busybox:1`), a
    /// repo digest (`busybox@sha256:…`), a full id or a unique id prefix.
    pub fn resolve(&self, name: &str) -> Result<ImageRecord, StoreError> {
        let (id, _) = {
            let conn = self.conn();
            resolve_in(&conn, name).map_err(|e| e.into_store(name, &self.inner.db_path))?
        };
        self.image(&id)
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

    /// The image's config as untyped JSON; prefer
    /// [`image_configuration`](Self::image_configuration).
    pub fn image_config(&self, id: &str) -> Result<serde_json::Value, StoreError> {
        let raw = self.read_blob(id)?;
        serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
            what: format!("config blob {id}"),
            reason: e.to_string(),
        })
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

    /// Records that a container (`id` = container id) or an `image mount`
    /// (`id` = image id) uses `image_id`. While held, the image cannot be
    /// removed without `force`, and its layers and blobs are never collected.
    /// Fails with [`StoreError::NoSuchImage`] when the image is gone (an `rmi`
    /// may have run since the caller resolved it): holding checks and records
    /// in one transaction, so the layers cannot vanish in between.
    pub fn hold(&self, kind: HolderKind, id: &str, image_id: &str) -> Result<(), StoreError> {
        self.write("hold image", |tx| self.hold_in(tx, kind, id, image_id))
    }

    /// [`hold`](Self::hold) inside the caller's transaction.
    pub(crate) fn hold_in(
        &self,
        tx: &Transaction<'_>,
        kind: HolderKind,
        id: &str,
        image_id: &str,
    ) -> Result<(), StoreError> {
        let db = || self.db_error("hold image");
        let exists = tx
            .query_row("SELECT 1 FROM images WHERE id = ?1", [image_id], |_| Ok(()))
            .optional()
            .map_err(db())?;
        if exists.is_none() {
            return Err(StoreError::NoSuchImage(image_id.to_string()));
        }
        tx.execute(
            "INSERT OR REPLACE INTO holders (kind, id, image_id, created) VALUES (?1, ?2, ?3, ?4)",
            params![kind.as_str(), id, image_id, now_secs()],
        )
        .map_err(db())?;
        Ok(())
    }

    /// Ends what [`hold`](Self::hold) started (releasing what is not held is
    /// not an error: cleanup paths may run twice). When the image was removed
    /// with `force` while held and this was its last holder, it is collected
    /// now, with the layers and blobs nothing else uses; those are returned.
    pub fn release(&self, kind: HolderKind, id: &str) -> Result<Vec<Removal>, StoreError> {
        let (removals, trash) = self.write("release image", |tx| self.release_in(tx, kind, id))?;
        drop(trash);
        Ok(removals)
    }

    /// [`release`](Self::release) inside the caller's transaction; the caller
    /// drops the returned trash after committing.
    pub(crate) fn release_in(
        &self,
        tx: &Transaction<'_>,
        kind: HolderKind,
        id: &str,
    ) -> Result<(Vec<Removal>, Vec<TempPath>), StoreError> {
        let db = || self.db_error("release image");
        let image: Option<String> = tx
            .query_row(
                "DELETE FROM holders WHERE kind = ?1 AND id = ?2 RETURNING image_id",
                params![kind.as_str(), id],
                |r| r.get(0),
            )
            .optional()
            .map_err(db())?;
        let mut out = Vec::new();
        // Only a doomed image makes GC worth its directory listing here.
        let doomed = match &image {
            Some(image) => tx
                .query_row(
                    "SELECT 1 FROM doomed_images WHERE image_id = ?1",
                    [image],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db())?
                .is_some(),
            None => false,
        };
        let trash = if doomed {
            self.collect(tx, &mut out)?
        } else {
            Vec::new()
        };
        Ok((out, trash))
    }

    /// Who holds `image_id`, oldest first.
    pub fn holders_of(&self, image_id: &str) -> Result<Vec<Holder>, StoreError> {
        self.read("list holders", |c| holders_in(c, image_id))
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

const LAYER_COLUMNS: &str =
    "chain_id, diff_id, parent, blob_digest, media_type, compressed_size, size";

fn layer_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LayerRecord> {
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

fn layer_exists(c: &Connection, chain_id: &str) -> rusqlite::Result<bool> {
    c.query_row(
        "SELECT 1 FROM layers WHERE chain_id = ?1",
        [chain_id],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
}

fn insert_layer(tx: &Transaction<'_>, l: &NewLayer) -> rusqlite::Result<()> {
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

fn insert_image(tx: &Transaction<'_>, image: &NewImage) -> rusqlite::Result<()> {
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

fn load_image(c: &Connection, id: &str) -> rusqlite::Result<ImageRecord> {
    let strings = |sql: &str| -> rusqlite::Result<Vec<String>> {
        c.prepare(sql)?.query_map([id], |r| r.get(0))?.collect()
    };
    let repo_tags = strings("SELECT name FROM tags WHERE image_id = ?1 ORDER BY name")?;
    let repo_digests = strings("SELECT name FROM repo_digests WHERE image_id = ?1 ORDER BY name")?;
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
            })
        },
    )
}

/// Why a name did not resolve, before the database path is attached.
enum ResolveError {
    Db(rusqlite::Error),
    Store(StoreError),
}

impl From<rusqlite::Error> for ResolveError {
    fn from(e: rusqlite::Error) -> Self {
        ResolveError::Db(e)
    }
}

impl ResolveError {
    fn into_store(self, _name: &str, db_path: &Path) -> StoreError {
        match self {
            ResolveError::Db(source) => StoreError::Database {
                op: "look up image",
                path: db_path.to_path_buf(),
                source,
            },
            ResolveError::Store(e) => e,
        }
    }
}

fn resolve_in(c: &Connection, name: &str) -> Result<(String, Matched), ResolveError> {
    if let Ok(reference) = Reference::parse(name) {
        let (table, key, matched): (&str, String, fn(String) -> Matched) = match reference.digest()
        {
            Some(digest) => (
                "repo_digests",
                format!("{}@{digest}", repo_name(&reference)),
                Matched::Digest,
            ),
            None => ("tags", reference.familiar(), Matched::Tag),
        };
        let found: Option<String> = c
            .query_row(
                &format!("SELECT image_id FROM {table} WHERE name = ?1"),
                [&key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = found {
            return Ok((id, matched(key)));
        }
    }
    let prefix = name.strip_prefix("sha256:").unwrap_or(name);
    let is_hex = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if is_hex {
        let ids: Vec<String> = c
            .prepare("SELECT id FROM images WHERE substr(id, 8, ?2) = ?1")?
            .query_map(params![prefix, prefix.len() as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        match ids.len() {
            1 => return Ok((ids.into_iter().next().unwrap_or_default(), Matched::Id)),
            0 => {}
            count => {
                return Err(ResolveError::Store(StoreError::Ambiguous {
                    prefix: name.to_string(),
                    count,
                }));
            }
        }
    }
    Err(ResolveError::Store(StoreError::NoSuchImage(
        name.to_string(),
    )))
}

fn names_of(c: &Connection, id: &str) -> rusqlite::Result<Vec<String>> {
    c.prepare(
        "SELECT name FROM tags WHERE image_id = ?1
         UNION ALL SELECT name FROM repo_digests WHERE image_id = ?1",
    )?
    .query_map([id], |r| r.get(0))?
    .collect()
}

/// Removes the names `matched` asks to remove; returns whether the image
/// itself must go (docker: with its last tag, or when removed by id).
fn untag(
    tx: &Transaction<'_>,
    id: &str,
    matched: Matched,
    force: bool,
    out: &mut Vec<Removal>,
) -> Result<bool, ResolveError> {
    let count = |sql: &str| tx.query_row(sql, [id], |r| r.get::<_, i64>(0));
    match matched {
        Matched::Tag(name) => {
            tx.execute("DELETE FROM tags WHERE name = ?1", [&name])?;
            out.push(Removal::Untagged(name));
            if count("SELECT COUNT(*) FROM tags WHERE image_id = ?1")? > 0 {
                return Ok(false);
            }
        }
        Matched::Digest(name) => {
            tx.execute("DELETE FROM repo_digests WHERE name = ?1", [&name])?;
            out.push(Removal::Untagged(name));
            let left = count(
                "SELECT (SELECT COUNT(*) FROM tags WHERE image_id = ?1)
                      + (SELECT COUNT(*) FROM repo_digests WHERE image_id = ?1)",
            )?;
            if left > 0 {
                return Ok(false);
            }
        }
        Matched::Id => {
            let repos: HashSet<String> = tx
                .prepare("SELECT name FROM tags WHERE image_id = ?1")?
                .query_map([id], |r| r.get::<_, String>(0))?
                .filter_map(|n| n.ok())
                .filter_map(|n| Reference::parse(&n).ok().map(|r| repo_name(&r)))
                .collect();
            if repos.len() > 1 && !force {
                return Err(ResolveError::Store(StoreError::Conflict {
                    short: short_id(id).to_string(),
                }));
            }
        }
    }
    // The image goes: its remaining names go with it.
    for name in names_of(tx, id)? {
        out.push(Removal::Untagged(name));
    }
    Ok(true)
}

fn holders_in(c: &Connection, image_id: &str) -> rusqlite::Result<Vec<Holder>> {
    c.prepare("SELECT kind, id FROM holders WHERE image_id = ?1 ORDER BY created, kind, id")?
        .query_map([image_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        // A kind this version does not know (a newer one wrote it) still holds.
        .map(|row| {
            row.map(|(kind, id)| Holder {
                kind: HolderKind::parse(&kind).unwrap_or(HolderKind::Container),
                id,
                image_id: image_id.to_string(),
            })
        })
        .collect()
}

fn first_holder(c: &Connection, image_id: &str) -> rusqlite::Result<Option<Holder>> {
    Ok(holders_in(c, image_id)?.into_iter().next())
}

fn in_use(reference: &str, image_id: &str, holder: &Holder, by_id: bool) -> StoreError {
    let holder_short = short_id(&holder.id).to_string();
    let image = short_id(image_id).to_string();
    if by_id {
        StoreError::InUseById {
            kind: holder.kind,
            holder: holder_short,
            image,
        }
    } else {
        StoreError::InUse {
            reference: reference.to_string(),
            kind: holder.kind,
            holder: holder_short,
            image,
        }
    }
}

/// Strips every name of a held image and marks it for collection on release.
fn doom_image(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<()> {
    tx.execute("DELETE FROM tags WHERE image_id = ?1", [id])?;
    tx.execute("DELETE FROM repo_digests WHERE image_id = ?1", [id])?;
    tx.execute(
        "INSERT OR IGNORE INTO doomed_images (image_id) VALUES (?1)",
        [id],
    )?;
    Ok(())
}

fn delete_image_rows(tx: &Transaction<'_>, id: &str) -> rusqlite::Result<()> {
    // ON DELETE CASCADE removes tags, repo digests, image_layers, image_blobs.
    tx.execute("DELETE FROM images WHERE id = ?1", [id])?;
    Ok(())
}

fn drop_dead_leases(tx: &Transaction<'_>) -> rusqlite::Result<()> {
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
