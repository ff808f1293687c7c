//! What `save` and `export` write is read back by `import` and `load`, and by the
//! other readers of tar archives a user has: GNU tar, Python's `tarfile`, skopeo and
//! umoci. An archive whose headers leave the owner fields as NUL bytes (as `save`
//! once wrote them) still imports, as GNU tar reads it.

mod common;

use common::{Cleanup, basic_docker, busybox_store as store, ok, stdout};

use std::path::Path;
use std::process::Command;

/// Runs `program args...`, asserting it succeeded; returns its standard output.
#[track_caller]
fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// GNU tar and Python's tarfile list `archive`; every member is owned by `owners`.
#[track_caller]
fn common_readers_accept(archive: &Path, owners: &str) {
    let path = archive.to_str().unwrap();
    let listed = tool("tar", &["--numeric-owner", "-tvf", path]);
    assert!(!listed.is_empty());
    let script = "import sys, tarfile\n\
                  t = tarfile.open(sys.argv[1])\n\
                  print(sorted({f'{m.uid}/{m.gid}' for m in t.getmembers()}))";
    let python = tool("/usr/bin/python3", &["-c", script, path]);
    assert_eq!(python.trim(), owners, "{path}");
}

/// `archive` with every header's uid and gid fields set to NUL bytes, checksums fixed.
fn with_blank_owners(archive: &[u8]) -> Vec<u8> {
    let mut out = archive.to_vec();
    let mut at = 0;
    while at + 512 <= out.len() && out[at..at + 512].iter().any(|b| *b != 0) {
        let header = &mut out[at..at + 512];
        header[108..124].fill(0);
        // The checksum: the header's bytes summed with its own field as spaces.
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let size = std::str::from_utf8(&header[124..136]).unwrap();
        let size = usize::from_str_radix(size.trim_matches(|c| c == '\0' || c == ' '), 8).unwrap();
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

#[test]
fn save_is_read_by_import_load_gnu_tar_python_skopeo_and_umoci() {
    let Some((store, image)) = store() else {
        return;
    };
    let root = store.path();
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.tar");
    let saved_str = saved.to_str().unwrap();
    ok(basic_docker(root, &["save", "-o", saved_str, image]));
    common_readers_accept(&saved, "['0/0']");

    let _cleanup = Cleanup::new(root, &[]).images(&["saved/as-files:v1", "blank/owners:v1"]);
    ok(basic_docker(
        root,
        &["import", saved_str, "saved/as-files:v1"],
    ));
    // As the archive `save` wrote before its headers carried owners.
    let blank = dir.path().join("blank.tar");
    std::fs::write(&blank, with_blank_owners(&std::fs::read(&saved).unwrap())).unwrap();
    ok(basic_docker(
        root,
        &["import", blank.to_str().unwrap(), "blank/owners:v1"],
    ));

    let fresh = dir.path().join("fresh");
    let loaded = ok(basic_docker(&fresh, &["load", "-i", saved_str]));
    assert!(loaded.starts_with("Loaded image: "), "{loaded}");
    let id = |root: &Path| ok(basic_docker(root, &["images", "-q", image]));
    assert_eq!(id(&fresh), id(root));

    for transport in ["docker-archive", "oci-archive"] {
        let copy = dir.path().join(transport);
        tool(
            "skopeo",
            &[
                "copy",
                "-q",
                &format!("{transport}:{saved_str}"),
                &format!("oci:{}:copied", copy.display()),
            ],
        );
    }
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    tool("tar", &["-C", layout.to_str().unwrap(), "-xf", saved_str]);
    let tag = image.rsplit_once(':').map_or("latest", |(_, t)| t);
    let bundle = dir.path().join("bundle");
    tool(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:{tag}", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

#[test]
fn export_is_read_by_import_gnu_tar_and_python_and_runs_again() {
    let Some((store, image)) = store() else {
        return;
    };
    let root = store.path();
    let dir = tempfile::tempdir().unwrap();
    let name = "round-trip-export";
    let _cleanup = Cleanup::new(root, &[name]).images(&["exported/root:v1"]);
    ok(basic_docker(
        root,
        &["create", "--name", name, "--network", "none", image, "true"],
    ));
    let exported = dir.path().join("exported.tar");
    let exported_str = exported.to_str().unwrap();
    ok(basic_docker(root, &["export", "-o", exported_str, name]));
    common_readers_accept(&exported, "['0/0']");
    ok(basic_docker(
        root,
        &["import", exported_str, "exported/root:v1"],
    ));
    let out = basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "exported/root:v1",
            "cat",
            "/etc/passwd",
        ],
    );
    assert!(stdout(&out).starts_with("root:x:0:0:"));
}
