//! `exec` into a running container, for real (needs root): the same pid namespace,
//! hostname, mounts and cgroups as the init; the process's own env, cwd and user; docker's
//! exit codes; a clear error for a container that is not running.

mod common;

use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use basic_runtime::exec::{Exec, ExecError, process_from};
use basic_runtime::{Container, ContainerError, ExitStatus, Spec};
use common::privileged;

/// A container running in a thread of this test, killed (and waited for) on drop.
struct Running {
    id: String,
    spec: Spec,
    state: tempfile::TempDir,
    init: i32,
    runner: Option<JoinHandle<Result<ExitStatus, ContainerError>>>,
}

impl Running {
    /// Starts `script` as the container's init and waits until it has written
    /// `/dev/shm/up` (a tmpfs only the container's mount namespace has).
    fn start(name: &str, script: &str) -> Running {
        Self::start_with(name, script, |_| {})
    }

    /// [`Running::start`], with `adjust` applied to the container's spec.
    fn start_with(name: &str, script: &str, adjust: impl FnOnce(&mut Spec)) -> Running {
        let mut spec = common::sh(&format!("echo up > /dev/shm/up; {script}"));
        adjust(&mut spec);
        spec.set_hostname(Some(format!("{name}-box")));
        let process = spec.process_mut().as_mut().unwrap();
        let mut env = process.env().clone().unwrap();
        env.extend(["FROM_SPEC=spec".to_string(), "OVERRIDDEN=spec".to_string()]);
        process.set_env(Some(env));
        let id = common::id(name);
        let state = tempfile::tempdir().unwrap();
        let container = Container::builder(&id, spec.clone(), common::rootfs())
            .require_sealed_exe(false)
            .allow_multithreaded_fork(true)
            .state_dir(state.path())
            .forward_signals(false)
            .build()
            .unwrap();
        let runner = std::thread::spawn(move || container.run());
        let state_file = state.path().join(&id).join("state.json");
        let mut running = Running {
            id,
            spec,
            state,
            init: 0,
            runner: Some(runner),
        };
        running.init = wait_for(|| {
            let text = std::fs::read_to_string(&state_file).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v["pid"].as_i64().filter(|p| *p > 0).map(|p| p as i32)
        });
        wait_for(|| (running.exec_status(&["test", "-e", "/dev/shm/up"]) == 0).then_some(()));
        running
    }

    /// An exec of `args` with the container's process settings.
    fn exec(&self, args: &[&str]) -> basic_runtime::exec::ExecBuilder {
        let process =
            process_from(&self.spec, args.iter().map(|s| s.to_string()).collect()).unwrap();
        Exec::in_container(&self.id, process)
            .require_sealed_exe(false)
            .allow_multithreaded_fork(true)
            .state_dir(self.state.path())
    }

    fn exec_status(&self, args: &[&str]) -> i32 {
        let (_, w) = pipe();
        self.exec(args)
            .stdout(w)
            .foreground()
            .forward_signals(false)
            .build()
            .and_then(|e| e.run())
            .map(|s| s.exit_code())
            .unwrap_or_else(|e| e.exit_code())
    }

    /// Runs `script` in `sh -c` through `builder` and returns its exit code and stdout.
    fn output(builder: basic_runtime::exec::ExecBuilder) -> Result<(i32, String), ExecError> {
        let (mut r, w) = pipe();
        let status = builder
            .stdout(w)
            .foreground()
            .forward_signals(false)
            .build()?
            .run()?;
        let mut out = String::new();
        r.read_to_string(&mut out).unwrap();
        Ok((status.exit_code(), out))
    }

    /// Kills the init and waits for the runner to return.
    fn stop(&mut self) {
        if let Some(runner) = self.runner.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.init),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = runner.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

fn pipe() -> (std::fs::File, OwnedFd) {
    let (r, w) = nix::unistd::pipe().unwrap();
    (std::fs::File::from(r), w)
}

/// Polls `f` until it gives a value; a test that never gets one fails instead of hanging.
fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the container never got there");
}

fn host_cgroups(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap()
}

fn ns(pid: i32, name: &str) -> std::path::PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{name}")).unwrap()
}

#[test]
fn exec_shares_the_inits_pid_namespace_hostname_and_mounts() {
    if !privileged() {
        return;
    }
    let c = Running::start("share", "exec sleep 1000");
    let (code, out) =
        Running::output(c.exec(&["sh", "-c", "ps -o pid,comm; hostname; cat /dev/shm/up"]))
            .unwrap();
    assert_eq!(code, 0, "{out}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // The init is PID 1 of the namespace, and the exec'd processes are beside it.
    assert!(
        lines
            .iter()
            .any(|l| l.first() == Some(&"1") && matches!(l.get(1), Some(&("sleep" | "sh")))),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.get(1) == Some(&"ps") && l[0] != "1"),
        "{out}"
    );
    // Only the container's processes: init, the exec'd shell, ps.
    let pids = lines
        .iter()
        .filter(|l| l.first().is_some_and(|p| p.parse::<u32>().is_ok()));
    assert!(pids.count() <= 3, "host processes visible:\n{out}");
    assert!(out.contains("\nshare-box\n"), "{out}");
    assert!(out.ends_with("up\n"), "{out}");
}

