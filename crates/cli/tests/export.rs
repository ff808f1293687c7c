//! `export` as a docker user drives it: the archive of a container that wrote
//! files of every kind, read with GNU tar, extracted and compared with the
//! container's mounted root, imported and run again; a running and a stopped
//! container; the refusals docker makes.

mod common;

use common::{Cleanup, basic_docker, busybox_store as store, ok};

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use basic_test_support::bounded::{COMMAND_LIMIT, output_within, wait_with_output_within};

/// What the container writes before it waits: one of each kind a user makes.
const WRITES: &str = "set -e
echo hello > /data.txt
ln /data.txt /link-to-data
ln -s /data.txt /sym-to-data
echo 'exit 0' > /setuid-tool && chmod 4755 /setuid-tool
mkfifo -m 640 /pipe
echo mine > /owned && chown 1000:1000 /owned && chmod 600 /owned
mkdir -p /srv/deep/er && echo deep > /srv/deep/er/file
rm /bin/ls
touch /ready
exec sleep 1000";

/// `export ARGS... > FILE`, waited for.
fn export_to(root: &Path, args: &[&str], file: &Path) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .arg("export")
        .args(args)
        .stdout(File::create(file).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_output_within(child, COMMAND_LIMIT, &format!("export {args:?}"))
}

fn gnu_tar(args: &[&str], archive: &Path, extra: &[&Path]) -> String {
    let out = output_within(
        Command::new("tar")
            .env("LC_ALL", "C")
            .args(args)
            .arg(archive)
            .args(extra),
        COMMAND_LIMIT,
        &format!("tar {args:?}"),
    );
    assert!(
        out.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `tar -tv --numeric-owner`: member name -> its listing line, spaces collapsed.
fn listing(archive: &Path) -> BTreeMap<String, String> {
    gnu_tar(&["-tv", "--numeric-owner", "-f"], archive, &[])
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields[5].trim_end_matches('/').to_string();
            (name, fields.join(" "))
        })
        .collect()
}

/// One path of a tree as a user compares it: kind and mode bits, owner, size,
/// content, link target, mtime (seconds), and the first path of its hard link group.
type Entry = (u32, u32, u32, u64, Vec<u8>, Option<PathBuf>, i64, String);

fn tree(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut groups: BTreeMap<u64, String> = BTreeMap::new();
    walk(root, root, &mut out, &mut groups);
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, Entry>,
    groups: &mut BTreeMap<u64, String>,
) {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let content = if ft.is_file() {
            fs::read(&path).unwrap()
        } else {
            Vec::new()
        };
        let link = ft.is_symlink().then(|| fs::read_link(&path).unwrap());
        let group = if ft.is_dir() {
            rel.clone()
        } else {
            groups
                .entry(md.ino())
                .or_insert_with(|| rel.clone())
                .clone()
        };
        let size = if ft.is_dir() { 0 } else { md.size() };
        let entry = (
            md.mode(),
            md.uid(),
            md.gid(),
            size,
            content,
            link,
            md.mtime(),
            group,
        );
        out.insert(rel, entry);
        if ft.is_dir() {
            walk(root, &path, out, groups);
        }
        assert!(!ft.is_socket(), "no sockets expected here");
    }
}

