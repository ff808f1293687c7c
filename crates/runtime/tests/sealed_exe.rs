//! `sealed_exe::ensure` leaves a program that no one can write through `/proc/<pid>/exe`,
//! the handle CVE-2019-5736 used, while a plain program can be rewritten that way.
//!
//! The sealed program is this test binary itself, started again in a child mode (the
//! `SEALED_EXE_CHILD` variable) so that `ensure` re-executes a process of its own.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const CHILD: &str = "SEALED_EXE_CHILD";

/// The child mode: seal, say so, then wait to be killed.
#[test]
#[ignore = "run by a_sealed_program_cannot_be_rewritten_through_proc_pid_exe in a process of its own"]
fn child_mode_seals_itself_and_waits() {
    assert!(
        std::env::var_os(CHILD).is_some(),
        "only a_sealed_program_cannot_be_rewritten_through_proc_pid_exe runs this"
    );
    basic_runtime::sealed_exe::ensure().expect("sealing");
    println!("sealed={}", basic_runtime::sealed_exe::is_sealed().unwrap());
    std::thread::sleep(Duration::from_secs(60));
}

/// Starts `command` and waits for a line of its output containing `marker`; returns the
/// line from the marker on (libtest prints the test's name before it on the same line).
// The child is returned to the caller, which kills and waits for it.
#[allow(clippy::zombie_processes)]
fn start_until(mut command: Command, marker: &str) -> (Child, String) {
    let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let status = basic_test_support::bounded::wait_within(
                &mut child,
                std::time::Duration::from_secs(30),
                "the program that closed its output",
            );
            panic!("the program ended ({status}) before printing {marker:?}");
        }
        if let Some(at) = line.find(marker) {
            return (child, line[at..].trim().to_string());
        }
    }
}

/// Holds `/proc/<pid>/exe` open (O_PATH, as an attacker in the container would), kills the
/// process, and then tries to reopen the held file for writing.
fn reopen_for_writing_after_exit(child: &mut Child) -> std::io::Result<std::fs::File> {
    let held = nix::fcntl::open(
        format!("/proc/{}/exe", child.id()).as_str(),
        nix::fcntl::OFlag::O_PATH,
        nix::sys::stat::Mode::empty(),
    )
    .expect("opening /proc/<pid>/exe with O_PATH");
    child.kill().unwrap();
    basic_test_support::bounded::wait_within(
        child,
        std::time::Duration::from_secs(10),
        "the killed program",
    );
    use std::os::fd::AsRawFd;
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", held.as_raw_fd()))
}

#[test]
fn a_plain_program_can_be_rewritten_through_proc_pid_exe() {
    // The positive control: without sealing, the attack works (on a copy of `sleep`).
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sleep");
    std::fs::copy("/bin/sleep", &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut command = Command::new("/bin/sh");
    command.args(["-c", &format!("echo started; exec {} 60", copy.display())]);
    let (mut child, line) = start_until(command, "started");
    assert_eq!(line, "started");
    // `exec` of the copy follows the echo; wait until the process runs it.
    let exe = format!("/proc/{}/exe", child.id());
    while std::fs::read_link(&exe).is_ok_and(|l| l != copy) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let writable = reopen_for_writing_after_exit(&mut child);
    assert!(writable.is_ok(), "{writable:?}");
}

#[test]
fn a_sealed_program_cannot_be_rewritten_through_proc_pid_exe() {
    if !common::privileged() {
        return;
    }
    // A copy of this test binary: while a file is being executed (as this one is) no one
    // can open it for writing anyway, which would hide what sealing does.
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("sealed-child");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    let before = std::fs::read(&exe).unwrap();
    let mut command = Command::new(&exe);
    command
        .args([
            "--exact",
            "--ignored",
            "child_mode_seals_itself_and_waits",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1");
    let (mut child, line) = start_until(command, "sealed=");
    assert_eq!(line, "sealed=true");
    let err = reopen_for_writing_after_exit(&mut child).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
    assert_eq!(std::fs::read(&exe).unwrap(), before);
}
