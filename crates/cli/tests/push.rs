//! `push`, `tag` and `history` as a user runs them, against the harness registries
//! (open, Basic, Bearer), read back with skopeo and podman.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use basic_test_support::bounded::{COMMAND_LIMIT, output_within};
use basic_test_support::{harness, prerequisite, require_root};
use common::{basic_docker, ok, stdout, tmp_is_empty};

/// A user's setup: a store and a docker config directory of their own.
struct User {
    root: tempfile::TempDir,
    config: tempfile::TempDir,
}

impl User {
    fn new() -> Self {
        let config = tempfile::tempdir().unwrap();
        // podman and skopeo read $DOCKER_CONFIG/config.json and fail without it.
        std::fs::write(config.path().join("config.json"), "{}").unwrap();
        User {
            root: tempfile::tempdir().unwrap(),
            config,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, None)
    }

    fn run_with(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut all = vec!["--config", self.config.path().to_str().unwrap()];
        all.extend_from_slice(args);
        match input {
            None => basic_docker(self.root.path(), &all),
            Some(text) => common::with_stdin(self.root.path(), &all, text.as_bytes()),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        stdout(&self.run(args))
    }
}

/// A repository name no earlier run used.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// An image only this test has: busybox imported from a tarball (its config has
/// this moment's time), under `name`.
fn imported(user: &User, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let tar = common::busybox_rootfs_tar(dir.path());
    ok(user.run(&["import", tar.to_str().unwrap(), name]));
}

fn skopeo(config: &Path, args: &[&str]) -> Output {
    output_within(
        Command::new("skopeo")
            .env("DOCKER_CONFIG", config)
            .env("REGISTRY_AUTH_FILE", config.join("config.json"))
            .args(args),
        COMMAND_LIMIT,
        &format!("skopeo {args:?}"),
    )
}

/// The manifest digest skopeo reads from the registry for `reference`.
fn registry_digest(config: &Path, reference: &str, creds: Option<&str>) -> String {
    let image = format!("docker://{reference}");
    let mut args = vec!["inspect", "--tls-verify=false", "--raw"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    args.push(&image);
    let out = skopeo(config, &args);
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(&out.stdout)))
}

/// The `digest: sha256:… size: N` line's digest.
fn pushed_digest(output: &str) -> String {
    let line = output
        .lines()
        .find(|l| l.contains(": digest: sha256:"))
        .unwrap_or_else(|| panic!("no digest line in:\n{output}"));
    line.split_whitespace().nth(2).unwrap().to_string()
}

/// Lines `ID: STATUS` for every layer, with STATUS the same for all.
fn every_layer(output: &str, status: &str) -> usize {
    let ids: Vec<&str> = output
        .lines()
        .filter(|l| l.ends_with(": Preparing"))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert!(!ids.is_empty(), "no layers in:\n{output}");
    for id in &ids {
        assert!(
            output.lines().any(|l| l == format!("{id}: {status}")),
            "layer {id} is not `{status}` in:\n{output}"
        );
    }
    ids.len()
}

#[test]
fn push_skips_what_the_registry_has_and_mounts_across_repositories() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let user = User::new();
    let repo = format!("{}/{}", h.open, unique("push/open"));
    let first = format!("{repo}/a:v1");
    imported(&user, &first);

    let out = user.ok(&["push", &first]);
    assert!(
        out.starts_with(&format!("The push refers to repository [{repo}/a]\n")),
        "{out}"
    );
    every_layer(&out, "Pushed");
    let digest = pushed_digest(&out);
    assert!(out.trim_end().ends_with(&format!(
        "v1: digest: {digest} size: {}",
        out.trim_end().rsplit(' ').next().unwrap()
    )));
    assert_eq!(registry_digest(user.config.path(), &first, None), digest);
    // The registry now serves the image by that digest: a repo digest, as docker records.
    let listed = user.ok(&["images", "--digests", &format!("{repo}/a")]);
    assert!(listed.contains(&digest), "{listed}");

    let again = user.ok(&["push", &first]);
    every_layer(&again, "Layer already exists");
    assert_eq!(pushed_digest(&again), digest);

    let second = format!("{repo}/b");
    ok(user.run(&["tag", &first, &second]));
    let mounted = user.ok(&["push", &second]);
    let from = format!("{}/a", repo.split_once('/').unwrap().1);
    every_layer(&mounted, &format!("Mounted from {from}"));
    assert!(
        mounted.contains(&format!("latest: digest: {digest} ")),
        "{mounted}"
    );

    // --all-tags: every tag of the repository, each with its digest line.
    ok(user.run(&["tag", &first, &format!("{repo}/a:v2")]));
    let all = user.ok(&["push", "--all-tags", &format!("{repo}/a")]);
    assert!(all.contains(&format!("v1: digest: {digest} ")), "{all}");
    assert!(all.contains(&format!("v2: digest: {digest} ")), "{all}");
    let refused = user.run(&["push", "-a", &first]);
    assert!(!refused.status.success());

    // -q prints the reference only.
    assert_eq!(
        user.ok(&["push", "-q", &second]).trim(),
        format!("{second}:latest")
    );
    assert!(tmp_is_empty(user.root.path()));
}

