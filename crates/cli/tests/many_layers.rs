//! Images of more layers than overlayfs stacks in one mount (500) pull and run: the
//! bottom layers are merged into one directory, once, kept with the image by chain ID
//! (so the next container starts at once) and removed with it; `run` says why the
//! first start took longer.

mod common;

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{Cleanup, basic_docker, stdout};

use basic_test_support::image::ImageBuilder;
use basic_test_support::{harness, require_root};

/// busybox, then `layers - 1` tiny layers: the first writes `/bottom`, `/gone` and
/// `/deep-gone`, the second whites `/gone` out (both deep in the merged part), each
/// other writes its number modulo 10 to `/n`, and the top one also whites `/deep-gone`
/// out (across the merge). So only a dozen blobs are distinct (images repeat layers
/// too: docker's empty layer), which keeps the push short, while every layer is its own
/// directory (its own chain ID) to stack.
fn image_of(layers: usize) -> ImageBuilder {
    let mut image = ImageBuilder::busybox().layer(|l| {
        l.file("bottom", b"from the second layer\n", 0o644)
            .file("gone", b"gone\n", 0o644)
            .file("deep-gone", b"deep\n", 0o644);
    });
    image = image.layer(|l| {
        l.file(".wh.gone", b"", 0o644);
    });
    for i in 3..layers - 1 {
        image = image.layer(|l| {
            l.file("n", format!("{}\n", i % 10).as_bytes(), 0o644);
        });
    }
    image.layer(|l| {
        l.file("n", b"top\n", 0o644)
            .file(".wh.deep-gone", b"", 0o644);
    })
}

/// The merges the store at `root` keeps (`layers/<chain-id>/merged`).
fn merges(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root.join("layers"))
        .unwrap()
        .map(|e| e.unwrap().path().join("merged"))
        .filter(|p| p.is_dir())
        .collect()
}

/// Pushes an image of `layers` layers, runs it twice, removes it, and checks what the
/// container sees, what `run` says, and what the store keeps.
fn runs_with(layers: usize) {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let image = image_of(layers).push_direct(&h.open, &format!("tests/layers-{layers}"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // Pulling them was never the problem: running them was.
    stdout(&basic_docker(root, &["pull", "-q", &image]));
    let _cleanup = Cleanup::new(root, &[]).images(&[image.as_str()]);

    let first = Instant::now();
    let out = basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &image,
            "sh",
            "-c",
            "cat /bottom /n && test ! -e /gone && test ! -e /deep-gone",
        ],
    );
    let first = first.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stdout(&out), "from the second layer\ntop\n", "{err}");
    let merged = layers - 499;
    let expected = format!(
        "WARNING: the image has {layers} layers, more than overlayfs stacks in one mount \
         (500): its bottom {merged} layers were merged into one directory"
    );
    assert!(err.contains(&expected), "{err}");
    let kept = merges(root);
    assert_eq!(kept.len(), 1, "one merge, kept by chain ID: {kept:?}");
    let inode = std::fs::metadata(&kept[0]).unwrap().ino();

    // The second container stacks on the same merge: nothing to say, nothing redone.
    let second = Instant::now();
    let out = basic_docker(
        root,
        &["run", "--rm", "--network", "none", &image, "cat", "/bottom"],
    );
    let second = second.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(stdout(&out), "from the second layer\n", "{err}");
    assert!(!err.contains("WARNING"), "{err}");
    assert_eq!(merges(root), kept);
    assert_eq!(std::fs::metadata(&kept[0]).unwrap().ino(), inode);
    eprintln!("{layers} layers: first run {first:?}, second {second:?}");

    // The merge goes with the image.
    stdout(&basic_docker(root, &["rmi", &image]));
    assert!(merges(root).is_empty());
    assert!(!kept[0].exists());
}

#[test]
fn six_hundred_layers_run() {
    runs_with(600);
}

#[test]
fn five_thousand_layers_run() {
    runs_with(5000);
}
