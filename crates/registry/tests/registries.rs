//! The client against real registries (CNCF distribution) started by
//! `scripts/harness.sh`: open, Basic auth and Bearer token auth, with fixture
//! images built by umoci and pushed by skopeo.

use basic_registry::{
    BlobRequest, Credentials, ManifestContent, Platform, Reference, RegistryClient, RegistryError,
    fetch_config, resolve_image,
};
use basic_test_support::{Harness, harness};
use futures_util::TryStreamExt as _;
use serde_json::Value;

fn anonymous() -> RegistryClient {
    RegistryClient::builder().build().unwrap()
}

fn with_login(registry: &str, username: &str, password: &str) -> RegistryClient {
    let credentials = Credentials::Basic {
        username: username.into(),
        password: password.into(),
    };
    RegistryClient::builder()
        .credentials(registry, credentials)
        .build()
        .unwrap()
}

#[track_caller]
fn assert_unauthorized(err: &RegistryError, with_credentials: bool) {
    match err {
        RegistryError::Unauthorized {
            had_credentials, ..
        } => {
            assert_eq!(*had_credentials, with_credentials, "{err}")
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
}

fn reference(fixture: &Value) -> Reference {
    Reference::parse(fixture["reference"].as_str().unwrap()).unwrap()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("fixture has no {key}: {v}"))
}

/// Downloads every layer and the config of `fixture` and checks what arrived.
async fn pull_blobs(client: &RegistryClient, h: &Harness, name: &str) {
    let fixture = h.fixture(name);
    let r = reference(&fixture);
    let resolved = resolve_image(client, &r, &Platform::host()).await.unwrap();
    assert_eq!(resolved.manifest.digest, str_of(&fixture, "digest"));
    let config = fetch_config(client, &r, &resolved.image).await.unwrap();
    let raw = std::fs::read(h.fixtures.join(format!("raw/{name}.config"))).unwrap();
    assert_eq!(
        config.as_ref(),
        raw.as_slice(),
        "config bytes differ from what was pushed"
    );
    for layer in resolved.image.layers() {
        let request = BlobRequest::from_descriptor(layer);
        let chunks: Vec<bytes::Bytes> = client
            .fetch_blob(&r, &request)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        let total: usize = chunks.iter().map(|c| c.len()).sum();
        assert_eq!(total as u64, layer.size());
    }
}

#[tokio::test]
async fn oci_image_manifest_and_blobs() {
    let Some(h) = harness() else { return };
    let fixture = h.fixture("busybox_latest");
    let manifest = anonymous()
        .fetch_manifest(&reference(&fixture))
        .await
        .unwrap();
    assert_eq!(manifest.digest, str_of(&fixture, "digest"));
    assert_eq!(
        manifest.media_type,
        "application/vnd.oci.image.manifest.v1+json"
    );
    pull_blobs(&anonymous(), &h, "busybox_latest").await;
}

#[tokio::test]
async fn docker_schema2_manifest_and_blobs() {
    let Some(h) = harness() else { return };
    let fixture = h.fixture("busybox_docker");
    let manifest = anonymous()
        .fetch_manifest(&reference(&fixture))
        .await
        .unwrap();
    assert_eq!(
        manifest.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(manifest.digest, str_of(&fixture, "digest"));
    pull_blobs(&anonymous(), &h, "busybox_docker").await;
}

#[tokio::test]
async fn multilayer_image() {
    let Some(h) = harness() else { return };
    let fixture = h.fixture("multilayer_latest");
    assert_eq!(fixture["layers"].as_array().unwrap().len(), 4);
    pull_blobs(&anonymous(), &h, "multilayer_latest").await;
}

#[tokio::test]
async fn zstd_layers_stream_verified() {
    let Some(h) = harness() else { return };
    let fixture = h.fixture("zstd_latest");
    let r = reference(&fixture);
    let client = anonymous();
    let resolved = resolve_image(&client, &r, &Platform::host()).await.unwrap();
    let layer = &resolved.image.layers()[0];
    assert_eq!(
        layer.media_type().to_string(),
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let mut stream = client
        .fetch_blob(&r, &BlobRequest::from_descriptor(layer))
        .await
        .unwrap();
    let first = stream.try_next().await.unwrap().unwrap();
    assert_eq!(&first[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd magic");
    while stream.try_next().await.unwrap().is_some() {}
}

/// Each platform of the index resolves to that platform's manifest, for the OCI
/// index and for the Docker manifest list alike.
#[tokio::test]
async fn platform_selection_from_index_and_manifest_list() {
    let Some(h) = harness() else { return };
    for name in ["multiarch_latest", "multiarch_docker"] {
        let fixture = h.fixture(name);
        let r = reference(&fixture);
        let index = anonymous().fetch_manifest(&r).await.unwrap();
        assert!(
            matches!(index.content, ManifestContent::Index(_)),
            "{name} is an index"
        );
        for entry in fixture["manifests"].as_array().unwrap() {
            let p = &entry["platform"];
            let mut platform = format!("{}/{}", str_of(p, "os"), str_of(p, "architecture"));
            if let Some(v) = p["variant"].as_str() {
                platform.push('/');
                platform.push_str(v);
            }
            let platform = Platform::parse(&platform).unwrap();
            let resolved = resolve_image(&anonymous(), &r, &platform).await.unwrap();
            assert_eq!(
                resolved.manifest.digest,
                str_of(entry, "digest"),
                "{name} {platform}"
            );
            assert_eq!(resolved.repo_digest(), str_of(&fixture, "digest"));
        }
        let missing = Platform::parse("linux/s390x").unwrap();
        let err = resolve_image(&anonymous(), &r, &missing).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains("linux/s390x"), "{message}");
        assert!(
            message.contains("linux/arm64") && message.contains("linux/arm/v7"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn head_reports_the_manifest_digest() {
    let Some(h) = harness() else { return };
    let fixture = h.fixture("multiarch_latest");
    let head = anonymous()
        .head_manifest(&reference(&fixture))
        .await
        .unwrap();
    assert_eq!(head.digest.as_deref(), Some(str_of(&fixture, "digest")));
}

#[tokio::test]
async fn pull_by_digest_and_by_tag_and_digest() {
    let Some(h) = harness() else { return };
    let fixture = h.fixture("busybox_latest");
    let digest = str_of(&fixture, "digest");
    for text in [
        format!("{}/fixtures/busybox@{digest}", h.open),
        format!("{}/fixtures/busybox:latest@{digest}", h.open),
    ] {
        let m = anonymous()
            .fetch_manifest(&Reference::parse(&text).unwrap())
            .await
            .unwrap();
        assert_eq!(m.digest, digest, "{text}");
    }
}

#[tokio::test]
async fn unknown_tag_and_unknown_repository_are_named() {
    let Some(h) = harness() else { return };
    let tag = Reference::parse(&format!("{}/fixtures/busybox:no-such-tag", h.open)).unwrap();
    let err = anonymous().fetch_manifest(&tag).await.unwrap_err();
    assert!(
        err.to_string().contains("fixtures/busybox:no-such-tag"),
        "{err}"
    );
    let repo = Reference::parse(&format!("{}/nobody/nothing:latest", h.open)).unwrap();
    let err = anonymous().fetch_manifest(&repo).await.unwrap_err();
    assert!(matches!(err, RegistryError::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nobody/nothing"), "{err}");
}

#[tokio::test]
async fn basic_auth_registry() {
    let Some(h) = harness() else { return };
    let fixture = h.fixture("basic_busybox_latest");
    let r = reference(&fixture);

    let err = anonymous().fetch_manifest(&r).await.unwrap_err();
    assert_unauthorized(&err, false);
    assert!(err.to_string().contains("login"), "{err}");

    let client = with_login(&h.basic, &h.basic_user, "wrong");
    let err = client.fetch_manifest(&r).await.unwrap_err();
    assert_unauthorized(&err, true);

    let client = with_login(&h.basic, &h.basic_user, &h.basic_pass);
    assert_eq!(
        client.fetch_manifest(&r).await.unwrap().digest,
        str_of(&fixture, "digest")
    );
    pull_blobs(&client, &h, "basic_busybox_latest").await;
}

async fn issuer_stats(h: &Harness) -> Value {
    let url = format!("{}/stats", h.token_issuer);
    reqwest::get(&url).await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn bearer_token_registry_anonymous_and_with_credentials() {
    let Some(h) = harness() else { return };
    let public = reference(&h.fixture("token_public_busybox_latest"));
    let private = reference(&h.fixture("token_private_busybox_latest"));

    pull_blobs(&anonymous(), &h, "token_public_busybox_latest").await;
    let err = anonymous().fetch_manifest(&private).await.unwrap_err();
    assert_unauthorized(&err, false);

    let client = with_login(&h.token, &h.token_user, "wrong");
    let err = client.fetch_manifest(&private).await.unwrap_err();
    assert_unauthorized(&err, true);

    let client = with_login(&h.token, &h.token_user, &h.token_pass);
    pull_blobs(&client, &h, "token_private_busybox_latest").await;
    assert!(client.fetch_manifest(&public).await.is_ok());
}

/// One token per repository scope serves the manifest, config and every layer.
#[tokio::test]
async fn bearer_tokens_are_cached_per_scope() {
    let Some(h) = harness() else { return };
    // Other tests share the issuer and the user; this client's User-Agent tells its requests apart.
    let agent = format!("basic-registry-cache-test/{}", std::process::id());
    let credentials = Credentials::Basic {
        username: h.token_user.clone(),
        password: h.token_pass.clone(),
    };
    let client = RegistryClient::builder()
        .credentials(&h.token, credentials)
        .user_agent(&agent)
        .build()
        .unwrap();
    let ours = |stats: &Value, scope: &str| {
        stats["requests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["agent"].as_str() == Some(agent.as_str()))
            .filter(|r| r["scope"].to_string().contains(scope))
            .count()
    };
    let scope = "repository:private/busybox:pull";
    let before = ours(&issuer_stats(&h).await, scope);
    pull_blobs(&client, &h, "token_private_busybox_latest").await;
    pull_blobs(&client, &h, "token_private_busybox_latest").await;
    let after = ours(&issuer_stats(&h).await, scope);
    assert_eq!(
        after - before,
        1,
        "one token request for the repository scope"
    );
}

#[tokio::test]
async fn login_checks_credentials_on_each_kind_of_registry() {
    let Some(h) = harness() else { return };
    let basic = |user: &str, pass: &str| Credentials::Basic {
        username: user.into(),
        password: pass.into(),
    };
    let client = anonymous();
    client
        .login(&h.open, &basic("anyone", "anything"))
        .await
        .unwrap();
    client
        .login(&h.basic, &basic(&h.basic_user, &h.basic_pass))
        .await
        .unwrap();
    client
        .login(&h.token, &basic(&h.token_user, &h.token_pass))
        .await
        .unwrap();
    for (registry, user) in [(&h.basic, &h.basic_user), (&h.token, &h.token_user)] {
        let err = client
            .login(registry, &basic(user, "wrong"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RegistryError::LoginFailed { .. }),
            "{registry}: {err:?}"
        );
        assert!(
            err.to_string().contains("wrong username or password"),
            "{err}"
        );
    }
}
