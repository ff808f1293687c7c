//! The engine's verbs on real containers (root, the registry harness's busybox), through
//! the library alone.
//!
//! This test binary has its own `main` (no libtest): it must seal itself before anything
//! (as every program that starts containers does), it serves as the engine's detached
//! supervisor when started as `verbs supervise ROOT STATE ID` (the engine's
//! [`SupervisorCommand`]), and it forks containers, which needs a process without other
//! threads. Each test runs in turn; a failure is reported and the binary exits 1.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use basic_engine::config::{ContainerConfig, HostConfig, parse_restart};
use basic_engine::{
    AttachEnd, AttachOptions, Attachment, CopyToOptions, CreateOptions, Engine, EngineError,
    EngineOptions, ErrorKind, EventOptions, ExecOptions, Filters, Frame, LogOptions, Sent, Status,
    SupervisorCommand, WaitCondition,
};
use basic_image_store::PullOptions;
use basic_registry::{Reference, RegistryClient};
use basic_runtime::logfile::Stream;

/// A test: a name and what it runs against the fixture.
type Test = fn(&Fixture);

/// One store (and its state directory) for the whole run, with busybox pulled.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    image: String,
}

fn main() {
    basic_runtime::descriptors::close_on_exec_from(3);
    if let Err(e) = basic_runtime::sealed_exe::ensure() {
        panic!("sealing the test binary: {e}");
    }
    let args: Vec<String> = std::env::args().collect();
    // The engine's small supervisor program, as basic-docker-supervise is.
    if args.get(1).map(String::as_str) == Some("lean") {
        std::process::exit(match basic_runtime::supervisor::lean_main() {
            code if code == std::process::ExitCode::SUCCESS => 0,
            _ => 125,
        });
    }
    if args.get(1).map(String::as_str) == Some("supervise") {
        let engine = open(Path::new(&args[2]), Path::new(&args[3]));
        let code = engine
            .supervise(&args[4], Attachment::of_supervisor_process())
            .unwrap_or_else(|e| e.exit_code());
        std::process::exit(code);
    }
    if !basic_test_support::require_root() {
        return;
    }
    let Some(harness) = basic_test_support::harness() else {
        return;
    };
    let fixture = fixture(&harness.reference("busybox_latest"));
    let filter: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: &[(&str, Test)] = &[
        (
            "a_container_runs_and_its_exit_logs_and_events_are_kept",
            runs_and_records,
        ),
        (
            "stop_kill_pause_restart_and_remove_a_running_container",
            lifecycle,
        ),
        (
            "start_returns_once_the_command_runs",
            start_returns_once_the_command_runs,
        ),
        ("exec_runs_in_the_container_with_its_settings", exec),
        (
            "list_filters_as_docker_and_prune_removes_the_stopped",
            list_and_prune,
        ),
        (
            "bad_configs_are_refused_with_the_kind_an_api_maps",
            refusals,
        ),
        ("export_writes_the_root_of_a_stopped_container", export),
        (
            "archive_routes_stat_copy_and_list_changes_as_docker",
            archive_routes,
        ),
        (
            "attach_before_start_loses_no_output_in_a_long_state_path",
            attach_before_start,
        ),
        (
            "attach_with_stdin_once_closes_stdin_when_the_input_ends",
            attach_stdin_once,
        ),
        (
            "attach_input_sent_before_the_start_reaches_the_container_and_closes_its_stdin",
            attach_input_before_start,
        ),
        (
            "attach_two_clients_logs_replay_and_detach_keys",
            attach_running,
        ),
        ("attach_refusals_are_dockers", attach_refusals),
    ];
    let mut failed = Vec::new();
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let outcome = std::panic::catch_unwind(|| test(&fixture));
        println!(
            "test {name} ... {}",
            if outcome.is_ok() { "ok" } else { "FAILED" }
        );
        if outcome.is_err() {
            failed.push(*name);
        }
    }
    if !failed.is_empty() {
        eprintln!("failed: {failed:?}");
        std::process::exit(1);
    }
}

