//! `load`, `save`, `import` and `system check` run as a user runs them,
//! with `--root` in a temporary directory, against the harness registry and
//! skopeo (which the harness installs).

mod common;

use common::{LOCAL_TOOL_LIMIT, basic_docker, stdout, tmp_is_empty, with_stdin};

use std::io::Write as _;
use std::process::{Command, Output};

use basic_test_support::bounded::{COMMAND_LIMIT, output_within};
use basic_test_support::{harness, require_root};

fn skopeo(args: &[&str]) -> Output {
    let out = output_within(
        Command::new("skopeo").args(args),
        COMMAND_LIMIT,
        &format!("skopeo {args:?} (scripts/harness.sh install)"),
    );
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn skopeo_archives_load_and_save_round_trips() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let busybox = h.reference("busybox_docker");
    let multiarch = h.reference("multiarch_latest");
    let id = h.fixture("busybox_docker")["config"]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // A docker-archive written by skopeo, gzip-compressed, from a file.
    let docker = dir.path().join("bb.tar");
    let docker_ref = format!("docker-archive:{}:example/busybox:saved", docker.display());
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{busybox}"),
        &docker_ref,
    ]);
    let gz = output_within(
        Command::new("gzip").arg("-k").arg(&docker),
        LOCAL_TOOL_LIMIT,
        "gzip",
    );
    assert!(gz.status.success());
    let root = dir.path().join("root");
    let gz_path = format!("{}.gz", docker.display());
    let text = stdout(&basic_docker(&root, &["load", "-i", &gz_path]));
    assert_eq!(text.trim(), "Loaded image: example/busybox:saved");
    let images = stdout(&basic_docker(&root, &["images", "-q"]));
    assert!(id.contains(images.trim()), "{images}");

    // An oci-archive from STDIN (an index: the host's platform is loaded).
    let oci = dir.path().join("ma.tar");
    let oci_ref = format!("oci-archive:{}:example/multiarch:v1", oci.display());
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{multiarch}"),
        &oci_ref,
    ]);
    let text = stdout(&with_stdin(&root, &["load"], &std::fs::read(&oci).unwrap()));
    assert_eq!(text.trim(), "Loaded image: example/multiarch:v1");
    assert!(tmp_is_empty(&root));

    // save: skopeo reads it, and it loads into a fresh store with the same id.
    let saved = dir.path().join("saved.tar");
    let saved_str = saved.to_str().unwrap();
    stdout(&basic_docker(
        &root,
        &["save", "-o", saved_str, "example/busybox:saved"],
    ));
    let inspect = skopeo(&["inspect", &format!("docker-archive:{saved_str}")]);
    let inspect: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1, "{inspect}");
    let fresh = dir.path().join("fresh");
    let text = stdout(&basic_docker(&fresh, &["load", "-i", saved_str]));
    assert_eq!(text.trim(), "Loaded image: example/busybox:saved");
    let inspected = stdout(&basic_docker(&fresh, &["inspect", "example/busybox:saved"]));
    assert!(inspected.contains(&id), "{inspected}");

    // save to STDOUT, load from STDIN.
    let out = basic_docker(&root, &["save", "example/multiarch:v1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&with_stdin(&fresh, &["load"], &out.stdout));
    assert_eq!(text.trim(), "Loaded image: example/multiarch:v1");
    assert!(tmp_is_empty(&fresh));
}

#[test]
fn a_broken_archive_leaves_the_store_as_it_was() {
    let Some(_h) = harness() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = with_stdin(
        &root,
        &["load"],
        b"this is not a tar archive at all, just bytes",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("STDIN"), "{err}");
    assert_eq!(stdout(&basic_docker(&root, &["images", "-q"])).trim(), "");
    assert!(tmp_is_empty(&root));
}

#[test]
fn import_makes_a_one_layer_image() {
    let Some(_h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/hello"), "imported\n").unwrap();
    let tarball = dir.path().join("rootfs.tar.gz");
    let mut tar = Command::new("tar");
    tar.arg("-C")
        .arg(&rootfs)
        .arg("-czf")
        .arg(&tarball)
        .arg(".");
    let status = output_within(&mut tar, LOCAL_TOOL_LIMIT, "tar -czf").status;
    assert!(status.success());
    let root = dir.path().join("root");
    let id = stdout(&basic_docker(
        &root,
        &["import", tarball.to_str().unwrap(), "my/rootfs:v1"],
    ));
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let inspect = stdout(&basic_docker(&root, &["inspect", "my/rootfs:v1"]));
    let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(inspect[0]["Id"], id);
    assert_eq!(inspect[0]["Os"], "linux");
    let layers = inspect[0]["RootFS"]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    // The diff ID is the sha256 of the uncompressed tar.
    let plain = output_within(
        Command::new("sh")
            .arg("-c")
            .arg(format!("gzip -dc {} | sha256sum", tarball.display())),
        LOCAL_TOOL_LIMIT,
        "gzip -dc | sha256sum",
    );
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert_eq!(layers[0], format!("sha256:{}", &plain[..64]));
    assert!(tmp_is_empty(&root));
}

#[test]
fn system_check_finds_and_repairs_then_pull_works_again() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let busybox = h.fixture("busybox_latest");
    let reference = h.reference("busybox_latest");
    stdout(&basic_docker(root, &["pull", "-q", &reference]));
    assert_eq!(
        stdout(&basic_docker(root, &["system", "check"])).trim(),
        "No problems found"
    );

    let config = busybox["config"]["digest"].as_str().unwrap();
    let diff_id = busybox["diff_ids"][0].as_str().unwrap();
    let blob = root.join("blobs/sha256").join(&config[7..]);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&blob)
        .unwrap()
        .write_all(b"corruption")
        .unwrap();
    std::fs::remove_dir_all(root.join("layers").join(&diff_id[7..]).join("diff")).unwrap();

    let out = basic_docker(root, &["system", "check"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("blob {config} is corrupt")),
        "{text}"
    );
    assert!(
        text.contains(&format!("layer {diff_id}: its directory is missing")),
        "{text}"
    );

    let text = stdout(&basic_docker(root, &["system", "check", "--repair"]));
    assert!(text.contains(&format!("Deleted: {config}")), "{text}");
    assert_eq!(
        stdout(&basic_docker(root, &["system", "check"])).trim(),
        "No problems found"
    );
    assert_eq!(stdout(&basic_docker(root, &["images", "-q"])).trim(), "");

    stdout(&basic_docker(root, &["pull", "-q", &reference]));
    assert_eq!(
        stdout(&basic_docker(root, &["system", "check"])).trim(),
        "No problems found"
    );
    let hello = root
        .join("layers")
        .join(&diff_id[7..])
        .join("diff/bin/busybox");
    assert!(hello.exists());
}
