//! `load` of hand-made archives: good ones (docker legacy, OCI, gzip) load;
//! hostile or broken ones fail with an error naming the member or digest and
//! leave the store exactly as it was (no image, no layer, no blob, empty tmp/).

use std::io::{Cursor, Write as _};
use std::path::Path;

use basic_image_store::{ImageStore, LoadError, load};
use basic_test_support::require_root;
use serde_json::json;
use sha2::{Digest as _, Sha256};

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A layer tar with one file.
fn layer_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    builder.into_inner().unwrap()
}

fn config(diff_ids: &[String]) -> Vec<u8> {
    json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    })
    .to_string()
    .into_bytes()
}

/// Archive members, written with raw names (so `..` and `/abs` get through,
/// as a hostile archive would have them).
fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// A legacy `docker save` archive of one image with one layer.
fn docker_archive(tag: &str) -> (Vec<u8>, String) {
    let layer = layer_tar("hello.txt", b"hello from an archive\n");
    let cfg = config(&[digest(&layer)]);
    let cfg_name = format!("{}.json", hex(&cfg));
    let manifest = json!([{"Config": cfg_name, "RepoTags": [tag], "Layers": ["abc/layer.tar"]}]);
    let bytes = archive(&[
        ("abc/layer.tar", &layer),
        (&cfg_name, &cfg),
        ("manifest.json", manifest.to_string().as_bytes()),
    ]);
    (bytes, digest(&cfg))
}

fn assert_untouched(store: &ImageStore) {
    assert!(store.images().unwrap().is_empty(), "an image was recorded");
    assert!(store.layers().unwrap().is_empty(), "a layer was recorded");
    let blobs = std::fs::read_dir(store.root().join("blobs/sha256")).unwrap();
    assert_eq!(blobs.count(), 0, "a blob was left");
    assert_empty(&store.tmp_dir());
}

fn assert_empty(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in {}: {left:?}", dir.display());
}

async fn load_bytes(
    store: &ImageStore,
    bytes: Vec<u8>,
) -> Result<Vec<basic_image_store::LoadedImage>, LoadError> {
    load(store, Cursor::new(bytes), "test.tar", |_| {}).await
}

#[tokio::test]
async fn docker_archive_loads_plain_and_gzipped() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let (bytes, id) = docker_archive("example.com/a/b:1");
    let loaded = load_bytes(&store, bytes.clone()).await.unwrap();
    assert_eq!(loaded[0].id, id);
    assert_eq!(loaded[0].tags, vec!["example.com/a/b:1".to_string()]);
    let image = store.resolve("example.com/a/b:1").unwrap();
    let diff = store
        .layer_dir(&image.layers[0].chain_id)
        .unwrap()
        .join("diff/hello.txt");
    assert_eq!(std::fs::read(diff).unwrap(), b"hello from an archive\n");
    assert_empty(&store.tmp_dir());

    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&bytes).unwrap();
    let loaded = load_bytes(&store, gz.finish().unwrap()).await.unwrap();
    assert_eq!(loaded[0].id, id);
}

#[tokio::test]
async fn member_names_that_leave_the_archive_are_refused() {
    for name in ["../evil", "a/../../evil", "/etc/evil"] {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let bytes = archive(&[(name, b"x"), ("manifest.json", b"[]")]);
        let err = load_bytes(&store, bytes).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unsafe name") && text.contains(name),
            "{text}"
        );
        assert_untouched(&store);
    }
}

#[tokio::test]
async fn a_missing_layer_member_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let cfg = config(&[digest(b"nothing")]);
    let manifest = json!([{"Config": "c.json", "RepoTags": null, "Layers": ["gone/layer.tar"]}]);
    let bytes = archive(&[
        ("c.json", &cfg),
        ("manifest.json", manifest.to_string().as_bytes()),
    ]);
    let err = load_bytes(&store, bytes).await.unwrap_err();
    assert!(
        matches!(err, LoadError::MissingMember { ref member, .. } if member == "gone/layer.tar"),
        "{err}"
    );
    assert_untouched(&store);
}

