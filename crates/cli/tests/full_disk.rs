//! A store whose filesystem has no byte left, and one mounted read-only (issue 18).
//!
//! On a full disk the reading commands answer as always, `rm`, `rmi` and the prunes
//! free space, a command that must write fails saying "no space left on device" and
//! naming the filesystem, and a container that exits meanwhile keeps its own exit
//! code. A read-only store (a remounted filesystem, a read-only bind mount) answers
//! `images`, `ps -a` and `inspect`, and refuses changes saying "read-only file
//! system". Each test mounts its own small tmpfs (root only) and unmounts it after.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use basic_test_support::small_fs::SmallFs;
use basic_test_support::{harness, require_root};
use common::{Cleanup, basic_docker, ok};

/// The busybox image of the harness, pulled into a store on a fresh small tmpfs.
fn store_on_small_fs(size: &str) -> Option<(SmallFs, PathBuf, String)> {
    let h = harness()?;
    if !require_root() {
        return None;
    }
    let fs = SmallFs::mount(size);
    let root = fs.path().join("root");
    let image = h.reference("busybox_latest");
    ok(basic_docker(&root, &["pull", "-q", &image]));
    Some((fs, root, image))
}

/// Imports an image of one 512 KiB file nothing else has, named `name`.
fn import_unique(root: &Path, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let content: Vec<u8> = (0..512u32 << 10)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ name.len() as u8)
        .chain(name.bytes())
        .collect();
    std::fs::write(dir.path().join("data"), content).unwrap();
    let tar = dir.path().join("layer.tar");
    let made = Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-cf")
        .arg(&tar)
        .arg("data")
        .status()
        .unwrap();
    assert!(made.success(), "tar");
    ok(basic_docker(root, &["import", tar.to_str().unwrap(), name]));
}

/// Asserts the command failed for `fault`, naming the filesystem mounted at `fs`.
#[track_caller]
fn refused(out: Output, fault: &str, fs: &Path) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "succeeded: {err}");
    assert!(err.contains(fault), "{err}");
    assert!(err.contains(&fs.display().to_string()), "{err}");
}

fn container_exit_code(root: &Path, name: &str) -> i64 {
    let text = ok(basic_docker(root, &["inspect", name]));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json[0]["State"]["ExitCode"].as_i64().unwrap()
}

fn check_is_clean(root: &Path) {
    assert_eq!(
        ok(basic_docker(root, &["system", "check"])),
        "No problems found"
    );
}

#[test]
fn a_full_disk_still_answers_and_removals_free_space() {
    let Some((fs, root, image)) = store_on_small_fs("32m") else {
        return;
    };
    let _cleanup = Cleanup::new(&root, &["fd-stopped", "fd-created"]);
    import_unique(&root, "full-disk/a:1");
    import_unique(&root, "full-disk/b:1");
    let none = ["--network", "none"];
    let stopped = [
        &["run", "--name", "fd-stopped"][..],
        &none,
        &[&image, "sh", "-c", "exit 3"],
    ];
    assert_eq!(
        basic_docker(&root, &stopped.concat()).status.code(),
        Some(3)
    );
    ok(basic_docker(
        &root,
        &[
            &["create", "--name", "fd-created"][..],
            &none,
            &[&image, "true"],
        ]
        .concat(),
    ));

    fs.fill();
    ok(basic_docker(&root, &["ps"]));
    let all = ok(basic_docker(&root, &["ps", "-a"]));
    assert!(
        all.contains("Exited (3)") && all.contains("fd-created"),
        "{all}"
    );
    let images = ok(basic_docker(&root, &["images"]));
    assert!(
        images.contains("full-disk/a") && images.contains("full-disk/b"),
        "{images}"
    );
    assert_eq!(container_exit_code(&root, "fd-stopped"), 3);
    ok(basic_docker(&root, &["system", "df"]));
    check_is_clean(&root);

    // What needs new space fails, saying so, and leaves nothing behind.
    refused(
        basic_docker(&root, &[&["create"][..], &none, &[&image, "true"]].concat()),
        "no space left on device",
        fs.path(),
    );
    refused(
        basic_docker(
            &root,
            &[&["run", "--rm"][..], &none, &[&image, "true"]].concat(),
        ),
        "no space left on device",
        fs.path(),
    );
    assert_eq!(ok(basic_docker(&root, &["ps", "-aq"])).lines().count(), 2);

    // Each removal frees space, starting from none.
    ok(basic_docker(&root, &["rm", "fd-stopped"]));
    assert!(fs.free() > 0, "rm freed nothing");
    fs.fill();
    ok(basic_docker(&root, &["rmi", "full-disk/a:1"]));
    assert!(fs.free() >= 512 << 10, "rmi freed {}", fs.free());
    fs.fill();
    ok(basic_docker(&root, &["image", "prune", "-a", "-f"]));
    assert!(fs.free() >= 512 << 10, "image prune freed {}", fs.free());
    assert!(!ok(basic_docker(&root, &["images"])).contains("full-disk/b"));
    fs.fill();
    let pruned = ok(basic_docker(&root, &["container", "prune", "-f"]));
    assert!(pruned.contains("Deleted Containers"), "{pruned}");
    assert!(fs.free() > 0, "container prune freed nothing");
    assert_eq!(ok(basic_docker(&root, &["ps", "-aq"])), "");

    fs.empty();
    ok(basic_docker(
        &root,
        &[&["run", "--rm"][..], &none, &[&image, "true"]].concat(),
    ));
    check_is_clean(&root);
}

