//! Layer semantics: what a user finds in the directory after applying layers.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use basic_rootfs::{
    ApplyError, ApplyMode, ApplyOptions, LayerJob, apply_layer, apply_layers_parallel,
};
use common::{Layer, gzip, node, privileged, sha256_hex, tree, zstd};
use tar::EntryType;

fn flatten() -> ApplyOptions {
    ApplyOptions::new(ApplyMode::Flatten)
}

fn overlay() -> ApplyOptions {
    ApplyOptions::new(ApplyMode::Overlay)
}

fn apply(
    tar: &[u8],
    dir: &Path,
    opts: &ApplyOptions,
) -> Result<basic_rootfs::LayerStats, ApplyError> {
    apply_layer(tar, dir, opts)
}

#[test]
fn every_entry_kind_and_attribute() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}", "f".repeat(150));
    let long_target = format!("/{}", "t".repeat(200));
    let mut l = Layer::new();
    l.dir("etc", 0o755)
        .file("etc/hostname", b"box\n", 0o644)
        .file("empty", b"", 0o600)
        .file("bin/su", b"#!su", 0o4755)
        .file("bin/wall", b"#!wall", 0o2755)
        .dir("tmp", 0o1777)
        .file_owned("home/user/.profile", b"export A=1\n", 0o640, 1000, 1001)
        .symlink("abs", "/etc/hostname")
        .symlink("rel", "../etc/hostname")
        .symlink("dangling", "/no/such/file")
        .hardlink("etc/hostname.hard", "etc/hostname")
        .device("dev/null", EntryType::Char, 1, 3, 0o666)
        .device("dev/loop0", EntryType::Block, 7, 0, 0o660)
        .device("run/fifo", EntryType::Fifo, 0, 0, 0o620)
        .dir(&long_dir, 0o755)
        .file(&long_name, b"long", 0o644)
        .symlink("longlink", &long_target)
        .pax(&[
            ("SCHILY.xattr.user.foo", b"bar"),
            (
                "SCHILY.xattr.security.capability",
                &[
                    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
            ),
            ("mtime", b"1700000000.123456789"),
        ])
        .file("bin/ping", b"#!ping", 0o755)
        .pax(&[
            (
                "path",
                format!("pax/{}/{}", "q".repeat(100), "p".repeat(250)).as_bytes(),
            ),
            ("uid", b"3000000"),
        ])
        .file("ignored-name", b"pax named", 0o644);
    let tar = l.finish();
    let stats = apply(&tar, tmp.path(), &flatten()).unwrap();
    assert_eq!(stats.diff_id, format!("sha256:{}", sha256_hex(&tar)));
    assert_eq!(stats.tar_bytes, tar.len() as u64);

    let t = tree(tmp.path());
    assert_eq!(fs::read(tmp.path().join("etc/hostname")).unwrap(), b"box\n");
    assert_eq!(t["empty"].size, 0);
    assert_eq!(t["empty"].mode, 0o600);
    assert_eq!(t["bin/su"].mode, 0o4755);
    assert_eq!(t["bin/wall"].mode, 0o2755);
    assert_eq!(t["tmp"].mode, 0o1777);
    let profile = &t["home/user/.profile"];
    assert_eq!(
        (profile.uid, profile.gid, profile.mode),
        (1000, 1001, 0o640)
    );
    assert_eq!(t["abs"].link.as_deref(), Some("/etc/hostname"));
    assert_eq!(t["rel"].link.as_deref(), Some("../etc/hostname"));
    assert_eq!(t["dangling"].link.as_deref(), Some("/no/such/file"));
    assert_eq!(t["etc/hostname.hard"].ino, t["etc/hostname"].ino);
    assert_eq!(t["etc/hostname"].nlink, 2);
    assert_eq!(
        (t["dev/null"].kind, t["dev/null"].rdev),
        ("char", libc::makedev(1, 3))
    );
    assert_eq!(t["dev/null"].mode, 0o666);
    assert_eq!(
        (t["dev/loop0"].kind, t["dev/loop0"].rdev),
        ("block", libc::makedev(7, 0))
    );
    assert_eq!((t["run/fifo"].kind, t["run/fifo"].mode), ("fifo", 0o620));
    assert_eq!(fs::read(tmp.path().join(&long_name)).unwrap(), b"long");
    assert_eq!(t["longlink"].link.as_deref(), Some(long_target.as_str()));
    let ping = &t["bin/ping"];
    assert_eq!(ping.xattrs["user.foo"], b"bar");
    assert!(
        ping.xattrs.contains_key("security.capability"),
        "{:?}",
        ping.xattrs
    );
    assert_eq!(ping.mtime, (1_700_000_000, 123_456_789));
    let pax_name = format!("pax/{}/{}", "q".repeat(100), "p".repeat(250));
    assert_eq!(fs::read(tmp.path().join(&pax_name)).unwrap(), b"pax named");
    assert_eq!(t[&pax_name].uid, 3_000_000);
    assert!(!t.contains_key("ignored-name"));
    // Directory times are restored after their contents were written.
    assert_eq!(t["etc"].mtime.0, common::MTIME as i64);
    assert_eq!(t[long_dir.as_str()].mtime.0, common::MTIME as i64);
    // Symlink times are set on the link itself.
    assert_eq!(t["abs"].mtime.0, common::MTIME as i64);
    assert_eq!(stats.hardlinks, 1);
    assert_eq!(stats.symlinks, 4);
}

