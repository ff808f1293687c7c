//! `cp` and `diff` as a docker user drives them, on real containers (the harness's
//! busybox): round trips in and out of running and stopped containers, docker's
//! names and messages, and the attacks a hostile container can make on a copy: its
//! symlinks to `/`, `..` and host paths, special files, hostile archives, a directory
//! swapped for a symlink while copies run. After each attack nothing on the host has
//! changed: a sentinel directory outside the container keeps exactly its one file.

mod common;

use common::{Cleanup, basic_docker, busybox_store as store, ok, with_stdin};

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// A directory on the host an attack aims at, holding one file; checked after each
/// attack.
struct Sentinel {
    dir: tempfile::TempDir,
}

impl Sentinel {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("sentinel"), "host-secret\n").unwrap();
        Sentinel { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn text(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    #[track_caller]
    fn assert_untouched(&self, after: &str) {
        let names: Vec<String> = fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            names,
            ["sentinel"],
            "after {after}: the host directory changed"
        );
        assert_eq!(
            fs::read_to_string(self.path().join("sentinel")).unwrap(),
            "host-secret\n",
            "after {after}: the host file changed"
        );
    }
}

/// `basic-docker ARGS...`, killed (and the test failed) when it takes longer than 30 s.
fn bounded(root: &Path, args: &[&str]) -> Output {
    basic_test_support::bounded::output_within(
        Command::new(env!("CARGO_BIN_EXE_basic-docker"))
            .arg("--root")
            .arg(root)
            .args(args),
        Duration::from_secs(30),
        &format!("basic-docker {args:?}"),
    )
}

/// Asserts `out` failed with exit 1 and its error says `says`.
#[track_caller]
fn fails(out: Output, says: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(says), "expected {says:?} in: {err}");
}

/// Starts `name` running `script` then sleeping; returns its id once `/ready` exists.
fn start(root: &Path, image: &str, name: &str, script: &str) -> String {
    let script = format!("set -e\n{script}\ntouch /ready\nexec sleep 1000");
    let id = ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "none",
            image,
            "sh",
            "-c",
            &script,
        ],
    ));
    let ready = root.join("containers").join(&id).join("rootfs/ready");
    eventually("the container's setup", || ready.exists());
    id
}

fn stop(root: &Path, name: &str) {
    ok(basic_docker(root, &["kill", name]));
    ok(basic_docker(root, &["wait", name]));
}

fn exec(root: &Path, name: &str, script: &str) -> String {
    ok(basic_docker(root, &["exec", name, "sh", "-c", script]))
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mounted(path: &Path) -> bool {
    let want = path.to_string_lossy();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(&want))
}

/// One entry as a user compares trees: mode (type and bits), owner, size, content,
/// link target, mtime in seconds.
type Entry = (u32, u32, u32, u64, Vec<u8>, Option<PathBuf>, i64);

fn tree(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let md = fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let content = if ft.is_file() {
                fs::read(&path).unwrap()
            } else {
                Vec::new()
            };
            let link = ft.is_symlink().then(|| fs::read_link(&path).unwrap());
            let size = if ft.is_dir() { 0 } else { md.size() };
            let entry = (
                md.mode(),
                md.uid(),
                md.gid(),
                size,
                content,
                link,
                md.mtime(),
            );
            out.insert(rel, entry);
            if ft.is_dir() {
                dirs.push(path);
            }
        }
    }
    out
}

fn set_mtime(path: &Path, secs: i64) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let times = [libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    }; 2];
    // SAFETY: a NUL-terminated path and two timespecs, as utimensat takes them.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

