//! Registry credentials where the docker CLI keeps them: `config.json` and
//! `docker-credential-*` helpers.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`. For a
//! registry, a helper named in `credHelpers` wins, then the default helper in
//! `credsStore`, then the secret written inline under `auths`. Docker Hub is keyed
//! `https://index.docker.io/v1/` there; every other registry by its host (older
//! files also use `https://host/v1/` and the like, which still match).
//!
//! Writing keeps every field this module does not own (`proxies`, `psFormat`,
//! `currentContext`, ...) and replaces the file atomically, so a crash never leaves
//! a user with half a config.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The key docker uses for Docker Hub in `auths`, and the server URL it hands helpers.
const HUB_KEY: &str = "https://index.docker.io/v1/";

/// Host names that all mean Docker Hub.
const HUB_HOSTS: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// What every helper built on docker-credential-helpers prints when it has nothing.
const NOT_FOUND: &str = "credentials not found in native keychain";

/// The username helpers store an identity token under.
const TOKEN_USERNAME: &str = "<token>";

/// Helper messages can be long (a stack trace); errors keep the start.
const MAX_HELPER_MESSAGE: usize = 512;

/// How to authenticate to one registry.
///
/// `Debug` redacts passwords and tokens, so credentials can sit in structs that are
/// logged.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// No credentials: pull what is public.
    #[default]
    Anonymous,
    /// A username and a password (or a personal access token used as one).
    Basic {
        /// The account name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// An OAuth2 refresh token (`identitytoken` in `config.json`, or a helper's
    /// secret stored under the username `<token>`), exchanged at the registry's token
    /// service for access tokens.
    IdentityToken(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credentials::IdentityToken(_) => {
                f.debug_tuple("IdentityToken").field(&"<redacted>").finish()
            }
        }
    }
}

/// Why credentials could not be read or stored.
///
/// Messages name the file, the registry and the helper program, and never contain a
/// password or token.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Neither `DOCKER_CONFIG` nor `HOME` is set, so there is no file to write.
    #[error(
        "cannot store credentials for {registry}: neither DOCKER_CONFIG nor HOME is set, \
         so there is no docker config file; set one of them or pass --config"
    )]
    NoConfigFile {
        /// Registry host.
        registry: String,
    },

    /// The config file exists but could not be read.
    #[error("cannot read docker config file {}: {source}", path.display())]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The config file is not JSON.
    #[error(
        "docker config file {} is not valid JSON (line {line}, column {column}); fix or remove it",
        path.display()
    )]
    Parse {
        /// The config file.
        path: PathBuf,
        /// Line of the syntax error.
        line: usize,
        /// Column of the syntax error.
        column: usize,
    },

    /// A part of the config file has the wrong JSON type.
    #[error("docker config file {}: {field} must be {expected}", path.display())]
    Malformed {
        /// The config file.
        path: PathBuf,
        /// Where in the file, e.g. `auths["ghcr.io"].auth`.
        field: String,
        /// What it must be, e.g. `a string`.
        expected: &'static str,
    },

    /// An `auth` field is not base64 of `user:password`.
    #[error(
        "docker config file {}: the stored credentials for {registry} are malformed ({reason}); \
         log in again to replace them",
        path.display()
    )]
    InvalidAuth {
        /// Registry host.
        registry: String,
        /// The config file.
        path: PathBuf,
        /// What is wrong, without the value itself.
        reason: &'static str,
    },

    /// The configured credential helper is not installed.
    #[error(
        "credential helper {program} for {registry} is not on PATH (set by {origin} in {}); \
         install it or remove it from that file",
        path.display()
    )]
    HelperNotFound {
        /// The program, `docker-credential-NAME`.
        program: String,
        /// Registry host.
        registry: String,
        /// `credsStore` or `credHelpers`.
        origin: &'static str,
        /// The config file naming the helper.
        path: PathBuf,
    },

    /// The credential helper could not be started or talked to.
    #[error("credential helper {program} for {registry}: cannot run `{action}`: {source}")]
    HelperIo {
        /// The program, `docker-credential-NAME`.
        program: String,
        /// Registry host.
        registry: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The credential helper reported a failure.
    #[error("credential helper {program} failed to {action} credentials for {registry}: {message}")]
    HelperFailed {
        /// The program, `docker-credential-NAME`.
        program: String,
        /// Registry host.
        registry: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// What the helper printed (secrets we sent it removed), or its exit status.
        message: String,
    },

    /// The credential helper's `get` answer is not the protocol's JSON.
    #[error(
        "credential helper {program} answered `get` for {registry} with something other than \
         {{\"ServerURL\",\"Username\",\"Secret\"}} JSON (line {line}, column {column})"
    )]
    HelperOutput {
        /// The program, `docker-credential-NAME`.
        program: String,
        /// Registry host.
        registry: String,
        /// Line of the JSON error.
        line: usize,
        /// Column of the JSON error.
        column: usize,
    },

    /// The config file could not be written.
    #[error("cannot write docker config file {}: {source}", path.display())]
    Write {
        /// The file or directory being written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// docker's credential store: one `config.json` and the helpers it names.
///
/// Every call reads the file afresh, so a `login` in another shell is seen at once.
/// Helpers run as child processes with [`std::process::Command`]: synchronously,
/// because they are rare (once per registry per client) and short, and a blocking
/// call keeps the store usable from sync and async code alike.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    /// `None` when the environment names no location: reads find nothing, writes fail.
    path: Option<PathBuf>,
    /// `PATH` for finding and running helpers; the process's own when `None`.
    helper_path: Option<OsString>,
}