#[test]
fn compressed_streams_and_media_types() {
    if !privileged() {
        return;
    }
    let mut l = Layer::new();
    l.file("a", b"hello", 0o644);
    let tar = l.finish();
    for (data, mt) in [
        (gzip(&tar), "application/vnd.oci.image.layer.v1.tar+gzip"),
        (zstd(&tar), "application/vnd.oci.image.layer.v1.tar+zstd"),
        (tar.clone(), "application/vnd.oci.image.layer.v1.tar"),
        // Mislabelled: the magic bytes win.
        (gzip(&tar), "application/vnd.oci.image.layer.v1.tar"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let stats = apply(&data, tmp.path(), &flatten().media_type(mt)).unwrap();
        assert_eq!(
            stats.diff_id,
            format!("sha256:{}", sha256_hex(&tar)),
            "{mt}"
        );
        assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"hello");
    }
    let tmp = tempfile::tempdir().unwrap();
    let err = apply(
        &gzip(&tar),
        tmp.path(),
        &flatten().media_type("application/vnd.oci.image.layer.v1.tar+gzip+encrypted"),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::Compression(_)), "{err}");
}

#[test]
fn diff_id_covers_padding_after_end_of_archive() {
    if !privileged() {
        return;
    }
    let mut l = Layer::new();
    l.file("a", b"x", 0o644);
    let mut tar = l.finish();
    // tar(1) pads to a 10 KiB record.
    tar.resize(10240, 0);
    let tmp = tempfile::tempdir().unwrap();
    let stats = apply(&gzip(&tar), tmp.path(), &flatten()).unwrap();
    assert_eq!(stats.diff_id, format!("sha256:{}", sha256_hex(&tar)));
    assert_eq!(stats.tar_bytes, 10240);
    // Much more padding than any header may take is still fine.
    tar.resize(8 << 20, 0);
    let tmp = tempfile::tempdir().unwrap();
    let stats = apply(&zstd(&tar), tmp.path(), &flatten()).unwrap();
    assert_eq!(stats.diff_id, format!("sha256:{}", sha256_hex(&tar)));
}

#[test]
fn whiteouts_flatten() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut l1 = Layer::new();
    l1.file("a/gone", b"1", 0o644)
        .file("a/kept", b"1", 0o644)
        .file("b/sub/deep", b"1", 0o644)
        .file("c", b"1", 0o644);
    apply(&l1.finish(), tmp.path(), &flatten()).unwrap();
    let mut l2 = Layer::new();
    l2.file("a/.wh.gone", b"", 0o644)
        .file(".wh.b", b"", 0o644)
        // A whiteout never hides an entry of its own layer.
        .file("new", b"2", 0o644)
        .file(".wh.new", b"", 0o644)
        // Whiteout of something that never existed is fine.
        .file("nowhere/.wh.x", b"", 0o644);
    let stats = apply(&l2.finish(), tmp.path(), &flatten()).unwrap();
    assert_eq!(stats.whiteouts, 4);
    let t = tree(tmp.path());
    assert!(!t.contains_key("a/gone"));
    assert!(t.contains_key("a/kept"));
    assert!(!t.contains_key("b"));
    assert!(t.contains_key("c"));
    assert!(t.contains_key("new"));
    assert!(!t.keys().any(|k| k.contains(".wh.")), "{:?}", t.keys());
}

