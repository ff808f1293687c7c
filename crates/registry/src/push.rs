//! Pushing: the upload side of the OCI distribution protocol.
//!
//! - [`RegistryClient::blob_exists`]: `HEAD /v2/<name>/blobs/<digest>`, so a blob the
//!   repository has is not sent again.
//! - [`RegistryClient::mount_blob`]: `POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>`,
//!   a blob another repository of the same registry has, linked without sending it.
//! - [`RegistryClient::start_upload`] and [`RegistryClient::upload_blob`]: chunks sent with
//!   `PATCH` (`Content-Range`), ended by `PUT ?digest=`. After a failed chunk the upload's
//!   state is asked for (`GET` on its location, the registry's `Range`) and the upload goes
//!   on from there; a registry that lost the upload gets a new one, from the start.
//! - [`RegistryClient::put_manifest`]: the manifest (or index), last.
//!
//! Every request asks for a token with `pull,push` on the repository (and `pull` on the
//! mount's source), or sends the Basic credentials, as a pull does.
//!
//! Written by hand beside the pull code rather than with `oci-client` 0.18. That crate has
//! `blob_exists`, `mount_blob`, `push_blob`, `push_chunk` and `push_manifest`, but it takes
//! each blob whole in memory, keeps its own authentication (one credential set per
//! registry, kept from the first call; no docker credential helpers; no token shared with
//! this client's pulls), and cannot resume a chunked upload from the `Range` the registry
//! reports after a failure. Here every request goes through the same auth, retries, time
//! limits and error messages as a pull.

use std::io;
use std::os::unix::fs::FileExt;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode};
use tokio::time::Instant;

use crate::challenge::token_scope;
use crate::client::{RegistryClient, Target, error_body, header_str};
use crate::digest::Digester;
use crate::error::{ErrorEnvelope, RegistryError};
use crate::reference::Reference;
use crate::timeout::{Budget, Stall};

/// Where a blob's bytes come from, read at any offset (a chunk is read again when it
/// is sent again).
pub trait BlobSource: Send + Sync + 'static {
    /// Reads up to `buf.len()` bytes at `offset`; 0 only at the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

impl BlobSource for std::fs::File {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl BlobSource for Bytes {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// How blobs are uploaded.
#[derive(Debug, Clone, Copy)]
pub struct UploadOptions {
    /// Bytes per `PATCH` (default 16 MiB). A failure costs at most one chunk: the
    /// upload goes on from what the registry says it has.
    pub chunk_size: u64,
}

impl Default for UploadOptions {
    fn default() -> Self {
        UploadOptions {
            chunk_size: 16 * 1024 * 1024,
        }
    }
}

/// An upload the registry has opened: where to send its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    location: String,
}

/// What a mount request did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOutcome {
    /// The registry linked the blob from the other repository.
    Mounted,
    /// It could not (it does not have the blob there, or these credentials may not
    /// read it) and opened an upload instead, for the bytes to be sent.
    Upload(UploadSession),
}

/// Bytes read from a [`BlobSource`] per piece of a request body.
const PIECE: usize = 256 * 1024;