impl CredentialStore {
    /// The store docker uses: `$DOCKER_CONFIG/config.json`, else
    /// `$HOME/.docker/config.json`. With neither variable set, lookups find no
    /// credentials and [`store`](Self::store) fails with an error saying so.
    pub fn from_env() -> Self {
        let path = config_path(
            std::env::var_os("DOCKER_CONFIG").as_deref(),
            std::env::var_os("HOME").as_deref(),
        );
        CredentialStore {
            path,
            helper_path: None,
        }
    }

    /// The store in this exact file (docker's `--config DIR` is `DIR/config.json`).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        CredentialStore {
            path: Some(path.into()),
            helper_path: None,
        }
    }

    /// Searches `docker-credential-*` helpers in `path` (PATH syntax: directories
    /// separated by `:`) instead of the process's `PATH`, and gives it to the
    /// helper as its `PATH`. Lets tests and embedders choose helpers without
    /// changing the process environment.
    pub fn with_helper_path(mut self, path: impl Into<OsString>) -> Self {
        self.helper_path = Some(path.into());
        self
    }

    /// The config file this store reads and writes, if the environment names one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The credentials for `registry`, a host as in references (`docker.io`,
    /// `ghcr.io`, `127.0.0.1:5000`). [`Credentials::Anonymous`] when none are stored
    /// or the helper has none.
    pub fn get(&self, registry: &str) -> Result<Credentials, CredentialsError> {
        let Some(path) = &self.path else {
            return Ok(Credentials::Anonymous);
        };
        let config = load(path)?;
        let key = registry_key(registry);
        if let Some(helper) = self.helper_for(&config, path, registry, &key)? {
            match helper.get(&key)? {
                Credentials::Anonymous => {}
                found => return Ok(found),
            }
            // A helper without the secret leaves what the file has inline: usually the
            // `{}` docker writes beside a helper (anonymous), sometimes credentials
            // another tool wrote directly.
        }
        match find_auth(&config, path, &key)? {
            Some((name, entry)) => parse_entry(entry, registry, path, name),
            None => Ok(Credentials::Anonymous),
        }
    }

    /// Stores `credentials` for `registry`, as `docker login` does: in the helper
    /// when one applies (leaving `{}` under `auths`), else inline under `auths`.
    /// Storing [`Credentials::Anonymous`] is the same as [`erase`](Self::erase).
    pub fn store(&self, registry: &str, credentials: &Credentials) -> Result<(), CredentialsError> {
        let (username, secret) = match credentials {
            Credentials::Anonymous => return self.erase(registry),
            Credentials::Basic { username, password } => (username.as_str(), password.as_str()),
            Credentials::IdentityToken(token) => (TOKEN_USERNAME, token.as_str()),
        };
        let path = self.writable_path(registry)?;
        let mut config = load(path)?;
        let key = registry_key(registry);
        let entry = match self.helper_for(&config, path, registry, &key)? {
            Some(helper) => {
                helper.store(&key, username, secret)?;
                Map::new()
            }
            None => inline_entry(credentials),
        };
        let auths = auths_mut(&mut config, path)?;
        auths.insert(key, Value::Object(entry));
        save(path, &config)
    }

    /// Forgets the credentials for `registry`, as `docker logout` does: erases them
    /// from the helper when one applies, and removes the `auths` entries for that
    /// registry, including older spellings of its key (`https://host`, ...). Erasing
    /// what is not stored succeeds; an absent file is not created.
    pub fn erase(&self, registry: &str) -> Result<(), CredentialsError> {
        let path = self.writable_path(registry)?;
        let mut config = load(path)?;
        let key = registry_key(registry);
        // A helper that fails (or is gone) must not keep the file's entries alive:
        // they are removed first and the helper's error is reported after.
        let helper_result = match self.helper_for(&config, path, registry, &key)? {
            Some(helper) => helper.erase(&key),
            None => Ok(()),
        };
        let auths = auths_mut(&mut config, path)?;
        let stale: Vec<String> = auths
            .keys()
            .filter(|k| registry_key(k) == key)
            .cloned()
            .collect();
        if !stale.is_empty() {
            for k in &stale {
                auths.remove(k);
            }
            save(path, &config)?;
        }
        helper_result
    }

    fn writable_path(&self, registry: &str) -> Result<&Path, CredentialsError> {
        self.path
            .as_deref()
            .ok_or_else(|| CredentialsError::NoConfigFile {
                registry: registry.to_string(),
            })
    }

    /// The helper that holds `registry`'s secret, if the file names one.
    fn helper_for<'a>(
        &'a self,
        config: &'a Map<String, Value>,
        path: &'a Path,
        registry: &'a str,
        key: &str,
    ) -> Result<Option<Helper<'a>>, CredentialsError> {
        let helper = |name: String, origin| Helper {
            program: format!("docker-credential-{name}"),
            origin,
            registry,
            path,
            search_path: self.helper_path.as_deref(),
        };
        if let Some(helpers) = config.get("credHelpers") {
            let helpers = helpers
                .as_object()
                .ok_or_else(|| malformed(path, "credHelpers", "an object"))?;
            // docker matches the key exactly; older and hand-written files also
            // spell it as a URL or (for Hub) `docker.io`, which mean the same.
            let exact = helpers.get(key).or_else(|| helpers.get(registry));
            let found = exact.or_else(|| {
                helpers
                    .iter()
                    .find(|(k, _)| registry_key(k) == key)
                    .map(|(_, v)| v)
            });
            if let Some(name) = found {
                let name = name
                    .as_str()
                    .ok_or_else(|| malformed(path, &format!("credHelpers[{key:?}]"), "a string"))?;
                if !name.is_empty() {
                    return Ok(Some(helper(name.to_string(), "credHelpers")));
                }
            }
        }
        match config.get("credsStore") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(name)) if name.is_empty() => Ok(None),
            Some(Value::String(name)) => Ok(Some(helper(name.clone(), "credsStore"))),
            Some(_) => Err(malformed(path, "credsStore", "a string")),
        }
    }
}

