//! Blob downloads that verify while they stream and resume after a broken or
//! silent connection.

use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::{Response, StatusCode};

use crate::client::RegistryClient;
use crate::digest::Digester;
use crate::error::RegistryError;
use crate::reference::Reference;
use crate::timeout::{Budget, Stall};

/// A stream of a blob's bytes.
///
/// Chunks arrive as they are received; the stream ends with `Ok` only after every
/// byte has been hashed and the size and digest match the descriptor. A consumer
/// must therefore treat what it received as unverified until the stream has ended
/// without an error, and discard it otherwise. After the first error the stream ends.
pub type BlobStream = Pin<Box<dyn Stream<Item = Result<Bytes, RegistryError>> + Send>>;

/// What to fetch: the blob's digest and its size from the descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRequest {
    /// `sha256:…`.
    pub digest: String,
    /// Size in bytes from the descriptor; more or fewer bytes is an error.
    pub size: u64,
}

impl BlobRequest {
    /// A request for the blob a descriptor names.
    pub fn from_descriptor(descriptor: &oci_spec::image::Descriptor) -> Self {
        BlobRequest {
            digest: descriptor.digest().to_string(),
            size: descriptor.size(),
        }
    }
}

struct Download {
    client: RegistryClient,
    reference: Reference,
    request: BlobRequest,
    digester: Option<Digester>,
    received: u64,
    response: Response,
    /// Bytes to drop from the current response: a server that ignored `Range`
    /// resends from the start.
    skip: u64,
    resumes_left: u32,
    /// Restarted by every new byte: silence, not slowness, ends a download.
    budget: Budget,
}

/// Why the current response gave no more bytes.
enum Broken {
    /// The body ended before the blob did.
    Ended,
    /// The connection failed.
    Transport(reqwest::Error),
    /// Nothing arrived within the idle timeout.
    Silent(Stall),
}

impl RegistryClient {
    /// [`fetch_blob`](Self::fetch_blob) from `reference`'s own registry.
    pub(crate) async fn fetch_blob_direct(
        &self,
        reference: &Reference,
        request: &BlobRequest,
    ) -> Result<BlobStream, RegistryError> {
        let digester = Digester::for_digest(&request.digest)?;
        let budget = self.blob_budget(reference, &request.digest);
        let response = self
            .blob_response(reference, &request.digest, 0, &budget)
            .await?;
        let download = Download {
            client: self.clone(),
            reference: reference.clone(),
            request: request.clone(),
            digester: Some(digester),
            received: 0,
            response,
            skip: 0,
            resumes_left: self.retry_policy().max_retries,
            budget,
        };
        if let Some(len) = download.response.content_length()
            && len != request.size
        {
            return Err(download.size_error(len));
        }
        Ok(Box::pin(futures_util::stream::try_unfold(
            download,
            Download::next_chunk,
        )))
    }
}

impl Download {
    /// One step of the stream: the next chunk, a resume, or the final verification.
    async fn next_chunk(mut self) -> Result<Option<(Bytes, Self)>, RegistryError> {
        loop {
            let Some(digester) = self.digester.as_mut() else {
                return Ok(None);
            };
            let next = self.budget.wait(self.response.chunk(), Stall::Data).await;
            match next {
                Ok(Ok(Some(mut chunk))) => {
                    if self.skip > 0 {
                        let drop = self.skip.min(chunk.len() as u64);
                        self.skip -= drop;
                        chunk = chunk.slice(drop as usize..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    self.received += chunk.len() as u64;
                    self.budget.progressed();
                    if self.received > self.request.size {
                        return Err(self.size_error(self.received));
                    }
                    digester.update(&chunk);
                    return Ok(Some((chunk, self)));
                }
                Ok(Ok(None)) if self.received == self.request.size => {
                    self.verify()?;
                    return Ok(None);
                }
                // A body that ends early is a broken connection as far as we can tell.
                Ok(Ok(None)) => self.resume(Broken::Ended).await?,
                Ok(Err(source)) => self.resume(Broken::Transport(source)).await?,
                Err(stall) => self.resume(Broken::Silent(stall)).await?,
            }
        }
    }

    /// Re-requests the rest of the blob from `received` on, unless the resumes
    /// or the time without progress ran out.
    async fn resume(&mut self, cause: Broken) -> Result<(), RegistryError> {
        let delay = self.client.retry_policy().base_delay;
        if self.resumes_left == 0 || self.budget.cannot_wait(delay) {
            return Err(match cause {
                Broken::Transport(source) => {
                    self.budget.transport(self.response.url().as_str(), source)
                }
                Broken::Ended => self.size_error(self.received),
                Broken::Silent(stall) => self.budget.timed_out(stall),
            });
        }
        self.resumes_left -= 1;
        tracing::debug!(digest = %self.request.digest, offset = self.received, "resuming blob");
        tokio::time::sleep(delay).await;
        let response = self
            .client
            .blob_response(
                &self.reference,
                &self.request.digest,
                self.received,
                &self.budget,
            )
            .await?;
        self.skip = match response.status() {
            StatusCode::PARTIAL_CONTENT => {
                let start = content_range_start(&response);
                if start != Some(self.received) {
                    return Err(RegistryError::Status {
                        url: response.url().to_string(),
                        status: 206,
                        envelope: None,
                    });
                }
                0
            }
            _ => self.received,
        };
        self.response = response;
        Ok(())
    }

    fn verify(&mut self) -> Result<(), RegistryError> {
        let actual = self
            .digester
            .take()
            .map(Digester::finish)
            .unwrap_or_default();
        if actual != self.request.digest {
            return Err(RegistryError::DigestMismatch {
                registry: self.reference.registry().to_string(),
                what: format!(
                    "blob {} of {}",
                    self.request.digest,
                    self.reference.repository()
                ),
                expected: self.request.digest.clone(),
                actual,
            });
        }
        Ok(())
    }

    fn size_error(&self, actual: u64) -> RegistryError {
        RegistryError::SizeMismatch {
            registry: self.reference.registry().to_string(),
            what: format!(
                "blob {} of {}",
                self.request.digest,
                self.reference.repository()
            ),
            expected: self.request.size,
            actual,
        }
    }
}

/// The first byte position of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(resp: &Response) -> Option<u64> {
    let value = resp
        .headers()
        .get(reqwest::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let range = value.trim().strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}
