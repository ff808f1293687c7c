//! The HTTP implementation of the OCI distribution protocol.
//!
//! Written on `reqwest` rather than `oci-client` because a pull needs control that
//! crate does not give: tokens cached per scope, credentials per registry from
//! docker's store, retries with backoff, resuming a broken blob with one running
//! hash, and errors that carry the registry's own error envelope.
//!
//! Every wait is bounded (see [`Timeouts`]): each request and each read of a
//! body runs under a [`Budget`] that names what is being fetched, so a silent
//! registry ends in an error saying what it did not send.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, Response, StatusCode};

use crate::auth::{self, AuthCache, Scheme};
use crate::challenge::{Challenge, token_scope};
use crate::credentials::{CredentialStore, Credentials};
use crate::digest::Digester;
use crate::error::{ErrorEnvelope, Missing, RegistryError};
use crate::manifest::{MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, Manifest};
use crate::mirror::Mirror;
use crate::reference::Reference;
use crate::sources::Pins;
use crate::timeout::{Budget, Stall, Timeouts};

/// How hard to retry transient failures (connection errors, 429, 5xx).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Delay before the first retry; doubled for each following one.
    pub base_delay: Duration,
    /// Upper bound for any one delay, including a server's `Retry-After`.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Builds a [`RegistryClient`].
#[derive(Debug, Default)]
pub struct RegistryClientBuilder {
    store: Option<CredentialStore>,
    explicit: HashMap<String, Credentials>,
    insecure: Vec<String>,
    retry: RetryPolicy,
    timeouts: Timeouts,
    user_agent: Option<String>,
    mirrors: Vec<String>,
}

impl RegistryClientBuilder {
    /// Looks credentials up in docker's store (config file and helpers).
    pub fn credential_store(mut self, store: CredentialStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses these credentials for `registry` (a host as in references, e.g.
    /// `docker.io`, `127.0.0.1:5000`), before any store.
    pub fn credentials(mut self, registry: &str, credentials: Credentials) -> Self {
        self.explicit.insert(registry.to_string(), credentials);
        self
    }

    /// Marks a registry as insecure: HTTPS without certificate checks, falling back
    /// to plain HTTP, as docker's `insecure-registries`. Loopback is always insecure.
    pub fn insecure_registry(mut self, registry: &str) -> Self {
        self.insecure.push(registry.to_string());
        self
    }

    /// Adds a registry mirror for Docker Hub (dockerd's `registry-mirrors`), e.g.
    /// `https://mirror.gcr.io` or `http://127.0.0.1:5000`; repeatable, tried in
    /// the order added, before Docker Hub itself. The URL is checked by
    /// [`build`](Self::build), which refuses what dockerd refuses ([`Mirror::parse`]).
    pub fn registry_mirror(mut self, url: &str) -> Self {
        self.mirrors.push(url.to_string());
        self
    }

    /// Replaces the retry policy.
    pub fn retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces the timeouts: how long to wait for a connection, for each
    /// answer or chunk of a body, and for one fetch in all.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the `User-Agent` header.
    pub fn user_agent(mut self, agent: &str) -> Self {
        self.user_agent = Some(agent.to_string());
        self
    }

    /// Builds the client. Fails on a mirror URL dockerd would refuse, naming it.
    pub fn build(self) -> Result<RegistryClient, RegistryError> {
        let mut mirrors: Vec<Mirror> = Vec::new();
        for url in &self.mirrors {
            let mirror = Mirror::parse(url)?;
            // dockerd keeps one of each; a second try of a dead mirror only costs time.
            if !mirrors.contains(&mirror) {
                mirrors.push(mirror);
            }
        }
        let schemes = mirrors
            .iter()
            .map(|m| (m.host().to_string(), m.scheme()))
            .collect();
        let agent = self
            .user_agent
            .unwrap_or_else(|| format!("basic-registry/{}", env!("CARGO_PKG_VERSION")));
        let http = http_client(&agent, &self.timeouts, false)?;
        let http_insecure = http_client(&agent, &self.timeouts, true)?;
        Ok(RegistryClient {
            inner: Arc::new(Inner {
                http,
                http_insecure,
                insecure: self.insecure,
                store: self.store,
                explicit: self.explicit,
                credentials: Mutex::new(HashMap::new()),
                protocols: Mutex::new(HashMap::new()),
                auth: tokio::sync::Mutex::new(AuthCache::default()),
                retry: self.retry,
                timeouts: self.timeouts,
                mirrors,
                schemes,
                pins: Mutex::new(Pins::default()),
            }),
        })
    }
}

/// The connect timeout is reqwest's; the idle and total ones are the client's
/// own ([`Budget`]), which know what was being fetched when they expire.
fn http_client(
    agent: &str,
    timeouts: &Timeouts,
    accept_invalid_certs: bool,
) -> Result<reqwest::Client, RegistryError> {
    reqwest::Client::builder()
        .user_agent(agent)
        .redirect(redirect_policy())
        .connect_timeout(timeouts.connect)
        .tls_danger_accept_invalid_certs(accept_invalid_certs)
        .build()
        .map_err(|source| RegistryError::Http {
            url: "<client setup>".into(),
            source,
        })
}

/// Follows redirects (blob stores such as S3 answer with one) but never from HTTPS
/// to HTTP. reqwest itself strips `Authorization` when a redirect changes host,
/// port or scheme, so registry credentials never reach the blob store.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http"
            && attempt
                .previous()
                .last()
                .is_some_and(|p| p.scheme() == "https");
        if downgrade {
            let to = attempt.url().to_string();
            attempt.error(format!(
                "refusing redirect to {to}: it downgrades HTTPS to plain HTTP"
            ))
        } else if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    })
}