/// Where docker looks for its config file; an empty `DOCKER_CONFIG` counts as unset.
fn config_path(docker_config: Option<&OsStr>, home: Option<&OsStr>) -> Option<PathBuf> {
    match (docker_config, home) {
        (Some(dir), _) if !dir.is_empty() => Some(Path::new(dir).join("config.json")),
        (_, Some(home)) if !home.is_empty() => Some(Path::new(home).join(".docker/config.json")),
        _ => None,
    }
}

/// The registry host a user means by what they typed after `login`/`logout`:
/// `https://host:5000/v1/` and `host:5000` give `host:5000`; every spelling of
/// Docker Hub (`index.docker.io`, `registry-1.docker.io`, its `/v1/` URL) gives
/// `docker.io`, the name references use.
pub fn normalize_registry(input: &str) -> String {
    let host = convert_to_hostname(input.trim());
    if HUB_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        "docker.io".to_string()
    } else {
        host.to_string()
    }
}

/// The `auths` key and helper server URL for a registry: Hub's fixed URL, else the
/// host (with port) as docker's `ConvertToHostname` gives it.
fn registry_key(registry: &str) -> String {
    match normalize_registry(registry) {
        hub if hub == "docker.io" => HUB_KEY.to_string(),
        host => host,
    }
}

/// docker's `ConvertToHostname`: `https://host:port/v1/` and `host/path` both give
/// `host:port`. Parsed by hand rather than with `url`, which would drop default
/// ports and lowercase hosts where docker keeps them.
fn convert_to_hostname(key: &str) -> &str {
    if let Some((_, rest)) = key.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if !host.is_empty() {
            return host;
        }
    }
    key.split('/').next().unwrap_or_default()
}

