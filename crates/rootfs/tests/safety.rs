//! Breakout attempts: nothing may be written outside the target directory.
//!
//! Each test has a `root` (the target) and a `sentinel` directory beside it
//! holding one file; hostile layers aim at the sentinel (by `..`, absolute
//! names, symlinks planted in the same or a lower layer, hard links). After
//! each attempt the sentinel must be exactly as it was.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use basic_rootfs::{ApplyError, ApplyMode, ApplyOptions, apply_layer};
use common::{Layer, listing, privileged};
use tar::EntryType;

struct Setup {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
    sentinel: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_owned();
        let root = base.join("root");
        let sentinel = base.join("sentinel");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&sentinel).unwrap();
        fs::write(sentinel.join("file"), b"precious").unwrap();
        Setup {
            _tmp: tmp,
            base,
            root,
            sentinel,
        }
    }

    /// The sentinel's absolute path without the leading `/`.
    fn sentinel_rel(&self) -> String {
        self.sentinel
            .to_str()
            .unwrap()
            .trim_start_matches('/')
            .to_owned()
    }

    fn apply(&self, tar: Vec<u8>, mode: ApplyMode) -> Result<basic_rootfs::LayerStats, ApplyError> {
        apply_layer(&tar[..], &self.root, &ApplyOptions::new(mode))
    }

    fn assert_untouched(&self) {
        assert_eq!(
            listing(&self.base)
                .iter()
                .filter(|p| !p.starts_with("root"))
                .collect::<Vec<_>>(),
            ["sentinel", "sentinel/file"]
        );
        let f = self.sentinel.join("file");
        assert_eq!(fs::read(&f).unwrap(), b"precious");
        let md = fs::symlink_metadata(&f).unwrap();
        assert_eq!((md.nlink(), md.mode() & 0o7777, md.uid()), (1, 0o644, 0));
        let d = fs::symlink_metadata(&self.sentinel).unwrap();
        assert_eq!(d.mode() & 0o7777, 0o755);
    }
}

fn both_modes(f: impl Fn(&Setup, ApplyMode)) {
    if !privileged() {
        return;
    }
    for mode in [ApplyMode::Flatten, ApplyMode::Overlay] {
        let s = Setup::new();
        f(&s, mode);
        s.assert_untouched();
    }
}

#[test]
fn dotdot_names_are_refused() {
    both_modes(|s, mode| {
        for name in [
            &b"../sentinel/evil"[..],
            b"../../../../../../../../tmp/basic-rootfs-evil",
            b"a/../../sentinel/evil",
            b"./../sentinel/file",
        ] {
            let mut l = Layer::new();
            l.raw(EntryType::Regular, name, b"", b"pwned", 0o644);
            let err = s.apply(l.finish(), mode).unwrap_err();
            assert!(matches!(err, ApplyError::Escape { .. }), "{err}");
            assert!(
                err.to_string()
                    .contains(&String::from_utf8_lossy(name).into_owned()),
                "{err}"
            );
        }
        // Also as a PAX path and a GNU long name.
        let mut l = Layer::new();
        l.pax(&[("path", b"../sentinel/evil")])
            .file("x", b"pwned", 0o644);
        assert!(matches!(
            s.apply(l.finish(), mode).unwrap_err(),
            ApplyError::Escape { .. }
        ));
        let mut l = Layer::new();
        l.raw(EntryType::Regular, b"../.wh.sentinel", b"", b"", 0o644);
        assert!(s.apply(l.finish(), mode).is_err());
        assert!(!Path::new("/tmp/basic-rootfs-evil").exists());
    });
}

#[test]
fn absolute_names_land_inside() {
    both_modes(|s, mode| {
        let name = format!("/{}/evil", s.sentinel_rel());
        let mut l = Layer::new();
        l.raw(EntryType::Regular, name.as_bytes(), b"", b"inside", 0o644);
        s.apply(l.finish(), mode).unwrap();
        assert_eq!(
            fs::read(s.root.join(format!("{}/evil", s.sentinel_rel()))).unwrap(),
            b"inside"
        );
    });
}

#[test]
fn symlink_to_root_then_write_through_it() {
    both_modes(|s, mode| {
        let mut l = Layer::new();
        l.symlink("escape", "/")
            .symlink("up", "../../../../../../..")
            .file(&format!("escape/{}/evil", s.sentinel_rel()), b"1", 0o644)
            .file(&format!("up/{}/evil2", s.sentinel_rel()), b"2", 0o644)
            .file("up/sentinel/evil3", b"3", 0o644)
            .symlink("procroot", "/proc/self/root")
            .file("up/sentinel/file", b"pwned", 0o644);
        s.apply(l.finish(), mode).unwrap();
        // Resolved inside the root.
        let inside = s.root.join(s.sentinel_rel());
        assert_eq!(fs::read(inside.join("evil")).unwrap(), b"1");
        assert_eq!(fs::read(inside.join("evil2")).unwrap(), b"2");
        assert_eq!(fs::read(s.root.join("sentinel/evil3")).unwrap(), b"3");
        // /proc/self/root is just a path inside the root, never the magic link.
        let mut l = Layer::new();
        l.file(&format!("procroot/{}/evil", s.sentinel_rel()), b"x", 0o644);
        s.apply(l.finish(), mode).unwrap();
        let in_proc = s.root.join("proc/self/root").join(s.sentinel_rel());
        assert_eq!(fs::read(in_proc.join("evil")).unwrap(), b"x");
    });
}

