//! A registry that goes silent fails within the configured bound, with an error
//! naming the registry, the repository and what it did not send; one that is slow
//! but keeps sending is waited for; what a registry says is escaped.

use std::time::{Duration, Instant};

use basic_registry::{
    BlobRequest, Reference, RegistryClient, RegistryError, RetryPolicy, Stall, Timeouts,
};
use basic_test_support::fake_registry::{FakeServer, Reply, Request};
use futures_util::TryStreamExt as _;
use sha2::{Digest as _, Sha256};

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Half a second of silence fails an attempt; two seconds without progress, a fetch.
fn short() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        idle: Duration::from_millis(500),
        total: Duration::from_secs(2),
    }
}

fn client(timeouts: Timeouts) -> RegistryClient {
    RegistryClient::builder()
        .timeouts(timeouts)
        .retry_policy(RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        })
        .build()
        .unwrap()
}

fn reference(server: &FakeServer) -> Reference {
    Reference::parse(&format!("{}/test/app:latest", server.host())).unwrap()
}

fn blob_body() -> Vec<u8> {
    (0..16_384u32).flat_map(|i| i.to_le_bytes()).collect()
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
async fn a_silent_registry_fails_within_the_total_naming_the_manifest() {
    let server = FakeServer::start(|_: &Request| Reply::Silent).await;
    let started = Instant::now();
    let err = client(short())
        .fetch_manifest(&reference(&server))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    match &err {
        RegistryError::TimedOut {
            registry,
            what,
            stall,
            ..
        } => {
            assert_eq!(registry, &server.host());
            assert_eq!(what, "manifest test/app:latest");
            assert_eq!(*stall, Stall::Answer);
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.is_transient());
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("{}: timed out after 2s", server.host()))
            && message.contains("waiting for manifest test/app:latest")
            && message.contains("no answer"),
        "{message}"
    );
    // Every attempt waited half a second at most: silence was retried.
    assert!(
        server.requests().len() >= 3,
        "{:?}",
        server.requests().len()
    );
}

/// Silent from the first byte: even the TLS probe of a loopback registry gets
/// no answer, and is asked again until the total runs out.
#[tokio::test]
async fn a_registry_mute_after_accepting_fails_within_the_total() {
    let server = FakeServer::start_mute().await;
    let started = Instant::now();
    let err = client(short())
        .fetch_manifest(&reference(&server))
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "took {took:?}"
    );
    let message = err.to_string();
    assert!(
        matches!(err, RegistryError::TimedOut { .. })
            && message.contains("timed out after 2s waiting for manifest test/app:latest"),
        "{message}"
    );
}

#[tokio::test]
async fn a_blob_that_stops_part_way_fails_counting_from_its_last_bytes() {
    let body = blob_body();
    let server = FakeServer::start({
        let body = body.clone();
        move |req: &Request| match req.header("range") {
            // Half the body at once, then nothing, with the connection held open.
            None => Reply::Slow {
                status: 200,
                headers: vec![],
                body: body.clone(),
                chunk: body.len() / 2,
                pause: Duration::from_secs(3600),
            },
            Some(_) => Reply::Silent,
        }
    })
    .await;
    let request = BlobRequest {
        digest: digest(&body),
        size: body.len() as u64,
    };
    let started = Instant::now();
    let err = fetch_all(&client(short()), &reference(&server), &request)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(4), "{err}");
    let RegistryError::TimedOut { what, after, .. } = &err else {
        panic!("expected a timeout, got {err:?}");
    };
    assert_eq!(what, &format!("blob {} of test/app", request.digest));
    assert!(*after >= Duration::from_secs(2), "{after:?}");
    // It tried to resume from where the bytes stopped.
    let ranges: Vec<_> = server
        .requests()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_string))
        .collect();
    assert!(
        ranges
            .iter()
            .all(|r| r == &format!("bytes={}-", body.len() / 2)),
        "{ranges:?}"
    );
    assert!(!ranges.is_empty());
}

#[tokio::test]
async fn a_slow_but_steady_blob_completes_past_the_total() {
    let body = blob_body();
    let server = FakeServer::start({
        let body = body.clone();
        move |_: &Request| Reply::Slow {
            status: 200,
            headers: vec![],
            body: body.clone(),
            chunk: 4096,
            pause: Duration::from_millis(200),
        }
    })
    .await;
    let request = BlobRequest {
        digest: digest(&body),
        size: body.len() as u64,
    };
    let timeouts = Timeouts {
        total: Duration::from_secs(1),
        ..short()
    };
    let started = Instant::now();
    let got = fetch_all(&client(timeouts), &reference(&server), &request)
        .await
        .unwrap();
    assert_eq!(got, body);
    // 16 chunks, 200 ms apart: three seconds in all, three times the total.
    assert!(started.elapsed() >= Duration::from_secs(3));
    assert_eq!(server.requests().len(), 1, "no resume was needed");
}

#[tokio::test]
async fn a_slow_but_steady_manifest_is_waited_for() {
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
    let server = FakeServer::start(move |_: &Request| Reply::Slow {
        status: 200,
        headers: vec![(
            "Content-Type".into(),
            "application/vnd.oci.image.manifest.v1+json".into(),
        )],
        body: manifest.to_vec(),
        chunk: 16,
        pause: Duration::from_millis(300),
    })
    .await;
    let timeouts = Timeouts {
        total: Duration::from_secs(1),
        ..short()
    };
    let started = Instant::now();
    let got = client(timeouts)
        .fetch_manifest(&reference(&server))
        .await
        .unwrap();
    assert_eq!(got.digest, digest(manifest));
    assert!(
        started.elapsed() > Duration::from_secs(3),
        "slower than the total"
    );
}

#[tokio::test]
async fn a_registry_error_message_is_escaped() {
    let envelope = "{\"errors\":[{\"code\":\"DENIED\",\"message\":\"\\u001b[2J\\u001b[HPull complete\\r\\nStatus: ok\"}]}";
    let server = FakeServer::start(move |_: &Request| Reply::status(403, envelope, &[])).await;
    let err = client(short())
        .fetch_manifest(&reference(&server))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        !message.contains('\x1b') && !message.contains('\r'),
        "{message:?}"
    );
    assert!(
        message.contains(r"\x1b[2J\x1b[HPull complete\r\nStatus: ok"),
        "{message}"
    );
}
