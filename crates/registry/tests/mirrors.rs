//! Registry mirrors for Docker Hub: which references use them, the order of
//! tries, what makes a pull pass a mirror over, where blobs come from, whose
//! credentials a mirror sees, and that a mirror can withhold an image but not
//! change it. Fake registries play the mirrors (with faults a real one cannot
//! make); the harness's real registry plays one in `harness_registry_as_a_mirror`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use basic_registry::{
    BlobRequest, Credentials, Platform, Reference, RegistryClient, RegistryClientBuilder,
    RegistryError, RetryPolicy, Timeouts, fetch_config, resolve_image,
};
use basic_test_support::fake_registry::{FakeImage, FakeServer, Part, Reply, Request};
use futures_util::TryStreamExt as _;

fn image() -> Arc<FakeImage> {
    Arc::new(FakeImage::new(&[("etc/mirrored", b"from a mirror\n")]))
}

fn builder() -> RegistryClientBuilder {
    RegistryClient::builder()
        .retry_policy(RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        })
        .timeouts(Timeouts {
            connect: Duration::from_secs(2),
            idle: Duration::from_millis(500),
            total: Duration::from_secs(2),
        })
}

fn with_mirrors(mirrors: &[String]) -> RegistryClient {
    mirrors
        .iter()
        .fold(builder(), |b, m| b.registry_mirror(m))
        .build()
        .unwrap()
}

fn url(server: &FakeServer) -> String {
    format!("http://{}", server.host())
}

/// A loopback port nothing listens on: connections are refused at once.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A mirror serving `image` for any repository.
async fn serving(image: &Arc<FakeImage>) -> FakeServer {
    let image = image.clone();
    FakeServer::start(move |r: &Request| image.reply(r)).await
}

/// The paths a server was asked for, besides the `/v2/` probe.
fn paths(server: &FakeServer) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| p != "/v2/")
        .collect()
}

/// Resolves, fetches the config and streams the layer, as a pull does.
async fn pull(client: &RegistryClient, reference: &str) -> Result<Vec<u8>, RegistryError> {
    let reference = Reference::parse(reference).unwrap();
    let resolved = resolve_image(client, &reference, &Platform::host()).await?;
    fetch_config(client, &reference, &resolved.image).await?;
    let layer = BlobRequest::from_descriptor(&resolved.image.layers()[0]);
    let chunks: Vec<bytes::Bytes> = client
        .fetch_blob(&reference, &layer)
        .await?
        .try_collect()
        .await?;
    Ok(chunks.concat())
}

#[tokio::test]
async fn a_docker_hub_name_is_pulled_from_the_mirror_under_its_hub_repository() {
    let image = image();
    let mirror = serving(&image).await;
    let client = with_mirrors(&[url(&mirror)]);
    assert_eq!(client.mirrors()[0].url(), format!("{}/", url(&mirror)));

    for name in [
        "busybox",
        "library/busybox",
        "docker.io/library/busybox:latest",
    ] {
        let layer = pull(&client, name).await.unwrap();
        assert_eq!(layer, image.layer, "{name}");
    }
    let seen = paths(&mirror);
    assert!(
        seen.iter().all(|p| p.starts_with("/v2/library/busybox/")),
        "{seen:?}"
    );
    assert!(seen.contains(&"/v2/library/busybox/manifests/latest".to_string()));
    assert!(seen.contains(&format!(
        "/v2/library/busybox/blobs/{}",
        image.layer_digest()
    )));

    let user = pull(&client, "someone/app:v1").await.unwrap();
    assert_eq!(user, image.layer);
    assert!(paths(&mirror).contains(&"/v2/someone/app/manifests/v1".to_string()));
}