fn open(root: &Path, state: &Path) -> Engine {
    Engine::open(EngineOptions {
        root: root.to_path_buf(),
        state: state.to_path_buf(),
        supervisor: Some(SupervisorCommand {
            // Sealed, this binary has no path of its own: the kernel's handle on it.
            program: "/proc/self/exe".into(),
            arg0: "verbs".into(),
            args: vec![
                "supervise".into(),
                root.as_os_str().to_owned(),
                state.as_os_str().to_owned(),
            ],
            // This binary again, as the small program that keeps running containers.
            lean: Some(basic_runtime::supervisor::Lean {
                program: "/proc/self/exe".into(),
                args: vec!["lean".into()],
                keep: Vec::new(),
            }),
        }),
    })
    .expect("opening the engine")
}

fn fixture(image: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // Longer than a unix socket's path may be: the attach socket lives under it.
    let state = dir.path().join(format!("state-{}", "s".repeat(100)));
    let engine = open(&root, &state);
    let reference = Reference::parse(image).unwrap();
    let client = RegistryClient::builder().build().unwrap();
    // A runtime of one thread, gone before any container is forked.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(basic_image_store::pull(
            engine.store(),
            &client,
            &reference,
            &PullOptions::default(),
            |_| {},
        ))
        .expect("pulling busybox from the harness");
    Fixture {
        _dir: dir,
        root,
        state,
        image: image.to_string(),
    }
}

impl Fixture {
    fn engine(&self) -> Engine {
        open(&self.root, &self.state)
    }

    fn config(&self, cmd: &[&str]) -> ContainerConfig {
        ContainerConfig {
            image: Some(self.image.clone()),
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn create(&self, engine: &Engine, name: &str, config: ContainerConfig) -> String {
        let options = CreateOptions {
            name: Some(name.to_string()),
            ..Default::default()
        };
        engine
            .create(config, &options)
            .unwrap_or_else(|e| panic!("creating {name}: {e}"))
            .container
            .id()
            .to_string()
    }
}

/// Removes the named containers however a test ends.
struct Cleanup<'a>(&'a Fixture, Vec<&'a str>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let engine = self.0.engine();
        for name in &self.1 {
            let _ = engine.remove(name, true);
        }
    }
}

fn runs_and_records(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-runs"]);
    let id = f.create(
        &engine,
        "verbs-runs",
        f.config(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
    );
    assert_eq!(
        engine.status(&engine.container(&id).unwrap()),
        Status::Created
    );
    engine.start("verbs-runs").unwrap();
    assert_eq!(engine.wait("verbs-runs").unwrap(), 3);
    let mut lines = Vec::new();
    engine
        .logs("verbs-runs", &LogOptions::default(), |entry| {
            lines.push((entry.stream, entry.log.clone()));
            Ok(())
        })
        .unwrap();
    // The two streams are copied by two relays: their order between them is not kept.
    lines.sort_by_key(|(_, text)| text.clone());
    assert_eq!(
        lines,
        [
            (Stream::Stderr, "err\n".to_string()),
            (Stream::Stdout, "out\n".to_string())
        ]
    );
    let doc = engine.inspect(&id[..12]).unwrap();
    let state = doc.base.state.unwrap();
    assert_eq!(state.exit_code, Some(3));
    assert_eq!(doc.base.name.as_deref(), Some("/verbs-runs"));
    let mut actions = Vec::new();
    let options = EventOptions {
        filters: [("container".to_string(), vec![id.clone()])].into(),
        ..Default::default()
    };
    engine
        .events(&options, |e| {
            let exit = e
                .actor
                .as_ref()
                .and_then(|a| a.attributes.as_ref())
                .and_then(|a| a.get("exitCode").cloned());
            actions.push((e.action.clone().unwrap_or_default(), exit));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        actions,
        [
            ("create".to_string(), None),
            ("start".to_string(), None),
            ("die".to_string(), Some("3".to_string()))
        ]
    );
}

fn lifecycle(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-life"]);
    let mut config = f.config(&["sleep", "1000"]);
    config.host_config.as_mut().unwrap().restart_policy = Some(parse_restart("always").unwrap());
    f.create(&engine, "verbs-life", config);
    engine.start("verbs-life").unwrap();
    let now = |e: &Engine| e.status(&e.container("verbs-life").unwrap());
    let Status::Running(first) = now(&engine) else {
        panic!("not running: {:?}", now(&engine));
    };
    engine.pause("verbs-life").unwrap();
    assert_eq!(now(&engine), Status::Paused(first));
    let again = engine.pause("verbs-life").unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict, "{again}");
    engine.unpause("verbs-life").unwrap();
    engine
        .restart("verbs-life", Duration::from_secs(5))
        .unwrap();
    let Status::Running(second) = now(&engine) else {
        panic!("not running after restart: {:?}", now(&engine));
    };
    assert_ne!(first, second, "a new init");
    // A stop is not undone by the restart policy.
    engine.stop("verbs-life", Duration::from_secs(1)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!now(&engine).is_up(), "{:?}", now(&engine));
    engine.start("verbs-life").unwrap();
    let busy = engine.remove("verbs-life", false).unwrap_err();
    assert_eq!(busy.kind(), ErrorKind::Conflict, "{busy}");
    engine.remove("verbs-life", true).unwrap();
    let gone = engine.container("verbs-life").unwrap_err();
    assert_eq!(gone.kind(), ErrorKind::NotFound, "{gone}");
}

/// When `start` returns, the container's init is its command, not the supervisor's copy of
/// itself still setting up (docker-py's `run` then `top` sees the command): looked at at
/// once, in several rounds, as the window between the two is short.
fn start_returns_once_the_command_runs(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-started"]);
    f.create(&engine, "verbs-started", f.config(&["sleep", "1000"]));
    for round in 0..10 {
        engine.start("verbs-started").unwrap();
        let c = engine.container("verbs-started").unwrap();
        let Status::Running(pid) = engine.status(&c) else {
            panic!("round {round}: not running: {:?}", engine.status(&c));
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&cmdline),
            "sleep\u{0}1000\u{0}",
            "round {round}: the init of a started container"
        );
        engine.kill("verbs-started", "KILL").unwrap();
        engine
            .wait_until("verbs-started", WaitCondition::NotRunning)
            .unwrap();
    }
}

