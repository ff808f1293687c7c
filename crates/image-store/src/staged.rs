//! An image source on local disk: blobs staged in `tmp/`, served through the
//! same [`Registry`] trait a real registry implements, so `load` and `import`
//! run the very pipeline `pull` runs (verified blobs, diff IDs, chain IDs,
//! one transaction per image).

use std::collections::HashMap;
use std::path::PathBuf;

use basic_registry::{
    BlobRequest, BlobStream, Digester, Manifest, Missing, Reference, Registry, RegistryError,
};
use bytes::Bytes;
use futures_util::stream;
use tokio::io::AsyncReadExt as _;

/// Manifests are small; a "manifest" larger than this is not read into memory.
const MAX_MANIFEST: u64 = 4 * 1024 * 1024;

/// Bytes read from a staged blob per chunk.
const CHUNK: usize = 256 * 1024;

/// Blobs and manifests by digest, all on local disk or in memory.
#[derive(Debug, Default)]
pub(crate) struct StagedSource {
    /// What errors call this source (an archive's path, `import`'s input).
    name: String,
    /// Manifests made up for archives that carry none (docker's legacy layout).
    manifests: HashMap<String, Bytes>,
    /// Staged files by digest.
    blobs: HashMap<String, PathBuf>,
}

impl StagedSource {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        StagedSource {
            name: name.into(),
            ..Default::default()
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Serves `raw` as the manifest with this digest.
    pub(crate) fn add_manifest(&mut self, digest: String, raw: Bytes) {
        self.manifests.insert(digest, raw);
    }

    /// Serves the file at `path` as the blob `digest`.
    pub(crate) fn add_blob(&mut self, digest: String, path: PathBuf) {
        self.blobs.insert(digest, path);
    }

    fn not_found(&self, missing: Missing, digest: &str) -> RegistryError {
        RegistryError::NotFound {
            missing,
            registry: self.name.clone(),
            repository: "the archive".to_string(),
            reference: digest.to_string(),
            envelope: None,
        }
    }

    fn manifest_bytes(&self, digest: &str) -> Result<Bytes, RegistryError> {
        if let Some(raw) = self.manifests.get(digest) {
            return Ok(raw.clone());
        }
        let path = self
            .blobs
            .get(digest)
            .ok_or_else(|| self.not_found(Missing::Manifest, digest))?;
        let size = std::fs::metadata(path).map_or(0, |m| m.len());
        if size > MAX_MANIFEST {
            return Err(RegistryError::SizeMismatch {
                registry: self.name.clone(),
                what: format!("manifest {digest} (limit {MAX_MANIFEST} bytes)"),
                expected: MAX_MANIFEST,
                actual: size,
            });
        }
        std::fs::read(path)
            .map(Bytes::from)
            .map_err(|_| self.not_found(Missing::Manifest, digest))
    }
}

impl Registry for StagedSource {
    async fn fetch_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        let digest = reference
            .digest()
            .ok_or_else(|| self.not_found(Missing::Manifest, reference.manifest_reference()))?;
        let raw = self.manifest_bytes(digest)?;
        let manifest =
            Manifest::from_bytes(raw, None).map_err(|source| RegistryError::Manifest {
                registry: self.name.clone(),
                reference: digest.to_string(),
                source,
            })?;
        if manifest.digest != digest {
            return Err(RegistryError::DigestMismatch {
                registry: self.name.clone(),
                what: "manifest".to_string(),
                expected: digest.to_string(),
                actual: manifest.digest,
            });
        }
        Ok(manifest)
    }

    async fn fetch_blob(
        &self,
        _reference: &Reference,
        request: &BlobRequest,
    ) -> Result<BlobStream, RegistryError> {
        let path = self
            .blobs
            .get(&request.digest)
            .ok_or_else(|| self.not_found(Missing::Blob, &request.digest))?;
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|_| self.not_found(Missing::Blob, &request.digest))?;
        let state = Reading {
            file,
            digester: Some(Digester::for_digest(&request.digest)?),
            received: 0,
            request: request.clone(),
            source: self.name.clone(),
        };
        Ok(Box::pin(stream::unfold(state, next_chunk)))
    }
}

/// One blob being read; verified at its end, as a registry download is.
struct Reading {
    file: tokio::fs::File,
    digester: Option<Digester>,
    received: u64,
    request: BlobRequest,
    source: String,
}

async fn next_chunk(mut s: Reading) -> Option<(Result<Bytes, RegistryError>, Reading)> {
    let digester = s.digester.as_mut()?;
    let mut buf = vec![0; CHUNK];
    let n = match s.file.read(&mut buf).await {
        Ok(n) => n,
        Err(_) => {
            s.digester = None;
            let what = format!("blob {} (read error)", s.request.digest);
            let err = RegistryError::SizeMismatch {
                registry: s.source.clone(),
                what,
                expected: s.request.size,
                actual: s.received,
            };
            return Some((Err(err), s));
        }
    };
    s.received += n as u64;
    if n > 0 && s.received <= s.request.size {
        digester.update(&buf[..n]);
        buf.truncate(n);
        return Some((Ok(Bytes::from(buf)), s));
    }
    // End of file (or more bytes than announced): check size, then digest.
    let digester = s.digester.take()?;
    let what = format!("blob {}", s.request.digest);
    let err = if s.received != s.request.size {
        RegistryError::SizeMismatch {
            registry: s.source.clone(),
            what,
            expected: s.request.size,
            actual: s.received,
        }
    } else {
        let actual = digester.finish();
        if actual == s.request.digest {
            return None;
        }
        RegistryError::DigestMismatch {
            registry: s.source.clone(),
            what,
            expected: s.request.digest.clone(),
            actual,
        }
    };
    Some((Err(err), s))
}