impl RegistryClient {
    /// A target for pushing to `reference`'s repository; `from` adds `pull` on another
    /// repository (a mount's source) to the token asked for.
    fn push_target<'a>(
        &self,
        reference: &'a Reference,
        what: String,
        from: Option<&str>,
    ) -> Target<'a> {
        let mut scope = token_scope(reference.repository(), &["pull", "push"]);
        if let Some(from) = from {
            scope.push(' ');
            scope.push_str(&token_scope(from, &["pull"]));
        }
        Target {
            reference,
            scope,
            budget: Budget::start(reference.registry(), what, self.timeouts()),
            action: "pushing to",
        }
    }

    /// Whether `reference`'s repository has the blob `digest` (`HEAD`).
    pub async fn blob_exists(
        &self,
        reference: &Reference,
        digest: &str,
    ) -> Result<bool, RegistryError> {
        let what = format!("blob {digest}");
        let target = self.push_target(reference, what.clone(), None);
        let url = self
            .repository_url(&target, &format!("blobs/{digest}"))
            .await?;
        let resp = self
            .send_to(&target, Method::HEAD, &url, HeaderMap::new(), || None)
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(refused(&target, resp, &what).await),
        }
    }

    /// Asks the registry to link the blob `digest` from `from_repository` (same
    /// registry) into `reference`'s repository. A registry that cannot opens an
    /// upload instead ([`MountOutcome::Upload`]); so does this client when the
    /// credentials may not read `from_repository`.
    pub async fn mount_blob(
        &self,
        reference: &Reference,
        digest: &str,
        from_repository: &str,
    ) -> Result<MountOutcome, RegistryError> {
        let what = format!("blob {digest} (mounted from {from_repository})");
        let target = self.push_target(reference, what.clone(), Some(from_repository));
        let mut url = url::Url::parse(&self.repository_url(&target, "blobs/uploads/").await?)
            .map_err(|e| protocol(&target, &what, format!("bad upload URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from_repository);
        let sent = self
            .send_to(
                &target,
                Method::POST,
                url.as_str(),
                empty_body_headers(),
                || None,
            )
            .await;
        let resp = match sent {
            Ok(resp) => resp,
            // A token server leaves out what an account may not do; the registry then
            // refuses the mount as a whole. The blob can still be sent.
            Err(RegistryError::Unauthorized { .. } | RegistryError::Denied { .. }) => {
                tracing::debug!(digest, from_repository, "mount refused, uploading instead");
                return self.start_upload(reference).await.map(MountOutcome::Upload);
            }
            Err(e) => return Err(e),
        };
        match resp.status() {
            StatusCode::CREATED => Ok(MountOutcome::Mounted),
            StatusCode::ACCEPTED => {
                let location = location(&target, &resp, &what)?;
                Ok(MountOutcome::Upload(UploadSession { location }))
            }
            _ => Err(refused(&target, resp, &what).await),
        }
    }

    /// Opens an upload in `reference`'s repository (`POST .../blobs/uploads/`).
    pub async fn start_upload(
        &self,
        reference: &Reference,
    ) -> Result<UploadSession, RegistryError> {
        let what = "a blob upload".to_string();
        let target = self.push_target(reference, what.clone(), None);
        self.open_upload(&target, &what).await
    }

    async fn open_upload(
        &self,
        target: &Target<'_>,
        what: &str,
    ) -> Result<UploadSession, RegistryError> {
        let url = self.repository_url(target, "blobs/uploads/").await?;
        let resp = self
            .send_to(target, Method::POST, &url, empty_body_headers(), || None)
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(refused(target, resp, what).await);
        }
        Ok(UploadSession {
            location: location(target, &resp, what)?,
        })
    }

    /// Sends the blob `digest` of `size` bytes from `source` through `session`, in
    /// chunks of [`UploadOptions::chunk_size`], and completes the upload.
    /// `progress` gets the bytes the registry has taken so far.
    ///
    /// A chunk that fails (connection lost, 5xx, no answer) is followed by a `GET` on
    /// the upload, whose `Range` says where to go on; when the registry has lost the
    /// upload, a new one starts from the beginning. Past the retry policy's retries
    /// without progress, the last failure is returned.
    #[allow(clippy::too_many_arguments)]
    pub async fn upload_blob(
        &self,
        reference: &Reference,
        session: UploadSession,
        digest: &str,
        size: u64,
        source: Arc<dyn BlobSource>,
        options: &UploadOptions,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), RegistryError> {
        Digester::for_digest(digest)?;
        let what = format!("blob {digest}");
        let target = self.push_target(reference, what.clone(), None);
        let chunk = options.chunk_size.max(1);
        let policy = self.retry_policy();
        let mut location = session.location;
        let mut offset = 0;
        // Failures in a row without getting past the furthest byte ever taken: a
        // registry that keeps losing what it took cannot keep the upload going forever.
        let mut failures = 0;
        let mut furthest = 0;
        while offset < size {
            let end = (offset + chunk).min(size);
            let sent = self
                .patch_chunk(&target, &what, &location, &source, offset, end, progress)
                .await;
            match sent {
                Ok(next) => {
                    location = next;
                    offset = end;
                    if offset > furthest {
                        furthest = offset;
                        failures = 0;
                    }
                    progress(offset);
                }
                Err(e) if resumable(&e) && failures < policy.max_retries => {
                    tracing::debug!(digest, offset, error = %e, "chunk failed; asking where to go on");
                    tokio::time::sleep(policy.delay(failures)).await;
                    failures += 1;
                    (location, offset) = match self.upload_status(&target, &what, &location).await {
                        Ok(status) => status,
                        Err(e) if !e.is_transient() => {
                            tracing::debug!(digest, error = %e, "upload lost; starting again");
                            (self.open_upload(&target, &what).await?.location, 0)
                        }
                        Err(e) => return Err(e),
                    };
                    if offset > size {
                        return Err(protocol(
                            &target,
                            &what,
                            format!(
                                "the registry says it has {offset} bytes of a {size}-byte blob"
                            ),
                        ));
                    }
                    progress(offset);
                }
                Err(e) => return Err(e),
            }
        }
        let mut url = url::Url::parse(&location)
            .map_err(|e| protocol(&target, &what, format!("bad upload location: {e}")))?;
        url.query_pairs_mut().append_pair("digest", digest);
        let resp = self
            .send_to(
                &target,
                Method::PUT,
                url.as_str(),
                empty_body_headers(),
                || None,
            )
            .await?;
        if !resp.status().is_success() {
            return Err(refused(&target, resp, &what).await);
        }
        match header_str(&resp, "docker-content-digest") {
            Some(said) if said != digest => Err(protocol(
                &target,
                &what,
                format!("the registry stored it as {said}"),
            )),
            _ => Ok(()),
        }
    }

    /// One `PATCH` of bytes `start..end`; returns the upload's next location. Its
    /// answer is awaited while the body is being sent: silence counts only once
    /// the registry stops taking bytes.
    #[allow(clippy::too_many_arguments)]
    async fn patch_chunk(
        &self,
        target: &Target<'_>,
        what: &str,
        location: &str,
        source: &Arc<dyn BlobSource>,
        start: u64,
        end: u64,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<String, RegistryError> {
        let http = self.http_for(target.reference);
        let mut challenged = false;
        loop {
            let sent = Arc::new(AtomicU64::new(0));
            let mut req = http
                .patch(location)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, end - start)
                .header("Content-Range", format!("{start}-{}", end - 1))
                .body(reqwest::Body::wrap_stream(body_stream(
                    Arc::clone(source),
                    start,
                    end,
                    Arc::clone(&sent),
                )));
            if let Some(auth) = self.auth_header(target).await? {
                req = req.header(reqwest::header::AUTHORIZATION, auth);
            }
            let resp = self
                .await_sending(target, location, req.send(), &sent, |n| progress(start + n))
                .await?;
            match resp.status() {
                StatusCode::ACCEPTED | StatusCode::NO_CONTENT | StatusCode::CREATED => {
                    return location_or(target, &resp, what, location);
                }
                StatusCode::UNAUTHORIZED if !challenged => {
                    // A token that expired during a long upload: nothing was taken.
                    challenged = true;
                    self.learn_challenge(target, &resp).await?;
                }
                StatusCode::UNAUTHORIZED => return Err(self.unauthorized(target, resp).await),
                _ => return Err(refused(target, resp, what).await),
            }
        }
    }

    /// Waits for the answer to a request whose body is being sent, reporting the bytes
    /// sent; fails once nothing was sent and nothing answered for the idle timeout.
    async fn await_sending(
        &self,
        target: &Target<'_>,
        url: &str,
        answer: impl Future<Output = reqwest::Result<Response>>,
        sent: &AtomicU64,
        progress: impl Fn(u64),
    ) -> Result<Response, RegistryError> {
        let idle = self.timeouts().idle;
        let tick = Duration::from_millis(200).min(idle);
        let mut answer = pin!(answer);
        let mut last = 0;
        let mut since = Instant::now();
        loop {
            match tokio::time::timeout(tick, &mut answer).await {
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(source)) => return Err(target.budget.transport(url, source)),
                Err(_) => {
                    let now = sent.load(Ordering::Relaxed);
                    if now != last {
                        last = now;
                        since = Instant::now();
                        progress(now);
                    } else if since.elapsed() >= idle {
                        return Err(target.budget.timed_out(Stall::Answer));
                    }
                }
            }
        }
    }

    /// Where an upload stands (`GET` on its location): its next location and how many
    /// bytes the registry has.
    async fn upload_status(
        &self,
        target: &Target<'_>,
        what: &str,
        location: &str,
    ) -> Result<(String, u64), RegistryError> {
        let resp = self
            .send_to(target, Method::GET, location, HeaderMap::new(), || None)
            .await?;
        if !resp.status().is_success() {
            return Err(refused(target, resp, what).await);
        }
        let next = location_or(target, &resp, what, location)?;
        let range = header_str(&resp, "range");
        let have = match range.as_deref() {
            None => 0,
            Some(text) => parse_range_end(text).ok_or_else(|| {
                protocol(target, what, format!("unreadable upload Range {text:?}"))
            })?,
        };
        Ok((next, have))
    }

    /// Puts a manifest (or index) `raw` of `media_type` under `reference`'s tag (or
    /// digest) and returns its digest. Every blob it names must be in the repository.
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        raw: Bytes,
    ) -> Result<String, RegistryError> {
        let tag = reference.manifest_reference().to_string();
        let what = format!("manifest {tag}");
        let digest = Digester::sha256().finish_with(&raw);
        let target = self.push_target(reference, what.clone(), None);
        let url = self
            .repository_url(&target, &format!("manifests/{tag}"))
            .await?;
        let mut headers = HeaderMap::new();
        let kind = HeaderValue::from_str(media_type)
            .map_err(|_| protocol(&target, &what, format!("bad media type {media_type:?}")))?;
        headers.insert(CONTENT_TYPE, kind);
        let resp = self
            .send_to(&target, Method::PUT, &url, headers, || Some(raw.clone()))
            .await?;
        if !resp.status().is_success() {
            return Err(refused(&target, resp, &what).await);
        }
        match header_str(&resp, "docker-content-digest") {
            Some(said) if said != digest => Err(protocol(
                &target,
                &what,
                format!("the registry stored it as {said}, its bytes are {digest}"),
            )),
            _ => Ok(digest),
        }
    }
}