/// A client for any number of registries. Cheap to clone; clones share caches.
///
/// Its requests run on a Tokio runtime with the time driver enabled
/// (`enable_all`): every wait is bounded by [`Timeouts`].
#[derive(Debug, Clone)]
pub struct RegistryClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    http_insecure: reqwest::Client,
    insecure: Vec<String>,
    store: Option<CredentialStore>,
    explicit: HashMap<String, Credentials>,
    credentials: Mutex<HashMap<String, Credentials>>,
    protocols: Mutex<HashMap<String, &'static str>>,
    auth: tokio::sync::Mutex<AuthCache>,
    retry: RetryPolicy,
    timeouts: Timeouts,
    /// Docker Hub's mirrors, in the order to try them.
    mirrors: Vec<Mirror>,
    /// The scheme a mirror's URL fixes for its `host[:port]`: no TLS probing there.
    schemes: HashMap<String, &'static str>,
    /// Which source served what (see [`crate::sources`]).
    pins: Mutex<Pins>,
}

/// Where a request goes: a registry and one repository on it, and the clock of
/// the fetch it serves.
pub(crate) struct Target<'a> {
    pub(crate) reference: &'a Reference,
    /// The token scope asked for (several, space-separated, for a mount).
    pub(crate) scope: String,
    pub(crate) budget: Budget,
    /// What the request does to the repository, as errors say it ("pulling").
    pub(crate) action: &'static str,
}

impl<'a> Target<'a> {
    fn new(reference: &'a Reference, what: String, timeouts: Timeouts) -> Self {
        Target {
            reference,
            scope: token_scope(reference.repository(), &["pull"]),
            budget: Budget::start(reference.registry(), what, timeouts),
            action: "pulling",
        }
    }

    pub(crate) fn registry(&self) -> &str {
        self.reference.registry()
    }
}

impl RegistryClient {
    /// A builder with docker's defaults and no credentials.
    pub fn builder() -> RegistryClientBuilder {
        RegistryClientBuilder::default()
    }

    /// A client reading credentials from docker's config (`$DOCKER_CONFIG` or `~/.docker`).
    pub fn from_env() -> Result<Self, RegistryError> {
        Self::builder()
            .credential_store(CredentialStore::from_env())
            .build()
    }

