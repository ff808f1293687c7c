//! Differential testing against `umoci unpack`: random images of
//! well-formed layers (as image builders write them: parents before
//! children, whiteouts of lower paths, opaque markers anywhere in their
//! directory, hard links within the layer, files, directories and symlinks
//! replacing each other) must give the same tree with umoci, with our
//! flatten mode, and in the merged overlay mount of our overlay mode.
//!
//! `PROPTEST_CASES` sets the number of images (default 12).
//!
//! Each layer is also applied on its own, as the pull does first: where its
//! footprint settles against the layers below, it must equal the layer
//! applied onto them.
//!
//! Link counts are not compared in the overlay view: overlayfs reports a
//! lower file's own count, including links an upper layer hid.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use basic_rootfs::{ApplyMode, ApplyOptions, Settled, apply_layer};
use common::{Layer, Node, gzip, privileged, sha256_hex, tree};
use proptest::prelude::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    File,
    Dir,
    Symlink,
}

/// A tiny xorshift generator: the proptest seed drives everything.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

const NAMES: &[&str] = &["a", "b", "c", "dir", "x.txt", "link"];
const MODES: &[u32] = &[0o644, 0o600, 0o755, 0o4755, 0o1777, 0o640];
const TARGETS: &[&str] = &["a", "../a", "/dir/x.txt", "/no/such", "b/c", "."];

fn parent_of(p: &str) -> &str {
    p.rfind('/').map_or("", |i| &p[..i])
}

/// One layer, chosen against the model of what exists below it.
fn gen_layer(
    rng: &mut Rng,
    model: &mut BTreeMap<String, Kind>,
    links: &mut BTreeMap<String, String>,
    index: usize,
) -> Vec<u8> {
    let mut l = Layer::new();
    let mut emitted: BTreeSet<String> = BTreeSet::new();
    let mut own_files: Vec<String> = Vec::new();
    let mut deferred_opaque: Vec<String> = Vec::new();
    let ops = 1 + rng.below(7);
    // Emit directory members for `dir` and its ancestors (as diffs do).
    fn chain(
        l: &mut Layer,
        emitted: &mut BTreeSet<String>,
        model: &mut BTreeMap<String, Kind>,
        dir: &str,
    ) {
        if dir.is_empty() {
            return;
        }
        chain(l, emitted, model, parent_of(dir));
        if emitted.insert(dir.to_owned()) {
            l.dir(dir, 0o755);
            model.insert(dir.to_owned(), Kind::Dir);
        }
    }
    for _ in 0..ops {
        let dirs: Vec<String> = std::iter::once(String::new())
            .chain(
                model
                    .iter()
                    .filter(|(_, k)| **k == Kind::Dir)
                    .map(|(p, _)| p.clone()),
            )
            .filter(|d| d.matches('/').count() < 3)
            .collect();
        let parent = rng.pick(&dirs).clone();
        let name = *rng.pick(NAMES);
        let path = if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}/{name}")
        };
        let op = rng.below(11);
        let lower: Vec<String> = model
            .keys()
            .filter(|p| !emitted.contains(*p))
            .cloned()
            .collect();
        match op {
            0..=2 if !emitted.contains(&path) => {
                chain(&mut l, &mut emitted, model, &parent);
                emitted.insert(path.clone());
                let data = format!("layer {index} {path} {}", rng.next() % 1000);
                let mode = *rng.pick(MODES);
                if rng.below(4) == 0 {
                    l.file_owned(&path, data.as_bytes(), mode, 1000, 1000);
                } else {
                    l.file(&path, data.as_bytes(), mode);
                }
                model.retain(|p, _| !p.starts_with(&format!("{path}/")));
                model.insert(path.clone(), Kind::File);
                own_files.push(path);
            }
            3 | 4 if !emitted.contains(&path) => {
                chain(&mut l, &mut emitted, model, &parent);
                emitted.insert(path.clone());
                l.dir(&path, *rng.pick(&[0o755, 0o700, 0o1777]));
                if model.get(&path) != Some(&Kind::Dir) {
                    model.retain(|p, _| !p.starts_with(&format!("{path}/")));
                }
                model.insert(path, Kind::Dir);
            }
            5 if !emitted.contains(&path) => {
                chain(&mut l, &mut emitted, model, &parent);
                emitted.insert(path.clone());
                let target: &&str = rng.pick(TARGETS);
                l.symlink(&path, target);
                model.retain(|p, _| !p.starts_with(&format!("{path}/")));
                model.insert(path, Kind::Symlink);
            }
            6 if !lower.is_empty() => {
                let victim = rng.pick(&lower).clone();
                let (vp, vn) = (
                    parent_of(&victim).to_owned(),
                    victim.rsplit('/').next().unwrap().to_owned(),
                );
                let marker = if vp.is_empty() {
                    format!(".wh.{vn}")
                } else {
                    format!("{vp}/.wh.{vn}")
                };
                if emitted.contains(&marker)
                    || emitted
                        .iter()
                        .any(|e| e == &victim || e.starts_with(&format!("{victim}/")))
                {
                    continue;
                }
                chain(&mut l, &mut emitted, model, &vp);
                emitted.insert(marker.clone());
                l.file(&marker, b"", 0o644);
                model.retain(|p, _| p != &victim && !p.starts_with(&format!("{victim}/")));
            }
            7 => {
                let lower_dirs: Vec<&String> =
                    lower.iter().filter(|p| model[*p] == Kind::Dir).collect();
                if lower_dirs.is_empty() {
                    continue;
                }
                let dir = (*rng.pick(&lower_dirs)).clone();
                let marker = format!("{dir}/.wh..wh..opq");
                if emitted.contains(&marker) {
                    continue;
                }
                chain(&mut l, &mut emitted, model, &dir);
                emitted.insert(marker.clone());
                model.retain(|p, _| !p.starts_with(&format!("{dir}/")) || emitted.contains(p));
                if rng.below(2) == 0 {
                    l.file(&marker, b"", 0o644);
                } else {
                    // After the layer's own entries in that directory.
                    deferred_opaque.push(marker);
                }
            }
            8 if !own_files.is_empty() && !emitted.contains(&path) => {
                let target = rng.pick(&own_files).clone();
                chain(&mut l, &mut emitted, model, &parent);
                emitted.insert(path.clone());
                l.hardlink(&path, &target);
                model.retain(|p, _| !p.starts_with(&format!("{path}/")));
                model.insert(path, Kind::File);
            }
            // A symlink to a directory, for later members to go through.
            9 if !emitted.contains(&path) && !parent.is_empty() && rng.below(2) == 0 => {
                let dirs_only: Vec<&String> = dirs
                    .iter()
                    .filter(|d| !d.is_empty() && !path.starts_with(d.as_str()))
                    .collect();
                if dirs_only.is_empty() {
                    continue;
                }
                let target_dir = (*rng.pick(&dirs_only)).clone();
                chain(&mut l, &mut emitted, model, &parent);
                emitted.insert(path.clone());
                l.symlink(&path, &format!("/{target_dir}"));
                model.retain(|p, _| !p.starts_with(&format!("{path}/")));
                model.insert(path.clone(), Kind::Symlink);
                links.insert(path, target_dir);
            }
            // A member whose parent is a lower layer's symlink to a directory.
            9 => {
                let usable: Vec<(String, String)> = links
                    .iter()
                    .filter(|(s, d)| {
                        model.get(*s) == Some(&Kind::Symlink)
                            && model.get(*d) == Some(&Kind::Dir)
                            && !emitted.contains(*s)
                            && !emitted.iter().any(|e| e.starts_with(&format!("{s}/")))
                    })
                    .map(|(s, d)| (s.clone(), d.clone()))
                    .collect();
                if usable.is_empty() {
                    continue;
                }
                let (sym, dir) = rng.pick(&usable).clone();
                let through = format!("{sym}/{name}");
                let real = format!("{dir}/{name}");
                if emitted.contains(&real) || model.get(&real) == Some(&Kind::Dir) {
                    continue;
                }
                chain(&mut l, &mut emitted, model, parent_of(&sym));
                emitted.insert(through.clone());
                emitted.insert(real.clone());
                l.file(&through, format!("through {sym}").as_bytes(), 0o644);
                model.insert(real, Kind::File);
            }
            _ => {}
        }
    }
    for m in deferred_opaque {
        l.file(&m, b"", 0o644);
    }
    l.finish()
}

