//! `commit` as a docker user drives it: a container that added, changed and deleted
//! files (a whole directory of a lower layer among them, and one deleted and made
//! again) becomes an image; a container of that image sees the changes, and `diff`
//! of a fresh one shows nothing. Its layer, read by GNU tar from `save`'s archive,
//! holds OCI whiteouts. A container that made hostile content (a symlink to /etc,
//! names with `..`, a fifo, a device node) commits to a layer that extracts into
//! the image and changes nothing on the host. `-c`, `-m`, `-a`, the API's
//! `POST /commit` answer, and refusals that make nothing.

mod common;

use common::{Cleanup, basic_docker, busybox_store as store, ok};

use std::path::Path;
use std::process::Command;

use basic_test_support::bounded::output_within;

/// What the first container does to busybox's files.
const CHANGES: &str = "set -e
echo new > /new.txt
echo changed >> /etc/passwd
rm /etc/group
rm -rf /var
mkdir -p /usr/share/x && echo a > /usr/share/x/a
rm -rf /bin/../tmp && mkdir /tmp && echo only > /tmp/only
echo done";

/// The names of the image's top layer (GNU tar's listing of it, `save`d).
fn top_layer_listing(root: &Path, image: &str, dir: &Path) -> String {
    let archive = dir.join("image.tar");
    ok(basic_docker(
        root,
        &["save", "-o", archive.to_str().unwrap(), image],
    ));
    let out = dir.join("saved");
    std::fs::create_dir_all(&out).unwrap();
    let untar = output_within(
        Command::new("tar")
            .arg("-C")
            .arg(&out)
            .arg("-xf")
            .arg(&archive),
        common::LOCAL_TOOL_LIMIT,
        "tar -x of the saved image",
    );
    assert!(untar.status.success(), "{untar:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    let top = layers.last().unwrap().as_str().unwrap();
    let list = output_within(
        Command::new("tar")
            .env("LC_ALL", "C")
            .args(["-tv", "--numeric-owner", "-f"])
            .arg(out.join(top)),
        common::LOCAL_TOOL_LIMIT,
        "tar -t of the layer",
    );
    assert!(list.status.success(), "{list:?}");
    String::from_utf8(list.stdout).unwrap()
}

#[test]
fn a_commit_keeps_additions_changes_and_deletions() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let tmp = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup::new(root, &["commit-src", "commit-fresh"]).images(&["committed:v1"]);
    let out = ok(basic_docker(
        root,
        &["run", "--name", "commit-src", image, "sh", "-c", CHANGES],
    ));
    assert_eq!(out, "done");
    let id = ok(basic_docker(
        root,
        &[
            "commit",
            "-c",
            "ENV COMMITTED=yes",
            "-c",
            r#"CMD ["cat", "/new.txt"]"#,
            "-m",
            "a message",
            "-a",
            "Someone <someone@example.com>",
            "commit-src",
            "committed:v1",
        ],
    ));
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    // The image's config: the changes, the message, one more layer and history entry.
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["inspect", "committed:v1"]))).unwrap();
    let base: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["inspect", image]))).unwrap();
    assert_eq!(inspect[0]["Id"], id);
    assert_eq!(inspect[0]["Comment"], "a message");
    assert_eq!(inspect[0]["Author"], "Someone <someone@example.com>");
    assert_eq!(
        inspect[0]["Config"]["Cmd"],
        serde_json::json!(["cat", "/new.txt"])
    );
    let env = inspect[0]["Config"]["Env"].as_array().unwrap();
    assert!(env.iter().any(|e| e == "COMMITTED=yes"), "{env:?}");
    assert!(
        env.iter().any(|e| e.as_str().unwrap().starts_with("PATH=")),
        "{env:?}"
    );
    let layers = |doc: &serde_json::Value| doc[0]["RootFS"]["Layers"].as_array().unwrap().clone();
    assert_eq!(layers(&inspect).len(), layers(&base).len() + 1);
    assert_eq!(layers(&inspect)[..layers(&base).len()], layers(&base)[..]);

    // The default command is the -c one.
    assert_eq!(
        ok(basic_docker(root, &["run", "--rm", "committed:v1"])),
        "new"
    );
    let seen = ok(basic_docker(
        root,
        &[
            "run",
            "--name",
            "commit-fresh",
            "committed:v1",
            "sh",
            "-c",
            "tail -1 /etc/passwd; ls /etc/group /var 2>&1; cat /usr/share/x/a; ls /tmp; echo $COMMITTED",
        ],
    ));
    let lines: Vec<&str> = seen.lines().collect();
    assert_eq!(lines[0], "changed");
    assert!(
        lines[1].contains("/etc/group") && lines[1].contains("No such file"),
        "{seen}"
    );
    assert!(
        lines[2].contains("/var") && lines[2].contains("No such file"),
        "{seen}"
    );
    assert_eq!(&lines[3..], ["a", "only", "yes"], "{seen}");
    // What the fresh container changed: nothing but what its own command did (nothing).
    assert_eq!(ok(basic_docker(root, &["diff", "commit-fresh"])), "");

    // The layer has OCI whiteouts, an opaque marker for the directory made again,
    // and no trace of overlayfs' own form or of the runtime's mount points.
    let listing = top_layer_listing(root, "committed:v1", tmp.path());
    for wanted in [
        "etc/.wh.group",
        ".wh.var",
        "tmp/.wh..wh..opq",
        "tmp/only",
        "new.txt",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(&format!(" {wanted}"))),
            "{wanted} missing from the layer:\n{listing}"
        );
    }
    assert!(
        !listing.lines().any(|l| l.starts_with('c')),
        "a character device (an overlay whiteout) in the layer:\n{listing}"
    );
    for absent in ["etc/hosts", "etc/resolv.conf", "etc/hostname"] {
        assert!(
            !listing.lines().any(|l| l.ends_with(&format!(" {absent}"))),
            "{absent} (a mount point) in the layer:\n{listing}"
        );
    }
}