/// A host tree of what users copy: modes, owners, a setuid file, a symlink, an
/// empty directory, old mtimes (set last, deepest first).
fn host_tree(at: &Path) {
    fs::create_dir_all(at.join("sub")).unwrap();
    fs::create_dir(at.join("empty")).unwrap();
    fs::write(at.join("file"), "some data\n").unwrap();
    fs::set_permissions(at.join("file"), fs::Permissions::from_mode(0o640)).unwrap();
    let tool = at.join("sub/tool");
    fs::write(&tool, "#!/bin/sh\necho tool\n").unwrap();
    std::os::unix::fs::chown(&tool, Some(1234), Some(5678)).unwrap();
    // After the chown, which clears setuid.
    fs::set_permissions(&tool, fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(at.join("empty"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("sub/tool", at.join("link")).unwrap();
    set_mtime(&at.join("file"), 1_500_000_000);
    set_mtime(&tool, 1_500_000_100);
    set_mtime(&at.join("link"), 1_500_000_200);
    set_mtime(&at.join("sub"), 1_500_000_300);
    set_mtime(&at.join("empty"), 1_500_000_400);
}

#[test]
fn a_tree_copied_in_and_out_with_a_comes_back_the_same_running_or_stopped() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["cp-trip"]);
    let id = start(root, image, "cp-trip", "mkdir -p /data");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    host_tree(&src);
    let (src_text, work_text) = (src.to_str().unwrap(), work.path().to_str().unwrap());

    ok(basic_docker(
        root,
        &["cp", "-a", src_text, "cp-trip:/data/"],
    ));
    // Inside, as the container's own tools see it.
    let seen = exec(
        root,
        "cp-trip",
        "cd /data/src && stat -c '%n %a %u:%g %Y' file sub/tool sub empty && readlink link",
    );
    assert_eq!(
        seen,
        "file 640 0:0 1500000000\nsub/tool 4755 1234:5678 1500000100\n\
         sub 755 0:0 1500000300\nempty 700 0:0 1500000400\nsub/tool"
    );

    // Out with -a: the same tree, owners included.
    let back = work.path().join("back");
    ok(basic_docker(
        root,
        &["cp", "-a", "cp-trip:/data/src", back.to_str().unwrap()],
    ));
    assert_eq!(tree(&back), tree(&src));

    // Out without -a: owned by the invoking user (root here), modes and times kept.
    let plain = work.path().join("plain");
    ok(basic_docker(
        root,
        &["cp", "cp-trip:/data/src", plain.to_str().unwrap()],
    ));
    let md = fs::symlink_metadata(plain.join("sub/tool")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (0, 0, 0o4755));
    assert_eq!(md.mtime(), 1_500_000_100);

    // Stopped: copies both ways still work, and the root is not left mounted.
    stop(root, "cp-trip");
    let rootfs = root.join("containers").join(&id).join("rootfs");
    eventually("the root's unmount", || !mounted(&rootfs));
    fs::write(work.path().join("while-stopped"), "written while stopped\n").unwrap();
    ok(basic_docker(
        root,
        &[
            "cp",
            &format!("{work_text}/while-stopped"),
            "cp-trip:/data/src/sub/",
        ],
    ));
    assert!(
        !mounted(&rootfs),
        "a stopped container's root stays unmounted"
    );
    let stopped = work.path().join("stopped");
    ok(basic_docker(
        root,
        &["cp", "-a", "cp-trip:/data/src", stopped.to_str().unwrap()],
    ));
    assert!(
        !mounted(&rootfs),
        "a stopped container's root stays unmounted"
    );
    let mut want = tree(&src);
    want.remove("sub");
    let mut got = tree(&stopped);
    got.remove("sub");
    let copied = got.remove("sub/while-stopped").expect("the file copied in");
    assert_eq!(copied.4, b"written while stopped\n");
    assert_eq!(got, want);

    // And the container sees it once started again.
    ok(basic_docker(root, &["start", "cp-trip"]));
    eventually("the restart", || {
        basic_docker(root, &["exec", "cp-trip", "true"])
            .status
            .success()
    });
    assert_eq!(
        exec(root, "cp-trip", "cat /data/src/sub/while-stopped"),
        "written while stopped"
    );
}

#[test]
fn names_streams_and_messages_are_dockers() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["cp-names"]);
    start(
        root,
        image,
        "cp-names",
        "mkdir /d && echo one > /d/one && echo two > /d/two && ln -s /d /l && ln -s /d/one /l1",
    );
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str| work.path().join(name).to_str().unwrap().to_string();

    // A missing path, in docker's words.
    fails(
        basic_docker(root, &["cp", "cp-names:/nope", &w("x")]),
        "Could not find the file /nope in container cp-names",
    );
    assert!(!work.path().join("x").exists());
    // A file into a directory that does not exist.
    fails(
        basic_docker(
            root,
            &["cp", "cp-names:/d/one", &format!("{}/", w("nodir"))],
        ),
        "no such directory",
    );
    // A directory onto a file.
    fs::write(w("afile"), "mine\n").unwrap();
    fails(
        basic_docker(root, &["cp", "cp-names:/d", &w("afile")]),
        "cannot copy directory",
    );
    assert_eq!(fs::read_to_string(w("afile")).unwrap(), "mine\n");

    // A directory into an existing one keeps its name; `d/.` copies what is inside;
    // to a new path, the new name.
    fs::create_dir(w("into")).unwrap();
    ok(basic_docker(root, &["cp", "cp-names:/d", &w("into")]));
    assert_eq!(fs::read_to_string(w("into/d/one")).unwrap(), "one\n");
    ok(basic_docker(root, &["cp", "cp-names:/d/.", &w("into")]));
    assert_eq!(fs::read_to_string(w("into/two")).unwrap(), "two\n");
    ok(basic_docker(root, &["cp", "cp-names:/d", &w("renamed")]));
    assert_eq!(fs::read_to_string(w("renamed/two")).unwrap(), "two\n");

    // A symlink is copied as itself; -L copies what it leads to under its name.
    ok(basic_docker(root, &["cp", "cp-names:/l", &w("link")]));
    assert_eq!(fs::read_link(w("link")).unwrap(), Path::new("/d"));
    ok(basic_docker(
        root,
        &["cp", "-L", "cp-names:/l", &w("followed")],
    ));
    assert_eq!(fs::read_to_string(w("followed/one")).unwrap(), "one\n");
    ok(basic_docker(
        root,
        &["cp", "-L", "cp-names:/l1", &w("one-file")],
    ));
    assert_eq!(fs::read_to_string(w("one-file")).unwrap(), "one\n");

    // `-` out: the tar stream docker sends, named as in the container.
    let out = basic_docker(root, &["cp", "cp-names:/d", "-"]);
    let tarball = common::stdout(&out).into_bytes();
    fs::write(w("d.tar"), &tarball).unwrap();
    let listed = Command::new("tar")
        .arg("-tf")
        .arg(w("d.tar"))
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    names.sort();
    assert_eq!(names, ["d/", "d/one", "d/two"]);

    // `-` in: a tar stream extracted into a directory of the container.
    let made = Command::new("tar")
        .arg("-C")
        .arg(w("into"))
        .args(["-cf", "-", "d"])
        .output()
        .unwrap();
    assert!(made.status.success());
    ok(with_stdin(
        root,
        &["cp", "-", "cp-names:/tmp"],
        &made.stdout,
    ));
    assert_eq!(exec(root, "cp-names", "cat /tmp/d/two"), "two");
    fails(
        with_stdin(root, &["cp", "-", "cp-names:/d/one"], &made.stdout),
        "must be a directory",
    );

    // Into the container: a file into a directory, onto a file, as a new name.
    fs::write(w("hostfile"), "from the host\n").unwrap();
    ok(basic_docker(root, &["cp", &w("hostfile"), "cp-names:/d"]));
    ok(basic_docker(
        root,
        &["cp", &w("hostfile"), "cp-names:/d/one"],
    ));
    ok(basic_docker(
        root,
        &["cp", &w("hostfile"), "cp-names:/d/new"],
    ));
    assert_eq!(
        exec(root, "cp-names", "cat /d/hostfile /d/one /d/new"),
        "from the host\nfrom the host\nfrom the host"
    );
    fails(
        basic_docker(root, &["cp", &w("into"), "cp-names:/d/one"]),
        "cannot copy directory",
    );
    fails(
        basic_docker(root, &["cp", &w("hostfile"), "cp-names:/nodir/"]),
        "no such directory",
    );

    // The argument forms docker refuses.
    fails(
        basic_docker(root, &["cp", &w("a"), &w("b")]),
        "must specify at least one container source",
    );
    fails(
        basic_docker(root, &["cp", "cp-names:/d", "cp-names:/e"]),
        "copying between containers is not supported",
    );
    fails(
        basic_docker(root, &["cp", "no-such-ctr:/d", &w("z")]),
        "No such container: no-such-ctr",
    );
}