fn exec(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-exec"]);
    let mut config = f.config(&["sleep", "1000"]);
    config.env = Some(vec!["FROM_CONTAINER=yes".into()]);
    config.working_dir = Some("/tmp".into());
    f.create(&engine, "verbs-exec", config);
    let options = ExecOptions {
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "echo $FROM_CONTAINER $EXTRA; pwd".into(),
        ],
        env: vec!["EXTRA=added".into()],
        ..Default::default()
    };
    let not_running = engine.exec("verbs-exec", &options).unwrap_err();
    assert_eq!(not_running.kind(), ErrorKind::Conflict, "{not_running}");
    engine.start("verbs-exec").unwrap();
    let (read, write) = std::io::pipe().unwrap();
    let status = engine
        .exec("verbs-exec", &options)
        .unwrap()
        .stdout(OwnedFd::from(write))
        .foreground()
        .build()
        .unwrap()
        .run()
        .unwrap();
    assert_eq!(status.exit_code(), 0);
    let mut out = String::new();
    std::io::BufReader::new(read)
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "yes added\n/tmp\n");
}

fn list_and_prune(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-ok", "verbs-fail", "verbs-up"]);
    for (name, code) in [("verbs-ok", "0"), ("verbs-fail", "7")] {
        f.create(
            &engine,
            name,
            f.config(&["sh", "-c", &format!("exit {code}")]),
        );
        engine.start(name).unwrap();
        engine.wait(name).unwrap();
    }
    f.create(&engine, "verbs-up", f.config(&["sleep", "1000"]));
    engine.start("verbs-up").unwrap();
    let names = |all: bool, filters: &[(&str, &str)]| -> Vec<String> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in filters {
            by_key.entry(k.to_string()).or_default().push(v.to_string());
        }
        let mut names: Vec<String> = engine
            .list(all, &Filters::from_map(by_key).unwrap())
            .unwrap()
            .into_iter()
            .map(|l| l.container.name().to_string())
            .filter(|n| n.starts_with("verbs-"))
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(false, &[]), ["verbs-up"]);
    assert_eq!(names(true, &[]), ["verbs-fail", "verbs-ok", "verbs-up"]);
    assert_eq!(names(false, &[("exited", "7")]), ["verbs-fail"]);
    assert_eq!(
        names(false, &[("status", "exited"), ("name", "ok")]),
        ["verbs-ok"]
    );
    let bad = Filters::parse(&["colour=red".into()]).unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument, "{bad}");
    let report = engine.prune().unwrap();
    assert!(report.deleted.len() >= 2, "{report:?}");
    assert_eq!(names(true, &[]), ["verbs-up"]);
}

