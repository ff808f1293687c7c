//! Applying one layer tar stream to a directory.

mod lower;
mod meta;
pub(crate) mod root;

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::compression::{self, Compression, CompressionError};
use crate::reader::{self, ChannelReader, ReadState, StreamError};
use crate::sys::{self, AsFdRef};
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

/// Errors applying a layer. Messages name the tar member (or the path) concerned.
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
    #[error("layer tar stream is truncated after {offset} bytes (last member `{last_member}`)")]
    Truncated {
        /// Bytes of tar read.
        offset: u64,
        /// The last member seen, empty when none was.
        last_member: String,
    },
    /// A tar header could not be parsed.
    #[error("malformed tar header at offset {offset} (after member `{last_member}`)")]
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
    #[error("layer exceeds the limit of {limit} {what}{}", member.as_ref().map(|m| format!(" at member `{m}`")).unwrap_or_default())]
    Limit {
        /// Which limit.
        what: &'static str,
        /// Its value.
        limit: u64,
        /// The member that crossed it, when known.
        member: Option<String>,
    },
    /// A member is malformed or of an unsupported kind.
    #[error("member `{member}`: {reason}")]
    InvalidMember {
        /// The member's name.
        member: String,
        /// What is wrong.
        reason: String,
    },
    /// A member tried to reach outside the target directory.
    #[error("member `{member}` would escape the target directory: {reason}")]
    Escape {
        /// The member's name.
        member: String,
        /// How.
        reason: String,
    },
    /// A hard link's target does not exist (in this layer, or below it when flattening).
    #[error("member `{member}`: hard link target `{target}` does not exist in the layer")]
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
    #[error("member `{member}`: cannot {op}")]
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
        }
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

impl<'o> Applier<'o> {
    fn new(
        target: &Path,
        root_fd: OwnedFd,
        opts: &'o ApplyOptions,
        state: Rc<ReadState>,
        compression: Compression,
    ) -> Result<Self, ApplyError> {
        let root = Root::new(root_fd).map_err(|e| ApplyError::Target {
            op: "stat the target directory",
            path: target.to_owned(),
            source: e,
        })?;
        let lowers = if opts.mode == ApplyMode::Overlay && !opts.lower_layers.is_empty() {
            Some(
                Lowers::open(&opts.lower_layers).map_err(|(path, e)| ApplyError::Target {
                    op: "open the lower layer",
                    path,
                    source: e,
                })?,
            )
        } else {
            None
        };
        Ok(Applier {
            target: target.to_owned(),
            root,
            opts,
            state,
            compression,
            umask: sys::current_umask(),
            layer_paths: HashSet::new(),
            whiteouts: HashSet::new(),
            dir_times: Vec::new(),
            stats: LayerStats::default(),
            buf: vec![0u8; 256 << 10],
            last_member: String::new(),
            lowers,
            resolved: std::collections::HashMap::new(),
        })
    }

    /// With [`ApplyOptions::allow_unterminated`]: whether the stream ended
    /// cleanly at the end of a member (after its data, or after its padding)
    /// rather than inside one. Never for an empty stream or a failed one.
    fn unterminated_end_accepted(&self, data_end: u64) -> bool {
        let pos = self.state.pos.get();
        let padded = data_end.div_ceil(512) * 512;
        self.opts.allow_unterminated
            && self.stats.entries > 0
            && self.state.eof.get()
            && self.state.error.borrow().is_none()
            && (pos == data_end || pos == padded)
    }

    /// Turn an error of the tar parser or of reading member data into the
    /// most precise [`ApplyError`].
    fn stream_error(&self, e: io::Error) -> ApplyError {
        let offset = self.state.pos.get();
        match self.state.take_error() {
            Some(StreamError::Input(e)) => ApplyError::Read(e),
            Some(StreamError::Decompress(e)) => ApplyError::Decompress {
                compression: self.compression,
                source: e,
            },
            Some(StreamError::TooLarge(limit)) => ApplyError::Limit {
                what: "uncompressed bytes",
                limit,
                member: Some(self.last_member.clone()),
            },
            Some(StreamError::HeaderTooLarge(limit)) => ApplyError::Limit {
                what: "header bytes for one member",
                limit,
                member: Some(self.last_member.clone()),
            },
            None if self.state.eof.get() => ApplyError::Truncated {
                offset,
                last_member: self.last_member.clone(),
            },
            None => ApplyError::Tar {
                offset,
                last_member: self.last_member.clone(),
                source: e,
            },
        }
    }