#[test]
fn a_detached_exec_is_in_the_inits_cgroups_and_namespaces() {
    if !privileged() {
        return;
    }
    let c = Running::start("cgroup", "exec sleep 1000");
    let pid_file = c.state.path().join("exec.pid");
    let started = c
        .exec(&["sleep", "1000"])
        .detached()
        .pid_file(&pid_file)
        .build()
        .unwrap()
        .start()
        .unwrap();
    let pid = started.pid;
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    let cgroups = host_cgroups(pid);
    assert_eq!(cgroups, host_cgroups(c.init));
    assert!(
        cgroups.contains(&format!("basic-docker/{}", c.id)),
        "{cgroups}"
    );
    for name in ["mnt", "pid", "uts", "ipc", "net", "cgroup"] {
        assert_eq!(ns(pid, name), ns(c.init, name), "{name} namespace");
    }
    // Not our child: reparented away, it outlives this call.
    let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: i32 = ppid[ppid.rfind(')').unwrap() + 2..]
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(ppid, std::process::id() as i32);
    // It ends with the container.
    drop(c);
    wait_for(|| {
        let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
            .unwrap_or(true);
        gone.then_some(())
    });
}

#[test]
fn env_cwd_and_user_come_from_the_process() {
    if !privileged() {
        return;
    }
    let c = Running::start("user", "exec sleep 1000");
    let mut process = process_from(
        &c.spec,
        vec![
            "sh".into(),
            "-c".into(),
            "echo $FROM_SPEC $OVERRIDDEN $ADDED; pwd; id -u; id -g; id -G".into(),
        ],
    )
    .unwrap();
    process.set_cwd("/tmp".into());
    let user = basic_runtime::resolve_user(common::rootfs(), "user").unwrap();
    let u = process.user_mut();
    u.set_uid(user.uid);
    u.set_gid(user.gid);
    u.set_additional_gids(Some(user.additional_gids));
    let builder = Exec::in_container(&c.id, process)
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(c.state.path())
        .env(["OVERRIDDEN=flag", "ADDED=new"]);
    let (code, out) = Running::output(builder).unwrap();
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "spec flag new\n/tmp\n1000\n1000\n1000 2000\n");
}

#[test]
fn exit_codes_follow_docker() {
    if !privileged() {
        return;
    }
    let c = Running::start("codes", "exec sleep 1000");
    assert_eq!(c.exec_status(&["true"]), 0);
    assert_eq!(c.exec_status(&["sh", "-c", "exit 3"]), 3);
    assert_eq!(c.exec_status(&["sh", "-c", "kill -9 $$"]), 137);
    let build = |args: &[&str]| {
        c.exec(args)
            .foreground()
            .forward_signals(false)
            .build()
            .unwrap()
    };
    let e = build(&["no-such-command"]).run().unwrap_err();
    assert_eq!(e.exit_code(), 127, "{e}");
    assert!(
        e.to_string().contains("executable file not found in $PATH"),
        "{e}"
    );
    let e = build(&["/etc/passwd"]).run().unwrap_err();
    assert_eq!(e.exit_code(), 126, "{e}");
    let mut process = process_from(&c.spec, vec!["true".into()]).unwrap();
    process.set_cwd("/no/such/dir".into());
    let e = Exec::in_container(&c.id, process)
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(c.state.path())
        .foreground()
        .build()
        .unwrap()
        .run()
        .unwrap_err();
    assert_eq!(e.exit_code(), 125, "{e}");
    assert!(e.to_string().contains("/no/such/dir"), "{e}");
}

#[test]
fn exec_into_a_stopped_container_fails_clearly() {
    if !privileged() {
        return;
    }
    let mut c = Running::start("stopped", "exec sleep 1000");
    let init = c.init;
    c.stop();
    let e = c.exec(&["true"]).foreground().build().unwrap_err();
    assert!(matches!(e, ExecError::NotRunning { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "container {} is not running: no such container (no {})",
            c.id,
            c.state.path().join(&c.id).join("state.json").display()
        )
    );
    let e = Exec::in_process(init, process_from(&c.spec, vec!["true".into()]).unwrap())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .foreground()
        .build()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("process {init} is not running")),
        "{e}"
    );
    assert!(!Path::new(&format!("/proc/{init}")).exists());
}

#[test]
fn exec_joins_the_containers_user_namespace_first() {
    if !privileged() {
        return;
    }
    let c = Running::start_with("userns", "exec sleep 1000", |spec| {
        let linux = spec.linux_mut().as_mut().unwrap();
        let mut namespaces = linux.namespaces().clone().unwrap();
        let mut user = oci_spec::runtime::LinuxNamespace::default();
        user.set_typ(oci_spec::runtime::LinuxNamespaceType::User);
        namespaces.push(user);
        linux.set_namespaces(Some(namespaces));
        let map = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(100000u32)
            .size(65536u32)
            .build()
            .unwrap();
        linux.set_uid_mappings(Some(vec![map]));
        linux.set_gid_mappings(Some(vec![map]));
    });
    let script =
        "id -u; cat /proc/self/uid_map; echo x > /dev/shm/by-exec; stat -c %u /dev/shm/by-exec";
    let (code, out) = Running::output(c.exec(&["sh", "-c", script])).unwrap();
    assert_eq!(code, 0, "{out}");
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines, [vec!["0"], vec!["0", "100000", "65536"], vec!["0"]]);
}
