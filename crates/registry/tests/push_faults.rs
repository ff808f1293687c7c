//! Pushing against faults a real registry cannot be made to produce, served by an
//! in-process fake: a server error in the middle of a chunked upload (the upload goes
//! on from the registry's `Range`, nothing is sent twice), a registry that keeps
//! failing (a clear error naming it), and an upload `Location` on another host (no
//! byte and no credential goes there).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use basic_registry::{
    Credentials, Reference, RegistryClient, RegistryError, RetryPolicy, UploadOptions,
};
use basic_test_support::fake_registry::{FakeServer, Reply, Request};
use bytes::Bytes;
use sha2::{Digest as _, Sha256};

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn client() -> RegistryClient {
    RegistryClient::builder()
        .retry_policy(RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
        })
        .build()
        .unwrap()
}

fn blob() -> Vec<u8> {
    (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect()
}

/// An upload as a registry keeps it: the bytes taken so far.
#[derive(Default)]
struct Upload {
    data: Vec<u8>,
    patches: usize,
    completed: Option<String>,
}

/// A registry that stores each PATCH, answering the `fail_patch`-th one (1-based)
/// with a 500 after storing it, as a registry whose answer was lost does.
fn upload_server(upload: Arc<Mutex<Upload>>, fail_patch: usize) -> impl Fn(&Request) -> Reply {
    move |req: &Request| {
        let mut up = upload.lock().unwrap();
        let path = req.path.as_str();
        let range = |n: usize| format!("0-{}", n.saturating_sub(1));
        match req.method.as_str() {
            "HEAD" => Reply::status(404, "", &[]),
            "POST" if path.starts_with("/v2/test/app/blobs/uploads/") => Reply::status(
                202,
                "",
                &[
                    ("Location", "/v2/test/app/blobs/uploads/u1"),
                    ("Range", "0-0"),
                ],
            ),
            "PATCH" => {
                up.patches += 1;
                let start: usize = req
                    .header("content-range")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(usize::MAX);
                if start != up.data.len() {
                    return Reply::status(416, "", &[]);
                }
                up.data.extend_from_slice(&req.body);
                if up.patches == fail_patch {
                    return Reply::status(
                        500,
                        r#"{"errors":[{"code":"UNKNOWN","message":"disk hiccup"}]}"#,
                        &[],
                    );
                }
                let r = range(up.data.len());
                Reply::status(
                    202,
                    "",
                    &[
                        ("Location", "/v2/test/app/blobs/uploads/u1"),
                        ("Range", r.as_str()),
                    ],
                )
            }
            "GET" if path.starts_with("/v2/test/app/blobs/uploads/u1") => {
                let r = range(up.data.len());
                Reply::status(
                    204,
                    "",
                    &[
                        ("Location", "/v2/test/app/blobs/uploads/u1"),
                        ("Range", r.as_str()),
                    ],
                )
            }
            "PUT" if path.starts_with("/v2/test/app/blobs/uploads/u1?") => {
                let wanted = path
                    .split("digest=")
                    .nth(1)
                    .unwrap_or("")
                    .replace("%3A", ":");
                if digest(&up.data) != wanted {
                    return Reply::status(400, r#"{"errors":[{"code":"DIGEST_INVALID"}]}"#, &[]);
                }
                up.completed = Some(wanted.clone());
                Reply::status(201, "", &[("Docker-Content-Digest", wanted.as_str())])
            }
            _ => Reply::status(404, "", &[]),
        }
    }
}

#[tokio::test]
async fn a_failed_chunk_resumes_from_the_registrys_range() {
    let upload = Arc::new(Mutex::new(Upload::default()));
    let server = FakeServer::start(upload_server(upload.clone(), 2)).await;
    let reference = Reference::parse(&format!("{}/test/app:latest", server.host())).unwrap();
    let data = blob();
    let d = digest(&data);
    let c = client();
    assert!(!c.blob_exists(&reference, &d).await.unwrap());
    let session = c.start_upload(&reference).await.unwrap();
    let seen = Mutex::new(Vec::new());
    c.upload_blob(
        &reference,
        session,
        &d,
        data.len() as u64,
        Arc::new(Bytes::from(data.clone())),
        &UploadOptions {
            chunk_size: 64 * 1024,
        },
        &|n| seen.lock().unwrap().push(n),
    )
    .await
    .expect("the upload goes on after the failed chunk");
    let up = upload.lock().unwrap();
    assert_eq!(up.completed.as_deref(), Some(d.as_str()));
    assert_eq!(up.data, data, "the registry holds the blob, each byte once");
    // 400000 bytes in 64 KiB chunks: 7 PATCHes, none sent again.
    assert_eq!(up.patches, 7);
    let statuses = server
        .requests()
        .iter()
        .filter(|r| r.method == "GET")
        .count();
    assert_eq!(statuses, 1, "one GET asked where the upload stood");
    assert_eq!(
        seen.lock().unwrap().last().copied(),
        Some(data.len() as u64)
    );
}

#[tokio::test]
async fn a_registry_that_keeps_failing_is_named_in_the_error() {
    let server = FakeServer::start(|req: &Request| match req.method.as_str() {
        "POST" => Reply::status(202, "", &[("Location", "/v2/test/app/blobs/uploads/u1")]),
        _ => Reply::status(
            503,
            r#"{"errors":[{"code":"UNAVAILABLE","message":"storage is down"}]}"#,
            &[],
        ),
    })
    .await;
    let reference = Reference::parse(&format!("{}/test/app:latest", server.host())).unwrap();
    let data = blob();
    let c = client();
    let session = c.start_upload(&reference).await.unwrap();
    let err = c
        .upload_blob(
            &reference,
            session,
            &digest(&data),
            data.len() as u64,
            Arc::new(Bytes::from(data)),
            &UploadOptions::default(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::PushRefused { status: 503, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&server.host()), "{text}");
    assert!(text.contains("test/app"), "{text}");
    assert!(text.contains("storage is down"), "{text}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn an_upload_location_on_another_host_gets_nothing() {
    let elsewhere = FakeServer::start(|_: &Request| Reply::status(202, "", &[])).await;
    let away = format!("http://{}/steal", elsewhere.host());
    let server = FakeServer::start(move |req: &Request| match req.method.as_str() {
        "POST" => Reply::status(202, "", &[("Location", away.as_str())]),
        _ => Reply::status(404, "", &[]),
    })
    .await;
    let reference = Reference::parse(&format!("{}/test/app:latest", server.host())).unwrap();
    let c = RegistryClient::builder()
        .credentials(
            &server.host(),
            Credentials::Basic {
                username: "u".into(),
                password: "secret".into(),
            },
        )
        .build()
        .unwrap();
    let err = c.start_upload(&reference).await.unwrap_err();
    assert!(matches!(err, RegistryError::PushProtocol { .. }), "{err:?}");
    assert!(
        err.to_string().contains("points away from the registry"),
        "{err}"
    );
    assert!(
        elsewhere.requests().is_empty(),
        "nothing reached the other host"
    );
}

#[tokio::test]
async fn a_registry_that_keeps_losing_the_upload_does_not_keep_it_going() {
    // Every other PATCH is taken, the next fails, and the upload then says it holds
    // nothing: progress that never sticks must end, not loop.
    let patches = Arc::new(Mutex::new(0usize));
    let counter = patches.clone();
    let server = FakeServer::start(move |req: &Request| {
        let here = [
            ("Location", "/v2/test/app/blobs/uploads/u1"),
            ("Range", "0-0"),
        ];
        match req.method.as_str() {
            "POST" => Reply::status(202, "", &here),
            "PATCH" => {
                let mut n = counter.lock().unwrap();
                *n += 1;
                if (*n).is_multiple_of(2) {
                    Reply::status(500, "", &[])
                } else {
                    Reply::status(202, "", &here)
                }
            }
            "GET" => Reply::status(204, "", &here),
            _ => Reply::status(404, "", &[]),
        }
    })
    .await;
    let reference = Reference::parse(&format!("{}/test/app:latest", server.host())).unwrap();
    let data = blob();
    let c = client();
    let session = c.start_upload(&reference).await.unwrap();
    let err = tokio::time::timeout(
        Duration::from_secs(20),
        c.upload_blob(
            &reference,
            session,
            &digest(&data),
            data.len() as u64,
            Arc::new(Bytes::from(data)),
            &UploadOptions {
                chunk_size: 64 * 1024,
            },
            &|_| {},
        ),
    )
    .await
    .expect("the upload ends")
    .unwrap_err();
    assert!(
        matches!(err, RegistryError::PushRefused { status: 500, .. }),
        "{err:?}"
    );
    assert!(*patches.lock().unwrap() < 20, "gave up after a few tries");
}

#[tokio::test]
async fn a_range_past_the_blob_is_refused() {
    let server = FakeServer::start(|req: &Request| {
        let here = [("Location", "/v2/test/app/blobs/uploads/u1")];
        match req.method.as_str() {
            "POST" => Reply::status(202, "", &here),
            "PATCH" => Reply::status(500, "", &[]),
            "GET" => Reply::status(204, "", &[here[0], ("Range", "0-99999999")]),
            _ => Reply::status(404, "", &[]),
        }
    })
    .await;
    let reference = Reference::parse(&format!("{}/test/app:latest", server.host())).unwrap();
    let data = blob();
    let c = client();
    let session = c.start_upload(&reference).await.unwrap();
    let err = c
        .upload_blob(
            &reference,
            session,
            &digest(&data),
            data.len() as u64,
            Arc::new(Bytes::from(data)),
            &UploadOptions::default(),
            &|_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::PushProtocol { .. }), "{err:?}");
    assert!(err.to_string().contains("100000000 bytes"), "{err}");
    assert!(
        !server.requests().iter().any(|r| r.method == "PUT"),
        "no upload was completed"
    );
}
