//! Snapshotters on real mounts: what a container sees in its root.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use basic_rootfs::snapshot::detect;
use basic_rootfs::{
    ApplyMode, ApplyOptions, CopySnapshotter, OverlaySnapshotter, SnapshotError, Snapshotter,
    SnapshotterKind, apply_layer,
};
use common::{Layer, privileged, tree};

/// Every snapshotter kind; fuse-overlayfs too (it works as root as well as in a user
/// namespace), so its views are held to what the kernel's overlayfs shows.
const KINDS: [SnapshotterKind; 3] = [
    SnapshotterKind::Overlay,
    SnapshotterKind::Copy,
    SnapshotterKind::FuseOverlay,
];

/// Three overlay-form layers with a whiteout, an opaque directory, and a
/// file replaced by a directory.
fn layers(base: &Path) -> Vec<PathBuf> {
    let mut l0 = Layer::new();
    l0.file("etc/keep", b"keep", 0o644)
        .file("etc/gone", b"gone", 0o644)
        .file("opq/lower", b"lower", 0o644)
        .file("x", b"file", 0o644)
        .file("bin/tool", b"tool", 0o4755)
        .hardlink("bin/tool2", "bin/tool");
    let mut l1 = Layer::new();
    l1.file("etc/.wh.gone", b"", 0o644)
        .file("opq/upper", b"upper", 0o644)
        .file("opq/.wh..wh..opq", b"", 0o644)
        .dir("x", 0o755)
        .file("x/in", b"in", 0o644);
    let mut l2 = Layer::new();
    l2.file("etc/new", b"new", 0o600);
    let mut dirs = Vec::new();
    for (i, l) in [l0, l1, l2].into_iter().enumerate() {
        let d = base.join(format!("layers/{i}/diff"));
        fs::create_dir_all(&d).unwrap();
        apply_layer(&l.finish()[..], &d, &ApplyOptions::new(ApplyMode::Overlay)).unwrap();
        dirs.push(d);
    }
    dirs
}

fn check_merged(root: &Path) {
    let t = tree(root);
    let keys: Vec<_> = t.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "bin",
            "bin/tool",
            "bin/tool2",
            "etc",
            "etc/keep",
            "etc/new",
            "opq",
            "opq/upper",
            "x",
            "x/in"
        ]
    );
    assert_eq!(t["bin/tool"].mode, 0o4755);
    assert_eq!(t["etc/new"].mode, 0o600);
    assert_eq!(fs::read(root.join("x/in")).unwrap(), b"in");
}

#[test]
fn overlay_snapshot_merges_layers_and_is_writable() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs = layers(tmp.path());
    let snap = OverlaySnapshotter::new(tmp.path().join("snapshotter"));
    let s = snap.prepare("c1", &dirs).unwrap();
    assert!(!s.readonly);
    assert!(matches!(
        snap.prepare("c1", &dirs),
        Err(SnapshotError::Exists(_))
    ));
    let target = tmp.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    snap.mount(&s, &target).unwrap();
    check_merged(&target);
    fs::write(target.join("etc/written"), b"by the container").unwrap();
    fs::remove_file(target.join("etc/keep")).unwrap();
    snap.unmount(&target).unwrap();
    // The write went to the snapshot's upper directory, the layers are untouched.
    assert_eq!(
        fs::read(s.dir.join("upper/etc/written")).unwrap(),
        b"by the container"
    );
    assert!(dirs[0].join("etc/keep").exists());
    snap.remove("c1").unwrap();
    assert!(!s.dir.exists());
    assert!(matches!(snap.remove("c1"), Err(SnapshotError::NotFound(_))));
}

#[test]
fn overlay_view_is_read_only() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs = layers(tmp.path());
    let snap = OverlaySnapshotter::new(tmp.path().join("snapshotter"));
    for (key, layers) in [("all", &dirs[..]), ("one", &dirs[..1])] {
        let s = snap.view(key, layers).unwrap();
        let target = tmp.path().join(format!("view-{key}"));
        fs::create_dir(&target).unwrap();
        snap.mount(&s, &target).unwrap();
        if layers.len() == 3 {
            check_merged(&target);
        } else {
            assert!(target.join("etc/gone").exists());
        }
        let err = fs::write(target.join("new"), b"").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{key}");
        snap.unmount(&target).unwrap();
        snap.remove(key).unwrap();
    }
}

