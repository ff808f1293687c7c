//! A store on a filesystem with no byte left, and on one mounted read-only: it is
//! read as always, removals free space, and a change that needs space (or any change,
//! read-only) fails saying "no space left on device" or "read-only file system" with
//! the filesystem's mount point. Root only: each test mounts its own small tmpfs.

use std::io::Cursor;

use basic_image_store::{ImageStore, StorageFault, StoreError, import};
use basic_test_support::require_root;
use basic_test_support::small_fs::SmallFs;

/// A layer tar with one file of `size` bytes that no other layer has.
fn unique_layer(name: &str, size: usize) -> Vec<u8> {
    let mut content = vec![0u8; size];
    for (i, b) in content.iter_mut().enumerate() {
        *b = (i * 31 + name.len() * 7 + name.as_bytes()[0] as usize) as u8;
    }
    content[..name.len()].copy_from_slice(name.as_bytes());
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    let file = name.replace(':', "-");
    builder
        .append_data(&mut header, file, &content[..])
        .unwrap();
    builder.into_inner().unwrap()
}

async fn add_image(store: &ImageStore, name: &str) -> String {
    let tar = Cursor::new(unique_layer(name, 256 << 10));
    import(store, tar, "layer.tar", Some(name), |_| {})
        .await
        .expect("import")
}

/// A 16 MiB tmpfs holding a store with `one:1` and `two:1`.
async fn store_on_small_fs() -> (SmallFs, ImageStore) {
    let fs = SmallFs::mount("16m");
    let store = ImageStore::open(fs.path().join("root")).unwrap();
    add_image(&store, "one:1").await;
    add_image(&store, "two:1").await;
    (fs, store)
}

/// "a: b: c" from an error and its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn assert_fault(err: &StoreError, fault: StorageFault, fs: &SmallFs) {
    assert!(
        matches!(err, StoreError::Storage { fault: f, .. } if *f == fault),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&fault.to_string()), "{text}");
    assert!(text.contains(&fs.path().display().to_string()), "{text}");
}

#[tokio::test]
async fn a_full_store_is_read_and_removals_free_space() {
    if !require_root() {
        return;
    }
    let (fs, store) = store_on_small_fs().await;
    drop(store);
    fs.fill();
    // A new process: nothing of SQLite's is open or mapped yet.
    let store = ImageStore::open(fs.path().join("root")).unwrap();
    assert_eq!(store.images().unwrap().len(), 2);
    assert!(store.check(false).unwrap().problems.is_empty());
    assert_eq!(store.disk_usage().unwrap().images, 2);

    let tar = Cursor::new(unique_layer("three:1", 256 << 10));
    let err = import(&store, tar, "layer.tar", Some("three:1"), |_| {})
        .await
        .unwrap_err();
    let text = chain(&err);
    assert!(text.contains("no space left on device"), "{text}");
    assert!(text.contains(&fs.path().display().to_string()), "{text}");

    store.remove("one:1", false).unwrap();
    let freed = fs.free();
    assert!(freed >= 256 << 10, "rmi freed {freed} bytes");
    fs.fill();
    let removed = store.prune(true).unwrap();
    assert!(!removed.is_empty());
    assert!(fs.free() >= 256 << 10, "prune freed {} bytes", fs.free());
    assert!(store.images().unwrap().is_empty());

    fs.empty();
    add_image(&store, "four:1").await;
    assert!(store.check(false).unwrap().problems.is_empty());
}

#[tokio::test]
async fn a_change_too_big_for_the_reserve_fails_and_leaves_the_store_whole() {
    if !require_root() {
        return;
    }
    let (fs, store) = store_on_small_fs().await;
    let journal = store.root().join("metadata.db-journal");
    // The reserve spent (as an older store has none): the commit cannot write its journal.
    std::fs::File::options()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(0)
        .unwrap();
    fs.fill();
    let err = store.remove("one:1", false).unwrap_err();
    assert_fault(&err, StorageFault::NoSpace, &fs);
    // The transaction rolled back and nothing it named left the disk.
    assert_eq!(store.images().unwrap().len(), 2);
    fs.empty();
    assert!(store.check(false).unwrap().problems.is_empty());
    store.remove("one:1", false).unwrap();
    assert!(store.check(false).unwrap().problems.is_empty());
}

#[tokio::test]
async fn a_read_only_store_is_read_and_refuses_changes() {
    if !require_root() {
        return;
    }
    let (fs, store) = store_on_small_fs().await;
    drop(store);
    fs.remount(true);
    let store = ImageStore::open(fs.path().join("root")).unwrap();
    assert_eq!(store.read_only(), Some(StorageFault::ReadOnly));
    assert_eq!(store.images().unwrap().len(), 2);
    assert!(store.resolve("two:1").is_ok());
    assert!(store.check(false).unwrap().problems.is_empty());
    assert_fault(
        &store.remove("one:1", false).unwrap_err(),
        StorageFault::ReadOnly,
        &fs,
    );
    assert_fault(&store.prune(true).unwrap_err(), StorageFault::ReadOnly, &fs);
    assert_fault(&store.lease().unwrap_err(), StorageFault::ReadOnly, &fs);
    drop(store);
    fs.remount(false);
    let store = ImageStore::open(fs.path().join("root")).unwrap();
    assert_eq!(store.read_only(), None);
    store.remove("one:1", false).unwrap();
}

/// An older version kept the database in WAL mode; on a full or read-only
/// filesystem its `-shm` cannot be made, and it is read from the database file.
#[tokio::test]
async fn an_older_wal_store_is_read_where_it_cannot_be_written() {
    if !require_root() {
        return;
    }
    let (fs, store) = store_on_small_fs().await;
    let db = store.root().join("metadata.db");
    drop(store);
    {
        let old = rusqlite::Connection::open(&db).unwrap();
        old.pragma_update(None, "journal_mode", "WAL").unwrap();
    }
    // An older version had no journal beside its database.
    let _ = std::fs::remove_file(fs.path().join("root/metadata.db-journal"));
    fs.fill();
    let store = ImageStore::open(fs.path().join("root")).unwrap();
    assert_eq!(store.read_only(), Some(StorageFault::NoSpace));
    assert_eq!(store.images().unwrap().len(), 2);
    assert_fault(
        &store.remove("one:1", false).unwrap_err(),
        StorageFault::NoSpace,
        &fs,
    );
    drop(store);
    fs.empty();
    fs.remount(true);
    let store = ImageStore::open(fs.path().join("root")).unwrap();
    assert_eq!(store.read_only(), Some(StorageFault::ReadOnly));
    assert_eq!(store.images().unwrap().len(), 2);
    drop(store);
    fs.remount(false);
    // Writable again: switched out of WAL, the journal reserved.
    let store = ImageStore::open(fs.path().join("root")).unwrap();
    store.remove("one:1", false).unwrap();
    assert!(!db.with_file_name("metadata.db-wal").exists());
    let journal = std::fs::metadata(db.with_file_name("metadata.db-journal")).unwrap();
    assert!(journal.len() >= 1 << 20);
}
