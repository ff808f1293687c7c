//! Image references with docker's normalisation.
//!
//! A reference names an image the way `docker pull` accepts it: `busybox`,
//! `user/app:v1`, `registry.example.com:5000/team/app@sha256:…`. Parsing follows
//! `ParseNormalizedNamed` from `github.com/distribution/reference`, so a short
//! name expands to exactly what docker would pull:
//!
//! ```
//! use basic_registry::Reference;
//!
//! let r = Reference::parse("busybox").unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! assert_eq!(r.endpoint(), "registry-1.docker.io");
//! assert_eq!(r.familiar(), "busybox:latest");
//! ```
//!
//! The grammar, from distribution/reference:
//!
//! ```text
//! reference        := name [ ":" tag ] [ "@" digest ]
//! name             := [domain '/'] path-component ['/' path-component]*
//! domain           := host [':' port-number]
//! host             := domain-name | '[' IPv6address ']'
//! domain-name      := domain-component ['.' domain-component]*
//! domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! port-number      := /[0-9]+/
//! path-component   := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric    := /[a-z0-9]+/
//! separator        := /[_.]|__|[-]*/
//! tag              := /[\w][\w.-]{0,127}/
//! digest           := algorithm ":" hex
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;

use basic_escape::escape;

/// Registry that short names such as `busybox` or `user/app` resolve to.
const DOCKER_HUB: &str = "docker.io";
/// Older spelling of Docker Hub that docker still rewrites to [`DOCKER_HUB`].
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
/// Docker Hub's name is not where its API lives.
const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";
/// Namespace of Docker Hub's official images (`busybox` is `library/busybox`).
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
/// distribution/reference's `NameTotalLengthMax`, counted on the normalised name.
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// An error from parsing or building a [`Reference`]. Every variant quotes the
/// whole reference and names the part that is wrong, escaped: references also
/// come from archives and indexes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The reference was an empty string.
    #[error(
        "invalid reference: the reference is empty; give an image name such as \"busybox\" or \"registry.example.com/app:v1\""
    )]
    Empty,

    /// The whole reference is 64 hex characters, which docker reserves for image IDs.
    #[error(
        "invalid reference \"{}\": a 64-character hexadecimal string is an image ID, not a repository name",
        escape(reference)
    )]
    LooksLikeImageId {
        /// The reference as given.
        reference: String,
    },

    /// The repository path contains uppercase letters.
    #[error(
        "invalid reference \"{}\": repository name must be lowercase",
        escape(reference)
    )]
    Uppercase {
        /// The reference as given.
        reference: String,
    },

    /// A `/`-separated component of the repository path breaks the grammar.
    #[error(
        "invalid repository name component \"{}\" in reference \"{}\": {}",
        escape(component),
        escape(reference),
        escape(reason)
    )]
    InvalidRepository {
        /// The reference as given.
        reference: String,
        /// The offending path component (may be empty).
        component: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The registry plus repository is longer than docker allows.
    #[error(
        "invalid reference \"{}\": repository name \"{}\" is {length} characters long; the limit is 255 including the registry",
        escape(reference),
        escape(name)
    )]
    NameTooLong {
        /// The reference as given.
        reference: String,
        /// The normalised `registry/repository` that is too long.
        name: String,
        /// Its length in bytes.
        length: usize,
    },

    /// The registry part (`host[:port]`) is malformed.
    #[error(
        "invalid registry host \"{}\" in reference \"{}\": {}",
        escape(registry),
        escape(reference),
        escape(reason)
    )]
    InvalidRegistry {
        /// The reference as given.
        reference: String,
        /// The registry part.
        registry: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The tag after `:` is malformed.
    #[error(
        "invalid tag \"{}\" in reference \"{}\": {}",
        escape(tag),
        escape(reference),
        escape(reason)
    )]
    InvalidTag {
        /// The reference as given.
        reference: String,
        /// The tag (may be empty, e.g. for a trailing `:`).
        tag: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The digest after `@` is malformed or uses an unsupported algorithm.
    #[error(
        "invalid digest \"{}\" in reference \"{}\": {}",
        escape(digest),
        escape(reference),
        escape(reason)
    )]
    InvalidDigest {
        /// The reference as given.
        reference: String,
        /// The digest (may be empty, e.g. for a trailing `@`).
        digest: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A fully normalised image reference: registry, repository, and a tag and/or digest.
///
/// Parsing fills in what docker fills in: `docker.io` as the registry, the
/// `library/` namespace for single-component Docker Hub names, and the tag
/// `latest` when neither a tag nor a digest is given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses and normalises a reference the way `docker pull` does.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::LooksLikeImageId {
                reference: s.to_owned(),
            });
        }

        // '@' and ':' are ASCII, so every split below lands on a char boundary.
        let (name_and_tag, digest) = match s.split_once('@') {
            Some((before, after)) => (before, Some(after)),
            None => (s, None),
        };
        // A tag's ':' is the one after the last '/'; earlier ones belong to a port.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].find(':') {
            Some(i) => (
                &name_and_tag[..last_slash + i],
                Some(&name_and_tag[last_slash + i + 1..]),
            ),
            None => (name_and_tag, None),
        };

        let (registry, path) = split_registry(name);
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                reference: s.to_owned(),
            });
        }
        if let Some(registry) = registry {
            validate_registry(registry).map_err(|reason| ReferenceError::InvalidRegistry {
                reference: s.to_owned(),
                registry: registry.to_owned(),
                reason,
            })?;
        }
        for component in path.split('/') {
            validate_path_component(component).map_err(|reason| {
                ReferenceError::InvalidRepository {
                    reference: s.to_owned(),
                    component: component.to_owned(),
                    reason,
                }
            })?;
        }
        if let Some(tag) = tag {
            validate_tag(s, tag)?;
        }
        if let Some(digest) = digest {
            validate_digest(s, digest)?;
        }

        let registry = match registry {
            None | Some(LEGACY_DOCKER_HUB) => DOCKER_HUB,
            Some(other) => other,
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_owned()
        };
        let length = registry.len() + 1 + repository.len();
        if length > NAME_MAX {
            return Err(ReferenceError::NameTooLong {
                reference: s.to_owned(),
                name: format!("{registry}/{repository}"),
                length,
            });
        }

        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (tag, _) => tag.map(str::to_owned),
        };
        Ok(Self {
            registry: registry.to_owned(),
            repository,
            tag,
            digest: digest.map(str::to_owned),
        })
    }

    /// The registry, as docker names it: `docker.io`, `127.0.0.1:5000`, `localhost`, `[::1]:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag: `None` when only a digest was given, `Some("latest")` when neither was.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, e.g. `sha256:…`, if one was given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What goes in `/v2/<repository>/manifests/<here>`: the digest if there is
    /// one (it pins the content, so it wins over the tag), else the tag.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The `host[:port]` to connect to: `registry-1.docker.io` for Docker Hub,
    /// otherwise [`registry`](Self::registry).
    pub fn endpoint(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_ENDPOINT
        } else {
            &self.registry
        }
    }

    /// Whether the registry is Docker Hub (`docker.io`, including references
    /// written with the legacy `index.docker.io`).
    pub fn is_docker_hub(&self) -> bool {
        self.registry == DOCKER_HUB
    }

    /// Whether docker would talk plain HTTP to this registry without being told
    /// to: `localhost`, any address in `127.0.0.0/8`, or `::1`, with or without a port.
    pub fn is_insecure_by_default(&self) -> bool {
        let host = host_without_port(&self.registry);
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4.is_loopback(),
            Ok(IpAddr::V6(v6)) => {
                v6 == Ipv6Addr::LOCALHOST || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            Err(_) => false,
        }
    }

    /// Docker's short form, as `docker images` prints it: `busybox:latest`,
    /// `user/app:v1`, `127.0.0.1:5000/a/b:t`.
    ///
    /// Drops `docker.io/`, and `library/` for official images. The result
    /// always parses back to an equal reference.
    pub fn familiar(&self) -> String {
        let mut out = self.familiar_name();
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
        out
    }

    /// The same repository pinned to `digest`, keeping the tag (docker's
    /// "repo digest" form when the tag is later dropped).
    pub fn with_digest(&self, digest: &str) -> Result<Self, ReferenceError> {
        validate_digest(&self.to_string(), digest)?;
        Ok(Self {
            digest: Some(digest.to_owned()),
            ..self.clone()
        })
    }

    /// The same repository with `tag`, keeping any digest (as docker's `WithTag` does).
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        validate_tag(&self.to_string(), tag)?;
        Ok(Self {
            tag: Some(tag.to_owned()),
            ..self.clone()
        })
    }

    /// The same repository, tag and digest on another registry: how a mirror
    /// serves a Docker Hub reference. `registry` must be a valid registry name.
    pub(crate) fn on_registry(&self, registry: &str) -> Self {
        Self {
            registry: registry.to_owned(),
            ..self.clone()
        }
    }

    /// `registry/repository` without tag or digest, e.g. `docker.io/library/busybox`.
    pub fn repository_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    fn familiar_name(&self) -> String {
        if !self.is_docker_hub() {
            return self.repository_name();
        }
        if let Some(rest) = self.repository.strip_prefix(OFFICIAL_PREFIX)
            && !rest.contains('/')
        {
            return rest.to_owned();
        }
        // Docker drops "docker.io/" unconditionally, but then "docker.io/foo.bar/x"
        // would come back as registry "foo.bar"; keep the prefix where it matters.
        match self.repository.split_once('/') {
            Some((first, _)) if looks_like_registry(first) => self.repository_name(),
            _ => self.repository.clone(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Docker's rule for telling `host/repo` from `namespace/repo`: the first
/// component is a registry iff it has a `.` or `:`, is `localhost`, or has an
/// uppercase letter (Docker Hub namespaces are lowercase, hostnames need not be).
fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_registry(first) => (Some(first), rest),
        _ => (None, name),
    }
}

fn host_without_port(registry: &str) -> &str {
    if registry.starts_with('[') {
        return registry.find(']').map_or(registry, |end| &registry[..=end]);
    }
    registry.split_once(':').map_or(registry, |(host, _)| host)
}

pub(crate) fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("an IPv6 address must be closed with ']'".into());
        };
        let address = &rest[..end];
        if address.is_empty() || !address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!(
                "\"[{address}]\" is not an IPv6 address; only hex digits and ':' may appear inside brackets"
            ));
        }
        match &rest[end + 1..] {
            "" => ("", None),
            after => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => {
                    return Err(format!(
                        "unexpected \"{after}\" after the IPv6 address; expected ':PORT' or nothing"
                    ));
                }
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };

    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("port \"{port}\" must be a decimal number"));
    }
    if registry.starts_with('[') {
        return Ok(());
    }
    if host.is_empty() {
        return Err("the host name is empty".into());
    }
    for label in host.split('.') {
        if label.is_empty() {
            return Err(
                "the host name has an empty label (a leading, trailing or doubled '.')".into(),
            );
        }
        if let Some(bad) = label
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && *c != '-')
        {
            return Err(format!(
                "character {bad:?} is not allowed; host names contain letters, digits, '-' and '.'"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(format!("label \"{label}\" must not start or end with '-'"));
        }
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*`
fn validate_path_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("the component is empty (a leading, trailing or doubled '/')".into());
    }
    if let Some(bad) = component
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
    {
        return Err(format!(
            "character {bad:?} is not allowed; use lowercase letters, digits, '.', '_' and '-'"
        ));
    }
    let is_separator = |b: u8| matches!(b, b'.' | b'_' | b'-');
    let bytes = component.as_bytes();
    if bytes.first().copied().is_some_and(is_separator)
        || bytes.last().copied().is_some_and(is_separator)
    {
        return Err("it must start and end with a lowercase letter or digit".into());
    }
    for run in component.split(|c: char| c.is_ascii_alphanumeric()) {
        let allowed = matches!(run, "" | "." | "_" | "__") || run.bytes().all(|b| b == b'-');
        if !allowed {
            return Err(format!(
                "separator \"{run}\" is not allowed; between letters and digits use one '.', one or two '_', or any number of '-'"
            ));
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`
fn validate_tag(reference: &str, tag: &str) -> Result<(), ReferenceError> {
    let fail = |reason: String| ReferenceError::InvalidTag {
        reference: reference.to_owned(),
        tag: tag.to_owned(),
        reason,
    };
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let Some(first) = tag.chars().next() else {
        return Err(fail(
            "the tag after ':' is empty; remove the trailing ':' or add a tag".into(),
        ));
    };
    if !is_word(first) {
        return Err(fail(format!(
            "a tag must start with a letter, digit or '_', not {first:?}"
        )));
    }
    if let Some(bad) = tag.chars().find(|&c| !is_word(c) && c != '.' && c != '-') {
        return Err(fail(format!(
            "character {bad:?} is not allowed; tags contain letters, digits, '_', '.' and '-'"
        )));
    }
    if tag.len() > TAG_MAX {
        return Err(fail(format!(
            "the tag is {} characters long; the limit is {TAG_MAX}",
            tag.len()
        )));
    }
    Ok(())
}

/// go-digest's rules: a registered algorithm and its exact hex length, lowercase.
fn validate_digest(reference: &str, digest: &str) -> Result<(), ReferenceError> {
    let fail = |reason: String| ReferenceError::InvalidDigest {
        reference: reference.to_owned(),
        digest: digest.to_owned(),
        reason,
    };
    let (algorithm, hex) = match digest.split_once(':') {
        Some((a, h)) if !a.is_empty() && !h.is_empty() => (a, h),
        _ => {
            return Err(fail(
                "expected ALGORITHM:HEX after '@', e.g. sha256: followed by 64 hex characters"
                    .into(),
            ));
        }
    };
    let expected_len = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        other => {
            return Err(fail(format!(
                "unsupported digest algorithm \"{other}\"; use sha256 (sha384 and sha512 are also accepted)"
            )));
        }
    };
    if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(fail(format!("character {bad:?} is not a hex digit")));
    }
    if hex.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(fail("the hex part must be lowercase".into()));
    }
    if hex.len() != expected_len {
        return Err(fail(format!(
            "a {algorithm} digest has {expected_len} hex characters, this one has {}",
            hex.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D256: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    struct Valid {
        input: &'static str,
        registry: &'static str,
        repository: &'static str,
        tag: Option<&'static str>,
        digest: Option<&'static str>,
        display: &'static str,
        familiar: &'static str,
        endpoint: &'static str,
    }

    fn valid_cases() -> Vec<Valid> {
        let d512 = Box::leak(format!("sha512:{}", "ab".repeat(64)).into_boxed_str());
        let d384 = Box::leak(format!("sha384:{}", "0f".repeat(48)).into_boxed_str());
        let s = |x: String| -> &'static str { Box::leak(x.into_boxed_str()) };
        vec![
            Valid {
                input: "busybox",
                registry: "docker.io",
                repository: "library/busybox",
                tag: Some("latest"),
                digest: None,
                display: "docker.io/library/busybox:latest",
                familiar: "busybox:latest",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "busybox:1.36",
                registry: "docker.io",
                repository: "library/busybox",
                tag: Some("1.36"),
                digest: None,
                display: "docker.io/library/busybox:1.36",
                familiar: "busybox:1.36",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "user/app",
                registry: "docker.io",
                repository: "user/app",
                tag: Some("latest"),
                digest: None,
                display: "docker.io/user/app:latest",
                familiar: "user/app:latest",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "docker.io/busybox",
                registry: "docker.io",
                repository: "library/busybox",
                tag: Some("latest"),
                digest: None,
                display: "docker.io/library/busybox:latest",
                familiar: "busybox:latest",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "docker.io/library/busybox:musl",
                registry: "docker.io",
                repository: "library/busybox",
                tag: Some("musl"),
                digest: None,
                display: "docker.io/library/busybox:musl",
                familiar: "busybox:musl",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "index.docker.io/user/app:v1",
                registry: "docker.io",
                repository: "user/app",
                tag: Some("v1"),
                digest: None,
                display: "docker.io/user/app:v1",
                familiar: "user/app:v1",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "index.docker.io/busybox",
                registry: "docker.io",
                repository: "library/busybox",
                tag: Some("latest"),
                digest: None,
                display: "docker.io/library/busybox:latest",
                familiar: "busybox:latest",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                // docker does not rewrite this host; it is just another registry.
                input: "registry-1.docker.io/library/busybox",
                registry: "registry-1.docker.io",
                repository: "library/busybox",
                tag: Some("latest"),
                digest: None,
                display: "registry-1.docker.io/library/busybox:latest",
                familiar: "registry-1.docker.io/library/busybox:latest",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "library/a/b",
                registry: "docker.io",
                repository: "library/a/b",
                tag: Some("latest"),
                digest: None,
                display: "docker.io/library/a/b:latest",
                familiar: "library/a/b:latest",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "quay.io/coreos/etcd:v3.5.0",
                registry: "quay.io",
                repository: "coreos/etcd",
                tag: Some("v3.5.0"),
                digest: None,
                display: "quay.io/coreos/etcd:v3.5.0",
                familiar: "quay.io/coreos/etcd:v3.5.0",
                endpoint: "quay.io",
            },
            Valid {
                input: "registry.example.com/app",
                registry: "registry.example.com",
                repository: "app",
                tag: Some("latest"),
                digest: None,
                display: "registry.example.com/app:latest",
                familiar: "registry.example.com/app:latest",
                endpoint: "registry.example.com",
            },
            Valid {
                input: "127.0.0.1:5000/a/b:t",
                registry: "127.0.0.1:5000",
                repository: "a/b",
                tag: Some("t"),
                digest: None,
                display: "127.0.0.1:5000/a/b:t",
                familiar: "127.0.0.1:5000/a/b:t",
                endpoint: "127.0.0.1:5000",
            },
            Valid {
                input: "host:5000/ns/app:tag",
                registry: "host:5000",
                repository: "ns/app",
                tag: Some("tag"),
                digest: None,
                display: "host:5000/ns/app:tag",
                familiar: "host:5000/ns/app:tag",
                endpoint: "host:5000",
            },
            Valid {
                input: "localhost/app",
                registry: "localhost",
                repository: "app",
                tag: Some("latest"),
                digest: None,
                display: "localhost/app:latest",
                familiar: "localhost/app:latest",
                endpoint: "localhost",
            },
            Valid {
                input: "localhost:5000/app",
                registry: "localhost:5000",
                repository: "app",
                tag: Some("latest"),
                digest: None,
                display: "localhost:5000/app:latest",
                familiar: "localhost:5000/app:latest",
                endpoint: "localhost:5000",
            },
            Valid {
                // No '/': the port-looking part is a tag, as in docker.
                input: "localhost:5000",
                registry: "docker.io",
                repository: "library/localhost",
                tag: Some("5000"),
                digest: None,
                display: "docker.io/library/localhost:5000",
                familiar: "localhost:5000",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "[::1]:5000/app",
                registry: "[::1]:5000",
                repository: "app",
                tag: Some("latest"),
                digest: None,
                display: "[::1]:5000/app:latest",
                familiar: "[::1]:5000/app:latest",
                endpoint: "[::1]:5000",
            },
            Valid {
                input: "[2001:db8::1]/ns/app:v2",
                registry: "[2001:db8::1]",
                repository: "ns/app",
                tag: Some("v2"),
                digest: None,
                display: "[2001:db8::1]/ns/app:v2",
                familiar: "[2001:db8::1]/ns/app:v2",
                endpoint: "[2001:db8::1]",
            },
            Valid {
                // Uppercase first component: a host name, not a Hub namespace.
                input: "Example.COM/app",
                registry: "Example.COM",
                repository: "app",
                tag: Some("latest"),
                digest: None,
                display: "Example.COM/app:latest",
                familiar: "Example.COM/app:latest",
                endpoint: "Example.COM",
            },
            Valid {
                input: "Registry/app",
                registry: "Registry",
                repository: "app",
                tag: Some("latest"),
                digest: None,
                display: "Registry/app:latest",
                familiar: "Registry/app:latest",
                endpoint: "Registry",
            },
            Valid {
                input: s(format!("busybox@{D256}")),
                registry: "docker.io",
                repository: "library/busybox",
                tag: None,
                digest: Some(D256),
                display: s(format!("docker.io/library/busybox@{D256}")),
                familiar: s(format!("busybox@{D256}")),
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: s(format!("busybox:1.36@{D256}")),
                registry: "docker.io",
                repository: "library/busybox",
                tag: Some("1.36"),
                digest: Some(D256),
                display: s(format!("docker.io/library/busybox:1.36@{D256}")),
                familiar: s(format!("busybox:1.36@{D256}")),
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: s(format!("host:5000/a/b:t@{D256}")),
                registry: "host:5000",
                repository: "a/b",
                tag: Some("t"),
                digest: Some(D256),
                display: s(format!("host:5000/a/b:t@{D256}")),
                familiar: s(format!("host:5000/a/b:t@{D256}")),
                endpoint: "host:5000",
            },
            Valid {
                input: s(format!("localhost:5000/app@{d512}")),
                registry: "localhost:5000",
                repository: "app",
                tag: None,
                digest: Some(d512),
                display: s(format!("localhost:5000/app@{d512}")),
                familiar: s(format!("localhost:5000/app@{d512}")),
                endpoint: "localhost:5000",
            },
            Valid {
                input: s(format!("app@{d384}")),
                registry: "docker.io",
                repository: "library/app",
                tag: None,
                digest: Some(d384),
                display: s(format!("docker.io/library/app@{d384}")),
                familiar: s(format!("app@{d384}")),
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "a-b.c--d.0:443/f-g.h:W0rd_.-x",
                registry: "a-b.c--d.0:443",
                repository: "f-g.h",
                tag: Some("W0rd_.-x"),
                digest: None,
                display: "a-b.c--d.0:443/f-g.h:W0rd_.-x",
                familiar: "a-b.c--d.0:443/f-g.h:W0rd_.-x",
                endpoint: "a-b.c--d.0:443",
            },
            Valid {
                input: "user/a.b_c__d---e:_tag",
                registry: "docker.io",
                repository: "user/a.b_c__d---e",
                tag: Some("_tag"),
                digest: None,
                display: "docker.io/user/a.b_c__d---e:_tag",
                familiar: "user/a.b_c__d---e:_tag",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                // A dotted Hub namespace would be read as a registry in the short form.
                input: "docker.io/foo.bar/app",
                registry: "docker.io",
                repository: "foo.bar/app",
                tag: Some("latest"),
                digest: None,
                display: "docker.io/foo.bar/app:latest",
                familiar: "docker.io/foo.bar/app:latest",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "docker.io/localhost/app",
                registry: "docker.io",
                repository: "localhost/app",
                tag: Some("latest"),
                digest: None,
                display: "docker.io/localhost/app:latest",
                familiar: "docker.io/localhost/app:latest",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: "a/b/c/d/e",
                registry: "docker.io",
                repository: "a/b/c/d/e",
                tag: Some("latest"),
                digest: None,
                display: "docker.io/a/b/c/d/e:latest",
                familiar: "a/b/c/d/e:latest",
                endpoint: "registry-1.docker.io",
            },
            Valid {
                input: s(format!("busybox:{}", "t".repeat(128))),
                registry: "docker.io",
                repository: "library/busybox",
                tag: Some(s("t".repeat(128))),
                digest: None,
                display: s(format!("docker.io/library/busybox:{}", "t".repeat(128))),
                familiar: s(format!("busybox:{}", "t".repeat(128))),
                endpoint: "registry-1.docker.io",
            },
        ]
    }

    #[test]
    fn valid_references() {
        for case in valid_cases() {
            let r = Reference::parse(case.input)
                .unwrap_or_else(|e| panic!("{:?} should parse: {e}", case.input));
            assert_eq!(r.registry(), case.registry, "registry of {:?}", case.input);
            assert_eq!(
                r.repository(),
                case.repository,
                "repository of {:?}",
                case.input
            );
            assert_eq!(r.tag(), case.tag, "tag of {:?}", case.input);
            assert_eq!(r.digest(), case.digest, "digest of {:?}", case.input);
            assert_eq!(r.to_string(), case.display, "Display of {:?}", case.input);
            assert_eq!(r.familiar(), case.familiar, "familiar of {:?}", case.input);
            assert_eq!(r.endpoint(), case.endpoint, "endpoint of {:?}", case.input);
            assert_eq!(
                r.repository_name(),
                format!("{}/{}", case.registry, case.repository)
            );
            assert_eq!(
                r.manifest_reference(),
                case.digest.or(case.tag).unwrap_or_default()
            );
            assert_eq!(Reference::parse(case.display), Ok(r.clone()));
            assert_eq!(Reference::parse(case.familiar), Ok(r.clone()));
            assert_eq!(case.input.parse::<Reference>(), Ok(r));
        }
    }

    fn kind(e: &ReferenceError) -> &'static str {
        match e {
            ReferenceError::Empty => "empty",
            ReferenceError::LooksLikeImageId { .. } => "id",
            ReferenceError::Uppercase { .. } => "uppercase",
            ReferenceError::InvalidRepository { .. } => "repository",
            ReferenceError::NameTooLong { .. } => "too long",
            ReferenceError::InvalidRegistry { .. } => "registry",
            ReferenceError::InvalidTag { .. } => "tag",
            ReferenceError::InvalidDigest { .. } => "digest",
        }
    }

    /// Each invalid input, the kind of error it must produce, and text the
    /// message must contain (usually the offending part, quoted).
    #[test]
    fn invalid_references() {
        let long_path = format!("a/{}", "b".repeat(250));
        let long_tag = format!("busybox:{}", "t".repeat(129));
        let short_hex = format!("busybox@sha256:{}", "a".repeat(63));
        let upper_hex = format!("busybox@sha256:{}", "A".repeat(64));
        let id = "e".repeat(64);
        let md5 = format!("busybox@md5:{}", "a".repeat(32));
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, &str)> = vec![
            ("", "empty", "empty"),
            ("Busybox", "uppercase", "\"Busybox\": repository name must be lowercase"),
            ("user/App", "uppercase", "must be lowercase"),
            ("localhost:5000/App:v1", "uppercase", "must be lowercase"),
            (&id, "id", "image ID"),
            ("busybox:", "tag", "invalid tag \"\" in reference \"busybox:\""),
            ("busybox:-x", "tag", "invalid tag \"-x\""),
            ("busybox:.x", "tag", "must start with"),
            ("busybox:a+b", "tag", "'+'"),
            ("busybox:a:b", "tag", "invalid tag \"a:b\""),
            ("busybox:ünï", "tag", "'ü'"),
            (&long_tag, "tag", "limit is 128"),
            ("busybox@", "digest", "invalid digest \"\""),
            ("busybox@sha256", "digest", "ALGORITHM:HEX"),
            ("busybox@sha256:", "digest", "ALGORITHM:HEX"),
            (&short_hex, "digest", "64 hex characters, this one has 63"),
            (&upper_hex, "digest", "lowercase"),
            (&md5, "digest", "unsupported digest algorithm \"md5\""),
            ("busybox@sha256:zz", "digest", "'z' is not a hex digit"),
            ("busybox@sha256:ab@cd", "digest", "'@'"),
            (":tag", "repository", "component \"\""),
            ("/app", "repository", "empty"),
            ("app/", "repository", "empty"),
            ("a//b", "repository", "doubled '/'"),
            ("localhost:5000/", "repository", "empty"),
            ("-app", "repository", "\"-app\""),
            ("app_", "repository", "start and end"),
            ("a..b", "repository", "separator \"..\""),
            ("a___b", "repository", "separator \"___\""),
            ("a._b", "repository", "separator \"._\""),
            ("user/a b", "repository", "' '"),
            ("user/ap!p", "repository", "'!'"),
            ("@sha256:abc", "repository", "empty"),
            (&long_path, "too long", "limit is 255"),
            ("host:/app", "registry", "invalid registry host \"host:\""),
            ("host:50x0/app", "registry", "port \"50x0\""),
            ("-bad.com/app", "registry", "\"-bad\""),
            ("bad-.com/app", "registry", "must not start or end"),
            ("a..com/app", "registry", "empty label"),
            (".com/app", "registry", "empty label"),
            ("my_host.com/app", "registry", "'_'"),
            ("[::1/app", "registry", "closed with ']'"),
            ("[]:5000/app", "registry", "not an IPv6 address"),
            ("[::g]/app", "registry", "not an IPv6 address"),
            ("[::1]x/app", "registry", "after the IPv6 address"),
            ("[::1]:/app", "registry", "port \"\""),
        ];
        for (input, expected_kind, needle) in cases {
            let err = Reference::parse(input).expect_err(input);
            let msg = err.to_string();
            assert_eq!(kind(&err), expected_kind, "{input:?}: {err:?}");
            assert!(msg.contains(needle), "{input:?}: {msg:?} lacks {needle:?}");
            if !input.is_empty() {
                assert!(
                    msg.contains(&format!("\"{input}\"")),
                    "{input:?}: {msg:?} does not quote the reference"
                );
            }
        }
    }

    #[test]
    fn name_length_counts_the_normalised_name() {
        // "docker.io/" + "library/" + 237 = 255 exactly.
        let ok = "a".repeat(255 - "docker.io/library/".len());
        assert!(Reference::parse(&ok).is_ok());
        let too_long = format!("{ok}a");
        assert!(matches!(
            Reference::parse(&too_long),
            Err(ReferenceError::NameTooLong { length: 256, .. })
        ));
    }

    #[test]
    fn insecure_by_default() {
        let insecure = [
            "localhost/a",
            "localhost:5000/a",
            "127.0.0.1/a",
            "127.0.0.1:5000/a",
            "127.1.2.3:80/a",
            "[::1]/a",
            "[::1]:5000/a",
            "[::ffff:7f00:1]:5000/a",
            "LOCALHOST:5000/a",
        ];
        for r in insecure {
            assert!(Reference::parse(r).unwrap().is_insecure_by_default(), "{r}");
        }
        let secure = [
            "busybox",
            "quay.io/a/b",
            "128.0.0.1:5000/a",
            "10.0.0.1/a",
            "[::2]:5000/a",
            "localhost.example.com/a",
            "mylocalhost:5000/a",
        ];
        for r in secure {
            assert!(
                !Reference::parse(r).unwrap().is_insecure_by_default(),
                "{r}"
            );
        }
    }

    #[test]
    fn docker_hub_detection() {
        assert!(Reference::parse("busybox").unwrap().is_docker_hub());
        assert!(
            Reference::parse("index.docker.io/a/b")
                .unwrap()
                .is_docker_hub()
        );
        assert!(
            !Reference::parse("registry-1.docker.io/a/b")
                .unwrap()
                .is_docker_hub()
        );
        assert!(!Reference::parse("localhost/a").unwrap().is_docker_hub());
    }

    #[test]
    fn with_digest_keeps_the_tag() {
        let r = Reference::parse("localhost:5000/app:v1").unwrap();
        let pinned = r.with_digest(D256).unwrap();
        assert_eq!(pinned.tag(), Some("v1"));
        assert_eq!(pinned.digest(), Some(D256));
        assert_eq!(pinned.manifest_reference(), D256);
        assert_eq!(pinned.to_string(), format!("localhost:5000/app:v1@{D256}"));
        assert_eq!(Reference::parse(&pinned.to_string()), Ok(pinned));
    }

    #[test]
    fn with_digest_rejects_bad_digests() {
        let r = Reference::parse("busybox").unwrap();
        let err = r.with_digest("sha256:abc").unwrap_err();
        assert!(matches!(err, ReferenceError::InvalidDigest { .. }));
        let msg = err.to_string();
        assert!(msg.contains("\"sha256:abc\""), "{msg}");
        assert!(msg.contains("docker.io/library/busybox:latest"), "{msg}");
    }

    #[test]
    fn with_tag_keeps_the_digest() {
        let r = Reference::parse(&format!("busybox@{D256}")).unwrap();
        assert_eq!(r.tag(), None);
        let tagged = r.with_tag("v2").unwrap();
        assert_eq!(tagged.tag(), Some("v2"));
        assert_eq!(tagged.digest(), Some(D256));
        assert_eq!(tagged.familiar(), format!("busybox:v2@{D256}"));
        let err = r.with_tag("bad tag").unwrap_err();
        assert!(matches!(err, ReferenceError::InvalidTag { .. }));
        assert!(err.to_string().contains("\"bad tag\""));
    }

    #[test]
    fn manifest_reference_prefers_the_digest() {
        let r = Reference::parse("busybox:1.36").unwrap();
        assert_eq!(r.manifest_reference(), "1.36");
        let r = Reference::parse(&format!("busybox:1.36@{D256}")).unwrap();
        assert_eq!(r.manifest_reference(), D256);
    }
}
