//! What the store tells its callers about images and layers.

use basic_registry::Reference;
use serde::Serialize;

/// One image, as `images` and `inspect` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRecord {
    /// The image id: the digest of its config.
    pub id: String,
    /// Familiar `repo:tag` names pointing at it.
    pub repo_tags: Vec<String>,
    /// Familiar `repo@digest` names pointing at it.
    pub repo_digests: Vec<String>,
    /// Creation time from the config (RFC 3339), when it has one.
    pub created: Option<String>,
    /// Bytes of the layers' files.
    pub size: u64,
    /// CPU architecture from the config.
    pub architecture: Option<String>,
    /// Operating system from the config.
    pub os: Option<String>,
    /// Digest of the image manifest it was stored from.
    pub manifest_digest: String,
    /// Media type of that manifest.
    pub manifest_media_type: String,
    /// When this store first recorded it (unix seconds).
    pub added: i64,
    /// Its layers, bottom first.
    pub layers: Vec<LayerRecord>,
    /// The image it was made from (a build's previous step), when it was made here.
    pub parent: Option<String>,
    /// How many images of the store were made from it.
    pub children: usize,
}

impl ImageRecord {
    /// Whether it is an intermediate image: one without a name that other images
    /// were made from (a build step's image). docker's `images` hides those unless
    /// asked for all (`-a`).
    pub fn is_intermediate(&self) -> bool {
        self.children > 0 && self.repo_tags.is_empty() && self.repo_digests.is_empty()
    }
}

/// An image's layers as one overlay mount can stack them: see
/// [`ImageStore::stackable_layer_paths`](crate::ImageStore::stackable_layer_paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStack {
    /// The directories to stack, bottom-most first.
    pub paths: Vec<std::path::PathBuf>,
    /// Set when the image's bottom layers stand merged in `paths[0]`.
    pub merged: Option<MergedLayers>,
}

/// The bottom layers of an image merged into one directory, because the image has more
/// layers than one overlay mount stacks. The merge is kept with the layer whose chain ID
/// covers them (`layers/<chain-id>/merged`), so it is made once, shared by every image
/// with the same bottom layers, and removed with that layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergedLayers {
    /// How many bottom layers were merged.
    pub merged: usize,
    /// How many layers the image has.
    pub layers: usize,
    /// The most one mount stacks.
    pub max: usize,
    /// The chain ID of the top-most merged layer: what the merge is kept under.
    pub chain_id: String,
    /// Whether this call made the merge (it took a while), rather than finding it made.
    pub made_now: bool,
}

impl std::fmt::Display for MergedLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the image has {} layers, more than overlayfs stacks in one mount ({}): its bottom \
             {} layers {} one directory, kept with the image for its next containers",
            self.layers,
            self.max,
            self.merged,
            if self.made_now {
                "were merged into"
            } else {
                "stand merged in"
            }
        )
    }
}

/// One extracted layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LayerRecord {
    /// Chain ID: names the layer with everything below it; its directory's name.
    pub chain_id: String,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Chain ID of the layer below, if any.
    pub parent: Option<String>,
    /// Digest of the compressed blob it was extracted from.
    pub blob_digest: Option<String>,
    /// That blob's media type.
    pub media_type: Option<String>,
    /// That blob's size.
    pub compressed_size: Option<u64>,
    /// Bytes of the layer's files.
    pub size: u64,
}

/// One step of a removal, in docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// A tag or repo digest was removed (`Untagged: busybox:latest`).
    Untagged(String),
    /// An image or layer was deleted (`Deleted: sha256:…`).
    Deleted(String),
}

/// What the store holds, for `system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// Images recorded.
    pub images: usize,
    /// Images without a tag.
    pub dangling_images: usize,
    /// Sum of the images' sizes (shared layers counted once per image).
    pub images_size: u64,
    /// Layers recorded.
    pub layers: usize,
    /// Sum of the layers' sizes (each layer once).
    pub layers_size: u64,
    /// Layers no image refers to.
    pub unused_layers_size: u64,
    /// Blob files.
    pub blobs: usize,
    /// Their bytes.
    pub blobs_size: u64,
}

/// The familiar repository name of `reference`, without tag or digest
/// (`busybox`, `127.0.0.1:5000/a/b`).
pub(crate) fn repo_name(reference: &Reference) -> String {
    let mut name = reference.familiar();
    if let Some(digest) = reference.digest() {
        name.truncate(name.len() - digest.len() - 1);
    }
    if let Some(tag) = reference.tag() {
        name.truncate(name.len() - tag.len() - 1);
    }
    name
}

/// What kind of user holds an image's layers in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HolderKind {
    /// A container whose root is an overlay of the image's layers; its id is the
    /// container id.
    Container,
    /// An `image mount` view; its id is the image id.
    Mount,
}

impl HolderKind {
    /// The word stored in the database and shown in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Container => "container",
            HolderKind::Mount => "mount",
        }
    }

    pub(crate) fn parse(word: &str) -> Option<Self> {
        match word {
            "container" => Some(HolderKind::Container),
            "mount" => Some(HolderKind::Mount),
            _ => None,
        }
    }
}

impl std::fmt::Display for HolderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One container or mount using an image (see [`crate::ImageStore::hold`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// Container or mount.
    pub kind: HolderKind,
    /// The container id, or the image id for a mount.
    pub id: String,
    /// The image held.
    pub image_id: String,
}
