//! `export::write_tree` on trees with every hard case, checked against GNU
//! tar: the listing of our archive beside GNU tar's own archive of the same
//! tree, GNU tar extracting our archive back into the same tree, and our own
//! `apply_layer` reading it back. Needs root (mknod, chown, xattrs, mounts).

mod common;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, lchown, symlink};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use basic_rootfs::export::{ExportError, write_tree};
use basic_rootfs::{ApplyMode, ApplyOptions, apply_layer};
use common::{Node, privileged, tree};

/// `security.capability` granting cap_net_bind_service (VFS_CAP_REVISION_2,
/// permitted bit 10, not effective).
const NET_BIND_CAP: [u8; 20] = [
    0x00, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(path: &Path, mode: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mknod(path: &Path, kind: libc::mode_t, mode: libc::mode_t, major: u32, minor: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid C string.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | mode, libc::makedev(major, minor)) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    // mknod applies the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn set_mtime(path: &Path, time: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// Every kind of entry and every header field an archive must carry.
fn hard_tree(src: &Path) {
    mkdir(&src.join("dir"), 0o755);
    mkdir(&src.join("private"), 0o700);
    mkdir(&src.join("tmp"), 0o1777);
    mkdir(&src.join("sgid"), 0o2755);
    mkdir(&src.join("empty-dir"), 0o755);
    write(&src.join("dir/file"), b"hello\n", 0o644);
    write(&src.join("setuid"), b"#!/bin/sh\nexit 0\n", 0o4755);
    write(&src.join("setgid"), b"g", 0o2711);
    write(&src.join("private/nomode"), b"secret", 0o000);
    write(&src.join("empty"), b"", 0o644);
    write(&src.join("owned"), b"by 1000", 0o640);
    lchown(src.join("owned"), Some(1000), Some(1000)).unwrap();
    write(&src.join("big-ids"), b"ids above ustar's octal", 0o600);
    lchown(src.join("big-ids"), Some(3_000_000), Some(3_000_001)).unwrap();
    lchown(src.join("sgid"), Some(1000), Some(50)).unwrap();
    write(&src.join("capable"), b"\x7fELF", 0o755);
    xattr::set(src.join("capable"), "security.capability", &NET_BIND_CAP).unwrap();
    xattr::set(src.join("dir/file"), "user.note", b"a note").unwrap();
    xattr::set(src.join("dir"), "trusted.demo", b"on a directory").unwrap();
    // 64 KiB of data, more than one read.
    let big: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    write(&src.join("big"), &big, 0o644);
    // Hard links: beside, in another directory, and under a long name.
    fs::hard_link(src.join("dir/file"), src.join("hard")).unwrap();
    mkdir(&src.join("long"), 0o755);
    let long_dir = src.join("long").join("d".repeat(120));
    mkdir(&long_dir, 0o755);
    write(&long_dir.join("f".repeat(90)), b"splittable", 0o644);
    fs::hard_link(src.join("dir/file"), long_dir.join("h".repeat(95))).unwrap();
    write(
        &src.join("long").join("n".repeat(200)),
        b"one long component",
        0o644,
    );
    let deep = src.join("deep").join("s".repeat(120)).join("t".repeat(120));
    mkdir(&deep, 0o755);
    write(&deep.join("file"), b"deep", 0o644);
    // A hard link whose first name is the long one: its link name is long.
    fs::hard_link(deep.join("file"), src.join("dir/hard-to-deep")).unwrap();
    // Symlinks of every kind, one with xattrs of its own.
    symlink("dir/file", src.join("rel")).unwrap();
    symlink("/etc/passwd", src.join("abs")).unwrap();
    symlink("nowhere", src.join("dangling")).unwrap();
    symlink("../../../..", src.join("escape")).unwrap();
    symlink("x/".repeat(75), src.join("long-target")).unwrap();
    symlink("dir", src.join("to-dir")).unwrap();
    xattr::set(src.join("rel"), "trusted.link", b"on a symlink").unwrap();
    lchown(src.join("rel"), Some(7), Some(8)).unwrap();
    // Devices, a FIFO, a socket (left out, as GNU tar leaves it out).
    mknod(&src.join("null"), libc::S_IFCHR, 0o666, 1, 3);
    mknod(&src.join("loop9"), libc::S_IFBLK, 0o660, 7, 9);
    mknod(&src.join("fifo"), libc::S_IFIFO, 0o620, 0, 0);
    std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    // Names that are not plain ASCII.
    write(&src.join("héllo wörld.txt"), b"utf-8", 0o644);
    write(
        &src.join(OsStr::from_bytes(b"bytes\xff\xfe")),
        b"not utf-8",
        0o644,
    );
    // Times: the epoch, before it, and far ahead.
    write(&src.join("epoch"), b"", 0o644);
    set_mtime(&src.join("epoch"), UNIX_EPOCH);
    write(&src.join("before-1970"), b"", 0o644);
    set_mtime(
        &src.join("before-1970"),
        UNIX_EPOCH - Duration::from_secs(86_400 * 400),
    );
    write(&src.join("year-2300"), b"", 0o644);
    set_mtime(
        &src.join("year-2300"),
        UNIX_EPOCH + Duration::from_secs(10_500_000_000),
    );
}

fn export(src: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    write_tree(src, &mut out).unwrap();
    out
}

fn gnu_tar(args: &[&OsStr]) -> Vec<u8> {
    let out = Command::new("tar")
        .env("LC_ALL", "C")
        .env("TZ", "UTC")
        .args(args)
        .output()
        .expect("run GNU tar");
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `tar -tv --numeric-owner` of an archive, one line per member, names
/// without GNU tar's `./` and without the root's own member, sorted.
fn listing(archive: &Path) -> Vec<String> {
    let text = gnu_tar(&[
        "-tv".as_ref(),
        "--numeric-owner".as_ref(),
        "-f".as_ref(),
        archive.as_os_str(),
    ]);
    let mut lines: Vec<String> = String::from_utf8(text)
        .unwrap()
        .lines()
        .filter(|l| !l.ends_with(" ./"))
        .map(|l| l.replace(" ./", " ").replace("link to ./", "link to "))
        .collect();
    lines.sort();
    lines
}

#[test]
fn lists_like_gnu_tar_on_the_hard_cases() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    mkdir(&src, 0o755);
    hard_tree(&src);
    let ours = dir.path().join("ours.tar");
    fs::write(&ours, export(&src)).unwrap();
    let theirs = dir.path().join("gnu.tar");
    gnu_tar(&[
        "--sort=name".as_ref(),
        "--numeric-owner".as_ref(),
        "--format=posix".as_ref(),
        "-C".as_ref(),
        src.as_os_str(),
        "-cf".as_ref(),
        theirs.as_os_str(),
        ".".as_ref(),
    ]);
    let (ours, theirs) = (listing(&ours), listing(&theirs));
    assert_eq!(ours, theirs);
    // The cases the comparison is about are really there.
    for needle in [
        "-rwsr-xr-x 0/0",
        "-rwx--s--x 0/0",
        "drwxrwxrwt 0/0",
        "drwxr-sr-x 1000/50",
        "-rw-r----- 1000/1000",
        "-rw------- 3000000/3000001",
        "crw-rw-rw- 0/0 1,3",
        "brw-rw---- 0/0 7,9",
        "prw--w---- 0/0",
        "lrwxrwxrwx 7/8",
        "hrw-r--r-- 0/0",
        "1968-11-27",
        "2302-",
        "rel -> dir/file",
        "escape -> ../../../..",
        "hard link to dir/file",
        "bytes\\377\\376",
    ] {
        assert!(
            ours.iter().any(|l| l
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .contains(needle)),
            "{needle:?} missing from\n{}",
            ours.join("\n")
        );
    }
    assert!(
        !ours.iter().any(|l| l.contains("sock")),
        "sockets are left out"
    );
    let long_link = ours.iter().find(|l| l.contains(&"h".repeat(95))).unwrap();
    assert!(long_link.ends_with(" link to dir/file"), "{long_link}");
    let long_to_deep = ours
        .iter()
        .find(|l| l.contains("dir/hard-to-deep"))
        .unwrap();
    assert!(
        long_to_deep.ends_with(&format!("{}/file", "t".repeat(120))),
        "{long_to_deep}"
    );
}

/// A tree as it can be compared after a round trip: inode numbers become the
/// first path of each hard link group, times whole seconds.
fn comparable(root: &Path) -> BTreeMap<String, (Node, String)> {
    let nodes = tree(root);
    let mut first: BTreeMap<u64, String> = BTreeMap::new();
    nodes
        .into_iter()
        .map(|(path, mut node)| {
            let group = first
                .entry(node.ino)
                .or_insert_with(|| path.clone())
                .clone();
            node.ino = 0;
            node.mtime.1 = 0;
            if node.kind == "dir" {
                // Its size is the filesystem's business.
                node.size = 0;
            }
            (path, (node, group))
        })
        .collect()
}

#[test]
fn gnu_tar_extracts_the_same_tree_back() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    mkdir(&src, 0o755);
    hard_tree(&src);
    fs::remove_file(src.join("sock")).unwrap();
    let archive = dir.path().join("ours.tar");
    fs::write(&archive, export(&src)).unwrap();
    let out = dir.path().join("out");
    mkdir(&out, 0o755);
    gnu_tar(&[
        "--xattrs".as_ref(),
        "--xattrs-include=*".as_ref(),
        "--numeric-owner".as_ref(),
        "-xpf".as_ref(),
        archive.as_os_str(),
        "-C".as_ref(),
        out.as_os_str(),
    ]);
    let (want, got) = (comparable(&src), comparable(&out));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (path, expected) in &want {
        assert_eq!(&got[path], expected, "{path}");
    }
    let capable = &got["capable"].0;
    assert_eq!(capable.xattrs["security.capability"], NET_BIND_CAP);
    assert_eq!(got["rel"].0.xattrs["trusted.link"], b"on a symlink");
}

#[test]
fn apply_layer_reads_back_what_write_tree_wrote() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    mkdir(&src, 0o755);
    hard_tree(&src);
    fs::remove_file(src.join("sock")).unwrap();
    let out = dir.path().join("out");
    mkdir(&out, 0o755);
    apply_layer(
        export(&src).as_slice(),
        &out,
        &ApplyOptions::new(ApplyMode::Flatten),
    )
    .unwrap();
    let (want, got) = (comparable(&src), comparable(&out));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (path, expected) in &want {
        assert_eq!(&got[path], expected, "{path}");
    }
}

