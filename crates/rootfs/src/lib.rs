//! Apply OCI image layers to directories, exactly and safely, and build
//! container root filesystems from them.
//!
//! * [`apply_layer`] applies one layer tar stream (gzip, zstd or plain) to a
//!   directory, in [`ApplyMode::Overlay`] form (one directory per layer,
//!   whiteouts as overlayfs reads them) or [`ApplyMode::Flatten`] form
//!   (layers applied in order onto one directory). Every filesystem
//!   operation is relative to the target's directory descriptor and
//!   resolved with `openat2(RESOLVE_IN_ROOT)`, so no member, symlink or hard
//!   link can write outside it.
//! * [`apply_layers_parallel`] applies independent overlay-mode layers on
//!   several threads.
//! * [`Snapshotter`]s turn a chain of layer directories into a container's
//!   root: [`OverlaySnapshotter`] mounts overlayfs, [`CopySnapshotter`]
//!   makes a flattened copy where overlayfs is not available, and
//!   [`snapshot::detect`] picks one. Each records its snapshots, so callers
//!   keep only a key: mounts, usage and commits (a container's changes as a
//!   new layer) are asked for by key.
//!
//! * [`tree`] copies and measures directory trees that are not trusted (an image's
//!   directory copied into a new volume, a volume's size) through descriptors, never
//!   following a symlink on either side.
//!
//! The crate knows nothing of registries or image stores: it takes readers
//! and paths.
#![deny(missing_docs)]

mod apply;
mod compression;
pub mod export;
mod fsutil;
mod overlay_xattr;
mod parallel;
mod reader;
pub mod snapshot;
mod sys;
pub mod tree;

pub use apply::{
    ApplyError, ApplyMode, ApplyOptions, Footprint, LayerStats, Limits, LowerDependency,
    OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, Settled, WHITEOUT_PREFIX, apply_layer,
};
pub use compression::{Compression, CompressionError};
pub use overlay_xattr::{FUSE_OVERLAY_OPAQUE_XATTR, OVERLAY_OPAQUE_USER_XATTR};
pub use parallel::{LayerJob, apply_layers_parallel};
pub use snapshot::{
    Change, ChangeKind, CopySnapshotter, FUSE_OVERLAY_FSTYPE, FuseOverlaySnapshotter,
    MAX_LOWER_DIRS, Mount, OverlaySnapshotter, PrepareOptions, Snapshot, SnapshotError,
    SnapshotInfo, SnapshotKind, Snapshotter, SnapshotterKind, Usage, merge_layers,
};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
