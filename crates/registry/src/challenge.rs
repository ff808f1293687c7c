//! `WWW-Authenticate` challenges (RFC 7235) as registries send them, and the token
//! scopes asked for in answer.
//!
//! One header value may hold several challenges separated by commas, and quoted
//! parameter values hold commas of their own (`scope="repository:x:pull,push"`), so
//! splitting on commas is wrong: this is a small tokenizer over the RFC grammar,
//! tolerant of what real registries send (any case, any order, stray whitespace,
//! unquoted values that are not strict tokens).

use basic_escape::escape;

/// One authentication challenge from a `401` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    /// The docker token protocol: fetch a token from `realm`.
    Bearer {
        /// URL of the token service.
        realm: String,
        /// The `service` to name in the token request.
        service: Option<String>,
        /// The scope the registry wants, e.g. `repository:library/busybox:pull`.
        scope: Option<String>,
        /// Why a presented token was refused, e.g. `insufficient_scope`.
        error: Option<String>,
    },
    /// HTTP Basic authentication on every request.
    Basic {
        /// The protection space, when the registry names one.
        realm: Option<String>,
    },
}

/// Why a `WWW-Authenticate` header could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    /// The header is not a list of challenges.
    #[error(
        "malformed WWW-Authenticate header \"{}\": {reason} at byte {position}",
        escape(header)
    )]
    Syntax {
        /// The whole header value.
        header: String,
        /// Where parsing stopped.
        position: usize,
        /// What was expected there.
        reason: &'static str,
    },
    /// A Bearer challenge does not say where to get a token.
    #[error(
        "WWW-Authenticate header \"{}\" has a Bearer challenge without a realm, \
         so the registry's token service is unknown",
        escape(header)
    )]
    MissingRealm {
        /// The whole header value.
        header: String,
    },
}

