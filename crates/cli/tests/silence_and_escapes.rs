//! What a user sees when a registry goes silent, is slow, or sends hostile text,
//! and when an archive carries hostile names: the pull says it is waiting and
//! fails within the configured timeouts naming what did not arrive; a slow but
//! steady registry completes; no raw escape sequence from a registry or an
//! archive reaches the terminal; no colour codes go to a pipe.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use basic_test_support::fake_registry::{FakeImage, FakeServer, Part, Reply, Request};
use basic_test_support::require_root;
use common::{stdout, with_stdin};

/// What a crafted name tries to do to a terminal: clear it and print a message.
const CRAFTED: &str = "\x1b[2J\x1b[1;1HLoaded image: trusted:latest\r\n";

/// A runtime for a fake registry, which serves for as long as it lives.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// A fake registry answering with `handler`.
fn serve(
    handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> (tokio::runtime::Runtime, FakeServer) {
    let runtime = runtime();
    let server = runtime.block_on(FakeServer::start(handler));
    (runtime, server)
}

/// `basic-docker --root ROOT ARGS` with `env` set.
fn run(root: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Nothing a terminal would act on: no ESC, no carriage return.
#[track_caller]
fn assert_inert(what: &str, bytes: &[u8]) {
    assert!(
        !bytes.contains(&0x1b) && !bytes.contains(&b'\r'),
        "raw control characters in {what}: {:?}",
        text(bytes)
    );
}

#[test]
fn a_silent_registry_shows_waiting_and_fails_within_the_timeout() {
    // It accepts connections and never sends a byte, not even to a TLS handshake.
    let runtime = runtime();
    let server = runtime.block_on(FakeServer::start_mute());
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/test/app:latest", server.host());
    let started = Instant::now();
    // The total from the environment, the idle timeout as a flag.
    let out = run(
        dir.path(),
        &[("BASIC_DOCKER_REGISTRY_TIMEOUT", "5s")],
        &["--registry-idle-timeout", "2", "pull", &reference],
    );
    let took = started.elapsed();
    assert!(!out.status.success());
    assert!(took < Duration::from_secs(12), "took {took:?}");
    let progress = text(&out.stdout);
    assert!(
        progress.contains(&format!("manifest from {}: Waiting 3s", server.host())),
        "{progress}"
    );
    let err = text(&out.stderr);
    for part in [
        server.host().as_str(),
        "timed out after 5s",
        "waiting for manifest test/app:latest",
        "no answer",
    ] {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
    assert_inert("stderr", &out.stderr);
}

#[test]
fn a_slow_but_steady_registry_completes_and_a_pause_shows_as_waiting() {
    if !require_root() {
        return;
    }
    let payload: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let image = FakeImage::new(&[("data.bin", &payload)]);
    let (_runtime, server) = serve({
        let image = image.clone();
        move |req: &Request| match image.part(req) {
            // Three pieces, 3.5 s apart: longer than the total in all (6 s), and
            // each pause long enough to be reported, short of the idle timeout.
            Some(Part::Layer) => Reply::Slow {
                status: 200,
                headers: vec![],
                body: image.layer.clone(),
                chunk: image.layer.len().div_ceil(3),
                pause: Duration::from_millis(3500),
            },
            _ => image.reply(req),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let reference = format!("{}/test/app:latest", server.host());
    let out = run(
        dir.path(),
        &[],
        &[
            "--registry-idle-timeout",
            "5s",
            "--registry-timeout",
            "6s",
            "pull",
            &reference,
        ],
    );
    let progress = stdout(&out);
    let layer = &image.layer_digest()["sha256:".len()..][..12];
    assert!(
        progress.contains(&format!("{layer}: Waiting 3s")),
        "{progress}"
    );
    assert!(
        progress.contains(&format!("{layer}: Pull complete")),
        "{progress}"
    );
    assert_inert("stderr", &out.stderr);
}

#[test]
fn no_magic_bytes_warning_after_a_failed_download_and_no_colour_in_a_pipe() {
    if !require_root() {
        return;
    }
    let image = FakeImage::new(&[("a.txt", b"a")]);
    // The layer is missing: its download fails before a byte arrives.
    let (_runtime, server) = serve({
        let image = image.clone();
        move |req: &Request| match image.part(req) {
            Some(Part::Layer) => Reply::status(404, "", &[]),
            _ => image.reply(req),
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[],
        &["pull", &format!("{}/test/app:latest", server.host())],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("not found"), "{err}");
    assert!(!err.contains("magic bytes"), "{err}");

    // A layer that really is mislabelled warns, in plain text on a pipe.
    let mut mislabelled = FakeImage::new(&[("b.txt", b"b")]);
    mislabelled.manifest = text(&mislabelled.manifest)
        .replace("tar+gzip", "tar")
        .into_bytes();
    let (_runtime, server) = serve(move |req: &Request| mislabelled.reply(req));
    let out = run(
        dir.path(),
        &[],
        &["pull", &format!("{}/test/other:latest", server.host())],
    );
    stdout(&out);
    let err = text(&out.stderr);
    assert!(err.contains("WARN") && err.contains("magic bytes"), "{err}");
    assert_inert("stderr", &out.stderr);
}

#[test]
fn a_registry_error_message_is_shown_escaped() {
    let envelope = serde_json::json!({"errors": [{"code": "DENIED", "message": CRAFTED}]});
    let body = envelope.to_string();
    let (_runtime, server) = serve(move |_: &Request| Reply::status(403, body.clone(), &[]));
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &[],
        &["pull", &format!("{}/test/app:latest", server.host())],
    );
    assert!(!out.status.success());
    assert_inert("stderr", &out.stderr);
    let err = text(&out.stderr);
    assert!(
        err.contains(r"\x1b[2J\x1b[1;1HLoaded image: trusted:latest\r\n"),
        "{err}"
    );
}

/// A `docker save` archive of `members` (name, bytes); names are written as
/// given, whatever bytes they hold.
fn archive(members: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in members {
        let mut header = tar::Header::new_gnu();
        header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn sha256(data: &[u8]) -> String {
    use std::fmt::Write as _;
    let sum = {
        use sha2::Digest as _;
        sha2::Sha256::digest(data)
    };
    sum.iter().fold("sha256:".to_string(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn config(diff_id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }))
    .unwrap()
}

#[test]
fn a_crafted_name_in_an_archive_is_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");

    // A member the manifest names, and the archive lacks.
    let missing = format!("{CRAFTED}layer.tar");
    let manifest = serde_json::json!([{"Config": "c.json", "Layers": [missing]}]).to_string();
    let cfg = config(&sha256(b"nothing"));
    let bytes = archive(&[(b"c.json", &cfg), (b"manifest.json", manifest.as_bytes())]);
    let out = with_stdin(&root, &["load"], &bytes);
    assert!(!out.status.success());
    assert_inert("stderr", &out.stderr);
    let err = text(&out.stderr);
    assert!(
        err.contains(
            r"member \x1b[2J\x1b[1;1HLoaded image: trusted:latest\r\nlayer.tar is missing"
        ),
        "{err}"
    );
}

#[test]
fn a_crafted_name_inside_a_layer_is_shown_escaped() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // A layer whose one entry climbs out of the root, under a crafted name.
    let entry = format!("{CRAFTED}../../../outside");
    let layer = archive(&[(entry.as_bytes(), b"x")]);
    let layer_name = format!("{CRAFTED}/layer.tar");
    let cfg = config(&sha256(&layer));
    let manifest = serde_json::json!([{"Config": "c.json", "Layers": [layer_name]}]).to_string();
    let bytes = archive(&[
        (b"c.json", &cfg),
        (layer_name.as_bytes(), &layer),
        (b"manifest.json", manifest.as_bytes()),
    ]);
    let out = with_stdin(&root, &["load"], &bytes);
    assert!(!out.status.success());
    assert_inert("stderr", &out.stderr);
    let err = text(&out.stderr);
    assert!(err.contains(r"\x1b[2J\x1b[1;1HLoaded image"), "{err}");
}