#[test]
fn hostile_content_commits_to_a_layer_that_stays_inside() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let tmp = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup::new(root, &["commit-hostile"]).images(&["hostile:v1"]);
    let host_passwd = std::fs::read("/etc/passwd").unwrap();
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, "host file\n").unwrap();
    let attack = format!(
        "set -e
ln -s /etc /etclink
ln -s {victim} /victimlink
ln -s ../../../../../../etc/passwd /escape
mkdir -p '/a..b' && echo x > '/a..b/..c'
echo y > '/...'
mkfifo /fifo
mknod /devnode c 1 3
mkdir -p /etc/deep && ln -s /etc/passwd /etc/deep/passwd
echo done",
        victim = victim.display()
    );
    assert_eq!(
        ok(basic_docker(
            root,
            &[
                "run",
                "--name",
                "commit-hostile",
                image,
                "sh",
                "-c",
                &attack
            ],
        )),
        "done"
    );
    ok(basic_docker(
        root,
        &["commit", "commit-hostile", "hostile:v1"],
    ));
    let listing = top_layer_listing(root, "hostile:v1", tmp.path());
    for line in listing.lines() {
        let name = line.split_whitespace().nth(5).unwrap();
        assert!(!name.starts_with('/'), "absolute member {name}");
        assert!(
            !name.split('/').any(|part| part == ".."),
            "member {name} climbs out"
        );
    }
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with('l') && l.contains("etclink -> /etc"))
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with('p') && l.ends_with(" fifo"))
    );
    // The image runs, and every link still points inside the container.
    let seen = ok(basic_docker(
        root,
        &[
            "run",
            "--rm",
            "hostile:v1",
            "sh",
            "-c",
            "readlink /etclink; cat /a..b/..c /...; ls -l /devnode | cut -c1; test -p /fifo && echo fifo; \
             echo overwrite > /victimlink 2>/dev/null; echo pwned >> /escape; echo ok",
        ],
    ));
    assert_eq!(seen, "/etc\nx\ny\nc\nfifo\nok");
    // Nothing on the host changed.
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), host_passwd);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host file\n");
}