#[test]
fn the_same_tree_gives_the_same_bytes() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    hard_tree(dir.path());
    let first = export(dir.path());
    assert_eq!(first, export(dir.path()));
    // Members in name order, directories before what they hold, no root member.
    let mut archive = tar::Archive::new(first.as_slice());
    let names: Vec<Vec<u8>> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect();
    assert_eq!(names[0], b"abs");
    let dir_at = names.iter().position(|n| n == b"dir/").unwrap();
    assert_eq!(names[dir_at + 1], b"dir/file");
    assert!(
        !names
            .iter()
            .any(|n| n == b"./" || n == b"/" || n.is_empty())
    );
}

/// Unmounts however the test ends.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn bind(source: &Path, target: &Path) -> Unmount {
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    Unmount(target.to_owned())
}

#[test]
fn symlinks_are_not_followed_and_mounts_not_crossed() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let outside = dir.path().join("outside");
    mkdir(&src.join("mnt"), 0o755);
    mkdir(&outside, 0o755);
    write(&outside.join("host-secret"), b"not in the tree", 0o600);
    symlink(&outside, src.join("link-out")).unwrap();
    write(&src.join("covered"), b"under a mount", 0o644);
    write(&src.join("kept"), b"kept", 0o644);
    let _dir_mount = bind(&outside, &src.join("mnt"));
    let _file_mount = bind(&outside.join("host-secret"), &src.join("covered"));
    let archive = export(&src);
    let mut names = Vec::new();
    for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
        let entry = entry.unwrap();
        names.push(String::from_utf8(entry.path_bytes().into_owned()).unwrap());
    }
    assert_eq!(names, ["kept", "link-out", "mnt/"]);
    let bytes = String::from_utf8_lossy(&archive);
    assert!(!bytes.contains("host-secret") && !bytes.contains("not in the tree"));
}

#[test]
fn errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-root");
    let err = write_tree(&missing, std::io::sink()).unwrap_err();
    assert!(matches!(err, ExportError::Read { .. }));
    assert!(err.to_string().contains("no-such-root"), "{err}");

    /// A writer that takes 1 KiB and then fails.
    struct Full(usize);
    impl std::io::Write for Full {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 >= 1024 {
                return Err(std::io::Error::other("disk full"));
            }
            let n = buf.len().min(1024 - self.0);
            self.0 += n;
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    // `a` fills the first 1 KiB exactly (header and one data block).
    fs::write(dir.path().join("a"), vec![b'a'; 100]).unwrap();
    fs::write(dir.path().join("b"), vec![b'b'; 100]).unwrap();
    let err = write_tree(dir.path(), Full(0)).unwrap_err();
    assert!(matches!(err, ExportError::Write { .. }), "{err:?}");
    assert!(err.to_string().ends_with("/b)"), "{err}");
    // The writer's error is the source.
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert_eq!(source, "disk full");
}
