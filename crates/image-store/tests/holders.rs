//! Containers and mounts hold the images they use: `rmi` refuses (docker's
//! conflict message), `rmi -f` only untags, GC and prune keep the layers, and
//! releasing the last holder of a force-removed image collects it.

mod support;

use basic_image_store::{HolderKind, ImageStore, Removal, StoreError, import};
use basic_test_support::require_root;
use support::{entries, layer_dirs};

const CONTAINER: &str = "4d3c1e0d3b0a9f8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a39281706";

/// A layer tar with one file.
fn layer_tar(content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, "hello", content).unwrap();
    builder.into_inner().unwrap()
}

/// A store with `app:1` imported from a one-file tarball; returns its id.
async fn store_with_image() -> (tempfile::TempDir, ImageStore, String) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let tar = std::io::Cursor::new(layer_tar(b"hello\n"));
    let id = import(&store, tar, "app.tar", Some("app:1"), |_| {})
        .await
        .expect("import");
    (dir, store, id)
}

fn short(id: &str) -> &str {
    &id.trim_start_matches("sha256:")[..12]
}

#[tokio::test]
async fn rmi_of_a_held_image_fails_and_keeps_everything() {
    if !require_root() {
        return;
    }
    let (_dir, store, id) = store_with_image().await;
    store.hold(HolderKind::Container, CONTAINER, &id).unwrap();
    let layers = layer_dirs(&store);
    let blobs = entries(&store.root().join("blobs/sha256"));
    assert_eq!(layers.len(), 1);

    let err = store.remove("app:1", false).unwrap_err();
    assert!(matches!(err, StoreError::InUse { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to remove repository reference \"app:1\" (must force) - \
             container {} is using its referenced image {}",
            &CONTAINER[..12],
            short(&id)
        )
    );
    let err = store.remove(short(&id), false).unwrap_err();
    assert!(matches!(err, StoreError::InUseById { .. }), "{err:?}");

    // The failed removal rolled back: the tag is still there.
    assert_eq!(store.image(&id).unwrap().repo_tags, ["app:1"]);
    // Neither GC nor prune (even `-a`) touches a held image.
    assert!(store.gc().unwrap().is_empty());
    assert!(store.prune(true).unwrap().is_empty());
    assert_eq!(layer_dirs(&store), layers);
    assert_eq!(entries(&store.root().join("blobs/sha256")), blobs);
    assert_eq!(store.holders_of(&id).unwrap().len(), 1);
}

#[tokio::test]
async fn force_untags_and_the_release_collects() {
    if !require_root() {
        return;
    }
    let (_dir, store, id) = store_with_image().await;
    store.hold(HolderKind::Container, CONTAINER, &id).unwrap();
    let layers = layer_dirs(&store);

    let removals = store.remove("app:1", true).unwrap();
    assert_eq!(removals, [Removal::Untagged("app:1".into())]);
    let record = store.image(&id).expect("kept while held");
    assert!(record.repo_tags.is_empty());
    assert!(store.gc().unwrap().is_empty());
    assert!(store.prune(false).unwrap().is_empty());
    assert_eq!(layer_dirs(&store), layers);

    let removals = store.release(HolderKind::Container, CONTAINER).unwrap();
    assert!(
        removals.contains(&Removal::Deleted(id.clone())),
        "{removals:?}"
    );
    assert!(matches!(store.image(&id), Err(StoreError::NoSuchImage(_))));
    assert!(layer_dirs(&store).is_empty());
    assert!(entries(&store.root().join("blobs/sha256")).is_empty());
    // Releasing twice is harmless (cleanup paths may run twice).
    assert!(
        store
            .release(HolderKind::Container, CONTAINER)
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn after_release_rmi_removes_the_layers() {
    if !require_root() {
        return;
    }
    let (_dir, store, id) = store_with_image().await;
    store.hold(HolderKind::Mount, &id, &id).unwrap();
    let err = store.remove("app:1", false).unwrap_err().to_string();
    assert!(
        err.ends_with(&format!(
            "- mount {} is using its referenced image {}",
            short(&id),
            short(&id)
        )),
        "{err}"
    );
    assert!(store.release(HolderKind::Mount, &id).unwrap().is_empty());
    assert!(store.holders_of(&id).unwrap().is_empty());
    let removals = store.remove("app:1", false).unwrap();
    assert!(removals.contains(&Removal::Deleted(id)), "{removals:?}");
    assert!(layer_dirs(&store).is_empty());
}

#[tokio::test]
async fn tagged_again_a_force_removed_image_survives_its_release() {
    if !require_root() {
        return;
    }
    let (_dir, store, id) = store_with_image().await;
    store.hold(HolderKind::Container, CONTAINER, &id).unwrap();
    store.remove("app:1", true).unwrap();
    store.tag(&id, "app:2").unwrap();
    store.release(HolderKind::Container, CONTAINER).unwrap();
    assert_eq!(store.image(&id).unwrap().repo_tags, ["app:2"]);
    assert_eq!(layer_dirs(&store).len(), 1);
}

#[tokio::test]
async fn holding_a_missing_image_fails() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let missing = format!("sha256:{}", "a".repeat(64));
    let err = store
        .hold(HolderKind::Container, CONTAINER, &missing)
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSuchImage(_)), "{err:?}");
}

/// A container is found as docker finds one: full id, then name (with or without its `/`),
/// then a unique id prefix; an ambiguous prefix and pattern characters are refused.
#[tokio::test]
async fn containers_are_found_by_id_then_name_then_unique_prefix() {
    if !require_root() {
        return;
    }
    let (_dir, store, id) = store_with_image().await;
    let record = |cid: &str, name: &str| basic_image_store::ContainerRecord {
        id: cid.to_string(),
        name: name.to_string(),
        image_id: id.clone(),
        image: "app:1".to_string(),
        created: 1,
        config: serde_json::json!({"cmd": ["true"]}),
        started: None,
        exit: None,
        restart_count: 0,
    };
    let a = format!("abc1{}", "0".repeat(60));
    let b = format!("abc2{}", "0".repeat(60));
    // A container named like the other's id prefix: the name wins over the prefix.
    store.create_container(&record(&a, "web")).unwrap();
    store.create_container(&record(&b, "abc1")).unwrap();
    assert_eq!(store.container(&a).unwrap().name, "web");
    assert_eq!(store.container("web").unwrap().id, a);
    assert_eq!(store.container("/web").unwrap().id, a);
    assert_eq!(store.container("abc1").unwrap().id, b);
    assert_eq!(store.container("abc2").unwrap().id, b);
    let err = store.container("abc").unwrap_err();
    assert!(
        matches!(err, StoreError::AmbiguousContainer { count: 2, .. }),
        "{err:?}"
    );
    for pattern in ["ab%", "ab_1", "%", ""] {
        let err = store.container(pattern).unwrap_err();
        assert!(
            matches!(err, StoreError::NoSuchContainer(_)),
            "{pattern}: {err:?}"
        );
    }
}