#[test]
fn opaque_directories_flatten_any_order() {
    if !privileged() {
        return;
    }
    for marker_first in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let mut l1 = Layer::new();
        l1.file("d/lower", b"1", 0o644)
            .file("d/sub/lower", b"1", 0o644)
            .file("other/x", b"1", 0o644);
        apply(&l1.finish(), tmp.path(), &flatten()).unwrap();
        let mut l2 = Layer::new();
        if marker_first {
            l2.file("d/.wh..wh..opq", b"", 0o644);
        }
        l2.dir("d", 0o755)
            .file("d/upper", b"2", 0o644)
            .file("d/sub/upper", b"2", 0o644);
        if !marker_first {
            l2.file("d/.wh..wh..opq", b"", 0o644);
        }
        apply(&l2.finish(), tmp.path(), &flatten()).unwrap();
        let keys: Vec<_> = tree(tmp.path()).into_keys().collect();
        assert_eq!(
            keys,
            ["d", "d/sub", "d/sub/upper", "d/upper", "other", "other/x"],
            "marker first: {marker_first}"
        );
    }
}

#[test]
fn overlay_mode_whiteouts_are_devices_and_xattrs() {
    if !privileged() {
        return;
    }
    for marker_first in [true, false] {
        let tmp = tempfile::tempdir().unwrap();
        let mut l = Layer::new();
        if marker_first {
            l.file("d/.wh..wh..opq", b"", 0o644);
        }
        l.dir("d", 0o750)
            .file("d/upper", b"2", 0o644)
            .file("x/.wh.gone", b"", 0o644);
        if !marker_first {
            l.file("d/.wh..wh..opq", b"", 0o644);
        }
        apply(&l.finish(), tmp.path(), &overlay()).unwrap();
        let t = tree(tmp.path());
        let gone = &t["x/gone"];
        assert_eq!(
            (gone.kind, gone.rdev, gone.uid, gone.gid),
            ("char", 0, 0, 0)
        );
        assert_eq!(t["d"].xattrs["trusted.overlay.opaque"], b"y");
        assert_eq!(t["d"].mode, 0o750);
        assert!(t.contains_key("d/upper"));
        assert!(!t.keys().any(|k| k.contains(".wh.")));
    }
}

#[test]
fn overlay_mode_whiteout_then_directory_is_opaque() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut l = Layer::new();
    l.file(".wh.d", b"", 0o644)
        .dir("d", 0o755)
        .file("d/new", b"", 0o644);
    apply(&l.finish(), tmp.path(), &overlay()).unwrap();
    let t = tree(tmp.path());
    assert_eq!(t["d"].kind, "dir");
    assert_eq!(t["d"].xattrs["trusted.overlay.opaque"], b"y");
}

#[test]
fn file_replaced_by_directory_and_back() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut l1 = Layer::new();
    l1.file("x", b"file", 0o644)
        .dir("y", 0o755)
        .file("y/inner", b"i", 0o644);
    apply(&l1.finish(), tmp.path(), &flatten()).unwrap();
    let mut l2 = Layer::new();
    l2.dir("x", 0o700)
        .file("x/child", b"c", 0o644)
        .file("y", b"now a file", 0o600);
    apply(&l2.finish(), tmp.path(), &flatten()).unwrap();
    let t = tree(tmp.path());
    assert_eq!((t["x"].kind, t["x"].mode), ("dir", 0o700));
    assert_eq!(t["y"].kind, "file");
    assert!(!t.contains_key("y/inner"));
    let mut l3 = Layer::new();
    l3.file("x", b"file again", 0o644).dir("y", 0o755);
    apply(&l3.finish(), tmp.path(), &flatten()).unwrap();
    let t = tree(tmp.path());
    assert_eq!(fs::read(tmp.path().join("x")).unwrap(), b"file again");
    assert_eq!(t["y"].kind, "dir");
    // Within one layer too: the later member wins.
    let mut l4 = Layer::new();
    l4.file("z", b"1", 0o644)
        .dir("z", 0o755)
        .file("z/in", b"", 0o644)
        .symlink("z", "x");
    apply(&l4.finish(), tmp.path(), &flatten()).unwrap();
    assert_eq!(node(&tmp.path().join("z")).link.as_deref(), Some("x"));
}

