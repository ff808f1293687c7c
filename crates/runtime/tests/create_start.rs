//! The OCI lifecycle in steps: create parks the init, start lets it exec, state follows the
//! real process, kill/delete/pause/resume act on it; errors name the container.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use basic_runtime::{Container, ContainerBuilder, LifecycleError, StateRoot, Status};
use common::{privileged, rootfs, sh};
use nix::sys::signal::Signal;

fn wait_for(root: &StateRoot, id: &str, want: Status) {
    let start = Instant::now();
    loop {
        let st = root.state(id).unwrap().status;
        if st == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{id} stayed {st}, wanted {want}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Container `id` of `spec` on the shared rootfs, its state under `root`, run from this
/// (threaded, unsealed) test process.
fn builder(root: &Path, id: &str, spec: oci_spec::runtime::Spec) -> ContainerBuilder {
    Container::builder(id, spec, rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(root)
        .forward_signals(false)
}

fn create(root: &Path, id: &str, script: &str) -> Result<basic_runtime::State, LifecycleError> {
    builder(root, id, sh(script)).build().unwrap().create()
}

/// Reaps the init (it is our child) so it does not stay a zombie for the test's life.
fn reap(pid: i32) {
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
}

#[test]
fn create_parks_the_init_until_start() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("marker");
    let root = StateRoot::new(dir.path().join("state"));
    let id = common::id("parked");
    let spec = with_out("echo started > /out/marker; sleep 30", dir.path());
    let state = Container::builder(&id, spec, rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(root.dir())
        .build()
        .unwrap()
        .create()
        .unwrap();
    assert_eq!(state.status, Status::Created);
    assert!(state.pid > 0);
    let seen = root.state(&id).unwrap();
    assert_eq!(seen.status, Status::Created);
    assert_eq!(seen.pid, state.pid);
    assert!(!out.exists(), "the command ran before start");

    root.start(&id).unwrap();
    let start = Instant::now();
    while !out.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "start did not run the command"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(root.state(&id).unwrap().status, Status::Running);

    let e = root.start(&id).unwrap_err();
    assert!(e.to_string().contains("already running"), "{e}");
    let e = root.delete(&id, false).unwrap_err();
    assert!(
        e.to_string().contains(&id) && e.to_string().contains("--force"),
        "{e}"
    );

    root.pause(&id).unwrap();
    assert_eq!(root.state(&id).unwrap().status, Status::Paused);
    root.resume(&id).unwrap();
    assert_eq!(root.state(&id).unwrap().status, Status::Running);

    root.kill(&id, Signal::SIGKILL, false).unwrap();
    reap(state.pid);
    wait_for(&root, &id, Status::Stopped);
    assert_eq!(root.state(&id).unwrap().pid, 0);
    let e = root.kill(&id, Signal::SIGTERM, false).unwrap_err();
    assert!(e.to_string().contains("not running"), "{e}");
    root.delete(&id, false).unwrap();
    assert!(!root.dir().join(&id).exists());
    assert!(matches!(
        root.state(&id),
        Err(LifecycleError::NotFound { .. })
    ));
}

#[test]
fn the_same_id_twice_is_refused_and_unknown_ids_are_named() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::new(dir.path());
    let id = common::id("twice");
    let first = create(dir.path(), &id, "sleep 30").unwrap();
    let e = create(dir.path(), &id, "true").unwrap_err();
    assert!(matches!(e, LifecycleError::Exists { .. }), "{e}");
    assert!(e.to_string().contains(&id), "{e}");
    // The first one is untouched by the refused second create.
    assert_eq!(root.state(&id).unwrap().status, Status::Created);

    // The spec: deleting a container that is not stopped fails and leaves it alone, a
    // created one included; --force kills it first.
    let e = root.delete(&id, false).unwrap_err();
    assert!(
        e.to_string().contains("is created") && e.to_string().contains("--force"),
        "{e}"
    );
    assert_eq!(root.state(&id).unwrap().status, Status::Created);
    root.delete(&id, true).unwrap();
    reap(first.pid);
    assert!(!root.dir().join(&id).exists());

    let e = root.start("no-such-container").unwrap_err();
    assert!(
        e.to_string().contains("no-such-container does not exist"),
        "{e}"
    );
    root.delete("no-such-container", true).unwrap();
    let e = root.state("../etc").unwrap_err();
    assert!(matches!(e, LifecycleError::InvalidId(_)), "{e}");
}

#[test]
fn delete_force_kills_a_running_container_and_its_cgroup() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::new(dir.path());
    let id = common::id("force");
    let state = create(dir.path(), &id, "sleep 30 & sleep 30").unwrap();
    root.start(&id).unwrap();
    wait_for(&root, &id, Status::Running);
    let pids = root.pids(&id).unwrap();
    assert!(pids.contains(&state.pid), "{pids:?}");
    let cgroup = Path::new("/sys/fs/cgroup/pids/basic-docker").join(&id);
    let reaper = std::thread::spawn(move || reap(state.pid));
    root.delete(&id, true).unwrap();
    reaper.join().unwrap();
    assert!(!root.dir().join(&id).exists());
    assert!(!cgroup.exists(), "{} left behind", cgroup.display());
    for pid in pids {
        assert!(gone(pid), "process {pid} survived delete --force");
    }
}

/// Gone, or a zombie waiting for whoever adopted it.
fn gone(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
        .unwrap_or(true)
}

#[test]
fn a_terminal_without_a_console_socket_is_refused() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spec = sh("true");
    spec.process_mut()
        .as_mut()
        .unwrap()
        .set_terminal(Some(true));
    let e = Container::builder(common::id("tty"), spec, rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(dir.path())
        .build()
        .unwrap()
        .create()
        .unwrap_err();
    assert!(e.to_string().contains("console socket"), "{e}");
}

#[test]
fn a_terminal_is_sent_over_the_console_socket() {
    if !privileged() {
        return;
    }
    use std::io::Read;
    use std::os::fd::AsFd;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let root = StateRoot::new(dir.path().join("state"));
    let id = common::id("console");
    let mut spec = sh("tty; stty size; echo done");
    let process = spec.process_mut().as_mut().unwrap();
    process.set_terminal(Some(true));
    let size: oci_spec::runtime::Box =
        serde_json::from_value(serde_json::json!({"height": 30, "width": 100})).unwrap();
    process.set_console_size(Some(size));
    // The connection waits in the listener's backlog until accepted after create.
    let state = Container::builder(&id, spec, rootfs())
        .require_sealed_exe(false)
        .allow_multithreaded_fork(true)
        .state_dir(root.dir())
        .console_socket(&sock)
        .build()
        .unwrap()
        .create()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let (master, name) = basic_runtime::console::recv_master(conn.as_fd()).unwrap();
    assert_eq!(name, "/dev/pts/0");
    root.start(&id).unwrap();
    reap(state.pid);
    let mut out = Vec::new();
    // Reading the master ends with EIO once the last slave holder has exited.
    let _ = std::fs::File::from(master).read_to_end(&mut out);
    assert_eq!(
        String::from_utf8_lossy(&out),
        "/dev/pts/0\r\n30 100\r\ndone\r\n"
    );
    root.delete(&id, false).unwrap();
}

/// A spec running `script` with the host directory `dir` bound at `/out`.
fn with_out(script: &str, dir: &Path) -> oci_spec::runtime::Spec {
    let mut spec = sh(script);
    let mut m = oci_spec::runtime::Mount::default();
    m.set_destination("/out".into());
    m.set_typ(Some("bind".into()));
    m.set_source(Some(dir.to_path_buf()));
    m.set_options(Some(vec!["rbind".into()]));
    let mut mounts = spec.mounts().clone().unwrap();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    spec
}

#[test]
fn work_before_exec_runs_once_the_init_exists_and_before_the_command() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::new(dir.path().join("state"));
    let id = common::id("gated");
    let seen_by_work = std::sync::Arc::new(std::sync::Mutex::new(None));
    let (out, state_dir, id2, seen) = (
        dir.path().to_path_buf(),
        root.dir().to_path_buf(),
        id.clone(),
        seen_by_work.clone(),
    );
    let c = builder(
        root.dir(),
        &id,
        with_out("cat /out/ready > /out/seen", &out),
    )
    .before_exec(move || {
        let state = StateRoot::new(state_dir).state(&id2).unwrap();
        let init_ns = std::fs::read_link(format!("/proc/{}/ns/pid", state.pid)).ok();
        *seen.lock().unwrap() = Some((state.status, init_ns, out.join("seen").exists()));
        std::fs::write(out.join("ready"), "configured\n").map_err(|e| e.to_string())
    })
    .build()
    .unwrap();
    let running = c.start().unwrap();
    // Waited for only once it has exited: a command that never ends fails the test.
    let init = running.pid();
    basic_test_support::bounded::until(Duration::from_secs(30), "the command's exit", || {
        gone(init)
    });
    let status = running.wait().unwrap();
    assert_eq!(status.code, Some(0), "{status}");
    let (status_then, init_ns, command_ran) = seen_by_work.lock().unwrap().clone().unwrap();
    assert_eq!(status_then, Status::Creating);
    let own_ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    assert!(
        init_ns.is_some_and(|ns| ns != own_ns),
        "the init was not in a pid namespace of its own yet"
    );
    assert!(!command_ran, "the command ran before the work was done");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("seen")).unwrap(),
        "configured\n"
    );
}

#[test]
fn work_before_exec_that_fails_stops_the_start_and_the_command_never_runs() {
    if !privileged() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::new(dir.path().join("state"));
    let id = common::id("gate-fails");
    let init = std::sync::Arc::new(std::sync::Mutex::new(0));
    let (state_dir, id2, init2) = (root.dir().to_path_buf(), id.clone(), init.clone());
    let c = builder(root.dir(), &id, with_out("touch /out/ran", dir.path()))
        .before_exec(move || {
            *init2.lock().unwrap() = StateRoot::new(state_dir).state(&id2).unwrap().pid;
            Err("the network helper exited with status 1".into())
        })
        .build()
        .unwrap();
    let err = c.start().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("container {id}: before its command ran: the network helper exited with status 1")
    );
    assert_eq!(err.exit_code(), 125);
    assert!(!dir.path().join("ran").exists(), "the command ran");
    let pid = *init.lock().unwrap();
    assert!(pid > 0);
    assert!(gone(pid), "init {pid} still there");
    assert!(
        root.state(&id).is_err(),
        "a failed start left a state behind"
    );
}
