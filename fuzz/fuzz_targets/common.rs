//! Shared by the fuzz targets: apply a layer in both modes into a fresh
//! root next to a sentinel directory, and check that nothing outside the
//! root changed.

use std::fs;
use std::path::{Path, PathBuf};

use basic_rootfs::{ApplyMode, ApplyOptions, Limits, apply_layer};

/// A fixed, well-known place (so inputs can name it in absolute paths).
pub const BASE: &str = "/tmp/basic-rootfs-fuzz";

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

pub fn check(data: &[u8]) {
    let base = PathBuf::from(BASE).join(std::process::id().to_string());
    let sentinel = base.join("sentinel");
    let _ = fs::remove_dir_all(&base);
    fs::create_dir_all(&sentinel).unwrap();
    fs::write(sentinel.join("file"), b"precious").unwrap();
    let before_tmp = listing(Path::new("/tmp/basic-rootfs-fuzz"));
    let limits = Limits::default()
        .max_bytes(64 << 20)
        .max_entries(10_000)
        .max_header_bytes(256 << 10);
    for (i, mode) in [ApplyMode::Overlay, ApplyMode::Flatten]
        .into_iter()
        .enumerate()
    {
        let root = base.join(format!("root{i}"));
        fs::create_dir(&root).unwrap();
        let _ = apply_layer(data, &root, &ApplyOptions::new(mode).limits(limits.clone()));
        // Apply twice in flatten mode: the second run meets the symlinks the first planted.
        if mode == ApplyMode::Flatten {
            let _ = apply_layer(data, &root, &ApplyOptions::new(mode).limits(limits.clone()));
        }
    }
    let mut top: Vec<_> = fs::read_dir(&base)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    top.sort();
    assert_eq!(top, ["root0", "root1", "sentinel"]);
    assert_eq!(listing(&sentinel), [sentinel.join("file")]);
    assert_eq!(fs::read(sentinel.join("file")).unwrap(), b"precious");
    let after_tmp: Vec<PathBuf> = listing(Path::new("/tmp/basic-rootfs-fuzz"))
        .into_iter()
        .filter(|p| !p.starts_with(&base))
        .collect();
    let before_tmp: Vec<PathBuf> = before_tmp
        .into_iter()
        .filter(|p| !p.starts_with(&base))
        .collect();
    assert_eq!(before_tmp, after_tmp);
    let _ = fs::remove_dir_all(&base);
}