/// fuse-overlayfs shows the layers as the kernel's overlayfs does (whiteouts, opaque
/// directories, a file replaced by a directory), read-only in a view; its mounts are
/// made by the program, and end with the unmount.
#[test]
fn fuse_overlay_views_show_what_overlay_shows() {
    use basic_rootfs::FuseOverlaySnapshotter;
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs = layers(tmp.path());
    let fuse = FuseOverlaySnapshotter::new(tmp.path().join("fuse"));
    let overlay = OverlaySnapshotter::new(tmp.path().join("overlay"));
    let (f, o) = (tmp.path().join("f"), tmp.path().join("o"));
    for d in [&f, &o] {
        fs::create_dir(d).unwrap();
    }
    let v = fuse.view("v", &dirs).unwrap();
    assert_eq!(v.mounts[0].fstype, basic_rootfs::FUSE_OVERLAY_FSTYPE);
    fuse.mount(&v, &f).unwrap();
    overlay
        .mount(&overlay.view("v", &dirs).unwrap(), &o)
        .unwrap();
    check_merged(&f);
    let table = basic_mountinfo::mounts().unwrap();
    let fuse_mount = table
        .iter()
        .rfind(|m| m.mount_point == f.canonicalize().unwrap())
        .unwrap();
    assert_eq!(fuse_mount.fs_type, "fuse.fuse-overlayfs");
    let (mut want, mut got) = (tree(&o), tree(&f));
    for t in [&mut want, &mut got] {
        for n in t.values_mut() {
            // Inode numbers and directory link counts are each filesystem's own.
            n.ino = 0;
            if n.kind == "dir" {
                n.nlink = 0;
            }
            n.xattrs.clear();
        }
    }
    assert_eq!(got, want, "fuse-overlayfs shows what overlayfs shows");
    let err = fs::write(f.join("new"), b"").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    fuse.unmount(&f).unwrap();
    overlay.unmount(&o).unwrap();
    assert!(!fuse.is_mounted(&f).unwrap());
    fuse.remove("v").unwrap();
    assert_eq!(
        "fuse-overlayfs".parse::<SnapshotterKind>().unwrap(),
        SnapshotterKind::FuseOverlay
    );
    assert_eq!(SnapshotterKind::FuseOverlay.to_string(), "fuse-overlayfs");
}

/// `n` overlay-form layers as an image store keeps them (`layers/<chain-id>/diff`):
/// layer `i` writes `data/f<i>` and `top` = `i`; the third whites out `data/f1` and the
/// last one `data/f0`.
fn numbered_layers(base: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let chain = format!("{:064x}", i * 7919 + 1);
            let d = base.join("layers").join(chain).join("diff");
            fs::create_dir_all(&d).unwrap();
            let mut l = Layer::new();
            l.file(&format!("data/f{i}"), format!("{i}").as_bytes(), 0o644)
                .file("top", format!("{i}").as_bytes(), 0o644);
            if i == 2 {
                l.file("data/.wh.f1", b"", 0o644);
            }
            if i == n - 1 {
                l.file("data/.wh.f0", b"", 0o644);
            }
            apply_layer(&l.finish()[..], &d, &ApplyOptions::new(ApplyMode::Overlay)).unwrap();
            d
        })
        .collect()
}

