//! `ADD <http(s) URL> <dest>`: the file is fetched as it is served (a remote archive is
//! not extracted, as docker does not), into a spool file, hashed on the way so that the
//! step's cache key is its content.
//!
//! The build is synchronous and may run inside a caller's async runtime, where a
//! blocking HTTP client must not be made: the fetch runs on a thread of its own with
//! a one-thread runtime.

use std::fs;
use std::io::{Seek as _, Write as _};

use sha2::{Digest as _, Sha256};

/// A fetched file.
pub(crate) struct Fetched {
    /// The content, rewound.
    pub file: fs::File,
    /// `sha256:…` of the content.
    pub digest: String,
    /// Bytes.
    pub size: u64,
    /// The URL's last path segment, when it names a file.
    pub name: Option<String>,
    /// Unix seconds: the response's `Last-Modified`, else now.
    pub mtime: i64,
}

/// Whether an ADD source is a URL rather than a path of the context.
pub(crate) fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// Fetches `url` into `spool`. A transport failure or a status other than success is
/// an error naming the URL (and the status).
pub(crate) fn fetch(url: &str, spool: fs::File) -> Result<Fetched, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url}: {e}"))?;
    // The name is the URL's, not the redirect target's (docker's rule); an empty,
    // `.` or `..` segment names nothing.
    let name = parsed
        .path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|n| !n.is_empty() && *n != "." && *n != "..")
        .map(str::to_string);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("fetching {url}: starting the HTTP client: {e}"))?;
                runtime.block_on(download(parsed.clone(), url, spool))
            })
            .join()
            .unwrap_or_else(|_| Err(format!("fetching {url}: the download thread panicked")))
    })
    .map(|(file, digest, size, mtime)| Fetched {
        file,
        digest,
        size,
        name,
        mtime,
    })
}

async fn download(
    parsed: reqwest::Url,
    url: &str,
    mut spool: fs::File,
) -> Result<(fs::File, String, u64, i64), String> {
    let failed = |e: &dyn std::fmt::Display| format!("fetching {url}: {e}");
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| failed(&error_chain(&e)))?;
    let mut response = client
        .get(parsed)
        .send()
        .await
        .map_err(|e| failed(&error_chain(&e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("fetching {url}: HTTP status {status}"));
    }
    let mtime = response
        .headers()
        .get(reqwest::header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            jiff::fmt::rfc2822::DateTimeParser::new()
                .relaxed_weekday(true)
                .parse_timestamp(v.trim())
                .ok()
        })
        .map_or_else(|| jiff::Timestamp::now().as_second(), |t| t.as_second());
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| failed(&error_chain(&e)))?
    {
        hasher.update(&chunk);
        size += chunk.len() as u64;
        spool
            .write_all(&chunk)
            .map_err(|e| failed(&format!("writing the spool file: {e}")))?;
    }
    spool
        .rewind()
        .map_err(|e| failed(&format!("rewinding the spool file: {e}")))?;
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    Ok((spool, digest, size, mtime))
}

/// An error with its sources (reqwest's own message says little: "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
