//! No host descriptor reaches a container process: a caller that leaks a
//! descriptor (fd 7, a host directory) into `basic-docker` must not hand it on
//! to the container, to a detached supervisor, or to the kernel as the
//! container's working directory (CVE-2024-21626: `WorkingDir:
//! /proc/self/fd/N` starting the process in a host directory). The runtime's
//! own descriptors (fds 3 to 9 while it sets up) must not serve either.

use std::time::Duration;

use basic_test_support::image::ImageBuilder;
use serde_json::json;

use crate::common::Cleanup;
use crate::support::{
    CWD_PROBE, FD_PROBE, Leak, Store, assert_the_leak_is_visible_on_the_host, cwd_stayed_inside,
    run_within, text, unique,
};

const WAIT: Duration = Duration::from_secs(60);

/// Asserts the probe ran and saw nothing of the leaked directory.
#[track_caller]
fn assert_probe_saw_no_leak(leak: &Leak, what: &str, shown: &str) {
    assert!(
        shown.contains("probe-start") && shown.contains("probe-end"),
        "{what}: the probe did not run:\n{shown}"
    );
    assert!(
        !shown.contains("fd7-open") && !leak.seen_in(shown),
        "{what}: the container got the caller's fd 7 (the host directory {}):\n{shown}",
        leak.path().display()
    );
}

#[test]
fn run_does_not_hand_a_leaked_descriptor_to_the_container() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let leak = Leak::new();
    assert_the_leak_is_visible_on_the_host(&leak);
    let mut cmd = store.command(&["run", "--rm", "--network", "none", &image]);
    cmd.args(["sh", "-c", crate::support::FD_PROBE]);
    leak.hand_to(&mut cmd);
    let out = run_within(cmd, WAIT);
    assert_probe_saw_no_leak(&leak, "run", &text(&out));
}

#[test]
fn run_detached_leaves_a_leaked_descriptor_neither_to_the_container_nor_to_its_supervisor() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let leak = Leak::new();
    assert_the_leak_is_visible_on_the_host(&leak);
    let name = unique("fd-run-d");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    let script = format!("{FD_PROBE}; exec sleep 1000");
    let mut cmd = store.command(&["run", "-d", "--network", "none", "--name", &name, &image]);
    cmd.args(["sh", "-c", &script]);
    leak.hand_to(&mut cmd);
    let out = run_within(cmd, WAIT);
    assert!(out.status.success(), "run -d: {}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let log = store.wait_for_log(&name, "probe-end", WAIT);
    assert_probe_saw_no_leak(&leak, "run -d", &log);

    // The detached supervisor runs for the container's whole life.
    let supervisor = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            cmdline.starts_with("basic-docker-supervise") && cmdline.contains(&id)
        })
        .unwrap_or_else(|| panic!("positive control: no supervisor process for {id}"));
    let leaked: Vec<String> = std::fs::read_dir(format!("/proc/{supervisor}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|fd| {
            let target = std::fs::read_link(fd.path()).ok()?;
            (target == leak.path()).then(|| format!("fd {}", fd.file_name().to_string_lossy()))
        })
        .collect();
    assert!(
        leaked.is_empty(),
        "the supervisor (pid {supervisor}) holds the caller's leaked directory {} as {leaked:?}",
        leak.path().display()
    );
}

#[test]
fn exec_does_not_hand_a_leaked_descriptor_to_the_process() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let leak = Leak::new();
    assert_the_leak_is_visible_on_the_host(&leak);
    let name = unique("fd-exec");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.sleeper(&image, &name);
    let mut cmd = store.command(&["exec", &name, "sh", "-c", FD_PROBE]);
    leak.hand_to(&mut cmd);
    let out = run_within(cmd, WAIT);
    assert_probe_saw_no_leak(&leak, "exec", &text(&out));
}

#[test]
fn exec_detached_does_not_hand_a_leaked_descriptor_to_the_process() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let leak = Leak::new();
    assert_the_leak_is_visible_on_the_host(&leak);
    let name = unique("fd-exec-d");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.sleeper(&image, &name);
    // Nothing is attached to a detached exec: it reports into a file.
    let script = format!("({FD_PROBE}) > /tmp/probe.out 2>&1");
    let mut cmd = store.command(&["exec", "-d", &name, "sh", "-c", &script]);
    leak.hand_to(&mut cmd);
    let out = run_within(cmd, WAIT);
    assert!(out.status.success(), "exec -d: {}", text(&out));
    let mut shown = String::new();
    for _ in 0..500 {
        shown = text(&store.docker(&["exec", &name, "cat", "/tmp/probe.out"]));
        if shown.contains("probe-end") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_probe_saw_no_leak(&leak, "exec -d", &shown);
}

#[test]
fn run_workdir_through_a_leaked_descriptor_stays_in_the_container() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let leak = Leak::new();
    assert_the_leak_is_visible_on_the_host(&leak);
    let dir = "/proc/self/fd/7";
    let mut cmd = store.command(&["run", "--rm", "--network", "none", "-w", dir, &image]);
    cmd.args(["sh", "-c", CWD_PROBE]);
    leak.hand_to(&mut cmd);
    let out = run_within(cmd, WAIT);
    if let Err(e) = cwd_stayed_inside(&out, dir) {
        panic!("run -w {dir}: {e}");
    }
}

#[test]
fn exec_workdir_through_a_descriptor_stays_in_the_container() {
    let Some(store) = Store::new() else { return };
    let image = store.busybox();
    let leak = Leak::new();
    assert_the_leak_is_visible_on_the_host(&leak);
    let name = unique("cwd-exec");
    let _cleanup = Cleanup::new(store.root(), &[&name]);
    store.sleeper(&image, &name);
    // fd 7 is the caller's leak; the others are whatever the runtime holds
    // open while it sets the process up.
    let mut escapes = Vec::new();
    for n in 3..=9 {
        let dir = format!("/proc/self/fd/{n}");
        let mut cmd = store.command(&["exec", "-w", &dir, &name, "sh", "-c", CWD_PROBE]);
        leak.hand_to(&mut cmd);
        let out = run_within(cmd, WAIT);
        if let Err(e) = cwd_stayed_inside(&out, &dir) {
            escapes.push(format!("exec -w {dir}: {e}"));
        }
    }
    assert!(escapes.is_empty(), "{}", escapes.join("\n\n"));
}

#[test]
fn image_workdir_through_a_descriptor_stays_in_the_container() {
    let Some(store) = Store::new() else { return };
    let leak = Leak::new();
    assert_the_leak_is_visible_on_the_host(&leak);
    let mut escapes = Vec::new();
    for n in 3..=9 {
        let dir = format!("/proc/self/fd/{n}");
        let image = store.image(
            ImageBuilder::busybox()
                .config("WorkingDir", json!(dir))
                .config("Cmd", json!(["sh", "-c", CWD_PROBE])),
            &format!("workdir-fd{n}"),
        );
        let mut cmd = store.command(&["run", "--rm", "--network", "none", &image]);
        leak.hand_to(&mut cmd);
        let out = run_within(cmd, WAIT);
        if let Err(e) = cwd_stayed_inside(&out, &dir) {
            escapes.push(format!("WorkingDir {dir}: {e}"));
        }
    }
    assert!(escapes.is_empty(), "{}", escapes.join("\n\n"));
}
