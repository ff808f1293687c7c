//! `write_layer` on an overlay-form directory as overlayfs leaves one (a whiteout
//! device, an opaque directory, a hard link, a socket, an empty mount point, times in
//! the future): the OCI layer it writes, read back; applied again it gives what
//! `settle_layer_dir` turns the directory itself into.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use basic_rootfs::export::{LayerOptions, settle_layer_dir, write_layer};
use basic_rootfs::{ApplyMode, ApplyOptions, apply_layer};

const CLAMP: i64 = 1_700_000_000;

/// An upper directory as a container leaves it.
fn upper(dir: &Path) {
    fs::create_dir_all(dir.join("etc")).unwrap();
    fs::write(dir.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(dir.join("etc/hosts"), "").unwrap(); // the runtime's mount point
    fs::create_dir(dir.join("proc")).unwrap(); // likewise, a directory
    fs::write(dir.join("data"), "data\n").unwrap();
    fs::hard_link(dir.join("data"), dir.join("data-link")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("etc-link")).unwrap();
    nix::sys::stat::mknod(
        &dir.join("gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    fs::create_dir(dir.join("opq")).unwrap();
    fs::write(dir.join("opq/new"), "new\n").unwrap();
    xattr::set(dir.join("opq"), "trusted.overlay.opaque", b"y").unwrap();
    xattr::set(dir.join("opq"), "trusted.overlay.origin", b"\0\x01").unwrap();
    xattr::set(dir.join("data"), "user.kept", b"yes").unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(dir.join("sock")).unwrap();
    fs::set_permissions(dir.join("data"), fs::Permissions::from_mode(0o4755)).unwrap();
    // A time after the clamp.
    let future = std::time::UNIX_EPOCH + std::time::Duration::new((CLAMP + 1000) as u64, 5);
    fs::File::options()
        .write(true)
        .open(dir.join("data"))
        .unwrap()
        .set_modified(future)
        .unwrap();
}

fn options() -> LayerOptions {
    LayerOptions::default()
        .clamp_mtime(Some(CLAMP))
        .skip_if_empty(vec![
            "/etc/hosts".into(),
            "/proc".into(),
            "/etc/resolv.conf".into(),
        ])
}

#[test]
fn overlay_form_becomes_oci_form_and_settles_to_the_same_tree() {
    if !common::privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("upper");
    fs::create_dir(&dir).unwrap();
    upper(&dir);
    let mut tar = Vec::new();
    write_layer(&dir, &options(), &mut tar).unwrap();
    // The same directory gives the same bytes.
    let mut again = Vec::new();
    write_layer(&dir, &options(), &mut again).unwrap();
    assert_eq!(tar, again);

    let mut archive = tar::Archive::new(tar.as_slice());
    let members: Vec<(String, tar::EntryType, u64)> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.entry_type(),
                h.mtime().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = members.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "data",
            "data-link",
            "etc/",
            "etc/passwd",
            "etc-link",
            ".wh.gone",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/new"
        ]
    );
    assert_eq!(members[1].1, tar::EntryType::Link);
    assert_eq!(members[5].1, tar::EntryType::Regular);
    assert!(
        members.iter().all(|(_, _, t)| *t <= CLAMP as u64),
        "{members:?}"
    );

    // Applied, the layer is what the directory settles to.
    let applied = tmp.path().join("applied");
    fs::create_dir(&applied).unwrap();
    apply_layer(
        tar.as_slice(),
        &applied,
        &ApplyOptions::new(ApplyMode::Overlay),
    )
    .unwrap();
    settle_layer_dir(&dir, &options()).unwrap();
    // Inode numbers differ; a whiteout's time is nobody's (it is never seen).
    let strip = |mut t: std::collections::BTreeMap<String, common::Node>| {
        for node in t.values_mut() {
            node.ino = 0;
            if node.kind == "char" && node.rdev == 0 {
                node.mtime = (0, 0);
            }
        }
        t
    };
    assert_eq!(strip(common::tree(&dir)), strip(common::tree(&applied)));
    assert!(!dir.join("sock").exists() && !dir.join("etc/hosts").exists());
    assert_eq!(
        fs::symlink_metadata(dir.join("data")).unwrap().mtime(),
        CLAMP
    );
    assert_eq!(
        xattr::get(dir.join("opq"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(
        xattr::get(dir.join("opq"), "trusted.overlay.origin").unwrap(),
        None
    );
}
