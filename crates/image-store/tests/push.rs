//! Pushes to the harness registries (`scripts/harness.sh`), as root: chunked uploads a
//! real registry (CNCF distribution) accepts, with per-layer progress.

mod support;

use std::collections::HashMap;
use std::sync::Mutex;

use basic_image_store::{ImageStore, PullOptions, PushEvent, PushOptions, PushStatus, push};
use basic_registry::{Credentials, Reference, RegistryClient, UploadOptions};
use basic_test_support::{harness, require_root};

#[tokio::test(flavor = "multi_thread")]
async fn chunked_uploads_report_progress_and_keep_the_manifest() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("root")).unwrap();
    let fixture = h.fixture("multilayer_latest");
    let source = Reference::parse(fixture["reference"].as_str().unwrap()).unwrap();
    let (pulled, _) =
        support::pull_events(&store, &source.to_string(), &PullOptions::default()).await;
    pulled.unwrap();

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let target = Reference::parse(&format!(
        "{}/push/chunks-{}-{nanos}:v1",
        h.basic,
        std::process::id()
    ))
    .unwrap();
    let record = store.resolve(&source.to_string()).unwrap();
    store.tag(&record.id, &target.to_string()).unwrap();
    let client = RegistryClient::builder()
        .credentials(
            &h.basic,
            Credentials::Basic {
                username: h.basic_user.clone(),
                password: h.basic_pass.clone(),
            },
        )
        .build()
        .unwrap();
    // 256 KiB chunks: busybox's ~1 MB layer goes in several PATCHes.
    let options = PushOptions {
        concurrency: 2,
        upload: UploadOptions {
            chunk_size: 256 * 1024,
        },
    };
    let events = Mutex::new(Vec::new());
    let report = push(&store, &client, &target, &options, |e| {
        events.lock().unwrap().push(e)
    })
    .await
    .unwrap();
    // Every blob went as the manifest names it: the digest is the one pulled.
    assert_eq!(report.digest, fixture["digest"].as_str().unwrap());
    assert_eq!(report.tag, "v1");

    let events = events.into_inner().unwrap();
    let mut per_layer: HashMap<String, Vec<PushStatus>> = HashMap::new();
    for e in &events {
        if let PushEvent::Layer { id, status } = e {
            per_layer
                .entry(id.clone())
                .or_default()
                .push(status.clone());
        }
    }
    assert_eq!(per_layer.len(), 4);
    let sizes: Vec<u64> = fixture["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .collect();
    for (id, statuses) in &per_layer {
        assert_eq!(statuses.first(), Some(&PushStatus::Preparing), "{id}");
        assert_eq!(
            statuses.last(),
            Some(&PushStatus::Pushed),
            "{id}: {statuses:?}"
        );
        let sent: Vec<(u64, u64)> = statuses
            .iter()
            .filter_map(|s| match s {
                PushStatus::Pushing { current, total } => Some((*current, *total)),
                _ => None,
            })
            .collect();
        let (_, total) = *sent.last().unwrap();
        assert!(sizes.contains(&total), "{id}: {total}");
        assert_eq!(sent.last().unwrap().0, total, "{id}: all bytes reported");
        assert!(sent.windows(2).all(|w| w[0].0 <= w[1].0), "{id}: {sent:?}");
        if total > 3 * 256 * 1024 {
            let chunks = sent
                .iter()
                .filter(|(c, _)| c % (256 * 1024) == 0 && *c > 0)
                .count();
            assert!(chunks >= 3, "{id}: several chunks {sent:?}");
        }
    }
    // The pushed digest is now a repo digest of the image.
    let record = store.resolve(&target.to_string()).unwrap();
    let familiar = target.familiar();
    let repo = familiar.rsplit_once(':').unwrap().0;
    assert!(
        record
            .repo_digests
            .contains(&format!("{repo}@{}", report.digest)),
        "{:?}",
        record.repo_digests
    );
}