    fn run(mut self, chan: ChannelReader) -> Result<LayerStats, ApplyError> {
        let mut archive = tar::Archive::new(chan);
        // Where the last member's data ended: an unterminated archive may stop
        // there or after that member's padding, and nowhere else.
        let mut data_end = 0u64;
        {
            let mut entries = archive.entries().map_err(|e| self.stream_error(e))?;
            loop {
                self.state
                    .set_window(self.opts.limits.max_header_bytes + 512);
                let entry = match entries.next() {
                    None => break,
                    Some(Ok(entry)) => entry,
                    Some(Err(_)) if self.unterminated_end_accepted(data_end) => break,
                    Some(Err(e)) => return Err(self.stream_error(e)),
                };
                self.state.set_window(u64::MAX);
                self.stats.entries += 1;
                if self.stats.entries > self.opts.limits.max_entries {
                    return Err(ApplyError::Limit {
                        what: "members",
                        limit: self.opts.limits.max_entries,
                        member: None,
                    });
                }
                let mut entry = entry;
                self.entry(&mut entry)?;
                // Whatever the member's data was, read it here so the parser's
                // skip to the next header never counts against the header window.
                io::copy(&mut entry, &mut io::sink()).map_err(|e| self.stream_error(e))?;
                data_end = self.state.pos.get();
            }
        }
        if self.state.eof.get() && !self.unterminated_end_accepted(data_end) {
            // The parser hit the end of the stream instead of an
            // end-of-archive block.
            return Err(ApplyError::Truncated {
                offset: self.state.pos.get(),
                last_member: self.last_member.clone(),
            });
        }
        // Consume the rest (the second zero block, record padding) so the
        // digest covers the whole stream and decompression errors surface.
        self.state.set_window(u64::MAX);
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| self.stream_error(e))?;
        self.restore_dir_times()?;
        if self.opts.sync {
            sys::syncfs(self.root.fd()).map_err(|e| ApplyError::Target {
                op: "sync the filesystem of",
                path: self.target.clone(),
                source: e,
            })?;
        }
        Ok(self.stats)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ApplyError> {
        let raw_path = entry.path_bytes().into_owned();
        self.last_member = display(&raw_path);
        let member = self.last_member.clone();
        if raw_path.len() > self.opts.limits.max_path_len {
            return Err(ApplyError::Limit {
                what: "bytes in a member name",
                limit: self.opts.limits.max_path_len as u64,
                member: Some(member),
            });
        }
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind == tar::EntryType::new(b'V') {
            // Global PAX records carry nothing a layer needs; volume labels
            // are not files.
            return Ok(());
        }
        let meta = meta::read_meta(entry, &member, &self.opts.limits)?;
        let path_bytes = match meta.pax_sparse.as_ref().and_then(|s| s.name.as_ref()) {
            Some(name) => name.clone(),
            None => raw_path.clone(),
        };
        let path = meta::normalize(&path_bytes).map_err(|reason| ApplyError::Escape {
            member: member.clone(),
            reason: reason.to_owned(),
        })?;
        let (parent, name) = meta::split(&path);

        // Whiteouts and opaque markers.
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            self.stats.whiteouts += 1;
            if name == OPAQUE_MARKER.as_bytes() {
                return self.opaque(parent, &member);
            }
            if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
                // Other `.wh..wh.` names are aufs metadata (e.g. `.wh..wh.plnk`).
                return Ok(());
            }
            if hidden.is_empty() {
                return Err(ApplyError::InvalidMember {
                    member,
                    reason: "whiteout without a name".to_owned(),
                });
            }
            let mut hidden_path = parent.to_vec();
            if !hidden_path.is_empty() {
                hidden_path.push(b'/');
            }
            hidden_path.extend_from_slice(hidden);
            return self.whiteout(&hidden_path, &member);
        }

        use tar::EntryType as T;
        let is_dir = kind == T::Directory
            || kind == T::new(b'D')
            || (matches!(kind, T::Regular | T::Continuous) && raw_path.ends_with(b"/"));
        if path.is_empty() {
            if !is_dir {
                return Err(ApplyError::InvalidMember {
                    member,
                    reason: "names the root directory but is not a directory".to_owned(),
                });
            }
            return self.root_dir(&meta, &member);
        }
        match kind {
            _ if is_dir => self.directory(&path, &meta, &member),
            T::Regular | T::Continuous | T::GNUSparse => {
                self.file(&path, &meta, entry, &member, kind == T::GNUSparse)
            }
            T::Link => {
                let target = self.link_target(entry, &member)?;
                self.hardlink(&path, &target, &member)
            }
            T::Symlink => {
                let target = self.link_target(entry, &member)?;
                self.symlink(&path, &target, &meta, &member)
            }
            T::Char | T::Block | T::Fifo => {
                let header = entry.header();
                let dev = match kind {
                    T::Fifo => 0,
                    _ => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        libc::makedev(major, minor)
                    }
                };
                let fmt = match kind {
                    T::Char => libc::S_IFCHR,
                    T::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                self.special(&path, fmt, dev, &meta, &member)
            }
            other => Err(ApplyError::InvalidMember {
                member,
                reason: format!("unsupported entry type {:?}", other.as_byte() as char),
            }),
        }?;
        Ok(())
    }

    fn link_target<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        member: &str,
    ) -> Result<Vec<u8>, ApplyError> {
        let target = entry
            .link_name_bytes()
            .ok_or_else(|| ApplyError::InvalidMember {
                member: member.to_owned(),
                reason: "link without a target".to_owned(),
            })?
            .into_owned();
        if target.len() > self.opts.limits.max_path_len {
            return Err(ApplyError::Limit {
                what: "bytes in a link target",
                limit: self.opts.limits.max_path_len as u64,
                member: Some(member.to_owned()),
            });
        }
        if target.is_empty() {
            return Err(ApplyError::InvalidMember {
                member: member.to_owned(),
                reason: "link with an empty target".to_owned(),
            });
        }
        Ok(target)
    }

    /// Record `path` (and its ancestors) as part of this layer.
    fn mark(&mut self, path: &[u8]) {
        if !self.layer_paths.insert(path.to_vec()) {
            return;
        }
        let mut p = path;
        while let Some(i) = p.iter().rposition(|&b| b == b'/') {
            p = &p[..i];
            if !self.layer_paths.insert(p.to_vec()) {
                break;
            }
        }
    }

    /// The parent directory of a member, created (0755) when missing.
    /// Returns the directory and its resolved path (see [`Applier::resolve`]).
    fn parent(&mut self, parent: &[u8], member: &str) -> Result<(Rc<Dir>, Vec<u8>), ApplyError> {
        let resolved = self.resolve(parent, member)?;
        let parent = resolved.as_slice();
        let mut made = Vec::new();
        let dir = self
            .root
            .dir(parent, true, &mut |p| made.push(p.to_vec()))
            .map_err(|e| ApplyError::Fs {
                member: member.to_owned(),
                op: "open the parent directory",
                source: e,
            })?;
        for p in made {
            self.mark(&p);
            self.lower_dir_meta(&p, member)?;
        }
        Ok((dir, resolved))
    }

    /// The path `path` (a member's parent) really names: every symlink on
    /// the way, of this layer or (overlay mode with lower layers) of a lower
    /// one, replaced by its target, `..` stopping at the root — what the
    /// kernel's `RESOLVE_IN_ROOT` walk finds, or applying onto the mounted
    /// overlay would. Whiteouts, opaque markers and the layer's own paths are
    /// compared on resolved paths, so a member written through a symlink
    /// counts where it landed.
    fn resolve(&mut self, path: &[u8], member: &str) -> Result<Vec<u8>, ApplyError> {
        if path.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(r) = self.resolved.get(path) {
            return Ok(r.clone());
        }
        let (parent, name) = meta::split(path);
        let base = self.resolve(parent, member)?;
        let candidate = join(&base, name);
        let resolved = match self.merged_symlink(&candidate, member)? {
            None => candidate,
            Some(target) => {
                let start = if target.starts_with(b"/") {
                    target
                } else {
                    join(&base, &target)
                };
                self.resolve_slow(&start, member)?
            }
        };
        if self.resolved.len() >= 4096 {
            self.resolved.clear();
        }
        self.resolved.insert(path.to_vec(), resolved.clone());
        Ok(resolved)
    }

    /// Component by component, following every symlink (at most 40).
    fn resolve_slow(&mut self, path: &[u8], member: &str) -> Result<Vec<u8>, ApplyError> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut todo: std::collections::VecDeque<Vec<u8>> =
            path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut followed = 1;
        while let Some(comp) = todo.pop_front() {
            match comp.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    out.pop();
                    continue;
                }
                _ => {}
            }
            out.push(comp);
            let candidate = out.join(&b'/');
            if let Some(target) = self.merged_symlink(&candidate, member)? {
                followed += 1;
                if followed > 40 {
                    return Err(ApplyError::Fs {
                        member: member.to_owned(),
                        op: "resolve the parent directory",
                        source: io::Error::from_raw_os_error(libc::ELOOP),
                    });
                }
                out.pop();
                if target.starts_with(b"/") {
                    out.clear();
                }
                for (i, c) in target.split(|&b| b == b'/').enumerate() {
                    todo.insert(i, c.to_vec());
                }
            }
        }
        Ok(out.join(&b'/'))
    }

    /// The target of `path` in the merged view when it is a symlink there
    /// (its prefix is known to hold no symlink).
    fn merged_symlink(&self, path: &[u8], member: &str) -> Result<Option<Vec<u8>>, ApplyError> {
        let err = Self::fs_err(member, "resolve the parent directory");
        let c = sys::cstr(path).map_err(Self::fs_err(member, "name"))?;
        // This layer first.
        match sys::openat2(
            self.root.fd(),
            &c,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            sys::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
        ) {
            Ok(fd) => {
                let st = sys::fstat(fd.as_fd_ref()).map_err(err)?;
                return match st.st_mode & libc::S_IFMT {
                    libc::S_IFLNK => Ok(Some(
                        crate::fsutil::readlinkat(fd.as_fd(), c"")
                            .map_err(Self::fs_err(member, "read a symlink"))?
                            .into_bytes(),
                    )),
                    // Anything else here (a whiteout included) hides the lower layers.
                    _ => Ok(None),
                };
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::ELOOP)) => {
                return Ok(None);
            }
            Err(e) => return Err(err(e)),
        }
        if self.lowers.is_none() || self.layer_hides_lower(path) {
            return Ok(None);
        }
        let Some(found) = self.find_lower(path, member)? else {
            return Ok(None);
        };
        if found.st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            return Ok(None);
        }
        crate::fsutil::readlinkat(found.dir.as_fd(), &found.name)
            .map(|t| Some(t.into_bytes()))
            .map_err(Self::fs_err(member, "read a lower symlink"))
    }

    /// Whether this layer makes the lower layers' `path` invisible: an
    /// ancestor of it here is opaque, or not a directory.
    fn layer_hides_lower(&self, path: &[u8]) -> bool {
        let mut end = 0;
        let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        for comp in &comps[..comps.len() - 1] {
            end += comp.len();
            let prefix = &path[..end];
            end += 1;
            let Ok(c) = sys::cstr(prefix) else {
                return true;
            };
            match sys::openat2(
                self.root.fd(),
                &c,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
                sys::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS,
            ) {
                Ok(fd) => {
                    if crate::fsutil::is_opaque(fd.as_fd()) {
                        return true;
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return false,
                Err(_) => return true,
            }
        }
        false
    }

    /// Overlay mode with lower layers: give the implicitly created directory
    /// `path` the metadata of the lower directory it covers.
    fn lower_dir_meta(&mut self, path: &[u8], member: &str) -> Result<(), ApplyError> {
        let err = Self::fs_err(member, "copy a lower directory's metadata");
        let Some(found) = self.find_lower(path, member)? else {
            return Ok(());
        };
        if !sys::is_dir(&found.st) {
            return Ok(());
        }
        let src = sys::openat(
            found.dir.as_fd(),
            &found.name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(err)?;
        let Some(dir) = self
            .root
            .existing_dir(path)
            .map_err(Self::fs_err(member, "open"))?
        else {
            return Ok(());
        };
        let dst = sys::openat(dir.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .map_err(Self::fs_err(member, "open"))?;
        crate::fsutil::copy_meta_fd(src.as_fd(), dst.as_fd(), &found.st)
            .map_err(Self::fs_err(member, "copy a lower directory's metadata"))?;
        self.dir_times
            .push((path.to_vec(), crate::fsutil::times(&found.st)));
        Ok(())
    }

    fn find_lower(&self, path: &[u8], member: &str) -> Result<Option<lower::Found>, ApplyError> {
        match &self.lowers {
            Some(l) => l
                .find(path)
                .map_err(Self::fs_err(member, "look up the lower layers")),
            None => Ok(None),
        }
    }

    /// Overlay mode with lower layers: copy the lower non-directory at
    /// `path` into this layer (as overlayfs' copy-up would). Returns
    /// whether there was one.
    fn copy_up(&mut self, path: &[u8], member: &str) -> Result<bool, ApplyError> {
        let Some(found) = self.find_lower(path, member)? else {
            return Ok(false);
        };
        if sys::is_dir(&found.st) {
            return Ok(false);
        }
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        crate::fsutil::copy_entry(
            found.dir.as_fd(),
            &found.name,
            &found.st,
            parent.fd(),
            &cname,
        )
        .map_err(Self::fs_err(member, "copy up the hard link target"))?;
        self.mark(&join(&rparent, name));
        Ok(true)
    }

    /// Make room for a new entry `name` in `dir`: remove what is there.
    fn clear(&mut self, dir: BorrowedFd<'_>, name: &CStr, member: &str) -> Result<(), ApplyError> {
        self.resolved.clear();
        self.root
            .remove_all(dir, name)
            .map(drop)
            .map_err(|e| ApplyError::Fs {
                member: member.to_owned(),
                op: "replace the existing entry",
                source: e,
            })
    }

    /// Whether a new entry in `dir` needs chown to get `meta`'s owner.
    fn needs_chown(&self, dir: &Dir, meta: &Meta) -> bool {
        if !self.opts.preserve_ownership {
            return false;
        }
        let gid = if dir.setgid { dir.gid } else { self.root.egid };
        meta.uid != self.root.euid || meta.gid != gid
    }

    /// Whether a new entry created with `mode & 0o777` (under the umask)
    /// needs chmod to get `mode`.
    fn needs_chmod(&self, dir: &Dir, mode: u32, is_dir: bool) -> bool {
        mode & 0o7000 != 0 || mode & self.umask != 0 || (is_dir && dir.setgid)
    }

    fn fs_err<'m>(member: &'m str, op: &'static str) -> impl FnOnce(io::Error) -> ApplyError + 'm {
        move |source| ApplyError::Fs {
            member: member.to_owned(),
            op,
            source,
        }
    }

    fn set_xattrs_fd(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        member: &str,
    ) -> Result<(), ApplyError> {
        for (key, value) in &meta.xattrs {
            if skip_xattr(key) {
                continue;
            }
            match sys::fsetxattr(fd, key, value) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    tracing::warn!(member, xattr = ?key, "filesystem does not support this xattr; skipped");
                }
                Err(e) => return Err(Self::fs_err(member, "set an xattr")(e)),
            }
        }
        Ok(())
    }

    fn set_xattrs_at(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        meta: &Meta,
        member: &str,
    ) -> Result<(), ApplyError> {
        for (key, value) in &meta.xattrs {
            if skip_xattr(key) {
                continue;
            }
            match sys::lsetxattrat(dir, name, key, value) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::ENOSYS)) => {
                    tracing::warn!(member, xattr = ?key, "cannot set this xattr here; skipped");
                }
                // Linux allows user.* xattrs only on files and directories;
                // like docker, skip them on links, devices and FIFOs.
                Err(e)
                    if e.raw_os_error() == Some(libc::EPERM)
                        && key.to_bytes().starts_with(b"user.") =>
                {
                    tracing::warn!(member, xattr = ?key, "user xattrs are not allowed on this kind of file; skipped");
                }
                Err(e) => return Err(Self::fs_err(member, "set an xattr")(e)),
            }
        }
        Ok(())
    }

    fn root_dir(&mut self, meta: &Meta, member: &str) -> Result<(), ApplyError> {
        self.stats.dirs += 1;
        let fd = self.root.fd();
        if self.opts.preserve_ownership {
            sys::fchown(fd, meta.uid, meta.gid).map_err(Self::fs_err(member, "chown"))?;
        }
        sys::fchmod(fd, meta.mode).map_err(Self::fs_err(member, "chmod"))?;
        self.set_xattrs_fd(fd, meta, member)?;
        self.dir_times.push((Vec::new(), [meta.atime, meta.mtime]));
        Ok(())
    }

    fn directory(&mut self, path: &[u8], meta: &Meta, member: &str) -> Result<(), ApplyError> {
        self.stats.dirs += 1;
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let full = join(&rparent, name);
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        let mut fresh = true;
        match sys::mkdirat(parent.fd(), &cname, meta.mode & 0o777) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let st = sys::lstatat(parent.fd(), &cname).map_err(Self::fs_err(member, "stat"))?;
                if sys::is_dir(&st) {
                    fresh = false;
                } else {
                    self.clear(parent.fd(), &cname, member)?;
                    sys::mkdirat(parent.fd(), &cname, meta.mode & 0o777)
                        .map_err(Self::fs_err(member, "create the directory"))?;
                }
            }
            Err(e) => return Err(Self::fs_err(member, "create the directory")(e)),
        }
        let fd = sys::openat(
            parent.fd(),
            &cname,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(Self::fs_err(member, "open the directory"))?;
        if self.opts.preserve_ownership && (!fresh || self.needs_chown(&parent, meta)) {
            sys::fchown(fd.as_fd(), meta.uid, meta.gid).map_err(Self::fs_err(member, "chown"))?;
        }
        if !fresh || self.needs_chown(&parent, meta) || self.needs_chmod(&parent, meta.mode, true) {
            sys::fchmod(fd.as_fd(), meta.mode).map_err(Self::fs_err(member, "chmod"))?;
        }
        self.set_xattrs_fd(fd.as_fd(), meta, member)?;
        if self.opts.mode == ApplyMode::Overlay && self.whiteouts.contains(&full) {
            // This layer whited out a lower `path` and then made a directory
            // there: the lower directory's contents must stay hidden.
            sys::fsetxattr(fd.as_fd(), &overlay_opaque(), b"y")
                .map_err(Self::fs_err(member, "mark the directory opaque"))?;
        }
        let setgid = meta.mode & libc::S_ISGID != 0;
        let gid = if self.opts.preserve_ownership {
            meta.gid
        } else {
            self.root.egid
        };
        if fresh && self.lowers.is_some() {
            // A directory here may cover a lower symlink: resolutions change.
            self.resolved.clear();
        }
        self.root.remember(&full, Rc::new(Dir { fd, setgid, gid }));
        self.mark(&full);
        self.dir_times.push((full, [meta.atime, meta.mtime]));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        path: &[u8],
        meta: &Meta,
        entry: &mut tar::Entry<'_, R>,
        member: &str,
        gnu_sparse: bool,
    ) -> Result<(), ApplyError> {
        self.stats.files += 1;
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd = match sys::openat(parent.fd(), &cname, flags, meta.mode & 0o777) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.clear(parent.fd(), &cname, member)?;
                sys::openat(parent.fd(), &cname, flags, meta.mode & 0o777)
                    .map_err(Self::fs_err(member, "create the file"))?
            }
            Err(e) => return Err(Self::fs_err(member, "create the file")(e)),
        };
        let mut file = File::from(fd);
        let size = entry.size();
        let written = if let Some(sparse) = &meta.pax_sparse {
            self.write_pax_sparse(&mut file, entry, sparse, member)?
        } else if gnu_sparse {
            self.write_holey(&mut file, entry, size, member)?
        } else {
            self.write_plain(&mut file, entry, size, member)?
        };
        self.stats.file_bytes += written;
        let fd = file.as_fd();
        let chown = self.needs_chown(&parent, meta);
        if chown {
            sys::fchown(fd, meta.uid, meta.gid).map_err(Self::fs_err(member, "chown"))?;
        }
        // After chown, which clears setuid and setgid.
        if chown || self.needs_chmod(&parent, meta.mode, false) {
            sys::fchmod(fd, meta.mode).map_err(Self::fs_err(member, "chmod"))?;
        }
        // After the last write and chown, which clear security.capability.
        self.set_xattrs_fd(fd, meta, member)?;
        sys::futimens(fd, &[meta.atime, meta.mtime]).map_err(Self::fs_err(member, "set times"))?;
        self.mark(&join(&rparent, name));
        Ok(())
    }

    fn read_data<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        buf: &mut [u8],
    ) -> Result<usize, ApplyError> {
        loop {
            match entry.read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.stream_error(e)),
            }
        }
    }

    fn short_data(&self) -> ApplyError {
        ApplyError::Truncated {
            offset: self.state.pos.get(),
            last_member: self.last_member.clone(),
        }
    }

    fn write_plain<R: Read>(
        &mut self,
        file: &mut File,
        entry: &mut tar::Entry<'_, R>,
        size: u64,
        member: &str,
    ) -> Result<u64, ApplyError> {
        let mut buf = std::mem::take(&mut self.buf);
        let mut done = 0u64;
        let result = loop {
            if done == size {
                break Ok(done);
            }
            let n = match self.read_data(entry, &mut buf) {
                Ok(0) => break Err(self.short_data()),
                Ok(n) => n,
                Err(e) => break Err(e),
            };
            if let Err(e) = file.write_all(&buf[..n]) {
                break Err(Self::fs_err(member, "write the file")(e));
            }
            done += n as u64;
        };
        self.buf = buf;
        result
    }

    /// Account a sparse file's logical size against the byte limit.
    fn check_logical(&self, size: u64, member: &str) -> Result<(), ApplyError> {
        if self.stats.file_bytes.saturating_add(size) > self.opts.limits.max_bytes {
            return Err(ApplyError::Limit {
                what: "bytes of file content",
                limit: self.opts.limits.max_bytes,
                member: Some(member.to_owned()),
            });
        }
        Ok(())
    }

    /// GNU sparse members: the parser fills holes with zeros; leave zero
    /// blocks as holes again.
    fn write_holey<R: Read>(
        &mut self,
        file: &mut File,
        entry: &mut tar::Entry<'_, R>,
        size: u64,
        member: &str,
    ) -> Result<u64, ApplyError> {
        self.check_logical(size, member)?;
        let mut buf = std::mem::take(&mut self.buf);
        let mut done = 0u64;
        let result = (|| {
            while done < size {
                let n = self.read_data(entry, &mut buf)?;
                if n == 0 {
                    return Err(self.short_data());
                }
                for block in buf[..n].chunks(4096) {
                    if block.iter().all(|&b| b == 0) {
                        file.seek(SeekFrom::Current(block.len() as i64))
                            .map_err(Self::fs_err(member, "seek in the file"))?;
                    } else {
                        file.write_all(block)
                            .map_err(Self::fs_err(member, "write the file"))?;
                    }
                }
                done += n as u64;
            }
            file.set_len(size)
                .map_err(Self::fs_err(member, "set the file size"))?;
            Ok(size)
        })();
        self.buf = buf;
        result
    }

    /// PAX sparse members: data regions follow one another in the member's
    /// data (after the map, in format 1.0).
    fn write_pax_sparse<R: Read>(
        &mut self,
        file: &mut File,
        entry: &mut tar::Entry<'_, R>,
        sparse: &PaxSparse,
        member: &str,
    ) -> Result<u64, ApplyError> {
        self.check_logical(sparse.real_size, member)?;
        let bad = |reason: &str| ApplyError::InvalidMember {
            member: member.to_owned(),
            reason: reason.to_owned(),
        };
        let stored = entry.size();
        let mut consumed = 0u64;
        let map = match &sparse.map {
            Some(map) => map.clone(),
            None => {
                // Format 1.0: decimal numbers, one per line, padded to 512 bytes.
                let mut header = Vec::new();
                let mut read_line = |consumed: &mut u64| -> Result<u64, ApplyError> {
                    let mut line = Vec::new();
                    loop {
                        let mut b = [0u8; 1];
                        if self.read_data(entry, &mut b)? == 0 {
                            return Err(self.short_data());
                        }
                        *consumed += 1;
                        header.push(b[0]);
                        if b[0] == b'\n' {
                            break;
                        }
                        line.push(b[0]);
                        if line.len() > 20 {
                            return Err(bad("malformed sparse map"));
                        }
                    }
                    meta::parse_u64_pub(&line).ok_or_else(|| bad("malformed sparse map"))
                };
                let count = read_line(&mut consumed)?;
                if count > self.opts.limits.max_header_bytes / 2 {
                    return Err(bad("sparse map too long"));
                }
                let mut map = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    let off = read_line(&mut consumed)?;
                    let len = read_line(&mut consumed)?;
                    map.push((off, len));
                }
                let pad = (512 - consumed % 512) % 512;
                let mut skip = vec![0u8; pad as usize];
                let mut got = 0;
                while got < skip.len() {
                    let n = self.read_data(entry, &mut skip[got..])?;
                    if n == 0 {
                        return Err(self.short_data());
                    }
                    got += n;
                }
                consumed += pad;
                map
            }
        };
        let mut last_end = 0u64;
        let mut buf = std::mem::take(&mut self.buf);
        let result = (|| {
            for &(off, len) in &map {
                let end = off
                    .checked_add(len)
                    .ok_or_else(|| bad("sparse region overflows"))?;
                if off < last_end || end > sparse.real_size {
                    return Err(bad("sparse regions out of order or past the end"));
                }
                if consumed + len > stored {
                    return Err(bad("sparse regions hold more data than the member"));
                }
                last_end = end;
                file.seek(SeekFrom::Start(off))
                    .map_err(Self::fs_err(member, "seek in the file"))?;
                let mut left = len;
                while left > 0 {
                    let want = left.min(buf.len() as u64) as usize;
                    let n = self.read_data(entry, &mut buf[..want])?;
                    if n == 0 {
                        return Err(self.short_data());
                    }
                    file.write_all(&buf[..n])
                        .map_err(Self::fs_err(member, "write the file"))?;
                    left -= n as u64;
                }
                consumed += len;
            }
            file.set_len(sparse.real_size)
                .map_err(Self::fs_err(member, "set the file size"))?;
            Ok(sparse.real_size)
        })();
        self.buf = buf;
        result
    }

    fn hardlink(&mut self, path: &[u8], target: &[u8], member: &str) -> Result<(), ApplyError> {
        self.stats.hardlinks += 1;
        let target_path = meta::normalize(target).map_err(|reason| ApplyError::Escape {
            member: member.to_owned(),
            reason: format!("hard link target `{}`: {reason}", display(target)),
        })?;
        if target_path.is_empty() {
            return Err(ApplyError::InvalidMember {
                member: member.to_owned(),
                reason: "hard link to the root directory".to_owned(),
            });
        }
        let link_err = |source: io::Error| ApplyError::LinkTarget {
            member: member.to_owned(),
            target: display(target),
            source,
        };
        let (tparent, tname) = meta::split(&target_path);
        let tparent = self.resolve(tparent, member)?;
        let tparent = tparent.as_slice();
        let mut target_path = tparent.to_vec();
        if !target_path.is_empty() {
            target_path.push(b'/');
        }
        target_path.extend_from_slice(tname);
        let mut tdir = self
            .root
            .existing_dir(tparent)
            .map_err(Self::fs_err(member, "open the link target's directory"))?;
        let ctname = sys::cstr(tname).map_err(Self::fs_err(member, "name"))?;
        let present = match &tdir {
            Some(d) => sys::lstatat(d.fd(), &ctname).is_ok(),
            None => false,
        };
        if !present && self.copy_up(&target_path, member)? {
            tdir = self
                .root
                .existing_dir(tparent)
                .map_err(Self::fs_err(member, "open the link target's directory"))?;
        }
        let tdir = tdir.ok_or_else(|| link_err(io::Error::from_raw_os_error(libc::ENOENT)))?;
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        match sys::linkat(tdir.fd(), &ctname, parent.fd(), &cname) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let a = sys::lstatat(tdir.fd(), &ctname).map_err(link_err)?;
                let b = sys::lstatat(parent.fd(), &cname).map_err(Self::fs_err(member, "stat"))?;
                if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
                    self.clear(parent.fd(), &cname, member)?;
                    sys::linkat(tdir.fd(), &ctname, parent.fd(), &cname)
                        .map_err(Self::fs_err(member, "create the hard link"))?;
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(link_err(e)),
            Err(e) => return Err(Self::fs_err(member, "create the hard link")(e)),
        }
        self.mark(&join(&rparent, name));
        Ok(())
    }

    fn symlink(
        &mut self,
        path: &[u8],
        target: &[u8],
        meta: &Meta,
        member: &str,
    ) -> Result<(), ApplyError> {
        self.stats.symlinks += 1;
        self.resolved.clear();
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        let ctarget = sys::cstr(target).map_err(Self::fs_err(member, "symlink target"))?;
        match sys::symlinkat(&ctarget, parent.fd(), &cname) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.clear(parent.fd(), &cname, member)?;
                sys::symlinkat(&ctarget, parent.fd(), &cname)
                    .map_err(Self::fs_err(member, "create the symlink"))?;
            }
            Err(e) => return Err(Self::fs_err(member, "create the symlink")(e)),
        }
        self.finish_at(&parent, &cname, meta, member, false)?;
        self.mark(&join(&rparent, name));
        Ok(())
    }

    fn special(
        &mut self,
        path: &[u8],
        fmt: libc::mode_t,
        dev: libc::dev_t,
        meta: &Meta,
        member: &str,
    ) -> Result<(), ApplyError> {
        self.stats.special += 1;
        let (parent_path, name) = meta::split(path);
        let (parent, rparent) = self.parent(parent_path, member)?;
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        let mode = fmt | (meta.mode & 0o777);
        match sys::mknodat(parent.fd(), &cname, mode, dev) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.clear(parent.fd(), &cname, member)?;
                sys::mknodat(parent.fd(), &cname, mode, dev)
                    .map_err(Self::fs_err(member, "create the device node"))?;
            }
            Err(e) => return Err(Self::fs_err(member, "create the device node")(e)),
        }
        self.finish_at(&parent, &cname, meta, member, true)?;
        self.mark(&join(&rparent, name));
        Ok(())
    }

    /// Owner, mode, xattrs and times of a just-created non-regular,
    /// non-directory entry, by name and never through a symlink.
    fn finish_at(
        &self,
        parent: &Dir,
        name: &CStr,
        meta: &Meta,
        member: &str,
        chmod: bool,
    ) -> Result<(), ApplyError> {
        let chown = self.needs_chown(parent, meta);
        if chown {
            sys::lchownat(parent.fd(), name, meta.uid, meta.gid)
                .map_err(Self::fs_err(member, "chown"))?;
        }
        if chmod && (chown || self.needs_chmod(parent, meta.mode, false)) {
            sys::lchmodat(parent.fd(), name, meta.mode).map_err(Self::fs_err(member, "chmod"))?;
        }
        self.set_xattrs_at(parent.fd(), name, meta, member)?;
        sys::lutimensat(parent.fd(), name, &[meta.atime, meta.mtime])
            .map_err(Self::fs_err(member, "set times"))?;
        Ok(())
    }

    fn whiteout(&mut self, hidden: &[u8], member: &str) -> Result<(), ApplyError> {
        let (parent_path, name) = meta::split(hidden);
        let rparent = self.resolve(parent_path, member)?;
        let hidden = join(&rparent, name);
        self.resolved.clear();
        let own = self.layer_paths.contains(&hidden);
        let cname = sys::cstr(name).map_err(Self::fs_err(member, "name"))?;
        match self.opts.mode {
            ApplyMode::Overlay => {
                let (parent, _) = self.parent(&rparent, member)?;
                if own {
                    // The layer's own entry stays; if it is a directory, the
                    // lower one's contents must not show through it.
                    if let Ok(fd) = sys::openat(
                        parent.fd(),
                        &cname,
                        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    ) {
                        sys::fsetxattr(fd.as_fd(), &overlay_opaque(), b"y")
                            .map_err(Self::fs_err(member, "mark the directory opaque"))?;
                    }
                    return Ok(());
                }
                match sys::mknodat(parent.fd(), &cname, libc::S_IFCHR, 0) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                        self.clear(parent.fd(), &cname, member)?;
                        sys::mknodat(parent.fd(), &cname, libc::S_IFCHR, 0)
                            .map_err(Self::fs_err(member, "create the whiteout device"))?;
                    }
                    Err(e) => return Err(Self::fs_err(member, "create the whiteout device")(e)),
                }
                if self.root.euid != 0 || self.root.egid != 0 {
                    sys::lchownat(parent.fd(), &cname, 0, 0)
                        .map_err(Self::fs_err(member, "chown the whiteout device"))?;
                }
                self.whiteouts.insert(hidden);
                Ok(())
            }
            ApplyMode::Flatten => {
                let Some(parent) = self
                    .root
                    .existing_dir(&rparent)
                    .map_err(Self::fs_err(member, "open the whiteout's directory"))?
                else {
                    return Ok(());
                };
                self.remove_lower(parent.fd(), &cname, &hidden, member)
            }
        }
    }

    fn opaque(&mut self, dir_path: &[u8], member: &str) -> Result<(), ApplyError> {
        let dir_path = self.resolve(dir_path, member)?;
        self.resolved.clear();
        match self.opts.mode {
            ApplyMode::Overlay => {
                let (dir, _) = self.parent(&dir_path, member)?;
                // Re-open for a descriptor fsetxattr accepts (cached ones are O_PATH).
                let fd = sys::openat(dir.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(Self::fs_err(member, "open the opaque directory"))?;
                sys::fsetxattr(fd.as_fd(), &overlay_opaque(), b"y")
                    .map_err(Self::fs_err(member, "mark the directory opaque"))?;
                self.mark(&dir_path);
                Ok(())
            }
            ApplyMode::Flatten => {
                let Some(dir) = self
                    .root
                    .existing_dir(&dir_path)
                    .map_err(Self::fs_err(member, "open the opaque directory"))?
                else {
                    return Ok(());
                };
                let dir_fd = sys::openat(dir.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
                    .map_err(Self::fs_err(member, "open the opaque directory"))?;
                self.remove_lower_children(dir_fd.as_fd(), &dir_path, member)
            }
        }
    }

    /// Flatten mode: delete `path` unless this layer made it; if this layer
    /// made it and it is a directory, delete the lower entries inside it.
    fn remove_lower(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
        member: &str,
    ) -> Result<(), ApplyError> {
        if !self.layer_paths.contains(path) {
            self.root
                .remove_all(parent, name)
                .map_err(Self::fs_err(member, "remove the whited-out entry"))?;
            return Ok(());
        }
        let Ok(sub) = sys::openat(
            parent,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) else {
            return Ok(());
        };
        self.remove_lower_children(sub.as_fd(), path, member)
    }

    fn remove_lower_children(
        &mut self,
        dir: BorrowedFd<'_>,
        dir_path: &[u8],
        member: &str,
    ) -> Result<(), ApplyError> {
        let names = sys::read_dir_names(dir).map_err(Self::fs_err(member, "list the directory"))?;
        for name in names {
            let mut child = dir_path.to_vec();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name.to_bytes());
            self.remove_lower(dir, &name, &child, member)?;
        }
        Ok(())
    }

    fn restore_dir_times(&mut self) -> Result<(), ApplyError> {
        let dir_times = std::mem::take(&mut self.dir_times);
        for (path, times) in dir_times.iter() {
            let member = display(path);
            let fd = if path.is_empty() {
                sys::openat(self.root.fd(), c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)
            } else {
                let c = sys::cstr(path).map_err(Self::fs_err(&member, "name"))?;
                sys::openat2(
                    self.root.fd(),
                    &c,
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                    sys::RESOLVE_IN_ROOT,
                )
            };
            let fd = match fd {
                Ok(fd) => fd,
                // Replaced later in the layer by something else.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(Self::fs_err(&member, "open the directory")(e)),
            };
            // futimens refuses O_PATH descriptors; utimensat on "" does not.
            sys::utimensat_empty(fd.as_fd_ref(), times)
                .map_err(Self::fs_err(&member, "set directory times"))?;
        }
        Ok(())
    }
}

fn overlay_opaque() -> CString {
    CString::new(OVERLAY_OPAQUE_XATTR).expect("constant has no NUL")
}

/// Xattrs a layer may not set: overlayfs' own (`trusted.overlay.*` could
/// redirect lookups or fake whiteouts) and ACLs, which are not carried
/// as `SCHILY.xattr` by the tools that write layers.
fn skip_xattr(key: &CStr) -> bool {
    let k = key.to_bytes();
    if k.starts_with(b"trusted.overlay.") || k.starts_with(b"system.") {
        tracing::debug!(xattr = ?key, "ignoring xattr from layer");
        return true;
    }
    false
}
