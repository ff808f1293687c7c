//! The registries `scripts/harness.sh` starts, found through its environment.

use std::path::PathBuf;

/// Endpoints and users of the harness registries.
pub struct Harness {
    pub open: String,
    pub basic: String,
    pub basic_user: String,
    pub basic_pass: String,
    pub token: String,
    pub token_issuer: String,
    pub token_user: String,
    pub token_pass: String,
    pub fixtures: PathBuf,
}

fn var(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: is the harness env complete?"))
}

/// The harness, or `None` (the test then skips) when it is not running and
/// `BASIC_DOCKER_REQUIRE_PRIVILEGED` is unset. In CI that variable is set, so a
/// missing harness fails the test instead of skipping it.
pub fn harness() -> Option<Harness> {
    if std::env::var_os("BASIC_DOCKER_TEST_REGISTRY_OPEN").is_none() {
        if std::env::var_os("BASIC_DOCKER_REQUIRE_PRIVILEGED").is_some() {
            panic!(
                "the registry harness is not running: run `scripts/harness.sh start` and `eval \"$(scripts/harness.sh env)\"`"
            );
        }
        eprintln!("skipping: registry harness not running (scripts/harness.sh start)");
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
}