fn write_layout(dir: &Path, layers: &[Vec<u8>]) {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| -> (String, usize) {
        let hex = sha256_hex(data);
        fs::write(blobs.join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for tar in layers {
        diff_ids.push(format!("sha256:{}", sha256_hex(tar)));
        let (digest, size) = put(&gzip(tar));
        descs.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size}));
    }
    let config = serde_json::json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let (cd, cs) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs}, "layers": descs});
    let (md, ms) = put(&serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": md, "size": ms, "annotations": {"org.opencontainers.image.ref.name": "t"}}]});
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

fn comparable(mut t: BTreeMap<String, Node>) -> BTreeMap<String, Node> {
    for n in t.values_mut() {
        n.ino = 0;
        if n.kind == "dir" {
            n.mtime = (0, 0);
            n.nlink = 0;
            n.xattrs.retain(|k, _| !k.starts_with("trusted.overlay."));
        }
    }
    t
}

fn diff(ours: &BTreeMap<String, Node>, theirs: &BTreeMap<String, Node>) -> Option<String> {
    let a: Vec<_> = ours.keys().collect();
    let b: Vec<_> = theirs.keys().collect();
    if a != b {
        return Some(format!("paths differ:\n ours   {a:?}\n umoci  {b:?}"));
    }
    for (p, n) in theirs {
        if &ours[p] != n {
            return Some(format!("{p}:\n ours  {:?}\n umoci {n:?}", ours[p]));
        }
    }
    None
}

/// The members of each layer, for failure messages.
fn describe(layers: &[Vec<u8>]) -> String {
    let mut out = String::new();
    for (i, tar) in layers.iter().enumerate() {
        out.push_str(&format!("\n layer {i}:"));
        let mut a = tar::Archive::new(&tar[..]);
        for e in a.entries().unwrap() {
            let e = e.unwrap();
            let h = e.header();
            out.push_str(&format!(
                "\n   {:?} {} {}",
                h.entry_type(),
                String::from_utf8_lossy(&e.path_bytes()),
                e.link_name_bytes()
                    .map(|l| format!("-> {}", String::from_utf8_lossy(&l)))
                    .unwrap_or_default()
            ));
        }
    }
    out
}

fn check_image(seed: u64) -> Result<(), String> {
    let layers = gen_image(seed);
    check_layers(seed, &layers).map_err(|e| format!("{e}{}", describe(&layers)))
}

fn gen_image(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng(seed | 1);
    let mut model = BTreeMap::new();
    let n = 2 + rng.below(3);
    let mut links = BTreeMap::new();
    let layers: Vec<Vec<u8>> = (0..n)
        .map(|i| gen_layer(&mut rng, &mut model, &mut links, i))
        .collect();
    layers
}

fn check_layers(seed: u64, layers: &[Vec<u8>]) -> Result<(), String> {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    write_layout(&layout, layers);
    let bundle = tmp.path().join("bundle");
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:t", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(format!(
            "umoci failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let theirs = comparable(tree(&bundle.join("rootfs")));

    let flat = tmp.path().join("flat");
    fs::create_dir(&flat).unwrap();
    for tar in layers {
        apply_layer(&tar[..], &flat, &ApplyOptions::new(ApplyMode::Flatten))
            .map_err(|e| format!("flatten: {e}"))?;
    }
    if let Some(d) = diff(&comparable(tree(&flat)), &theirs) {
        return Err(format!("flatten differs from umoci (seed {seed}): {d}"));
    }

    let mut lowers: Vec<PathBuf> = Vec::new();
    for (i, tar) in layers.iter().enumerate() {
        let dir = tmp.path().join(format!("l{i}"));
        fs::create_dir(&dir).unwrap();
        let opts = ApplyOptions::new(ApplyMode::Overlay).lower_layers(lowers.clone());
        apply_layer(&tar[..], &dir, &opts).map_err(|e| format!("overlay: {e}"))?;
        // The pull applies layers on their own and keeps them when their
        // footprint settles against the layers below: then they must be
        // exactly what applying them onto those layers gives.
        let own = tmp.path().join(format!("own{i}"));
        fs::create_dir(&own).unwrap();
        let opts = ApplyOptions::new(ApplyMode::Overlay).footprint(true);
        let stats = apply_layer(&tar[..], &own, &opts).map_err(|e| format!("own: {e}"))?;
        let settled = stats.footprint.unwrap().settle(&own, &lowers);
        if let Ok(Settled::Complete { .. }) = settled {
            // Whiteout devices are made at extraction time: their times differ.
            let settled = |t| {
                let mut t = comparable(t);
                for n in t.values_mut().filter(|n| n.kind == "char" && n.rdev == 0) {
                    n.mtime = (0, 0);
                }
                t
            };
            if let Some(d) = diff(&settled(tree(&own)), &settled(tree(&dir))) {
                return Err(format!(
                    "layer {i} applied on its own, settled, differs (seed {seed}): {d}"
                ));
            }
        }
        lowers.push(dir);
    }
    let merged = tmp.path().join("merged");
    fs::create_dir(&merged).unwrap();
    // An empty directory at the bottom: overlayfs wants two lower layers.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let lowerdir = lowers
        .iter()
        .rev()
        .chain(std::iter::once(&empty))
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    nix::mount::mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        nix::mount::MsFlags::MS_RDONLY,
        Some(format!("lowerdir={lowerdir}").as_str()),
    )
    .map_err(|e| format!("mount: {e}"))?;
    let mut ours = comparable(tree(&merged));
    nix::mount::umount(&merged).unwrap();
    // overlayfs reports a lower file's own link count, which counts links
    // that upper layers hid: not comparable.
    let mut theirs = theirs;
    for n in ours.values_mut().chain(theirs.values_mut()) {
        n.nlink = 0;
    }
    if let Some(d) = diff(&ours, &theirs) {
        return Err(format!("overlay differs from umoci (seed {seed}): {d}"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn random_images_match_umoci(seed in any::<u64>()) {
        if !privileged() || Command::new("umoci").arg("--version").output().is_err() {
            if std::env::var_os("BASIC_DOCKER_REQUIRE_PRIVILEGED").is_some() {
                panic!("needs root and umoci");
            }
            return Ok(());
        }
        check_image(seed).map_err(TestCaseError::fail)?;
    }
}

/// Re-run one image: `DIFF_SEED=<seed> cargo test --test differential_umoci one_seed`.
#[test]
fn one_seed() {
    let Some(seed) = std::env::var("DIFF_SEED").ok().and_then(|s| s.parse().ok()) else {
        return;
    };
    if !privileged() {
        return;
    }
    if let Err(e) = check_image(seed) {
        panic!("{e}");
    }
}