/// Mounts snapshot `s`, writes in it, and returns how many names `data/` has, whether
/// `f0` or `f1` is among them, and `top`.
fn mounted_data(
    snap: &dyn Snapshotter,
    s: &basic_rootfs::Snapshot,
    target: &Path,
) -> (usize, bool, String) {
    fs::create_dir_all(target).unwrap();
    snap.mount(s, target).unwrap();
    let names: Vec<_> = fs::read_dir(target.join("data"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let top = fs::read_to_string(target.join("top")).unwrap();
    fs::write(target.join("data/written"), b"x").unwrap();
    snap.unmount(target).unwrap();
    let hidden = names.iter().any(|n| n == "f0" || n == "f1");
    (names.len(), hidden, top)
}

#[test]
fn overlay_with_many_layers_uses_short_links() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // overlayfs' own limit: as many as it stacks, named by the snapshot's short links.
    let n = basic_rootfs::MAX_LOWER_DIRS;
    let dirs = numbered_layers(tmp.path(), n);
    let snap = OverlaySnapshotter::new(tmp.path().join("snapshotter"));
    let s = snap.prepare("many", &dirs).unwrap();
    let m = &s.mounts[0];
    assert_eq!(
        m.relative_to.as_deref(),
        Some(s.dir.as_path()),
        "short-link form"
    );
    assert_eq!(mode(&s.dir.join("l")), 0o700, "the short links are private");
    assert!(m.options.join(",").len() < 4096);
    let target = tmp.path().join("rootfs");
    let (count, f0, top) = mounted_data(&snap, &s, &target);
    assert_eq!(
        (count, f0),
        (n - 2, false),
        "f1 and f0 are whited out by the third and the top layer"
    );
    assert_eq!(top, format!("{}", n - 1));
    // Mounted again by key, from its record: the same links.
    snap.mount_key("many", &target).unwrap();
    assert!(target.join("data/written").exists());
    snap.unmount(&target).unwrap();
    // This process' working directory was not changed by the mount.
    assert_ne!(
        std::env::current_dir().unwrap(),
        s.dir.canonicalize().unwrap()
    );
    snap.remove("many").unwrap();
}

/// More layers than overlayfs stacks (an image can have them): refused with the limit
/// named, and the key stays free; with the bottom ones merged into one directory, the
/// rest stack on it and whiteouts work on both sides of the merge.
/// fuse-overlayfs stacks as many layers as the overlay snapshotter does: where overlayfs'
/// one page needs the short links, fuse-overlayfs (options on its command line) is given
/// them by absolute path.
#[test]
fn fuse_overlay_with_many_layers_names_them_absolutely() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let n = basic_rootfs::MAX_LOWER_DIRS;
    let dirs = numbered_layers(tmp.path(), n);
    let snap = basic_rootfs::FuseOverlaySnapshotter::new(tmp.path().join("snapshotter"));
    let s = snap.prepare("many", &dirs).unwrap();
    let m = &s.mounts[0];
    assert_eq!(m.relative_to, None);
    let lowers = m
        .options
        .iter()
        .find_map(|o| o.strip_prefix("lowerdir="))
        .unwrap();
    assert_eq!(lowers.split(':').count(), n);
    assert!(lowers.split(':').all(|l| l.starts_with('/')), "{lowers}");
    let target = tmp.path().join("rootfs");
    let (count, f0, top) = mounted_data(&snap, &s, &target);
    assert_eq!((count, f0), (n - 2, false), "the whiteouts hide f1 and f0");
    assert_eq!(top, format!("{}", n - 1));
    snap.remove("many").unwrap();
}

#[test]
fn overlay_refuses_more_layers_than_it_stacks_and_takes_them_merged() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let n = basic_rootfs::MAX_LOWER_DIRS + 100;
    let dirs = numbered_layers(tmp.path(), n);
    let snap = OverlaySnapshotter::new(tmp.path().join("snapshotter"));
    let refused = snap.prepare("more", &dirs).unwrap_err();
    assert!(
        matches!(refused, SnapshotError::TooManyLowerDirs(600)),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("(500 lower directories)"),
        "{refused}"
    );
    assert!(snap.stat("more").is_err(), "the key stays free");
    assert!(matches!(
        snap.view("more-view", &dirs),
        Err(SnapshotError::TooManyLowerDirs(600))
    ));

    let (bottom, top) = dirs.split_at(101);
    let merged = tmp.path().join("merged");
    basic_rootfs::merge_layers(bottom, &merged).unwrap();
    assert_eq!(fs::read_to_string(merged.join("top")).unwrap(), "100");
    assert!(
        merged.join("data/f0").is_file(),
        "f0 goes only above the merge"
    );
    assert!(
        !merged.join("data/f1").exists(),
        "f1 is whited out inside the merge, and the whiteout itself is gone"
    );
    let stack: Vec<PathBuf> = std::iter::once(merged.clone())
        .chain(top.iter().cloned())
        .collect();
    assert_eq!(stack.len(), basic_rootfs::MAX_LOWER_DIRS);
    let s = snap.prepare("more", &stack).unwrap();
    let target = tmp.path().join("rootfs");
    let (count, hidden, top_file) = mounted_data(&snap, &s, &target);
    assert_eq!((count, hidden), (n - 2, false), "f0 and f1 are whited out");
    assert_eq!(top_file, format!("{}", n - 1));
    // A view of them, as `image mount` makes it.
    let v = snap.view("more-view", &stack).unwrap();
    snap.mount(&v, &target).unwrap();
    assert_eq!(fs::read_to_string(target.join("data/f2")).unwrap(), "2");
    assert!(!target.join("data/f0").exists());
    snap.unmount(&target).unwrap();
    snap.remove("more-view").unwrap();
    snap.remove("more").unwrap();
    assert!(
        merged.join("data/f2").is_file(),
        "the merge is the caller's to keep"
    );
}

