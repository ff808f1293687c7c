//! Against the kernel's own table: a mount point whose name needs escaping.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use basic_mountinfo::{MountInfo, is_mount_point, mounts};
use basic_test_support::require_root;

#[test]
fn a_mount_point_with_a_space_and_a_backslash_is_found() {
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a b\\c");
    std::fs::create_dir(&target).unwrap();
    // Mounted from a thread in a mount namespace of its own: nothing can leak
    // onto the host's table, even if the test dies half-way.
    let (seen, entry) = std::thread::spawn({
        let target = target.clone();
        move || in_own_namespace(&target)
    })
    .join()
    .unwrap();
    assert!(seen, "is_mount_point({})", target.display());
    let entry = entry.expect("the tmpfs is in the thread's table");
    assert_eq!(entry.fs_type, "tmpfs");
    assert_eq!(entry.source, "basic mountinfo");
    assert!(
        !is_mount_point(&target).unwrap(),
        "the mount is not in this thread's namespace"
    );
}

fn in_own_namespace(target: &PathBuf) -> (bool, Option<MountInfo>) {
    // SAFETY: unshare(2) with a constant flag; only this thread changes.
    assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNS) }, 0, "unshare");
    // Private, so nothing mounted below propagates back to the host.
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE);
    mount(Some("basic mountinfo"), target, Some("tmpfs"), 0);
    let entry = mounts()
        .unwrap()
        .into_iter()
        .find(|m| &m.mount_point == target);
    (is_mount_point(target).unwrap(), entry)
}

fn mount(source: Option<&str>, target: &Path, fstype: Option<&str>, flags: libc::c_ulong) {
    let c = |s: Option<&str>| s.map(|s| CString::new(s).unwrap());
    let (source, fstype) = (c(source), c(fstype));
    let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    let target = CString::new(target.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C strings or null, as mount(2) allows for these arguments.
    let r = unsafe {
        libc::mount(
            ptr(&source),
            target.as_ptr(),
            ptr(&fstype),
            flags,
            std::ptr::null(),
        )
    };
    assert_eq!(r, 0, "mount: {}", std::io::Error::last_os_error());
}
