//! Named network namespaces, made the way `ip netns add` makes them: a thread
//! unshares its network namespace and bind-mounts `/proc/thread-self/ns/net`
//! onto a file, which keeps the namespace alive with no process in it.
//!
//! The directory holding the files is made a shared mount point (as
//! `/run/netns` is), so that removing a namespace also reaches the copies
//! that mount namespaces created meanwhile hold.

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

use crate::error::{Error, Result};

/// Creates a network namespace and mounts it at `dir/name`. Fails if that file exists.
pub fn create(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let fail = |what, source| Error::Netns {
        path: path.clone(),
        what,
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| fail("creating its directory", e))?;
    make_shared_mount_point(dir).map_err(|e| fail("making its directory a shared mount", e))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| fail("creating the mount point", e))?;
    let target = path.clone();
    // A new thread: unsharing changes the calling thread's namespace, and this one must
    // not be left inside; the thread ends right after the bind mount.
    let mounted = std::thread::spawn(move || -> io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(io::Error::from)
    })
    .join()
    .unwrap_or_else(|_| Err(io::Error::other("the namespace thread panicked")));
    if let Err(e) = mounted {
        let _ = std::fs::remove_file(&path);
        return Err(fail("unsharing and bind-mounting", e));
    }
    Ok(path)
}

/// Unmounts and deletes a namespace file. A missing file is not an error.
pub fn remove(path: &Path) -> Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => {
            return Err(Error::Netns {
                path: path.into(),
                what: "unmounting",
                source: e.into(),
            });
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::Netns {
            path: path.into(),
            what: "deleting",
            source: e,
        }),
    }
}

/// True when `path` is a mounted namespace file (an `nsfs` mount).
pub fn is_mounted(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}

use nix::sys::statfs::NSFS_MAGIC;

fn make_shared_mount_point(dir: &Path) -> io::Result<()> {
    // Check-and-bind under a lock on the directory: two creators must not both bind it.
    let guard = std::fs::File::open(dir)?;
    guard.lock()?;
    if !is_mount_point(dir)? {
        mount(
            Some(dir),
            dir,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )?;
    }
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(io::Error::from)
}

/// True when `dir` is the mount point of some mount (`/proc/self/mountinfo`, field 5).
fn is_mount_point(dir: &Path) -> io::Result<bool> {
    let dir = dir.canonicalize()?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mount_point| unescape_octal(mount_point) == dir.as_os_str().to_string_lossy()))
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            match u8::from_str_radix(&code, 8) {
                Ok(b) => out.push(b as char),
                Err(_) => out.push_str(&code),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(super::unescape_octal("/run/a\\040b"), "/run/a b");
        assert_eq!(super::unescape_octal("/plain"), "/plain");
    }
}
