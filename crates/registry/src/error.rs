//! The errors a registry operation can end with.
//!
//! Each names the registry, the repository or URL, and what the user can do, and
//! carries the registry's own error envelope when it sent one. Text that came from
//! the registry (its envelope, header values) is escaped where a message is built
//! from it: a registry does not get to write control sequences to a terminal.

use std::fmt;
use std::time::Duration;

use basic_escape::escape;
use serde::Deserialize;

use crate::challenge::ChallengeError;
use crate::credentials::CredentialsError;
use crate::digest::UnsupportedDigest;
use crate::manifest::ManifestError;
use crate::mirror::MirrorError;
use crate::platform::PlatformError;
use crate::reference::ReferenceError;
use crate::timeout::{Stall, seconds};

/// The error body the distribution spec defines: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorEnvelope {
    /// The registry's errors, in its order.
    #[serde(default)]
    pub errors: Vec<ErrorDetail>,
}

/// One entry of an [`ErrorEnvelope`].
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorDetail {
    /// A code such as `MANIFEST_UNKNOWN` or `DENIED`.
    #[serde(default)]
    pub code: String,
    /// Human-readable text from the registry.
    #[serde(default)]
    pub message: String,
}

impl ErrorEnvelope {
    /// Parses a response body; anything that is not an envelope gives `None`.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<ErrorEnvelope>(body)
            .ok()
            .filter(|e| !e.errors.is_empty())
    }

    /// True when any entry carries `code`.
    pub fn has_code(&self, code: &str) -> bool {
        self.errors.iter().any(|e| e.code == code)
    }
}

impl fmt::Display for ErrorEnvelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", escape(&e.code), escape(&e.message))?;
        }
        Ok(())
    }
}

/// Formats an optional envelope as `" (registry said: …)"`.
struct Said<'a>(&'a Option<ErrorEnvelope>);

impl fmt::Display for Said<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(env) => write!(f, " (registry said: {env})"),
            None => Ok(()),
        }
    }
}