#[test]
fn symlink_to_outside_then_write_through_it() {
    both_modes(|s, mode| {
        let mut l = Layer::new();
        l.symlink("out", s.sentinel.to_str().unwrap())
            .file("out/evil", b"x", 0o644);
        // The symlink's target is taken inside the root (and made there, as
        // umoci does).
        s.apply(l.finish(), mode).unwrap();
        let inside = s.root.join(s.sentinel_rel());
        assert_eq!(fs::read(inside.join("evil")).unwrap(), b"x");
    });
}

#[test]
fn symlink_in_lower_layer_then_write_through_it() {
    if !privileged() {
        return;
    }
    let s = Setup::new();
    let mut l1 = Layer::new();
    l1.symlink("lib", s.sentinel.to_str().unwrap())
        .symlink("rel", "../sentinel")
        .symlink("file-link", &format!("{}/file", s.sentinel.display()));
    s.apply(l1.finish(), ApplyMode::Flatten).unwrap();
    let attempts: Vec<fn(&mut Layer)> = vec![
        |l| {
            l.file("lib/evil", b"x", 0o644);
        },
        |l| {
            l.file("lib/file", b"pwned", 0o644);
        },
        |l| {
            l.file("rel/file", b"pwned", 0o644);
        },
        |l| {
            l.dir("lib/newdir", 0o777);
        },
        |l| {
            l.file("lib/.wh.file", b"", 0o644);
        },
        |l| {
            l.file("lib/.wh..wh..opq", b"", 0o644);
        },
        |l| {
            l.file("rel/.wh..wh..opq", b"", 0o644);
        },
        |l| {
            l.hardlink("lib/h", "file-link");
        },
        |l| {
            l.symlink("lib/s", "/");
        },
        |l| {
            l.device("lib/dev", EntryType::Char, 1, 3, 0o666);
        },
    ];
    for attempt in attempts {
        let mut l = Layer::new();
        attempt(&mut l);
        let _ = s.apply(l.finish(), ApplyMode::Flatten);
        s.assert_untouched();
    }
    // The final component is never followed: these replace the symlinks.
    let mut l = Layer::new();
    l.file("file-link", b"replaced", 0o600).dir("lib", 0o700);
    s.apply(l.finish(), ApplyMode::Flatten).unwrap();
    assert_eq!(fs::read(s.root.join("file-link")).unwrap(), b"replaced");
    assert!(fs::symlink_metadata(s.root.join("lib")).unwrap().is_dir());
    s.assert_untouched();
}

#[test]
fn final_component_symlinks_are_replaced_not_followed() {
    both_modes(|s, mode| {
        let target = format!("{}/file", s.sentinel.display());
        let mut l = Layer::new();
        l.symlink("f", &target)
            .file("f", b"pwned", 0o777)
            .symlink("d", s.sentinel.to_str().unwrap())
            .dir("d", 0o777)
            .symlink("n", &target)
            .device("n", EntryType::Fifo, 0, 0, 0o777)
            .symlink("m", &target)
            .file_owned("m2", b"", 0o4777, 1, 1)
            .hardlink("m", "m2");
        s.apply(l.finish(), mode).unwrap();
        assert_eq!(fs::read(s.root.join("f")).unwrap(), b"pwned");
        assert!(fs::symlink_metadata(s.root.join("d")).unwrap().is_dir());
    });
}

#[test]
fn hardlinks_cannot_reach_outside() {
    both_modes(|s, mode| {
        // `..` in the target: refused, naming the member.
        let mut l = Layer::new();
        l.raw(EntryType::Link, b"h", b"../sentinel/file", b"", 0o644);
        let err = s.apply(l.finish(), mode).unwrap_err();
        assert!(matches!(err, ApplyError::Escape { .. }), "{err}");
        assert!(err.to_string().contains("`h`"), "{err}");
        // Absolute target: resolved inside the root, where it does not exist.
        let mut l = Layer::new();
        l.hardlink("h2", &format!("{}/file", s.sentinel.display()));
        let err = s.apply(l.finish(), mode).unwrap_err();
        assert!(matches!(err, ApplyError::LinkTarget { .. }), "{err}");
        // Through a symlink planted in the same layer.
        let mut l = Layer::new();
        l.symlink("evil", s.sentinel.to_str().unwrap())
            .hardlink("h3", "evil/file");
        let err = s.apply(l.finish(), mode).unwrap_err();
        assert!(matches!(err, ApplyError::LinkTarget { .. }), "{err}");
        let mut l = Layer::new();
        l.symlink("up", "../..").hardlink("h4", "up/sentinel/file");
        assert!(s.apply(l.finish(), mode).is_err());
        // And /etc/passwd of the host is never linked.
        let mut l = Layer::new();
        l.hardlink("passwd", "/etc/passwd");
        assert!(s.apply(l.finish(), mode).is_err());
        assert!(!s.root.join("passwd").exists());
    });
}

#[test]
fn symlink_loops_are_errors() {
    both_modes(|s, mode| {
        let mut l = Layer::new();
        l.symlink("a", "b")
            .symlink("b", "a")
            .file("a/x", b"", 0o644);
        let err = s.apply(l.finish(), mode).unwrap_err();
        assert!(err.to_string().contains("a/x"), "{err}");
    });
}

#[test]
fn overlay_xattrs_from_the_layer_are_dropped() {
    both_modes(|s, mode| {
        let mut l = Layer::new();
        l.pax(&[
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            // Overlayfs' bookkeeping in a user namespace (`userxattr`): as dangerous.
            ("SCHILY.xattr.user.overlay.redirect", b"/etc"),
            ("SCHILY.xattr.user.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.ok", b"1"),
        ])
        .dir("d", 0o755);
        s.apply(l.finish(), mode).unwrap();
        let names: Vec<_> = xattr::list(s.root.join("d")).unwrap().collect();
        assert_eq!(names, ["user.ok"]);
    });
}
