//! Bad input from an in-process fake registry: each failure must leave the
//! store as it was (no image, nothing in tmp/), and a good pull must still work.

mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use basic_image_store::{ImageStore, LayerFailure, PullError, PullOptions};
use basic_registry::RegistryError;
use basic_test_support::fake_registry::{FakeServer, Reply, Request};
use basic_test_support::require_root;
use sha2::{Digest as _, Sha256};
use support::*;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A gzip layer with one file; returns (tar, gzip).
fn layer(name: &str, content: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (tar, gz.finish().unwrap())
}

/// One repository of the fake registry.
#[derive(Clone, Default)]
struct Repo {
    manifest: Vec<u8>,
    blobs: HashMap<String, Vec<u8>>,
    /// Blobs served with one byte changed (still under their digest).
    tampered: Vec<String>,
}

/// An image: its layers' tars, and how to spoil the config.
fn repo(layers: &[(Vec<u8>, Vec<u8>)], config: Option<Vec<u8>>, diff_ids: Vec<String>) -> Repo {
    let config = config.unwrap_or_else(|| {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    });
    let mut blobs = HashMap::new();
    let descriptors: Vec<_> = layers
        .iter()
        .map(|(_, gz)| {
            blobs.insert(digest(gz), gz.clone());
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": digest(gz), "size": gz.len(),
            })
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest(&config), "size": config.len(),
        },
        "layers": descriptors,
    }))
    .unwrap();
    blobs.insert(digest(&config), config);
    Repo {
        manifest,
        blobs,
        tampered: Vec::new(),
    }
}

fn good(name: &str) -> Repo {
    let l = layer(name, b"hello\n");
    let diff = digest(&l.0);
    repo(&[l], None, vec![diff])
}

async fn serve(repos: HashMap<&'static str, Repo>) -> FakeServer {
    let repos = Arc::new(repos);
    FakeServer::start(move |req: &Request| {
        if req.path == "/v2/" {
            return Reply::ok("{}", &[]);
        }
        for (name, repo) in repos.iter() {
            let prefix = format!("/v2/{name}/");
            let Some(rest) = req.path.strip_prefix(&prefix) else {
                continue;
            };
            if rest.starts_with("manifests/") {
                let d = digest(&repo.manifest);
                return Reply::ok(
                    repo.manifest.clone(),
                    &[
                        ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                        ("Docker-Content-Digest", &d),
                    ],
                );
            }
            if let Some(d) = rest.strip_prefix("blobs/")
                && let Some(blob) = repo.blobs.get(d)
            {
                {
                    let mut body = blob.clone();
                    if repo.tampered.iter().any(|t| t == d) {
                        let last = body.len() - 1;
                        body[last] ^= 0xff;
                    }
                    return Reply::ok(body, &[]);
                }
            }
        }
        Reply::status(
            404,
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}"#,
            &[],
        )
    })
    .await
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Runs a failing pull of `bad`, checks the store is untouched, then pulls `good`.
async fn fails_then_good_pull_works(bad: Repo) -> PullError {
    let mut repos = HashMap::new();
    repos.insert("test/bad", bad);
    repos.insert("test/good", good("good.txt"));
    let server = serve(repos).await;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let options = PullOptions::default();
    let (result, _) = pull_events(
        &store,
        &format!("{}/test/bad:latest", server.host()),
        &options,
    )
    .await;
    let err = result.unwrap_err();
    assert!(store.images().unwrap().is_empty());
    assert!(layer_dirs(&store).is_empty());
    assert!(wait_tmp_empty(&store).await.is_empty());

    let (result, _) = pull_events(
        &store,
        &format!("{}/test/good:latest", server.host()),
        &options,
    )
    .await;
    let report = result.unwrap();
    let record = store.image(&report.image_id).unwrap();
    let diff = store
        .layer_dir(&record.layers[0].chain_id)
        .unwrap()
        .join("diff");
    assert_eq!(std::fs::read(diff.join("good.txt")).unwrap(), b"hello\n");
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_layer_fails_with_a_digest_error() {
    if !require_root() {
        return;
    }
    let mut bad = good("bad.txt");
    let layer_digest = bad
        .blobs
        .keys()
        .find(|d| bad.blobs[*d].starts_with(&[0x1f, 0x8b]))
        .unwrap()
        .clone();
    bad.tampered.push(layer_digest.clone());
    let err = fails_then_good_pull_works(bad).await;
    let text = chain(&err);
    assert!(
        matches!(
            &err,
            PullError::Layer {
                source: LayerFailure::Download(RegistryError::DigestMismatch { .. }),
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("pulling layer {layer_digest}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_whose_layer_count_disagrees_with_the_config_fails() {
    if !require_root() {
        return;
    }
    let l = layer("a.txt", b"a");
    let diff = digest(&l.0);
    let bad = repo(&[l], None, vec![diff.clone(), diff]);
    let err = fails_then_good_pull_works(bad).await;
    assert!(
        matches!(
            err,
            PullError::LayerCount {
                layers: 1,
                diff_ids: 2,
                ..
            }
        ),
        "{}",
        chain(&err)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_is_not_json_fails() {
    if !require_root() {
        return;
    }
    let l = layer("a.txt", b"a");
    let bad = repo(&[l], Some(b"<html>not json</html>".to_vec()), vec![]);
    let err = fails_then_good_pull_works(bad).await;
    assert!(
        matches!(err, PullError::InvalidConfig { .. }),
        "{}",
        chain(&err)
    );
    assert!(chain(&err).contains("not a valid image config"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_whose_diff_id_disagrees_fails_and_records_nothing() {
    if !require_root() {
        return;
    }
    let l = layer("a.txt", b"a");
    let bad = repo(&[l], None, vec![digest(b"something else")]);
    let err = fails_then_good_pull_works(bad).await;
    assert!(
        matches!(
            err,
            PullError::Layer {
                source: LayerFailure::DiffId { .. },
                ..
            }
        ),
        "{}",
        chain(&err)
    );
}