/// The `auths` entry for `key`: the exact key first, as docker, then any older
/// spelling of the same registry (in the file's sorted key order, so the choice
/// is stable).
fn find_auth<'a>(
    config: &'a Map<String, Value>,
    path: &Path,
    key: &str,
) -> Result<Option<(&'a str, &'a Value)>, CredentialsError> {
    let Some(auths) = config.get("auths") else {
        return Ok(None);
    };
    let auths = auths
        .as_object()
        .ok_or_else(|| malformed(path, "auths", "an object"))?;
    if let Some((k, v)) = auths.get_key_value(key) {
        return Ok(Some((k.as_str(), v)));
    }
    Ok(auths
        .iter()
        .find(|(k, _)| registry_key(k) == key)
        .map(|(k, v)| (k.as_str(), v)))
}

/// Reads one `auths` entry. An identity token wins over a password, as in docker's
/// token flow; `auth` (base64 `user:password`) wins over `username`/`password`.
fn parse_entry(
    entry: &Value,
    registry: &str,
    path: &Path,
    name: &str,
) -> Result<Credentials, CredentialsError> {
    let field = |field: &str| -> Result<&str, CredentialsError> {
        match entry.get(field) {
            None | Some(Value::Null) => Ok(""),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(malformed(
                path,
                &format!("auths[{name:?}].{field}"),
                "a string",
            )),
        }
    };
    if !entry.is_object() {
        return Err(malformed(path, &format!("auths[{name:?}]"), "an object"));
    }
    let token = field("identitytoken")?;
    if !token.is_empty() {
        return Ok(Credentials::IdentityToken(token.to_string()));
    }
    let auth = field("auth")?;
    if !auth.is_empty() {
        let (username, password) =
            decode_auth(auth).map_err(|reason| CredentialsError::InvalidAuth {
                registry: registry.to_string(),
                path: path.to_path_buf(),
                reason,
            })?;
        return Ok(Credentials::Basic { username, password });
    }
    let (username, password) = (field("username")?, field("password")?);
    if username.is_empty() && password.is_empty() {
        return Ok(Credentials::Anonymous);
    }
    Ok(Credentials::Basic {
        username: username.to_string(),
        password: password.to_string(),
    })
}

/// base64 `user:password`. Padding is optional because some tools omit it; docker
/// also trims NULs some old writers left after the password.
fn decode_auth(auth: &str) -> Result<(String, String), &'static str> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let bytes = LENIENT
        .decode(auth.trim())
        .map_err(|_| "the `auth` field is not valid base64")?;
    let text = String::from_utf8(bytes).map_err(|_| "the `auth` field does not decode to text")?;
    let (user, password) = text
        .split_once(':')
        .ok_or("the `auth` field does not decode to user:password")?;
    Ok((user.to_string(), password.trim_matches('\0').to_string()))
}

/// The inline `auths` entry docker writes without a helper.
fn inline_entry(credentials: &Credentials) -> Map<String, Value> {
    let mut entry = Map::new();
    match credentials {
        Credentials::Anonymous => {}
        Credentials::Basic { username, password } => {
            let auth =
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            entry.insert("auth".into(), Value::String(auth));
        }
        Credentials::IdentityToken(token) => {
            entry.insert("identitytoken".into(), Value::String(token.clone()));
        }
    }
    entry
}

fn malformed(path: &Path, field: &str, expected: &'static str) -> CredentialsError {
    CredentialsError::Malformed {
        path: path.to_path_buf(),
        field: field.to_string(),
        expected,
    }
}

/// The file as a JSON object. Absent or empty means no configuration, as in docker.
fn load(path: &Path) -> Result<Map<String, Value>, CredentialsError> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(source) => {
            return Err(CredentialsError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    // Only the position of a syntax error is reported: serde's message can quote
    // the file's text, which may be a secret.
    let value: Value = serde_json::from_slice(&text).map_err(|e| CredentialsError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
    })?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(malformed(path, "the top level", "a JSON object")),
    }
}

fn auths_mut<'a>(
    config: &'a mut Map<String, Value>,
    path: &Path,
) -> Result<&'a mut Map<String, Value>, CredentialsError> {
    config
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| malformed(path, "auths", "an object"))
}

