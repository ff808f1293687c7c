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
