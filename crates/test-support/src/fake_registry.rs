//! A tiny in-process HTTP/1.1 server for faults a real registry cannot produce:
//! tampered bodies, connections reset mid-body, rate limits, hostile redirects,
//! a registry that accepts a request and then says nothing, one that answers
//! slowly but steadily.
//!
//! Behind the `fake-registry` feature, so that tests which never speak HTTP do
//! not build tokio for it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request target, with its query.
    pub path: String,
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    /// As many bytes as `Content-Length` announced.
    pub body: Vec<u8>,
}

impl Request {
    /// The header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

/// What to do with a request.
pub enum Reply {
    /// A whole response.
    Full {
        /// The HTTP status.
        status: u16,
        /// Headers besides `Content-Length` (added unless given).
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// Announce `headers` (with the full Content-Length), send `body`'s first `cut`
    /// bytes, then drop the connection.
    Cut {
        /// The HTTP status.
        status: u16,
        /// Headers besides `Content-Length` (added unless given).
        headers: Vec<(String, String)>,
        /// The body announced.
        body: Vec<u8>,
        /// How many of its bytes are sent.
        cut: usize,
    },
    /// Read the request, then send nothing and keep the connection open until
    /// the client gives up: a registry that accepts and goes silent.
    Silent,
    /// Send `headers` at once, then `body` `chunk` bytes at a time with `pause`
    /// between chunks: slow, but never silent for longer than `pause` (or, with a
    /// long `pause`, a body that stops part way and the connection kept open).
    Slow {
        /// The HTTP status.
        status: u16,
        /// Headers besides `Content-Length` (added unless given).
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
        /// Bytes per write.
        chunk: usize,
        /// The wait between two writes.
        pause: Duration,
    },
}

impl Reply {
    /// A 200 with `body`.
    pub fn ok(body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        Reply::status(200, body, headers)
    }

    /// A `status` with `body`.
    pub fn status(status: u16, body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        Reply::Full {
            status,
            headers: owned(headers),
            body: body.into(),
        }
    }
}

fn owned(headers: &[(&str, &str)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A running fake server; it stops when the test's runtime ends.
pub struct FakeServer {
    /// Where it listens (loopback, a free port).
    pub addr: SocketAddr,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl FakeServer {
    /// Starts serving on the current tokio runtime; `handler` answers each request.
    pub async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake server");
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let log = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, handler.clone(), log.clone()));
            }
        });
        FakeServer { addr, requests }
    }

    /// A server that accepts every connection and never sends a byte, whatever
    /// it receives (a TLS handshake included): a registry hung after `accept`.
    pub async fn start_mute() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake server");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move { hold_silently(&mut BufReader::new(stream)).await });
            }
        });
        FakeServer {
            addr,
            requests: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// `127.0.0.1:PORT`, usable as a registry host (loopback speaks plain HTTP).
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(stream: TcpStream, handler: Handler, log: Arc<Mutex<Vec<Request>>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        log.lock().unwrap().push(request.clone());
        let reply = handler(&request);
        let head_only = request.method == "HEAD";
        let keep = match reply {
            Reply::Silent => {
                hold_silently(&mut stream).await;
                false
            }
            Reply::Slow {
                status,
                headers,
                body,
                chunk,
                pause,
            } => {
                write_head(&mut stream, status, &headers, body.len()).await;
                head_only || write_slowly(&mut stream, &body, chunk, pause).await
            }
            Reply::Full {
                status,
                headers,
                body,
            } => {
                write_head(&mut stream, status, &headers, body.len()).await;
                if !head_only {
                    let _ = stream.get_mut().write_all(&body).await;
                }
                true
            }
            Reply::Cut {
                status,
                headers,
                body,
                cut,
            } => {
                write_head(&mut stream, status, &headers, body.len()).await;
                let _ = stream
                    .get_mut()
                    .write_all(&body[..cut.min(body.len())])
                    .await;
                let _ = stream.get_mut().flush().await;
                false
            }
        };
        if !keep {
            return;
        }
    }
}

/// Reads (and drops) whatever comes until the client closes the connection.
async fn hold_silently(stream: &mut BufReader<TcpStream>) {
    let mut sink = [0u8; 1024];
    while let Ok(n) = tokio::io::AsyncReadExt::read(stream, &mut sink).await {
        if n == 0 {
            return;
        }
    }
}

