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
    Attachment, CopyToOptions, CreateOptions, Engine, EngineError, EngineOptions, ErrorKind,
    EventOptions, ExecOptions, Filters, LogOptions, Status, SupervisorCommand,
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
    if args.get(1).map(String::as_str) == Some("supervise") {
        let engine = open(Path::new(&args[2]), Path::new(&args[3]));
        let code = engine
            .supervise(&args[4], Attachment::Detached)
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
        }),
    })
    .expect("opening the engine")
}

fn fixture(image: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let state = dir.path().join("state");
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
    let state = doc.state.unwrap();
    assert_eq!(state.exit_code, Some(3));
    assert_eq!(doc.name.as_deref(), Some("/verbs-runs"));
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
