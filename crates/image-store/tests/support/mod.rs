//! Shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

use basic_image_store::{ImageStore, PullError, PullEvent, PullOptions, PullReport, pull};
use basic_registry::{Reference, RegistryClient};

/// A client for the harness and fake registries (loopback speaks plain HTTP).
pub fn client() -> RegistryClient {
    RegistryClient::builder().build().expect("registry client")
}

/// Pulls `reference`, collecting the events.
pub async fn pull_events(
    store: &ImageStore,
    reference: &str,
    options: &PullOptions,
) -> (Result<PullReport, PullError>, Vec<PullEvent>) {
    let events = std::sync::Mutex::new(Vec::new());
    let reference = Reference::parse(reference).expect("reference");
    let result = pull(store, &client(), &reference, options, |e| {
        events.lock().unwrap().push(e)
    })
    .await;
    (result, events.into_inner().unwrap())
}

/// Names in a directory, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
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

/// Waits (up to 5 s) for `tmp/` to be empty: blocking extraction tasks of an
/// abandoned pull finish on their own, just after the pull returns.
pub async fn wait_tmp_empty(store: &ImageStore) -> Vec<String> {
    for _ in 0..100 {
        let left = entries(&store.tmp_dir());
        if left.is_empty() {
            return left;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    entries(&store.tmp_dir())
}

/// The hex directory names of `layers/`.
pub fn layer_dirs(store: &ImageStore) -> Vec<String> {
    entries(&store.root().join("layers"))
}

/// `sha256:<hex>` → `<hex>`.
pub fn hex(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_string()
}