/// A hostile image's symlink in a bottom layer, with a directory of the same name in a
/// later one: merging never writes through the link (out of the layers, onto the host).
#[test]
fn merging_layers_never_follows_their_symlinks() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    fs::create_dir(&host).unwrap();
    let mut l0 = Layer::new();
    l0.symlink("abs", host.to_str().unwrap())
        .symlink("rel", "../../../host");
    let mut l1 = Layer::new();
    l1.dir("abs", 0o755)
        .file("abs/pwned", b"abs", 0o644)
        .dir("rel", 0o755)
        .file("rel/pwned", b"rel", 0o644);
    let mut dirs = Vec::new();
    for (i, l) in [l0, l1].into_iter().enumerate() {
        let d = tmp.path().join(format!("layers/{i}/diff"));
        fs::create_dir_all(&d).unwrap();
        apply_layer(&l.finish()[..], &d, &ApplyOptions::new(ApplyMode::Overlay)).unwrap();
        dirs.push(d);
    }
    let merged = tmp.path().join("layers/merged");
    basic_rootfs::merge_layers(&dirs, &merged).unwrap();
    assert_eq!(
        fs::read_dir(&host).unwrap().count(),
        0,
        "nothing reached the host"
    );
    for (name, content) in [("abs", "abs"), ("rel", "rel")] {
        let d = merged.join(name);
        assert!(
            d.symlink_metadata().unwrap().is_dir(),
            "{name} is a directory"
        );
        assert_eq!(fs::read_to_string(d.join("pwned")).unwrap(), content);
    }
}

#[test]
fn copy_snapshot_matches_overlay() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs = layers(tmp.path());
    let copy = CopySnapshotter::new(tmp.path().join("copy"));
    let s = copy.prepare("c1", &dirs).unwrap();
    let copied = s.mounts[0].source.clone();
    check_merged(&copied);
    let t = tree(&copied);
    assert_eq!(
        t["bin/tool"].ino, t["bin/tool2"].ino,
        "hard links survive the copy"
    );

    let overlay = OverlaySnapshotter::new(tmp.path().join("overlay"));
    let o = overlay.view("v", &dirs).unwrap();
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    overlay.mount(&o, &merged).unwrap();
    let mut want = tree(&merged);
    overlay.unmount(&merged).unwrap();
    let mut got = t;
    for t in [&mut want, &mut got] {
        for n in t.values_mut() {
            n.ino = 0;
            n.xattrs.retain(|k, _| !k.starts_with("trusted.overlay."));
            if n.kind == "dir" {
                n.nlink = 0;
                n.mtime = (0, 0);
            }
        }
    }
    assert_eq!(got, want);

    // Mounted, it is the container's root; writes stay in the copy.
    let target = tmp.path().join("rootfs");
    fs::create_dir(&target).unwrap();
    copy.mount(&s, &target).unwrap();
    fs::write(target.join("etc/written"), b"x").unwrap();
    copy.unmount(&target).unwrap();
    assert!(copied.join("etc/written").exists());
    assert!(!dirs[2].join("etc/written").exists());
    copy.remove("c1").unwrap();

    let v = copy.view("ro", &dirs).unwrap();
    copy.mount(&v, &target).unwrap();
    assert_eq!(
        fs::write(target.join("x/y"), b"")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EROFS)
    );
    copy.unmount(&target).unwrap();
}