/// Replaces the file atomically (temp file, fsync, rename) the way docker's
/// `ConfigFile.Save` does: through a symlinked config.json to its target, keeping an
/// existing file's mode and owner (so `sudo` does not steal a user's file), and
/// creating a new directory 0700 and a new file 0600.
fn save(path: &Path, config: &Map<String, Value>) -> Result<(), CredentialsError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CredentialsError::Write { path, source }
    };
    let target = resolve_symlinks(path).map_err(write_err(path))?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(write_err(&dir))?;

    // docker indents with tabs; matching it keeps diffs of the file small.
    let mut text = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut text, formatter);
    serde::Serialize::serialize(config, &mut ser).map_err(|e| CredentialsError::Write {
        path: target.clone(),
        source: e.into(),
    })?;

    let existing = fs::metadata(&target).ok();
    let temp = temp_name(&dir, &target);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        if let Some(meta) = &existing {
            file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            // Best effort, as docker: only root can give the file away.
            let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
        }
        file.write_all(&text)?;
        file.sync_all()?;
        fs::rename(&temp, &target)?;
        // Best effort: some filesystems refuse to fsync a directory.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result.map_err(write_err(&target))
}

/// Follows symlinks at the last component, also to a target that does not exist yet.
fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(parent) if link.is_relative() => parent.join(link),
                    _ => link,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "too many levels of symbolic links at {}",
        path.display()
    )))
}

fn temp_name(dir: &Path, target: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let base = target.file_name().map(|n| n.to_string_lossy().into_owned());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dir.join(format!(
        ".{}.tmp-{}-{n}",
        base.as_deref().unwrap_or("config.json"),
        std::process::id()
    ))
}

/// A `docker-credential-NAME` program and the protocol spoken with it.
struct Helper<'a> {
    program: String,
    origin: &'static str,
    registry: &'a str,
    path: &'a Path,
    search_path: Option<&'a OsStr>,
}

/// A helper's `get` answer; `ServerURL` is not needed.
#[derive(Deserialize)]
struct HelperCredentials {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// How a helper call ended when it did not fail.
enum Reply {
    Output(Vec<u8>),
    NotFound,
}

impl Helper<'_> {
    fn get(&self, server_url: &str) -> Result<Credentials, CredentialsError> {
        let out = match self.run("get", server_url.as_bytes(), &[])? {
            Reply::Output(out) => out,
            Reply::NotFound => return Ok(Credentials::Anonymous),
        };
        if out.iter().all(u8::is_ascii_whitespace) {
            return Ok(Credentials::Anonymous);
        }
        // The output holds the secret: report only where it went wrong.
        let creds: HelperCredentials =
            serde_json::from_slice(&out).map_err(|e| CredentialsError::HelperOutput {
                program: self.program.clone(),
                registry: self.registry.to_string(),
                line: e.line(),
                column: e.column(),
            })?;
        Ok(match (creds.username.as_str(), creds.secret) {
            (_, secret) if secret.is_empty() => Credentials::Anonymous,
            (TOKEN_USERNAME, secret) => Credentials::IdentityToken(secret),
            (_, password) => Credentials::Basic {
                username: creds.username,
                password,
            },
        })
    }

    fn store(
        &self,
        server_url: &str,
        username: &str,
        secret: &str,
    ) -> Result<(), CredentialsError> {
        let input =
            serde_json::json!({ "ServerURL": server_url, "Username": username, "Secret": secret });
        // A helper echoing its input would show the secret JSON-escaped.
        let escaped = Value::String(secret.to_string()).to_string();
        let escaped = &escaped[1..escaped.len() - 1];
        match self.run("store", input.to_string().as_bytes(), &[secret, escaped])? {
            Reply::Output(_) => Ok(()),
            Reply::NotFound => Err(self.failed("store", NOT_FOUND.to_string())),
        }
    }

    /// Erasing what the helper does not hold is success: logout is idempotent.
    fn erase(&self, server_url: &str) -> Result<(), CredentialsError> {
        self.run("erase", server_url.as_bytes(), &[]).map(|_| ())
    }

