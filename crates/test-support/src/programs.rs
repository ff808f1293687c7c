//! Small static C programs for tests that need a syscall no shell applet makes
//! (TIOCSTI, keyctl, opening `/proc/self/exe` for writing, ...), built with the
//! host's gcc and copied into test images and root filesystems.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// `source` compiled with `gcc -static`, or `None` (the test returns) when gcc or
/// the static C library is missing and skipping is allowed. Built once per source
/// text: the binary is cached under the temporary directory by a hash of the source,
/// and written under a temporary name then renamed, so concurrent test binaries
/// never see half of one.
pub fn static_program(name: &str, source: &str) -> Option<PathBuf> {
    let mut hasher = DefaultHasher::new();
    source.hash(&mut hasher);
    let dir = std::env::temp_dir().join(format!(
        "basic-docker-test-programs-{:016x}",
        hasher.finish()
    ));
    let binary = dir.join(name);
    if binary.exists() {
        return Some(binary);
    }
    let have_gcc = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !crate::prerequisite(
        have_gcc,
        "gcc with a static C library (apt-get install gcc libc6-dev)",
    ) {
        return None;
    }
    std::fs::create_dir_all(&dir).expect("creating the test programs directory");
    // Tests of one binary build concurrently too: the process id alone is not unique.
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let unique = format!(
        "{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        name
    );
    let c_file = dir.join(format!("{unique}.c"));
    let partial = dir.join(format!("{unique}.partial"));
    std::fs::write(&c_file, source).expect("writing the C source");
    let out = Command::new("gcc")
        .args(["-static", "-Os", "-Wall", "-o"])
        .arg(&partial)
        .arg(&c_file)
        .output()
        .expect("running gcc");
    assert!(
        out.status.success(),
        "gcc -static {name}.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&partial, &binary).expect("installing the compiled program");
    let _ = std::fs::remove_file(&c_file);
    Some(binary)
}

/// C source of a program that tries, each in its own child, what docker's default seccomp
/// profile refuses (`unshare(CLONE_NEWUSER)`, `clone` with CLONE_NEWUSER, `clone3`,
/// `keyctl`, `add_key`, `request_key`, `io_uring_setup`, `bpf`, `perf_event_open`,
/// `mount` of tmpfs and cgroup, `userfaultfd`, AF_ALG and AF_VSOCK sockets, an unusual
/// `personality`) and some ordinary work (`ordinary_*`), printing `NAME=0` on success or
/// `NAME=ERRNO`. Without a filter none of the attempts fails with EPERM, so an EPERM comes
/// from seccomp. Build it with [`static_program`].
pub const SECCOMP_ATTACKS: &str = include_str!("../programs/seccomp_attacks.c");

/// Parses the output of [`SECCOMP_ATTACKS`] into `(name, result)` pairs, in order.
pub fn attack_results(output: &str) -> Vec<(String, String)> {
    output
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
