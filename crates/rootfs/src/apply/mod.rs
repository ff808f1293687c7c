//! Applying one layer tar stream to a directory.

mod applier;
mod create;
mod data;
mod footprint;
mod lower;
mod meta;
mod numeric;
mod resolve;
pub(crate) mod root;
mod whiteout;

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use basic_escape::escape;

use crate::compression::{self, Compression, CompressionError};
use crate::reader::{self, ChannelReader, ReadState, StreamError};
use crate::sys::{self, AsFdRef};
pub use footprint::{Footprint, LowerDependency, Settled};
use lower::Lowers;
use meta::{Meta, PaxSparse};
use root::{Dir, Root};

/// Prefix of a whiteout name (`.wh.NAME` hides `NAME` of lower layers).
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the opaque-directory marker (hides the lower layers' contents
/// of the directory holding it).
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The xattr overlayfs reads to treat a directory as opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Errors applying a layer. Messages name the tar member (or the path) concerned,
/// escaped: member names are the layer author's text, not ours to print raw.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// An operation on the target directory as a whole (or a lower layer
    /// directory) failed.
    #[error("cannot {op} {}", path.display())]
    Target {
        /// What was being done.
        op: &'static str,
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The compression could not be settled.
    #[error("cannot recognise the layer's compression")]
    Compression(#[from] CompressionError),
    /// The caller's reader failed.
    #[error("cannot read the layer stream")]
    Read(#[source] io::Error),
    /// The decompressor rejected the stream: corrupt, truncated, or trailing garbage.
    #[error("cannot decompress the {compression} layer stream (corrupt or truncated)")]
    Decompress {
        /// The compression in use.
        compression: Compression,
        /// The decoder's complaint.
        #[source]
        source: io::Error,
    },
    /// The tar stream ended before its end-of-archive marker.
    #[error(
        "layer tar stream is truncated after {offset} bytes (last member `{}`)",
        escape(last_member)
    )]
    Truncated {
        /// Bytes of tar read.
        offset: u64,
        /// The last member seen, empty when none was.
        last_member: String,
    },
    /// A tar header could not be parsed.
    #[error(
        "malformed tar header at offset {offset} (after member `{}`)",
        escape(last_member)
    )]
    Tar {
        /// Offset of the bytes read when the parser failed.
        offset: u64,
        /// The last member seen, empty when none was.
        last_member: String,
        /// The parser's complaint.
        #[source]
        source: io::Error,
    },
    /// One of the [`Limits`] was exceeded.
    #[error("layer exceeds the limit of {limit} {what}{}", member.as_ref().map(|m| format!(" at member `{}`", escape(m))).unwrap_or_default())]
    Limit {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: u64,
        /// The member that crossed it, when known.
        member: Option<String>,
    },
    /// A member is malformed or of an unsupported kind.
    #[error("member `{}`: {}", escape(member), escape(reason))]
    InvalidMember {
        /// The member's name.
        member: String,
        /// What is wrong.
        reason: String,
    },
    /// A member tried to reach outside the target directory.
    #[error(
        "member `{}` would escape the target directory: {}",
        escape(member),
        escape(reason)
    )]
    Escape {
        /// The member's name.
        member: String,
        /// How.
        reason: String,
    },
    /// A hard link's target does not exist (in this layer, or below it when flattening).
    #[error(
        "member `{}`: hard link target `{}` does not exist in the layer",
        escape(member),
        escape(target)
    )]
    LinkTarget {
        /// The link member.
        member: String,
        /// The target it names.
        target: String,
        /// The failed lookup.
        #[source]
        source: io::Error,
    },
    /// A filesystem operation for a member failed.
    #[error("member `{}`: cannot {op}", escape(member))]
    Fs {
        /// The member's name (or the path, for work not tied to one member).
        member: String,
        /// What was being done.
        op: &'static str,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// The decompressing thread panicked.
    #[error("the layer decompression thread panicked")]
    Panicked,
}

/// How whiteouts are represented in the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// The layer goes into its own (normally empty) directory, in the form
    /// overlayfs reads as a lower layer: `.wh.NAME` becomes a 0/0 character
    /// device `NAME`, `.wh..wh..opq` becomes the `trusted.overlay.opaque=y`
    /// xattr on its directory.
    Overlay,
    /// The layer is applied on top of the directory holding the layers
    /// below it: whiteouts delete what they name, an opaque marker deletes
    /// the directory's lower contents, and hard links may point at files of
    /// lower layers.
    Flatten,
}

