//! Layers applied on their own (in parallel) and settled afterwards against the
//! layers below: `Footprint::settle` must say when the lower layers
//! change a layer (a lower symlink on the way, an implicit directory a lower
//! layer has, a hard link to a lower file) and applying it again with
//! `lower_layers` must then give containerd's and umoci's result: members
//! written through a lower symlink land where it points, inside the root, and
//! the symlink stays.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use basic_rootfs::{ApplyMode, ApplyOptions, LowerDependency, Settled, apply_layer};
use common::{Layer, privileged, tree};

/// Applies `layers` bottom-first, each in its own directory under `dir`, the way
/// the pull does: on its own with a footprint, then again with the layers below
/// where the footprint says they matter. Returns the layer directories and what
/// each footprint said.
fn pull_like(dir: &Path, layers: &[Vec<u8>]) -> (Vec<PathBuf>, Vec<Settled>) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut said = Vec::new();
    for (i, tar) in layers.iter().enumerate() {
        let own = dir.join(format!("own{i}"));
        fs::create_dir(&own).unwrap();
        let opts = ApplyOptions::new(ApplyMode::Overlay).footprint(true);
        let stats = apply_layer(&tar[..], &own, &opts).unwrap();
        let settled = stats
            .footprint
            .expect("a footprint was asked for")
            .settle(&own, &dirs)
            .unwrap();
        let kept = if let Settled::Reapply(_) = settled {
            let again = dir.join(format!("again{i}"));
            fs::create_dir(&again).unwrap();
            let opts = ApplyOptions::new(ApplyMode::Overlay).lower_layers(dirs.clone());
            apply_layer(&tar[..], &again, &opts).unwrap();
            again
        } else {
            own
        };
        dirs.push(kept);
        said.push(settled);
    }
    (dirs, said)
}

fn merged_usr_base() -> Vec<u8> {
    let mut l = Layer::new();
    l.dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .symlink("lib", "usr/lib")
        .file("usr/lib/base.so", b"base", 0o644);
    l.finish()
}

#[test]
fn a_layer_writing_through_a_lower_symlink_lands_where_it_points() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut top = Layer::new();
    top.file("lib/x.so", b"x", 0o755)
        .file("lib/sub/y", b"y", 0o644);
    let (dirs, said) = pull_like(tmp.path(), &[merged_usr_base(), top.finish()]);
    assert_eq!(
        said[0],
        Settled::Complete { directories: 0 },
        "nothing below the bottom layer"
    );
    assert_eq!(
        said[1],
        Settled::Reapply(LowerDependency::Symlink { path: "lib".into() })
    );
    let t = tree(&dirs[1]);
    assert!(!t.contains_key("lib"), "the symlink is not hidden: {t:?}");
    assert_eq!(fs::read(dirs[1].join("usr/lib/x.so")).unwrap(), b"x");
    assert_eq!(fs::read(dirs[1].join("usr/lib/sub/y")).unwrap(), b"y");
    assert_eq!(t["usr/lib/x.so"].mode, 0o755);
}

#[test]
fn layers_that_do_not_meet_a_lower_symlink_are_kept_as_extracted() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Parents given as members (as image builders write them), new directories,
    // and a file replacing the lower symlink itself: nothing below changes them.
    let mut top = Layer::new();
    top.dir("usr", 0o755)
        .dir("usr/lib", 0o755)
        .file("usr/lib/z.so", b"z", 0o644)
        .file("etc/hostname", b"h", 0o644)
        .file("lib", b"now a file", 0o644);
    let (dirs, said) = pull_like(tmp.path(), &[merged_usr_base(), top.finish()]);
    assert_eq!(said[1], Settled::Complete { directories: 0 });
    assert!(dirs[1].ends_with("own1"));
    assert_eq!(fs::read(dirs[1].join("lib")).unwrap(), b"now a file");
}

#[test]
fn implicit_directories_over_lower_ones_are_settled_in_place_and_lower_hard_links_reapplied() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut base = Layer::new();
    base.dir("srv", 0o700).file("srv/data", b"data", 0o640);
    // GNU tar of a subtree: no member for `srv`.
    let mut implicit = Layer::new();
    implicit.file("srv/more", b"more", 0o644);
    // `srv` made for its child first, then named.
    let mut named_later = Layer::new();
    named_later.file("srv/later", b"", 0o644).dir("srv", 0o750);
    let mut link = Layer::new();
    link.dir("srv", 0o700).hardlink("srv/data-link", "srv/data");
    let (dirs, said) = pull_like(
        tmp.path(),
        &[
            base.finish(),
            implicit.finish(),
            named_later.finish(),
            link.finish(),
        ],
    );
    assert_eq!(said[1], Settled::Complete { directories: 1 });
    assert!(dirs[1].ends_with("own1"), "settled where it was extracted");
    let (lower, settled) = (&tree(&dirs[0])["srv"], &tree(&dirs[1])["srv"]);
    assert_eq!(settled.mode, 0o700, "keeps the lower mode");
    assert_eq!(settled.mtime, lower.mtime, "keeps the lower times");
    assert_eq!(
        said[2],
        Settled::Reapply(LowerDependency::Directory { path: "srv".into() })
    );
    assert_eq!(tree(&dirs[2])["srv"].mode, 0o750, "the member's mode wins");
    // Applied on its own the link is not an error: it is what the footprint reports.
    assert_eq!(
        said[3],
        Settled::Reapply(LowerDependency::HardLink {
            member: "srv/data-link".into(),
            target: "srv/data".into()
        })
    );
    assert_eq!(fs::read(dirs[3].join("srv/data-link")).unwrap(), b"data");
}