/// A name that would clear the screen and print a message of its own shows
/// as text in the error.
#[tokio::test]
async fn a_crafted_member_name_is_escaped_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let cfg = config(&[digest(b"nothing")]);
    let crafted = "\x1b[2J\x1b[HLoaded image: trusted:latest\r\nlayer.tar";
    let manifest = json!([{"Config": "c.json", "RepoTags": null, "Layers": [crafted]}]);
    let bytes = archive(&[
        ("c.json", &cfg),
        ("manifest.json", manifest.to_string().as_bytes()),
    ]);
    let message = load_bytes(&store, bytes).await.unwrap_err().to_string();
    assert!(!message.contains(['\x1b', '\r']), "{message:?}");
    assert!(
        message
            .contains(r"member \x1b[2J\x1b[HLoaded image: trusted:latest\r\nlayer.tar is missing"),
        "{message}"
    );
}

#[tokio::test]
async fn a_blob_that_does_not_hash_to_its_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let wrong = format!("blobs/sha256/{}", hex(b"something else"));
    let bytes = archive(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        (&wrong, b"tampered"),
        ("index.json", br#"{"schemaVersion":2,"manifests":[]}"#),
    ]);
    let err = load_bytes(&store, bytes).await.unwrap_err();
    assert!(
        matches!(err, LoadError::DigestMismatch { ref member, ref actual, .. }
            if *member == wrong && *actual == digest(b"tampered")),
        "{err}"
    );
    assert_untouched(&store);
}

#[tokio::test]
async fn a_layer_whose_diff_id_is_wrong_leaves_nothing() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let layer = layer_tar("f", b"content");
    let cfg = config(&[digest(b"not this layer")]);
    let manifest = json!([{"Config": "c.json", "RepoTags": ["x:1"], "Layers": ["l.tar"]}]);
    let bytes = archive(&[
        ("l.tar", &layer),
        ("c.json", &cfg),
        ("manifest.json", manifest.to_string().as_bytes()),
    ]);
    let err = load_bytes(&store, bytes).await.unwrap_err();
    let chain = format!("{err:?}");
    assert!(chain.contains("DiffId"), "{chain}");
    assert_untouched(&store);
}

#[tokio::test]
async fn an_oci_archive_loads_by_its_ref_name() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let layer = layer_tar("oci.txt", b"oci\n");
    let cfg = config(&[digest(&layer)]);
    let manifest = json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&cfg), "size": cfg.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(&layer), "size": layer.len()}],
    })
    .to_string();
    let index = json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": digest(manifest.as_bytes()), "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "oci/test:v1"},
    }]})
    .to_string();
    let names = [
        format!("blobs/sha256/{}", hex(&layer)),
        format!("blobs/sha256/{}", hex(&cfg)),
        format!("blobs/sha256/{}", hex(manifest.as_bytes())),
    ];
    let bytes = archive(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        (&names[0], &layer),
        (&names[1], &cfg),
        (&names[2], manifest.as_bytes()),
        ("index.json", index.as_bytes()),
    ]);
    let loaded = load_bytes(&store, bytes).await.unwrap();
    assert_eq!(loaded[0].tags, vec!["oci/test:v1".to_string()]);
    assert_eq!(store.resolve("oci/test:v1").unwrap().id, digest(&cfg));
}

/// docker writes `"rootfs": {"type": "layers"}`, without `diff_ids`, for an
/// image with no layer (`FROM scratch` and a `CMD`): it loads, and runs on an
/// empty root.
#[tokio::test]
async fn an_image_without_layers_loads() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let cfg = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/nothing"], "Entrypoint": null},
        "rootfs": {"type": "layers"},
    })
    .to_string()
    .into_bytes();
    let cfg_name = format!("{}.json", hex(&cfg));
    let manifest = json!([{"Config": cfg_name, "RepoTags": ["empty:1"], "Layers": []}]);
    let bytes = archive(&[
        (&cfg_name, &cfg),
        ("manifest.json", manifest.to_string().as_bytes()),
    ]);
    let loaded = load_bytes(&store, bytes).await.unwrap();
    assert_eq!(loaded[0].id, digest(&cfg));
    let image = store.resolve("empty:1").unwrap();
    assert!(image.layers.is_empty());
    assert_eq!(image.architecture.as_deref(), Some("amd64"));
    assert!(store.layer_paths(&image.id).unwrap().is_empty());
    assert_eq!(
        store.image_configuration(&image.id).unwrap().cmd(),
        ["/nothing"]
    );
}
