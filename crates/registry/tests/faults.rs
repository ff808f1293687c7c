//! Faults a real registry cannot be made to produce, served by an in-process fake:
//! tampered and oversized blobs, connections reset mid-body, rate limits, server
//! errors, redirects to another host, schema 1 and lying digests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use basic_registry::{
    BlobRequest, Credentials, Reference, RegistryClient, RegistryError, RetryPolicy,
};
use basic_test_support::fake_registry::{FakeServer, Reply, Request};
use futures_util::TryStreamExt as _;
use sha2::{Digest as _, Sha256};

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(50),
    }
}

fn client() -> RegistryClient {
    RegistryClient::builder()
        .retry_policy(quick_retries())
        .build()
        .unwrap()
}

fn blob_body() -> Vec<u8> {
    (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect()
}

fn reference(server: &FakeServer) -> Reference {
    Reference::parse(&format!("{}/test/app:latest", server.host())).unwrap()
}

async fn fetch_all(
    client: &RegistryClient,
    reference: &Reference,
    request: &BlobRequest,
) -> Result<Vec<u8>, RegistryError> {
    let chunks: Vec<bytes::Bytes> = client
        .fetch_blob(reference, request)
        .await?
        .try_collect()
        .await?;
    Ok(chunks.concat())
}

#[tokio::test]
async fn tampered_blob_is_a_digest_mismatch() {
    let body = blob_body();
    let want = digest(&body);
    let mut tampered = body.clone();
    tampered[1000] ^= 0xff;
    let server = FakeServer::start(move |_| Reply::ok(tampered.clone(), &[])).await;
    let request = BlobRequest {
        digest: want.clone(),
        size: body.len() as u64,
    };
    let err = fetch_all(&client(), &reference(&server), &request)
        .await
        .unwrap_err();
    match &err {
        RegistryError::DigestMismatch {
            expected, actual, ..
        } => {
            assert_eq!(expected, &want);
            assert_eq!(
                actual,
                &digest(&{
                    let mut t = body.clone();
                    t[1000] ^= 0xff;
                    t
                })
            );
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }
    assert!(err.to_string().contains(&server.host()), "{err}");
}

#[tokio::test]
async fn blob_larger_than_its_descriptor_is_refused() {
    let body = blob_body();
    let server = FakeServer::start({
        let body = body.clone();
        move |_| Reply::ok(body.clone(), &[])
    })
    .await;
    let request = BlobRequest {
        digest: digest(&body[..1000]),
        size: 1000,
    };
    let err = fetch_all(&client(), &reference(&server), &request)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::SizeMismatch { expected: 1000, .. }),
        "{err:?}"
    );
}

/// The first response breaks off half way; the client resumes with `Range` and
/// the result still verifies.
#[tokio::test]
async fn reset_connection_is_resumed_with_a_range_request() {
    let body = blob_body();
    let half = body.len() / 2;
    let served = Arc::new(AtomicUsize::new(0));
    let server = FakeServer::start({
        let body = body.clone();
        let served = served.clone();
        move |req: &Request| match req.header("range") {
            None if served.fetch_add(1, Ordering::SeqCst) == 0 => Reply::Cut {
                status: 200,
                headers: vec![],
                body: body.clone(),
                cut: half,
            },
            None => Reply::ok(body.clone(), &[]),
            Some(range) => {
                let start: usize = range
                    .trim_start_matches("bytes=")
                    .trim_end_matches('-')
                    .parse()
                    .unwrap();
                let content_range = format!("bytes {start}-{}/{}", body.len() - 1, body.len());
                Reply::status(
                    206,
                    body[start..].to_vec(),
                    &[("Content-Range", &content_range)],
                )
            }
        }
    })
    .await;
    let request = BlobRequest {
        digest: digest(&body),
        size: body.len() as u64,
    };
    let got = fetch_all(&client(), &reference(&server), &request)
        .await
        .unwrap();
    assert_eq!(got, body);
    let ranges: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_string))
        .collect();
    assert_eq!(ranges.len(), 1, "one resume expected: {ranges:?}");
    let offset: usize = ranges[0]
        .trim_start_matches("bytes=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(offset > 0 && offset <= half, "resumed from {offset}");
}

