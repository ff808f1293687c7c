//! Correctness against an independent implementation: `umoci unpack`.
//!
//! A multi-layer image holding every hard case is written as an OCI image
//! layout; umoci unpacks it, and we compare its rootfs with our flattened
//! result and with the merged overlayfs view of our overlay-mode layers:
//! every path, type, mode, uid, gid, size, content hash, link target, xattr,
//! device number, link count, and the mtime of everything but directories.
//!
//! Intentional difference: directory mtimes are not compared (umoci
//! restores them; so do we, but the merged overlay view reports the upper
//! directory's own time). Overlay-mode layers are applied with
//! `lower_layers`, so cross-layer hard links are copied up and directories
//! without a member in a layer keep their lower metadata; without it, those
//! directories would be root:root 0755 in the layer (docker overlay2's
//! behaviour) and cross-layer hard links an error.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use basic_rootfs::{ApplyMode, ApplyOptions, apply_layer};
use common::{Layer, Node, gzip, privileged, sha256_hex, tree};
use tar::EntryType;

const CAP: &[u8] = &[
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// The fixture image: three layers with every hard case. With
/// `cross_layer_hardlink`, the top layer also hard-links a file of the
/// bottom layer (valid only when flattening).
fn fixture(cross_layer_hardlink: bool) -> Vec<Vec<u8>> {
    let long_dir = format!("usr/share/{}", "long-directory-name-".repeat(6));
    let long_file = format!("{long_dir}/{}", "long-file-name-".repeat(10));
    let long_target = format!("/usr/lib/{}", "long-symlink-target-".repeat(8));

    let mut l0 = Layer::new();
    l0.dir("etc", 0o755)
        .file("etc/hostname", b"fixture\n", 0o644)
        .file("etc/removed", b"to be whited out\n", 0o644)
        .file("etc/empty", b"", 0o644)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/su", b"#!/bin/su\n", 0o4755)
        .file("usr/bin/wall", b"#!/bin/wall\n", 0o2755)
        .pax(&[
            ("SCHILY.xattr.user.foo", b"bar"),
            ("SCHILY.xattr.security.capability", CAP),
        ])
        .file("usr/bin/ping", b"#!/bin/ping\n", 0o755)
        .hardlink("usr/bin/ping6", "usr/bin/ping")
        .dir("tmp", 0o1777)
        .dir("home", 0o755)
        .add(
            {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(EntryType::Directory);
                h.set_mode(0o750);
                h.set_uid(1000);
                h.set_gid(1000);
                h.set_mtime(common::MTIME);
                h
            },
            "home/user",
            b"",
        )
        .file_owned("home/user/.profile", b"PATH=/usr/bin\n", 0o600, 1000, 1000)
        .dir(&long_dir, 0o755)
        .file(&long_file, b"long name\n", 0o644)
        .symlink("usr/lib-long", &long_target)
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .symlink("usr/bin/sh", "su")
        .symlink("etc/outside", "../../../../etc/passwd")
        .dir("opq", 0o755)
        .file("opq/lower", b"hidden by opaque\n", 0o644)
        .dir("opq/sub", 0o755)
        .file("opq/sub/lower", b"hidden too\n", 0o644)
        .dir("gone", 0o755)
        .file("gone/file", b"whited out dir\n", 0o644)
        .file("f2d", b"file, later a dir\n", 0o644)
        .dir("d2f", 0o755)
        .file("d2f/child", b"dir, later a file\n", 0o644)
        .device("dev/null", EntryType::Char, 1, 3, 0o666)
        .device("dev/sda", EntryType::Block, 8, 0, 0o660)
        .device("run/initctl", EntryType::Fifo, 0, 0, 0o600);

    let mut l1 = Layer::new();
    l1.file("etc/.wh.removed", b"", 0o644)
        .file(".wh.gone", b"", 0o644)
        .dir("opq", 0o755)
        .file("opq/upper", b"upper\n", 0o644)
        .dir("opq/sub", 0o700)
        .file("opq/sub/upper", b"upper sub\n", 0o644)
        // The marker after the layer's own entries: they must survive.
        .file("opq/.wh..wh..opq", b"", 0o644)
        .dir("f2d", 0o755)
        .file("f2d/child", b"now a dir\n", 0o644)
        .file("d2f", b"now a file\n", 0o644)
        .file_owned("etc/hostname", b"changed\n", 0o644, 1000, 1000);

    let mut l2 = Layer::new();
    l2.file("f2d", b"a file again\n", 0o640)
        .dir("d2f", 0o711)
        .file("d2f/again", b"a dir again\n", 0o644)
        .file("opq/.wh.upper", b"", 0o644)
        .file("empty-top", b"", 0o000)
        // Members whose directories have no member in this layer: the
        // directories keep their lower owner and mode (1777, 1000:1000 0750).
        .file("tmp/newfile", b"in tmp\n", 0o644)
        .file_owned(
            "home/user/.bashrc",
            b"alias ll='ls -l'\n",
            0o644,
            1000,
            1000,
        );
    if cross_layer_hardlink {
        l2.hardlink("usr/bin/su-link", "usr/bin/su")
            .hardlink("etc/hostname-link", "etc/hostname");
    }

    vec![l0.finish(), l1.finish(), l2.finish()]
}

/// Write an OCI image layout with the given layers (gzip) and tag.
fn write_layout(dir: &Path, layers: &[Vec<u8>], tag: &str) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let hex = sha256_hex(data);
        fs::write(blobs.join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    };
    let mut descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        diff_ids.push(format!("sha256:{}", sha256_hex(tar)));
        let (digest, size) = put(&gzip(tar));
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": digest,
            "size": size,
        }));
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": descriptors,
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn umoci_available() -> bool {
    match Command::new("umoci").arg("--version").output() {
        Ok(o) if o.status.success() => true,
        _ => {
            if std::env::var_os("BASIC_DOCKER_REQUIRE_PRIVILEGED").is_some() {
                panic!("umoci is required (apt-get install umoci)");
            }
            eprintln!("skipping: umoci is not installed");
            false
        }
    }
}