#[test]
fn hardlinks_to_lower_layers() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut l1 = Layer::new();
    l1.file("usr/bin/python3.11", b"py", 0o755);
    apply(&l1.finish(), tmp.path(), &flatten()).unwrap();
    let mut l2 = Layer::new();
    l2.hardlink("usr/bin/python3", "usr/bin/python3.11")
        // A link whose target is replaced later keeps the old inode, as tar does.
        .hardlink("same", "usr/bin/python3.11")
        .hardlink("same", "usr/bin/python3.11");
    apply(&l2.finish(), tmp.path(), &flatten()).unwrap();
    let t = tree(tmp.path());
    assert_eq!(t["usr/bin/python3"].ino, t["usr/bin/python3.11"].ino);
    assert_eq!(t["usr/bin/python3"].nlink, 3);

    // Overlay mode: the target must be in the layer itself.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut l3 = Layer::new();
    l3.hardlink("usr/bin/python3", "usr/bin/python3.11");
    let err = apply(&l3.finish(), tmp2.path(), &overlay()).unwrap_err();
    assert!(matches!(err, ApplyError::LinkTarget { .. }), "{err}");
    assert!(err.to_string().contains("usr/bin/python3"), "{err}");
}

#[test]
fn hardlink_to_symlink_links_the_symlink() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut l = Layer::new();
    l.symlink("s", "/etc/passwd").hardlink("h", "s");
    apply(&l.finish(), tmp.path(), &flatten()).unwrap();
    let t = tree(tmp.path());
    assert_eq!(t["h"].link.as_deref(), Some("/etc/passwd"));
    assert_eq!(t["h"].ino, t["s"].ino);
}

#[test]
fn gnu_and_pax_sparse_files() {
    if !privileged() {
        return;
    }
    let src = tempfile::tempdir().unwrap();
    let path = src.path().join("sparse");
    {
        let f = fs::File::create(&path).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"start", 0).unwrap();
        f.write_all_at(b"middle", 5 << 20).unwrap();
        f.write_all_at(b"end", (20 << 20) - 3).unwrap();
    }
    let expected = fs::read(&path).unwrap();
    for format in [
        &["--format=gnu"][..],
        &["--format=pax", "--sparse-version=1.0"],
        &["--format=pax", "--sparse-version=0.1"],
        &["--format=pax", "--sparse-version=0.0"],
    ] {
        let out = std::process::Command::new("tar")
            .args(["--sparse", "-C"])
            .arg(src.path())
            .args(format)
            .args(["-cf", "-", "sparse"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tmp = tempfile::tempdir().unwrap();
        let stats = apply(&out.stdout, tmp.path(), &flatten())
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(stats.files, 1, "{format:?}");
        let got = tmp.path().join("sparse");
        assert!(
            fs::read(&got).unwrap() == expected,
            "{format:?}: content differs"
        );
        let md = fs::metadata(&got).unwrap();
        assert_eq!(md.len(), 20 << 20);
        assert!(
            md.blocks() * 512 < 1 << 20,
            "{format:?}: not sparse ({} blocks)",
            md.blocks()
        );
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "{format:?}");
    }
}

#[test]
fn system_tar_round_trip() {
    if !privileged() {
        return;
    }
    // A tree written by GNU tar (PAX format with xattrs) comes back identical.
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    fs::create_dir_all(s.join("a/b")).unwrap();
    fs::write(s.join("a/b/file"), b"content").unwrap();
    fs::write(s.join("a/exe"), b"exe").unwrap();
    std::os::unix::fs::symlink("b/file", s.join("a/link")).unwrap();
    fs::hard_link(s.join("a/b/file"), s.join("a/hard")).unwrap();
    xattr::set(s.join("a/exe"), "user.k", b"v").unwrap();
    std::process::Command::new("chown")
        .args(["1234:5678"])
        .arg(s.join("a/exe"))
        .status()
        .unwrap();
    std::process::Command::new("chmod")
        .args(["4711"])
        .arg(s.join("a/exe"))
        .status()
        .unwrap();
    let out = std::process::Command::new("tar")
        .args([
            "--format=pax",
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "-C",
        ])
        .arg(s)
        .args(["-cf", "-", "."])
        .output()
        .unwrap();
    assert!(out.status.success());
    let tmp = tempfile::tempdir().unwrap();
    apply(&out.stdout, tmp.path(), &flatten()).unwrap();
    let mut want = tree(s);
    let mut got = tree(tmp.path());
    for t in [&mut want, &mut got] {
        for n in t.values_mut() {
            n.ino = 0;
            if n.kind == "dir" || n.kind == "symlink" {
                // GNU tar stores whole seconds for these without --posix mtime records.
                n.mtime.1 = 0;
            }
        }
    }
    for (k, w) in &want {
        let g = got.get(k).unwrap_or_else(|| panic!("missing {k}"));
        assert_eq!(
            (
                w.kind, w.mode, w.uid, w.gid, &w.sha256, &w.link, &w.xattrs, w.nlink
            ),
            (
                g.kind, g.mode, g.uid, g.gid, &g.sha256, &g.link, &g.xattrs, g.nlink
            ),
            "{k}"
        );
        assert_eq!(w.mtime.0, g.mtime.0, "{k}");
    }
    assert_eq!(want.len(), got.len());
}