/// The body of one chunk: `start..end` of `source`, read a piece at a time, counting
/// what has been handed to the connection into `sent`.
fn body_stream(
    source: Arc<dyn BlobSource>,
    start: u64,
    end: u64,
    sent: Arc<AtomicU64>,
) -> impl futures_util::Stream<Item = io::Result<Bytes>> + Send + 'static {
    futures_util::stream::unfold(start, move |at| {
        let source = Arc::clone(&source);
        let sent = Arc::clone(&sent);
        async move {
            if at >= end {
                return None;
            }
            let want = usize::try_from(end - at).unwrap_or(PIECE).min(PIECE);
            let mut buf = vec![0; want];
            let piece = match source.read_at(at, &mut buf) {
                Ok(0) => Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the blob ended at byte {at}, before its size ({end})"),
                )),
                Ok(n) => {
                    buf.truncate(n);
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    Ok(Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let next = match &piece {
                Ok(b) => at + b.len() as u64,
                Err(_) => end,
            };
            Some((piece, next))
        }
    })
}

/// Whether a failed chunk is worth asking the registry where the upload stands.
fn resumable(e: &RegistryError) -> bool {
    e.is_transient() || matches!(e, RegistryError::PushRefused { status: 416, .. })
}

/// The bytes an upload's `Range: 0-N` says the registry has: `N + 1`. distribution
/// answers `0-0` for an upload with nothing in it (and for one byte); nothing is the
/// safe reading, since the next chunk then starts over.
fn parse_range_end(text: &str) -> Option<u64> {
    let text = text.trim();
    let text = text.strip_prefix("bytes=").unwrap_or(text);
    let (start, end) = text.split_once('-')?;
    let (start, end): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
    if start != 0 {
        return None;
    }
    Some(if end == 0 { 0 } else { end + 1 })
}

