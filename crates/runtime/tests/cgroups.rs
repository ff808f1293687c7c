//! Resource limits enforced by this machine's real cgroups (v1 here, v2 elsewhere).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use basic_runtime::cgroups;
use common::{privileged, run, sh};
use oci_spec::runtime::{LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, Spec};

fn with_resources(mut spec: Spec, f: impl FnOnce(&mut oci_spec::runtime::LinuxResources)) -> Spec {
    let linux = spec.linux_mut().as_mut().unwrap();
    let mut res = linux.resources().clone().unwrap_or_default();
    f(&mut res);
    linux.set_resources(Some(res));
    spec
}

fn cgroup_dirs(rel: &Path) -> Vec<PathBuf> {
    let m = cgroups::manager_for(Path::new(cgroups::DEFAULT_ROOT), rel);
    ["memory", "cpu", "cpuacct", "pids", "devices", "cpuset"]
        .iter()
        .filter_map(|c| m.controller_path(c))
        .collect()
}

#[test]
fn memory_limit_oom_kills_with_137_and_reports_it() {
    if !privileged() {
        return;
    }
    let spec = with_resources(sh("head -c 200m /dev/zero | tail"), |r| {
        let mem = LinuxMemoryBuilder::default()
            .limit(20i64 << 20)
            .swap(20i64 << 20)
            .build()
            .unwrap();
        r.set_memory(Some(mem));
    });
    let (status, _) = run("oom", spec);
    assert_eq!(status.exit_code(), 137, "{status}");
    assert!(status.oom_killed, "{status}");
}

#[test]
fn pids_limit_stops_a_fork_loop() {
    if !privileged() {
        return;
    }
    // The inner shell dies ("can't fork") once pids.max is reached; its sleeps stay behind.
    // `set -- /proc/[0-9]*` is a builtin glob: it works even when no fork is possible.
    let spec = with_resources(
        sh(
            "sh -c 'for i in $(seq 100); do sleep 5 & done' 2>/dev/null; echo $?; set -- /proc/[0-9]*; echo $#",
        ),
        |r| {
            r.set_pids(Some(
                LinuxPidsBuilder::default().limit(20i64).build().unwrap(),
            ));
        },
    );
    let (status, out) = run("pids", spec);
    assert_eq!(status.exit_code(), 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(
        lines[0], "0",
        "forking 100 sleeps succeeded despite pids.max=20"
    );
    let n: usize = lines[1].trim().parse().unwrap();
    assert!(n <= 20, "{n} processes despite pids.max=20");
    assert!(n >= 10, "only {n} processes: the loop did not run");
}

#[test]
fn cpu_quota_caps_a_busy_loop_and_cgroup_is_removed() {
    if !privileged() {
        return;
    }
    let id = common::id("cpu");
    let rel = PathBuf::from(format!("basic-docker-test/{id}"));
    let mut spec = with_resources(sh("timeout 3 sh -c 'while :; do :; done'; true"), |r| {
        let cpu = LinuxCpuBuilder::default()
            .quota(20_000i64)
            .period(100_000u64)
            .build()
            .unwrap();
        r.set_cpu(Some(cpu));
    });
    spec.linux_mut()
        .as_mut()
        .unwrap()
        .set_cgroups_path(Some(rel.clone()));
    let manager = cgroups::manager_for(Path::new(cgroups::DEFAULT_ROOT), &rel);
    let runner = std::thread::spawn(move || run("cpu", spec));
    // Wait until the busy loop runs, then measure usage over about a second of wall time.
    let deadline = Instant::now() + Duration::from_secs(5);
    while manager.pids().map(|p| p.len() < 2).unwrap_or(true) {
        assert!(Instant::now() < deadline, "container did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (u0, t0) = (manager.cpu_usage().unwrap(), Instant::now());
    std::thread::sleep(Duration::from_millis(1000));
    let (u1, t1) = (manager.cpu_usage().unwrap(), Instant::now());
    let share = (u1 - u0).as_secs_f64() / (t1 - t0).as_secs_f64();
    let (status, _) = runner.join().unwrap();
    assert_eq!(status.exit_code(), 0);
    assert!(
        share < 0.35,
        "busy loop used {share:.2} CPU with a 0.2 CPU quota"
    );
    assert!(
        share > 0.05,
        "busy loop used {share:.2} CPU: was it running?"
    );
    for dir in cgroup_dirs(&rel) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn default_cgroup_directory_is_gone_after_exit() {
    if !privileged() {
        return;
    }
    let (status, _) = run("gone", sh("exit 0"));
    assert_eq!(status.exit_code(), 0);
    for dir in cgroup_dirs(&PathBuf::from(format!(
        "basic-docker/{}",
        common::id("gone")
    ))) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[test]
fn machine_manager_create_add_remove() {
    if !privileged() {
        return;
    }
    let rel = PathBuf::from(format!("basic-docker-test/manager-{}", std::process::id()));
    let m = cgroups::manager_for(Path::new(cgroups::DEFAULT_ROOT), &rel);
    m.create().unwrap();
    let res = oci_spec::runtime::LinuxResourcesBuilder::default()
        .memory(
            LinuxMemoryBuilder::default()
                .limit(64i64 << 20)
                .build()
                .unwrap(),
        )
        .pids(LinuxPidsBuilder::default().limit(50i64).build().unwrap())
        .build()
        .unwrap();
    m.apply(&res).unwrap();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    m.add_task(child.id() as i32).unwrap();
    assert_eq!(m.pids().unwrap(), [child.id() as i32]);
    assert!(!m.oom_killed().unwrap());
    // remove() kills what is left before removing the directory.
    m.remove().unwrap();
    let status = basic_test_support::bounded::wait_within(
        &mut child,
        std::time::Duration::from_secs(10),
        "the process remove() killed",
    );
    assert!(!status.success());
    for dir in cgroup_dirs(&rel) {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}