impl Challenge {
    /// Parses every challenge in one `WWW-Authenticate` header value, in order.
    /// Schemes other than Bearer and Basic (Negotiate, Digest, ...) are skipped; an
    /// empty value gives no challenges.
    pub fn parse_all(header_value: &str) -> Result<Vec<Challenge>, ChallengeError> {
        let raw = Parser {
            text: header_value,
            pos: 0,
        }
        .challenges()?;
        let mut out = Vec::new();
        for RawChallenge { scheme, params } in raw {
            let param = |name: &str| {
                params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            if scheme.eq_ignore_ascii_case("bearer") {
                let realm = param("realm").filter(|r| !r.is_empty()).ok_or_else(|| {
                    ChallengeError::MissingRealm {
                        header: header_value.to_string(),
                    }
                })?;
                out.push(Challenge::Bearer {
                    realm,
                    service: param("service"),
                    scope: param("scope"),
                    error: param("error"),
                });
            } else if scheme.eq_ignore_ascii_case("basic") {
                out.push(Challenge::Basic {
                    realm: param("realm"),
                });
            }
        }
        Ok(out)
    }
}

/// The token scope for `actions` on `repository`, as the docker token protocol
/// spells it: `repository:library/busybox:pull`, `repository:NAME:pull,push`.
pub fn token_scope(repository: &str, actions: &[&str]) -> String {
    format!("repository:{repository}:{}", actions.join(","))
}

/// A challenge before its scheme is interpreted. The first value of a repeated
/// parameter wins (RFC 7235 forbids repeats, so any choice is a guess).
struct RawChallenge<'a> {
    scheme: &'a str,
    params: Vec<(&'a str, String)>,
}

/// A cursor over the header value. Only ASCII bytes are ever matched, so every
/// position it stops at is a char boundary.
struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn challenges(mut self) -> Result<Vec<RawChallenge<'a>>, ChallengeError> {
        let mut out = Vec::new();
        loop {
            self.skip(|b| is_space(b) || b == b',');
            if self.at_end() {
                return Ok(out);
            }
            let scheme = self.token();
            if scheme.is_empty() {
                return Err(self.error("expected an authentication scheme"));
            }
            let params = self.params()?;
            out.push(RawChallenge { scheme, params });
        }
    }

    /// The parameters after a scheme, up to the next challenge's scheme or the end.
    /// A token68 (`Negotiate abc==`) in their place is skipped.
    fn params(&mut self) -> Result<Vec<(&'a str, String)>, ChallengeError> {
        let mut params: Vec<(&'a str, String)> = Vec::new();
        self.skip(is_space);
        if self.skip_token68() {
            return Ok(params);
        }
        loop {
            // A token not followed by `=` is the next challenge's scheme: leave it.
            let before = self.pos;
            self.skip(|b| is_space(b) || b == b',');
            let name = self.token();
            self.skip(is_space);
            if name.is_empty() || self.peek() != Some(b'=') {
                self.pos = before;
                return Ok(params);
            }
            self.pos += 1;
            self.skip(is_space);
            let value = if self.peek() == Some(b'"') {
                self.quoted()?
            } else {
                // Real registries send unquoted URLs, which are not RFC tokens:
                // take everything up to the next separator.
                self.take(|b| !is_space(b) && b != b',').to_string()
            };
            if !params.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                params.push((name, value));
            }
            self.skip(is_space);
            if !self.at_end() && self.peek() != Some(b',') {
                return Err(self.error("expected `,` after a parameter"));
            }
        }
    }

    /// Consumes a token68 when one stands alone here (followed by `,` or the end).
    fn skip_token68(&mut self) -> bool {
        let start = self.pos;
        let body = self.take(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
        self.skip(|b| b == b'=');
        let end = self.pos;
        self.skip(is_space);
        if !body.is_empty() && (self.at_end() || self.peek() == Some(b',')) {
            self.pos = end;
            return true;
        }
        self.pos = start;
        false
    }

    /// A quoted-string, without its quotes and with `\x` unescaped to `x`.
    fn quoted(&mut self) -> Result<String, ChallengeError> {
        let open = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut rest = self.text[self.pos..].char_indices();
        while let Some((i, c)) = rest.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(value);
                }
                '\\' => match rest.next() {
                    Some((_, escaped)) => value.push(escaped),
                    None => break,
                },
                c => value.push(c),
            }
        }
        self.pos = open;
        Err(self.error("unterminated quoted string"))
    }

    /// An RFC 7230 token (possibly empty).
    fn token(&mut self) -> &'a str {
        self.take(is_tchar)
    }

    fn take(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        self.skip(keep);
        &self.text[start..self.pos]
    }

    fn skip(&mut self, skip: impl Fn(u8) -> bool) {
        let bytes = self.text.as_bytes();
        while self.pos < bytes.len() && skip(bytes[self.pos]) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn error(&self, reason: &'static str) -> ChallengeError {
        ChallengeError::Syntax {
            header: self.text.to_string(),
            position: self.pos,
            reason,
        }
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
            error: None,
        }
    }

    #[test]
    fn docker_hub() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/busybox:pull")
            )]
        );
    }

    #[test]
    fn docker_hub_insufficient_scope_with_comma_in_scope() {
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push",error="insufficient_scope""#;
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
                error: Some("insufficient_scope".into()),
            }]
        );
    }

    #[test]
    fn ghcr() {
        let h = r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:user/image:pull""#;
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [bearer(
                "https://ghcr.io/token",
                Some("ghcr.io"),
                Some("repository:user/image:pull")
            )]
        );
    }

    #[test]
    fn quay() {
        let h = r#"Bearer realm="https://quay.io/v2/auth",service="quay.io",scope="repository:coreos/etcd:pull""#;
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [bearer(
                "https://quay.io/v2/auth",
                Some("quay.io"),
                Some("repository:coreos/etcd:pull")
            )]
        );
    }

    #[test]
    fn ping_without_scope() {
        // `/v2/` answers before any repository is named.
        let h = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io""#;
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                None
            )]
        );
    }

    #[test]
    fn distribution_basic() {
        assert_eq!(
            Challenge::parse_all(r#"Basic realm="basic-realm""#).unwrap(),
            [Challenge::Basic {
                realm: Some("basic-realm".into())
            }]
        );
        assert_eq!(
            Challenge::parse_all("Basic").unwrap(),
            [Challenge::Basic { realm: None }]
        );
        // ECR: Basic with extra parameters.
        let h = r#"Basic realm="https://1234.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com""#;
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [Challenge::Basic {
                realm: Some("https://1234.dkr.ecr.us-east-1.amazonaws.com/".into())
            }]
        );
    }

    #[test]
    fn several_challenges_in_one_value() {
        let h = r#"Bearer realm="a",service="b", Basic realm="c""#;
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [
                bearer("a", Some("b"), None),
                Challenge::Basic {
                    realm: Some("c".into())
                }
            ]
        );
        let h = r#"Basic, Bearer realm="r""#;
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [Challenge::Basic { realm: None }, bearer("r", None, None)]
        );
    }

    #[test]
    fn unknown_schemes_are_skipped() {
        let h = r#"Negotiate, NTLM TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==, Digest realm="d", nonce="n,1", Bearer realm="r""#;
        assert_eq!(Challenge::parse_all(h).unwrap(), [bearer("r", None, None)]);
        assert_eq!(
            Challenge::parse_all(r#"Newauth realm="x", type=1"#).unwrap(),
            []
        );
    }

    #[test]
    fn case_order_whitespace_and_escapes() {
        let h = "  bEARER   Scope = \"s\" ,\tSERVICE=svc ,realm=\"https://x/\\\"q\\\\, y\"  ,  ";
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [bearer("https://x/\"q\\, y", Some("svc"), Some("s"))]
        );
    }

    #[test]
    fn unquoted_url_realm() {
        let h = "Bearer realm=https://auth.example.com/token,service=registry.example.com";
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [bearer(
                "https://auth.example.com/token",
                Some("registry.example.com"),
                None
            )]
        );
    }

    #[test]
    fn repeated_parameter_keeps_the_first() {
        let h = r#"Bearer realm="first", realm="second""#;
        assert_eq!(
            Challenge::parse_all(h).unwrap(),
            [bearer("first", None, None)]
        );
    }

    #[test]
    fn empty_header_has_no_challenges() {
        assert_eq!(Challenge::parse_all("").unwrap(), []);
        assert_eq!(Challenge::parse_all(" , ,").unwrap(), []);
    }

    #[test]
    fn bearer_without_realm_is_an_error_naming_the_header() {
        for h in [
            r#"Bearer service="registry.docker.io""#,
            "Bearer",
            r#"Bearer realm="""#,
        ] {
            let err = Challenge::parse_all(h).unwrap_err();
            assert_eq!(err, ChallengeError::MissingRealm { header: h.into() });
            let msg = err.to_string();
            assert!(
                msg.contains("WWW-Authenticate") && msg.contains("realm"),
                "{msg}"
            );
        }
    }

    #[test]
    fn syntax_errors() {
        for h in [
            r#"Bearer realm="unterminated"#,
            r#"Bearer realm="a" junk"#,
            "=oops",
            "Bearer realm=\"a\" \"b\"",
        ] {
            let err = Challenge::parse_all(h).unwrap_err();
            assert!(matches!(err, ChallengeError::Syntax { .. }), "{h}: {err:?}");
            assert!(err.to_string().contains("WWW-Authenticate"), "{err}");
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(
            token_scope("library/busybox", &["pull"]),
            "repository:library/busybox:pull"
        );
        assert_eq!(
            token_scope("a/b", &["pull", "push"]),
            "repository:a/b:pull,push"
        );
    }

    /// Quotes a value as a registry would.
    fn quote(v: &str) -> String {
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = Challenge::parse_all(&s);
        }

        #[test]
        fn never_panics_on_header_like_text(s in r#"[A-Za-z =",\\\t]{0,64}"#) {
            let _ = Challenge::parse_all(&s);
        }

        #[test]
        fn quoted_values_round_trip(
            realm in ".+",
            service in ".*",
            scope in ".*",
            basic_realm in ".*",
        ) {
            let h = format!(
                "Bearer service={} , scope={},realm={}, Basic realm={}",
                quote(&service), quote(&scope), quote(&realm), quote(&basic_realm),
            );
            let parsed = Challenge::parse_all(&h).unwrap();
            prop_assert_eq!(parsed, vec![
                bearer(&realm, Some(&service), Some(&scope)),
                Challenge::Basic { realm: Some(basic_realm) },
            ]);
        }
    }
}