#[test]
fn bad_commits_are_refused_and_make_nothing() {
    // A store of its own: the other tests commit images meanwhile.
    if store().is_none() {
        return;
    }
    let image = &basic_test_support::harness()
        .unwrap()
        .reference("busybox_latest");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(basic_docker(root, &["pull", "-q", image]));
    let _cleanup = Cleanup::new(root, &["commit-refused"]);
    ok(basic_docker(
        root,
        &["run", "--name", "commit-refused", image, "true"],
    ));
    let before = ok(basic_docker(root, &["images", "-q"]));
    for (args, says) in [
        (
            vec!["commit", "-c", "RUN rm -rf /", "commit-refused"],
            "RUN",
        ),
        (
            vec!["commit", "-c", "EXPOSE http", "commit-refused"],
            "invalid port",
        ),
        (
            vec!["commit", "commit-refused", "Bad Name"],
            "invalid reference format",
        ),
        (vec!["commit", "no-such-container"], "No such container"),
    ] {
        let out = basic_docker(root, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert_eq!(ok(basic_docker(root, &["images", "-q"])), before);
}

#[test]
fn dockers_cli_commits_through_the_api() {
    let Some(service) = common::service::ApiService::start() else {
        return;
    };
    let image = service.image.clone();
    ok(service.docker(&[
        "run",
        "--name",
        "api-commit",
        &image,
        "sh",
        "-c",
        "echo through the api > /api.txt",
    ]));
    // docker's CLI: `POST /commit?container=…&repo=…&tag=…&changes=…`.
    let id = ok(service.docker(&[
        "commit",
        "-c",
        "ENV VIA=api",
        "-m",
        "from docker",
        "api-commit",
        "via-api:1",
    ]));
    assert!(id.starts_with("sha256:"), "{id}");
    let seen = ok(service.docker(&[
        "run",
        "--rm",
        "via-api:1",
        "sh",
        "-c",
        "cat /api.txt; echo $VIA",
    ]));
    assert_eq!(seen, "through the api\napi");
    // The raw answer: 201 and docker's `{"Id": …}`.
    let (status, body) =
        service.request("POST", "/v1.41/commit?container=api-commit&pause=0", None);
    assert_eq!(status, 201, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        answer["Id"].as_str().unwrap().starts_with("sha256:"),
        "{body}"
    );
    let (status, body) = service.request("POST", "/v1.41/commit?container=none-such", None);
    assert_eq!(status, 404, "{body}");
    ok(service.docker(&["rm", "api-commit"]));
}

#[test]
fn zstd_layers_and_reproducible_commits() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["commit-zstd"]).images(&["zstd:1", "epoch:1", "epoch:2"]);
    ok(basic_docker(
        root,
        &[
            "run",
            "--name",
            "commit-zstd",
            image,
            "sh",
            "-c",
            "echo packed > /packed.txt",
        ],
    ));
    ok(basic_docker(
        root,
        &["commit", "--compression", "zstd", "commit-zstd", "zstd:1"],
    ));
    assert_eq!(
        ok(basic_docker(
            root,
            &["run", "--rm", "zstd:1", "cat", "/packed.txt"]
        )),
        "packed"
    );
    let record: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["inspect", "zstd:1"]))).unwrap();
    let id = record[0]["Id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sha256:"));
    // With SOURCE_DATE_EPOCH, committing the same container twice gives one image.
    let commit_at = |tag: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_basic-docker"));
        command
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .arg("--root")
            .arg(root)
            .args(["commit", "commit-zstd", tag]);
        ok(output_within(
            &mut command,
            basic_test_support::bounded::COMMAND_LIMIT,
            "commit",
        ))
    };
    let first = commit_at("epoch:1");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = commit_at("epoch:2");
    assert_eq!(first, second);
    let doc: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["inspect", "epoch:1"]))).unwrap();
    assert!(
        doc[0]["Created"]
            .as_str()
            .unwrap()
            .starts_with("2023-11-14T22:13:20")
    );
}
