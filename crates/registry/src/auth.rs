//! Answering a registry's authentication challenges, and remembering the answers.
//!
//! A registry announces its scheme in a `401` with `WWW-Authenticate`. Once known,
//! the scheme is remembered per registry so later requests authenticate up front,
//! and Bearer tokens are cached per (registry, scope) until shortly before they
//! expire, as the docker CLI does.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

use crate::credentials::Credentials;

/// How one registry wants to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// HTTP Basic with the stored credentials on every request.
    Basic,
    /// Tokens from `realm`, for `service`.
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A bearer token. `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct Token {
    value: String,
    valid_until: Instant,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("value", &"<redacted>")
            .finish()
    }
}

impl Token {
    pub(crate) fn header(&self) -> String {
        format!("Bearer {}", self.value)
    }

    fn is_fresh(&self, now: Instant) -> bool {
        now < self.valid_until
    }
}

/// What the registry schemes and tokens learned so far are.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    schemes: HashMap<String, Scheme>,
    tokens: HashMap<(String, String), Token>,
}

impl AuthCache {
    pub(crate) fn scheme(&self, registry: &str) -> Option<&Scheme> {
        self.schemes.get(registry)
    }

    pub(crate) fn set_scheme(&mut self, registry: &str, scheme: Scheme) {
        self.schemes.insert(registry.to_string(), scheme);
    }

    /// A cached token that has not expired yet.
    pub(crate) fn token(&self, registry: &str, scope: &str) -> Option<&Token> {
        let key = (registry.to_string(), scope.to_string());
        self.tokens.get(&key).filter(|t| t.is_fresh(Instant::now()))
    }

    pub(crate) fn set_token(&mut self, registry: &str, scope: &str, token: Token) {
        self.tokens
            .insert((registry.to_string(), scope.to_string()), token);
    }

    /// Forgets a token the registry refused, so the next request fetches a new one.
    pub(crate) fn drop_token(&mut self, registry: &str, scope: &str) {
        self.tokens
            .remove(&(registry.to_string(), scope.to_string()));
    }
}

/// A token endpoint's answer (the docker token spec; OAuth2 servers say `access_token`).
#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

/// Tokens without `expires_in` last 60 seconds, per the docker token spec.
const DEFAULT_TOKEN_LIFETIME: u64 = 60;

/// Turns a token endpoint's JSON into a [`Token`], refreshing a little before expiry
/// so a request never leaves with a token that expires in flight.
pub(crate) fn parse_token_response(body: &[u8], received: Instant) -> Result<Token, String> {
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|e| format!("malformed token response: {e}"))?;
    let value = parsed
        .token
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "token response has neither `token` nor `access_token`".to_string())?;
    let lifetime = parsed.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME);
    let margin = (lifetime / 10).clamp(1, 30);
    let valid_until = received + Duration::from_secs(lifetime.saturating_sub(margin));
    Ok(Token { value, valid_until })
}

/// The `Authorization` value for HTTP Basic.
pub(crate) fn basic_header(username: &str, password: &str) -> String {
    let raw = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// The `Authorization` value for Basic auth with `credentials`, when they allow it.
pub(crate) fn basic_header_for(credentials: &Credentials) -> Option<String> {
    match credentials {
        Credentials::Basic { username, password } => Some(basic_header(username, password)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetime_defaults_and_margin() {
        let now = Instant::now();
        let t = parse_token_response(br#"{"token":"abc","expires_in":300}"#, now).unwrap();
        assert_eq!(t.valid_until, now + Duration::from_secs(270));
        let t = parse_token_response(br#"{"access_token":"abc"}"#, now).unwrap();
        assert_eq!(t.valid_until, now + Duration::from_secs(54));
        assert_eq!(t.header(), "Bearer abc");
    }

    #[test]
    fn empty_or_missing_token_is_an_error() {
        let now = Instant::now();
        assert!(parse_token_response(br#"{"token":""}"#, now).is_err());
        assert!(parse_token_response(br#"{}"#, now).is_err());
        assert!(parse_token_response(b"not json", now).is_err());
    }

    #[test]
    fn expired_tokens_are_not_served() {
        let mut cache = AuthCache::default();
        let past = Instant::now() - Duration::from_secs(120);
        let token = parse_token_response(br#"{"token":"x","expires_in":60}"#, past).unwrap();
        cache.set_token("r", "repository:a:pull", token);
        assert!(cache.token("r", "repository:a:pull").is_none());
        let fresh = parse_token_response(br#"{"token":"y"}"#, Instant::now()).unwrap();
        cache.set_token("r", "repository:a:pull", fresh);
        assert!(cache.token("r", "repository:a:pull").is_some());
        assert!(cache.token("r", "repository:b:pull").is_none());
    }

    #[test]
    fn debug_redacts_token() {
        let t = parse_token_response(br#"{"token":"sekrit"}"#, Instant::now()).unwrap();
        assert!(!format!("{t:?}").contains("sekrit"));
    }

    #[test]
    fn basic_header_is_base64_of_user_colon_password() {
        assert_eq!(
            basic_header("aladdin", "opensesame"),
            "Basic YWxhZGRpbjpvcGVuc2VzYW1l"
        );
    }
}
