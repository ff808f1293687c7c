//! docker's credential store against real config files and a real
//! `docker-credential-*` helper (a shell script in a temp dir).

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use basic_registry::{CredentialStore, Credentials, CredentialsError};
use serde_json::{Value, json};
use tempfile::TempDir;

const HUB_KEY: &str = "https://index.docker.io/v1/";

/// A helper speaking the docker-credential-helpers protocol, keeping each secret in
/// a file named after the hex of its server URL, and logging every call.
const BASICTEST_HELPER: &str = r#"#!/bin/sh
set -u
here=$(dirname "$0")
mkdir -p "$here/secrets"
input=$(cat)
case "$1" in
  get|erase) url=$input ;;
  store) url=$(printf '%s' "$input" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p') ;;
  *) exit 0 ;;
esac
echo "$1 $url" >> "$here/calls.log"
file="$here/secrets/$(printf '%s' "$url" | od -An -tx1 | tr -d ' \n')"
case "$1" in
  get)
    if [ -f "$file" ]; then cat "$file"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store)
    printf '%s' "$input" > "$file" ;;
  erase)
    if [ -f "$file" ]; then rm -f "$file"; else echo "credentials not found in native keychain"; exit 1; fi ;;
esac
"#;

/// A helper that fails and, carelessly, echoes what it was sent.
const BROKEN_HELPER: &str = r#"#!/bin/sh
input=$(cat)
case "$1" in
  store|get|erase) echo "keychain is locked; got $input" >&2; exit 3 ;;
esac
"#;

