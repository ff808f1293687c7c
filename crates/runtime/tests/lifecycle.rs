//! Exit codes, signals, the tiny init, exec errors and signal forwarding.

mod common;

use basic_runtime::{Container, ContainerError};
use common::{privileged, run, sh};

#[test]
fn exit_code_is_passed_through() {
    if !privileged() {
        return;
    }
    assert_eq!(run("exit3", sh("exit 3")).0.exit_code(), 3);
}

#[test]
fn kill_9_with_init_reports_137() {
    if !privileged() {
        return;
    }
    // Without --init, sh is PID 1 and the kernel ignores SIGKILL sent from inside; with
    // the tiny init the shell is an ordinary process.
    let spec = sh("kill -9 $$");
    let state = tempfile::tempdir().unwrap();
    let status = Container::builder(common::id("kill9"), spec, common::rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(state.path())
        .forward_signals(false)
        .init(true)
        .build()
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(status.exit_code(), 137, "{status}");
}

#[test]
fn init_reaps_orphans() {
    if !privileged() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut spec = sh("(sleep 0.2 &) ; sleep 1; ps -o stat,comm > /out/ps");
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination("/out".into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some(out.path().to_path_buf()));
    m.set_options(Some(vec!["rbind".into()]));
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    let status = Container::builder(common::id("reap"), spec, common::rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(state.path())
        .forward_signals(false)
        .init(true)
        .build()
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(status.exit_code(), 0);
    let ps = std::fs::read_to_string(out.path().join("ps")).unwrap();
    assert!(
        !ps.lines().any(|l| l.trim_start().starts_with('Z')),
        "zombie left:\n{ps}"
    );
}

#[test]
fn signal_from_outside_is_reported() {
    if !privileged() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    let id = common::id("sig");
    let state_file = state.path().join(&id).join("state.json");
    let killer = std::thread::spawn(move || {
        for _ in 0..500 {
            if let Ok(s) = std::fs::read_to_string(&state_file) {
                let v: serde_json::Value = serde_json::from_str(&s).unwrap();
                let pid = v["pid"].as_i64().unwrap() as i32;
                std::thread::sleep(std::time::Duration::from_millis(100));
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .unwrap();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no state.json");
    });
    let status = Container::builder(id, sh("sleep 30"), common::rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(state.path())
        .forward_signals(false)
        .build()
        .unwrap()
        .run()
        .unwrap();
    killer.join().unwrap();
    assert_eq!(status.signal, Some(9));
    assert_eq!(status.exit_code(), 137);
    assert!(!status.oom_killed);
}

fn start_error(args: &[&str]) -> ContainerError {
    let spec =
        basic_runtime::default_spec(args.iter().map(|s| s.to_string()).collect(), vec![], "/")
            .unwrap();
    let state = tempfile::tempdir().unwrap();
    Container::builder(
        common::id(&format!("err{}", args[0].len())),
        spec,
        common::rootfs(),
    )
    .require_sealed_exe(false)
    .allow_multithreaded_fork(true)
    .state_dir(state.path())
    .forward_signals(false)
    .build()
    .unwrap()
    .run()
    .unwrap_err()
}

#[test]
fn missing_command_is_127_and_not_executable_is_126() {
    if !privileged() {
        return;
    }
    let e = start_error(&["no-such-command"]);
    assert_eq!(e.exit_code(), 127, "{e}");
    assert!(e.to_string().contains("not found"), "{e}");
    let e = start_error(&["/etc/passwd"]);
    assert_eq!(e.exit_code(), 126, "{e}");
}

#[test]
fn raising_a_hard_rlimit_fails_clearly() {
    if !privileged() {
        return;
    }
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one struct we own.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    let has_sys_resource = caps_has_sys_resource();
    let mut spec = sh("true");
    let lim = oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(oci_spec::runtime::PosixRlimitType::RlimitNofile)
        .soft(1024u64)
        .hard(cur.rlim_max + 1000)
        .build()
        .unwrap();
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_rlimits(Some(vec![lim]));
    let state = tempfile::tempdir().unwrap();
    let result = Container::builder(common::id("rlimit"), spec, common::rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(state.path())
        .forward_signals(false)
        .build()
        .unwrap()
        .run();
    if has_sys_resource {
        assert_eq!(result.unwrap().exit_code(), 0);
    } else {
        let e = result.unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e.to_string().contains("CAP_SYS_RESOURCE"), "{e}");
    }
}

fn caps_has_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = status.lines().find(|l| l.starts_with("CapBnd")).unwrap();
    let v = u64::from_str_radix(bnd.split_whitespace().nth(1).unwrap(), 16).unwrap();
    v & (1 << 24) != 0
}
