//! Where a fetch goes: a reference's own registry, or, for Docker Hub references
//! when mirrors are configured, each mirror in turn and then Docker Hub.
//!
//! As with dockerd, a mirror that does not serve something (down, refusing,
//! silent, 404, an answer that does not verify) is passed over for the next
//! source, with a debug log naming it. What the source that answered a manifest
//! names (the platform manifests of an index; the config and layers of an image)
//! is then asked of that same source first — "pinned" here — so one pull reads
//! from one mirror. Content is verified against its digest whichever source
//! serves it, so a mirror can withhold an image but not change it.

use std::collections::HashMap;
use std::future::Future;

use futures_util::TryStreamExt as _;

use crate::blob::{BlobRequest, BlobStream};
use crate::client::{ManifestHead, RegistryClient};
use crate::error::RegistryError;
use crate::manifest::{Manifest, ManifestContent};
use crate::reference::Reference;

/// One place a Docker Hub reference can be fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `mirrors()[i]`.
    Mirror(usize),
    /// Docker Hub itself.
    Upstream,
}

/// Pins kept before the map is emptied: a long-lived client pulls many images,
/// and a pin only saves the time of asking mirrors that already said no.
const MAX_PINS: usize = 100_000;

/// `(repository, digest)` → the source whose manifest named that digest.
#[derive(Debug, Default)]
pub(crate) struct Pins(HashMap<(String, String), Source>);

impl RegistryClient {
    /// Fetches the manifest or index `reference` names, verifying its digest: against
    /// the reference's digest when it has one, else against `Docker-Content-Digest`.
    ///
    /// A Docker Hub reference goes to each [mirror](Self::mirrors) in turn, then to
    /// Docker Hub; see [`RegistryClientBuilder::registry_mirror`](crate::RegistryClientBuilder::registry_mirror).
    pub async fn fetch_manifest(&self, reference: &Reference) -> Result<Manifest, RegistryError> {
        let what = format!("manifest {reference}");
        let pinned = reference.digest().and_then(|d| self.pinned(reference, d));
        let (manifest, source) = self
            .try_sources(reference, pinned, what, |r| async move {
                self.fetch_manifest_direct(&r).await
            })
            .await?;
        if let Some(source) = source {
            self.pin(reference, &manifest, source);
        }
        Ok(manifest)
    }

    /// Asks for a manifest's digest, media type and size without downloading it
    /// (`HEAD`), e.g. to see whether a tag moved. Goes where
    /// [`fetch_manifest`](Self::fetch_manifest) goes.
    pub async fn head_manifest(
        &self,
        reference: &Reference,
    ) -> Result<ManifestHead, RegistryError> {
        let what = format!("manifest {reference}");
        let pinned = reference.digest().and_then(|d| self.pinned(reference, d));
        let (head, _) = self
            .try_sources(reference, pinned, what, |r| async move {
                self.head_manifest_direct(&r).await
            })
            .await?;
        Ok(head)
    }