#[test]
fn detection_and_keys() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // overlayfs works on this machine's ext4 and tmpfs.
    assert_eq!(detect(tmp.path()), SnapshotterKind::Overlay);
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "the probe cleans up"
    );
    assert_eq!(
        "copy".parse::<SnapshotterKind>().unwrap(),
        SnapshotterKind::Copy
    );
    assert!("zfs".parse::<SnapshotterKind>().is_err());
    let s = SnapshotterKind::Copy.create(tmp.path());
    assert_eq!(s.kind(), SnapshotterKind::Copy);
    for bad in ["", "../x", "a/b", ".hidden", &"k".repeat(200)] {
        assert!(
            matches!(s.prepare(bad, &[]), Err(SnapshotError::InvalidKey(_))),
            "{bad}"
        );
    }
    // A snapshot of no layers is an empty root.
    let o = OverlaySnapshotter::new(tmp.path().join("o"));
    let e = o.prepare("empty", &[]).unwrap();
    let target = tmp.path().join("t");
    fs::create_dir(&target).unwrap();
    o.mount(&e, &target).unwrap();
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    o.unmount(&target).unwrap();
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The per-mount options of the mount at `target` (the last one mounted there).
fn mount_options(target: &Path) -> Vec<String> {
    let target = target.canonicalize().unwrap();
    basic_mountinfo::mounts()
        .unwrap()
        .into_iter()
        .rfind(|m| m.mount_point == target)
        .unwrap_or_else(|| panic!("{} is not mounted", target.display()))
        .options
}

/// Snapshots are their owner's, a container's root is as the image made it
/// (whatever the umask), and a view, looked at from the host, honours no setuid
/// bit and no device node of the image.
#[test]
fn snapshots_are_private_roots_are_the_images_and_views_are_nosuid_nodev() {
    use std::os::unix::fs::MetadataExt as _;
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs = layers(tmp.path());
    // The top layer's root says how the container's `/` looks.
    chmod(&dirs[2], 0o751);
    std::os::unix::fs::chown(&dirs[2], Some(123), Some(456)).unwrap();
    for kind in KINDS {
        let root = tmp.path().join(format!("{kind}"));
        let snap = kind.create(&root);
        let s = snap.prepare("c1", &dirs).unwrap();
        assert_eq!(mode(&root.join("snapshots")), 0o700, "{kind}");
        assert_eq!(mode(&s.dir), 0o700, "{kind}");
        let target = tmp.path().join(format!("{kind}-rootfs"));
        fs::create_dir(&target).unwrap();
        snap.mount(&s, &target).unwrap();
        let meta = fs::metadata(&target).unwrap();
        let options = mount_options(&target);
        snap.unmount(&target).unwrap();
        assert_eq!(meta.mode() & 0o7777, 0o751, "{kind}: the root's mode");
        assert_eq!(
            (meta.uid(), meta.gid()),
            (123, 456),
            "{kind}: the root's owner"
        );
        assert!(
            !options.iter().any(|o| o == "nosuid"),
            "{kind}: a container's own root keeps setuid: {options:?}"
        );

        for (key, layers) in [("all", &dirs[..]), ("one", &dirs[..1])] {
            let v = snap.view(key, layers).unwrap();
            snap.mount(&v, &target).unwrap();
            let options = mount_options(&target);
            assert!(target.join("bin/tool").exists());
            snap.unmount(&target).unwrap();
            for want in ["ro", "nosuid", "nodev"] {
                assert!(
                    options.iter().any(|o| o == want),
                    "{kind} view {key}: {want} missing from {options:?}"
                );
            }
            snap.remove(key).unwrap();
        }
        snap.remove("c1").unwrap();

        // What an older version made wide, `init` tightens; new ones start private.
        chmod(&root.join("snapshots"), 0o755);
        snap.init().unwrap();
        assert_eq!(mode(&root.join("snapshots")), 0o700, "{kind}");
        let fresh = kind.create(tmp.path().join(format!("{kind}-fresh")));
        fresh.init().unwrap();
        assert_eq!(
            mode(&tmp.path().join(format!("{kind}-fresh/snapshots"))),
            0o700
        );
    }
}

/// The file names below `root` (sorted, relative), and the contents of regular files.
fn listing(root: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    tree(root)
        .into_iter()
        .map(|(name, node)| {
            let data = (node.kind == "file").then(|| fs::read(root.join(&name)).unwrap());
            (name, data)
        })
        .collect()
}