#[tokio::test]
async fn a_dead_mirror_is_passed_over_for_the_next() {
    let image = image();
    let silent = FakeServer::start_mute().await;
    let not_found = FakeServer::start(|_: &Request| Reply::status(404, "{}", &[])).await;
    let good = serving(&image).await;
    let client = with_mirrors(&[closed_port(), url(&silent), url(&not_found), url(&good)]);

    let started = Instant::now();
    let layer = pull(&client, "busybox").await.unwrap();
    assert_eq!(layer, image.layer);
    // The silent mirror costs its total timeout once, not once per blob: the
    // config and layer come straight from the mirror that answered the manifest.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        paths(&not_found),
        ["/v2/library/busybox/manifests/latest"],
        "a mirror that said 404 to the manifest is not asked for blobs"
    );
    let from_good = paths(&good);
    assert_eq!(
        from_good.iter().filter(|p| p.contains("/blobs/")).count(),
        2,
        "{from_good:?}"
    );
}

#[tokio::test]
async fn references_of_other_registries_never_go_to_a_mirror() {
    let image = image();
    let mirror = serving(&image).await;
    let registry = serving(&image).await;
    let client = with_mirrors(&[url(&mirror)]);

    let layer = pull(
        &client,
        &format!("{}/library/busybox:latest", registry.host()),
    )
    .await
    .unwrap();
    assert_eq!(layer, image.layer);
    assert!(mirror.requests().is_empty(), "{:?}", paths(&mirror));
    assert!(!paths(&registry).is_empty());
}

#[tokio::test]
async fn a_tampered_blob_from_a_mirror_fails_naming_the_mirror() {
    let image = image();
    let served = image.clone();
    let evil = FakeServer::start(move |r: &Request| match served.part(r) {
        Some(Part::Layer) => {
            let mut layer = served.layer.clone();
            let last = layer.len() - 1;
            layer[last] ^= 0xff;
            Reply::ok(layer, &[])
        }
        _ => served.reply(r),
    })
    .await;
    let honest = serving(&image).await;
    let client = with_mirrors(&[url(&evil), url(&honest)]);

    let err = pull(&client, "busybox").await.unwrap_err();
    let text = err.to_string();
    match &err {
        RegistryError::Mirror { mirror, error } => {
            assert_eq!(*mirror, format!("{}/", url(&evil)));
            assert!(
                matches!(**error, RegistryError::DigestMismatch { .. }),
                "{error:?}"
            );
        }
        other => panic!("expected a mirror's digest mismatch, got {other:?}"),
    }
    assert!(text.contains(&url(&evil)), "{text}");
    assert!(text.contains("digest mismatch"), "{text}");
    assert!(text.contains(&image.layer_digest()), "{text}");
}

#[tokio::test]
async fn a_mirror_lying_about_a_manifest_is_passed_over_not_believed() {
    let image = image();
    let served = image.clone();
    // Another image's manifest under the tag, with its own (true) digest in the
    // header: fine by itself, but the by-digest fetch below must match exactly.
    let other = FakeImage::new(&[("etc/evil", b"not the image\n")]);
    let liar = FakeServer::start(move |r: &Request| match served.part(r) {
        Some(Part::Manifest) => Reply::ok(
            other.manifest.clone(),
            &[
                ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                ("Docker-Content-Digest", &sha256(&served.manifest)),
            ],
        ),
        _ => served.reply(r),
    })
    .await;
    let honest = serving(&image).await;
    let client = with_mirrors(&[url(&liar), url(&honest)]);

    let layer = pull(&client, "busybox").await.unwrap();
    assert_eq!(layer, image.layer);
    assert!(
        paths(&honest).contains(&"/v2/library/busybox/manifests/latest".to_string()),
        "the honest mirror served the manifest"
    );
}

#[tokio::test]
async fn when_every_mirror_and_docker_hub_fail_the_error_names_them_all() {
    let silent = FakeServer::start_mute().await;
    let dead = closed_port();
    let client = with_mirrors(&[dead.clone(), url(&silent)]);
    // A name Docker Hub does not have: with no network it is unreachable, with
    // one it says "not found"; either way this fails, and in bounded time.
    let started = Instant::now();
    let err = pull(&client, "basic-docker-test/no-such-image-for-mirror-tests")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let text = err.to_string();
    let RegistryError::MirrorsFailed { mirrors, .. } = &err else {
        panic!("expected every source to be reported, got {err:?}");
    };
    assert_eq!(mirrors.len(), 2, "{text}");
    assert!(text.contains(&format!("mirror {dead}/")), "{text}");
    assert!(
        text.contains(&format!("mirror {}/", url(&silent))),
        "{text}"
    );
    assert!(text.contains("docker.io"), "{text}");
    assert!(
        text.contains("basic-docker-test/no-such-image-for-mirror-tests"),
        "{text}"
    );
}

