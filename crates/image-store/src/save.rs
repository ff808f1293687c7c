//! `save`: images as a `docker save` archive in docker ≥ 25's layout, which is
//! an OCI layout too (`blobs/sha256/…`, `index.json`, `oci-layout`) plus the
//! `manifest.json` every docker since 1.10 reads.
//!
//! Layers go out as the compressed blobs the store keeps (docker's own save
//! writes plain tars; `docker load`, skopeo and our `load` all recognise the
//! compression by its magic). A layer's blob may be absent when its chain ID
//! was extracted from another image's identical-content blob (same diff ID,
//! other compression): that blob is written instead, which the config's
//! diff IDs still vouch for.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};

use basic_registry::{Manifest, ManifestContent, Reference};
use serde_json::json;

use crate::digest::hex_of;
use crate::error::StoreError;
use crate::record::ImageRecord;
use crate::store::ImageStore;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Why a save failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// An image could not be found or read.
    #[error("saving {image}")]
    Store {
        /// The name given.
        image: String,
        /// The store's error.
        #[source]
        source: Box<StoreError>,
    },
    /// No blob of a layer is in the store.
    #[error(
        "saving {image}: no blob of layer {chain_id} is in the store (wanted {digest}); \
         remove the image and pull it again"
    )]
    MissingLayerBlob {
        /// The name given.
        image: String,
        /// The layer's chain ID.
        chain_id: String,
        /// The blob its manifest names.
        digest: String,
    },
    /// Writing the archive failed.
    #[error("writing the archive (member {member})")]
    Write {
        /// The member being written.
        member: String,
        /// The system error.
        #[source]
        source: io::Error,
    },
}

/// One image's part of the archive.
struct Planned {
    config: String,
    /// Blob digest and size of each layer, bottom first.
    layers: Vec<(String, u64)>,
    tags: Vec<String>,
}

/// Writes the images `names` (tags, digests or ids) as one archive to `out`.
pub fn save(store: &ImageStore, names: &[String], out: impl Write) -> Result<(), SaveError> {
    let mut planned: Vec<Planned> = Vec::new();
    for name in names {
        let p = plan(store, name)?;
        // As docker: one entry per image, carrying every tag asked for.
        match planned.iter_mut().find(|q| q.config == p.config) {
            Some(q) => {
                for tag in p.tags {
                    if !q.tags.contains(&tag) {
                        q.tags.push(tag);
                    }
                }
            }
            None => planned.push(p),
        }
    }
    let mut tar = tar::Builder::new(out);
    let mut written = HashSet::new();
    let mut index = Vec::new();
    let mut manifest_json = Vec::new();
    for p in &planned {
        for digest in std::iter::once(&p.config).chain(p.layers.iter().map(|l| &l.0)) {
            if written.insert(digest.clone()) {
                append_blob(store, &mut tar, digest)?;
            }
        }
        let manifest = oci_manifest(store, p)?;
        let digest = crate::digest::sha256_of(manifest.as_bytes());
        if written.insert(digest.clone()) {
            append_bytes(&mut tar, &blob_member(&digest), manifest.as_bytes())?;
        }
        index.push(index_entry(&digest, manifest.len(), p.tags.first()));
        manifest_json.push(json!({
            "Config": blob_member(&p.config),
            "RepoTags": p.tags,
            "Layers": p.layers.iter().map(|l| blob_member(&l.0)).collect::<Vec<_>>(),
        }));
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index});
    append_bytes(&mut tar, "index.json", index.to_string().as_bytes())?;
    append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let list = serde_json::Value::Array(manifest_json).to_string();
    append_bytes(&mut tar, "manifest.json", list.as_bytes())?;
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|source| SaveError::Write {
            member: "the end of the archive".to_string(),
            source,
        })
}

fn plan(store: &ImageStore, name: &str) -> Result<Planned, SaveError> {
    let store_err = |e| SaveError::Store {
        image: name.to_string(),
        source: Box::new(e),
    };
    let record = store.resolve(name).map_err(store_err)?;
    let manifest_layers = manifest_layers(store, &record);
    let mut layers = Vec::new();
    for (i, layer) in record.layers.iter().enumerate() {
        let wanted = manifest_layers.get(i).cloned();
        let found = wanted
            .iter()
            .chain(layer.blob_digest.iter())
            .find(|d| store.has_blob(d))
            .cloned()
            .ok_or_else(|| SaveError::MissingLayerBlob {
                image: name.to_string(),
                chain_id: layer.chain_id.clone(),
                digest: wanted.or(layer.blob_digest.clone()).unwrap_or_default(),
            })?;
        let size = store
            .blob_path(&found)
            .ok()
            .and_then(|p| fs::metadata(p).ok())
            .map_or(0, |m| m.len());
        layers.push((found, size));
    }
    // As docker: a tag given names the image in the archive; an id does not.
    let tags = Reference::parse(name)
        .ok()
        .map(|r| r.familiar())
        .filter(|t| record.repo_tags.contains(t))
        .into_iter()
        .collect();
    Ok(Planned {
        config: record.id,
        layers,
        tags,
    })
}

