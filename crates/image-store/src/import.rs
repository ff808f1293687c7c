//! `import`: a rootfs tarball becomes a one-layer image, as `docker import`
//! makes it: the tar (decompressed when it came gzip or zstd) is the layer,
//! its sha256 the diff ID, stored as a gzip blob; the config carries the
//! host's os and architecture. The result goes through the pull pipeline
//! like any other source.

use std::fs;
use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};

use basic_registry::Platform;
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::archive::{ArchiveError, decompressed};
use crate::config::RunConfig;
use crate::digest::sha256_of;
use crate::fsutil::{TempPath, now_secs, temp_name};
use crate::load::{EntryRef, LoadError, ingest_one};
use crate::pull::PullEvent;
use crate::staged::StagedSource;
use crate::store::ImageStore;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// The layer as staged: the gzip blob, and the digests of both forms.
struct StagedLayer {
    path: PathBuf,
    blob_digest: String,
    blob_size: u64,
    diff_id: String,
}

/// Imports the tarball read from `input` (named `name` in errors), tagging
/// the image `tag` when given. Returns the image id.
pub async fn import<F>(
    store: &ImageStore,
    input: impl Read + Send + 'static,
    name: &str,
    tag: Option<&str>,
    progress: F,
) -> Result<String, LoadError>
where
    F: Fn(PullEvent) + Send + Sync,
{
    import_with_run_config(store, input, name, tag, &RunConfig::default(), progress).await
}

/// [`import`], with `run` as the image's run defaults (`Cmd`, `Env`,
/// `ExposedPorts`, ... — what `docker import --change` sets), typed.
pub async fn import_with_run_config<F>(
    store: &ImageStore,
    input: impl Read + Send + 'static,
    name: &str,
    tag: Option<&str>,
    run: &RunConfig,
    progress: F,
) -> Result<String, LoadError>
where
    F: Fn(PullEvent) + Send + Sync,
{
    let container_config = serde_json::to_value(run).map_err(|e| LoadError::Format {
        archive: name.to_string(),
        reason: format!("the run config cannot be written: {e}"),
    })?;
    // As docker: `import FILE repo` names the image `repo:latest`.
    let tag = tag
        .map(|t| {
            basic_registry::Reference::parse(t)
                .map(|r| r.familiar())
                .map_err(|e| LoadError::Format {
                    archive: name.to_string(),
                    reason: format!("invalid image name {t:?}: {e}"),
                })
        })
        .transpose()?;
    import_with_config(
        store,
        input,
        name,
        tag.as_deref(),
        container_config,
        progress,
    )
    .await
    .map_err(|e| e.on_storage(store))
}

/// The pipeline behind the imports: `container_config` is written as the image
/// config's `config`.
async fn import_with_config<F>(
    store: &ImageStore,
    input: impl Read + Send + 'static,
    name: &str,
    tag: Option<&str>,
    container_config: serde_json::Value,
    progress: F,
) -> Result<String, LoadError>
where
    F: Fn(PullEvent) + Send + Sync,
{
    let dir = TempPath::new(temp_name(&store.tmp_dir(), "import"));
    let stage_name = name.to_string();
    let dir_path = dir.path().to_path_buf();
    let layer = tokio::task::spawn_blocking(move || stage_layer(input, &dir_path, &stage_name))
        .await
        .map_err(|e| LoadError::Format {
            archive: name.to_string(),
            reason: format!("the staging task failed: {e}"),
        })??;
    let config = config_for(&layer.diff_id, container_config);
    let config_digest = sha256_of(&config);
    let config_path = dir.path().join("config.json");
    fs::write(&config_path, &config).map_err(|source| ArchiveError::Stage {
        archive: name.to_string(),
        member: "config".to_string(),
        path: config_path.clone(),
        source,
    })?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer.blob_digest, "size": layer.blob_size}],
    })
    .to_string();
    let manifest_digest = sha256_of(manifest.as_bytes());
    let mut source = StagedSource::new(name);
    source.add_manifest(manifest_digest.clone(), Bytes::from(manifest));
    source.add_blob(config_digest, config_path);
    source.add_blob(layer.blob_digest.clone(), layer.path.clone());
    let entry = EntryRef {
        manifest_digest: &manifest_digest,
        tag,
    };
    let result = ingest_one(store, &source, entry, &progress).await;
    if result.is_err() {
        // As for load: what the failed import committed is referenced by nothing.
        if let Err(e) = store.gc() {
            tracing::warn!(error = %e, "cannot collect what a failed import left");
        }
    }
    drop(dir);
    result
}

/// Decompresses the input if needed and writes it as a gzip blob, hashing
/// the plain tar (diff ID) and the blob on the way.
fn stage_layer(input: impl Read, dir: &Path, name: &str) -> Result<StagedLayer, ArchiveError> {
    let path = dir.join("layer.tar.gz");
    let stage_err = |source| ArchiveError::Stage {
        archive: name.to_string(),
        member: "the layer".to_string(),
        path: path.clone(),
        source,
    };
    fs::create_dir(dir).map_err(stage_err)?;
    let file = fs::File::create(&path).map_err(stage_err)?;
    let mut gz =
        flate2::write::GzEncoder::new(HashingWriter::new(file), flate2::Compression::fast());
    let mut tar = decompressed(input).map_err(|source| ArchiveError::Read {
        archive: name.to_string(),
        source,
    })?;
    let mut diff = Sha256::new();
    let mut buf = vec![0; 256 * 1024];
    loop {
        let n = tar.read(&mut buf).map_err(|source| ArchiveError::Read {
            archive: name.to_string(),
            source,
        })?;
        if n == 0 {
            break;
        }
        diff.update(&buf[..n]);
        gz.write_all(&buf[..n]).map_err(stage_err)?;
    }
    let hashing = gz.finish().map_err(stage_err)?;
    hashing.file.sync_all().map_err(stage_err)?;
    Ok(StagedLayer {
        path: path.clone(),
        blob_digest: format!("sha256:{}", hex::encode(hashing.hasher.finalize())),
        blob_size: hashing.written,
        diff_id: format!("sha256:{}", hex::encode(diff.finalize())),
    })
}

/// A file writer that hashes what it writes.
struct HashingWriter {
    file: fs::File,
    hasher: Sha256,
    written: u64,
}

impl HashingWriter {
    fn new(file: fs::File) -> Self {
        HashingWriter {
            file,
            hasher: Sha256::new(),
            written: 0,
        }
    }
}

impl io::Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// The config `docker import` writes: host platform, creation time, one diff ID.
fn config_for(diff_id: &str, container_config: serde_json::Value) -> Vec<u8> {
    let host = Platform::host();
    let created = rfc3339(now_secs());
    let mut config = json!({
        "architecture": host.architecture,
        "os": host.os,
        "created": created,
        "config": container_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": "basic-docker import", "comment": "Imported from tarball"}],
    });
    if let Some(variant) = host.variant {
        config["variant"] = json!(variant);
    }
    config.to_string().into_bytes()
}

/// `2024-05-01T12:00:00Z` from unix seconds: whole seconds, as docker writes
/// an imported image's creation time. Out of RFC 3339's range (a clock set
/// absurdly far) it gives the epoch rather than a panic.
fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339(i64::MAX), "1970-01-01T00:00:00Z");
    }
}