/// A server that ignores `Range` and resends everything is handled by skipping
/// what was already received.
#[tokio::test]
async fn resume_against_a_server_ignoring_range() {
    let body = blob_body();
    let served = Arc::new(AtomicUsize::new(0));
    let server = FakeServer::start({
        let body = body.clone();
        let served = served.clone();
        move |_: &Request| {
            if served.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::Cut {
                    status: 200,
                    headers: vec![],
                    body: body.clone(),
                    cut: 12_345,
                }
            } else {
                Reply::ok(body.clone(), &[])
            }
        }
    })
    .await;
    let request = BlobRequest {
        digest: digest(&body),
        size: body.len() as u64,
    };
    assert_eq!(
        fetch_all(&client(), &reference(&server), &request)
            .await
            .unwrap(),
        body
    );
}

#[tokio::test]
async fn a_connection_that_keeps_breaking_ends_in_an_error() {
    let body = blob_body();
    let server = FakeServer::start({
        let body = body.clone();
        move |_: &Request| Reply::Cut {
            status: 200,
            headers: vec![],
            body: body.clone(),
            cut: 10,
        }
    })
    .await;
    let request = BlobRequest {
        digest: digest(&body),
        size: body.len() as u64,
    };
    let err = fetch_all(&client(), &reference(&server), &request).await;
    assert!(
        err.is_err(),
        "a blob that never arrives whole must not verify"
    );
}

#[tokio::test]
async fn rate_limit_is_retried_then_reported() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = FakeServer::start({
        let calls = calls.clone();
        move |_: &Request| {
            calls.fetch_add(1, Ordering::SeqCst);
            Reply::status(
                429,
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#,
                &[("Retry-After", "0")],
            )
        }
    })
    .await;
    let err = client()
        .fetch_manifest(&reference(&server))
        .await
        .unwrap_err();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "first try plus three retries"
    );
    let message = err.to_string();
    assert!(
        matches!(err, RegistryError::TooManyRequests { .. }),
        "{err:?}"
    );
    assert!(
        message.contains(&server.host()) && message.contains("pull rate limit"),
        "{message}"
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
    let calls = Arc::new(AtomicUsize::new(0));
    let server = FakeServer::start({
        let calls = calls.clone();
        move |_: &Request| match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Reply::status(503, "busy", &[]),
            1 => Reply::status(502, "bad gateway", &[]),
            _ => Reply::ok(
                manifest.to_vec(),
                &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
            ),
        }
    })
    .await;
    let got = client().fetch_manifest(&reference(&server)).await.unwrap();
    assert_eq!(got.digest, digest(manifest));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