/// A snapshot recorded by `prepare_with` needs only its key afterwards, also
/// from a new snapshotter value on the same root (a later process).
#[test]
fn a_prepared_snapshot_is_recorded_and_mounted_by_key() {
    use basic_rootfs::{PrepareOptions, SnapshotKind};
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs = layers(tmp.path());
    for kind in KINDS {
        let root = tmp.path().join(format!("{kind}"));
        let made = kind
            .create(&root)
            .prepare_with("c1", &dirs, &PrepareOptions::new().volatile(true))
            .unwrap();
        let snap = kind.create(&root);
        let info = snap.stat("c1").unwrap();
        assert_eq!(info.kind, SnapshotKind::Active);
        assert_eq!(info.parents, dirs, "{kind}: parents, absolute");
        assert!(info.volatile);
        assert_eq!(snap.mounts("c1").unwrap(), made.mounts, "{kind}");
        // fuse-overlayfs' `volatile` is its `fsync=0`.
        let volatile = made.mounts[0]
            .options
            .iter()
            .any(|o| o == "volatile" || o == "fsync=0");
        assert_eq!(volatile, kind != SnapshotterKind::Copy, "{kind}");
        assert_eq!(
            snap.snapshots()
                .unwrap()
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>(),
            ["c1"]
        );

        let target = tmp.path().join(format!("{kind}-rootfs"));
        fs::create_dir(&target).unwrap();
        assert!(!snap.is_mounted(&target).unwrap());
        snap.mount_key("c1", &target).unwrap();
        assert!(snap.is_mounted(&target).unwrap(), "{kind}");
        check_merged(&target);
        let before = snap.usage("c1").unwrap();
        fs::write(target.join("etc/written"), vec![7u8; 100_000]).unwrap();
        fs::create_dir(target.join("new-dir")).unwrap();
        snap.unmount(&target).unwrap();
        assert!(!snap.is_mounted(&target).unwrap());
        let after = snap.usage("c1").unwrap();
        assert!(
            after.bytes >= before.bytes + 100_000,
            "{kind}: {before:?} -> {after:?}"
        );
        assert!(
            after.inodes >= before.inodes + 2,
            "{kind}: {before:?} -> {after:?}"
        );
        snap.remove("c1").unwrap();
        assert!(matches!(snap.stat("c1"), Err(SnapshotError::NotFound(_))));
        assert!(snap.snapshots().unwrap().is_empty());
    }
}