/// Bounds on what a layer may ask for, so hostile input fails early.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Limits {
    /// Uncompressed tar bytes (also bounds the logical size of sparse files).
    pub max_bytes: u64,
    /// Members in one layer.
    pub max_entries: u64,
    /// Length of a member name or link target, in bytes.
    pub max_path_len: usize,
    /// Size of one xattr value (Linux allows 64 KiB).
    pub max_xattr_size: usize,
    /// Bytes of headers (PAX records, GNU long names, sparse maps) for one member.
    pub max_header_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 << 30,
            max_entries: 4_000_000,
            max_path_len: 4096,
            max_xattr_size: 64 << 10,
            max_header_bytes: 1 << 20,
        }
    }
}

impl Limits {
    /// Set [`Limits::max_bytes`].
    pub fn max_bytes(mut self, v: u64) -> Self {
        self.max_bytes = v;
        self
    }
    /// Set [`Limits::max_entries`].
    pub fn max_entries(mut self, v: u64) -> Self {
        self.max_entries = v;
        self
    }
    /// Set [`Limits::max_path_len`].
    pub fn max_path_len(mut self, v: usize) -> Self {
        self.max_path_len = v;
        self
    }
    /// Set [`Limits::max_xattr_size`].
    pub fn max_xattr_size(mut self, v: usize) -> Self {
        self.max_xattr_size = v;
        self
    }
    /// Set [`Limits::max_header_bytes`].
    pub fn max_header_bytes(mut self, v: u64) -> Self {
        self.max_header_bytes = v;
        self
    }
}

/// How to apply a layer.
#[derive(Clone, Debug)]
pub struct ApplyOptions {
    mode: ApplyMode,
    media_type: Option<String>,
    limits: Limits,
    preserve_ownership: bool,
    lower_layers: Vec<PathBuf>,
    sync: bool,
    allow_unterminated: bool,
    whiteouts: bool,
    no_overwrite_dir_non_dir: bool,
    device_nodes: bool,
    owner: Option<(u32, u32)>,
    root_metadata: bool,
    footprint: bool,
}

impl ApplyOptions {
    /// Options for `mode` with default limits, compression from magic bytes,
    /// and ownership preserved.
    pub fn new(mode: ApplyMode) -> Self {
        ApplyOptions {
            mode,
            media_type: None,
            limits: Limits::default(),
            preserve_ownership: true,
            lower_layers: Vec::new(),
            sync: false,
            allow_unterminated: false,
            whiteouts: true,
            no_overwrite_dir_non_dir: false,
            device_nodes: true,
            owner: None,
            root_metadata: true,
            footprint: false,
        }
    }

    /// Options for extracting a plain archive into an existing directory, as
    /// `docker cp` does (Go's `archive.Untar`): [`ApplyMode::Flatten`],
    /// `.wh.` names taken as ordinary names, and the archive's `.` member not
    /// changing the directory's own owner, mode or times.
    pub fn untar() -> Self {
        let mut options = ApplyOptions::new(ApplyMode::Flatten);
        options.whiteouts = false;
        options.root_metadata = false;
        options
    }

    /// Whether `.wh.NAME` members are whiteouts (default `true`, as in a
    /// layer); `false` makes them files like any other.
    pub fn whiteouts(mut self, whiteouts: bool) -> Self {
        self.whiteouts = whiteouts;
        self
    }

    /// Refuse to replace a directory with a non-directory, or a
    /// non-directory with a directory (docker's `NoOverwriteDirNonDir`;
    /// default `false`: what is there is replaced, as a layer replaces it).
    pub fn no_overwrite_dir_non_dir(mut self, refuse: bool) -> Self {
        self.no_overwrite_dir_non_dir = refuse;
        self
    }

    /// Whether character and block device members are created (default
    /// `true`). When `false` they are skipped with a warning: for archives
    /// from an untrusted source unpacked on a host, where a device node
    /// readable by others would open the device to them.
    pub fn device_nodes(mut self, create: bool) -> Self {
        self.device_nodes = create;
        self
    }

    /// Give every entry this owner (uid, gid) instead of the archive's
    /// (docker's `copyUIDGID` with a container user). Needs root or
    /// `CAP_CHOWN`; ignored without [`ApplyOptions::preserve_ownership`].
    pub fn owner(mut self, owner: Option<(u32, u32)>) -> Self {
        self.owner = owner;
        self
    }