#[test]
fn a_loaded_image_is_compressed_for_the_push_and_runs_in_podman() {
    let Some(h) = harness() else { return };
    if !require_root()
        || !prerequisite(
            Path::new("/usr/bin/podman").exists(),
            "podman (scripts/install-deps.sh)",
        )
    {
        return;
    }
    let user = User::new();
    // skopeo's docker-archive holds plain tar layers, as `docker save` does.
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("busybox.tar");
    let source = h.reference("busybox_latest");
    let out = skopeo(
        user.config.path(),
        &[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &format!("docker://{source}"),
            &format!("docker-archive:{}:loaded/busybox:latest", archive.display()),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(user.run(&["load", "-i", archive.to_str().unwrap()]));

    let target = format!("{}/{}:v1", h.open, unique("push/loaded"));
    ok(user.run(&["tag", "loaded/busybox:latest", &target]));
    let out = user.ok(&["push", &target]);
    every_layer(&out, "Pushed");
    let digest = pushed_digest(&out);
    let raw = skopeo(
        user.config.path(),
        &[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{target}"),
        ],
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    let layer_type = manifest["layers"][0]["mediaType"].as_str().unwrap();
    assert!(
        layer_type.ends_with("gzip"),
        "pushed compressed: {layer_type}"
    );
    // Compressed once, deterministically: a second push sends the same blob.
    let again = user.ok(&["push", &target]);
    every_layer(&again, "Layer already exists");
    assert_eq!(pushed_digest(&again), digest);

    let podman_dir = tempfile::tempdir().unwrap();
    let podman = |args: &[&str]| {
        let d = podman_dir.path();
        output_within(
            Command::new("podman")
                .env("DOCKER_CONFIG", user.config.path())
                .arg("--root")
                .arg(d.join("storage"))
                .arg("--runroot")
                .arg(d.join("run"))
                .arg("--tmpdir")
                .arg(d.join("tmp"))
                .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
                .args(["--events-backend", "none"])
                .args(args),
            COMMAND_LIMIT,
            &format!("podman {args:?}"),
        )
    };
    let pulled = podman(&["pull", "-q", "--tls-verify=false", &target]);
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    let ran = podman(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--network",
        "none",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=4096:4096",
        &target,
        "echo",
        "pushed by basic-docker",
    ]);
    assert!(
        ran.status.success(),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&ran.stdout).trim(),
        "pushed by basic-docker"
    );
}

#[test]
fn push_with_basic_and_bearer_credentials_after_login() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let user = User::new();
    let name = unique("push/creds");
    let local = format!("local/{name}");
    imported(&user, &local);

    for (registry, login_user, pass, repo) in [
        (&h.basic, &h.basic_user, &h.basic_pass, name.clone()),
        (
            &h.token,
            &h.token_user,
            &h.token_pass,
            format!("private/{name}"),
        ),
    ] {
        let target = format!("{registry}/{repo}");
        ok(user.run(&["tag", &local, &target]));
        let listing = || {
            user.ok(&[
                "images",
                "--format",
                "{{.Repository}}:{{.Tag}} {{.Digest}} {{.ID}}",
            ])
        };
        let images_before = listing();

        // Not logged in: refused, saying where and what to do; nothing recorded.
        let refused = user.run(&["push", &target]);
        assert!(!refused.status.success());
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains(registry.as_str()), "{err}");
        assert!(err.contains(&repo), "{err}");
        assert!(err.contains("login"), "{err}");
        assert_eq!(listing(), images_before);
        assert!(tmp_is_empty(user.root.path()));

        // Wrong credentials in the config (as a changed password leaves them).
        let auth = base64_of(&format!("{login_user}:wrong-password"));
        std::fs::write(
            user.config.path().join("config.json"),
            format!(r#"{{"auths":{{"{registry}":{{"auth":"{auth}"}}}}}}"#),
        )
        .unwrap();
        let wrong = user.run(&["push", &target]);
        assert!(!wrong.status.success());
        let err = String::from_utf8_lossy(&wrong.stderr);
        assert!(err.contains(registry.as_str()), "{err}");
        assert!(
            err.contains("rejected") || err.contains("denied") || err.contains("incorrect"),
            "{err}"
        );
        assert_eq!(listing(), images_before);

        let login = user.run_with(
            &["login", "-u", login_user, "--password-stdin", registry],
            Some(pass),
        );
        assert!(stdout(&login).contains("Login Succeeded"));
        let out = user.ok(&["push", &target]);
        every_layer(&out, "Pushed");
        let digest = pushed_digest(&out);
        let creds = format!("{login_user}:{pass}");
        assert_eq!(
            registry_digest(
                user.config.path(),
                &format!("{target}:latest"),
                Some(&creds)
            ),
            digest
        );
        // A second repository on the same registry: mounted with the same login.
        let other = format!("{target}-copy");
        ok(user.run(&["tag", &target, &other]));
        let mounted = user.ok(&["push", &other]);
        every_layer(&mounted, &format!("Mounted from {repo}"));
    }
}

