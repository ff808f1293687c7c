//! `pull`, `images`, `inspect`, `rmi` run as a user runs them, with `--root`
//! in a temporary directory, against the harness registries.

mod common;

use common::{basic_docker, stdout};

use basic_test_support::{harness, require_root};
use serde_json::Value;

#[test]
fn pull_images_inspect_rmi_round_trip() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let busybox = h.fixture("busybox_latest");
    let reference = busybox["reference"].as_str().unwrap();
    let layer = busybox["layers"][0]["digest"].as_str().unwrap();
    let short_layer = &layer[7..19];
    let id = busybox["config"]["digest"].as_str().unwrap();

    let text = stdout(&basic_docker(root, &["pull", reference]));
    assert!(
        text.contains(&format!("{short_layer}: Pulling fs layer")),
        "{text}"
    );
    assert!(
        text.contains(&format!("{short_layer}: Pull complete")),
        "{text}"
    );
    assert!(
        text.contains(&format!("Digest: {}", busybox["digest"].as_str().unwrap())),
        "{text}"
    );
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {reference}")),
        "{text}"
    );

    let again = stdout(&basic_docker(root, &["pull", reference]));
    assert!(
        again.contains(&format!("{short_layer}: Already exists")),
        "{again}"
    );
    assert!(again.contains("Status: Image is up to date for"), "{again}");

    let quiet = stdout(&basic_docker(root, &["pull", "-q", reference]));
    assert_eq!(quiet.trim(), reference);

    let table = stdout(&basic_docker(root, &["images"]));
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("REPOSITORY"), "{table}");
    for column in ["TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(column), "{header}");
    }
    let row = lines.next().unwrap();
    let repository = format!("{}/fixtures/busybox", h.open);
    assert!(row.starts_with(&repository), "{row}");
    assert!(row.contains(&id[7..19]), "{row}");
    assert!(row.contains("ago"), "{row}");

    let ids = stdout(&basic_docker(root, &["images", "-q"]));
    assert_eq!(ids.trim(), &id[7..19]);
    let json: Value =
        serde_json::from_str(stdout(&basic_docker(root, &["images", "--format", "json"])).trim())
            .unwrap();
    assert_eq!(json["Tag"], "latest");

    let inspected: Value =
        serde_json::from_str(&stdout(&basic_docker(root, &["inspect", reference]))).unwrap();
    let image = &inspected[0];
    assert_eq!(image["Id"], id);
    assert_eq!(image["RepoTags"][0], reference);
    assert_eq!(image["RootFS"]["Layers"], busybox["diff_ids"]);
    assert_eq!(image["Config"]["Cmd"][0], "sh");

    let removed = stdout(&basic_docker(root, &["rmi", reference]));
    assert!(
        removed.contains(&format!("Untagged: {reference}")),
        "{removed}"
    );
    assert!(removed.contains(&format!("Deleted: {id}")), "{removed}");
    assert_eq!(stdout(&basic_docker(root, &["images", "-q"])).trim(), "");
    assert!(
        std::fs::read_dir(root.join("layers"))
            .unwrap()
            .next()
            .is_none()
    );

    let missing = basic_docker(root, &["rmi", reference]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("No such image"));
}
