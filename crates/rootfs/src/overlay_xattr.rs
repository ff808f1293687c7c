//! The xattrs overlayfs keeps its bookkeeping in: `trusted.overlay.*` on the host, and
//! `user.overlay.*` in a user namespace (rootless mode), where `trusted.*` needs a
//! capability only the host's root has and overlayfs is mounted with `userxattr`.

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

/// Both opaque xattrs, the one this process writes first: a tree is read whichever way
/// it was written.
pub(crate) fn opaque_names() -> [&'static CStr; 2] {
    match in_user_namespace() {
        true => [c"user.overlay.opaque", c"trusted.overlay.opaque"],
        false => [c"trusted.overlay.opaque", c"user.overlay.opaque"],
    }
}

/// Whether `key` is overlayfs' own bookkeeping (either namespace).
pub(crate) fn is_overlay_key(key: &[u8]) -> bool {
    key.starts_with(b"trusted.overlay.") || key.starts_with(b"user.overlay.")
}

/// Whether `key` is an opaque marker (either namespace).
pub(crate) fn is_opaque_key(key: &[u8]) -> bool {
    key == b"trusted.overlay.opaque" || key == b"user.overlay.opaque"
}

/// The mount option overlayfs needs to use `user.overlay.*` (in a user namespace).
pub(crate) fn mount_option() -> Option<&'static str> {
    in_user_namespace().then_some("userxattr")
}