#[test]
fn a_container_exiting_on_a_full_disk_keeps_its_exit_code() {
    let Some((fs, root, image)) = store_on_small_fs("16m") else {
        return;
    };
    let _cleanup = Cleanup::new(&root, &["fd-seven"]);
    let script = "trap 'exit 7' USR1; while :; do sleep 0.1; done";
    ok(basic_docker(
        &root,
        &[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "fd-seven",
            &image,
            "sh",
            "-c",
            script,
        ],
    ));
    // With the journal's reserve spent the store cannot take even this small change:
    // the supervisor must keep the exit aside.
    std::fs::File::options()
        .write(true)
        .open(root.join("metadata.db-journal"))
        .unwrap()
        .set_len(0)
        .unwrap();
    fs.fill();
    ok(basic_docker(&root, &["kill", "-s", "USR1", "fd-seven"]));
    let until = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let all = ok(basic_docker(&root, &["ps", "-a"]));
        if all.contains("Exited") || Instant::now() > until {
            break all;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.contains("Exited (7)"), "{status}");
    assert_eq!(container_exit_code(&root, "fd-seven"), 7);
    let inspected = ok(basic_docker(&root, &["inspect", "fd-seven"]));
    let json: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    let id = json[0]["Id"].as_str().unwrap();
    let kept = std::fs::read_to_string(root.join("containers").join(id).join("last-exit")).unwrap();
    assert!(kept.starts_with("7 "), "{kept:?}");

    fs.empty();
    assert!(ok(basic_docker(&root, &["ps", "-a"])).contains("Exited (7)"));
    ok(basic_docker(&root, &["rm", "fd-seven"]));
    check_is_clean(&root);
}

/// Unmounts a bind mount whatever the test does.
struct Bound(PathBuf);

impl Drop for Bound {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount(args: &[&str], target: &Path) {
    let status = Command::new("mount")
        .args(args)
        .arg(target)
        .status()
        .unwrap();
    assert!(status.success(), "mount {args:?} {}", target.display());
}

/// `images`, `ps -a` and `inspect` answer on a store that cannot be written, and
/// what would change it is refused.
fn read_only_store_answers(root: &Path, image: &str, mount_point: &Path) {
    assert!(ok(basic_docker(root, &["images"])).contains("busybox"));
    let all = ok(basic_docker(root, &["ps", "-a"]));
    assert!(
        all.contains("Exited (5)") && all.contains("fd-done"),
        "{all}"
    );
    assert_eq!(container_exit_code(root, "fd-done"), 5);
    check_is_clean(root);
    for args in [
        &["rm", "fd-done"][..],
        &["rmi", image],
        &["create", "--network", "none", image, "true"],
        &["image", "prune", "-a", "-f"],
        &["container", "prune", "-f"],
    ] {
        refused(
            basic_docker(root, args),
            "read-only file system",
            mount_point,
        );
    }
}

#[test]
fn a_read_only_store_answers_and_refuses_changes() {
    let Some((fs, root, image)) = store_on_small_fs("16m") else {
        return;
    };
    let _cleanup = Cleanup::new(&root, &["fd-done"]);
    let done = [
        "run",
        "--network",
        "none",
        "--name",
        "fd-done",
        &image,
        "sh",
        "-c",
        "exit 5",
    ];
    assert_eq!(basic_docker(&root, &done).status.code(), Some(5));

    fs.remount(true);
    read_only_store_answers(&root, &image, fs.path());
    fs.remount(false);

    // The same store seen through a read-only bind mount of it.
    let dir = tempfile::tempdir().unwrap();
    let view = dir.path().join("view");
    std::fs::create_dir(&view).unwrap();
    mount(&["--bind", root.to_str().unwrap()], &view);
    let bound = Bound(view.clone());
    mount(&["-o", "remount,bind,ro"], &view);
    read_only_store_answers(&view, &image, &view);
    drop(bound);

    ok(basic_docker(&root, &["rm", "fd-done"]));
    check_is_clean(&root);
}
