//! A small tmpfs mounted for one test, to fill to the last byte or make read-only:
//! what a store on a full or read-only disk sees. Root only.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size on a temporary directory; unmounted (with anything mounted
/// below it) when dropped.
pub struct SmallFs {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    /// Mounts a tmpfs of `size` (`mount`'s syntax: `16m`).
    pub fn mount(size: &str) -> SmallFs {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mount_point = dir.path().join("fs");
        std::fs::create_dir(&mount_point).expect("mount point");
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            &mount_point,
        );
        SmallFs {
            mount_point,
            _dir: dir,
        }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mount_point
    }

    /// Bytes free, as `statfs` reports them.
    pub fn free(&self) -> u64 {
        let out = Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(&self.mount_point)
            .output()
            .expect("stat -f");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut numbers = text.split_whitespace().map(|n| n.parse::<u64>().unwrap());
        numbers.next().unwrap() * numbers.next().unwrap()
    }

    /// Grows the filler file until the filesystem has no byte left; returns how much
    /// it took.
    pub fn fill(&self) -> u64 {
        let mut filler = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler())
            .expect("filler file");
        let mut added = 0;
        for chunk in [1 << 20, 4096, 1] {
            added += write_until_full(&mut filler, chunk);
        }
        assert_eq!(self.free(), 0, "the filler left space");
        added
    }

    /// Deletes the filler file.
    pub fn empty(&self) {
        match std::fs::remove_file(self.filler()) {
            Err(e) if e.kind() != ErrorKind::NotFound => panic!("removing the filler: {e}"),
            _ => {}
        }
    }

    /// Remounts read-only (`true`) or read-write.
    pub fn remount(&self, read_only: bool) {
        let options = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        run("mount", &["-o", options], &self.mount_point);
    }

    fn filler(&self) -> PathBuf {
        self.mount_point.join("filler")
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        // Recursively: a container's root may still be mounted below; lazily as a last
        // resort, so a failed test never leaves a mount behind.
        let ok = Command::new("umount")
            .arg("-R")
            .arg(&self.mount_point)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mount_point)
                .status();
        }
    }
}

fn write_until_full(file: &mut File, chunk: usize) -> u64 {
    let bytes = vec![0x5a; chunk];
    let mut written = 0;
    loop {
        match file.write(&bytes) {
            Ok(0) => return written,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == ErrorKind::StorageFull => return written,
            Err(e) => panic!("filling: {e}"),
        }
    }
}

fn run(program: &str, args: &[&str], path: &Path) {
    let status = Command::new(program)
        .args(args)
        .arg(path)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?} {}", path.display());
}