    /// Runs `PROGRAM action` with `input` on stdin. `secrets` are scrubbed from any
    /// message the helper prints, should it echo its input.
    fn run(
        &self,
        action: &'static str,
        input: &[u8],
        secrets: &[&str],
    ) -> Result<Reply, CredentialsError> {
        let mut cmd = Command::new(&self.program);
        cmd.arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(search_path) = self.search_path {
            // std looks the program up in the PATH given to the child.
            cmd.env("PATH", search_path);
        }
        let mut child = cmd.spawn().map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => CredentialsError::HelperNotFound {
                program: self.program.clone(),
                registry: self.registry.to_string(),
                origin: self.origin,
                path: self.path.to_path_buf(),
            },
            _ => self.io_error(action, source),
        })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // Feed stdin from another thread so a helper that writes before it reads
        // cannot deadlock us; a helper that exits without reading is not an error.
        let output = std::thread::scope(|s| {
            s.spawn(move || {
                let _ = stdin.write_all(input);
            });
            child.wait_with_output()
        })
        .map_err(|source| self.io_error(action, source))?;
        if output.status.success() {
            return Ok(Reply::Output(output.stdout));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stdout.contains(NOT_FOUND) || stderr.contains(NOT_FOUND) {
            return Ok(Reply::NotFound);
        }
        let mut message = [stdout.trim(), stderr.trim()]
            .into_iter()
            .filter(|m| !m.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            message = message.replace(secret, "<redacted>");
        }
        if message.is_empty() {
            message = format!("it exited with {}", output.status);
        } else if message.len() > MAX_HELPER_MESSAGE {
            let mut end = MAX_HELPER_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        Err(self.failed(action, message))
    }

    fn failed(&self, action: &'static str, message: String) -> CredentialsError {
        CredentialsError::HelperFailed {
            program: self.program.clone(),
            registry: self.registry.to_string(),
            action,
            message,
        }
    }

    fn io_error(&self, action: &'static str, source: io::Error) -> CredentialsError {
        CredentialsError::HelperIo {
            program: self.program.clone(),
            registry: self.registry.to_string(),
            action,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_location_follows_docker() {
        let p =
            |d: Option<&str>, h: Option<&str>| config_path(d.map(OsStr::new), h.map(OsStr::new));
        assert_eq!(
            p(Some("/cfg"), Some("/home/u")),
            Some(PathBuf::from("/cfg/config.json"))
        );
        assert_eq!(
            p(Some(""), Some("/home/u")),
            Some(PathBuf::from("/home/u/.docker/config.json"))
        );
        assert_eq!(
            p(None, Some("/home/u")),
            Some(PathBuf::from("/home/u/.docker/config.json"))
        );
        assert_eq!(p(None, None), None);
        assert_eq!(p(Some(""), Some("")), None);
    }

    #[test]
    fn hostname_conversion_matches_docker() {
        for (input, want) in [
            ("ghcr.io", "ghcr.io"),
            ("ghcr.io/", "ghcr.io"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("http://127.0.0.1:5000", "127.0.0.1:5000"),
            ("https://127.0.0.1:5000/", "127.0.0.1:5000"),
            ("https://quay.io/v1/", "quay.io"),
            ("https://user@quay.io/v2", "quay.io"),
            ("quay.io/v1/", "quay.io"),
            ("https://index.docker.io/v1/", "index.docker.io"),
            ("https://[::1]:5000/v2/", "[::1]:5000"),
        ] {
            assert_eq!(convert_to_hostname(input), want, "{input}");
        }
    }

    #[test]
    fn hub_spellings_share_one_key() {
        for name in [
            "docker.io",
            "index.docker.io",
            "registry-1.docker.io",
            HUB_KEY,
            "https://index.docker.io/v1",
        ] {
            assert_eq!(registry_key(name), HUB_KEY, "{name}");
        }
        assert_eq!(registry_key("ghcr.io"), "ghcr.io");
        assert_eq!(registry_key("https://ghcr.io/"), "ghcr.io");
    }

    #[test]
    fn auth_decoding() {
        assert_eq!(
            decode_auth("dXNlcjpwYXNz"),
            Ok(("user".into(), "pass".into()))
        );
        // Unpadded, and a password holding colons.
        assert_eq!(decode_auth("dTpwOnE"), Ok(("u".into(), "p:q".into())));
        assert!(decode_auth("not base64!").is_err());
        assert!(decode_auth("bm9jb2xvbg==").is_err()); // "nocolon"
    }
}

#[cfg(test)]
mod normalize_tests {
    use super::normalize_registry;

    #[test]
    fn login_arguments_normalise_like_docker() {
        assert_eq!(
            normalize_registry("https://index.docker.io/v1/"),
            "docker.io"
        );
        assert_eq!(normalize_registry("registry-1.docker.io"), "docker.io");
        assert_eq!(normalize_registry("docker.io"), "docker.io");
        assert_eq!(
            normalize_registry("http://127.0.0.1:5101"),
            "127.0.0.1:5101"
        );
        assert_eq!(normalize_registry("127.0.0.1:5101/"), "127.0.0.1:5101");
        assert_eq!(normalize_registry("ghcr.io"), "ghcr.io");
    }
}
