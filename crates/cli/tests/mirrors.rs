//! Docker Hub registry mirrors as a user configures them: `--registry-mirror`,
//! `BASIC_DOCKER_REGISTRY_MIRRORS` and daemon.json's `registry-mirrors`. The
//! harness's open registry serves `library/busybox:latest` and plays the mirror;
//! fake registries play dead and tampering ones. This machine has no route to
//! Docker Hub, so a pull that gets past every mirror fails there.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use basic_test_support::fake_registry::{FakeImage, FakeServer, Part, Reply, Request};
use basic_test_support::{harness, require_root};
use common::{stdout, tmp_is_empty};

/// A store, a state dir and a daemon.json of the test's own (so the host's
/// /etc/basic-docker/daemon.json, if any, plays no part).
struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let setup = Setup {
            dir: tempfile::tempdir().unwrap(),
        };
        setup.daemon_json("{}");
        setup
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn config_file(&self) -> PathBuf {
        self.dir.path().join("daemon.json")
    }

    fn daemon_json(&self, text: &str) {
        std::fs::write(self.config_file(), text).unwrap();
    }

    /// `basic-docker --root --state --config-file ARGS`, with `env`.
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_basic-docker"))
            .arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.dir.path().join("state"))
            .arg("--config-file")
            .arg(self.config_file())
            .args(args)
            // The caller's own settings play no part, only `env`.
            .env_remove("BASIC_DOCKER_REGISTRY_MIRRORS")
            .env_remove("BASIC_DOCKER_INSECURE_REGISTRIES")
            .envs(env.iter().copied())
            .output()
            .expect("start basic-docker")
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout(&self.run(&[], args))
    }

    /// `REPOSITORY:TAG` of every image.
    fn images(&self) -> Vec<String> {
        self.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The store holds no image, no layer, nothing half-written, and checks clean.
    fn assert_nothing_stored(&self) {
        assert!(self.images().is_empty(), "{:?}", self.images());
        let layers = self.root().join("layers");
        if layers.exists() {
            assert_eq!(std::fs::read_dir(&layers).unwrap().count(), 0);
        }
        if self.root().join("tmp").exists() {
            assert!(tmp_is_empty(&self.root()), "tmp/ not empty");
        }
        assert_eq!(self.ok(&["system", "check"]).trim(), "No problems found");
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback port nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// A fake registry answering with `handler`, serving while the runtime lives.
fn serve(
    handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> (tokio::runtime::Runtime, FakeServer) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(FakeServer::start(handler));
    (runtime, server)
}

/// The harness's open registry, as a mirror URL.
fn harness_mirror(open: &str) -> String {
    format!("http://{open}")
}

#[test]
fn pull_busybox_through_a_mirror_is_named_as_docker_names_it() {
    let Some(h) = harness() else { return };
    let fixture = h.fixture("mirror_busybox_latest");
    let s = Setup::new();

    let out = s.ok(&[
        "--registry-mirror",
        &harness_mirror(&h.open),
        "pull",
        "busybox",
    ]);
    assert!(
        out.contains("latest: Pulling from library/busybox"),
        "{out}"
    );
    let digest = fixture["digest"].as_str().unwrap();
    assert!(out.contains(&format!("Digest: {digest}")), "{out}");
    assert!(
        out.trim_end().ends_with("docker.io/library/busybox:latest"),
        "{out}"
    );

    assert_eq!(s.images(), ["busybox:latest"]);
    let inspect: serde_json::Value =
        serde_json::from_str(&s.ok(&["image", "inspect", "busybox"])).unwrap();
    assert_eq!(inspect[0]["Id"], fixture["config"]["digest"]);
    assert_eq!(inspect[0]["RepoDigests"][0], format!("busybox@{digest}"));
    assert_eq!(inspect[0]["RepoTags"][0], "busybox:latest");
}

#[test]
fn daemon_json_mirrors_are_tried_in_order_and_the_command_line_adds_to_them() {
    let Some(h) = harness() else { return };
    let s = Setup::new();
    let dead = closed_port();
    let mirror = harness_mirror(&h.open);
    s.daemon_json(&format!(
        r#"{{"registry-mirrors": ["{dead}", "{mirror}"], "log-driver": "json-file"}}"#
    ));

    let info = s.ok(&["--registry-mirror", "https://extra.example", "info"]);
    let listed = format!("Registry Mirrors:\n {dead}/\n {mirror}/\n https://extra.example/\n");
    assert!(info.contains(&listed), "{info}");
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["info", "--format", "json"])).unwrap();
    assert_eq!(
        json["RegistryConfig"]["Mirrors"],
        serde_json::json!([format!("{dead}/"), format!("{mirror}/")])
    );
    assert_eq!(
        json["RegistryConfig"]["IndexConfigs"]["docker.io"]["Mirrors"],
        json["RegistryConfig"]["Mirrors"]
    );

    // The dead first mirror is passed over; the second serves the pull.
    let started = Instant::now();
    s.ok(&["pull", "-q", "busybox"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(s.images(), ["busybox:latest"]);
}

#[test]
fn the_environment_names_mirrors_too() {
    let s = Setup::new();
    let out = s.run(
        &[(
            "BASIC_DOCKER_REGISTRY_MIRRORS",
            "http://127.0.0.1:1,https://m.example",
        )],
        &["info"],
    );
    let info = stdout(&out);
    assert!(
        info.contains("Registry Mirrors:\n http://127.0.0.1:1/\n https://m.example/\n"),
        "{info}"
    );
}

#[test]
fn when_every_mirror_and_docker_hub_fail_the_error_names_them_and_comes_in_time() {
    let s = Setup::new();
    let (_rt, mute) = {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(FakeServer::start_mute());
        (runtime, server)
    };
    let dead = closed_port();
    let silent = format!("http://{}", mute.host());
    let started = Instant::now();
    let out = s.run(
        &[],
        &[
            "--registry-mirror",
            &dead,
            "--registry-mirror",
            &silent,
            "--registry-idle-timeout",
            "1",
            "--registry-timeout",
            "2",
            "pull",
            "busybox",
        ],
    );
    let elapsed = started.elapsed();
    assert!(!out.status.success());
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    let err = text(&out.stderr);
    assert!(err.contains(&format!("mirror {dead}/")), "{err}");
    assert!(err.contains(&format!("mirror {silent}/")), "{err}");
    assert!(err.contains("timed out"), "{err}");
    assert!(err.contains("docker.io"), "{err}");
    assert!(err.contains("library/busybox"), "{err}");
    s.assert_nothing_stored();
}

#[test]
fn a_mirror_serving_a_tampered_layer_fails_the_pull_and_stores_nothing() {
    let s = Setup::new();
    let image = FakeImage::new(&[("bin/evil", b"#!/bin/sh\necho owned\n")]);
    let (_rt, evil) = serve(move |r: &Request| match image.part(r) {
        Some(Part::Layer) => {
            let mut layer = image.layer.clone();
            let middle = layer.len() / 2;
            layer[middle] ^= 0x55;
            Reply::ok(layer, &[])
        }
        _ => image.reply(r),
    });
    let mirror = format!("http://{}", evil.host());
    let out = s.run(&[], &["--registry-mirror", &mirror, "pull", "busybox"]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("mirror {mirror}/")), "{err}");
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(
        evil.requests()
            .iter()
            .any(|r| r.path == "/v2/library/busybox/manifests/latest"),
        "the mirror was asked for Docker Hub's name"
    );
    s.assert_nothing_stored();
}

#[test]
fn a_reference_to_another_registry_never_goes_to_a_mirror() {
    let Some(h) = harness() else { return };
    let s = Setup::new();
    let image = FakeImage::new(&[("etc/from-the-mirror", b"wrong place\n")]);
    let (_rt, mirror) = serve(move |r: &Request| image.reply(r));
    let reference = h.reference("busybox_latest");
    s.ok(&[
        "--registry-mirror",
        &format!("http://{}", mirror.host()),
        "pull",
        "-q",
        &reference,
    ]);
    assert!(mirror.requests().is_empty(), "{:?}", mirror.requests());
    assert_eq!(s.images(), [reference]);
}

#[test]
fn bad_mirror_urls_and_config_files_are_refused_with_what_is_wrong() {
    let s = Setup::new();
    for (bad, words) in [
        (
            "127.0.0.1:5000",
            "invalid mirror: no scheme specified for \"127.0.0.1:5000\": must use either 'https://' or 'http://'",
        ),
        (
            "ftp://m.example",
            "invalid mirror: unsupported scheme \"ftp\" in \"ftp://m.example\"",
        ),
        (
            "https://m.example/hub",
            "invalid mirror: path, query, or fragment at end of the URI \"https://m.example/hub\"",
        ),
    ] {
        let out = s.run(&[], &["--registry-mirror", bad, "images"]);
        assert!(!out.status.success(), "{bad} accepted");
        let err = text(&out.stderr);
        assert!(err.contains(words), "{bad}: {err}");

        s.daemon_json(&format!(r#"{{"registry-mirrors": ["{bad}"]}}"#));
        let out = s.run(&[], &["images"]);
        assert!(!out.status.success(), "{bad} accepted from daemon.json");
        let err = text(&out.stderr);
        assert!(err.contains(words), "{bad}: {err}");
        assert!(
            err.contains(&s.config_file().display().to_string()),
            "{err}"
        );
    }

    let file = s.config_file().display().to_string();
    for (json, words) in [
        ("{\"registry-mirrors\": ", "EOF while parsing"),
        (
            r#"{"registry-mirrors": "http://m.example"}"#,
            "invalid type: string",
        ),
        (
            r#"{"insecure-registries": ["http://r.example"]}"#,
            "should not contain '://'",
        ),
    ] {
        s.daemon_json(json);
        let out = s.run(&[], &["images"]);
        assert!(!out.status.success(), "{json} accepted");
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!(
                "unable to configure basic-docker with file {file}"
            )),
            "{err}"
        );
        assert!(err.contains(words), "{json}: {err}");
    }

    let missing = s.dir.path().join("missing.json");
    let out = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(s.root())
        .arg("--config-file")
        .arg(&missing)
        .arg("images")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a named config file that is missing");
    assert!(text(&out.stderr).contains(&missing.display().to_string()));
    assert!(
        !s.root().join("metadata.db").exists(),
        "nothing was created"
    );
}

#[test]
fn run_and_create_resolve_busybox_through_the_mirror() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let s = Setup::new();
    s.daemon_json(&format!(
        r#"{{"registry-mirrors": ["{}"]}}"#,
        harness_mirror(&h.open)
    ));
    let out = s.run(
        &[],
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "echo",
            "via the mirror",
        ],
    );
    assert_eq!(
        stdout(&out).trim(),
        "via the mirror",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(s.images(), ["busybox:latest"]);

    s.ok(&["rmi", "busybox"]);
    let name = "mirror-create-test";
    let _cleanup = Cleanup { setup: &s, name };
    s.ok(&[
        "create",
        "--name",
        name,
        "--network",
        "none",
        "busybox",
        "true",
    ]);
    assert_eq!(s.images(), ["busybox:latest"]);
}

/// Removes the test's container however the test ends.
struct Cleanup<'a> {
    setup: &'a Setup,
    name: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.setup.run(&[], &["rm", "-f", self.name]);
    }
}
