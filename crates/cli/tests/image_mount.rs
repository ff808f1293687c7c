//! `image mount` / `image unmount`: a read-only look at what a pull built.

mod common;

use common::{basic_docker, ok};

use std::path::Path;

use basic_test_support::{harness, require_root};

#[test]
fn mount_shows_the_merged_layers_read_only_and_unmount_releases_them() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let image = h.reference("multiarch_latest");
    ok(basic_docker(root, &["pull", "-q", &image]));

    let path = ok(basic_docker(root, &["image", "mount", &image]));
    let merged = Path::new(&path);
    // The top layer's file and the bottom layer's binary are both there.
    let platform = std::fs::read_to_string(merged.join("etc/fixture-platform")).unwrap();
    assert!(platform.starts_with("linux/"), "{platform}");
    assert!(merged.join("bin/busybox").is_file());
    let write = std::fs::write(merged.join("new-file"), "x").unwrap_err();
    assert_eq!(
        write.raw_os_error(),
        Some(30),
        "EROFS expected, got {write}"
    );
    assert_eq!(
        ok(basic_docker(root, &["image", "mount", &image])),
        path,
        "mounting twice"
    );

    let id = ok(basic_docker(root, &["image", "unmount", &image]));
    assert!(id.starts_with("sha256:"), "{id}");
    assert!(!merged.exists(), "the mount point is removed");
    let again = basic_docker(root, &["image", "unmount", &image]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not mounted"));
}