fn refusals(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-taken"]);
    let create = |config: ContainerConfig, name: Option<&str>| -> EngineError {
        let options = CreateOptions {
            name: name.map(str::to_string),
            ..Default::default()
        };
        match engine.create(config, &options) {
            Ok(c) => panic!("created {}", c.container.id()),
            Err(e) => e,
        }
    };
    let missing = create(
        ContainerConfig {
            image: Some("127.0.0.1:1/surely/not:here".into()),
            ..Default::default()
        },
        None,
    );
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    let mut tmpfs = f.config(&["true"]);
    tmpfs.host_config.as_mut().unwrap().tmpfs = Some([("/run".to_string(), String::new())].into());
    let e = create(tmpfs, None);
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.to_string().contains("HostConfig.Tmpfs"), "{e}");
    let e = create(f.config(&["true"]), Some("bad name"));
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    f.create(&engine, "verbs-taken", f.config(&["true"]));
    let e = create(f.config(&["true"]), Some("/verbs-taken"));
    assert!(e.to_string().contains("verbs-taken"), "{e}");
    // Nothing of the refused ones was left behind.
    let leftovers: Vec<_> = std::fs::read_dir(f.root.join("containers"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
}

fn export(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-export"]);
    f.create(
        &engine,
        "verbs-export",
        f.config(&["sh", "-c", "echo made-inside > /made"]),
    );
    engine.start("verbs-export").unwrap();
    engine.wait("verbs-export").unwrap();
    let mut tarball = Vec::new();
    engine.export("verbs-export", &mut tarball).unwrap();
    let mut archive = tar::Archive::new(&tarball[..]);
    let mut found = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        if path == "made" || path == "bin/busybox" {
            let mut text = Vec::new();
            entry.read_to_end(&mut text).unwrap();
            found.insert(path, text.len());
        }
    }
    assert_eq!(found.get("made"), Some(&"made-inside\n".len()), "{found:?}");
    assert!(
        found.get("bin/busybox").is_some_and(|n| *n > 100_000),
        "{found:?}"
    );
}

