//! The distribution API's push requests over plain HTTP, for a registry on this machine
//! without credentials (the harness's open one): enough to push one image quickly,
//! nothing more.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

/// A response: status code and headers (names lower-cased).
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection to `registry` (`HOST:PORT`); `target` is a path
/// with its query, or an absolute `http://` URL on the same registry.
fn request(registry: &str, method: &str, target: &str, kind: &str, body: &[u8]) -> Response {
    let path = target
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(target);
    let mut stream = TcpStream::connect(registry)
        .unwrap_or_else(|e| panic!("connecting to registry {registry}: {e}"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {registry}\r\nContent-Type: {kind}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse(&String::from_utf8_lossy(&raw))
}

fn parse(raw: &str) -> Response {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// Uploads the blob `data` (whose digest is `digest`) to repository `name`: a POST for an
/// upload session, then one PUT with all of it.
pub(crate) fn blob(registry: &str, name: &str, digest: &str, data: &[u8]) {
    let started = request(
        registry,
        "POST",
        &format!("/v2/{name}/blobs/uploads/"),
        "application/octet-stream",
        b"",
    );
    assert_eq!(started.status, 202, "starting an upload: {}", started.body);
    let location = started.header("location").expect("an upload location");
    let separator = if location.contains('?') { '&' } else { '?' };
    let done = request(
        registry,
        "PUT",
        &format!("{location}{separator}digest={digest}"),
        "application/octet-stream",
        data,
    );
    assert_eq!(done.status, 201, "uploading {digest}: {}", done.body);
}

/// Puts `manifest` (of media type `kind`) as `name:tag`.
pub(crate) fn manifest(registry: &str, name: &str, tag: &str, kind: &str, manifest: &[u8]) {
    let put = request(
        registry,
        "PUT",
        &format!("/v2/{name}/manifests/{tag}"),
        kind,
        manifest,
    );
    assert_eq!(
        put.status, 201,
        "putting manifest {name}:{tag}: {}",
        put.body
    );
}
