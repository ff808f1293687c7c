//! Structured input: a list of tar members with names drawn from hostile
//! pieces (`..`, `/`, whiteouts, the sentinel's absolute path), serialized
//! with valid checksums so the fuzzer explores extraction rather than the
//! header checksum.
#![no_main]

mod common;

use arbitrary::Arbitrary;

#[derive(Arbitrary, Debug)]
enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Fifo,
    Char,
}

#[derive(Arbitrary, Debug)]
struct Member {
    kind: Kind,
    name: Vec<u8>,
    link: Vec<u8>,
    data: Vec<u8>,
    mode: u16,
    uid: u8,
}

const PIECES: &[&str] = &[
    "a",
    "b",
    "..",
    ".",
    "/",
    "etc",
    ".wh.a",
    ".wh..wh..opq",
    "/tmp/basic-rootfs-fuzz",
    "sentinel",
    "file",
    "/proc/self/root",
    "root0",
    "root1",
];

/// Bytes to a path: each byte picks a piece, joined by `/`.
fn path(selectors: &[u8]) -> String {
    let parts: Vec<&str> = selectors
        .iter()
        .take(8)
        .map(|b| PIECES[*b as usize % PIECES.len()])
        .collect();
    parts.join("/")
}

fn build(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members.iter().take(32) {
        let mut h = tar::Header::new_ustar();
        let kind = match m.kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Hardlink => tar::EntryType::Link,
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Char => tar::EntryType::Char,
        };
        h.set_entry_type(kind);
        let name = path(&m.name);
        let link = path(&m.link);
        let old = h.as_old_mut();
        let n = name.len().min(99);
        old.name[..n].copy_from_slice(&name.as_bytes()[..n]);
        let l = link.len().min(99);
        old.linkname[..l].copy_from_slice(&link.as_bytes()[..l]);
        h.set_mode(u32::from(m.mode) & 0o7777);
        h.set_uid(u64::from(m.uid));
        h.set_gid(0);
        h.set_mtime(0);
        let data: &[u8] = if matches!(m.kind, Kind::File) {
            &m.data
        } else {
            &[]
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0; 1024]);
    out
}

libfuzzer_sys::fuzz_target!(|members: Vec<Member>| {
    common::check(&build(&members));
});