/// Writes `body` in `chunk`-byte pieces with `pause` between them; false when
/// the client went away.
async fn write_slowly(
    stream: &mut BufReader<TcpStream>,
    body: &[u8],
    chunk: usize,
    pause: Duration,
) -> bool {
    for (i, piece) in body.chunks(chunk.max(1)).enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        let out = stream.get_mut();
        if out.write_all(piece).await.is_err() || out.flush().await.is_err() {
            return false;
        }
    }
    true
}

async fn write_head(
    stream: &mut BufReader<TcpStream>,
    status: u16,
    headers: &[(String, String)],
    len: usize,
) {
    let mut head = format!("HTTP/1.1 {status} X\r\n");
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.get_mut().write_all(head.as_bytes()).await;
}

async fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if stream.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = HashMap::new();
    let mut content_length = 0usize;
    loop {
        let mut h = String::new();
        stream.read_line(&mut h).await.ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            if k == "content-length" {
                content_length = v.trim().parse().unwrap_or(0);
            }
            headers.insert(k, v.trim().to_string());
        }
    }
    let mut body = vec![0; content_length];
    tokio::io::AsyncReadExt::read_exact(stream, &mut body)
        .await
        .ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

/// A one-layer image (a gzip layer of the files given) that a fake registry
/// can serve under any repository, so a test replies with faults for the
/// parts it chooses and with the image for the rest.
#[derive(Debug, Clone)]
pub struct FakeImage {
    /// The OCI image manifest.
    pub manifest: Vec<u8>,
    /// The image config.
    pub config: Vec<u8>,
    /// The gzip layer blob.
    pub layer: Vec<u8>,
}

/// Which part of a [`FakeImage`] a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `GET /v2/<name>/manifests/<any>`.
    Manifest,
    /// The config blob.
    Config,
    /// The layer blob.
    Layer,
}

impl FakeImage {
    /// An image whose only layer holds `files` (path, content; mode 0644).
    pub fn new(files: &[(&str, &[u8])]) -> FakeImage {
        let tar = tar_of(files);
        let layer = gzip(&tar);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": host_architecture(), "os": "linux",
            "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(&tar)]},
        }))
        .expect("config");
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(&config), "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": sha256(&layer), "size": layer.len(),
            }],
        }))
        .expect("manifest");
        FakeImage {
            manifest,
            config,
            layer,
        }
    }

    /// The layer blob's digest.
    pub fn layer_digest(&self) -> String {
        sha256(&self.layer)
    }

    /// The config's digest (the image id).
    pub fn config_digest(&self) -> String {
        sha256(&self.config)
    }

    /// Which part `request` asks for, if any.
    pub fn part(&self, request: &Request) -> Option<Part> {
        let path = request.path.strip_prefix("/v2/")?;
        if path.contains("/manifests/") {
            return Some(Part::Manifest);
        }
        let (_, digest) = path.split_once("/blobs/")?;
        if digest == self.config_digest() {
            Some(Part::Config)
        } else if digest == self.layer_digest() {
            Some(Part::Layer)
        } else {
            None
        }
    }

    /// The body of a part.
    pub fn body(&self, part: Part) -> Vec<u8> {
        match part {
            Part::Manifest => self.manifest.clone(),
            Part::Config => self.config.clone(),
            Part::Layer => self.layer.clone(),
        }
    }

    /// What a working registry answers: `/v2/`, the parts (ranges honoured
    /// for blobs), 404 for anything else.
    pub fn reply(&self, request: &Request) -> Reply {
        if request.path == "/v2/" {
            return Reply::ok("{}", &[]);
        }
        match self.part(request) {
            Some(Part::Manifest) => Reply::ok(
                self.manifest.clone(),
                &[
                    ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
                    ("Docker-Content-Digest", &sha256(&self.manifest)),
                ],
            ),
            Some(part) => ranged(&self.body(part), request.header("range")),
            None => Reply::status(
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"unknown"}]}"#,
                &[],
            ),
        }
    }
}

/// A blob's reply: whole, or from the byte a `Range: bytes=N-` asks for.
fn ranged(body: &[u8], range: Option<&str>) -> Reply {
    let start = range
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.trim_end_matches('-').parse::<usize>().ok());
    match start {
        Some(start) if start < body.len() => {
            let content_range = format!("bytes {start}-{}/{}", body.len() - 1, body.len());
            Reply::status(
                206,
                body[start..].to_vec(),
                &[("Content-Range", &content_range)],
            )
        }
        _ => Reply::ok(body.to_vec(), &[]),
    }
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        builder.append_data(&mut header, path, *data).expect("tar");
    }
    builder.into_inner().expect("tar")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    gz.finish().expect("gzip")
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    let hex: String = sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// GOARCH of this machine, so the image is one the host can run.
fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}