fn mounted(path: &Path) -> bool {
    let want = path.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&want))
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn export_of_a_running_then_stopped_container_is_its_root() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["writer"]).images(&["exported:latest"]);
    let id = ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            "writer",
            "--network",
            "none",
            image,
            "sh",
            "-c",
            WRITES,
        ],
    ));
    let rootfs = root.join("containers").join(&id).join("rootfs");
    eventually("the container's writes", || rootfs.join("ready").exists());
    let work = tempfile::tempdir().unwrap();

    // Running: the archive is the mounted root, as GNU tar extracts it.
    let running = work.path().join("running.tar");
    let out = export_to(root, &["writer"], &running);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let extracted = work.path().join("extracted");
    fs::create_dir(&extracted).unwrap();
    gnu_tar(
        &["--xattrs", "--numeric-owner", "-xpf"],
        &running,
        &[Path::new("-C"), &extracted],
    );
    let (want, got) = (tree(&rootfs), tree(&extracted));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (path, entry) in &want {
        assert_eq!(&got[path], entry, "{path}");
    }

    // Stopped: the same archive, and the root is not left mounted.
    ok(basic_docker(root, &["kill", "writer"]));
    assert_eq!(ok(basic_docker(root, &["wait", "writer"])), "137");
    eventually("the root's unmount", || !mounted(&rootfs));
    let archive = work.path().join("stopped.tar");
    let out = basic_docker(
        root,
        &["export", "-o", archive.to_str().unwrap(), &id[..12]],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    assert!(
        !mounted(&rootfs),
        "a stopped container's root stays unmounted"
    );
    let names: Vec<_> = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("stopped"))
        .collect();
    assert_eq!(
        names,
        ["stopped.tar"],
        "no temp file is left beside -o FILE"
    );
    let list = listing(&archive);
    assert_eq!(list, listing(&running));

    // What the container wrote, as GNU tar lists it.
    let line = |name: &str| {
        list.get(name)
            .unwrap_or_else(|| panic!("{name} missing from the archive"))
            .as_str()
    };
    assert!(line("data.txt").starts_with("-rw-r--r-- 0/0 6 "));
    assert!(line("link-to-data").starts_with("hrw-r--r-- 0/0 0 "));
    assert!(line("link-to-data").ends_with("link-to-data link to data.txt"));
    assert!(line("sym-to-data").starts_with("lrwxrwxrwx 0/0 "));
    assert!(line("sym-to-data").ends_with("sym-to-data -> /data.txt"));
    assert!(line("setuid-tool").starts_with("-rwsr-xr-x 0/0 "));
    assert!(line("pipe").starts_with("prw-r----- 0/0 "));
    assert!(line("owned").starts_with("-rw------- 1000/1000 5 "));
    assert!(line("srv/deep/er").starts_with("drwxr-xr-x 0/0 "));
    assert!(line("srv/deep/er/file").starts_with("-rw-r--r-- 0/0 5 "));
    // The image's files, but not the one the container deleted, and no whiteouts.
    assert!(line("bin/cat").contains(" bin/cat"));
    assert!(!list.contains_key("bin/ls"));
    assert!(!list.keys().any(|n| n.contains(".wh.")), "no whiteouts");
    assert!(
        !list
            .keys()
            .any(|n| n.starts_with('/') || n.starts_with("./"))
    );

    // `import` of the export is an image that runs.
    ok(basic_docker(
        root,
        &["import", archive.to_str().unwrap(), "exported:latest"],
    ));
    let out = ok(basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "exported:latest",
            "sh",
            "-c",
            "cat /data.txt /srv/deep/er/file; stat -c '%a %u:%g' /owned /setuid-tool; \
             test -p /pipe && echo fifo; test -e /bin/ls || echo no-ls",
        ],
    ));
    assert_eq!(out, "hello\ndeep\n600 1000:1000\n4755 0:0\nfifo\nno-ls");
}

#[test]
fn export_of_an_unknown_container_fails_as_docker_does() {
    let Some((dir, _)) = store() else { return };
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("none.tar");
    let out = export_to(dir.path(), &["no-such-container"], &file);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No such container: no-such-container"),
        "{err}"
    );
    assert_eq!(fs::metadata(&file).unwrap().len(), 0);
    let out = basic_docker(
        dir.path(),
        &[
            "export",
            "-o",
            work.path().join("x.tar").to_str().unwrap(),
            "nope",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        fs::read_dir(work.path()).unwrap().count(),
        1,
        "no file made"
    );
}

#[test]
fn export_refuses_to_write_to_a_terminal() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["quiet"]);
    ok(basic_docker(
        root,
        &["create", "--name", "quiet", image, "true"],
    ));
    let pty = nix::pty::openpty(None, None).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(["export", "quiet"])
        .stdout(File::from(pty.slave))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_output_within(out, COMMAND_LIMIT, "export to a terminal");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cowardly refusing to save to a terminal. Use the -o flag or redirect"),
        "{err}"
    );
    // Nothing reached the terminal.
    use std::os::fd::AsRawFd as _;
    let master = pty.master.as_raw_fd();
    let mut buf = [0u8; 64];
    // SAFETY: plain calls on a descriptor this test owns, into a buffer of the length given.
    let read = unsafe {
        libc::fcntl(master, libc::F_SETFL, libc::O_NONBLOCK);
        libc::read(master, buf.as_mut_ptr().cast(), buf.len())
    };
    assert_eq!(
        read,
        -1,
        "the terminal got {:?}",
        &buf[..read.max(0) as usize]
    );
}