/// Commit: a container's changes (a new file, a deleted one, a replaced
/// directory) become a read-only layer that later snapshots stack on, by both
/// snapshotters, with the same result.
#[test]
fn committed_changes_are_a_layer_for_the_next_snapshot() {
    use basic_rootfs::SnapshotKind;
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs = layers(tmp.path());
    let mut results = Vec::new();
    for kind in KINDS {
        let snap = kind.create(tmp.path().join(format!("{kind}")));
        snap.prepare("step1", &dirs).unwrap();
        let target = tmp.path().join(format!("{kind}-target"));
        fs::create_dir(&target).unwrap();
        snap.mount_key("step1", &target).unwrap();
        fs::write(target.join("etc/added"), b"added").unwrap();
        fs::remove_file(target.join("etc/keep")).unwrap();
        fs::remove_dir_all(target.join("x")).unwrap();
        fs::create_dir(target.join("x")).unwrap();
        fs::write(target.join("x/fresh"), b"fresh").unwrap();
        // `docker diff`, read while mounted, and the layer `commit` would write.
        let mut diff = snap.changes("step1", &[]).unwrap();
        diff.sort_by(|a, b| a.path.cmp(&b.path));
        let exported = exported_members(
            snap.as_ref(),
            "step1",
            &tmp.path().join(format!("{kind}-scratch")),
        );
        // Busy while mounted: its changes are still being made.
        assert!(
            matches!(snap.commit("step1", "layer1"), Err(SnapshotError::Busy(_))),
            "{kind}"
        );
        snap.unmount(&target).unwrap();

        let layer = snap.commit("step1", "layer1").unwrap();
        assert!(matches!(
            snap.stat("step1"),
            Err(SnapshotError::NotFound(_))
        ));
        let info = snap.stat("layer1").unwrap();
        assert_eq!((info.kind, &info.parents), (SnapshotKind::Committed, &dirs));
        assert!(snap.usage("layer1").unwrap().inodes >= 3, "{kind}");
        assert!(matches!(
            snap.mounts("layer1"),
            Err(SnapshotError::WrongKind { .. })
        ));
        // The layer is in overlay form: a whiteout for what went.
        let whiteout = fs::symlink_metadata(layer.join("etc/keep")).unwrap();
        use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
        assert!(
            whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
            "{kind}"
        );

        let mut stacked = dirs.clone();
        stacked.push(layer.clone());
        snap.prepare("step2", &stacked).unwrap();
        snap.mount_key("step2", &target).unwrap();
        let seen = listing(&target);
        snap.unmount(&target).unwrap();
        assert!(
            seen.iter()
                .any(|(n, d)| n == "etc/added" && d.as_deref() == Some(&b"added"[..]))
        );
        assert!(
            !seen.iter().any(|(n, _)| n == "etc/keep" || n == "x/in"),
            "{kind}: {seen:?}"
        );
        assert!(seen.iter().any(|(n, _)| n == "x/fresh"), "{kind}");
        results.push((seen, diff, exported));

        // Only an active snapshot commits.
        snap.view("v", &dirs).unwrap();
        assert!(matches!(
            snap.commit("v", "nope"),
            Err(SnapshotError::WrongKind { .. })
        ));
        assert!(matches!(
            snap.commit("missing", "nope"),
            Err(SnapshotError::NotFound(_))
        ));
        for key in ["v", "step2", "layer1"] {
            snap.remove(key).unwrap();
        }
    }
    assert_eq!(
        results[0].0, results[1].0,
        "overlay and copy commit the same changes"
    );
    assert_eq!(
        results[0].0, results[2].0,
        "overlay and fuse-overlayfs commit the same changes"
    );
    assert_eq!(
        results[0].1, results[1].1,
        "overlay and copy: the same diff"
    );
    assert_eq!(
        results[0].1, results[2].1,
        "overlay and fuse-overlayfs: the same diff"
    );
    let diff: Vec<String> = results[2]
        .1
        .iter()
        .map(|c| format!("{:?} {}", c.kind, c.path.display()))
        .collect();
    assert!(
        diff.iter().all(|c| !c.contains(".wh.")),
        "fuse-overlayfs' opaque marks are no changes: {diff:?}"
    );
    assert_eq!(
        results[0].2, results[2].2,
        "overlay and fuse-overlayfs: the same exported layer"
    );
    assert!(
        results[2].2.iter().any(|m| m == "x/.wh..wh..opq"),
        "the recreated directory is opaque: {:?}",
        results[2].2
    );
    assert_eq!(
        results[2]
            .2
            .iter()
            .filter(|m| m.contains(".wh..wh..opq"))
            .count(),
        1,
        "one opaque marker: {:?}",
        results[2].2
    );
}

/// The member names (and xattr keys) of the layer [`basic_rootfs::export::write_layer`]
/// makes of `key`'s changes, sorted.
fn exported_members(snap: &dyn Snapshotter, key: &str, scratch: &Path) -> Vec<String> {
    let dir = snap.changes_dir(key, scratch).unwrap();
    let mut tar = Vec::new();
    basic_rootfs::export::write_layer(&dir, &Default::default(), &mut tar).unwrap();
    let _ = fs::remove_dir_all(scratch);
    let mut archive = tar::Archive::new(&tar[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        if let Some(ext) = entry.pax_extensions().unwrap() {
            for e in ext {
                let key = e.unwrap().key().unwrap().to_owned();
                if key.starts_with("SCHILY.xattr.") {
                    names.push(format!("{name} {key}"));
                }
            }
        }
        names.push(name);
    }
    names.sort();
    names
}

/// A snapshot an older version made has a directory and no record: it is
/// reported as such, not listed, and still removable.
#[test]
fn a_snapshot_without_a_record_says_so() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let snap = OverlaySnapshotter::new(tmp.path());
    snap.init().unwrap();
    fs::create_dir_all(tmp.path().join("snapshots/old/upper")).unwrap();
    let err = snap.mounts("old").unwrap_err();
    assert!(matches!(err, SnapshotError::NoMetadata(_)), "{err}");
    assert!(err.to_string().contains("remove it and prepare it again"));
    assert!(snap.snapshots().unwrap().is_empty());
    // An engine that knows what it was prepared on records it, and goes on.
    fs::create_dir_all(tmp.path().join("snapshots/old/work")).unwrap();
    let layer = tmp.path().join("layer");
    fs::create_dir(&layer).unwrap();
    let adopted = snap
        .adopt(
            "old",
            std::slice::from_ref(&layer),
            &basic_rootfs::PrepareOptions::new(),
        )
        .unwrap();
    assert_eq!(snap.mounts("old").unwrap(), adopted.mounts);
    assert_eq!(
        snap.stat("old").unwrap().parents,
        std::slice::from_ref(&layer)
    );
    assert!(matches!(
        snap.adopt("old", &[layer], &Default::default()),
        Err(SnapshotError::Exists(_))
    ));
    assert!(matches!(
        snap.adopt("never", &[], &Default::default()),
        Err(SnapshotError::NotFound(_))
    ));
    snap.remove("old").unwrap();
    assert!(matches!(snap.usage("old"), Err(SnapshotError::NotFound(_))));
}