#[test]
fn parallel_overlay_layers() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut jobs = Vec::new();
    let mut tars = Vec::new();
    for i in 0..6 {
        let mut l = Layer::new();
        for j in 0..50 {
            l.file(&format!("l{i}/f{j}"), format!("{i}-{j}").as_bytes(), 0o644);
        }
        let tar = l.finish();
        let dir = tmp.path().join(i.to_string());
        fs::create_dir(&dir).unwrap();
        tars.push(tar.clone());
        jobs.push(LayerJob {
            reader: std::io::Cursor::new(gzip(&tar)),
            target: dir,
        });
    }
    let results = apply_layers_parallel(jobs, &overlay(), 3);
    for (i, r) in results.into_iter().enumerate() {
        let stats = r.unwrap();
        assert_eq!(stats.diff_id, format!("sha256:{}", sha256_hex(&tars[i])));
        assert_eq!(stats.files, 50);
        assert_eq!(
            fs::read(tmp.path().join(format!("{i}/l{i}/f7"))).unwrap(),
            format!("{i}-7").as_bytes()
        );
    }
}

#[test]
fn ownership_not_preserved_on_request() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut l = Layer::new();
    l.file_owned("f", b"", 0o4755, 1000, 1000);
    apply(
        &l.finish(),
        tmp.path(),
        &flatten().preserve_ownership(false),
    )
    .unwrap();
    let n = node(&tmp.path().join("f"));
    assert_eq!((n.uid, n.gid, n.mode), (0, 0, 0o4755));
}

#[test]
fn xattrs_on_every_kind_survive_chown() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cap: &[u8] = &[
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let mut l = Layer::new();
    // chown to 1000 would clear security.capability if it came after.
    l.pax(&[
        ("SCHILY.xattr.security.capability", cap),
        ("uid", b"1000"),
        ("gid", b"1000"),
    ])
    .file("cap", b"x", 0o4750)
    .pax(&[("SCHILY.xattr.trusted.sym", b"1")])
    .symlink("sym", "cap")
    .pax(&[
        ("SCHILY.xattr.trusted.fifo", b"2"),
        ("SCHILY.xattr.user.fifo", b"3"),
    ])
    .device("fifo", EntryType::Fifo, 0, 0, 0o600)
    .pax(&[("SCHILY.xattr.user.dir", b"4")])
    .dir("d", 0o700);
    apply(&l.finish(), tmp.path(), &flatten()).unwrap();
    let t = tree(tmp.path());
    assert_eq!(t["cap"].xattrs["security.capability"], cap);
    assert_eq!(
        (t["cap"].uid, t["cap"].gid, t["cap"].mode),
        (1000, 1000, 0o4750)
    );
    assert_eq!(t["sym"].xattrs["trusted.sym"], b"1");
    assert_eq!(t["fifo"].xattrs["trusted.fifo"], b"2");
    // Linux refuses user.* xattrs on FIFOs: skipped, as docker does.
    assert!(!t["fifo"].xattrs.contains_key("user.fifo"));
    assert_eq!(t["d"].xattrs["user.dir"], b"4");
}

