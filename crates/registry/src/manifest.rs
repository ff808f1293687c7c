//! Manifests as a registry serves them: raw bytes, their digest, and the parsed content.
//!
//! The raw bytes are kept because the digest is over them, not over any re-serialisation.

use basic_escape::escape;
use bytes::Bytes;
use oci_spec::image::{ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::digest::Digester;

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema version 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (the Docker equivalent of an OCI index).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema 1 manifest, signed. Recognised only to be refused clearly.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker schema 1 manifest, unsigned. Recognised only to be refused clearly.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// The `Accept` header sent for manifests.
///
/// Schema 1 is listed last, at low preference, so that a registry holding only a
/// schema 1 manifest returns it and the user gets "schema 1 is unsupported" rather
/// than a misleading "not found".
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.1, \
application/vnd.docker.distribution.manifest.v1+json;q=0.1";

/// Largest manifest accepted, as containerd does: a manifest is metadata, and a
/// larger body is either an error or an attack.
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// A manifest fetched from a registry, with its digest verified.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Digest of `raw`, e.g. `sha256:…`.
    pub digest: String,
    /// Media type, from the response or the document itself.
    pub media_type: String,
    /// The bytes exactly as served.
    pub raw: Bytes,
    /// The parsed document.
    pub content: ManifestContent,
}

/// What a manifest document is.
#[derive(Debug, Clone)]
pub enum ManifestContent {
    /// A single-platform image manifest (OCI or Docker schema 2).
    Image(Box<ImageManifest>),
    /// An index of per-platform manifests (OCI index or Docker manifest list).
    Index(Box<ImageIndex>),
}

/// Why manifest bytes could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Docker schema 1 manifests have been deprecated since 2015 and are not pulled.
    #[error(
        "manifest is Docker schema 1, which is not supported; \
         push the image again with a current tool to convert it to schema 2 or OCI"
    )]
    Schema1,
    /// The media type is not a manifest or index this crate understands.
    #[error("unsupported manifest media type \"{}\"", escape(.0))]
    UnsupportedMediaType(String),
    /// The document is not valid JSON of the announced kind.
    #[error("malformed {kind} manifest: {}", escape(&source.to_string()))]
    Malformed {
        /// "image" or "index".
        kind: &'static str,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// Just enough of any manifest version to tell what it is.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

impl Manifest {
    /// Parses `raw`, taking the media type from `content_type` when the server gave a
    /// specific one and from the document otherwise. The digest is computed here.
    pub fn from_bytes(raw: Bytes, content_type: Option<&str>) -> Result<Self, ManifestError> {
        let media_type = media_type_of(&raw, content_type)?;
        let content = match media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => ManifestContent::Image(Box::new(
                serde_json::from_slice(&raw).map_err(|source| ManifestError::Malformed {
                    kind: "image",
                    source,
                })?,
            )),
            OCI_INDEX | DOCKER_MANIFEST_LIST => ManifestContent::Index(Box::new(
                serde_json::from_slice(&raw).map_err(|source| ManifestError::Malformed {
                    kind: "index",
                    source,
                })?,
            )),
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => return Err(ManifestError::Schema1),
            other => return Err(ManifestError::UnsupportedMediaType(other.to_string())),
        };
        let digest = Digester::sha256().finish_with(&raw);
        Ok(Manifest {
            digest,
            media_type,
            raw,
            content,
        })
    }

    /// True for an index or manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self.content, ManifestContent::Index(_))
    }
}

/// Decides the media type: a specific `Content-Type` wins; a generic one
/// (`application/json`, `text/plain`, none) defers to the document.
fn media_type_of(raw: &[u8], content_type: Option<&str>) -> Result<String, ManifestError> {
    let declared = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|ct| ct.starts_with("application/vnd."));
    if let Some(ct) = declared {
        return Ok(ct);
    }
    let probe: Probe = serde_json::from_slice(raw).map_err(|source| ManifestError::Malformed {
        kind: "unknown",
        source,
    })?;
    if probe.schema_version == Some(1) {
        return Err(ManifestError::Schema1);
    }
    if let Some(mt) = probe.media_type {
        return Ok(mt);
    }
    // OCI allows an absent mediaType; the shape tells index from manifest.
    match (probe.manifests.is_some(), probe.config.is_some()) {
        (true, false) => Ok(OCI_INDEX.to_string()),
        (false, true) => Ok(OCI_MANIFEST.to_string()),
        _ => Err(ManifestError::UnsupportedMediaType("<none>".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
      "config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,
        "digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
      "layers":[]}"#;

    #[test]
    fn digest_is_over_raw_bytes() {
        let m = Manifest::from_bytes(Bytes::from_static(IMAGE.as_bytes()), None).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);
        assert_eq!(m.digest, Digester::sha256().finish_with(IMAGE.as_bytes()));
        assert!(!m.is_index());
    }

    #[test]
    fn index_without_media_type_is_recognised_by_shape() {
        let raw = r#"{"schemaVersion":2,"manifests":[]}"#;
        let m = Manifest::from_bytes(Bytes::from_static(raw.as_bytes()), Some("application/json"));
        assert!(m.unwrap().is_index());
    }

    #[test]
    fn schema1_is_refused_by_content_type_and_by_body() {
        let raw = Bytes::from_static(br#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#);
        let by_type = Manifest::from_bytes(raw.clone(), Some(DOCKER_SCHEMA1_SIGNED)).unwrap_err();
        assert!(matches!(by_type, ManifestError::Schema1));
        let by_body = Manifest::from_bytes(raw, Some("application/json")).unwrap_err();
        assert!(by_body.to_string().contains("schema 1"));
    }

    #[test]
    fn garbage_is_a_malformed_error() {
        let err = Manifest::from_bytes(Bytes::from_static(b"<html>"), Some(OCI_MANIFEST));
        assert!(
            err.unwrap_err()
                .to_string()
                .starts_with("malformed image manifest")
        );
    }
}