/// A temp dir holding `config.json` and, when asked, helper scripts.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Self {
        Setup {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn with_config(config: Value) -> Self {
        let s = Self::new();
        s.write_config(&config.to_string());
        s
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }

    fn write_config(&self, text: &str) {
        fs::write(self.config_path(), text).unwrap();
    }

    fn config(&self) -> Value {
        serde_json::from_slice(&fs::read(self.config_path()).unwrap()).unwrap()
    }

    fn helper_dir(&self) -> PathBuf {
        self.dir.path().join("bin")
    }

    /// Installs `docker-credential-NAME` with `script` in this setup's helper dir.
    fn install_helper(&self, name: &str, script: &str) {
        let dir = self.helper_dir();
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("docker-credential-{name}"));
        fs::write(&path, script).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        wait_until_executable(&path);
    }

    /// The store, finding helpers in this setup's helper dir first and the usual
    /// tools (`sed`, `od`) after it.
    fn store(&self) -> CredentialStore {
        let mut dirs = vec![self.helper_dir()];
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path: OsString = std::env::join_paths(dirs).unwrap();
        CredentialStore::at(self.config_path()).with_helper_path(path)
    }

    fn helper_calls(&self) -> Vec<String> {
        fs::read_to_string(self.helper_dir().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// Tests run in parallel: a child forked by another test between our write and its
/// exec can briefly hold the script open for writing, and exec then fails with
/// ETXTBSY. Once one exec succeeds no writer is left.
fn wait_until_executable(path: &Path) {
    for _ in 0..200 {
        match Command::new(path)
            .arg("probe")
            .stdin(Stdio::null())
            .status()
        {
            Ok(_) => return,
            Err(e) if e.raw_os_error() == Some(26) => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            Err(e) => panic!("cannot run {}: {e}", path.display()),
        }
    }
    panic!("{} stayed busy", path.display());
}

fn basic(username: &str, password: &str) -> Credentials {
    Credentials::Basic {
        username: username.into(),
        password: password.into(),
    }
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

// ---- lookups in config.json ----

#[test]
fn every_key_spelling_docker_accepts_is_found() {
    for (key, registry) in [
        ("ghcr.io", "ghcr.io"),
        ("ghcr.io/", "ghcr.io"),
        ("https://ghcr.io", "ghcr.io"),
        ("https://ghcr.io/", "ghcr.io"),
        ("http://ghcr.io", "ghcr.io"),
        ("https://ghcr.io/v1/", "ghcr.io"),
        ("https://ghcr.io/v2/", "ghcr.io"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("http://127.0.0.1:5000", "127.0.0.1:5000"),
        ("https://127.0.0.1:5000/", "127.0.0.1:5000"),
        ("https://127.0.0.1:5000/v1/", "127.0.0.1:5000"),
        (HUB_KEY, "docker.io"),
        (HUB_KEY, "index.docker.io"),
        (HUB_KEY, "registry-1.docker.io"),
        ("https://index.docker.io/v1", "docker.io"),
        ("docker.io", "docker.io"),
    ] {
        let s = Setup::with_config(json!({ "auths": { key: { "auth": b64("alice:s3cret") } } }));
        let got = s.store().get(registry).unwrap();
        assert_eq!(
            got,
            basic("alice", "s3cret"),
            "key {key:?}, registry {registry}"
        );
    }
}

#[test]
fn a_key_for_another_host_or_port_does_not_match() {
    let s = Setup::with_config(json!({ "auths": {
        "127.0.0.1:5001": { "auth": b64("a:b") },
        "https://ghcr.io.evil.example/": { "auth": b64("a:b") },
        "example.com/ghcr.io": { "auth": b64("a:b") },
    }}));
    let store = s.store();
    for registry in ["127.0.0.1:5000", "ghcr.io", "docker.io"] {
        assert_eq!(
            store.get(registry).unwrap(),
            Credentials::Anonymous,
            "{registry}"
        );
    }
}

#[test]
fn the_exact_key_wins_over_older_spellings() {
    let s = Setup::with_config(json!({ "auths": {
        "https://quay.io/v1/": { "auth": b64("old:legacy") },
        "quay.io": { "auth": b64("new:current") },
    }}));
    assert_eq!(s.store().get("quay.io").unwrap(), basic("new", "current"));
}

#[test]
fn entry_forms() {
    let s = Setup::with_config(json!({ "auths": {
        "fields.example": { "username": "bob", "password": "pw" },
        "token.example": { "auth": b64("bob:"), "identitytoken": "refresh-me" },
        "empty.example": {},
        "colons.example": { "auth": b64("carol:pa:ss:word") },
        "both.example": { "auth": b64("from:auth"), "username": "from", "password": "fields" },
    }}));
    let store = s.store();
    assert_eq!(store.get("fields.example").unwrap(), basic("bob", "pw"));
    assert_eq!(
        store.get("token.example").unwrap(),
        Credentials::IdentityToken("refresh-me".into())
    );
    assert_eq!(store.get("empty.example").unwrap(), Credentials::Anonymous);
    assert_eq!(
        store.get("colons.example").unwrap(),
        basic("carol", "pa:ss:word")
    );
    assert_eq!(store.get("both.example").unwrap(), basic("from", "auth"));
    assert_eq!(store.get("absent.example").unwrap(), Credentials::Anonymous);
}

#[test]
fn missing_or_empty_file_means_no_credentials() {
    let s = Setup::new();
    assert_eq!(s.store().get("docker.io").unwrap(), Credentials::Anonymous);
    s.write_config("");
    assert_eq!(s.store().get("docker.io").unwrap(), Credentials::Anonymous);
    s.write_config("{}");
    assert_eq!(s.store().get("docker.io").unwrap(), Credentials::Anonymous);
}

#[test]
fn malformed_auth_names_registry_and_file_but_not_the_value() {
    for auth in ["%%%not-base64%%%", &b64("no-colon-here")] {
        let s = Setup::with_config(json!({ "auths": { "ghcr.io": { "auth": auth } } }));
        let err = s.store().get("ghcr.io").unwrap_err();
        assert!(
            matches!(err, CredentialsError::InvalidAuth { .. }),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains("ghcr.io"), "{msg}");
        assert!(
            msg.contains(&s.config_path().display().to_string()),
            "{msg}"
        );
        assert!(
            !msg.contains(auth) && !msg.contains("no-colon-here"),
            "{msg}"
        );
    }
}

#[test]
fn invalid_json_names_the_file_without_quoting_it() {
    let s = Setup::new();
    s.write_config(r#"{"auths": {"ghcr.io": {"auth": "topsecret"}"#);
    let err = s.store().get("ghcr.io").unwrap_err();
    assert!(matches!(err, CredentialsError::Parse { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&s.config_path().display().to_string()),
        "{msg}"
    );
    assert!(!msg.contains("topsecret"), "{msg}");

    let s = Setup::with_config(json!({ "auths": { "ghcr.io": { "auth": 42 } } }));
    let msg = s.store().get("ghcr.io").unwrap_err().to_string();
    assert!(msg.contains("auths[\"ghcr.io\"].auth"), "{msg}");
}

// ---- writing config.json ----

#[test]
fn plain_round_trip_store_get_erase() {
    let s = Setup::new();
    let store = s.store();
    store
        .store("127.0.0.1:5000", &basic("alice", "pa:ss"))
        .unwrap();
    assert_eq!(
        s.config()["auths"]["127.0.0.1:5000"],
        json!({ "auth": b64("alice:pa:ss") })
    );
    assert_eq!(
        store.get("127.0.0.1:5000").unwrap(),
        basic("alice", "pa:ss")
    );

    store
        .store("docker.io", &basic("hubuser", "hubpass"))
        .unwrap();
    assert_eq!(
        s.config()["auths"][HUB_KEY],
        json!({ "auth": b64("hubuser:hubpass") })
    );
    assert_eq!(
        store.get("index.docker.io").unwrap(),
        basic("hubuser", "hubpass")
    );

    store.erase("127.0.0.1:5000").unwrap();
    assert_eq!(store.get("127.0.0.1:5000").unwrap(), Credentials::Anonymous);
    assert_eq!(store.get("docker.io").unwrap(), basic("hubuser", "hubpass"));
    store.erase("docker.io").unwrap();
    assert_eq!(store.get("docker.io").unwrap(), Credentials::Anonymous);
    // Logging out twice is fine.
    store.erase("docker.io").unwrap();
}

#[test]
fn identity_token_round_trip() {
    let s = Setup::new();
    let store = s.store();
    let token = Credentials::IdentityToken("refresh-token".into());
    store.store("ghcr.io", &token).unwrap();
    assert_eq!(
        s.config()["auths"]["ghcr.io"],
        json!({ "identitytoken": "refresh-token" })
    );
    assert_eq!(store.get("ghcr.io").unwrap(), token);
}

#[test]
fn storing_anonymous_logs_out() {
    let s = Setup::with_config(json!({ "auths": { "ghcr.io": { "auth": b64("a:b") } } }));
    s.store().store("ghcr.io", &Credentials::Anonymous).unwrap();
    assert_eq!(s.config()["auths"], json!({}));
}

#[test]
fn erase_removes_every_spelling_of_the_registry() {
    let s = Setup::with_config(json!({ "auths": {
        "quay.io": { "auth": b64("a:b") },
        "https://quay.io/v1/": { "auth": b64("a:b") },
        "http://quay.io": { "auth": b64("a:b") },
        "quay.io:8443": { "auth": b64("keep:me") },
    }}));
    s.store().erase("quay.io").unwrap();
    assert_eq!(
        s.config()["auths"],
        json!({ "quay.io:8443": { "auth": b64("keep:me") } })
    );
}

#[test]
fn erase_without_a_file_creates_none() {
    let s = Setup::new();
    s.store().erase("ghcr.io").unwrap();
    assert!(!s.config_path().exists());
}

#[test]
fn writing_keeps_every_other_field() {
    let original = json!({
        "auths": {
            "other.example": { "auth": b64("x:y"), "email": "x@example.com" },
        },
        "proxies": { "default": { "httpProxy": "http://proxy:3128", "noProxy": "*.local" } },
        "psFormat": "table {{.ID}}\t{{.Names}}",
        "currentContext": "rootless",
        "detachKeys": "ctrl-e,e",
        "plugins": { "buildx": { "enabled": true } },
        "aliases": { "builder": "buildx" },
        "experimental": "enabled",
        "numbers": [1, 2.5, -3],
    });
    let s = Setup::with_config(original.clone());
    let store = s.store();
    store.store("ghcr.io", &basic("u", "p")).unwrap();
    let mut expected = original.clone();
    expected["auths"]["ghcr.io"] = json!({ "auth": b64("u:p") });
    assert_eq!(s.config(), expected);

    store.erase("ghcr.io").unwrap();
    assert_eq!(s.config(), original);
}

#[test]
fn new_directory_is_0700_and_new_file_0600() {
    let s = Setup::new();
    let dir = s.dir.path().join("nested/.docker");
    let path = dir.join("config.json");
    CredentialStore::at(&path)
        .store("ghcr.io", &basic("u", "p"))
        .unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&path), 0o600);
    // Nothing is left behind by the atomic write.
    let names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![OsString::from("config.json")]);
}

#[test]
fn an_existing_files_mode_is_kept_as_docker_does() {
    let s = Setup::with_config(json!({}));
    fs::set_permissions(s.config_path(), fs::Permissions::from_mode(0o640)).unwrap();
    s.store().store("ghcr.io", &basic("u", "p")).unwrap();
    let mode = fs::metadata(s.config_path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

#[test]
fn a_symlinked_config_stays_a_symlink() {
    let s = Setup::new();
    let real = s.dir.path().join("dotfiles/docker-config.json");
    fs::create_dir_all(real.parent().unwrap()).unwrap();
    fs::write(&real, r#"{"psFormat":"x"}"#).unwrap();
    std::os::unix::fs::symlink("dotfiles/docker-config.json", s.config_path()).unwrap();
    s.store().store("ghcr.io", &basic("u", "p")).unwrap();
    assert!(
        fs::symlink_metadata(s.config_path())
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let written: Value = serde_json::from_slice(&fs::read(&real).unwrap()).unwrap();
    assert_eq!(written["psFormat"], "x");
    assert_eq!(s.store().get("ghcr.io").unwrap(), basic("u", "p"));
}

// ---- credential helpers ----

#[test]
fn helper_round_trip_through_creds_store() {
    let s = Setup::with_config(json!({ "credsStore": "basictest", "psFormat": "keep" }));
    s.install_helper("basictest", BASICTEST_HELPER);
    let store = s.store();

    // Nothing stored yet: the helper's "not found" is anonymous, not an error.
    assert_eq!(store.get("ghcr.io").unwrap(), Credentials::Anonymous);

    store
        .store("ghcr.io", &basic("alice", r#"p"a\ss"#))
        .unwrap();
    // As docker: the secret lives in the helper, `auths` only remembers the login.
    assert_eq!(s.config()["auths"], json!({ "ghcr.io": {} }));
    assert_eq!(s.config()["psFormat"], "keep");
    assert_eq!(store.get("ghcr.io").unwrap(), basic("alice", r#"p"a\ss"#));

    store.erase("ghcr.io").unwrap();
    assert_eq!(s.config()["auths"], json!({}));
    assert_eq!(store.get("ghcr.io").unwrap(), Credentials::Anonymous);
    // Erasing again: the helper has nothing, which is fine.
    store.erase("ghcr.io").unwrap();

    assert_eq!(
        s.helper_calls(),
        [
            "get ghcr.io",
            "store ghcr.io",
            "get ghcr.io",
            "erase ghcr.io",
            "get ghcr.io",
            "erase ghcr.io"
        ]
    );
}

#[test]
fn helper_gets_docker_hubs_server_url() {
    let s = Setup::with_config(json!({ "credsStore": "basictest" }));
    s.install_helper("basictest", BASICTEST_HELPER);
    let store = s.store();
    store.store("docker.io", &basic("hub", "pw")).unwrap();
    assert_eq!(
        store.get("registry-1.docker.io").unwrap(),
        basic("hub", "pw")
    );
    assert_eq!(s.config()["auths"], json!({ HUB_KEY: {} }));
    assert_eq!(
        s.helper_calls(),
        [format!("store {HUB_KEY}"), format!("get {HUB_KEY}")]
    );
}

#[test]
fn helper_identity_token_uses_the_token_username() {
    let s = Setup::with_config(json!({ "credsStore": "basictest" }));
    s.install_helper("basictest", BASICTEST_HELPER);
    let store = s.store();
    let token = Credentials::IdentityToken("oauth-refresh".into());
    store.store("ghcr.io", &token).unwrap();
    let stored = fs::read_dir(s.helper_dir().join("secrets"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let stored: Value = serde_json::from_slice(&fs::read(stored.path()).unwrap()).unwrap();
    assert_eq!(
        stored,
        json!({ "ServerURL": "ghcr.io", "Username": "<token>", "Secret": "oauth-refresh" })
    );
    assert_eq!(store.get("ghcr.io").unwrap(), token);
}

#[test]
fn cred_helpers_win_over_creds_store_and_auths() {
    let s = Setup::with_config(json!({
        "credsStore": "absent",
        "credHelpers": { "ghcr.io": "basictest" },
        "auths": { "ghcr.io": { "auth": b64("inline:creds") } },
    }));
    s.install_helper("basictest", BASICTEST_HELPER);
    let store = s.store();
    store.store("ghcr.io", &basic("from", "helper")).unwrap();
    assert_eq!(store.get("ghcr.io").unwrap(), basic("from", "helper"));
    // The inline secret was replaced by docker's empty marker.
    assert_eq!(s.config()["auths"]["ghcr.io"], json!({}));
    assert_eq!(s.helper_calls(), ["store ghcr.io", "get ghcr.io"]);
}

#[test]
fn cred_helpers_keys_may_be_spelled_as_urls() {
    let s = Setup::with_config(json!({ "credHelpers": { "https://ghcr.io": "basictest" } }));
    s.install_helper("basictest", BASICTEST_HELPER);
    let store = s.store();
    store.store("ghcr.io", &basic("u", "p")).unwrap();
    assert_eq!(store.get("ghcr.io").unwrap(), basic("u", "p"));
    assert_eq!(s.helper_calls(), ["store ghcr.io", "get ghcr.io"]);
}

#[test]
fn inline_credentials_are_used_when_the_helper_has_none() {
    let s = Setup::with_config(json!({
        "credsStore": "basictest",
        "auths": { "ghcr.io": { "auth": b64("written:by-ci") }, "quay.io": {} },
    }));
    s.install_helper("basictest", BASICTEST_HELPER);
    let store = s.store();
    assert_eq!(store.get("ghcr.io").unwrap(), basic("written", "by-ci"));
    // `{}` means "in the store", which has nothing.
    assert_eq!(store.get("quay.io").unwrap(), Credentials::Anonymous);
}

#[test]
fn a_missing_helper_is_an_error_naming_program_and_path() {
    let s = Setup::with_config(json!({ "credsStore": "desktop" }));
    // An empty helper dir as the whole PATH: nothing can be found.
    fs::create_dir_all(s.helper_dir()).unwrap();
    let store = CredentialStore::at(s.config_path()).with_helper_path(s.helper_dir());
    let err = store.get("ghcr.io").unwrap_err();
    assert!(
        matches!(err, CredentialsError::HelperNotFound { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("docker-credential-desktop"), "{msg}");
    assert!(msg.contains("not on PATH"), "{msg}");
    assert!(msg.contains("credsStore"), "{msg}");
    assert!(
        msg.contains(&s.config_path().display().to_string()),
        "{msg}"
    );

    let err = store.store("ghcr.io", &basic("u", "p")).unwrap_err();
    assert!(
        matches!(err, CredentialsError::HelperNotFound { .. }),
        "{err:?}"
    );
    // Nothing was written when the helper could not take the secret.
    assert_eq!(s.config(), json!({ "credsStore": "desktop" }));
}

#[test]
fn a_failing_helper_reports_its_message_without_the_secret() {
    let s = Setup::with_config(json!({ "credsStore": "broken" }));
    s.install_helper("broken", BROKEN_HELPER);
    let store = s.store();
    let err = store
        .store("ghcr.io", &basic("u", r#"hunter"2"#))
        .unwrap_err();
    assert!(
        matches!(err, CredentialsError::HelperFailed { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("docker-credential-broken"), "{msg}");
    assert!(msg.contains("keychain is locked"), "{msg}");
    assert!(!msg.contains("hunter"), "{msg}");
    assert!(!format!("{err:?}").contains("hunter"), "{err:?}");

    let err = store.get("ghcr.io").unwrap_err();
    assert!(err.to_string().contains("failed to get"), "{err}");
}

// ---- secrets never print ----

#[test]
fn debug_redacts_secrets() {
    let creds = basic("alice", "correct-horse-battery-staple");
    let shown = format!("{creds:?}");
    assert!(shown.contains("alice"), "{shown}");
    assert!(!shown.contains("correct-horse"), "{shown}");
    let shown = format!("{:#?}", Credentials::IdentityToken("refresh-secret".into()));
    assert!(!shown.contains("refresh-secret"), "{shown}");
    assert_eq!(format!("{:?}", Credentials::Anonymous), "Anonymous");
}

#[test]
fn erase_with_a_missing_helper_still_cleans_the_file() {
    let s = Setup::with_config(json!({ "credsStore": "gone", "auths": { "ghcr.io": {} } }));
    fs::create_dir_all(s.helper_dir()).unwrap();
    let store = CredentialStore::at(s.config_path()).with_helper_path(s.helper_dir());
    let err = store.erase("ghcr.io").unwrap_err();
    assert!(
        matches!(err, CredentialsError::HelperNotFound { .. }),
        "{err:?}"
    );
    assert_eq!(s.config()["auths"], json!({}));
}
