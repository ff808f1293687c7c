//! A container kept after `run` (no `--rm`) and an `image mount` hold their
//! image: `rmi` fails with docker's conflict message and the layers stay;
//! `rmi -f` only untags; once released, the layers can go.

mod common;

use common::{basic_docker, ok};

use std::path::Path;

use basic_test_support::{harness, require_root};

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A fresh root with busybox pulled; `None` when skipped.
fn pulled() -> Option<(tempfile::TempDir, String, String)> {
    let h = harness()?;
    if !require_root() {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = h.reference("busybox_latest");
    ok(basic_docker(dir.path(), &["pull", "-q", &image]));
    let id = ok(basic_docker(dir.path(), &["images", "-q"]));
    let id = id.lines().next().unwrap_or_default().to_string();
    Some((dir, image, id))
}

#[test]
fn rmi_of_an_image_a_kept_container_uses_fails_as_docker() {
    let Some((dir, image, _)) = pulled() else {
        return;
    };
    let root = dir.path();
    ok(basic_docker(root, &["run", &image, "true"]));
    let containers = names(&root.join("containers"));
    assert_eq!(containers.len(), 1, "{containers:?}");
    let container = &containers[0];
    let layers = names(&root.join("layers"));
    assert!(!layers.is_empty());
    let image_id = ok(basic_docker(root, &["images", "-q"]));

    let out = basic_docker(root, &["rmi", &image]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "Error response from daemon: conflict: unable to remove repository reference \"{image}\" \
         (must force) - container {} is using its referenced image {image_id}",
        &container[..12]
    );
    assert_eq!(stderr.trim(), expected);
    assert_eq!(names(&root.join("layers")), layers);
    assert!(ok(basic_docker(root, &["images"])).contains(&image_id));

    // `-f` untags; the image stays (as `<none>`) with its layers.
    let out = ok(basic_docker(root, &["rmi", "-f", &image]));
    assert!(out.contains("Untagged:"), "{out}");
    assert!(!out.contains("Deleted:"), "{out}");
    assert_eq!(names(&root.join("layers")), layers);
    assert_eq!(ok(basic_docker(root, &["images", "-q"])), image_id);
    ok(basic_docker(root, &["image", "prune", "-a"]));
    assert_eq!(names(&root.join("layers")), layers);
}

#[test]
fn a_run_with_rm_releases_and_rmi_then_removes_the_layers() {
    let Some((dir, image, _)) = pulled() else {
        return;
    };
    let root = dir.path();
    ok(basic_docker(root, &["run", "--rm", &image, "true"]));
    assert!(names(&root.join("containers")).is_empty());
    let out = ok(basic_docker(root, &["rmi", &image]));
    assert!(out.contains("Deleted:"), "{out}");
    assert!(names(&root.join("layers")).is_empty());
}

#[test]
fn an_image_mount_holds_until_unmounted() {
    let Some((dir, image, id)) = pulled() else {
        return;
    };
    let root = dir.path();
    ok(basic_docker(root, &["image", "mount", &image]));
    let out = basic_docker(root, &["rmi", &image]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("(must force) - mount "), "{stderr}");
    assert!(!names(&root.join("layers")).is_empty());

    ok(basic_docker(root, &["image", "unmount", &image]));
    let out = ok(basic_docker(root, &["rmi", &image]));
    assert!(out.contains(&format!("Deleted: sha256:{id}")), "{out}");
    assert!(names(&root.join("layers")).is_empty());
}
