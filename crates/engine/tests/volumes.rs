//! Volumes through the engine alone, on real containers (root, the registry harness):
//! named and anonymous volumes, copy-up from the image, `--volumes-from`, `rm -v` and
//! `--rm`, removal refused while in use, prune, filters, option volumes (tmpfs, bind), and
//! volumes surviving the engine being opened again.
//!
//! Like `verbs.rs`, this binary has its own `main`: it seals itself, serves as the
//! engine's detached supervisor (`volumes supervise ROOT STATE ID`), and runs each test in
//! turn in a process without other threads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use basic_engine::config::{ContainerConfig, HostConfig};
use basic_engine::mounts::parse_mount_flag;
use basic_engine::{
    Attachment, CreateOptions, Engine, EngineOptions, ErrorKind, LogOptions, RemoveOptions,
    SupervisorCommand, VolumeCreateRequest, VolumeFilters,
};
use basic_image_store::PullOptions;
use basic_registry::{Reference, RegistryClient};
use basic_test_support::image::ImageBuilder;

type Test = fn(&Fixture);

/// One store for the whole run, with busybox and an image with a `VOLUME` pulled.
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    state: PathBuf,
    busybox: String,
    /// busybox with `VOLUME /data`, `/data/seed` and `/data/sub/nested` in its layers.
    with_volume: String,
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
    let with_volume = ImageBuilder::busybox()
        .layer(|l| {
            l.dir("data", 0o750);
            l.file("data/seed", b"from-the-image\n", 0o644);
            l.dir("data/sub", 0o755);
            l.file("data/sub/nested", b"nested\n", 0o600);
        })
        .config("Volumes", serde_json::json!({"/data": {}}))
        .push(&harness.open, "volumes/with-volume");
    let fixture = fixture(&harness.reference("busybox_latest"), &with_volume);
    let filter: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let tests: &[(&str, Test)] = &[
        (
            "volumes_are_created_listed_inspected_and_removed_as_docker_does",
            verbs,
        ),
        (
            "volumes_and_their_data_persist_across_a_reopen",
            persistence,
        ),
        (
            "data_written_by_one_container_is_read_by_the_next",
            shared_data,
        ),
        ("copy_up_fills_a_new_volume_from_the_image_once", copy_up),
        (
            "anonymous_volumes_for_image_volumes_go_with_rm_v_and_auto_remove",
            anonymous,
        ),
        (
            "volumes_from_mounts_the_other_containers_volumes",
            volumes_from,
        ),
        ("a_volume_in_use_is_not_removed_and_loses_nothing", in_use),
        (
            "prune_removes_unused_volumes_without_options_as_docker_20_10",
            prune,
        ),
        (
            "option_volumes_are_mounted_while_containers_use_them",
            option_volumes,
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
            program: "/proc/self/exe".into(),
            arg0: "volumes".into(),
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

fn fixture(busybox: &str, with_volume: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let state = dir.path().join("state");
    let engine = open(&root, &state);
    // The harness is on 127.0.0.1: plain HTTP, as docker's rule says.
    let client = RegistryClient::builder().build().unwrap();
    // A runtime of one thread, gone before any container is forked.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for image in [busybox, with_volume] {
        runtime
            .block_on(basic_image_store::pull(
                engine.store(),
                &client,
                &Reference::parse(image).unwrap(),
                &PullOptions::default(),
                |_| {},
            ))
            .unwrap_or_else(|e| panic!("pulling {image} from the harness: {e}"));
    }
    Fixture {
        _dir: dir,
        root,
        state,
        busybox: busybox.to_string(),
        with_volume: with_volume.to_string(),
    }
}

impl Fixture {
    fn engine(&self) -> Engine {
        open(&self.root, &self.state)
    }

    fn config(&self, image: &str, cmd: &str, host: HostConfig) -> ContainerConfig {
        ContainerConfig {
            image: Some(image.to_string()),
            cmd: Some(vec!["sh".into(), "-c".into(), cmd.into()]),
            host_config: Some(HostConfig {
                network_mode: Some("none".into()),
                ..host
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

    /// Creates, starts and waits for `name`; returns its exit code and what it printed.
    fn run(&self, engine: &Engine, name: &str, config: ContainerConfig) -> (i32, String) {
        self.create(engine, name, config);
        engine.start(name).unwrap();
        let code = engine.wait(name).unwrap();
        (code, output(engine, name))
    }
}

/// Both streams of `name`'s log.
fn output(engine: &Engine, name: &str) -> String {
    let mut text = String::new();
    engine
        .logs(name, &LogOptions::default(), |entry| {
            text.push_str(&entry.log);
            Ok(())
        })
        .unwrap();
    text
}

/// Polls `done` for up to 30 s.
fn until(mut done: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    done()
}

fn binds(list: &[&str]) -> HostConfig {
    HostConfig {
        binds: Some(list.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

/// Removes the named containers (and then volumes) however a test ends.
struct Cleanup<'a> {
    fixture: &'a Fixture,
    containers: Vec<&'a str>,
    volumes: Vec<String>,
}

impl<'a> Cleanup<'a> {
    fn new(fixture: &'a Fixture, containers: &[&'a str], volumes: &[&str]) -> Self {
        Cleanup {
            fixture,
            containers: containers.to_vec(),
            volumes: volumes.iter().map(|v| v.to_string()).collect(),
        }
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let engine = self.fixture.engine();
        for name in &self.containers {
            let _ = engine.remove_with(
                name,
                &RemoveOptions {
                    force: true,
                    volumes: true,
                },
            );
        }
        for volume in &self.volumes {
            let _ = engine.remove_volume(volume, true);
        }
    }
}

fn request(
    name: Option<&str>,
    labels: &[(&str, &str)],
    options: &[(&str, &str)],
) -> VolumeCreateRequest {
    let map = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    VolumeCreateRequest {
        name: name.map(str::to_string),
        driver: Some("local".into()),
        driver_opts: Some(map(options)),
        labels: Some(map(labels)),
        cluster_volume_spec: None,
    }
}

fn names(engine: &Engine, filters: &[&str]) -> Vec<String> {
    let filters: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
    engine
        .volumes(&VolumeFilters::parse(&filters).unwrap())
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .filter(|n| n.starts_with("ev-") || n.len() == 64)
        .collect()
}

/// The names of the volumes directory's entries (what exists on disk).
fn on_disk(f: &Fixture) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(f.root.join("volumes"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn verbs(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup::new(f, &[], &["ev-db", "ev-tmp"]);
    let db = engine
        .create_volume(&request(Some("ev-db"), &[("team", "data")], &[]))
        .unwrap();
    assert_eq!(db.name, "ev-db");
    assert_eq!(db.driver, "local");
    assert_eq!(
        Path::new(&db.mountpoint),
        f.root.join("volumes/ev-db/_data")
    );
    assert!(Path::new(&db.mountpoint).is_dir());
    assert_eq!(db.labels["team"], "data");
    let created = db.created_at.clone().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    // docker returns an existing volume as it is.
    let again = engine
        .create_volume(&request(Some("ev-db"), &[("other", "x")], &[]))
        .unwrap();
    assert_eq!(again, db);
    let anonymous = engine.create_volume(&request(None, &[], &[])).unwrap();
    assert_eq!(anonymous.name.len(), 64);
    assert!(anonymous.name.bytes().all(|b| b.is_ascii_hexdigit()));
    let tmp = engine
        .create_volume(&request(
            Some("ev-tmp"),
            &[],
            &[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")],
        ))
        .unwrap();
    assert_eq!(tmp.options["type"], "tmpfs");
    assert_eq!(engine.volume("ev-tmp").unwrap(), tmp);
    let before = on_disk(f);
    for (name, says) in [
        ("../escape", "includes invalid characters"),
        ("/etc", "includes invalid characters"),
        ("a", "too short"),
        (".hidden", "includes invalid characters"),
    ] {
        let e = engine
            .create_volume(&request(Some(name), &[], &[]))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name}: {e}");
        assert!(e.to_string().contains(says), "{name}: {e}");
    }
    for (options, says) in [
        (&[("foo", "bar")][..], "invalid option: \"foo\""),
        (
            &[("type", "tmpfs")][..],
            "missing required option: \"device\"",
        ),
        (&[("size", "10m")][..], "quota"),
    ] {
        let e = engine
            .create_volume(&request(Some("ev-bad"), &[], options))
            .unwrap_err();
        assert!(e.to_string().contains(says), "{options:?}: {e}");
    }
    let mut other = request(Some("ev-bad"), &[], &[]);
    other.driver = Some("rexray".into());
    let e = engine.create_volume(&other).unwrap_err();
    assert!(e.to_string().contains("plugin \"rexray\" not found"), "{e}");
    assert_eq!(on_disk(f), before, "nothing made by the refused creates");
    assert!(!f.root.join("escape").exists() && !f.root.join("volumes/escape").exists());
    // ls and its filters.
    let mut all = names(&engine, &[]);
    all.sort();
    let mut expected = vec!["ev-db".to_string(), "ev-tmp".into(), anonymous.name.clone()];
    expected.sort();
    assert_eq!(all, expected);
    assert_eq!(names(&engine, &["label=team=data"]), ["ev-db"]);
    assert_eq!(names(&engine, &["name=ev-t"]), ["ev-tmp"]);
    assert_eq!(names(&engine, &["dangling=false"]), Vec::<String>::new());
    // Unknown names, and names that are paths, are not found and touch nothing.
    for name in ["ev-nope", "../../etc", "/etc"] {
        let e = engine.volume(name).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{name}: {e}");
        assert_eq!(e.to_string(), format!("No such volume: {name}"));
        let e = engine.remove_volume(name, false).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{name}: {e}");
        engine.remove_volume(name, true).unwrap();
    }
    engine.remove_volume(&anonymous.name, false).unwrap();
    engine.remove_volume("ev-db", false).unwrap();
    assert_eq!(names(&engine, &[]), ["ev-tmp"]);
    assert!(!f.root.join("volumes/ev-db").exists());
}

fn persistence(f: &Fixture) {
    let _cleanup = Cleanup::new(f, &[], &["ev-kept"]);
    let made = {
        let engine = f.engine();
        let v = engine
            .create_volume(&request(
                Some("ev-kept"),
                &[("keep", "yes")],
                &[("type", "tmpfs"), ("device", "tmpfs")],
            ))
            .unwrap();
        std::fs::write(Path::new(&v.mountpoint).join("note"), "still here").unwrap();
        v
    };
    // A new engine on the same store: a command run later.
    let engine = f.engine();
    assert_eq!(engine.volume("ev-kept").unwrap(), made);
    assert!(names(&engine, &["label=keep=yes"]).contains(&"ev-kept".to_string()));
    assert_eq!(
        std::fs::read_to_string(Path::new(&made.mountpoint).join("note")).unwrap(),
        "still here"
    );
}

fn shared_data(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup::new(f, &["ev-writer", "ev-reader"], &["ev-shared"]);
    let (code, out) = f.run(
        &engine,
        "ev-writer",
        f.config(
            &f.busybox,
            "echo written-by-the-first > /data/note",
            binds(&["ev-shared:/data"]),
        ),
    );
    assert_eq!(code, 0, "{out}");
    // The named volume was created by the container's create.
    let volume = engine.volume("ev-shared").unwrap();
    assert_eq!(
        std::fs::read_to_string(Path::new(&volume.mountpoint).join("note")).unwrap(),
        "written-by-the-first\n"
    );
    let (code, out) = f.run(
        &engine,
        "ev-reader",
        f.config(&f.busybox, "cat /srv/note", binds(&["ev-shared:/srv:ro"])),
    );
    assert_eq!((code, out.as_str()), (0, "written-by-the-first\n"));
    let doc = engine.inspect("ev-reader").unwrap();
    let mounts = serde_json::to_value(doc.base.mounts.unwrap()).unwrap();
    assert_eq!(
        mounts,
        serde_json::json!([{
            "Type": "volume", "Name": "ev-shared", "Source": volume.mountpoint,
            "Destination": "/srv", "Driver": "local", "Mode": "ro", "RW": false,
            "Propagation": ""
        }])
    );
    let (code, out) = f.run(
        &engine,
        "ev-reader-2",
        f.config(&f.busybox, "touch /srv/x", binds(&["ev-shared:/srv:ro"])),
    );
    let _more = Cleanup::new(f, &["ev-reader-2"], &[]);
    assert_ne!(code, 0, "a read-only volume is read-only: {out}");
}

fn copy_up(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup::new(
        f,
        &["ev-copy-1", "ev-copy-2", "ev-nocopy", "ev-copy-mount"],
        &["ev-fresh", "ev-empty", "ev-mounted"],
    );
    let (code, out) = f.run(
        &engine,
        "ev-copy-1",
        f.config(
            &f.with_volume,
            "cat /data/seed /data/sub/nested; stat -c %a /data /data/sub/nested",
            binds(&["ev-fresh:/data"]),
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out, "from-the-image\nnested\n750\n600\n",
        "content, and the image's modes"
    );
    // Once filled, a volume is not filled again: what containers did to it stays.
    let data = PathBuf::from(engine.volume("ev-fresh").unwrap().mountpoint);
    std::fs::remove_file(data.join("seed")).unwrap();
    std::fs::write(data.join("mine"), "kept").unwrap();
    let (code, out) = f.run(
        &engine,
        "ev-copy-2",
        f.config(&f.with_volume, "ls /data", binds(&["ev-fresh:/data"])),
    );
    assert_eq!((code, out.as_str()), (0, "mine\nsub\n"));
    // nocopy: the volume stays empty.
    let (code, out) = f.run(
        &engine,
        "ev-nocopy",
        f.config(
            &f.with_volume,
            "ls -A /data; echo end",
            binds(&["ev-empty:/data:nocopy"]),
        ),
    );
    assert_eq!((code, out.as_str()), (0, "end\n"));
    // --mount's volume-nocopy too; without it, copy-up into a path busybox has (/etc).
    let host = HostConfig {
        mounts: Some(vec![
            parse_mount_flag("source=ev-mounted,target=/etc").unwrap(),
            parse_mount_flag("type=volume,target=/data,volume-nocopy").unwrap(),
        ]),
        ..Default::default()
    };
    let (code, out) = f.run(
        &engine,
        "ev-copy-mount",
        f.config(
            &f.with_volume,
            "grep -c root /etc/passwd; ls -A /data; echo end",
            host,
        ),
    );
    assert_eq!((code, out.as_str()), (0, "1\nend\n"));
}

fn anonymous(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup::new(f, &["ev-anon", "ev-anon-rm"], &["ev-named-stays"]);
    let mut config = f.config(
        &f.with_volume,
        "cat /data/seed; echo x > /extra/y",
        binds(&["ev-named-stays:/named"]),
    );
    config.volumes = Some(vec!["/extra".into()]);
    let (code, out) = f.run(&engine, "ev-anon", config);
    assert_eq!((code, out.as_str()), (0, "from-the-image\n"));
    let c = engine.container("ev-anon").unwrap();
    let anonymous: Vec<String> = c
        .config
        .mounts
        .iter()
        .filter(|m| m.anonymous)
        .map(|m| m.name.clone().unwrap())
        .collect();
    assert_eq!(
        anonymous.len(),
        2,
        "/data from the image, /extra from Config.Volumes"
    );
    let doc =
        serde_json::to_value(engine.inspect("ev-anon").unwrap().base.mounts.unwrap()).unwrap();
    let data = doc
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/data")
        .unwrap();
    assert_eq!(data["Type"], "volume");
    assert_eq!(data["Mode"], "");
    assert_eq!(data["Name"].as_str().unwrap().len(), 64);
    for name in &anonymous {
        engine.volume(name).unwrap();
    }
    // rm without -v keeps them; the container's record goes either way.
    engine.remove("ev-anon", false).unwrap();
    for name in &anonymous {
        engine.volume(name).unwrap();
        engine.remove_volume(name, false).unwrap();
    }
    // rm -v removes the anonymous ones and keeps the named one.
    let config = f.config(&f.with_volume, "true", binds(&["ev-named-stays:/named"]));
    f.run(&engine, "ev-anon", config);
    let anonymous = anonymous_of(&engine, "ev-anon");
    engine
        .remove_with(
            "ev-anon",
            &RemoveOptions {
                force: false,
                volumes: true,
            },
        )
        .unwrap();
    for name in &anonymous {
        assert_eq!(engine.volume(name).unwrap_err().kind(), ErrorKind::NotFound);
    }
    engine.volume("ev-named-stays").unwrap();
    // --rm (AutoRemove): the same when the container ends.
    let mut config = f.config(&f.with_volume, "true", binds(&["ev-named-stays:/named"]));
    config.host_config.as_mut().unwrap().auto_remove = Some(true);
    f.create(&engine, "ev-anon-rm", config);
    let anonymous = anonymous_of(&engine, "ev-anon-rm");
    engine.start("ev-anon-rm").unwrap();
    let gone = until(|| engine.container("ev-anon-rm").is_err());
    assert!(gone, "the --rm container was not removed");
    for name in &anonymous {
        assert_eq!(
            engine.volume(name).unwrap_err().kind(),
            ErrorKind::NotFound,
            "{name}"
        );
    }
    engine.volume("ev-named-stays").unwrap();
}

fn anonymous_of(engine: &Engine, container: &str) -> Vec<String> {
    let names: Vec<String> = engine
        .container(container)
        .unwrap()
        .config
        .mounts
        .iter()
        .filter(|m| m.anonymous)
        .filter_map(|m| m.name.clone())
        .collect();
    assert!(!names.is_empty(), "{container} has no anonymous volume");
    names
}

fn volumes_from(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup::new(
        f,
        &["ev-from-src", "ev-from-ro", "ev-from-rw"],
        &["ev-from-named"],
    );
    let (code, out) = f.run(
        &engine,
        "ev-from-src",
        f.config(
            &f.with_volume,
            "echo shared > /named/file; echo mine > /data/own",
            binds(&["ev-from-named:/named"]),
        ),
    );
    assert_eq!(code, 0, "{out}");
    let mut config = f.config(
        &f.busybox,
        "cat /named/file /data/own /data/seed; touch /named/no 2>/dev/null || echo read-only",
        HostConfig::default(),
    );
    config.host_config.as_mut().unwrap().volumes_from = Some(vec!["ev-from-src:ro".into()]);
    let (code, out) = f.run(&engine, "ev-from-ro", config);
    assert_eq!(
        (code, out.as_str()),
        (0, "shared\nmine\nfrom-the-image\nread-only\n")
    );
    let mounts = engine.container("ev-from-ro").unwrap().config.mounts;
    assert!(
        mounts.iter().all(|m| !m.read_write && m.mode == "ro"),
        "{mounts:?}"
    );
    let mut config = f.config(
        &f.busybox,
        "echo more >> /named/file",
        HostConfig::default(),
    );
    config.host_config.as_mut().unwrap().volumes_from = Some(vec!["ev-from-src".into()]);
    assert_eq!(f.run(&engine, "ev-from-rw", config).0, 0);
    // rm -v of a container that inherited an anonymous volume leaves it to its owner.
    let anonymous = anonymous_of(&engine, "ev-from-src");
    for name in ["ev-from-ro", "ev-from-rw"] {
        engine
            .remove_with(
                name,
                &RemoveOptions {
                    force: false,
                    volumes: true,
                },
            )
            .unwrap();
    }
    for name in &anonymous {
        engine.volume(name).unwrap();
    }
    engine
        .remove_with(
            "ev-from-src",
            &RemoveOptions {
                force: false,
                volumes: true,
            },
        )
        .unwrap();
    for name in &anonymous {
        assert_eq!(engine.volume(name).unwrap_err().kind(), ErrorKind::NotFound);
    }
    let data = PathBuf::from(engine.volume("ev-from-named").unwrap().mountpoint);
    assert_eq!(
        std::fs::read_to_string(data.join("file")).unwrap(),
        "shared\nmore\n"
    );
    let mut config = f.config(&f.busybox, "true", HostConfig::default());
    config.host_config.as_mut().unwrap().volumes_from = Some(vec!["ev-no-such".into()]);
    let e = engine
        .create(config, &CreateOptions::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

fn in_use(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup::new(f, &["ev-user"], &["ev-busy"]);
    let id = f.create(
        &engine,
        "ev-user",
        f.config(
            &f.busybox,
            "echo precious > /data/file",
            binds(&["ev-busy:/data"]),
        ),
    );
    engine.start("ev-user").unwrap();
    engine.wait("ev-user").unwrap();
    // Stopped, it still uses the volume, as in docker 20.10.
    let e = engine.remove_volume("ev-busy", false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    assert_eq!(
        e.to_string(),
        format!("remove ev-busy: volume is in use - [{id}]")
    );
    let e = engine.remove_volume("ev-busy", true).unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::Conflict,
        "force does not take a used volume: {e}"
    );
    let report = engine.prune_volumes(&VolumeFilters::default()).unwrap();
    assert!(
        !report.deleted.contains(&"ev-busy".to_string()),
        "{report:?}"
    );
    assert!(
        names(&engine, &["dangling=true"])
            .iter()
            .all(|n| n != "ev-busy")
    );
    let data = PathBuf::from(engine.volume("ev-busy").unwrap().mountpoint);
    assert_eq!(
        std::fs::read_to_string(data.join("file")).unwrap(),
        "precious\n"
    );
    engine.remove("ev-user", false).unwrap();
    assert!(names(&engine, &["dangling=true"]).contains(&"ev-busy".to_string()));
    engine.remove_volume("ev-busy", false).unwrap();
}

fn prune(f: &Fixture) {
    let engine = f.engine();
    let _cleanup = Cleanup::new(
        f,
        &["ev-prune-user"],
        &["ev-p-keep", "ev-p-gone", "ev-p-used", "ev-p-opts"],
    );
    engine
        .create_volume(&request(Some("ev-p-keep"), &[("keep", "yes")], &[]))
        .unwrap();
    let gone = engine
        .create_volume(&request(Some("ev-p-gone"), &[], &[]))
        .unwrap();
    std::fs::write(
        Path::new(&gone.mountpoint).join("twelve-bytes"),
        "0123456789ab",
    )
    .unwrap();
    engine
        .create_volume(&request(
            Some("ev-p-opts"),
            &[],
            &[("type", "tmpfs"), ("device", "tmpfs")],
        ))
        .unwrap();
    f.create(
        &engine,
        "ev-prune-user",
        f.config(&f.busybox, "true", binds(&["ev-p-used:/u"])),
    );
    let e = engine
        .prune_volumes(&VolumeFilters::parse(&["dangling=true".into()]).unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let report = engine
        .prune_volumes(&VolumeFilters::parse(&["label!=keep".into()]).unwrap())
        .unwrap();
    let mut deleted: Vec<&String> = report
        .deleted
        .iter()
        .filter(|n| n.starts_with("ev-"))
        .collect();
    deleted.sort();
    assert_eq!(deleted, ["ev-p-gone"]);
    assert!(report.reclaimed >= 12, "{report:?}");
    let left = names(&engine, &["name=ev-p-"]);
    assert_eq!(left, ["ev-p-keep", "ev-p-opts", "ev-p-used"]);
    let report = engine
        .prune_volumes(&VolumeFilters::parse(&["label=keep=yes".into()]).unwrap())
        .unwrap();
    assert_eq!(report.deleted, ["ev-p-keep"]);
}

fn option_volumes(f: &Fixture) {
    let engine = f.engine();
    let host_dir = tempfile::tempdir().unwrap();
    let _cleanup = Cleanup::new(
        f,
        &["ev-tmpfs-1", "ev-tmpfs-2", "ev-bound"],
        &["ev-tmpfs", "ev-bind"],
    );
    let tmpfs = engine
        .create_volume(&request(
            Some("ev-tmpfs"),
            &[],
            &[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=2m,mode=0755"),
            ],
        ))
        .unwrap();
    let (code, out) = f.run(
        &engine,
        "ev-tmpfs-1",
        f.config(
            &f.busybox,
            "grep ' /t ' /proc/self/mounts | cut -d' ' -f3; echo x > /t/f; ls /t",
            binds(&["ev-tmpfs:/t"]),
        ),
    );
    assert_eq!((code, out.as_str()), (0, "tmpfs\nf\n"));
    // The supervisor unmounts it after the container's exit, which `wait` returns at.
    assert!(
        until(|| !basic_mountinfo::is_mount_point(Path::new(&tmpfs.mountpoint)).unwrap()),
        "unmounted after its only user stopped"
    );
    // As in docker, a tmpfs volume's data lives while a container uses it.
    let (code, out) = f.run(
        &engine,
        "ev-tmpfs-2",
        f.config(&f.busybox, "ls -A /t; echo end", binds(&["ev-tmpfs:/t"])),
    );
    assert_eq!((code, out.as_str()), (0, "end\n"));
    let device = host_dir.path().display().to_string();
    engine
        .create_volume(&request(
            Some("ev-bind"),
            &[],
            &[("type", "none"), ("device", &device), ("o", "bind")],
        ))
        .unwrap();
    let (code, out) = f.run(
        &engine,
        "ev-bound",
        f.config(
            &f.busybox,
            "echo through-the-volume > /b/file",
            binds(&["ev-bind:/b"]),
        ),
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        std::fs::read_to_string(host_dir.path().join("file")).unwrap(),
        "through-the-volume\n"
    );
    engine.remove("ev-bound", false).unwrap();
    engine.remove_volume("ev-bind", false).unwrap();
    assert_eq!(
        std::fs::read_to_string(host_dir.path().join("file")).unwrap(),
        "through-the-volume\n",
        "removing a bind volume leaves the host directory's files"
    );
}