    /// [`fetch_manifest`](Self::fetch_manifest) from `reference`'s own registry.
    pub(crate) async fn fetch_manifest_direct(
        &self,
        reference: &Reference,
    ) -> Result<Manifest, RegistryError> {
        let mut target = self.manifest_target(reference);
        let path = format!("manifests/{}", reference.manifest_reference());
        let resp = self
            .send(&target, Method::GET, &path, manifest_headers())
            .await?;
        let resp = self.check(&target, resp, Missing::Manifest).await?;
        let content_type = header_str(&resp, CONTENT_TYPE);
        let served_digest = header_str(&resp, "docker-content-digest");
        let url = resp.url().to_string();
        let raw = read_limited(resp, MAX_MANIFEST_SIZE, &url, &mut target.budget).await?;
        let manifest_err = |source| RegistryError::Manifest {
            registry: reference.registry().to_string(),
            reference: format!(
                "{}:{}",
                reference.repository(),
                reference.manifest_reference()
            ),
            source,
        };
        let manifest = Manifest::from_bytes(raw, content_type.as_deref()).map_err(manifest_err)?;
        let expected = reference.digest().map(str::to_string).or(served_digest);
        if let Some(expected) = expected {
            let actual = Digester::for_digest(&expected)?.finish_with(&manifest.raw);
            if actual != expected {
                return Err(RegistryError::DigestMismatch {
                    registry: reference.registry().to_string(),
                    what: format!("manifest {}", reference.familiar()),
                    expected,
                    actual,
                });
            }
        }
        Ok(manifest)
    }

    /// [`head_manifest`](Self::head_manifest) from `reference`'s own registry.
    pub(crate) async fn head_manifest_direct(
        &self,
        reference: &Reference,
    ) -> Result<ManifestHead, RegistryError> {
        let target = self.manifest_target(reference);
        let path = format!("manifests/{}", reference.manifest_reference());
        let resp = self
            .send(&target, Method::HEAD, &path, manifest_headers())
            .await?;
        let resp = self.check(&target, resp, Missing::Manifest).await?;
        Ok(ManifestHead {
            digest: header_str(&resp, "docker-content-digest")
                .or_else(|| reference.digest().map(str::to_string)),
            media_type: header_str(&resp, CONTENT_TYPE),
            size: header_str(&resp, CONTENT_LENGTH).and_then(|s| s.parse().ok()),
        })
    }