#[test]
fn overlay_mode_with_lower_layers_copies_up_and_keeps_directory_metadata() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (l0dir, l1dir) = (tmp.path().join("l0"), tmp.path().join("l1"));
    fs::create_dir(&l0dir).unwrap();
    fs::create_dir(&l1dir).unwrap();
    let mut l0 = Layer::new();
    l0.dir("tmp", 0o1777)
        .file_owned("usr/bin/tool", b"tool", 0o4755, 0, 50)
        .file("hidden/file", b"", 0o644);
    apply(&l0.finish(), &l0dir, &overlay()).unwrap();
    let mut l1 = Layer::new();
    l1.file("tmp/new", b"", 0o644)
        .hardlink("usr/bin/tool-link", "usr/bin/tool")
        .file(".wh.hidden", b"", 0o644);
    apply(
        &l1.finish(),
        &l1dir,
        &overlay().lower_layers(vec![l0dir.clone()]),
    )
    .unwrap();
    let t = tree(&l1dir);
    assert_eq!(
        t["tmp"].mode, 0o1777,
        "implicit directory keeps the lower mode"
    );
    assert_eq!(
        t["usr/bin/tool"].ino, t["usr/bin/tool-link"].ino,
        "copied up, then linked"
    );
    assert_eq!(
        (t["usr/bin/tool"].mode, t["usr/bin/tool"].gid),
        (0o4755, 50)
    );
    assert_eq!(fs::read(l1dir.join("usr/bin/tool")).unwrap(), b"tool");
    // A hard link to something a whiteout hid is not found.
    let l2dir = tmp.path().join("l2");
    fs::create_dir(&l2dir).unwrap();
    let mut l2 = Layer::new();
    l2.hardlink("again", "hidden/file");
    let err = apply(
        &l2.finish(),
        &l2dir,
        &overlay().lower_layers(vec![l0dir, l1dir]),
    )
    .unwrap_err();
    assert!(matches!(err, ApplyError::LinkTarget { .. }), "{err}");
}

#[test]
fn very_deep_paths() {
    if !privileged() {
        return;
    }
    // 2000 directories deep: within PATH_MAX, and no recursion limits.
    let tmp = tempfile::tempdir().unwrap();
    let deep = "d/".repeat(2000) + "f";
    let mut l = Layer::new();
    l.pax(&[("path", deep.as_bytes())])
        .file("x", b"deep", 0o644);
    for mode in [flatten(), overlay()] {
        let dir = tempfile::tempdir_in(tmp.path()).unwrap();
        let stats = apply(&l_clone(&l), dir.path(), &mode).unwrap();
        assert_eq!(stats.files, 1);
    }
}

fn l_clone(l: &Layer) -> Vec<u8> {
    l.bytes_so_far()
}

/// Owner, mode and time fields left as NUL bytes (as `tar::Header::new_ustar` leaves
/// them, and other writers too) are 0, as GNU tar and Python read them; PAX `uid` and
/// `gid` records give owners too large for the header.
#[test]
fn numeric_fields_as_gnu_tar_reads_them() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut blank = tar::Header::new_ustar();
    blank.set_size(3);
    blank.set_entry_type(EntryType::Regular);
    let fields = blank.as_old_mut();
    fields.uid = [0; 8];
    fields.gid = [0; 8];
    fields.mode = *b"  644 \0\0";
    let mut l = Layer::new();
    l.add(blank, "blank", b"abc")
        .pax(&[("uid", b"3000000"), ("gid", b"3000001")])
        .file("big-owner", b"", 0o600);
    let mut tar = l.finish();
    let uid_field = 108..116;
    assert_eq!(&tar[uid_field], &[0u8; 8], "the header keeps its NUL uid");
    apply(&tar, tmp.path(), &flatten()).unwrap();
    let n = node(&tmp.path().join("blank"));
    assert_eq!((n.uid, n.gid, n.mode), (0, 0, 0o644));
    let n = node(&tmp.path().join("big-owner"));
    assert_eq!((n.uid, n.gid), (3_000_000, 3_000_001));
    // Garbage in a numeric field is still refused, naming the member and the field.
    tar[108] = b'x';
    let mut header = tar::Header::from_byte_slice(&tar[..512]).clone();
    header.set_cksum();
    tar[..512].copy_from_slice(header.as_bytes());
    let dir = tempfile::tempdir_in(tmp.path()).unwrap();
    let e = apply(&tar, dir.path(), &flatten()).unwrap_err().to_string();
    assert!(e.contains("blank") && e.contains("uid"), "{e}");
}
