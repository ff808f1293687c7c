//! Input docker refuses is refused here with docker's message and its exit code 125,
//! before anything is made: the engine checks the create body before it looks for the
//! image, so no image and no registry are needed.

use std::path::Path;
use std::process::{Command, Output};

/// `basic-docker --root ROOT --state ROOT/state ARGS...`.
fn basic_docker(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .arg("--state")
        .arg(root.join("state"))
        .args(args)
        .output()
        .expect("start basic-docker")
}

/// Asserts `args` exit 125 saying `message`; returns what was said.
#[track_caller]
fn refused(root: &Path, args: &[&str], message: &str) -> String {
    let out = basic_docker(root, args);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(125), "{args:?}: {err}");
    assert!(err.contains(message), "{args:?}: {err}");
    err
}

fn host_cpus() -> usize {
    let affinity = Command::new("nproc").output().expect("nproc");
    String::from_utf8_lossy(&affinity.stdout)
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn bad_values_get_dockers_messages_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let cpus = host_cpus();
    let range =
        format!("Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available");
    let cases: &[(&[&str], &str)] = &[
        (&["-m", "5m"], "Minimum memory limit allowed is 6MB"),
        (&["--memory", "1"], "Minimum memory limit allowed is 6MB"),
        (&["--cpus", "1000"], &range),
        (&["--cpus", "0.001"], &range),
        (&["--cpus", "-1"], &range),
        (
            &["--cpuset-cpus", "0-4096"],
            "Requested CPUs are not available - requested 0-4096",
        ),
        (
            &["--cpuset-cpus", "one"],
            "Invalid value one for cpuset cpus: invalid format: one",
        ),
        (&["-e", ""], "invalid environment variable: "),
        (&["-e", "=x"], "invalid environment variable: =x"),
        (
            &["-w", "relative/dir"],
            "the working directory 'relative/dir' is invalid, it needs to be an absolute path",
        ),
        (
            &["--memory-swap", "64m"],
            "You should always set the Memory limit when using Memoryswap limit",
        ),
    ];
    for (flags, message) in cases {
        for verb in ["run", "create"] {
            let mut args = vec![verb];
            args.extend_from_slice(flags);
            args.extend(["no-such-image-needed", "true"]);
            let err = refused(root, &args, message);
            assert!(!err.contains("Unable to find image"), "{args:?}: {err}");
        }
    }
    let listed = basic_docker(root, &["ps", "-a", "-q"]);
    assert!(listed.status.success());
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "");
}

#[test]
fn flags_that_do_not_parse_exit_125_as_in_docker() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    refused(root, &["run", "--bogus", "busybox"], "--bogus");
    refused(root, &["--bogus", "ps"], "--bogus");
    refused(root, &["ps", "--bogus"], "--bogus");
    refused(root, &["run", "--memory"], "--memory");
    refused(root, &["run", "--cpus", "many", "busybox"], "many");
    refused(root, &["stop", "-t", "soon", "c"], "soon");
    // A missing or extra argument and an unknown command are usage errors: 1, as docker.
    for args in [&["run"][..], &["ps", "extra"], &["no-such-verb"]] {
        let out = basic_docker(root, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
    }
    let out = basic_docker(root, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn every_tip_names_something_that_works() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // `-- --bogus` would make `--bogus` the image: no such tip.
    let err = refused(root, &["run", "--bogus", "busybox"], "--bogus");
    assert!(!err.contains("tip"), "{err}");
    let err = refused(root, &["run", "--memroy", "1g", "busybox"], "--memroy");
    assert!(err.contains("'--memory'"), "{err}");
    assert!(!err.contains("-- --memroy"), "{err}");
    // The tip works: the same command with the flag it names gets past parsing.
    refused(
        root,
        &["run", "--memory", "1", "busybox"],
        "Minimum memory limit allowed is 6MB",
    );
    // The engine's own hidden verb is no suggestion for a user.
    let out = basic_docker(root, &["container-supervis", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("container-supervise"), "{err}");
}