    /// Checks that the registry speaks the distribution API and that the credentials
    /// for it (if any) are accepted. Used by `login`.
    pub async fn login(
        &self,
        registry: &str,
        credentials: &Credentials,
    ) -> Result<(), RegistryError> {
        let reference = Reference::parse(&format!("{registry}/login-probe"))?;
        let budget = Budget::start(
            registry,
            "the answer to logging in (GET /v2/)".to_string(),
            self.inner.timeouts,
        );
        let base = self.base_url(&reference, &budget).await?;
        let url = format!("{base}/v2/");
        let http = self.http_for(&reference);
        let resp = self.with_retries(&budget, &url, || http.get(&url)).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Err(status_error(&url, resp, &budget).await);
        }
        let failed = |envelope| RegistryError::LoginFailed {
            registry: registry.to_string(),
            envelope,
        };
        match self.challenge(registry, &resp)? {
            Scheme::Bearer { realm, service } => {
                let token = self
                    .fetch_token(&budget, &realm, service.as_deref(), None, credentials)
                    .await
                    .map_err(|e| match e {
                        RegistryError::Unauthorized { envelope, .. } => failed(envelope),
                        other => other,
                    })?;
                let resp = self
                    .with_retries(&budget, &url, || {
                        http.get(&url).header(AUTHORIZATION, token.header())
                    })
                    .await?;
                check_login(resp, &url, &budget, failed).await
            }
            Scheme::Basic => {
                let header = auth::basic_header_for(credentials).ok_or_else(|| failed(None))?;
                let resp = self
                    .with_retries(&budget, &url, || {
                        http.get(&url).header(AUTHORIZATION, &header)
                    })
                    .await?;
                check_login(resp, &url, &budget, failed).await
            }
        }
    }

    /// Starts downloading the blob `digest` of `reference`'s repository and returns the
    /// raw HTTP response, after auth, retries and status checks, within `budget`.
    /// `offset` asks for a range from that byte on (`Range: bytes=N-`).
    pub(crate) async fn blob_response(
        &self,
        reference: &Reference,
        digest: &str,
        offset: u64,
        budget: &Budget,
    ) -> Result<Response, RegistryError> {
        let target = Target {
            reference,
            scope: token_scope(reference.repository(), &["pull"]),
            budget: budget.clone(),
            action: "pulling",
        };
        let mut headers = HeaderMap::new();
        if offset > 0 {
            let range = HeaderValue::from_str(&format!("bytes={offset}-")).expect("ascii range");
            headers.insert(reqwest::header::RANGE, range);
        }
        let path = format!("blobs/{digest}");
        let resp = self.send(&target, Method::GET, &path, headers).await?;
        self.check_blob(&target, resp, digest).await
    }

    /// Docker Hub's mirrors, in the order they are tried.
    pub fn mirrors(&self) -> &[Mirror] {
        &self.inner.mirrors
    }

    pub(crate) fn pins(&self) -> &Mutex<Pins> {
        &self.inner.pins
    }

    pub(crate) fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        self.inner.retry
    }

    /// The clock for fetching `digest` of `reference`'s repository.
    pub(crate) fn blob_budget(&self, reference: &Reference, digest: &str) -> Budget {
        let what = format!("blob {digest} of {}", reference.repository());
        Budget::start(reference.registry(), what, self.inner.timeouts)
    }

    fn manifest_target<'a>(&self, reference: &'a Reference) -> Target<'a> {
        let at = reference.manifest_reference();
        let sep = if reference.digest().is_some() {
            '@'
        } else {
            ':'
        };
        let what = format!("manifest {}{sep}{at}", reference.repository());
        Target::new(reference, what, self.inner.timeouts)
    }

    /// Sends a request to `/v2/<repository>/<path>`, answering auth challenges and
    /// retrying transient failures. Returns whatever final response came back.
    async fn send(
        &self,
        target: &Target<'_>,
        method: Method,
        path: &str,
        headers: HeaderMap,
    ) -> Result<Response, RegistryError> {
        let url = self.repository_url(target, path).await?;
        self.send_to(target, method, &url, headers, || None).await
    }

    /// `<base>/v2/<repository>/<path>`.
    pub(crate) async fn repository_url(
        &self,
        target: &Target<'_>,
        path: &str,
    ) -> Result<String, RegistryError> {
        let base = self.base_url(target.reference, &target.budget).await?;
        Ok(format!(
            "{base}/v2/{}/{path}",
            target.reference.repository()
        ))
    }

    /// [`send`](Self::send) to any URL of the registry (an upload's `Location`),
    /// with the body `body` makes (made again for each attempt).
    pub(crate) async fn send_to(
        &self,
        target: &Target<'_>,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: impl Fn() -> Option<Bytes>,
    ) -> Result<Response, RegistryError> {
        let http = self.http_for(target.reference);
        let mut challenged = false;
        loop {
            let auth = self.auth_header(target).await?;
            let resp = self
                .with_retries(&target.budget, url, || {
                    let mut req = http.request(method.clone(), url).headers(headers.clone());
                    if let Some(body) = body() {
                        req = req.body(body);
                    }
                    match &auth {
                        Some(value) => req.header(AUTHORIZATION, value),
                        None => req,
                    }
                })
                .await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if challenged {
                return Err(self.unauthorized(target, resp).await);
            }
            challenged = true;
            self.learn_challenge(target, &resp).await?;
        }
    }

    /// After a 401: remembers the scheme the registry asks for and forgets the
    /// token it refused, so the next [`auth_header`](Self::auth_header) answers it.
    pub(crate) async fn learn_challenge(
        &self,
        target: &Target<'_>,
        resp: &Response,
    ) -> Result<(), RegistryError> {
        let scheme = self.challenge(target.registry(), resp)?;
        let mut cache = self.inner.auth.lock().await;
        cache.drop_token(target.registry(), &target.scope);
        cache.set_scheme(target.registry(), scheme);
        Ok(())
    }

    /// Sends the request `build` makes, retrying connection errors, silence, 429 and
    /// 5xx with exponential backoff (or the server's `Retry-After`, bounded), within
    /// `budget`: no retry starts that could not end before its deadline.
    async fn with_retries(
        &self,
        budget: &Budget,
        url: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let policy = self.inner.retry;
        let mut attempt = 0;
        loop {
            let last = attempt >= policy.max_retries;
            let delay = match budget.wait(build().send(), Stall::Answer).await {
                Err(stall) if last || budget.cannot_wait(policy.delay(attempt)) => {
                    return Err(budget.timed_out(stall));
                }
                Err(_) => {
                    tracing::debug!(url, attempt, "retrying after no answer");
                    policy.delay(attempt)
                }
                Ok(Err(source))
                    if last
                        || !is_transient(&source)
                        || budget.cannot_wait(policy.delay(attempt)) =>
                {
                    return Err(budget.transport(url, source));
                }
                Ok(Err(source)) => {
                    tracing::debug!(url, error = %source, attempt, "retrying after transport error");
                    policy.delay(attempt)
                }
                Ok(Ok(resp)) if !last && is_retryable_status(resp.status()) => {
                    let delay = retry_after(&resp)
                        .unwrap_or_else(|| policy.delay(attempt))
                        .min(policy.max_delay);
                    if budget.cannot_wait(delay) {
                        return Ok(resp);
                    }
                    tracing::debug!(url, status = %resp.status(), attempt, "retrying");
                    delay
                }
                Ok(Ok(resp)) => return Ok(resp),
            };
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// The `Authorization` value to send up front, once the registry's scheme is known.
    pub(crate) async fn auth_header(
        &self,
        target: &Target<'_>,
    ) -> Result<Option<String>, RegistryError> {
        let registry = target.registry();
        let mut cache = self.inner.auth.lock().await;
        let Some(scheme) = cache.scheme(registry).cloned() else {
            return Ok(None);
        };
        match scheme {
            Scheme::Basic => Ok(auth::basic_header_for(&self.credentials_for(registry)?)),
            Scheme::Bearer { realm, service } => {
                if let Some(token) = cache.token(registry, &target.scope) {
                    return Ok(Some(token.header()));
                }
                // The lock is held while fetching so that concurrent layer downloads
                // wait for one token instead of each asking for their own.
                let credentials = self.credentials_for(registry)?;
                let token = self
                    .fetch_token(
                        &target.budget,
                        &realm,
                        service.as_deref(),
                        Some(&target.scope),
                        &credentials,
                    )
                    .await?;
                let header = token.header();
                cache.set_token(registry, &target.scope, token);
                Ok(Some(header))
            }
        }
    }

    /// Picks the scheme from a 401's `WWW-Authenticate`: Bearer if offered, else Basic.
    fn challenge(&self, registry: &str, resp: &Response) -> Result<Scheme, RegistryError> {
        let mut challenges = Vec::new();
        for value in resp.headers().get_all(WWW_AUTHENTICATE) {
            let text = value.to_str().unwrap_or_default();
            let parsed = Challenge::parse_all(text).map_err(|source| RegistryError::Challenge {
                registry: registry.to_string(),
                source,
            })?;
            challenges.extend(parsed);
        }
        let bearer = challenges.iter().find_map(|c| match c {
            Challenge::Bearer { realm, service, .. } => Some(Scheme::Bearer {
                realm: realm.clone(),
                service: service.clone(),
            }),
            _ => None,
        });
        let basic = challenges
            .iter()
            .any(|c| matches!(c, Challenge::Basic { .. }));
        Ok(bearer
            .or(basic.then_some(Scheme::Basic))
            .unwrap_or(Scheme::Basic))
    }

    /// Asks a token endpoint for a token, with the docker token protocol (`GET` with
    /// Basic credentials) or OAuth2's refresh-token grant for an identity token.
    async fn fetch_token(
        &self,
        budget: &Budget,
        realm: &str,
        service: Option<&str>,
        scope: Option<&str>,
        credentials: &Credentials,
    ) -> Result<auth::Token, RegistryError> {
        let registry = budget.registry();
        let token_err = |reason: String| RegistryError::Token {
            registry: registry.to_string(),
            realm: realm.to_string(),
            reason,
        };
        let realm_url =
            url::Url::parse(realm).map_err(|e| token_err(format!("invalid realm: {e}")))?;
        let http = if self.is_insecure_host(&host_port(&realm_url)) {
            &self.inner.http_insecure
        } else {
            &self.inner.http
        };
        let mut params: Vec<(&str, &str)> = Vec::new();
        params.extend(service.map(|s| ("service", s)));
        // A mount asks for two repositories: one `scope` parameter each, as the
        // docker CLI sends them (every token server reads that form).
        params.extend(
            scope
                .into_iter()
                .flat_map(str::split_whitespace)
                .map(|s| ("scope", s)),
        );
        let build = || -> reqwest::RequestBuilder {
            match credentials {
                Credentials::IdentityToken(refresh) => {
                    let body = url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(&params)
                        .extend_pairs([
                            ("grant_type", "refresh_token"),
                            ("refresh_token", refresh.as_str()),
                            ("client_id", "basic-docker"),
                        ])
                        .finish();
                    http.post(realm_url.clone())
                        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                        .body(body)
                }
                Credentials::Basic { username, password } => {
                    let mut url = realm_url.clone();
                    url.query_pairs_mut()
                        .extend_pairs(&params)
                        .append_pair("account", username);
                    http.get(url)
                        .header(AUTHORIZATION, auth::basic_header(username, password))
                }
                Credentials::Anonymous => {
                    let mut url = realm_url.clone();
                    url.query_pairs_mut().extend_pairs(&params);
                    http.get(url)
                }
            }
        };
        let resp = self.with_retries(budget, realm, build).await?;
        let status = resp.status();
        let received = Instant::now();
        let body = read_limited(resp, 1024 * 1024, realm, &mut budget.clone()).await?;
        match status {
            s if s.is_success() => auth::parse_token_response(&body, received).map_err(token_err),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(RegistryError::Unauthorized {
                registry: registry.to_string(),
                what: format!("getting a token for {}", scope.unwrap_or("login")),
                had_credentials: !matches!(credentials, Credentials::Anonymous),
                envelope: ErrorEnvelope::parse(&body),
            }),
            s => Err(token_err(format!(
                "HTTP {s}: {}",
                String::from_utf8_lossy(&body).trim()
            ))),
        }
    }

    /// Credentials for `registry`, from explicit settings or docker's store, looked up
    /// once per client (a credential helper is a process spawn).
    fn credentials_for(&self, registry: &str) -> Result<Credentials, RegistryError> {
        if let Some(c) = self.inner.explicit.get(registry) {
            return Ok(c.clone());
        }
        let mut cached = self.inner.credentials.lock().expect("credentials lock");
        if let Some(c) = cached.get(registry) {
            return Ok(c.clone());
        }
        let found = match &self.inner.store {
            Some(store) => store.get(registry)?,
            None => Credentials::Anonymous,
        };
        cached.insert(registry.to_string(), found.clone());
        Ok(found)
    }

    pub(crate) async fn unauthorized(&self, target: &Target<'_>, resp: Response) -> RegistryError {
        let body = error_body(resp, &target.budget).await;
        let had_credentials = !matches!(
            self.credentials_for(target.registry()),
            Ok(Credentials::Anonymous) | Err(_)
        );
        RegistryError::Unauthorized {
            registry: target.registry().to_string(),
            what: format!("{} {}", target.action, target.reference.repository()),
            had_credentials,
            envelope: ErrorEnvelope::parse(&body),
        }
    }

    /// Turns a non-success manifest response into the matching error.
    async fn check(
        &self,
        target: &Target<'_>,
        resp: Response,
        missing: Missing,
    ) -> Result<Response, RegistryError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let reference = target.reference.manifest_reference().to_string();
        Err(self.classify(target, resp, missing, reference).await)
    }

    async fn check_blob(
        &self,
        target: &Target<'_>,
        resp: Response,
        digest: &str,
    ) -> Result<Response, RegistryError> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self
            .classify(target, resp, Missing::Blob, digest.to_string())
            .await)
    }

    async fn classify(
        &self,
        target: &Target<'_>,
        resp: Response,
        missing: Missing,
        reference: String,
    ) -> RegistryError {
        let status = resp.status();
        let url = resp.url().to_string();
        let retry_after = retry_after(&resp);
        let body = error_body(resp, &target.budget).await;
        let envelope = ErrorEnvelope::parse(&body);
        let registry = target.registry().to_string();
        let repository = target.reference.repository().to_string();
        match status {
            StatusCode::NOT_FOUND => {
                let missing = match &envelope {
                    Some(e) if e.has_code("NAME_UNKNOWN") => Missing::Repository,
                    _ => missing,
                };
                RegistryError::NotFound {
                    missing,
                    registry,
                    repository,
                    reference,
                    envelope,
                }
            }
            StatusCode::FORBIDDEN => RegistryError::Denied {
                registry,
                repository,
                envelope,
            },
            StatusCode::TOO_MANY_REQUESTS => RegistryError::TooManyRequests {
                registry,
                retry_after,
                envelope,
            },
            s => RegistryError::Status {
                url,
                status: s.as_u16(),
                envelope,
            },
        }
    }

    /// `https://host` or, for insecure registries that do not speak TLS, `http://host`.
    async fn base_url(
        &self,
        reference: &Reference,
        budget: &Budget,
    ) -> Result<String, RegistryError> {
        let endpoint = reference.endpoint();
        if let Some(scheme) = self.inner.schemes.get(endpoint) {
            return Ok(format!("{scheme}://{endpoint}"));
        }
        if !self.is_insecure(reference) {
            return Ok(format!("https://{endpoint}"));
        }
        if let Some(proto) = self
            .inner
            .protocols
            .lock()
            .expect("protocols lock")
            .get(endpoint)
        {
            return Ok(format!("{proto}://{endpoint}"));
        }
        let proto = self.probe_tls(endpoint, budget).await?;
        tracing::debug!(endpoint, proto, "insecure registry protocol");
        self.inner
            .protocols
            .lock()
            .expect("protocols lock")
            .insert(endpoint.to_string(), proto);
        Ok(format!("{proto}://{endpoint}"))
    }

    /// docker's rule for insecure registries: try TLS (unverified) first, and
    /// speak plain HTTP only when the server does not answer TLS. A server that
    /// says nothing is asked again, within `budget`, as any request is.
    async fn probe_tls(
        &self,
        endpoint: &str,
        budget: &Budget,
    ) -> Result<&'static str, RegistryError> {
        let probe = format!("https://{endpoint}/v2/");
        let policy = self.inner.retry;
        let mut attempt = 0;
        loop {
            let sent = self.inner.http_insecure.get(&probe).send();
            match budget.wait(sent, Stall::Answer).await {
                Ok(Ok(_)) => return Ok("https"),
                Ok(Err(e)) if e.is_connect() && !e.is_timeout() => return Ok("http"),
                Ok(Err(source)) => return Err(budget.transport(&probe, source)),
                Err(stall)
                    if attempt >= policy.max_retries
                        || budget.cannot_wait(policy.delay(attempt)) =>
                {
                    return Err(budget.timed_out(stall));
                }
                Err(_) => tokio::time::sleep(policy.delay(attempt)).await,
            }
            attempt += 1;
        }
    }

    pub(crate) fn http_for(&self, reference: &Reference) -> &reqwest::Client {
        if self.is_insecure(reference) {
            &self.inner.http_insecure
        } else {
            &self.inner.http
        }
    }

    fn is_insecure(&self, reference: &Reference) -> bool {
        reference.is_insecure_by_default()
            || self
                .inner
                .insecure
                .iter()
                .any(|r| r == reference.registry() || r == reference.endpoint())
    }

    fn is_insecure_host(&self, host_port: &str) -> bool {
        Reference::parse(&format!("{host_port}/x")).is_ok_and(|r| self.is_insecure(&r))
    }
}