#[test]
fn copies_out_resolve_the_containers_symlinks_inside_it_and_do_not_hang() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let sentinel = Sentinel::new();
    let _cleanup = Cleanup::new(root, &["cp-out-attack"]);
    start(
        root,
        image,
        "cp-out-attack",
        &format!(
            "ln -s / /hostroot; ln -s /etc /x; ln -s {host} /h; ln -s ../../../../.. /up
             echo container-file > /etc/only-here
             mkdir /specials; mkfifo /specials/fifo; mkfifo /fifo
             mknod /specials/zero c 1 5; mknod /zero c 1 5; mknod /mem c 1 1",
            host = sentinel.text()
        ),
    );
    let container_passwd = exec(root, "cp-out-attack", "cat /etc/passwd");
    assert_ne!(
        container_passwd.trim(),
        fs::read_to_string("/etc/passwd").unwrap().trim()
    );
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str| work.path().join(name).to_str().unwrap().to_string();

    for (src, name) in [
        ("cp-out-attack:/x/passwd", "p1"),
        ("cp-out-attack:/hostroot/etc/passwd", "p2"),
        ("cp-out-attack:/up/etc/passwd", "p3"),
    ] {
        ok(bounded(root, &["cp", src, &w(name)]));
        assert_eq!(
            fs::read_to_string(w(name)).unwrap().trim(),
            container_passwd,
            "{src} is the container's file"
        );
    }
    ok(bounded(root, &["cp", "-L", "cp-out-attack:/x", &w("etc")]));
    assert!(work.path().join("etc/only-here").exists());
    // The host's sentinel is not in the container: not found, nothing made.
    fails(
        bounded(root, &["cp", "cp-out-attack:/h/sentinel", &w("s1")]),
        "Could not find the file",
    );
    fails(
        bounded(root, &["cp", "-L", "cp-out-attack:/h", &w("s2")]),
        "Could not find the file",
    );
    let through_root = format!("cp-out-attack:/hostroot{}/sentinel", sentinel.text());
    fails(
        bounded(root, &["cp", &through_root, &w("s3")]),
        "Could not find the file",
    );
    for name in ["s1", "s2", "s3"] {
        assert!(!work.path().join(name).exists(), "{name} was made");
    }

    // A FIFO is copied as a FIFO (never opened); device nodes are not made on the host.
    ok(bounded(root, &["cp", "cp-out-attack:/fifo", &w("fifo")]));
    assert!(
        fs::symlink_metadata(w("fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    for src in ["/zero", "/mem", "/specials", "/dev/zero"] {
        let _ = bounded(
            root,
            &["cp", &format!("cp-out-attack:{src}"), &w("special")],
        );
    }
    for entry in walk_all(work.path()) {
        let ft = fs::symlink_metadata(&entry).unwrap().file_type();
        assert!(
            !ft.is_char_device() && !ft.is_block_device(),
            "a device node was made on the host: {}",
            entry.display()
        );
    }
    assert!(
        fs::symlink_metadata(w("special/fifo"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    // `-`: the archive still carries them as the container has them.
    let out = bounded(root, &["cp", "cp-out-attack:/specials", "-"]);
    assert!(out.status.success());
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let kinds: BTreeMap<String, tar::EntryType> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path().unwrap().display().to_string(),
                e.header().entry_type(),
            )
        })
        .collect();
    assert_eq!(kinds["specials/zero"], tar::EntryType::Char);
    assert_eq!(kinds["specials/fifo"], tar::EntryType::Fifo);
    sentinel.assert_untouched("copies out of a hostile container");
}

fn walk_all(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            out.extend(walk_all(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn copies_in_through_the_containers_symlinks_land_inside_it() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let sentinel = Sentinel::new();
    let _cleanup = Cleanup::new(root, &["cp-in-attack"]);
    let host = sentinel.text();
    start(
        root,
        image,
        "cp-in-attack",
        &format!(
            "ln -s / /x; ln -s ../../../../.. /up; ln -s /etc /e; ln -s {host} /h
             mkdir -p {host}"
        ),
    );
    let work = tempfile::tempdir().unwrap();
    // A name no host directory has, so a landing outside would be seen.
    let name = format!("cp-attack-{}", std::process::id());
    let file = work.path().join(&name);
    fs::write(&file, "copied in\n").unwrap();
    let file = file.to_str().unwrap();
    let check_host = |after: &str| {
        sentinel.assert_untouched(after);
        for dir in ["/", "/etc"] {
            assert!(
                !Path::new(dir).join(&name).exists(),
                "after {after}: {dir}{name} was made on the host"
            );
        }
    };

    for dest in ["/x/", "/up/", "/e/", "/h/", "/up/etc/"] {
        ok(bounded(
            root,
            &["cp", file, &format!("cp-in-attack:{dest}")],
        ));
        check_host(&format!("cp to {dest}"));
    }
    ok(bounded(root, &["cp", file, "cp-in-attack:/h/sentinel"]));
    check_host("cp onto /h/sentinel");
    let seen = exec(
        root,
        "cp-in-attack",
        &format!("cat /{name} /etc/{name} {host}/{name} {host}/sentinel"),
    );
    assert_eq!(seen, "copied in\n".repeat(4).trim());

    // Stopped: the same, with the root mounted for the copy.
    stop(root, "cp-in-attack");
    for dest in ["/x/", "/up/etc/", "/h/"] {
        let out = bounded(root, &["cp", file, &format!("cp-in-attack:{dest}stopped")]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_host(&format!("cp to a stopped container's {dest}"));
    }
    assert!(!Path::new("/stopped").exists() && !Path::new("/etc/stopped").exists());
}

/// A tar stream of `(name, kind, link or content)` members.
fn archive(members: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_500_000_000);
        match kind {
            tar::EntryType::Regular => {
                h.set_size(data.len() as u64);
            }
            _ => {
                h.set_size(0);
                h.set_link_name(data).unwrap();
            }
        }
        // Set by bytes: the builder refuses `..` and absolute names.
        let field = &mut h.as_old_mut().name;
        field[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        let body: &[u8] = match kind {
            tar::EntryType::Regular => data.as_bytes(),
            _ => &[],
        };
        b.append(&h, body).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_archives_given_to_cp_stay_inside_the_container() {
    use tar::EntryType::{Link, Regular, Symlink};
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let sentinel = Sentinel::new();
    let _cleanup = Cleanup::new(root, &["cp-tar-attack"]);
    start(root, image, "cp-tar-attack", "mkdir /in");
    let host = sentinel.text();
    let dotdot = format!("../../../../../../..{host}/dotdot");
    let absolute = format!("{host}/absolute");
    let through = "esc/through";
    let up_through = format!("up{host}/up-through");

    // `..` out of the directory: refused, as docker refuses it.
    fails(
        with_stdin(
            root,
            &["cp", "-", "cp-tar-attack:/in"],
            &archive(&[(&dotdot, Regular, "pwned\n")]),
        ),
        "escape",
    );
    sentinel.assert_untouched("a `..` member");
    fails(
        with_stdin(
            root,
            &["cp", "-", "cp-tar-attack:/in"],
            &archive(&[("hl", Link, "../../../../etc/passwd")]),
        ),
        "escape",
    );
    sentinel.assert_untouched("a hard link out");

    // An absolute name, and a symlink out followed by a file through it: contained.
    ok(with_stdin(
        root,
        &["cp", "-", "cp-tar-attack:/in"],
        &archive(&[
            (&absolute, Regular, "pwned\n"),
            ("esc", Symlink, host),
            (through, Regular, "pwned\n"),
            ("up", Symlink, "../../../../../../.."),
            (&up_through, Regular, "pwned\n"),
        ]),
    ));
    sentinel.assert_untouched("absolute names and symlinks out");
    let inside = exec(
        root,
        "cp-tar-attack",
        &format!("cd /in && cat .{host}/absolute .{host}/through .{host}/up-through"),
    );
    assert_eq!(inside, "pwned\npwned\npwned");
    assert!(!Path::new("/in").exists());
}

#[test]
fn a_directory_swapped_for_a_symlink_during_copies_cannot_escape() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let sentinel = Sentinel::new();
    let _cleanup = Cleanup::new(root, &["cp-race"]);
    let host = sentinel.text();
    // The container flips /race/d between a directory and symlinks to `/` and to
    // the host's sentinel path, as fast as it can.
    start(
        root,
        image,
        "cp-race",
        &format!(
            "mkdir -p /race {host}
             echo container > {host}/sentinel
             (while :; do
                rm -rf /race/d; mkdir /race/d; echo inside > /race/d/sentinel
                rm -rf /race/d; ln -s / /race/d
                rm -f /race/d; ln -s {host} /race/d
              done) >/dev/null 2>&1 &"
        ),
    );
    let work = tempfile::tempdir().unwrap();
    let name = format!("cp-race-{}", std::process::id());
    let file = work.path().join(&name);
    fs::write(&file, "raced in\n").unwrap();
    let file = file.to_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut copied_out = 0;
    for i in 0..40 {
        if Instant::now() > deadline {
            break;
        }
        // Either may fail (the path is changing under them); neither may escape.
        let _ = bounded(root, &["cp", file, "cp-race:/race/d/"]);
        let out = work.path().join(format!("out{i}"));
        if bounded(
            root,
            &["cp", "cp-race:/race/d/sentinel", out.to_str().unwrap()],
        )
        .status
        .success()
        {
            copied_out += 1;
            let text = fs::read_to_string(&out).unwrap();
            // The container's own files only: its /race/d/sentinel (empty for a moment,
            // between the shell's creating it and `echo` writing), or its copy of the
            // host's path; never the host's "host-secret".
            assert!(
                ["", "inside\n", "container\n"].contains(&text.as_str()),
                "copied out {text:?}, not a file of the container"
            );
        }
    }
    assert!(copied_out > 0, "no copy out succeeded in the race");
    sentinel.assert_untouched("the race");
    assert!(!Path::new("/").join(&name).exists());
}

#[test]
fn diff_lists_the_containers_changes_as_docker_running_or_stopped() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["cp-diff"]);
    // Changed, deleted, added (with what is inside), and a directory made again over
    // the image's (opaque): what is gone below it is deleted.
    start(
        root,
        image,
        "cp-diff",
        "echo extra >> /etc/passwd; rm /etc/group
         mkdir -p /new/sub && touch /new/sub/f
         rm -rf /sbin; mkdir /sbin; touch /sbin/fresh
         chown 1:1 /root",
    );
    let running = ok(basic_docker(root, &["diff", "cp-diff"]));
    let lines: Vec<&str> = running.lines().collect();
    for line in [
        "C /etc",
        "C /etc/passwd",
        "D /etc/group",
        "A /new",
        "A /new/sub",
        "A /new/sub/f",
        "C /root",
        "A /ready",
        "C /sbin",
        "A /sbin/fresh",
        "D /sbin/acpid",
    ] {
        assert!(lines.contains(&line), "{line:?} missing from:\n{running}");
    }
    // A directory changed before what is inside it; nothing the engine mounted.
    let pos = |l: &str| lines.iter().position(|x| *x == l).unwrap();
    assert!(pos("C /etc") < pos("C /etc/passwd"));
    assert!(pos("A /new") < pos("A /new/sub/f"));
    for line in &lines {
        assert!(
            ![
                "/proc",
                "/sys",
                "/dev",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/hostname"
            ]
            .iter()
            .any(|m| line[2..] == **m || line[2..].starts_with(&format!("{m}/"))),
            "a mount point in the diff: {line}"
        );
    }
    stop(root, "cp-diff");
    assert_eq!(ok(basic_docker(root, &["diff", "cp-diff"])), running);
    fails(
        basic_docker(root, &["diff", "no-such-ctr"]),
        "No such container: no-such-ctr",
    );
}