/// What was being fetched when the registry answered "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The repository itself does not exist (or is hidden from these credentials).
    Repository,
    /// The repository exists; the tag or digest does not.
    Manifest,
    /// A blob named by a manifest is absent.
    Blob,
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A reference string could not be parsed.
    #[error(transparent)]
    Reference(#[from] ReferenceError),

    /// No platform in an index matched, or a platform string was malformed.
    #[error(transparent)]
    Platform(#[from] PlatformError),

    /// Credentials could not be read or stored.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),

    /// A `WWW-Authenticate` header could not be understood.
    #[error("registry {registry}: {source}")]
    Challenge {
        /// Registry host.
        registry: String,
        /// The parse error.
        #[source]
        source: ChallengeError,
    },

    /// The request could not be sent or its body not read (after retries). The
    /// source does not repeat the URL.
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL requested.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },

    /// The registry wants credentials that were not given, or rejected those given.
    #[error(
        "{registry}: {what} requires authentication{said}; \
         {hint}",
        said = Said(envelope),
        hint = if *had_credentials { format!("the credentials were rejected: run `basic-docker login {registry}` again") }
               else { format!("run `basic-docker login {registry}` first") }
    )]
    Unauthorized {
        /// Registry host.
        registry: String,
        /// What was requested, e.g. "pulling fixtures/busybox".
        what: String,
        /// Whether credentials were sent.
        had_credentials: bool,
        /// The registry's error body.
        envelope: Option<ErrorEnvelope>,
    },

    /// The registry understood the credentials and refused access (HTTP 403).
    #[error("{registry}: access to {repository} denied{said}; check that this account may pull it", said = Said(envelope))]
    Denied {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// The registry's error body.
        envelope: Option<ErrorEnvelope>,
    },

    /// Something named does not exist.
    #[error("{}", not_found_message(*missing, registry, repository, reference, envelope))]
    NotFound {
        /// What was missing.
        missing: Missing,
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// Tag or digest.
        reference: String,
        /// The registry's error body.
        envelope: Option<ErrorEnvelope>,
    },

    /// The registry is rate-limiting this client (HTTP 429), still after retrying.
    #[error(
        "{registry}: too many requests (rate limited){after}; wait and try again{said}, \
         or log in: registries allow authenticated users more pulls",
        after = retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default(),
        said = Said(envelope)
    )]
    TooManyRequests {
        /// Registry host.
        registry: String,
        /// The registry's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
        /// The registry's error body.
        envelope: Option<ErrorEnvelope>,
    },

    /// An unexpected status code.
    #[error("{url}: unexpected HTTP status {status}{said}", said = Said(envelope))]
    Status {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// The registry's error body.
        envelope: Option<ErrorEnvelope>,
    },

    /// The token server refused or failed to issue a token.
    #[error(
        "token request to {} for {registry} failed: {}",
        escape(realm),
        escape(reason)
    )]
    Token {
        /// Registry host.
        registry: String,
        /// The token endpoint.
        realm: String,
        /// What went wrong.
        reason: String,
    },

    /// `login` was refused: the username or password is wrong.
    #[error("login to {registry} failed: wrong username or password{said}", said = Said(envelope))]
    LoginFailed {
        /// Registry host.
        registry: String,
        /// The registry's error body.
        envelope: Option<ErrorEnvelope>,
    },

    /// A manifest could not be understood.
    #[error("manifest {reference} from {registry}: {source}")]
    Manifest {
        /// Registry host.
        registry: String,
        /// Repository and tag or digest.
        reference: String,
        /// What was wrong with it.
        #[source]
        source: ManifestError,
    },

    /// Content did not hash to the digest that names it.
    #[error(
        "{what} from {registry}: digest mismatch, expected {}, got {actual}",
        escape(expected)
    )]
    DigestMismatch {
        /// Registry host.
        registry: String,
        /// e.g. "blob sha256:… of fixtures/busybox".
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of the bytes received.
        actual: String,
    },

    /// Content was not the size its descriptor announced.
    #[error("{what} from {registry}: size mismatch, expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// Registry host.
        registry: String,
        /// What was being fetched.
        what: String,
        /// Size from the descriptor.
        expected: u64,
        /// Bytes received (possibly stopped early once the limit was passed).
        actual: u64,
    },

    /// A digest uses an algorithm this crate cannot verify.
    #[error(transparent)]
    UnsupportedDigest(#[from] UnsupportedDigest),

    /// The registry went silent: nothing arrived within the timeouts, over every
    /// retry (see [`Timeouts`](crate::Timeouts)).
    #[error(
        "{registry}: timed out after {} waiting for {what}: {stall}; \
         the registry may be down or overloaded",
        seconds(*after)
    )]
    TimedOut {
        /// Registry host.
        registry: String,
        /// What was being fetched, e.g. "manifest fixtures/busybox:latest" or
        /// "blob sha256:… of fixtures/busybox".
        what: String,
        /// How long the fetch went without progress.
        after: Duration,
        /// What it was waiting for when time ran out.
        stall: Stall,
    },

    /// A registry mirror URL was refused.
    #[error(transparent)]
    InvalidMirror(#[from] MirrorError),

    /// A registry mirror failed a Docker Hub reference's manifest or blob.
    #[error("mirror {mirror}: {}", chain(error.as_ref()))]
    Mirror {
        /// The mirror's URL, e.g. `http://127.0.0.1:5000/`.
        mirror: String,
        /// What went wrong there. Its registry is the mirror's `host[:port]`.
        error: Box<RegistryError>,
    },

    /// Every registry mirror failed a Docker Hub reference, and so did Docker Hub.
    #[error(
        "{what}: no registry mirror could serve it ({}), and then docker.io: {}",
        mirrors.iter().map(|m| chain(m)).collect::<Vec<_>>().join("; "),
        chain(upstream.as_ref())
    )]
    MirrorsFailed {
        /// What was fetched, e.g. "manifest docker.io/library/busybox:latest".
        what: String,
        /// Each mirror's failure ([`RegistryError::Mirror`]), in the order tried.
        mirrors: Vec<RegistryError>,
        /// Docker Hub's own failure, the last source tried.
        upstream: Box<RegistryError>,
    },

    /// The registry refused part of a push: a forbidden repository (403), a server
    /// error (5xx, after retries) or an answer the protocol does not allow.
    #[error(
        "{registry}: pushing {what} to {repository} failed: HTTP {status}{said}{hint}",
        said = Said(envelope),
        hint = if *status == 403 { "; check that this account may push to it" } else { "" }
    )]
    PushRefused {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// What was being pushed, e.g. "blob sha256:…" or "manifest latest".
        what: String,
        /// The status code.
        status: u16,
        /// The registry's error body.
        envelope: Option<ErrorEnvelope>,
    },

    /// The registry answered an upload without something the protocol requires
    /// (a `Location`, a readable `Range`).
    #[error("{registry}: pushing {what} to {repository}: {}", escape(reason))]
    PushProtocol {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// What was being pushed.
        what: String,
        /// What was missing or wrong.
        reason: String,
    },

    /// A redirect would have downgraded HTTPS to plain HTTP.
    #[error("refusing redirect from {from} to {to}: it downgrades HTTPS to plain HTTP")]
    InsecureRedirect {
        /// Where the redirect came from.
        from: String,
        /// Where it pointed.
        to: String,
    },
}

/// An error and its sources as one line, each said once: these variants hold
/// other errors inline (several, for [`RegistryError::MirrorsFailed`]) rather
/// than as a `source`, so the causes a transport error keeps in its chain
/// ("connection refused", "dns error") must be spelled out here.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

fn not_found_message(
    missing: Missing,
    registry: &str,
    repository: &str,
    reference: &str,
    envelope: &Option<ErrorEnvelope>,
) -> String {
    let said = Said(envelope);
    match missing {
        Missing::Repository => format!(
            "{registry}: repository {repository} does not exist or may require \
             `basic-docker login {registry}`{said}"
        ),
        Missing::Manifest => {
            format!("{registry}: manifest for {repository}:{reference} not found{said}")
        }
        Missing::Blob => {
            format!("{registry}: blob {reference} of {repository} not found{said}")
        }
    }
}

impl RegistryError {
    /// True for errors worth retrying the whole operation for later (transport
    /// failures, rate limits, server errors), as opposed to answers that will not change.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Http { .. }
            | RegistryError::TooManyRequests { .. }
            | RegistryError::TimedOut { .. } => true,
            RegistryError::Status { status, .. } | RegistryError::PushRefused { status, .. } => {
                *status >= 500
            }
            RegistryError::Mirror { error, .. } => error.is_transient(),
            RegistryError::MirrorsFailed { upstream, .. } => upstream.is_transient(),
            _ => false,
        }
    }
}
