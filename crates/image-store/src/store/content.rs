//! Content: verified blobs under `blobs/sha256/<hex>`. A blob is renamed in
//! only once its bytes hash to its name, and never changes after; what refers
//! to it (images, leases) is metadata, kept apart in the database.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::digest::{hex_of, sha256_of};
use crate::error::StoreError;
use crate::fsutil::{TempPath, fsync_dir, temp_name};
use crate::store::ImageStore;
use crate::store::Lease;

impl ImageStore {
    /// Where the blob `digest` lives (it may not exist).
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        Ok(self.inner.root.join("blobs/sha256").join(hex_of(digest)?))
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
}