#[test]
fn a_hard_link_to_nothing_still_fails_once_the_lower_layers_are_in_view() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    fs::create_dir(&base).unwrap();
    apply_layer(
        &merged_usr_base()[..],
        &base,
        &ApplyOptions::new(ApplyMode::Overlay),
    )
    .unwrap();
    let mut l = Layer::new();
    l.hardlink("link", "no/such/file");
    let tar = l.finish();
    let own = tmp.path().join("own");
    fs::create_dir(&own).unwrap();
    let stats = apply_layer(
        &tar[..],
        &own,
        &ApplyOptions::new(ApplyMode::Overlay).footprint(true),
    )
    .unwrap();
    let lowers = vec![base];
    assert!(matches!(
        stats.footprint.unwrap().settle(&own, &lowers).unwrap(),
        Settled::Reapply(LowerDependency::HardLink { .. })
    ));
    let again = tmp.path().join("again");
    fs::create_dir(&again).unwrap();
    let err = apply_layer(
        &tar[..],
        &again,
        &ApplyOptions::new(ApplyMode::Overlay).lower_layers(lowers),
    )
    .unwrap_err();
    assert!(err.to_string().contains("no/such/file"), "{err}");
}

#[test]
fn symlinks_to_symlinks_and_relative_links_resolve_inside_the_root() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut base = Layer::new();
    base.dir("usr", 0o755)
        .dir("usr/a", 0o755)
        // `..` at the root stays at the root: `a` is `/usr/a`.
        .symlink("a", "../usr/a")
        // A symlink to a symlink.
        .symlink("b", "a")
        .symlink("usr/c", "../b");
    let mut top = Layer::new();
    top.file("b/one", b"1", 0o644)
        .file("usr/c/two", b"2", 0o644);
    let (dirs, said) = pull_like(tmp.path(), &[base.finish(), top.finish()]);
    assert!(
        matches!(said[1], Settled::Reapply(LowerDependency::Symlink { .. })),
        "{said:?}"
    );
    let t = tree(&dirs[1]);
    assert_eq!(
        t.keys().cloned().collect::<Vec<_>>(),
        ["usr", "usr/a", "usr/a/one", "usr/a/two"]
    );
}

#[test]
fn hostile_lower_symlinks_never_lead_outside_the_root() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let name = format!("basic-rootfs-footprint-attack-{}", std::process::id());
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let mut base = Layer::new();
    base.symlink("abs", "/etc")
        .symlink("up", "../../../../../..")
        // An absolute path to a real directory of the host, by its full name.
        .symlink("host", outside.to_str().unwrap());
    let mut top = Layer::new();
    top.file(&format!("abs/{name}"), b"pwned", 0o644)
        .file(&format!("up/tmp/{name}"), b"pwned", 0o644)
        .file(&format!("host/{name}"), b"pwned", 0o644);
    let (dirs, said) = pull_like(tmp.path(), &[base.finish(), top.finish()]);
    assert!(matches!(said[1], Settled::Reapply(_)), "{said:?}");
    assert!(
        !Path::new("/etc").join(&name).exists(),
        "wrote the host's /etc"
    );
    assert!(
        !Path::new("/tmp").join(&name).exists(),
        "wrote the host's /tmp"
    );
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        0,
        "wrote through an absolute symlink to the host"
    );
    // Each landed inside the layer, where the symlink points within the root.
    for inside in [
        format!("etc/{name}"),
        format!("tmp/{name}"),
        format!("{}/{name}", outside.strip_prefix("/").unwrap().display()),
    ] {
        assert_eq!(
            fs::read(dirs[1].join(&inside)).unwrap(),
            b"pwned",
            "{inside}"
        );
    }
}

#[test]
fn a_lower_symlink_loop_is_an_error_naming_the_member_not_a_hang() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    fs::create_dir(&base).unwrap();
    let mut l = Layer::new();
    l.symlink("a", "b").symlink("b", "/a");
    apply_layer(
        &l.finish()[..],
        &base,
        &ApplyOptions::new(ApplyMode::Overlay),
    )
    .unwrap();
    let mut top = Layer::new();
    top.file("a/x", b"x", 0o644);
    let tar = top.finish();
    let own = tmp.path().join("own");
    fs::create_dir(&own).unwrap();
    let opts = ApplyOptions::new(ApplyMode::Overlay).footprint(true);
    let stats = apply_layer(&tar[..], &own, &opts).unwrap();
    let lowers = vec![base];
    assert!(matches!(
        stats.footprint.unwrap().settle(&own, &lowers).unwrap(),
        Settled::Reapply(LowerDependency::Symlink { .. })
    ));
    let again = tmp.path().join("again");
    fs::create_dir(&again).unwrap();
    let opts = ApplyOptions::new(ApplyMode::Overlay).lower_layers(lowers);
    let err = apply_layer(&tar[..], &again, &opts).unwrap_err();
    let chain = format!("{err}: {:?}", std::error::Error::source(&err));
    assert!(chain.contains("a/x"), "{chain}");
    assert!(
        chain.contains("symbolic links") || chain.contains("40"),
        "{chain}"
    );
}