fn archive_routes(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-archive"]);
    f.create(
        &engine,
        "verbs-archive",
        f.config(&[
            "sh",
            "-c",
            "ln -s /etc /etclink && echo made > /made && mkdir /d && touch /d/f && rm /etc/group",
        ]),
    );
    engine.start("verbs-archive").unwrap();
    engine.wait("verbs-archive").unwrap();

    // HEAD: a final symlink is not followed; its target is named inside the container.
    let stat = engine.path_stat("verbs-archive", "/etclink").unwrap();
    assert!(stat.is_symlink(), "{stat:?}");
    assert_eq!(
        (stat.name.as_str(), stat.link_target.as_str()),
        ("etclink", "/etc")
    );
    assert_eq!(stat.mode, basic_engine::file_mode::SYMLINK | 0o777);
    let header = String::from_utf8(base64_decode(&stat.header_value())).unwrap();
    assert!(header.contains(r#""linkTarget":"/etc""#), "{header}");
    let dir = engine.path_stat("verbs-archive", "/etclink/.").unwrap();
    assert!(dir.is_dir() && dir.name == ".", "{dir:?}");
    let err = engine.path_stat("verbs-archive", "/nope").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        "Could not find the file /nope in container verbs-archive"
    );

    // GET: named as the last element; PUT: into a directory, refusing a directory
    // over a file when asked.
    let mut tarball = Vec::new();
    let stat = engine
        .copy_from("verbs-archive", "/made", &mut tarball)
        .unwrap();
    assert_eq!((stat.name.as_str(), stat.size), ("made", 5));
    let mut archive = tar::Archive::new(&tarball[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["made"]);
    let mut dir_over_file = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_path("made/").unwrap();
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_500_000_000);
    h.set_size(0);
    h.set_cksum();
    dir_over_file.append(&h, &[][..]).unwrap();
    let dir_over_file = dir_over_file.into_inner().unwrap();
    let refused = CopyToOptions {
        no_overwrite_dir_non_dir: true,
        copy_uid_gid: false,
    };
    let err = engine
        .copy_to("verbs-archive", "/", &dir_over_file[..], &refused)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(
        engine
            .path_stat("verbs-archive", "/made")
            .unwrap()
            .is_regular()
    );
    engine
        .copy_to(
            "verbs-archive",
            "/",
            &dir_over_file[..],
            &CopyToOptions::default(),
        )
        .unwrap();
    assert!(engine.path_stat("verbs-archive", "/made").unwrap().is_dir());

    // changes: docker's kinds, parents first.
    let changes: Vec<(String, i64)> = engine
        .changes("verbs-archive")
        .unwrap()
        .into_iter()
        .map(|c| (c.path, c.kind as i64))
        .collect();
    for want in [
        ("/etc", 0),
        ("/etc/group", 2),
        ("/etclink", 1),
        ("/made", 1),
        ("/d", 1),
        ("/d/f", 1),
    ] {
        assert!(
            changes.contains(&(want.0.to_string(), want.1)),
            "{want:?} not in {changes:?}"
        );
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// Ends the whole run if a test is still going after `limit`: an attachment's reads
/// block, and a test must not hang the suite. Dropped (and its thread joined) when the
/// test ends.
struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn start(what: &'static str, limit: Duration) -> Watchdog {
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(limit) {
                eprintln!("{what}: still running after {limit:?}; giving up");
                std::process::exit(1);
            }
        });
        Watchdog {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Every frame until the end, and the end.
fn drain(reader: &mut basic_engine::AttachReader) -> (Vec<Frame>, Option<AttachEnd>) {
    let frames = reader.by_ref().map(|f| f.unwrap()).collect();
    (frames, reader.end())
}

/// The frames of `stream`, joined.
fn text(frames: &[Frame], stream: Stream) -> String {
    frames
        .iter()
        .filter(|f| f.stream == stream)
        .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
        .collect()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn attach_before_start(f: &Fixture) {
    let _watchdog = Watchdog::start("attach_before_start", Duration::from_secs(120));
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-attach-early"]);
    // It writes from its first instruction and is gone at once.
    let id = f.create(
        &engine,
        "verbs-attach-early",
        f.config(&["sh", "-c", "echo first; echo second >&2; exit 7"]),
    );
    let attached = engine
        .attach("verbs-attach-early", &AttachOptions::default())
        .unwrap();
    assert!(!attached.tty());
    let (mut reader, _writer) = attached.split();
    engine.start("verbs-attach-early").unwrap();
    let (frames, end) = drain(&mut reader);
    assert_eq!(text(&frames, Stream::Stdout), "first\n");
    assert_eq!(text(&frames, Stream::Stderr), "second\n");
    assert_eq!(end, Some(AttachEnd::Exited(7)));
    let dir = engine.container(&id).unwrap().paths.attach_dir();
    assert!(dir.as_os_str().len() > 108, "{}", dir.display());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("pending")), 0o700);
    // The supervisor is gone, and its socket with it; the exit was recorded as the
    // client saw it.
    assert_eq!(engine.wait("verbs-attach-early").unwrap(), 7);
    assert!(!dir.join("attach").exists());
    // Removing the container removes the directory.
    engine.remove("verbs-attach-early", false).unwrap();
    assert!(!dir.exists());
}

fn attach_stdin_once(f: &Fixture) {
    let _watchdog = Watchdog::start("attach_stdin_once", Duration::from_secs(120));
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-attach-cat"]);
    let mut config = f.config(&["cat"]);
    config.open_stdin = Some(true);
    config.stdin_once = Some(true);
    f.create(&engine, "verbs-attach-cat", config);
    let options = AttachOptions {
        stdin: true,
        ..Default::default()
    };
    let attached = engine.attach("verbs-attach-cat", &options).unwrap();
    assert!(attached.stdin());
    let (mut reader, mut writer) = attached.split();
    engine.start("verbs-attach-cat").unwrap();
    // Written from another thread while this one reads, as an API server does.
    let typing = std::thread::spawn(move || {
        assert_eq!(writer.send(b"hello\n").unwrap(), Sent::Delivered);
        assert_eq!(writer.send(b"world\n").unwrap(), Sent::Delivered);
        writer.close_stdin().unwrap();
    });
    let (frames, end) = drain(&mut reader);
    typing.join().unwrap();
    // cat saw the end of its input and exited.
    assert_eq!(text(&frames, Stream::Stdout), "hello\nworld\n");
    assert_eq!(end, Some(AttachEnd::Exited(0)));
}

/// docker's `printf 'a\nb\n' | docker run -i`: the client attaches before the start,
/// writes its input and half-closes at once, from one thread while another waits to read.
/// All of it must reach the container, and its end must close the container's stdin.
/// Which thread's first message reaches the supervisor first is up to the scheduler (the
/// input once overtook the client's hello and was dropped): it runs several rounds.
fn attach_input_before_start(f: &Fixture) {
    const ROUNDS: usize = 8;
    let engine = f.engine();
    let name = "verbs-attach-early-input";
    let _cleanup = Cleanup(f, vec![name]);
    for round in 0..ROUNDS {
        let mut config = f.config(&["sh", "-c", "cat; echo done"]);
        config.open_stdin = Some(true);
        config.stdin_once = Some(true);
        f.create(&engine, name, config);
        let options = AttachOptions {
            stdin: true,
            await_start: true,
            ..Default::default()
        };
        let attached = engine.attach(name, &options).unwrap();
        let (mut reader, mut writer) = attached.split();
        let (done, finished) = std::sync::mpsc::channel();
        // The reader waits for the start first (as the API server's output relay does),
        // then the writer queues behind it.
        let reading = std::thread::spawn(move || {
            let _ = done.send(drain(&mut reader));
        });
        std::thread::sleep(Duration::from_millis(50));
        let typing = std::thread::spawn(move || {
            let sent = writer.send(b"line one\nline two\n").unwrap();
            writer.close_stdin().unwrap();
            sent
        });
        std::thread::sleep(Duration::from_millis(50));
        engine.start(name).unwrap();
        let outcome = finished.recv_timeout(Duration::from_secs(30));
        if outcome.is_err() {
            // The container still waits for its input: removing it ends the threads.
            let _ = engine.remove(name, true);
        }
        let sent = typing.join().unwrap();
        reading.join().unwrap();
        let (frames, end) =
            outcome.unwrap_or_else(|_| panic!("round {round}: the input never reached cat"));
        assert_eq!(sent, Sent::Delivered, "round {round}");
        assert_eq!(
            text(&frames, Stream::Stdout),
            "line one\nline two\ndone\n",
            "round {round}"
        );
        assert_eq!(end, Some(AttachEnd::Exited(0)), "round {round}");
        engine.remove(name, true).unwrap();
    }
}

fn attach_running(f: &Fixture) {
    let _watchdog = Watchdog::start("attach_running", Duration::from_secs(120));
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-attach-two", "verbs-attach-tty"]);
    let mut config = f.config(&[
        "sh",
        "-c",
        "echo ready; while read line; do echo \"got $line\"; echo \"err $line\" >&2; done",
    ]);
    config.open_stdin = Some(true);
    f.create(&engine, "verbs-attach-two", config);
    engine.start("verbs-attach-two").unwrap();
    // The log is replayed first when asked: the line written before attaching.
    let wait_for_log = || {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut seen = false;
            engine
                .logs("verbs-attach-two", &LogOptions::default(), |_| {
                    seen = true;
                    Ok(())
                })
                .unwrap();
            if seen {
                return;
            }
            assert!(std::time::Instant::now() < until, "no log");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for_log();
    let with_log = AttachOptions {
        logs: true,
        stderr: false,
        ..Default::default()
    };
    let (mut first, _first_writer) = engine
        .attach("verbs-attach-two", &with_log)
        .unwrap()
        .split();
    let typist = AttachOptions {
        stdin: true,
        ..Default::default()
    };
    let (mut second, mut writer) = engine.attach("verbs-attach-two", &typist).unwrap().split();
    assert_eq!(
        first.next().unwrap().unwrap(),
        Frame {
            stream: Stream::Stdout,
            bytes: b"ready\n".to_vec()
        }
    );
    // Both see what the input made, each its own streams.
    assert_eq!(writer.send(b"one\n").unwrap(), Sent::Delivered);
    let mut seen = String::new();
    while !seen.contains("got one\n") {
        seen.push_str(&text(&[first.next().unwrap().unwrap()], Stream::Stdout));
    }
    let mut both = Vec::new();
    while !text(&both, Stream::Stdout).contains("got one\n")
        || !text(&both, Stream::Stderr).contains("err one\n")
    {
        both.push(second.next().unwrap().unwrap());
    }
    // Without a terminal the detach keys are input like any other (docker's rule).
    assert_eq!(writer.send(b"\x10\x11\n").unwrap(), Sent::Delivered);
    // Detaching one attachment leaves the other and the container.
    writer.detach();
    assert_eq!(drain(&mut second).1, Some(AttachEnd::Detached));
    assert!(matches!(
        engine.status(&engine.container("verbs-attach-two").unwrap()),
        Status::Running(_)
    ));
    engine
        .stop("verbs-attach-two", Duration::from_secs(1))
        .unwrap();
    let (frames, end) = drain(&mut first);
    assert!(
        text(&frames, Stream::Stdout).contains("got \x10\x11"),
        "{frames:?}"
    );
    assert!(matches!(end, Some(AttachEnd::Exited(_))), "{end:?}");

    // With a terminal, ctrl-p ctrl-q detach and are not typed.
    let mut config = f.config(&["sh"]);
    config.open_stdin = Some(true);
    config.tty = Some(true);
    f.create(&engine, "verbs-attach-tty", config);
    engine.start("verbs-attach-tty").unwrap();
    let attached = engine.attach("verbs-attach-tty", &typist).unwrap();
    assert!(attached.tty());
    let (mut output, mut input) = attached.split();
    engine
        .resize(
            "verbs-attach-tty",
            basic_runtime::terminal::WindowSize { rows: 31, cols: 97 },
        )
        .unwrap();
    assert_eq!(input.send(b"stty size\n").unwrap(), Sent::Delivered);
    let mut shown = String::new();
    while !shown.contains("31 97") {
        let frame = output.next().unwrap().unwrap();
        assert_eq!(frame.stream, Stream::Stdout, "one stream with a terminal");
        shown.push_str(&String::from_utf8_lossy(&frame.bytes));
    }
    assert_eq!(input.send(b"echo a\x10").unwrap(), Sent::Delivered);
    assert_eq!(input.send(b"\x11echo never\n").unwrap(), Sent::Detached);
    let (frames, end) = drain(&mut output);
    assert_eq!(end, Some(AttachEnd::Detached));
    assert!(!text(&frames, Stream::Stdout).contains("never"));
    // The shell runs on and got "echo a" without the keys.
    let (mut output, mut input) = engine.attach("verbs-attach-tty", &typist).unwrap().split();
    input.send(b"\nexit 4\n").unwrap();
    let (frames, end) = drain(&mut output);
    assert_eq!(end, Some(AttachEnd::Exited(4)), "{frames:?}");
    let mut log = String::new();
    engine
        .logs("verbs-attach-tty", &LogOptions::default(), |e| {
            log.push_str(&e.log);
            Ok(())
        })
        .unwrap();
    assert!(log.contains("echo a") && !log.contains("\u{10}"), "{log:?}");
    assert!(!log.contains("never"), "{log:?}");
}

fn attach_refusals(f: &Fixture) {
    let _watchdog = Watchdog::start("attach_refusals", Duration::from_secs(120));
    let engine = f.engine();
    let _cleanup = Cleanup(f, vec!["verbs-attach-done", "verbs-attach-paused"]);
    let missing = engine
        .attach("verbs-surely-not-there", &AttachOptions::default())
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound, "{missing}");
    f.create(&engine, "verbs-attach-done", f.config(&["true"]));
    engine.start("verbs-attach-done").unwrap();
    engine.wait("verbs-attach-done").unwrap();
    let stopped = engine
        .attach("verbs-attach-done", &AttachOptions::default())
        .unwrap_err();
    assert_eq!(stopped.kind(), ErrorKind::Conflict, "{stopped}");
    assert_eq!(
        stopped.to_string(),
        "You cannot attach to a stopped container, start it first"
    );
    // As the Docker API allows it: attached, it waits for the next start.
    let options = AttachOptions {
        await_start: true,
        ..Default::default()
    };
    let (mut reader, _w) = engine
        .attach("verbs-attach-done", &options)
        .unwrap()
        .split();
    engine.start("verbs-attach-done").unwrap();
    assert_eq!(drain(&mut reader), (Vec::new(), Some(AttachEnd::Exited(0))));
    f.create(&engine, "verbs-attach-paused", f.config(&["sleep", "1000"]));
    engine.start("verbs-attach-paused").unwrap();
    engine.pause("verbs-attach-paused").unwrap();
    let paused = engine
        .attach("verbs-attach-paused", &AttachOptions::default())
        .unwrap_err();
    assert_eq!(paused.kind(), ErrorKind::Conflict, "{paused}");
    assert!(paused.to_string().contains("unpause"), "{paused}");
    let bad = "ctrl-x,alt-y"
        .parse::<basic_engine::DetachKeys>()
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidArgument, "{bad}");
}
