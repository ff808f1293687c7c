//! `manifest inspect`, `login` and `logout` run as a user runs them, against the
//! harness registries (`scripts/harness.sh`).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use basic_test_support::bounded::{COMMAND_LIMIT, wait_with_output_within};
use basic_test_support::harness;
use serde_json::Value;

fn basic_docker(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start basic-docker");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    wait_with_output_within(child, COMMAND_LIMIT, &format!("basic-docker {args:?}"))
}

fn stdout_json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

#[test]
fn manifest_inspect_prints_index_or_one_platform() {
    let Some(h) = harness() else { return };
    let config = tempfile::tempdir().unwrap();
    let fixture = h.fixture("multiarch_latest");
    let reference = fixture["reference"].as_str().unwrap();

    let index = stdout_json(&basic_docker(
        config.path(),
        &["manifest", "inspect", reference],
        None,
    ));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3);

    let arm = basic_docker(
        config.path(),
        &[
            "manifest",
            "inspect",
            "--platform",
            "linux/arm64",
            reference,
        ],
        None,
    );
    let arm = stdout_json(&arm);
    let arm_entry = &fixture["manifests"][1];
    assert_eq!(arm_entry["platform"]["architecture"], "arm64");
    assert_eq!(arm["config"]["digest"], arm_entry["config"]["digest"]);

    let missing = basic_docker(
        config.path(),
        &[
            "manifest",
            "inspect",
            "--platform",
            "linux/s390x",
            reference,
        ],
        None,
    );
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64"),
        "{err}"
    );
}

#[test]
fn bad_reference_says_what_is_wrong() {
    let config = tempfile::tempdir().unwrap();
    let out = basic_docker(config.path(), &["manifest", "inspect", "Busybox"], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must be lowercase"), "{err}");
}

#[test]
fn login_stores_credentials_that_later_commands_use() {
    let Some(h) = harness() else { return };
    let config = tempfile::tempdir().unwrap();
    let private = h.fixture("token_private_busybox_latest");
    let reference = private["reference"].as_str().unwrap();

    let denied = basic_docker(config.path(), &["manifest", "inspect", reference], None);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("login"));

    let wrong = basic_docker(
        config.path(),
        &["login", "-u", &h.token_user, "--password-stdin", &h.token],
        Some("not-the-password\n"),
    );
    assert!(!wrong.status.success());
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("wrong username or password"), "{err}");
    assert!(
        !config.path().join("config.json").exists(),
        "a failed login stores nothing"
    );

    let login = basic_docker(
        config.path(),
        &["login", "-u", &h.token_user, "--password-stdin", &h.token],
        Some(&format!("{}\n", h.token_pass)),
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    assert!(String::from_utf8_lossy(&login.stdout).contains("Login Succeeded"));
    let stored: Value =
        serde_json::from_slice(&std::fs::read(config.path().join("config.json")).unwrap()).unwrap();
    assert!(stored["auths"][&h.token]["auth"].is_string(), "{stored}");

    let manifest = stdout_json(&basic_docker(
        config.path(),
        &["manifest", "inspect", reference],
        None,
    ));
    assert_eq!(manifest["config"]["digest"], private["config"]["digest"]);

    let logout = basic_docker(config.path(), &["logout", &h.token], None);
    assert!(logout.status.success());
    let after = basic_docker(config.path(), &["manifest", "inspect", reference], None);
    assert!(
        !after.status.success(),
        "credentials must be gone after logout"
    );
}

/// With `credsStore` set, the secret goes to the credential helper, and
/// config.json keeps only an empty entry, as docker does.
#[test]
fn login_through_a_credential_helper() {
    let Some(h) = harness() else { return };
    let config = tempfile::tempdir().unwrap();
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-filestore");
    let store = bin.path().join("secrets");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n\
             store={store}\n\
             case \"$1\" in\n\
             store) cat > \"$store\" ;;\n\
             get) read url; if [ -s \"$store\" ]; then cat \"$store\"; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n\
             erase) : > \"$store\" ;;\n\
             esac\n",
            store = store.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        config.path().join("config.json"),
        r#"{"credsStore":"filestore"}"#,
    )
    .unwrap();

    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_basic-docker"));
        cmd.env("PATH", &path)
            .arg("--config")
            .arg(config.path())
            .args(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        wait_with_output_within(child, COMMAND_LIMIT, &format!("basic-docker {args:?}"))
    };
    let login = run(
        &["login", "-u", &h.basic_user, "--password-stdin", &h.basic],
        Some(&h.basic_pass),
    );
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let secrets = std::fs::read_to_string(&store).unwrap();
    assert!(
        secrets.contains(&h.basic_pass),
        "the helper holds the secret"
    );
    let file = std::fs::read_to_string(config.path().join("config.json")).unwrap();
    assert!(
        !file.contains(&h.basic_pass),
        "config.json must not hold the secret: {file}"
    );

    let reference = h.fixture("basic_busybox_latest")["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let inspect = run(&["manifest", "inspect", &reference], None);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
}