/// What fuse-overlayfs leaves in an upper directory in a user namespace, where it may not
/// write `trusted.overlay.opaque`: a directory made anew carries `user.fuseoverlayfs.opaque`
/// and holds a `.wh..wh..opq` file and a `.wh..opq` whiteout. Each form alone marks the
/// directory opaque for `diff`, for the layer `commit` writes and for merging; the marks
/// themselves are neither changes nor files, and the xattr does not reach the layer.
#[test]
fn fuse_overlayfs_opaque_marks_in_an_upper_directory_are_read_as_overlay_form() {
    use std::os::unix::fs::FileTypeExt as _;
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs = layers(tmp.path());
    let snap = OverlaySnapshotter::new(tmp.path().join("snapshotter"));
    let s = snap.prepare("c1", &dirs).unwrap();
    let upper = s.dir.join("upper");
    // `etc` anew, marked by the xattr alone; `x` anew, marked by the files alone.
    fs::create_dir(upper.join("etc")).unwrap();
    xattr::set(upper.join("etc"), "user.fuseoverlayfs.opaque", b"y").unwrap();
    fs::write(upper.join("etc/only"), b"only").unwrap();
    fs::create_dir(upper.join("x")).unwrap();
    fs::write(upper.join("x/.wh..wh..opq"), b"").unwrap();
    let whiteout = std::ffi::CString::new(
        upper
            .join("x/.wh..opq")
            .into_os_string()
            .into_encoded_bytes(),
    )
    .unwrap();
    // A 0/0 character device is overlay form's whiteout.
    // SAFETY: a valid C string.
    let made = unsafe { libc::mknod(whiteout.as_ptr(), libc::S_IFCHR, 0) };
    assert_eq!(made, 0);
    assert!(
        fs::symlink_metadata(upper.join("x/.wh..opq"))
            .unwrap()
            .file_type()
            .is_char_device()
    );

    let mut diff: Vec<String> = snap
        .changes("c1", &[])
        .unwrap()
        .iter()
        .map(|c| format!("{:?} {}", c.kind, c.path.display()))
        .collect();
    diff.sort();
    assert_eq!(
        diff,
        [
            "Added /etc/only",
            "Deleted /etc/keep",
            "Deleted /etc/new",
            "Deleted /x/in",
            "Modified /etc",
            "Modified /x",
        ]
    );

    let members = exported_members(&snap, "c1", &tmp.path().join("scratch"));
    assert_eq!(
        members,
        [
            "etc/",
            "etc/.wh..wh..opq",
            "etc/only",
            "x/",
            "x/.wh..wh..opq",
        ],
        "one opaque marker each, no fuse-overlayfs xattr"
    );

    let merged = tmp.path().join("merged");
    let mut stack = dirs.clone();
    stack.push(upper.clone());
    basic_rootfs::merge_layers(&stack, &merged).unwrap();
    let names: Vec<String> = tree(&merged).into_keys().collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/tool",
            "bin/tool2",
            "etc",
            "etc/only",
            "opq",
            "opq/upper",
            "x"
        ]
    );
}
