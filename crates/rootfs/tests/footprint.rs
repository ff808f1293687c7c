//! Layers applied on their own (in parallel) and checked afterwards against the
//! layers below: [`Footprint::lower_dependency`] must say when the lower layers
//! change a layer (a lower symlink on the way, an implicit directory a lower
//! layer has, a hard link to a lower file) and applying it again with
//! `lower_layers` must then give containerd's and umoci's result: members
//! written through a lower symlink land where it points, inside the root, and
//! the symlink stays.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use basic_rootfs::{ApplyMode, ApplyOptions, LowerDependency, apply_layer};
use common::{Layer, privileged, tree};

/// Applies `layers` bottom-first, each in its own directory under `dir`, the way
/// the pull does: on its own with a footprint, then again with the layers below
/// where the footprint says they matter. Returns the layer directories and what
/// each footprint said.
fn pull_like(dir: &Path, layers: &[Vec<u8>]) -> (Vec<PathBuf>, Vec<Option<LowerDependency>>) {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let mut said = Vec::new();
    for (i, tar) in layers.iter().enumerate() {
        let own = dir.join(format!("own{i}"));
        fs::create_dir(&own).unwrap();
        let opts = ApplyOptions::new(ApplyMode::Overlay).footprint(true);
        let stats = apply_layer(&tar[..], &own, &opts).unwrap();
        let dependency = stats
            .footprint
            .expect("a footprint was asked for")
            .lower_dependency(&dirs)
            .unwrap();
        let kept = if dependency.is_some() {
            let again = dir.join(format!("again{i}"));
            fs::create_dir(&again).unwrap();
            let opts = ApplyOptions::new(ApplyMode::Overlay).lower_layers(dirs.clone());
            apply_layer(&tar[..], &again, &opts).unwrap();
            again
        } else {
            own
        };
        dirs.push(kept);
        said.push(dependency);
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
    assert_eq!(said[0], None, "nothing below the bottom layer");
    assert_eq!(
        said[1],
        Some(LowerDependency::Symlink { path: "lib".into() })
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
    assert_eq!(said[1], None);
    assert!(dirs[1].ends_with("own1"));
    assert_eq!(fs::read(dirs[1].join("lib")).unwrap(), b"now a file");
}

#[test]
fn an_implicit_directory_over_a_lower_one_and_a_lower_hard_link_need_the_lower_layers() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut base = Layer::new();
    base.dir("srv", 0o700).file("srv/data", b"data", 0o640);
    let mut implicit = Layer::new();
    implicit.file("srv/more", b"more", 0o644);
    let mut link = Layer::new();
    link.dir("srv", 0o700).hardlink("srv/data-link", "srv/data");
    let (dirs, said) = pull_like(
        tmp.path(),
        &[base.finish(), implicit.finish(), link.finish()],
    );
    assert_eq!(
        said[1],
        Some(LowerDependency::Directory { path: "srv".into() })
    );
    assert_eq!(tree(&dirs[1])["srv"].mode, 0o700, "keeps the lower mode");
    // Applied on its own the link is not an error: it is what the footprint reports.
    assert_eq!(
        said[2],
        Some(LowerDependency::HardLink {
            member: "srv/data-link".into(),
            target: "srv/data".into()
        })
    );
    assert_eq!(fs::read(dirs[2].join("srv/data-link")).unwrap(), b"data");
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
        stats.footprint.unwrap().lower_dependency(&lowers).unwrap(),
        Some(LowerDependency::HardLink { .. })
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
        matches!(said[1], Some(LowerDependency::Symlink { .. })),
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
    assert!(said[1].is_some());
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
