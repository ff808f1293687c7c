//! Registry mirrors for Docker Hub, as dockerd's `registry-mirrors` has them.
//!
//! A mirror serves Docker Hub's repositories under their own names
//! (`library/busybox` for `busybox`) at its own address. Only references whose
//! registry is `docker.io` go to mirrors; each mirror is tried in the order given,
//! then Docker Hub itself. The URL rules are dockerd's: `http://` or `https://`,
//! a host and optional port, no path other than `/`, no query, fragment or
//! credentials.
//!
//! Two things differ from dockerd on purpose. Credentials sent to a mirror are the
//! mirror's own (from docker's store, under the mirror's `host[:port]`), never
//! Docker Hub's: dockerd sends Hub credentials to whatever mirror is configured
//! (moby#42022). And blobs come from the source that answered the manifest, with
//! the digest check applying to them as to any registry's.

use std::fmt;
use std::str::FromStr;

use basic_escape::escape;

use crate::reference::Reference;

/// A validated registry mirror URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    /// Normalised as dockerd prints it: the given URL with exactly one trailing `/`.
    url: String,
    /// `host[:port]`, as registries are named.
    host: String,
    plain_http: bool,
}

/// Why a mirror URL was refused. The messages are dockerd's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MirrorError {
    /// `127.0.0.1:5000` instead of `http://127.0.0.1:5000`.
    #[error(
        "invalid mirror: no scheme specified for \"{}\": must use either 'https://' or 'http://'",
        escape(url)
    )]
    NoScheme {
        /// The URL as given.
        url: String,
    },
    /// Not a URL at all.
    #[error("invalid mirror: \"{}\" is not a valid URI: {reason}", escape(url))]
    Invalid {
        /// The URL as given.
        url: String,
        /// What the URL parser said.
        reason: String,
    },
    /// A scheme other than `http` or `https`.
    #[error(
        "invalid mirror: unsupported scheme \"{}\" in \"{}\": must use either 'https://' or 'http://'",
        escape(scheme),
        escape(url)
    )]
    UnsupportedScheme {
        /// The scheme given.
        scheme: String,
        /// The URL as given.
        url: String,
    },
    /// A path other than `/`, a query or a fragment.
    #[error(
        "invalid mirror: path, query, or fragment at end of the URI \"{}\"",
        escape(url)
    )]
    PathQueryOrFragment {
        /// The URL as given.
        url: String,
    },
    /// `user:password@` in the URL.
    #[error(
        "invalid mirror: username/password not allowed in URI \"{}\"",
        escape(redacted)
    )]
    Credentials {
        /// The URL with its password replaced by `xxxxx`.
        redacted: String,
    },
    /// The host is not one a registry can be named by.
    #[error("invalid mirror: \"{}\" has an invalid host: {reason}", escape(url))]
    Host {
        /// The URL as given.
        url: String,
        /// What is wrong with the host.
        reason: String,
    },
}

impl Mirror {
    /// Validates and normalises a mirror URL, as dockerd's `ValidateMirror` does.
    pub fn parse(text: &str) -> Result<Mirror, MirrorError> {
        // Without "://", "host:5000" would parse as scheme "host".
        if text.split_once("://").is_none_or(|(s, _)| s.is_empty()) {
            return Err(MirrorError::NoScheme { url: text.into() });
        }
        let url = url::Url::parse(text).map_err(|e| MirrorError::Invalid {
            url: text.into(),
            reason: e.to_string(),
        })?;
        let plain_http = match url.scheme() {
            "http" => true,
            "https" => false,
            other => {
                return Err(MirrorError::UnsupportedScheme {
                    scheme: other.into(),
                    url: text.into(),
                });
            }
        };
        // Before the other checks, which quote the URL as given: a password never shows.
        if !url.username().is_empty() || url.password().is_some() {
            let mut redacted = url.clone();
            if redacted.password().is_some() {
                let _ = redacted.set_password(Some("xxxxx"));
            }
            return Err(MirrorError::Credentials {
                redacted: redacted.to_string(),
            });
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(MirrorError::PathQueryOrFragment { url: text.into() });
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(MirrorError::Host {
                    url: text.into(),
                    reason: "no host".into(),
                });
            }
        };
        crate::reference::validate_registry(&host).map_err(|reason| MirrorError::Host {
            url: text.into(),
            reason,
        })?;
        Ok(Mirror {
            url: format!("{}/", text.trim_end_matches('/')),
            host,
            plain_http,
        })
    }

    /// The URL, normalised with one trailing `/` (`http://127.0.0.1:5000/`), as
    /// `docker info` lists it under "Registry Mirrors".
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `host[:port]`: what the mirror's credentials are stored under, and what
    /// `insecure-registries` entries match.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// True for an `http://` mirror, which is spoken to in plain HTTP only.
    pub fn is_plain_http(&self) -> bool {
        self.plain_http
    }

    /// The scheme requests to this mirror use.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.plain_http { "http" } else { "https" }
    }

    /// `reference` (a Docker Hub one) as this mirror serves it: the same
    /// repository path (`library/busybox`), tag and digest, on the mirror's host.
    pub(crate) fn reference(&self, reference: &Reference) -> Reference {
        reference.on_registry(&self.host)
    }
}

