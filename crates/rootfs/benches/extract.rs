//! Layer application over generated, real-ish layers: thousands of small
//! files in a directory tree (like /usr/share), a few large ones (like
//! /usr/lib), symlinks and hard links; gzip, zstd and plain. Each
//! iteration extracts into a fresh directory under /dev/shm (tmpfs, so the
//! figures measure this crate, not the disk).
//!
//! Run: `cargo bench -p basic-rootfs --bench extract`

use std::io::Write;
use std::path::PathBuf;

use basic_rootfs::{ApplyMode, ApplyOptions, LayerJob, apply_layer, apply_layers_parallel};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Deterministic pseudo-random bytes that compress like text (about 3:1).
fn content(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&[u8]] = &[
        b"the ",
        b"layer ",
        b"container ",
        b"image ",
        b"root ",
        b"file ",
        b"system ",
        b"0x7f3a ",
        b"\n",
        b"lib",
        b".so ",
        b"usr/",
        b"share ",
        b"{ ",
        b"} ",
        b"return ",
        b"int ",
    ];
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(5) {
            out.extend_from_slice(&x.to_le_bytes()[..3]);
        } else {
            out.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize]);
        }
    }
    out.truncate(len);
    out
}

/// A layer of `files` files spread over directories, sizes like /usr.
fn layer(seed: u64, files: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        h
    };
    let dirs = (files / 40).max(1);
    for d in 0..dirs {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, format!("usr/share/pkg{seed}-{d}/"), &[][..])
            .unwrap();
    }
    for i in 0..files {
        let d = i % dirs;
        // Mostly small files, every 200th a large one.
        let size = if i % 200 == 0 {
            2 << 20
        } else {
            200 + (i * 7919) % 12_000
        };
        let data = content(seed * 1_000_003 + i as u64, size);
        let mut h = header(
            tar::EntryType::Regular,
            if i % 9 == 0 { 0o755 } else { 0o644 },
            size as u64,
        );
        let path = format!("usr/share/pkg{seed}-{d}/file-{i}.txt");
        b.append_data(&mut h, &path, &data[..]).unwrap();
        if i % 50 == 0 {
            let mut h = header(tar::EntryType::Symlink, 0o777, 0);
            b.append_link(&mut h, format!("{path}.link"), format!("file-{i}.txt"))
                .unwrap();
            let mut h = header(tar::EntryType::Link, 0o644, 0);
            b.append_link(&mut h, format!("{path}.hard"), &path)
                .unwrap();
        }
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn scratch() -> tempfile::TempDir {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    tempfile::tempdir_in(base).unwrap()
}

fn bench(c: &mut Criterion) {
    let tar = layer(1, 3000);
    let gz = gzip(&tar);
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    let mut g = c.benchmark_group("apply_layer");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(tar.len() as u64));
    for (name, data) in [("tar", &tar), ("gzip", &gz), ("zstd", &zst)] {
        for (mode_name, mode) in [
            ("overlay", ApplyMode::Overlay),
            ("flatten", ApplyMode::Flatten),
        ] {
            let opts = ApplyOptions::new(mode);
            g.bench_function(format!("{name}/{mode_name}/3000-files"), |b| {
                b.iter_batched(
                    scratch,
                    |dir| {
                        apply_layer(&data[..], dir.path(), &opts).unwrap();
                        dir
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();

    let layers: Vec<Vec<u8>> = (0..4).map(|s| gzip(&layer(10 + s, 1500))).collect();
    let total: usize = layers.len();
    let mut g = c.benchmark_group("four_layers");
    g.sample_size(10);
    for threads in [1, 2] {
        let opts = ApplyOptions::new(ApplyMode::Overlay);
        g.bench_function(
            format!("overlay/threads-{threads}/{total}x1500-files"),
            |b| {
                b.iter_batched(
                    scratch,
                    |dir| {
                        let jobs = layers
                            .iter()
                            .enumerate()
                            .map(|(i, l)| {
                                let target: PathBuf = dir.path().join(i.to_string());
                                std::fs::create_dir(&target).unwrap();
                                LayerJob {
                                    reader: &l[..],
                                    target,
                                }
                            })
                            .collect();
                        for r in apply_layers_parallel(jobs, &opts, threads) {
                            r.unwrap();
                        }
                        dir
                    },
                    BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