fn empty_body_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    headers
}

/// The upload's `Location`, made absolute against the request's URL.
fn location(target: &Target<'_>, resp: &Response, what: &str) -> Result<String, RegistryError> {
    let text = header_str(resp, LOCATION).ok_or_else(|| {
        protocol(
            target,
            what,
            format!("HTTP {} without a Location", resp.status().as_u16()),
        )
    })?;
    let url = resp
        .url()
        .join(&text)
        .map_err(|e| protocol(target, what, format!("bad Location {text:?}: {e}")))?;
    // The bytes and the credentials go where the Location says: a registry does not
    // get to send them to another host.
    let same = |u: &url::Url| {
        (
            u.scheme().to_string(),
            u.host_str().map(str::to_string),
            u.port_or_known_default(),
        )
    };
    if same(&url) != same(resp.url()) {
        return Err(protocol(
            target,
            what,
            format!(
                "the upload Location {text:?} points away from the registry; \
                 refusing to send the blob and credentials there"
            ),
        ));
    }
    Ok(url.to_string())
}

/// [`location`], or `current` when the answer has none.
fn location_or(
    target: &Target<'_>,
    resp: &Response,
    what: &str,
    current: &str,
) -> Result<String, RegistryError> {
    if resp.headers().contains_key(LOCATION) {
        location(target, resp, what)
    } else {
        Ok(current.to_string())
    }
}

