//! Shared test helpers for the basic-docker crates.
//!
//! The rule every test follows: a test that needs something the machine may not
//! give (root, the registry harness, namespaces, mounts) may skip itself only when
//! `BASIC_DOCKER_REQUIRE_PRIVILEGED` is unset. CI sets it, so there a missing
//! prerequisite fails the test instead of hiding it.
#![deny(missing_docs)]

pub mod bounded;
pub mod engine_binary;
#[cfg(feature = "fake-registry")]
pub mod fake_registry;
pub mod image;
pub mod programs;
mod push;
pub mod rootless;
pub mod small_fs;

use std::path::PathBuf;

/// The environment variable that turns skips into failures.
pub const REQUIRE_PRIVILEGED: &str = "BASIC_DOCKER_REQUIRE_PRIVILEGED";

/// Skips (returns `false`, after saying why) or, under `BASIC_DOCKER_REQUIRE_PRIVILEGED`,
/// panics, when `available` is false. Returns `true` when the test can go on.
pub fn prerequisite(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var_os(REQUIRE_PRIVILEGED).is_some() {
        panic!("{what} is required ({REQUIRE_PRIVILEGED} is set)");
    }
    eprintln!("skipping: {what} is not available");
    false
}

/// True when running as root; otherwise skips or fails as [`prerequisite`] does.
pub fn require_root() -> bool {
    // Read from /proc: a libc dependency for one number is not worth it.
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_string))
        })
        .unwrap_or_default();
    prerequisite(euid == "0", "root")
}

/// Endpoints and users of the registries `scripts/harness.sh` starts.
pub struct Harness {
    /// Open registry, plain HTTP, e.g. `127.0.0.1:5100`.
    pub open: String,
    /// Registry with HTTP Basic auth.
    pub basic: String,
    /// Its user.
    pub basic_user: String,
    /// Its password.
    pub basic_pass: String,
    /// Registry with Bearer token auth.
    pub token: String,
    /// The token issuer's base URL.
    pub token_issuer: String,
    /// The token registry's user.
    pub token_user: String,
    /// Its password.
    pub token_pass: String,
    /// Directory of fixture metadata (`<name>.json`).
    pub fixtures: PathBuf,
}

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: is the harness env complete?"))
}

/// The harness, or `None` (the test then returns early) when it is not running and
/// skipping is allowed.
pub fn harness() -> Option<Harness> {
    let running = std::env::var_os("BASIC_DOCKER_TEST_REGISTRY_OPEN").is_some();
    if !prerequisite(
        running,
        "the registry harness (scripts/harness.sh start; eval \"$(scripts/harness.sh env)\")",
    ) {
        return None;
    }
    Some(Harness {
        open: var("BASIC_DOCKER_TEST_REGISTRY_OPEN"),
        basic: var("BASIC_DOCKER_TEST_REGISTRY_BASIC"),
        basic_user: var("BASIC_DOCKER_TEST_BASIC_USER"),
        basic_pass: var("BASIC_DOCKER_TEST_BASIC_PASS"),
        token: var("BASIC_DOCKER_TEST_REGISTRY_TOKEN"),
        token_issuer: var("BASIC_DOCKER_TEST_TOKEN_ISSUER"),
        token_user: var("BASIC_DOCKER_TEST_TOKEN_USER"),
        token_pass: var("BASIC_DOCKER_TEST_TOKEN_PASS"),
        fixtures: PathBuf::from(var("BASIC_DOCKER_TEST_FIXTURES")),
    })
}

impl Harness {
    /// A fixture's metadata, as the harness recorded it from the registry.
    pub fn fixture(&self, name: &str) -> serde_json::Value {
        let path = self.fixtures.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading fixture metadata {}: {e}", path.display()));
        serde_json::from_str(&text).expect("fixture metadata is JSON")
    }

    /// A fixture's reference, e.g. `127.0.0.1:5100/fixtures/busybox:latest`.
    pub fn reference(&self, name: &str) -> String {
        let fixture = self.fixture(name);
        fixture["reference"]
            .as_str()
            .expect("fixture has a reference")
            .to_string()
    }
}