/// The layer digests the image's own manifest lists.
fn manifest_layers(store: &ImageStore, record: &ImageRecord) -> Vec<String> {
    let raw = match store.read_blob(&record.manifest_digest) {
        Ok(raw) => raw,
        Err(_) => return Vec::new(),
    };
    match Manifest::from_bytes(raw.into(), Some(&record.manifest_media_type)) {
        Ok(Manifest {
            content: ManifestContent::Image(image),
            ..
        }) => image
            .layers()
            .iter()
            .map(|l| l.digest().to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// An OCI manifest for exactly the blobs written, so the archive is
/// self-consistent whichever blob stood in for a layer.
fn oci_manifest(store: &ImageStore, p: &Planned) -> Result<String, SaveError> {
    let config_size = store
        .blob_path(&p.config)
        .ok()
        .and_then(|path| fs::metadata(path).ok())
        .map_or(0, |m| m.len());
    let mut layers = Vec::new();
    for (digest, size) in &p.layers {
        let media_type = oci_layer_type(store, digest)?;
        layers.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
    }
    Ok(json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": p.config, "size": config_size},
        "layers": layers,
    })
    .to_string())
}

/// The OCI media type of a layer blob: its magic bytes decide, since a blob
/// standing in for another may be compressed differently.
fn oci_layer_type(store: &ImageStore, digest: &str) -> Result<String, SaveError> {
    let mut head = [0u8; 4];
    let path = store.blob_path(digest).map_err(|e| SaveError::Store {
        image: digest.to_string(),
        source: Box::new(e),
    })?;
    let n = fs::File::open(&path)
        .and_then(|mut f| io::Read::read(&mut f, &mut head))
        .map_err(|source| SaveError::Write {
            member: blob_member(digest),
            source,
        })?;
    Ok(match &head[..n] {
        [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip".to_string(),
        [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd".to_string(),
        // Neither magic: a plain tar, whatever it was declared as.
        _ => "application/vnd.oci.image.layer.v1.tar".to_string(),
    })
}

fn index_entry(digest: &str, size: usize, tag: Option<&String>) -> serde_json::Value {
    let mut entry = json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size});
    if let Some(tag) = tag {
        let short = tag.rsplit_once(':').map_or("latest", |(_, t)| t);
        entry["annotations"] = json!({
            "io.containerd.image.name": full_name(tag),
            "org.opencontainers.image.ref.name": short,
        });
    }
    entry
}

/// containerd's annotation holds the fully qualified name.
fn full_name(tag: &str) -> String {
    Reference::parse(tag).map_or_else(|_| tag.to_string(), |r| r.to_string())
}

fn blob_member(digest: &str) -> String {
    format!(
        "blobs/sha256/{}",
        digest.strip_prefix("sha256:").unwrap_or(digest)
    )
}

fn append_blob<W: Write>(
    store: &ImageStore,
    tar: &mut tar::Builder<W>,
    digest: &str,
) -> Result<(), SaveError> {
    let member = blob_member(digest);
    let write_err = |source| SaveError::Write {
        member: member.clone(),
        source,
    };
    let path = store
        .blob_path(digest)
        .map_err(|e| write_err(io::Error::other(e.to_string())))?;
    hex_of(digest).map_err(|e| write_err(io::Error::other(e.to_string())))?;
    let mut file = fs::File::open(&path).map_err(write_err)?;
    let size = file.metadata().map_err(write_err)?.len();
    tar.append_data(&mut header(size), &member, &mut file)
        .map_err(write_err)
}

fn append_bytes<W: Write>(
    tar: &mut tar::Builder<W>,
    member: &str,
    bytes: &[u8],
) -> Result<(), SaveError> {
    let mut h = header(bytes.len() as u64);
    tar.append_data(&mut h, member, bytes)
        .map_err(|source| SaveError::Write {
            member: member.to_string(),
            source,
        })
}

/// Fixed metadata, so that saving the same images twice gives the same bytes. Every
/// numeric field is written, owner and device numbers included: a field left as NUL
/// bytes is 0 to GNU tar, but an error to stricter readers.
fn header(size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o444);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    // A ustar header always has the device fields.
    let _ = h.set_device_major(0);
    let _ = h.set_device_minor(0);
    h
}