/// Blob stores answer with redirects; the registry's credentials must not follow.
#[tokio::test]
async fn redirect_to_another_host_does_not_leak_credentials() {
    let body = blob_body();
    let store = FakeServer::start({
        let body = body.clone();
        move |_: &Request| Reply::ok(body.clone(), &[])
    })
    .await;
    let store_url = format!("http://{}/blob-store/object", store.host());
    let registry = FakeServer::start(move |req: &Request| match req.header("authorization") {
        None => Reply::status(401, "", &[("WWW-Authenticate", r#"Basic realm="fake""#)]),
        Some(_) => Reply::status(307, "", &[("Location", &store_url)]),
    })
    .await;
    let client = RegistryClient::builder()
        .retry_policy(quick_retries())
        .credentials(
            &registry.host(),
            Credentials::Basic {
                username: "u".into(),
                password: "secret".into(),
            },
        )
        .build()
        .unwrap();
    let request = BlobRequest {
        digest: digest(&body),
        size: body.len() as u64,
    };
    assert_eq!(
        fetch_all(&client, &reference(&registry), &request)
            .await
            .unwrap(),
        body
    );
    let registry_saw_auth = registry
        .requests()
        .iter()
        .any(|r| r.header("authorization").is_some());
    assert!(
        registry_saw_auth,
        "the registry itself should get the credentials"
    );
    for r in store.requests() {
        assert_eq!(
            r.header("authorization"),
            None,
            "credentials leaked to the blob store"
        );
    }
}

#[tokio::test]
async fn manifest_not_matching_its_announced_digest_is_refused() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    let lie = digest(b"something else");
    let server = FakeServer::start(move |_: &Request| {
        Reply::ok(
            manifest.to_vec(),
            &[("Docker-Content-Digest", lie.as_str())],
        )
    })
    .await;
    let err = client()
        .fetch_manifest(&reference(&server))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn schema1_manifest_is_unsupported_with_a_clear_message() {
    let server = FakeServer::start(|_: &Request| {
        Reply::ok(
            br#"{"schemaVersion":1,"name":"test/app","tag":"latest","fsLayers":[]}"#.to_vec(),
            &[(
                "Content-Type",
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
            )],
        )
    })
    .await;
    let err = client()
        .fetch_manifest(&reference(&server))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("schema 1") && message.contains("not supported"),
        "{message}"
    );
}

#[tokio::test]
async fn not_found_names_registry_repository_and_tag() {
    let server = FakeServer::start(|_: &Request| {
        Reply::status(
            404,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
            &[],
        )
    })
    .await;
    let err = client()
        .fetch_manifest(&reference(&server))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains(&server.host()), "{message}");
    assert!(
        message.contains("test/app:latest") && message.contains("MANIFEST_UNKNOWN"),
        "{message}"
    );
}

const EMPTY_INDEX: &[u8] =
    br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;

/// A registry that wants Bearer tokens from `token_server`, accepting any token.
async fn bearer_registry(token_server: &FakeServer) -> FakeServer {
    let challenge = format!(
        r#"Bearer realm="http://{}/token",service="fake",scope="repository:test/app:pull""#,
        token_server.host()
    );
    FakeServer::start(move |req: &Request| match req.header("authorization") {
        Some(a) if a.starts_with("Bearer ") => Reply::ok(EMPTY_INDEX.to_vec(), &[]),
        _ => Reply::status(401, "", &[("WWW-Authenticate", &challenge)]),
    })
    .await
}

/// A token lives until shortly before its `expires_in`; then a new one is fetched.
#[tokio::test]
async fn bearer_token_is_reused_until_it_expires() {
    let tokens = FakeServer::start(|_: &Request| {
        Reply::ok(br#"{"token":"t","expires_in":2}"#.to_vec(), &[])
    })
    .await;
    let registry = bearer_registry(&tokens).await;
    let client = client();
    for _ in 0..3 {
        client.fetch_manifest(&reference(&registry)).await.unwrap();
    }
    assert_eq!(
        tokens.requests().len(),
        1,
        "one token serves requests while fresh"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.fetch_manifest(&reference(&registry)).await.unwrap();
    assert_eq!(tokens.requests().len(), 2, "an expired token is replaced");
}

/// docker's `identitytoken` is an OAuth2 refresh token, exchanged with a POST.
#[tokio::test]
async fn identity_token_is_exchanged_with_the_refresh_grant() {
    let tokens = FakeServer::start(|req: &Request| {
        let form = String::from_utf8_lossy(&req.body).to_string();
        if req.method == "POST"
            && form.contains("grant_type=refresh_token")
            && form.contains("refresh_token=my-refresh-token")
            && form.contains("scope=repository%3Atest%2Fapp%3Apull")
        {
            Reply::ok(
                br#"{"access_token":"granted","expires_in":300}"#.to_vec(),
                &[],
            )
        } else {
            Reply::status(
                400,
                format!("unexpected token request: {} {form}", req.method),
                &[],
            )
        }
    })
    .await;
    let registry = bearer_registry(&tokens).await;
    let client = RegistryClient::builder()
        .retry_policy(quick_retries())
        .credentials(
            &registry.host(),
            Credentials::IdentityToken("my-refresh-token".into()),
        )
        .build()
        .unwrap();
    client.fetch_manifest(&reference(&registry)).await.unwrap();
    let sent: Vec<_> = registry
        .requests()
        .into_iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect();
    assert_eq!(sent, ["Bearer granted"]);
}