impl fmt::Display for Mirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl FromStr for Mirror {
    type Err = MirrorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mirror::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_normalises_dockers_forms() {
        for (given, url, host, http) in [
            (
                "http://127.0.0.1:5000",
                "http://127.0.0.1:5000/",
                "127.0.0.1:5000",
                true,
            ),
            (
                "https://mirror.gcr.io/",
                "https://mirror.gcr.io/",
                "mirror.gcr.io",
                false,
            ),
            ("https://mirror", "https://mirror/", "mirror", false),
            (
                "http://[::1]:5000",
                "http://[::1]:5000/",
                "[::1]:5000",
                true,
            ),
            (
                "http://localhost:80",
                "http://localhost:80/",
                "localhost",
                true,
            ),
        ] {
            let m = Mirror::parse(given).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!((m.url(), m.host(), m.is_plain_http()), (url, host, http));
            assert_eq!(m.to_string(), url);
        }
    }

    #[test]
    fn refuses_what_docker_refuses_with_its_words() {
        let cases = [
            (
                "127.0.0.1:5000",
                "invalid mirror: no scheme specified for \"127.0.0.1:5000\": must use either 'https://' or 'http://'",
            ),
            (
                "ftp://mirror.example",
                "invalid mirror: unsupported scheme \"ftp\" in \"ftp://mirror.example\": must use either 'https://' or 'http://'",
            ),
            (
                "https://mirror.example/v2/",
                "invalid mirror: path, query, or fragment at end of the URI \"https://mirror.example/v2/\"",
            ),
            (
                "https://mirror.example/?a=b",
                "invalid mirror: path, query, or fragment at end of the URI \"https://mirror.example/?a=b\"",
            ),
            (
                "https://mirror.example/#top",
                "invalid mirror: path, query, or fragment at end of the URI \"https://mirror.example/#top\"",
            ),
            (
                "https://me:secret@mirror.example/",
                "invalid mirror: username/password not allowed in URI \"https://me:xxxxx@mirror.example/\"",
            ),
        ];
        for (given, message) in cases {
            let err = Mirror::parse(given).unwrap_err();
            assert_eq!(err.to_string(), message, "{given}");
        }
        for bad in [
            "http://",
            "http://exa mple.com",
            "http://:5000",
            "https://mirror//",
        ] {
            let err = Mirror::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid mirror: "), "{bad}: {err}");
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn a_password_never_shows() {
        let err = Mirror::parse("https://me:hunter2@mirror.example").unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"), "{err:?}");
    }

    #[test]
    fn the_mirror_serves_hub_names_unchanged() {
        let m = Mirror::parse("http://127.0.0.1:5000").unwrap();
        let r = m.reference(&Reference::parse("busybox").unwrap());
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.manifest_reference(), "latest");
        let single = Mirror::parse("https://mirror").unwrap();
        assert_eq!(
            single
                .reference(&Reference::parse("x/y").unwrap())
                .endpoint(),
            "mirror"
        );
    }
}
