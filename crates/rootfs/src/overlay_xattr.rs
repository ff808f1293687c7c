//! The xattrs overlayfs keeps its bookkeeping in: `trusted.overlay.*` on the host, and
//! `user.overlay.*` in a user namespace (rootless mode), where `trusted.*` needs a
//! capability only the host's root has and overlayfs is mounted with `userxattr`.
//!
//! fuse-overlayfs (the rootless fallback where the kernel's overlayfs is unusable) reads
//! both of those and its own `user.fuseoverlayfs.opaque`, and marks an opaque directory it
//! makes in two more ways: with that xattr (`trusted.overlay.opaque` when it may) *and*
//! with a `.wh..wh..opq` file and a `.wh..opq` whiteout inside it (measured with 1.10, as
//! root and in a user namespace). Trees in overlay form are read whichever way they were
//! written; layers this crate extracts carry the overlayfs xattr, which both read.

use std::ffi::CStr;
use std::sync::OnceLock;

/// The opaque-directory xattr overlayfs reads in a user namespace (`userxattr`).
pub const OVERLAY_OPAQUE_USER_XATTR: &str = "user.overlay.opaque";

/// Whether this process runs in a user namespace other than the host's. (basic-runtime
/// has the same test; this crate does not depend on it for one file read.)
pub(crate) fn in_user_namespace() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map")
            .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
    })
}

/// The opaque xattr this process's overlay mounts read.
pub(crate) fn opaque() -> &'static CStr {
    match in_user_namespace() {
        true => c"user.overlay.opaque",
        false => c"trusted.overlay.opaque",
    }
}

/// The opaque-directory xattr fuse-overlayfs writes where it may not write
/// `trusted.overlay.opaque` (in a user namespace).
pub const FUSE_OVERLAY_OPAQUE_XATTR: &str = "user.fuseoverlayfs.opaque";

/// Every opaque xattr, the one this process writes first: a tree is read whichever way
/// it was written (overlayfs on the host, overlayfs with `userxattr`, fuse-overlayfs).
pub(crate) fn opaque_names() -> [&'static CStr; 3] {
    match in_user_namespace() {
        true => [
            c"user.overlay.opaque",
            c"trusted.overlay.opaque",
            c"user.fuseoverlayfs.opaque",
        ],
        false => [
            c"trusted.overlay.opaque",
            c"user.overlay.opaque",
            c"user.fuseoverlayfs.opaque",
        ],
    }
}

/// Whether `key` is an overlay implementation's own bookkeeping (either namespace, or
/// fuse-overlayfs').
pub(crate) fn is_overlay_key(key: &[u8]) -> bool {
    key.starts_with(b"trusted.overlay.")
        || key.starts_with(b"user.overlay.")
        || key.starts_with(b"user.fuseoverlayfs.")
}

/// Whether `key` is an opaque marker (either namespace, or fuse-overlayfs').
pub(crate) fn is_opaque_key(key: &[u8]) -> bool {
    key == b"trusted.overlay.opaque"
        || key == b"user.overlay.opaque"
        || key == b"user.fuseoverlayfs.opaque"
}

/// The file fuse-overlayfs leaves in a directory it made opaque (besides the xattr).
pub(crate) const FUSE_OPAQUE_FILE: &CStr = c".wh..wh..opq";

/// Whether the directory entry `name` is one of the opaque markers fuse-overlayfs leaves
/// in an upper directory (`.wh..wh..opq`, and the whiteout `.wh..opq` beside it): marks,
/// not files. No layer holds such a name otherwise: extraction turns every `.wh.` member
/// into a whiteout.
pub(crate) fn is_fuse_marker(name: &[u8]) -> bool {
    name == b".wh..wh..opq" || name == b".wh..opq"
}

/// The mount option overlayfs needs to use `user.overlay.*` (in a user namespace).
pub(crate) fn mount_option() -> Option<&'static str> {
    in_user_namespace().then_some("userxattr")
}
