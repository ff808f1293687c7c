//! Running from a copy of the program that no container can write (CVE-2019-5736).
//!
//! Every process that enters a container starts as a fork of the engine, so until it
//! execs the container's command its `/proc/self/exe` is the engine's binary on the host.
//! A hostile image can make that command `#!/proc/self/exe` (or a symlink to it): the
//! kernel then execs the engine's own binary *inside* the container, where the container's
//! other processes can open `/proc/<pid>/exe` and, once the engine process is gone, write
//! to it — replacing the host's `basic-docker` or `basic-runtime`.
//!
//! [`ensure`], called first thing in `main`, re-executes the program from a **read-only,
//! detached bind mount of its own file** (`open_tree(OPEN_TREE_CLONE)` of
//! `/proc/self/exe`, `mount_setattr(MOUNT_ATTR_RDONLY)`, `execveat` of that descriptor):
//! from then on `/proc/self/exe` of this process and of everything it forks is a file on a
//! mount that is read-only and attached to no mount namespace, so no process can reopen it
//! for writing or remount it, and nothing is copied. Where that mount cannot be made
//! (kernels before 5.12, or no `CAP_SYS_ADMIN`), it falls back to runc's and crun's first
//! answer: a sealed `memfd` copy (write, grow and shrink sealed), which costs one copy of
//! the binary in memory per process.
//!
//! The library refuses to start container processes from an unsealed program
//! ([`check`]); a program that embeds the runtime and is itself disposable (a test binary)
//! opts out per container with `ContainerBuilder::require_sealed_exe(false)`.

use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

/// Set in the environment of the re-executed program, so that a kernel on which sealing
/// silently does not take is reported instead of re-executing forever.
const REEXEC_MARKER: &str = "_BASIC_RUNTIME_SEALED_EXE";

/// Why the program could not be made to run from a sealed copy of itself.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// `/proc/self/exe` could not be opened or inspected.
    #[error("inspecting /proc/self/exe")]
    Inspect(#[source] io::Error),
    /// Neither a read-only mount nor a sealed memfd could be made or executed.
    #[error(
        "re-executing this program from a read-only copy of itself failed (read-only mount: {mount}; sealed memfd: {memfd})"
    )]
    Reexec {
        /// Why the read-only mount did not work.
        mount: io::Error,
        /// Why the memfd copy did not work.
        memfd: io::Error,
    },
    /// The program was re-executed but still runs from a writable file.
    #[error(
        "this program was re-executed from a read-only copy but still runs from a writable file"
    )]
    NotTaken,
    /// A container process would start from the writable engine binary.
    #[error(
        "this program runs from a writable file that a container could overwrite through /proc/self/exe (CVE-2019-5736): call basic_runtime::sealed_exe::ensure() first in main"
    )]
    Unsealed,
}

/// Whether this process runs from a file no one can write: a read-only mount or a
/// write-sealed memfd.
pub fn is_sealed() -> Result<bool, SealError> {
    let exe = File::open("/proc/self/exe").map_err(SealError::Inspect)?;
    let fs = nix::sys::statvfs::fstatvfs(&exe).map_err(|e| SealError::Inspect(e.into()))?;
    if fs.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY) {
        return Ok(true);
    }
    // SAFETY: F_GET_SEALS only reads the seals of an open descriptor; a file that is not a
    // memfd answers EINVAL, which means "not sealed".
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    Ok(seals >= 0 && seals & libc::F_SEAL_WRITE != 0)
}

/// Makes sure this process runs from a sealed copy of its program, re-executing it (same
/// arguments and environment) when it does not. Call it first in `main`, before any thread
/// starts: on success it either returns at once (already sealed) or never returns.
pub fn ensure() -> Result<(), SealError> {
    if is_sealed()? {
        remove_marker();
        return Ok(());
    }
    if std::env::var_os(REEXEC_MARKER).is_some() {
        return Err(SealError::NotTaken);
    }
    let (argv, envp) = arguments_and_environment();
    let mount = match read_only_mount() {
        Ok(fd) => exec_fd(&fd, &argv, &envp),
        Err(e) => e,
    };
    let memfd = match sealed_memfd() {
        Ok(fd) => exec_fd(&fd, &argv, &envp),
        Err(e) => e,
    };
    Err(SealError::Reexec { mount, memfd })
}