fn umoci_unpack(layout: &Path, bundle: &Path) -> PathBuf {
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:fixture", layout.display()))
        .arg(bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}

/// What is compared: everything but inode numbers and directory times.
fn comparable(mut t: BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    for n in t.values_mut() {
        n.ino = 0;
        if n.kind == "dir" {
            n.mtime = (0, 0);
            n.nlink = 0;
            // overlayfs' own xattrs never show in a merged view.
            n.xattrs.retain(|k, _| !k.starts_with("trusted.overlay."));
        }
    }
    t
}

fn assert_same(ours: &BTreeMap<String, Node>, reference: &BTreeMap<String, Node>, what: &str) {
    let a: Vec<_> = ours.keys().collect();
    let b: Vec<_> = reference.keys().collect();
    assert_eq!(a, b, "{what}: different paths");
    for (path, n) in reference {
        assert_eq!(&ours[path], n, "{what}: {path} differs");
    }
}

fn flatten(layers: &[Vec<u8>], dir: &Path) {
    for tar in layers {
        let stats =
            apply_layer(&gzip(tar)[..], dir, &ApplyOptions::new(ApplyMode::Flatten)).unwrap();
        assert_eq!(stats.diff_id, format!("sha256:{}", sha256_hex(tar)));
    }
}

#[test]
fn flattened_and_overlay_match_umoci() {
    if !privileged() || !umoci_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = fixture(false);
    let layout = tmp.path().join("layout");
    write_layout(&layout, &layers, "fixture");
    let reference = comparable(tree(&umoci_unpack(&layout, &tmp.path().join("bundle"))));
    // The fixture really holds the hard cases, as umoci sees them.
    assert!(!reference.contains_key("gone") && !reference.contains_key("etc/removed"));
    assert_eq!(
        reference
            .keys()
            .filter(|k| k.starts_with("opq/"))
            .collect::<Vec<_>>(),
        ["opq/sub", "opq/sub/upper"]
    );
    assert_eq!(reference["f2d"].kind, "file");
    assert_eq!(reference["d2f"].kind, "dir");
    let ping = &reference["usr/bin/ping"];
    assert_eq!(
        ping.xattrs.keys().collect::<Vec<_>>(),
        ["security.capability", "user.foo"]
    );
    assert_eq!((ping.nlink, reference["usr/bin/su"].mode), (2, 0o4755));
    assert_eq!(
        (reference["home/user/.profile"].uid, reference["tmp"].mode),
        (1000, 0o1777)
    );
    assert_eq!(reference["dev/sda"].kind, "block");
    assert!(reference.len() > 30, "{}", reference.len());
    assert_eq!(
        (reference["tmp"].mode, reference["home/user"].uid),
        (0o1777, 1000)
    );

    let flat = tmp.path().join("flat");
    fs::create_dir(&flat).unwrap();
    flatten(&layers, &flat);
    assert_same(&comparable(tree(&flat)), &reference, "flattened");

    assert_same(
        &overlay_merged(&layers, tmp.path()),
        &reference,
        "overlay merged",
    );
}

/// Apply each layer in overlay mode (with the layers below in view) and
/// return the merged overlayfs view.
fn overlay_merged(layers: &[Vec<u8>], base: &Path) -> BTreeMap<String, Node> {
    let mut lowers: Vec<PathBuf> = Vec::new();
    for (i, tar) in layers.iter().enumerate() {
        let dir = base.join(format!("layer{i}"));
        fs::create_dir(&dir).unwrap();
        let opts = ApplyOptions::new(ApplyMode::Overlay).lower_layers(lowers.clone());
        apply_layer(&gzip(tar)[..], &dir, &opts).unwrap();
        lowers.push(dir);
    }
    let merged = base.join("merged");
    fs::create_dir(&merged).unwrap();
    let lowerdir = lowers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(format!("lowerdir={lowerdir}").as_str()),
    )
    .unwrap();
    let merged_tree = comparable(tree(&merged));
    nix::mount::umount(&merged).unwrap();
    merged_tree
}

#[test]
fn cross_layer_hardlink_matches_umoci() {
    if !privileged() || !umoci_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layers = fixture(true);
    let layout = tmp.path().join("layout");
    write_layout(&layout, &layers, "fixture");
    let reference = comparable(tree(&umoci_unpack(&layout, &tmp.path().join("bundle"))));
    assert_eq!(reference["usr/bin/su-link"].nlink, 2);
    let flat = tmp.path().join("flat");
    fs::create_dir(&flat).unwrap();
    flatten(&layers, &flat);
    assert_same(&comparable(tree(&flat)), &reference, "flattened");
    // Overlay mode copies the lower target up, as containerd's applier does.
    assert_same(
        &overlay_merged(&layers, tmp.path()),
        &reference,
        "overlay merged",
    );
}