    /// Whether a member naming the target directory itself (`./`) sets its
    /// owner, mode, xattrs and times (default `true`).
    pub fn root_metadata(mut self, set: bool) -> Self {
        self.root_metadata = set;
        self
    }

    /// The layer's media type, from the manifest. Magic bytes still decide
    /// the compression (mislabelled layers exist); the media type rejects
    /// layer formats that cannot be applied (e.g. encrypted ones).
    pub fn media_type(mut self, media_type: impl Into<String>) -> Self {
        self.media_type = Some(media_type.into());
        self
    }

    /// Replace the [`Limits`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Whether to set the owner recorded in the tar (default `true`; needs
    /// root or `CAP_CHOWN`). When `false`, files belong to the caller.
    pub fn preserve_ownership(mut self, preserve: bool) -> Self {
        self.preserve_ownership = preserve;
        self
    }

    /// Overlay mode: the directories of the layers below this one
    /// (bottom-most first, in overlay form). With them, the layer is
    /// applied as onto the merged view, like containerd's applier: a hard
    /// link to a lower file copies that file up into this layer first, and a
    /// directory this layer needs but has no member for takes the owner,
    /// mode, xattrs and times of the lower directory instead of root:root
    /// 0755. Ignored in flatten mode, where the lower layers are the target.
    pub fn lower_layers(mut self, layers: Vec<PathBuf>) -> Self {
        self.lower_layers = layers;
        self
    }

    /// Overlay mode without lower layers: record the layer's [`Footprint`]
    /// in [`LayerStats::footprint`] (default `false`), so that once the
    /// layers below are in place, [`Footprint::settle`] tells
    /// whether they would have changed this layer, and settles it where
    /// that is cheap. Layers can then be
    /// applied in parallel, and again with [`ApplyOptions::lower_layers`]
    /// only where it matters (containerd and umoci apply each layer onto
    /// the ones below it). A hard link to a file the layer does not hold is
    /// then not an error but part of the footprint (the link is not made).
    pub fn footprint(mut self, record: bool) -> Self {
        self.footprint = record;
        self
    }

    /// Flush the target's filesystem (`syncfs`) before returning success
    /// (default `false`), so a caller that renames the extracted directory
    /// into place never publishes a layer a crash could leave half-written.
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Accept a tar that stops right after a member's data, or at a header
    /// boundary, without end-of-archive blocks (default `false`: that is
    /// reported as [`ApplyError::Truncated`]). Go's `archive/tar`, which
    /// docker, containerd and umoci use, reads such an archive as complete,
    /// and `umoci insert` writes layers that end this way. Turn it on only
    /// where the bytes are pinned by a digest (an image's `diff_id`), since a
    /// stream cut at a member boundary then looks complete. A cut inside a
    /// header, inside data or inside padding stays an error either way.
    pub fn allow_unterminated(mut self, allow: bool) -> Self {
        self.allow_unterminated = allow;
        self
    }

    /// The mode.
    pub fn mode(&self) -> ApplyMode {
        self.mode
    }
}

/// What applying a layer did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerStats {
    /// `sha256:<hex>` of the uncompressed tar stream, every byte of it:
    /// compare with the image config's `rootfs.diff_ids`.
    pub diff_id: String,
    /// Length of the uncompressed tar stream.
    pub tar_bytes: u64,
    /// The compression found.
    pub compression: Option<Compression>,
    /// Members read (including whiteouts and PAX global headers).
    pub entries: u64,
    /// Regular files written.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links.
    pub hardlinks: u64,
    /// Character and block devices and FIFOs.
    pub special: u64,
    /// Whiteouts and opaque markers.
    pub whiteouts: u64,
    /// Bytes of file content written (logical size for sparse files).
    pub file_bytes: u64,
    /// With [`ApplyOptions::footprint`]: what the layer relied on.
    pub footprint: Option<Footprint>,
}

