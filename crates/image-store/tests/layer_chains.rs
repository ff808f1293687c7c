//! A layer's extracted directory depends on the layers below it (a write through a
//! lower symlink lands where the symlink points), and the store shares layer
//! directories by chain ID, which names the whole stack below: the same layer
//! (same diff ID) on another base is extracted again for it, on the same base it
//! is reused. Pulled from the harness registry, as root.

mod support;

use std::fs;
use std::path::PathBuf;

use basic_image_store::{ImageStore, LayerStatus, PullEvent, PullOptions, chain_ids};
use basic_test_support::image::ImageBuilder;
use basic_test_support::{harness, require_root};
use support::*;

/// The layer both images share: written through `lib`.
fn top(image: ImageBuilder) -> ImageBuilder {
    image.layer(|l| {
        l.file("lib/x.so", b"x\n", 0o755);
    })
}

/// `lib` a symlink to `usr/lib` (merged /usr).
fn merged_usr() -> ImageBuilder {
    top(ImageBuilder::empty().layer(|l| {
        l.dir("usr", 0o755)
            .dir("usr/lib", 0o755)
            .symlink("lib", "usr/lib");
    }))
}

/// `lib` a directory of its own.
fn split_usr() -> ImageBuilder {
    top(ImageBuilder::empty().layer(|l| {
        l.dir("usr", 0o755).dir("usr/lib", 0o755).dir("lib", 0o755);
    }))
}

/// The extracted directories of `reference`'s layers, bottom first.
fn layer_paths(store: &ImageStore, reference: &str) -> Vec<PathBuf> {
    let id = store.resolve(reference).unwrap().id;
    store.layer_paths(&id).unwrap()
}

fn statuses(events: &[PullEvent]) -> Vec<LayerStatus> {
    events
        .iter()
        .filter_map(|e| match e {
            PullEvent::Layer { status, .. } => Some(status.clone()),
            _ => None,
        })
        .filter(|s| matches!(s, LayerStatus::AlreadyExists | LayerStatus::PullComplete))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_layer_on_another_base_is_its_own_directory() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("root")).unwrap();
    let merged = merged_usr().push(&h.open, "tests/chains-merged");
    let split = split_usr().push(&h.open, "tests/chains-split");

    let (pulled, _) = pull_events(&store, &merged, &PullOptions::default()).await;
    pulled.unwrap();
    let (pulled, events) = pull_events(&store, &split, &PullOptions::default()).await;
    let report = pulled.unwrap();
    // Same diff ID on top, other base: nothing to reuse, the top layer is extracted
    // for this stack.
    assert!(report.reused.is_empty(), "{report:?}");
    assert_eq!(
        statuses(&events),
        [LayerStatus::PullComplete, LayerStatus::PullComplete]
    );

    let merged_layers = layer_paths(&store, &merged);
    let split_layers = layer_paths(&store, &split);
    assert_ne!(merged_layers[1], split_layers[1]);
    // Through the symlink on merged /usr, into its own `lib` otherwise.
    assert_eq!(
        fs::read(merged_layers[1].join("usr/lib/x.so")).unwrap(),
        b"x\n"
    );
    assert!(fs::symlink_metadata(merged_layers[1].join("lib")).is_err());
    assert_eq!(fs::read(split_layers[1].join("lib/x.so")).unwrap(), b"x\n");
    assert!(fs::symlink_metadata(split_layers[1].join("usr")).is_err());

    // The chain IDs say so: they name the stack, not the layer.
    let id = store.resolve(&merged).unwrap().id;
    let record = store.image(&id).unwrap();
    let diff_ids: Vec<String> = record.layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = chain_ids(&diff_ids);
    assert_eq!(
        merged_layers[1],
        store.layer_dir(&chains[1]).unwrap().join("diff")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_stack_again_is_reused_as_extracted_through_the_symlink() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("root")).unwrap();
    let first = merged_usr().push(&h.open, "tests/chains-first");
    // The same two layers under another name, with one more on top.
    let second = merged_usr()
        .layer(|l| {
            l.file("lib/y.so", b"y\n", 0o644);
        })
        .push(&h.open, "tests/chains-second");

    let (pulled, _) = pull_events(&store, &first, &PullOptions::default()).await;
    pulled.unwrap();
    let before = layer_paths(&store, &first);
    let (pulled, events) = pull_events(&store, &second, &PullOptions::default()).await;
    let report = pulled.unwrap();
    assert_eq!(report.reused.len(), 2, "{report:?}");
    assert_eq!(
        statuses(&events),
        [
            LayerStatus::AlreadyExists,
            LayerStatus::AlreadyExists,
            LayerStatus::PullComplete
        ]
    );
    let after = layer_paths(&store, &second);
    assert_eq!(&after[..2], &before[..]);
    // The new top layer went through the symlink of the reused bottom one.
    assert_eq!(fs::read(after[2].join("usr/lib/y.so")).unwrap(), b"y\n");
    assert!(fs::symlink_metadata(after[2].join("lib")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_bottom_layer_fails_the_pull_with_its_own_error_and_leaves_nothing() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("root")).unwrap();
    // The bottom layer hard-links a file it does not hold: it fails (there is
    // nothing below it), while the layers above extract and wait for it.
    let reference = ImageBuilder::empty()
        .layer(|l| {
            l.hardlink("broken", "no/such/file");
        })
        .layer(|l| {
            l.file("lib/x.so", b"x\n", 0o755);
        })
        .layer(|l| {
            l.file("lib/y.so", b"y\n", 0o755);
        })
        .push(&h.open, "tests/chains-failing");
    let options = PullOptions::default().concurrency(3);
    let (pulled, _) = pull_events(&store, &reference, &options).await;
    let err = pulled.unwrap_err();
    let chain = format!("{:?}", anyhow_like(&err));
    assert!(chain.contains("no/such/file"), "{chain}");
    assert!(layer_dirs(&store).is_empty());
    assert!(wait_tmp_empty(&store).await.is_empty());
}

fn anyhow_like(e: &dyn std::error::Error) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        out.push(s.to_string());
        source = s.source();
    }
    out
}