async fn refused(target: &Target<'_>, resp: Response, what: &str) -> RegistryError {
    let status = resp.status().as_u16();
    let body = error_body(resp, &target.budget).await;
    RegistryError::PushRefused {
        registry: target.registry().to_string(),
        repository: target.reference.repository().to_string(),
        what: what.to_string(),
        status,
        envelope: ErrorEnvelope::parse(&body),
    }
}

fn protocol(target: &Target<'_>, what: &str, reason: String) -> RegistryError {
    RegistryError::PushProtocol {
        registry: target.registry().to_string(),
        repository: target.reference.repository().to_string(),
        what: what.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_bytes_held() {
        assert_eq!(parse_range_end("0-0"), Some(0));
        assert_eq!(parse_range_end("0-1023"), Some(1024));
        assert_eq!(parse_range_end("bytes=0-99"), Some(100));
        assert_eq!(parse_range_end("5-9"), None);
        assert_eq!(parse_range_end("nonsense"), None);
    }

    #[test]
    fn bytes_read_at_any_offset() {
        let b = Bytes::from_static(b"hello world");
        let mut buf = [0; 5];
        assert_eq!(BlobSource::read_at(&b, 6, &mut buf).unwrap(), 5);
        assert_eq!(&buf, b"world");
        assert_eq!(BlobSource::read_at(&b, 11, &mut buf).unwrap(), 0);
        assert_eq!(BlobSource::read_at(&b, 99, &mut buf).unwrap(), 0);
    }
}
