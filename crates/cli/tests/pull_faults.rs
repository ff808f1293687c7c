//! A pull that runs out of disk, and a pull killed with SIGKILL: each leaves
//! the store consistent (no image, nothing in tmp/, `system check` clean) and
//! a later pull completes.

use std::path::Path;
use std::process::{Command, Output};

use basic_test_support::{harness, require_root};

fn basic_docker(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("start basic-docker")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn tmp_is_empty(root: &Path) -> bool {
    std::fs::read_dir(root.join("tmp"))
        .unwrap()
        .next()
        .is_none()
}

/// Unmounts the small tmpfs whatever the test does.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_a_bigger_root_pulls() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    // busybox is ~1 MB compressed and ~2 MB extracted: 2 MB cannot hold both.
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    let _mounted = Mounted(&small);
    let reference = h.reference("busybox_latest");

    let out = basic_docker(&small, &["pull", &reference]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(tmp_is_empty(&small), "tmp/ not empty after a full disk");
    assert_eq!(stdout(&basic_docker(&small, &["images", "-q"])).trim(), "");
    assert_eq!(
        stdout(&basic_docker(&small, &["system", "check"])).trim(),
        "No problems found"
    );
    assert!(
        std::fs::read_dir(small.join("layers"))
            .unwrap()
            .next()
            .is_none()
    );

    let big = dir.path().join("big");
    stdout(&basic_docker(&big, &["pull", "-q", &reference]));
    assert_eq!(
        stdout(&basic_docker(&big, &["system", "check"])).trim(),
        "No problems found"
    );
}
