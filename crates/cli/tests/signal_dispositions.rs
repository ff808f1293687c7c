//! Containers start with default signal dispositions and nothing blocked, as runc and
//! docker start them, whatever the caller ignores or blocks: a shell under `nohup` (or a
//! service manager) ignores SIGHUP, and every process it starts inherits that unless
//! something resets it.

mod common;

use common::{basic_docker, busybox_store as store, ok};

use std::os::unix::process::CommandExt as _;
use std::process::{Command, Output};

use basic_test_support::bounded::{COMMAND_LIMIT, output_within};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};

/// Bits of `/proc/<pid>/status` signal masks (signal n is bit n-1).
const SIGHUP_BIT: u64 = 1 << (libc::SIGHUP - 1);
const SIGPIPE_BIT: u64 = 1 << (libc::SIGPIPE - 1);
const SIGUSR1_BIT: u64 = 1 << (libc::SIGUSR1 - 1);
/// The first real-time signal, which glibc keeps for its threads and refuses to change.
const SIG32: i32 = 32;
const SIG32_BIT: u64 = 1 << (SIG32 - 1);

/// Ignores signal 32 through the kernel, past the C library's refusal, as a caller that is
/// not a C program can (cargo's children find 32 and 33 ignored).
fn ignore_sig32() -> std::io::Result<()> {
    // The kernel's `struct sigaction`: the handler first (SIG_IGN is 1), then no flags and
    // an empty mask.
    let ignore = [1u64, 0, 0, 0, 0, 0, 0, 0];
    // SAFETY: rt_sigaction reads the struct, writes nothing back (null), installs no
    // handler; called between fork and exec.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            SIG32,
            ignore.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
    match rc {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Runs `program args...` as a caller that ignores SIGHUP, SIGPIPE and signal 32 and
/// blocks SIGUSR1.
fn from_careless_caller(program: &str, args: &[&str]) -> Output {
    let mut command = Command::new(program);
    command.args(args);
    // SAFETY: signal, rt_sigaction and sigprocmask are async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            signal(Signal::SIGHUP, SigHandler::SigIgn)?;
            signal(Signal::SIGPIPE, SigHandler::SigIgn)?;
            ignore_sig32()?;
            let mut usr1 = SigSet::empty();
            usr1.add(Signal::SIGUSR1);
            sigprocmask(SigmaskHow::SIG_BLOCK, Some(&usr1), None)?;
            Ok(())
        });
    }
    output_within(&mut command, COMMAND_LIMIT, &format!("{program} {args:?}"))
}

/// `basic-docker --root ROOT ARGS...` from that caller.
fn basic_docker_from_careless_caller(root: &std::path::Path, args: &[&str]) -> Output {
    let mut all = vec!["--root", root.to_str().unwrap()];
    all.extend_from_slice(args);
    from_careless_caller(env!("CARGO_BIN_EXE_basic-docker"), &all)
}

/// `(SigIgn, SigBlk)` of a `/proc/<pid>/status`.
fn masks(status: &str) -> (u64, u64) {
    let field = |name: &str| {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"));
        u64::from_str_radix(hex.trim(), 16).unwrap()
    };
    (field("SigIgn:"), field("SigBlk:"))
}

#[track_caller]
fn assert_default(what: &str, out: &Output) {
    let text = common::stdout(out);
    assert_eq!(masks(&text), (0, 0), "{what}: ignored and blocked signals");
}

#[test]
fn the_careless_caller_passes_its_dispositions_on_when_nothing_resets_them() {
    let out = from_careless_caller("cat", &["/proc/self/status"]);
    let (ignored, blocked) = masks(&common::stdout(&out));
    let all = SIGHUP_BIT | SIGPIPE_BIT | SIG32_BIT;
    assert_eq!(
        ignored & all,
        all,
        "the control: a program that resets nothing"
    );
    assert_eq!(blocked & SIGUSR1_BIT, SIGUSR1_BIT);
}

#[test]
fn run_and_run_init_start_containers_with_default_dispositions() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let out = basic_docker_from_careless_caller(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "cat",
            "/proc/self/status",
        ],
    );
    assert_default("run", &out);
    let out = basic_docker_from_careless_caller(
        root,
        &[
            "run",
            "--rm",
            "--init",
            "--network",
            "none",
            image,
            "cat",
            "/proc/self/status",
        ],
    );
    assert_default("run --init (the tiny init's child)", &out);
}

#[test]
fn run_d_starts_containers_with_default_dispositions() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = format!("signals-d-{}", std::process::id());
    let _cleanup = common::Cleanup::new(root, &[&name]);
    let run = basic_docker_from_careless_caller(
        root,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            image,
            "cat",
            "/proc/self/status",
        ],
    );
    common::stdout(&run);
    ok(basic_docker(root, &["wait", &name]));
    assert_default("run -d", &basic_docker(root, &["logs", &name]));
}

#[test]
fn exec_starts_processes_with_default_dispositions() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let name = format!("signals-exec-{}", std::process::id());
    let _cleanup = common::Cleanup::new(root, &[&name]);
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            image,
            "sleep",
            "1000",
        ],
    ));
    let out = basic_docker_from_careless_caller(root, &["exec", &name, "cat", "/proc/self/status"]);
    assert_default("exec", &out);
}
