//! `run` as a user runs it: the busybox fixture pulled from the harness registry
//! into a temporary `--root`, then real containers in namespaces and cgroups.

mod common;

use common::{basic_docker, busybox_store as store};

use std::path::Path;
use std::process::Output;

/// `run --rm IMAGE ARGS...` in the shared store.
fn run(flags: &[&str], command: &[&str]) -> Option<Output> {
    let (dir, image) = store()?;
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.push(image);
    args.extend_from_slice(command);
    Some(basic_docker(dir.path(), &args))
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).trim().to_string()
}

#[test]
fn runs_a_command_as_pid_1_with_its_own_hostname() {
    let Some(out) = run(
        &["--hostname", "box"],
        &["sh", "-c", "echo $$; hostname; echo hi >&2"],
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\nbox");
    assert_eq!(text(&out.stderr), "hi");
}

#[test]
fn exit_codes_follow_docker() {
    let Some(out) = run(&[], &["sh", "-c", "exit 3"]) else {
        return;
    };
    assert_eq!(out.status.code(), Some(3));
    let out = run(&[], &["no-such-command"]).unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no-such-command"));
    let out = run(&[], &["/etc/passwd"]).unwrap();
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));
    // As PID 1 the shell would be immune to its own SIGKILL; under --init it is not.
    let out = run(&["--init"], &["sh", "-c", "kill -9 $$"]).unwrap();
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    let out = run(&["--memory-swap", "1m"], &["true"]).unwrap();
    assert_eq!(
        out.status.code(),
        Some(125),
        "a flag error is an engine error"
    );
}

#[test]
fn environment_workdir_and_user() {
    let env_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(env_file.path(), "# comment\nFROM_FILE=1\nB=file\n").unwrap();
    let path = env_file.path().to_str().unwrap();
    let Some(out) = run(
        &[
            "-e",
            "A=x",
            "-e",
            "B=flag",
            "--env-file",
            path,
            "-w",
            "/tmp",
            "-u",
            "1234:5678",
        ],
        &["sh", "-c", "echo $A $B $FROM_FILE; pwd; id -u; id -g"],
    ) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "x flag 1\n/tmp\n1234\n5678");
    let named = run(&["-u", "nobody"], &["id", "-un"]).unwrap();
    assert_eq!(text(&named.stdout), "nobody", "{}", text(&named.stderr));
}

#[test]
fn bind_mounts_read_only_where_asked_and_read_only_root() {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in"), "from host").unwrap();
    let ro = format!("{}:/data:ro", host.path().display());
    let Some(out) = run(
        &["-v", &ro],
        &["sh", "-c", "cat /data/in; echo x > /data/out"],
    ) else {
        return;
    };
    assert_eq!(text(&out.stdout), "from host");
    assert!(
        !out.status.success(),
        "writing a read-only bind mount must fail"
    );
    assert!(!host.path().join("out").exists());

    let rw = format!("{}:/data", host.path().display());
    let out = run(&["-v", &rw], &["sh", "-c", "echo written > /data/out"]).unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(host.path().join("out")).unwrap(),
        "written\n"
    );

    let out = run(&["--read-only"], &["touch", "/x"]).unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Read-only file system"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn memory_limit_kills_and_reports_oom() {
    let Some(out) = run(
        &["-m", "20m", "--memory-swap", "20m"],
        &["sh", "-c", "head -c 200m /dev/zero | tail"],
    ) else {
        return;
    };
    assert_eq!(out.status.code(), Some(137), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("OOM killed"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn capabilities_are_dropped_and_added() {
    let status = |flags: &[&str]| {
        let out = run(flags, &["grep", "CapEff", "/proc/self/status"]).unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let hex = text(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        u64::from_str_radix(&hex, 16).unwrap()
    };
    if store().is_none() {
        return;
    }
    assert_eq!(status(&[]), 0xa80425fb, "docker's default set");
    assert_eq!(status(&["--cap-drop", "ALL"]), 0);
    let net_admin = 1 << 12;
    assert_eq!(
        status(&["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"]),
        net_admin
    );
    let chown = 1 << 0;
    assert_eq!(status(&["--cap-drop", "chown"]), 0xa80425fb & !chown);
}

#[test]
fn network_none_has_only_loopback_and_host_shares_the_hosts() {
    let Some(none) = run(&["--network", "none"], &["cat", "/proc/net/dev"]) else {
        return;
    };
    let interfaces = |out: &Output| text(&out.stdout).lines().skip(2).count();
    assert_eq!(interfaces(&none), 1, "only lo: {}", text(&none.stdout));
    // The host's network namespace itself (counting interfaces would race other
    // tests creating veths).
    let host = run(&["--network", "host"], &["readlink", "/proc/self/ns/net"]).unwrap();
    let on_host = std::fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(text(&host.stdout), on_host.to_string_lossy());
    let none = run(&["--network", "none"], &["readlink", "/proc/self/ns/net"]).unwrap();
    assert_ne!(text(&none.stdout), on_host.to_string_lossy());
}

#[test]
fn rm_leaves_no_container_files_and_no_cgroup() {
    let Some((dir, _)) = store() else { return };
    // The default hostname is the short container id, and names its cgroup.
    let out = run(
        &["--name", "rm-test", "--pids-limit", "10", "-m", "64m"],
        &["hostname"],
    )
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let short_id = text(&out.stdout);
    assert_eq!(short_id.len(), 12);
    let containers = dir.path().join("containers");
    // Other tests run containers in the same store at the same time: look for this one.
    for entry in std::fs::read_dir(&containers)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        assert!(
            !name.starts_with(&short_id),
            "{} left behind",
            entry.path().display()
        );
    }
    for controller in ["pids", "memory"] {
        let parent = Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("basic-docker");
        for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            assert!(
                !name.starts_with(&short_id),
                "cgroup {} left behind",
                entry.path().display()
            );
        }
    }
}