/// What a `HEAD` on a manifest tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// `Docker-Content-Digest`, when the registry sent it.
    pub digest: Option<String>,
    /// `Content-Type`.
    pub media_type: Option<String>,
    /// `Content-Length`.
    pub size: Option<u64>,
}

async fn check_login(
    resp: Response,
    url: &str,
    budget: &Budget,
    failed: impl Fn(Option<ErrorEnvelope>) -> RegistryError,
) -> Result<(), RegistryError> {
    match resp.status() {
        s if s.is_success() => Ok(()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            let body = error_body(resp, budget).await;
            Err(failed(ErrorEnvelope::parse(&body)))
        }
        _ => Err(status_error(url, resp, budget).await),
    }
}

async fn status_error(url: &str, resp: Response, budget: &Budget) -> RegistryError {
    let status = resp.status().as_u16();
    let body = error_body(resp, budget).await;
    RegistryError::Status {
        url: url.to_string(),
        status,
        envelope: ErrorEnvelope::parse(&body),
    }
}

fn manifest_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
    headers
}

pub(crate) fn header_str(
    resp: &Response,
    name: impl reqwest::header::AsHeaderName,
) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn is_transient(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// `Retry-After` in its seconds form (registries do not send HTTP dates).
fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The body of an error response, for its envelope: what arrives before the
/// fetch's deadline, up to 1 MiB; nothing when it does not come.
pub(crate) async fn error_body(resp: Response, budget: &Budget) -> Bytes {
    let mut reading = budget.clone();
    let read = read_limited(resp, 1024 * 1024, "", &mut reading);
    budget
        .within(read)
        .await
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// Reads a whole body, refusing more than `limit` bytes (checked before and while
/// reading), each chunk within `budget`'s idle timeout; every chunk is progress.
pub(crate) async fn read_limited(
    mut resp: Response,
    limit: u64,
    url: &str,
    budget: &mut Budget,
) -> Result<Bytes, RegistryError> {
    let too_big = |got: u64| RegistryError::SizeMismatch {
        registry: url::Url::parse(url)
            .map(|u| host_port(&u))
            .unwrap_or_else(|_| url.to_string()),
        what: format!("response from {url} (limit {limit} bytes)"),
        expected: limit,
        actual: got,
    };
    if let Some(len) = resp.content_length().filter(|len| *len > limit) {
        return Err(too_big(len));
    }
    let mut body = BytesMut::new();
    loop {
        let next = budget
            .wait(resp.chunk(), Stall::Data)
            .await
            .map_err(|stall| budget.timed_out(stall))?;
        let Some(chunk) = next.map_err(|source| budget.transport(url, source))? else {
            break;
        };
        budget.progressed();
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_big(body.len() as u64 + chunk.len() as u64));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `host[:port]` of a URL, as registries are named.
fn host_port(url: &url::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(0), Duration::from_millis(200));
        assert_eq!(p.delay(2), Duration::from_millis(800));
        assert_eq!(p.delay(40), p.max_delay);
    }

    #[test]
    fn loopback_and_marked_registries_are_insecure() {
        let client = RegistryClient::builder()
            .insecure_registry("myreg.example:5000")
            .build()
            .unwrap();
        let is = |r: &str| client.is_insecure(&Reference::parse(r).unwrap());
        assert!(is("127.0.0.1:5000/a"));
        assert!(is("localhost/a"));
        assert!(is("myreg.example:5000/a"));
        assert!(!is("myreg.example/a"));
        assert!(!is("busybox"));
    }
}