#[tokio::test]
async fn a_mirror_sees_its_own_credentials_never_docker_hubs() {
    let image = image();
    let served = image.clone();
    let mirror_auth = format!("Basic {}", b64("mirror-user:mirror-pass"));
    let expected = mirror_auth.clone();
    let locked = FakeServer::start(move |r: &Request| {
        if r.header("authorization") == Some(expected.as_str()) {
            served.reply(r)
        } else {
            Reply::status(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"log in"}]}"#,
                &[("WWW-Authenticate", r#"Basic realm="mirror""#)],
            )
        }
    })
    .await;
    let hub = Credentials::Basic {
        username: "hub-user".into(),
        password: "hub-secret".into(),
    };
    let mirror = Credentials::Basic {
        username: "mirror-user".into(),
        password: "mirror-pass".into(),
    };

    // With only Docker Hub's credentials, the mirror gets none: it refuses,
    // and the pull goes on to Docker Hub (unreachable here, or without the image).
    let hub_only = builder()
        .registry_mirror(&url(&locked))
        .credentials("docker.io", hub.clone())
        .build()
        .unwrap();
    let err = pull(
        &hub_only,
        "basic-docker-test/no-such-image-for-mirror-tests",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("requires authentication"), "{err}");
    let hub_header = format!("Basic {}", b64("hub-user:hub-secret"));
    for r in locked.requests() {
        assert_ne!(
            r.header("authorization"),
            Some(hub_header.as_str()),
            "{r:?}"
        );
    }

    // With the mirror's own, stored under its host, the pull succeeds there.
    let both = builder()
        .registry_mirror(&url(&locked))
        .credentials("docker.io", hub)
        .credentials(&locked.host(), mirror)
        .build()
        .unwrap();
    assert_eq!(pull(&both, "busybox").await.unwrap(), image.layer);
}

#[test]
fn a_bad_mirror_url_is_refused_by_build_with_dockers_words() {
    for (bad, words) in [
        (
            "127.0.0.1:5000",
            "no scheme specified for \"127.0.0.1:5000\"",
        ),
        ("ftp://mirror.example", "unsupported scheme \"ftp\""),
        (
            "https://mirror.example/docker-hub",
            "path, query, or fragment at end of the URI \"https://mirror.example/docker-hub\"",
        ),
    ] {
        let err = RegistryClient::builder()
            .registry_mirror("https://fine.example")
            .registry_mirror(bad)
            .build()
            .unwrap_err();
        assert!(matches!(err, RegistryError::InvalidMirror(_)), "{err:?}");
        let text = err.to_string();
        assert!(text.starts_with("invalid mirror: "), "{text}");
        assert!(text.contains(words), "{text}");
    }
}

#[tokio::test]
async fn harness_registry_as_a_mirror() {
    let Some(h) = basic_test_support::harness() else {
        return;
    };
    let fixture = h.fixture("mirror_busybox_latest");
    let client = with_mirrors(&[format!("http://{}", h.open)]);
    let reference = Reference::parse("busybox").unwrap();
    let resolved = resolve_image(&client, &reference, &Platform::host())
        .await
        .unwrap();
    assert_eq!(resolved.repo_digest(), fixture["digest"].as_str().unwrap());
    let config = fetch_config(&client, &reference, &resolved.image)
        .await
        .unwrap();
    assert_eq!(
        format!("sha256:{}", sha256_hex(&config)),
        fixture["config"]["digest"].as_str().unwrap()
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(bytes))
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
