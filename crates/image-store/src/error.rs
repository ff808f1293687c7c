//! Errors of the store itself (the pull pipeline has its own, in `pull`).

use std::io;
use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use crate::storage::{StorageFault, filesystem_of};

/// What can go wrong reading or changing the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("image store: cannot {op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A directory or file of the store could not be made private to its
    /// owner (what opening a store made by an older version does).
    #[error("image store: setting the mode of {} to {mode:04o}", path.display())]
    Mode {
        /// The directory or file.
        path: PathBuf,
        /// The mode it was to get.
        mode: u32,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The store's filesystem refused a change: it is full, or mounted
    /// read-only. Reading still works; removing containers and images frees
    /// space on a full one.
    #[error(
        "image store: cannot {op} {}: {fault} ({} {})",
        path.display(),
        filesystem.display(),
        fault.state()
    )]
    Storage {
        /// What was being done.
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// Full or read-only.
        fault: StorageFault,
        /// The mount point of the filesystem.
        filesystem: PathBuf,
    },
    /// The metadata database failed.
    #[error("image store database {}: {op}", path.display())]
    Database {
        /// What was being done.
        op: &'static str,
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A digest is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    InvalidDigest(String),
    /// Bytes offered as a blob do not hash to the digest they were offered as.
    #[error("blob {expected}: content hashes to {actual}")]
    BlobMismatch {
        /// The digest claimed.
        expected: String,
        /// The digest of the bytes.
        actual: String,
    },
    /// No image matches the name or id.
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// No container has this id, name or id prefix.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// An id prefix matches several containers.
    #[error("container id prefix {prefix:?} is ambiguous: it matches {count} containers")]
    AmbiguousContainer {
        /// The prefix given.
        prefix: String,
        /// How many containers match it.
        count: usize,
    },
    /// Another container already has the name (docker's words).
    #[error(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameInUse {
        /// The name asked for.
        name: String,
        /// The container that has it.
        id: String,
    },
    /// An id prefix matches several images.
    #[error("image id prefix {prefix:?} is ambiguous: it matches {count} images")]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// How many images match it.
        count: usize,
    },
    /// Removing by id an image tagged in several repositories needs `force`.
    #[error(
        "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
    )]
    Conflict {
        /// The image's short id.
        short: String,
    },
    /// Removing by id an image other images were made from is refused, forced or
    /// not (docker's words).
    #[error(
        "conflict: unable to delete {short} (cannot be forced) - image has dependent child images"
    )]
    HasChildren {
        /// The image's short id.
        short: String,
    },
    /// Removing the last name of an image a container or mount uses needs `force`
    /// (docker's words, so scripts matching them keep working).
    #[error(
        "conflict: unable to remove repository reference \"{reference}\" (must force) - {kind} {holder} is using its referenced image {image}"
    )]
    InUse {
        /// The name the user gave.
        reference: String,
        /// What holds the image.
        kind: crate::HolderKind,
        /// The holder's short id.
        holder: String,
        /// The image's short id.
        image: String,
    },
    /// Removing by id an image a container or mount uses needs `force`.
    #[error(
        "conflict: unable to delete {image} (must be forced) - image is being used by {kind} {holder}"
    )]
    InUseById {
        /// What holds the image.
        kind: crate::HolderKind,
        /// The holder's short id.
        holder: String,
        /// The image's short id.
        image: String,
    },
    /// A name given as a tag is not a `repo[:tag]` reference.
    #[error("invalid tag {0:?}: expected repository[:tag]")]
    InvalidTag(String),
    /// A blob the store needs is missing from `blobs/`.
    #[error("image store: blob {0} is missing (run `system check --repair`, then pull again)")]
    MissingBlob(String),
    /// The bottom layers of an image of more layers than overlayfs stacks could
    /// not be merged into one directory.
    #[error(
        "image store: image {image} has {layers} layers, more than overlayfs stacks in one \
         mount ({max}); merging its bottom {merged} into one directory failed"
    )]
    MergeLayers {
        /// The image id.
        image: String,
        /// How many layers it has.
        layers: usize,
        /// How many were to be merged.
        merged: usize,
        /// The most a mount stacks.
        max: usize,
        /// What went wrong.
        #[source]
        source: Box<basic_rootfs::SnapshotError>,
    },
    /// What was to be written as a new layer could not be written (a
    /// container's files could not be read).
    #[error("image store: writing the new layer")]
    LayerSource {
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A stored record or blob cannot be understood.
    #[error("image store: {what} is corrupt: {reason}")]
    Corrupt {
        /// What.
        what: String,
        /// Why.
        reason: String,
    },
}

impl StoreError {
    /// An I/O error of `op` on `path`; a full or read-only filesystem is said
    /// as such ([`StoreError::Storage`]).
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| match StorageFault::of(&source) {
            Some(fault) => StoreError::storage(op, path, fault),
            None => StoreError::Io { op, path, source },
        }
    }

    /// A database error of `op` on the database at `path`. SQLite says "database
    /// or disk is full" for `ENOSPC`, but only "disk I/O error", "unable to open"
    /// or "readonly database" for the rest: those are checked against the
    /// filesystem, so a full or read-only one is said as such.
    pub(crate) fn database(op: &'static str, path: &Path, source: rusqlite::Error) -> Self {
        let fault = match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => Some(StorageFault::NoSpace),
            Some(ErrorCode::SystemIoFailure | ErrorCode::CannotOpen | ErrorCode::ReadOnly) => {
                StorageFault::probe(path.parent().unwrap_or(path))
            }
            _ => None,
        };
        match fault {
            Some(fault) => StoreError::storage(op, path.to_path_buf(), fault),
            None => StoreError::Database {
                op,
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// [`StoreError::Storage`], with the filesystem found from `path`.
    pub(crate) fn storage(op: &'static str, path: PathBuf, fault: StorageFault) -> Self {
        StoreError::Storage {
            op,
            filesystem: filesystem_of(&path),
            path,
            fault,
        }
    }

    /// Whether the filesystem was full: what a smaller change may get past.
    pub fn is_no_space(&self) -> bool {
        matches!(
            self,
            StoreError::Storage {
                fault: StorageFault::NoSpace,
                ..
            }
        )
    }
}
