//! Helpers shared by the integration tests: building layer tars (including
//! hostile ones), reading back a tree, and the root check.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

pub const MTIME: u64 = 1_600_000_000;

/// Whether the test may run: it needs root. Without root it skips itself,
/// unless BASIC_DOCKER_REQUIRE_PRIVILEGED is set, in which case it fails.
pub fn privileged() -> bool {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("BASIC_DOCKER_REQUIRE_PRIVILEGED").is_some() {
        panic!("this test needs root and BASIC_DOCKER_REQUIRE_PRIVILEGED is set");
    }
    eprintln!("skipping: this test needs root");
    false
}

/// A layer tar under construction.
pub struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(MTIME);
    h.set_size(0);
    h
}

impl Layer {
    pub fn new() -> Self {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// Append a member built from `h` (path and link set through the
    /// builder, so long names get GNU extension headers).
    pub fn add(&mut self, mut h: tar::Header, path: &str, data: &[u8]) -> &mut Self {
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.add(header(tar::EntryType::Directory, mode), path, b"")
    }

    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.add(header(tar::EntryType::Regular, mode), path, data)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let mut h = header(tar::EntryType::Regular, mode);
        h.set_uid(uid);
        h.set_gid(gid);
        self.add(h, path, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Symlink, 0o777);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = header(tar::EntryType::Link, 0o644);
        self.b.append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn device(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        major: u32,
        minor: u32,
        mode: u32,
    ) -> &mut Self {
        let mut h = header(kind, mode);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.add(h, path, b"")
    }

    /// A PAX extended header ('x') applying to the next member.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body_len = 1 + k.len() + 1 + v.len() + 1;
            let mut len = body_len + 1;
            while format!("{len}").len() + body_len != len {
                len = format!("{len}").len() + body_len;
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        let mut h = header(tar::EntryType::XHeader, 0o644);
        h.set_size(data.len() as u64);
        h.as_old_mut().name[..13].copy_from_slice(b"PaxHeaders/x\0");
        h.set_cksum();
        self.b.append(&h, &data[..]).unwrap();
        self
    }

    /// A member whose name and link name are written as raw bytes,
    /// bypassing every check the builder makes (for hostile names).
    pub fn raw(
        &mut self,
        kind: tar::EntryType,
        name: &[u8],
        link: &[u8],
        data: &[u8],
        mode: u32,
    ) -> &mut Self {
        let mut h = header(kind, mode);
        h.set_size(data.len() as u64);
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..name.len()].copy_from_slice(name);
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// Raw bytes appended to the stream as they are.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.b.get_mut().write_all(bytes).unwrap();
        self
    }

    /// The finished tar (with its two end-of-archive blocks).
    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }

    /// A finished copy of the tar so far (with end-of-archive blocks).
    pub fn bytes_so_far(&self) -> Vec<u8> {
        let mut v = self.b.get_ref().clone();
        v.extend_from_slice(&[0; 1024]);
        v
    }

    /// The tar without end-of-archive blocks.
    pub fn unterminated(mut self) -> Vec<u8> {
        std::mem::take(self.b.get_mut())
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// One path of a tree, as a user would compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub sha256: Option<String>,
    pub link: Option<String>,
    pub rdev: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
    pub nlink: u64,
    pub ino: u64,
    pub mtime: (i64, i64),
}

pub fn node(path: &Path) -> Node {
    let md = fs::symlink_metadata(path).unwrap();
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_char_device() {
        "char"
    } else if ft.is_block_device() {
        "block"
    } else if ft.is_fifo() {
        "fifo"
    } else {
        "other"
    };
    let mut xattrs = BTreeMap::new();
    if let Ok(names) = xattr::list(path) {
        for name in names {
            let value = xattr::get(path, &name).ok().flatten().unwrap_or_default();
            xattrs.insert(name.to_string_lossy().into_owned(), value);
        }
    }
    Node {
        kind,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
        size: if ft.is_file() { md.size() } else { 0 },
        sha256: ft.is_file().then(|| sha256_hex(&fs::read(path).unwrap())),
        link: ft
            .is_symlink()
            .then(|| fs::read_link(path).unwrap().to_string_lossy().into_owned()),
        rdev: md.rdev(),
        xattrs,
        nlink: md.nlink(),
        ino: md.ino(),
        mtime: (md.mtime(), md.mtime_nsec()),
    }
}

/// Every path below `root` (relative, `/`-separated), without following symlinks.
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).unwrap();
        let rel = String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned();
        let n = node(&p);
        let is_dir = n.kind == "dir";
        out.insert(rel, n);
        if is_dir {
            walk(root, &p, out);
        }
    }
}

/// Names of everything below `dir`, for "nothing appeared here" checks.
pub fn listing(dir: &Path) -> Vec<String> {
    tree(dir).into_keys().collect()
}
