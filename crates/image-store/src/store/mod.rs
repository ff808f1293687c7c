//! The store on disk: where things are, the database connection, the lock
//! file and transactions. What is stored lives in the modules below, each
//! one kind of thing: `content` (blobs), `layers`, `metadata` (images, names,
//! holders) and `gc` (leases, removal, collection, usage).

mod content;
mod database;
mod gc;
mod layers;
mod metadata;
mod pushed;

pub(crate) use gc::Garbage;
pub use gc::Lease;
pub(crate) use layers::NewLayer;
pub(crate) use metadata::NewImage;
pub(crate) use pushed::CompressedLayer;

use std::fs;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::error::StoreError;
use crate::fsutil::{self, PRIVATE_DIR, PRIVATE_FILE, ROOT_MODE};
use crate::storage::StorageFault;

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
    /// Set when the filesystem allowed only reading when the store was opened.
    read_only: Option<StorageFault>,
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
    ///
    /// A store on a read-only filesystem (a mounted backup, a read-only bind)
    /// opens for reading: its changes fail with [`StoreError::Storage`]. On a
    /// full filesystem everything can be read, and removing containers and
    /// images works (see `database`), which is how space is freed.
    pub fn open(root: impl AsRef<Path>) -> Result<Self, StoreError> {
        let root = root.as_ref().to_path_buf();
        fsutil::private_dir(&root, ROOT_MODE)?;
        for dir in ["blobs", "blobs/sha256", "layers", "tmp", CONTAINERS_DIR] {
            fsutil::private_dir(&root.join(dir), PRIVATE_DIR)?;
        }
        // Layers are extracted in `tmp/`: each in block groups of its own (see there).
        fsutil::spread_subdirectories(&root.join("tmp"));
        let db_path = root.join("metadata.db");
        // SQLite gives its journal (and an older version's -wal and -shm) the
        // database file's mode, so a database made 0600 before SQLite first
        // opens it keeps them private too.
        fsutil::private_file(&db_path, PRIVATE_FILE)?;
        for suffix in ["-wal", "-shm", "-journal"] {
            fsutil::tighten(&database::side_file(&db_path, suffix), PRIVATE_FILE)?;
        }
        fsutil::private_file(&root.join("lock"), PRIVATE_FILE)?;
        let db = database::open(&db_path)?;
        let store = ImageStore {
            inner: Arc::new(Inner {
                lock_path: root.join("lock"),
                root,
                db_path,
                conn: Mutex::new(db.conn),
                read_only: db.read_only,
            }),
        };
        if store.inner.read_only.is_none() {
            fsutil::sweep_tmp(&store.tmp_dir())?;
        }
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
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

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection leaves no half transaction
        // (rusqlite rolls back on drop), so the poison carries no meaning.
        self.inner.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails with [`StoreError::NoSuchImage`] unless image `id` exists, inside the
    /// write transaction `tx` (of operation `op`, for a database error's message).
    pub(crate) fn require_image(
        &self,
        tx: &rusqlite::Transaction<'_>,
        id: &str,
        op: &'static str,
    ) -> Result<(), StoreError> {
        use rusqlite::OptionalExtension as _;
        tx.query_row("SELECT 1 FROM images WHERE id = ?1", [id], |_| Ok(()))
            .optional()
            .map_err(self.db_error(op))?
            .ok_or_else(|| StoreError::NoSuchImage(id.to_string()))
    }

    pub(crate) fn db_error(
        &self,
        op: &'static str,
    ) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::database(op, &self.inner.db_path, source)
    }

    /// Whether the store was opened on a filesystem that allows only reading.
    pub fn read_only(&self) -> Option<StorageFault> {
        self.inner.read_only
    }

    /// Fails with [`StoreError::Storage`], saying `op` could not be done, when the
    /// store was opened on a filesystem that allows only reading: for callers about
    /// to change files beside the records (an engine's container directories), so
    /// that they refuse before they change anything.
    pub fn writable(&self, op: &'static str) -> Result<(), StoreError> {
        match self.inner.read_only {
            Some(fault) => Err(StoreError::storage(op, self.inner.root.clone(), fault)),
            None => Ok(()),
        }
    }

    /// The store's lock. A lock needs no write access (`flock` works on a
    /// descriptor opened for reading), so reads under it work on a read-only store.
    fn file_lock(&self) -> Result<FileLock, StoreError> {
        let path = &self.inner.lock_path;
        let file = match fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .mode(PRIVATE_FILE)
                .open(path)
                .map_err(StoreError::io("open lock file", path))?,
            Err(e) => return Err(StoreError::io("open lock file", path)(e)),
        };
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
        self.transaction(op, f).map(|(value, _lock)| value)
    }

    /// [`write`](Self::write) for changes that drop references: the layers and
    /// blobs `f` puts in the [`Garbage`] leave the store only once the
    /// transaction has committed (still under the lock), and are deleted once
    /// the lock is released. A commit that fails (a full disk) so leaves the
    /// records and the files they name as they were.
    pub(crate) fn write_collecting<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>, &mut Garbage) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut garbage = Garbage::default();
        let (value, lock) = self.transaction(op, |tx| f(tx, &mut garbage))?;
        let trash = garbage.move_aside(&self.tmp_dir());
        drop(lock);
        drop(trash);
        Ok(value)
    }

    fn transaction<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<(T, FileLock), StoreError> {
        self.writable(op)?;
        let mut conn = self.conn();
        let lock = self.file_lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(self.db_error(op))?;
        let value = f(&tx)?;
        tx.commit().map_err(self.db_error(op))?;
        Ok((value, lock))
    }

    pub(crate) fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let conn = self.conn();
        f(&conn).map_err(self.db_error(op))
    }

    /// Runs `f` in one read transaction while holding the store's lock file:
    /// a consistent view of records and files that no writer is changing.
    pub(crate) fn read_locked<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
        let _lock = self.file_lock()?;
        let tx = conn.transaction().map_err(self.db_error(op))?;
        let value = f(&tx)?;
        tx.finish().map_err(self.db_error(op))?;
        Ok(value)
    }
}