/// Apply the layer tar stream `reader` (gzip, zstd or plain) to the
/// directory `target`, which must exist.
///
/// Decompression and hashing run on a helper thread while this one creates
/// files. The whole stream is consumed, padding included, so
/// [`LayerStats::diff_id`] is the digest of every byte. Nothing is written
/// outside `target`: names, symlinks and hard link targets are resolved
/// inside it. On error the directory holds part of the layer; callers
/// extract into a temporary directory and rename it when done.
pub fn apply_layer<R: Read + Send>(
    reader: R,
    target: &Path,
    options: &ApplyOptions,
) -> Result<LayerStats, ApplyError> {
    let root_fd = open_target(target)?;
    let (compression, peeked) = compression::detect(reader, options.media_type.as_deref())
        .map_err(|e| match e {
            CompressionError::Peek(e) => ApplyError::Read(e),
            e => ApplyError::Compression(e),
        })?;
    let (tagged, input_failed) = reader::tag(peeked);
    let input = BufReader::with_capacity(256 << 10, tagged);
    let decoder = compression::decoder(input, compression).map_err(|e| ApplyError::Decompress {
        compression,
        source: e,
    })?;
    let max_bytes = options.limits.max_bytes;
    let (tx, rx) = reader::channel();
    // Hash on whichever thread has less to do: the parser's when the
    // other one decompresses.
    let hash_in_producer = compression == Compression::None;
    std::thread::scope(|s| {
        let producer = s
            .spawn(move || reader::produce(decoder, input_failed, max_bytes, hash_in_producer, tx));
        let state = ReadState::new();
        if !hash_in_producer {
            *state.hasher.borrow_mut() = Some(sha2::Sha256::default());
        }
        let chan = ChannelReader::new(rx, state.clone());
        let result = Applier::new(target, root_fd, options, state.clone(), compression)
            .and_then(|applier| applier.run(chan));
        let produced = producer.join().map_err(|_| ApplyError::Panicked)?;
        let mut stats = result?;
        let produced = produced.ok_or(ApplyError::Panicked)?;
        let digest = produced
            .digest
            .or_else(|| state.digest())
            .ok_or(ApplyError::Panicked)?;
        stats.diff_id = format!("sha256:{}", hex::encode(digest));
        stats.tar_bytes = produced.bytes;
        stats.compression = Some(compression);
        Ok(stats)
    })
}

fn open_target(target: &Path) -> Result<OwnedFd, ApplyError> {
    let c = CString::new(target.as_os_str().as_bytes()).map_err(|_| ApplyError::Target {
        op: "open the target directory",
        path: target.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "path holds NUL"),
    })?;
    sys::openat(
        // The target itself is the caller's to trust; AT_FDCWD resolves it.
        // SAFETY: AT_FDCWD is a valid "directory fd" for *at calls.
        unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) },
        &c,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
    .map_err(|e| ApplyError::Target {
        op: "open the target directory",
        path: target.to_owned(),
        source: e,
    })
}

/// The per-layer state of an extraction.
struct Applier<'o> {
    target: PathBuf,
    root: Root,
    opts: &'o ApplyOptions,
    state: Rc<ReadState>,
    compression: Compression,
    umask: u32,
    /// Paths this layer created (and their ancestors): whiteouts and opaque
    /// markers never hide the layer's own entries.
    layer_paths: HashSet<Vec<u8>>,
    /// Overlay mode: paths this layer whited out; a directory created there
    /// later in the layer must be opaque.
    whiteouts: HashSet<Vec<u8>>,
    /// Directory times, restored once everything below them is written.
    dir_times: Vec<(Vec<u8>, [libc::timespec; 2])>,
    stats: LayerStats,
    buf: Vec<u8>,
    last_member: String,
    /// Overlay mode: the layers below, when given.
    lowers: Option<Lowers>,
    /// Overlay mode with lower layers: merged-view resolutions of parent
    /// paths, dropped whenever this layer removes or adds a symlink, a
    /// whiteout or an opaque marker.
    resolved: std::collections::HashMap<Vec<u8>, Vec<u8>>,
    /// With [`ApplyOptions::footprint`].
    footprint: Option<footprint::Recorder>,
}

/// `dir/name`, or `name` at the root.
fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// A member's name in messages.
fn display(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

fn overlay_opaque() -> CString {
    crate::overlay_xattr::opaque().to_owned()
}

/// Xattrs a layer may not set: overlayfs' own (`trusted.overlay.*`, or
/// `user.overlay.*` in rootless mode, could redirect lookups or fake
/// whiteouts) and fuse-overlayfs' (`user.fuseoverlayfs.*`), ACLs, which are not carried as `SCHILY.xattr` by the tools
/// that write layers, and in a user namespace `trusted.*`, which only the
/// host's root may set.
fn skip_xattr(key: &CStr) -> bool {
    let k = key.to_bytes();
    let host_only = k.starts_with(b"trusted.") && crate::overlay_xattr::in_user_namespace();
    if crate::overlay_xattr::is_overlay_key(k) || k.starts_with(b"system.") || host_only {
        tracing::debug!(xattr = ?key, "ignoring xattr from layer");
        return true;
    }
    false
}