    /// Streams a blob from `reference`'s repository, verifying size and digest as it
    /// goes, and resuming with `Range` requests (keeping one running hash) when the
    /// connection breaks mid-body.
    ///
    /// For a Docker Hub reference, the blob is asked first of the source whose
    /// manifest named it, then of the sources after it. Once bytes flow, that
    /// source's errors (a digest mismatch included) end the stream: bytes already
    /// handed out cannot be taken back.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        request: &BlobRequest,
    ) -> Result<BlobStream, RegistryError> {
        let what = format!("blob {} of {reference}", request.digest);
        let pinned = self.pinned(reference, &request.digest);
        let (stream, source) = self
            .try_sources(reference, pinned, what, |r| async move {
                self.fetch_blob_direct(&r, request).await
            })
            .await?;
        match source {
            Some(Source::Mirror(i)) => {
                let mirror = self.mirrors()[i].url().to_string();
                Ok(Box::pin(
                    stream.map_err(move |e| mirror_error(mirror.clone(), e)),
                ))
            }
            _ => Ok(stream),
        }
    }

    /// Runs `fetch` against each source of `reference` in turn until one
    /// answers; returns what it gave and which source that was (`None` when
    /// mirrors do not apply).
    async fn try_sources<T, F, Fut>(
        &self,
        reference: &Reference,
        pinned: Option<Source>,
        what: String,
        fetch: F,
    ) -> Result<(T, Option<Source>), RegistryError>
    where
        F: Fn(Reference) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let mirrors = self.mirrors();
        if !reference.is_docker_hub() || mirrors.is_empty() {
            return fetch(reference.clone()).await.map(|t| (t, None));
        }
        let mut failures = Vec::new();
        for source in order(mirrors.len(), pinned) {
            let Source::Mirror(i) = source else {
                return match fetch(reference.clone()).await {
                    Ok(t) => Ok((t, Some(source))),
                    Err(e) if failures.is_empty() => Err(e),
                    Err(e) => Err(RegistryError::MirrorsFailed {
                        what,
                        mirrors: failures,
                        upstream: Box::new(e),
                    }),
                };
            };
            let mirror = &mirrors[i];
            match fetch(mirror.reference(reference)).await {
                Ok(t) => {
                    tracing::debug!(mirror = %mirror, %what, "served by registry mirror");
                    return Ok((t, Some(source)));
                }
                Err(e) if passes_over(&e) => {
                    tracing::debug!(
                        mirror = %mirror, %what, error = %e,
                        "registry mirror failed; trying the next source"
                    );
                    failures.push(mirror_error(mirror.url().to_string(), e));
                }
                Err(e) => return Err(mirror_error(mirror.url().to_string(), e)),
            }
        }
        unreachable!("the order of sources always ends with Docker Hub")
    }

    fn pinned(&self, reference: &Reference, digest: &str) -> Option<Source> {
        if !reference.is_docker_hub() || self.mirrors().is_empty() {
            return None;
        }
        let key = (reference.repository().to_string(), digest.to_string());
        self.pins().lock().expect("pins lock").0.get(&key).copied()
    }

    /// Remembers that `source` served `manifest` and what it names.
    fn pin(&self, reference: &Reference, manifest: &Manifest, source: Source) {
        let mut named = vec![manifest.digest.clone()];
        match &manifest.content {
            ManifestContent::Index(index) => {
                named.extend(index.manifests().iter().map(|d| d.digest().to_string()));
            }
            ManifestContent::Image(image) => {
                named.push(image.config().digest().to_string());
                named.extend(image.layers().iter().map(|d| d.digest().to_string()));
            }
        }
        let mut pins = self.pins().lock().expect("pins lock");
        if pins.0.len() + named.len() > MAX_PINS {
            pins.0.clear();
        }
        for digest in named {
            pins.0
                .insert((reference.repository().to_string(), digest), source);
        }
    }
}

/// The sources in the order to try them: every mirror, then Docker Hub; from
/// the pinned one on when there is one.
fn order(mirrors: usize, pinned: Option<Source>) -> Vec<Source> {
    let all = (0..mirrors).map(Source::Mirror).chain([Source::Upstream]);
    match pinned {
        Some(pin) => all.skip_while(|s| *s != pin).collect(),
        None => all.collect(),
    }
}

/// Whether a mirror's failure sends the fetch on to the next source. Everything
/// the mirror did or failed to do does, as with dockerd; local problems (a
/// broken credential helper, a malformed reference) are the same everywhere.
fn passes_over(e: &RegistryError) -> bool {
    !matches!(
        e,
        RegistryError::Reference(_)
            | RegistryError::Platform(_)
            | RegistryError::Credentials(_)
            | RegistryError::UnsupportedDigest(_)
            | RegistryError::InvalidMirror(_)
    )
}

fn mirror_error(mirror: String, error: RegistryError) -> RegistryError {
    RegistryError::Mirror {
        mirror,
        error: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_in_order_then_docker_hub_from_the_pin_on() {
        use Source::*;
        assert_eq!(order(2, None), [Mirror(0), Mirror(1), Upstream]);
        assert_eq!(order(2, Some(Mirror(1))), [Mirror(1), Upstream]);
        assert_eq!(order(2, Some(Upstream)), [Upstream]);
        assert_eq!(order(0, None), [Upstream]);
    }
}
