//! A later layer writing `lib/x.so` where an earlier one made `lib` a symlink
//! (`lib -> usr/lib`, merged-/usr images) gets containerd's and umoci's tree from
//! `basic-docker pull`: the file lands where the symlink points and the symlink
//! stays. Checked against `umoci unpack` of the same image (names, types, modes,
//! owners, link targets, contents), in a running container, and against layers
//! whose symlinks point outside the root.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::process::Command;

use basic_test_support::bounded::{COMMAND_LIMIT, output_within};
use basic_test_support::image::ImageBuilder;
use basic_test_support::{harness, require_root};
use common::{Cleanup, basic_docker, ok, stdout};
use sha2::{Digest as _, Sha256};

/// busybox, then a merged-/usr layer with nested links, then a layer that writes
/// through all of them (parents given as members nowhere, as layer tools that
/// build from a directory tree write them), one that whites out and makes opaque
/// through them, and one that writes below a lower directory without naming it
/// (GNU tar of a subtree), which must keep that directory's mode.
fn merged_usr_image() -> ImageBuilder {
    ImageBuilder::busybox()
        .layer(|l| {
            l.dir("usr", 0o755)
                .dir("usr/lib", 0o751)
                .file("usr/lib/base.so", b"base\n", 0o644)
                .symlink("lib", "usr/lib")
                .dir("usr/a", 0o750)
                // `..` at the root stays there: `/a` is `/usr/a`.
                .symlink("a", "../usr/a")
                // A symlink to a symlink.
                .symlink("b", "a")
                .symlink("usr/c", "/b");
        })
        .layer(|l| {
            l.file("lib/x.so", b"x library\n", 0o755)
                .file("lib/sub/y", b"y\n", 0o600)
                .file("b/through-b", b"through b\n", 0o644)
                .file("usr/c/through-c", b"through c\n", 0o640)
                .file("a/through-a", b"through a\n", 0o644);
        })
        .layer(|l| {
            l.file("lib/.wh.sub", b"", 0o644)
                .file("b/.wh..wh..opq", b"", 0o644)
                .file("b/after-opaque", b"after\n", 0o644);
        })
        .layer(|l| {
            l.file("usr/lib/settled.so", b"settled\n", 0o644);
        })
}

/// What a user compares in two trees: type, mode, owner, link target, content.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let what = if ft.is_dir() {
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("symlink -> {}", fs::read_link(&path).unwrap().display())
        } else if ft.is_file() {
            let sum = Sha256::digest(fs::read(&path).unwrap());
            let hex: String = sum.iter().map(|b| format!("{b:02x}")).collect();
            format!("file {hex}")
        } else {
            format!("other {:o}", md.mode() & 0o170000)
        };
        let rel = path.strip_prefix(root).unwrap().display().to_string();
        out.insert(
            rel,
            format!(
                "{what} mode {:o} owner {}:{}",
                md.mode() & 0o7777,
                md.uid(),
                md.gid()
            ),
        );
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

fn differences(ours: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (path, node) in theirs {
        match ours.get(path) {
            None => out.push_str(&format!("\n only umoci: {path} {node}")),
            Some(o) if o != node => out.push_str(&format!("\n {path}: ours {o}, umoci {node}")),
            Some(_) => {}
        }
    }
    for (path, node) in ours {
        if !theirs.contains_key(path) {
            out.push_str(&format!("\n only ours: {path} {node}"));
        }
    }
    out
}

#[test]
fn the_pulled_tree_equals_umocis_and_files_land_through_lower_symlinks() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let umoci_present = Command::new("umoci").arg("--version").output().is_ok();
    if !umoci_present {
        assert!(
            std::env::var_os("BASIC_DOCKER_REQUIRE_PRIVILEGED").is_none(),
            "umoci is needed (apt-get install umoci)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = merged_usr_image();
    let layout = dir.path().join("layout");
    image.write_layout(&layout);
    let reference = image.push(&h.open, "tests/merged-usr");

    let bundle = dir.path().join("bundle");
    let unpacked = output_within(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
        COMMAND_LIMIT,
        "umoci unpack",
    );
    stdout(&unpacked);
    let theirs = tree(&bundle.join("rootfs"));

    let root = dir.path().join("root");
    ok(basic_docker(&root, &["pull", "-q", &reference]));
    let _cleanup = Cleanup::new(&root, &[]).images(&[reference.as_str()]);
    let merged = ok(basic_docker(&root, &["image", "mount", &reference]));
    let ours = tree(Path::new(&merged));
    ok(basic_docker(&root, &["image", "unmount", &reference]));

    // What umoci made of it is what the issue describes (so the comparison
    // means something): the symlinks stayed and the files went through them.
    assert_eq!(theirs["lib"], "symlink -> usr/lib mode 777 owner 0:0");
    assert!(theirs["usr/lib/x.so"].starts_with("file "));
    assert!(theirs.contains_key("usr/a/after-opaque"));
    assert!(!theirs.contains_key("usr/a/through-a"), "opaque through b");
    assert!(
        !theirs.contains_key("usr/lib/sub"),
        "whited out through lib"
    );
    assert!(theirs["usr/lib"].contains("mode 751"));
    let diff = differences(&ours, &theirs);
    assert!(diff.is_empty(), "pulled tree differs from umoci's:{diff}");

    // In a container, /lib/x.so and /usr/lib/x.so are one file.
    let out = ok(basic_docker(
        &root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &reference,
            "sh",
            "-c",
            "stat -c '%d:%i' /lib/x.so /usr/lib/x.so; readlink /lib; cat /lib/x.so /usr/c/after-opaque /lib/settled.so",
        ],
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 6, "{out}");
    assert_eq!(
        lines[0], lines[1],
        "/lib/x.so and /usr/lib/x.so differ: {out}"
    );
    assert_eq!(lines[2], "usr/lib");
    assert_eq!(&lines[3..], ["x library", "after", "settled"]);
}

#[test]
fn lower_symlinks_to_the_host_lead_into_the_root() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let name = format!("basic-docker-layer-symlink-attack-{}", std::process::id());
    let outside = tempfile::tempdir().unwrap();
    let reference = ImageBuilder::busybox()
        .layer(|l| {
            l.symlink("abs", "/etc")
                .symlink("up", "../../../../../../..")
                .symlink("host", outside.path().to_str().unwrap());
        })
        .layer(|l| {
            l.file(&format!("abs/{name}"), b"abs\n", 0o644)
                .file(&format!("up/tmp/{name}"), b"up\n", 0o644)
                .file(&format!("host/{name}"), b"host\n", 0o644);
        })
        .push(&h.open, "hostile/layer-symlinks");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    ok(basic_docker(root, &["pull", "-q", &reference]));
    let _cleanup = Cleanup::new(root, &[]).images(&[reference.as_str()]);
    assert!(
        !Path::new("/etc").join(&name).exists(),
        "wrote the host's /etc"
    );
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "wrote the host's /tmp"
    );
    assert_eq!(
        fs::read_dir(outside.path()).unwrap().count(),
        0,
        "wrote the host directory an absolute symlink names"
    );
    // The files are in the image, where the symlinks point inside its root.
    let script = format!(
        "cat /etc/{name} /tmp/{name} {}/{name}",
        outside.path().display()
    );
    let out = ok(basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            &reference,
            "sh",
            "-c",
            &script,
        ],
    ));
    assert_eq!(out, "abs\nup\nhost");
}