#[test]
fn history_prints_dockers_columns() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let user = User::new();
    let image = h.reference("multilayer_latest");
    ok(user.run(&["pull", "-q", &image]));
    let id = ok(user.run(&["images", "-q", &image]));
    let table = user.ok(&["history", &image]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE          CREATED        CREATED BY"),
        "{table}"
    );
    assert!(lines[0].contains("SIZE      COMMENT"), "{table}");
    assert!(lines[1].starts_with(&format!("{id}   ")), "{table}");
    assert!(
        lines[2..].iter().all(|l| l.starts_with("<missing>")),
        "{table}"
    );
    assert!(lines[1].contains(" ago "), "{table}");
    // The busybox layer: its files' bytes, as docker's human sizes.
    assert!(
        table.contains("busybox-static + applet symlinks   1.98MB") || table.contains("MB"),
        "{table}"
    );

    let quiet = user.ok(&["history", "-q", &image]);
    assert_eq!(quiet.lines().count(), lines.len() - 1);
    assert_eq!(quiet.lines().next(), Some(id.as_str()));
    let full = user.ok(&["history", "-q", "--no-trunc", &image]);
    assert!(full.starts_with("sha256:"), "{full}");
    let formatted = user.ok(&["history", "--format", "{{.ID}}|{{.Size}}", &image]);
    assert!(
        formatted
            .lines()
            .next()
            .unwrap()
            .starts_with(&format!("{id}|"))
    );
    let raw = user.ok(&[
        "image",
        "history",
        "-H=false",
        "--format",
        "{{.Size}}",
        &image,
    ]);
    assert!(raw.lines().all(|l| l.parse::<u64>().is_ok()), "{raw}");

    let missing = user.run(&["history", "no-such-image"]);
    assert!(!missing.status.success());
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn a_layer_whose_blob_the_store_lost_is_mounted_or_named() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let user = User::new();
    // The zstd image's layer is busybox's (same diff ID): pulled after multilayer, whose
    // bottom layer is busybox's gzip blob, it is not downloaded. Removing multilayer
    // then takes the gzip blob: the store keeps the layer and no blob of it.
    let multilayer = h.reference("multilayer_latest");
    let zstd = h.fixture("zstd_latest");
    let zstd_ref = zstd["reference"].as_str().unwrap();
    ok(user.run(&["pull", "-q", &multilayer]));
    ok(user.run(&["pull", "-q", zstd_ref]));
    ok(user.run(&["rmi", &multilayer]));
    let layer = zstd["layers"][0]["digest"].as_str().unwrap();
    let blobs = user.root.path().join("blobs/sha256");
    assert!(!blobs.join(layer.trim_start_matches("sha256:")).exists());

    // The registry has it in the repository the image came from: mounted, and the
    // manifest goes out as it was pulled.
    let target = format!("{}/{}:v1", h.open, unique("push/lost"));
    ok(user.run(&["tag", zstd_ref, &target]));
    let out = user.ok(&["push", &target]);
    every_layer(&out, "Mounted from fixtures/zstd");
    assert_eq!(pushed_digest(&out), zstd["digest"].as_str().unwrap());

    // A registry that has never seen it: a clear error naming the layer, nothing sent.
    let elsewhere = format!("{}/{}", h.basic, unique("push/lost"));
    ok(user.run(&["tag", zstd_ref, &elsewhere]));
    let login = user.run_with(
        &["login", "-u", &h.basic_user, "--password-stdin", &h.basic],
        Some(&h.basic_pass),
    );
    stdout(&login);
    let failed = user.run(&["push", &elsewhere]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("has no blob in the store"), "{err}");
    assert!(err.contains("remove the image and pull it again"), "{err}");
    assert!(tmp_is_empty(user.root.path()));
}
