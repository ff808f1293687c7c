//! The store is its owner's: the root can be passed through but not listed,
//! what holds images and containers is owner-only, the database (which holds
//! containers' settings) is owner-only, and a store made with wider modes by an
//! older version is tightened on open without touching the layers' contents.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use basic_image_store::{ImageStore, import};
use support::layer_dirs;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A layer tar with a directory and a file of the given modes.
fn layer_tar() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, mode) in [
        ("pub", tar::EntryType::Directory, 0o755),
        ("pub/readme", tar::EntryType::Regular, 0o644),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(0);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        builder.append_data(&mut header, path, &b""[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// The gating paths of a store and the modes they must have.
fn expected(root: &Path) -> Vec<(std::path::PathBuf, u32)> {
    let mut paths = vec![(root.to_path_buf(), 0o711)];
    for dir in ["blobs", "blobs/sha256", "layers", "tmp", "containers"] {
        paths.push((root.join(dir), 0o700));
    }
    for file in ["metadata.db", "lock"] {
        paths.push((root.join(file), 0o600));
    }
    paths
}

#[tokio::test]
async fn a_new_store_is_private_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    import(
        &store,
        std::io::Cursor::new(layer_tar()),
        "l.tar",
        Some("app:1"),
        |_| {},
    )
    .await
    .unwrap();
    for (path, want) in expected(&root) {
        assert_eq!(mode(&path), want, "{}", path.display());
    }
    assert_eq!(store.containers_dir(), root.join("containers"));
    // SQLite's side files take the database's mode.
    for side in ["metadata.db-wal", "metadata.db-shm"] {
        let path = root.join(side);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{side}");
        }
    }
}

#[tokio::test]
async fn an_old_wide_store_is_tightened_on_open_and_layers_keep_their_modes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let id = import(
        &store,
        std::io::Cursor::new(layer_tar()),
        "l.tar",
        Some("app:1"),
        |_| {},
    )
    .await
    .unwrap();
    let layer = layer_dirs(&store).pop().unwrap();
    let diff = root.join("layers").join(layer).join("diff");
    let before: Vec<u32> = [&diff, &diff.join("pub"), &diff.join("pub/readme")]
        .iter()
        .map(|p| mode(p))
        .collect();
    drop(store);

    // What an older version left: everything world-readable, a setgid root.
    for (path, _) in expected(&root) {
        chmod(&path, if path.is_dir() { 0o755 } else { 0o644 });
    }
    chmod(&root, 0o2777);

    let store = ImageStore::open(&root).unwrap();
    for (path, want) in expected(&root) {
        let want = if path == root { 0o2711 } else { want };
        assert_eq!(mode(&path), want, "{}", path.display());
    }
    let after: Vec<u32> = [&diff, &diff.join("pub"), &diff.join("pub/readme")]
        .iter()
        .map(|p| mode(p))
        .collect();
    assert_eq!(before, after, "modes inside a layer are the image's");
    assert_eq!(
        store.resolve("app:1").unwrap().id,
        id,
        "the image still works"
    );

    // Opening again changes nothing; a mode narrower than ours is kept.
    chmod(&root, 0o700);
    ImageStore::open(&root).unwrap();
    assert_eq!(mode(&root), 0o700);
}