/// A read-only copy of this program that no container can write (the same detached
/// read-only mount [`ensure`] re-executes from, or the sealed memfd fallback), for a
/// program that does not itself enter containers but starts processes that will: they
/// are executed from it (`/proc/self/fd/N`, or `execveat`) and start sealed, while this
/// process saves the re-execution [`ensure`] would cost it. The descriptor is
/// close-on-exec; a child's exec of `/proc/self/fd/N` still finds it.
pub fn sealed_program() -> Result<OwnedFd, SealError> {
    let mount = match read_only_mount() {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    match sealed_memfd() {
        Ok(fd) => Ok(fd),
        Err(memfd) => Err(SealError::Reexec { mount, memfd }),
    }
}

/// Errors unless this process runs from a sealed program (see [`ensure`]).
pub fn check() -> Result<(), SealError> {
    match is_sealed()? {
        true => Ok(()),
        false => Err(SealError::Unsealed),
    }
}

fn remove_marker() {
    if std::env::var_os(REEXEC_MARKER).is_some() {
        // SAFETY: `ensure` is documented to run first in main, before any other thread
        // exists that could read the environment concurrently.
        unsafe { std::env::remove_var(REEXEC_MARKER) };
    }
}

fn arguments_and_environment() -> (Vec<CString>, Vec<CString>) {
    let to_c = |s: OsString| CString::new(s.into_vec()).ok();
    let argv = std::env::args_os().filter_map(to_c).collect();
    let mut envp: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut entry = k.into_vec();
            entry.push(b'=');
            entry.extend(v.into_vec());
            CString::new(entry).ok()
        })
        .collect();
    envp.push(CString::new(format!("{REEXEC_MARKER}=1")).expect("no NUL in the marker"));
    (argv, envp)
}

// linux/mount.h; the libc crate does not carry these for Linux.
const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// A detached bind mount of our own file, made read-only (and nosuid, nodev).
fn read_only_mount() -> io::Result<OwnedFd> {
    let fd = match open_tree(c"/proc/self/exe") {
        Ok(fd) => fd,
        // A process that has joined another mount namespace (rootless mode) still runs
        // from a mount of the one it started in, which open_tree refuses to clone: the
        // same file is reached again by its path, in this namespace, and taken only if
        // it is still the very file we run (same device and inode).
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => same_file_by_path()?,
        Err(e) => return Err(e),
    };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (size given) and changes the detached mount that
    // `fd` refers to; the empty path with AT_EMPTY_PATH names `fd` itself.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// A detached clone of the mount holding `path` (`open_tree(OPEN_TREE_CLONE)`).
fn open_tree(path: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: open_tree takes a valid NUL-terminated path and flags; it returns a new
    // descriptor we own, or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by open_tree and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// [`open_tree`] of the path `/proc/self/exe` names, if that path is still our program.
fn same_file_by_path() -> io::Result<OwnedFd> {
    use std::os::unix::fs::MetadataExt as _;
    let running = std::fs::metadata("/proc/self/exe")?;
    let path = std::fs::read_link("/proc/self/exe")?;
    let path = CString::new(path.into_os_string().into_vec())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fd = open_tree(&path)?;
    let found = File::from(fd.try_clone()?).metadata()?;
    if (found.dev(), found.ino()) != (running.dev(), running.ino()) {
        return Err(io::Error::other(
            "the program's path names another file now",
        ));
    }
    Ok(fd)
}

/// A memfd holding a copy of our program, sealed against writing, growing and shrinking.
fn sealed_memfd() -> io::Result<OwnedFd> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd = memfd_create(
        "basic-runtime-sealed-exe",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut copy = File::from(fd);
    let mut exe = File::open("/proc/self/exe")?;
    io::copy(&mut exe, &mut copy)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS on a memfd we own; no memory is passed.
    if unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(OwnedFd::from(copy))
}

/// Replaces this process with the program behind `fd`; returns only the error.
fn exec_fd(fd: &OwnedFd, argv: &[CString], envp: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point into CStrings that outlive the
    // call; on success the call does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv_ptrs.as_ptr(),
            envp_ptrs.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}
