//! `volume create|ls|inspect|rm|prune` and volumes in `run` (`-v NAME:/path`, `-v /path`,
//! `--mount`, `--volumes-from`, `rm -v`, `--rm`) as a user runs them, with docker's
//! output, on real containers.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use common::{Cleanup, basic_docker, busybox_store, ok, with_stdin};

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A name no other test or run uses.
fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes volumes however a test ends (after the containers' [`Cleanup`]).
struct Volumes<'a>(&'a Path, Vec<String>);

impl Drop for Volumes<'_> {
    fn drop(&mut self) {
        for v in &self.1 {
            let _ = basic_docker(self.0, &["volume", "rm", "-f", v]);
        }
    }
}

/// The document `volume inspect NAME` prints.
fn inspect_volume(root: &Path, name: &str) -> serde_json::Value {
    let text = ok(basic_docker(root, &["volume", "inspect", name]));
    let mut all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[0].take()
}

/// `inspect CONTAINER`'s `Mounts`.
fn mounts_of(root: &Path, container: &str) -> serde_json::Value {
    let text = ok(basic_docker(root, &["inspect", container]));
    let mut all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[0]["Mounts"].take()
}

#[test]
fn volume_verbs_print_what_docker_prints() {
    // A store of its own: `ls` shows exactly what this test made.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert_eq!(
        ok(basic_docker(root, &["volume", "create", "data"])),
        "data"
    );
    assert_eq!(
        ok(basic_docker(
            root,
            &[
                "volume",
                "create",
                "--name",
                "web-cache",
                "--label",
                "team=web",
                "--label",
                "tier",
                "-o",
                "type=tmpfs",
                "-o",
                "device=tmpfs",
                "-o",
                "o=size=1m"
            ]
        )),
        "web-cache"
    );
    let anonymous = ok(basic_docker(root, &["volume", "create"]));
    assert_eq!(anonymous.len(), 64, "{anonymous}");
    // Again: the existing volume, unchanged.
    assert_eq!(
        ok(basic_docker(
            root,
            &["volume", "create", "--label", "new=1", "data"]
        )),
        "data"
    );
    let listing = out(&basic_docker(root, &["volume", "ls"]));
    // docker's CLI lists volumes by name.
    let mut names = [
        anonymous.clone(),
        "data".to_string(),
        "web-cache".to_string(),
    ];
    names.sort();
    let rows: String = names.iter().map(|n| format!("local     {n}\n")).collect();
    assert_eq!(listing, format!("DRIVER    VOLUME NAME\n{rows}"));
    assert_eq!(
        out(&basic_docker(
            root,
            &["volume", "ls", "-q", "-f", "label=team=web"]
        )),
        "web-cache\n"
    );
    assert_eq!(
        out(&basic_docker(
            root,
            &["volume", "ls", "-q", "--filter", "name=dat"]
        )),
        "data\n"
    );
    assert_eq!(
        out(&basic_docker(
            root,
            &[
                "volume",
                "ls",
                "-q",
                "-f",
                "dangling=true",
                "-f",
                "label=tier"
            ]
        )),
        "web-cache\n"
    );
    let bad = basic_docker(root, &["volume", "ls", "-f", "colour=red"]);
    assert!(
        !bad.status.success() && err(&bad).contains("Invalid filter 'colour'"),
        "{}",
        err(&bad)
    );
    // inspect: docker's array, keys in docker's order, indented by four.
    let text = out(&basic_docker(root, &["volume", "inspect", "web-cache"]));
    assert!(
        text.starts_with("[\n    {\n        \"CreatedAt\": \""),
        "{text}"
    );
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let keys: Vec<&String> = doc[0].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "CreatedAt",
            "Driver",
            "Labels",
            "Mountpoint",
            "Name",
            "Options",
            "Scope"
        ]
    );
    assert_eq!(
        doc[0]["Labels"],
        serde_json::json!({"team": "web", "tier": ""})
    );
    assert_eq!(
        doc[0]["Options"],
        serde_json::json!({"device": "tmpfs", "o": "size=1m", "type": "tmpfs"})
    );
    assert_eq!(doc[0]["Scope"], "local");
    assert_eq!(
        PathBuf::from(doc[0]["Mountpoint"].as_str().unwrap()),
        root.join("volumes/web-cache/_data")
    );
    let missing = basic_docker(root, &["volume", "inspect", "data", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(err(&missing), "Error: No such volume: nope\n");
    let shown: serde_json::Value = serde_json::from_str(&out(&missing)).unwrap();
    assert_eq!(
        shown.as_array().unwrap().len(),
        1,
        "the found one is printed"
    );
    for (args, says) in [
        (&["volume", "create", "x"][..], "volume name is too short"),
        (
            &["volume", "create", "bad/name"][..],
            "includes invalid characters",
        ),
        (
            &["volume", "create", "--name", "a1", "b1"][..],
            "conflicting options",
        ),
        (
            &["volume", "create", "-d", "convoy", "c1"][..],
            "plugin \"convoy\" not found",
        ),
        (
            &["volume", "create", "-o", "type=tmpfs", "c2"][..],
            "missing required option: \"device\"",
        ),
        (
            &["volume", "create", "-o", "colour=red", "c3"][..],
            "invalid option: \"colour\"",
        ),
    ] {
        let o = basic_docker(root, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(err(&o).contains(says), "{args:?}: {}", err(&o));
    }
    // rm prints each name it removed; a missing one is an error unless -f.
    let o = basic_docker(root, &["volume", "rm", "data", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o), "data\n");
    assert_eq!(err(&o), "Error: No such volume: nope\n");
    let o = basic_docker(root, &["volume", "rm", "-f", "nope", &anonymous]);
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), format!("nope\n{anonymous}\n"));
    assert_eq!(
        out(&basic_docker(root, &["volume", "ls", "-q"])),
        "web-cache\n"
    );
}

#[test]
fn a_named_volume_keeps_data_between_containers_and_is_not_removed_while_used() {
    let Some((dir, image)) = busybox_store() else {
        return;
    };
    let root = dir.path();
    let (writer, volume) = (unique("vol-writer"), unique("vol-named"));
    let _volumes = Volumes(root, vec![volume.clone()]);
    let _cleanup = Cleanup::new(root, &[&writer]);
    let at_data = format!("{volume}:/data");
    ok(basic_docker(
        root,
        &[
            "run",
            "--name",
            &writer,
            "--network",
            "none",
            "-v",
            &at_data,
            image,
            "sh",
            "-c",
            "echo kept-by-the-volume > /data/note",
        ],
    ));
    let read = |flags: &[&str]| -> Output {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[image.as_str(), "cat", "/v/note"]);
        basic_docker(root, &args)
    };
    let ro = format!("{volume}:/v:ro");
    assert_eq!(ok(read(&["-v", &ro])), "kept-by-the-volume");
    // docker's message, exit 1, and nothing lost.
    let doc: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["inspect", &writer]))).unwrap();
    let id = doc[0]["Id"].as_str().unwrap().to_string();
    let o = basic_docker(root, &["volume", "rm", &volume]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!("Error response from daemon: remove {volume}: volume is in use - [{id}]\n")
    );
    let mount = format!("type=volume,source={volume},target=/v,readonly");
    assert_eq!(ok(read(&["--mount", &mount])), "kept-by-the-volume");
    let o = read(&["--mount", &mount, "--entrypoint", "touch"]);
    assert!(!o.status.success(), "a readonly mount is read-only");
    ok(basic_docker(root, &["rm", &writer]));
    assert_eq!(ok(basic_docker(root, &["volume", "rm", &volume])), volume);
}

#[test]
fn mount_and_volumes_from_share_a_containers_volumes() {
    let Some((dir, image)) = busybox_store() else {
        return;
    };
    let root = dir.path();
    let (source, volume) = (unique("vol-source"), unique("vol-shared"));
    let _volumes = Volumes(root, vec![volume.clone()]);
    let _cleanup = Cleanup::new(root, &[&source]);
    let mount = format!("type=volume,src={volume},dst=/shared,volume-label=made-by=mount");
    ok(basic_docker(
        root,
        &[
            "run",
            "--name",
            &source,
            "--network",
            "none",
            "--mount",
            &mount,
            "-v",
            "/scratch",
            image,
            "sh",
            "-c",
            "echo from-source > /shared/f; echo anon > /scratch/g",
        ],
    ));
    assert_eq!(inspect_volume(root, &volume)["Labels"]["made-by"], "mount");
    let from = format!("{source}:ro");
    let o = basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--volumes-from",
            &from,
            image,
            "sh",
            "-c",
            "cat /shared/f /scratch/g; touch /shared/x 2>/dev/null || echo read-only",
        ],
    );
    assert_eq!(ok(o), "from-source\nanon\nread-only");
    let mounts = mounts_of(root, &source);
    let shared = mounts
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/shared")
        .unwrap();
    assert_eq!(shared["Type"], "volume");
    assert_eq!(shared["Name"], volume.as_str());
    assert_eq!(shared["Mode"], "z");
    assert_eq!(shared["RW"], true);
    let o = basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "vol-no-such-container",
            image,
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains("No such container: vol-no-such-container"),
        "{}",
        err(&o)
    );
}

/// Polls `done` for up to 30 s.
fn until(mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_with_rm_and_named_ones_stay() {
    let Some((dir, image)) = busybox_store() else {
        return;
    };
    let root = dir.path();
    let (kept, plain, auto, named) = (
        unique("vol-kept"),
        unique("vol-rm-v"),
        unique("vol-auto"),
        unique("vol-stays"),
    );
    let _volumes = Volumes(root, vec![named.clone()]);
    let _cleanup = Cleanup::new(root, &[&kept, &plain, &auto]);
    let at_named = format!("{named}:/named");
    let anonymous_of = |container: &str| -> String {
        let mounts = mounts_of(root, container);
        let anon = mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == "/anon")
            .unwrap_or_else(|| panic!("{mounts}"));
        assert_eq!(anon["Mode"], "");
        anon["Name"].as_str().unwrap().to_string()
    };
    let exists = |volume: &str| {
        basic_docker(root, &["volume", "inspect", volume])
            .status
            .success()
    };
    for name in [&kept, &plain] {
        ok(basic_docker(
            root,
            &[
                "create",
                "--name",
                name,
                "--network",
                "none",
                "-v",
                "/anon",
                "-v",
                &at_named,
                image,
                "true",
            ],
        ));
    }
    let (kept_anon, plain_anon) = (anonymous_of(&kept), anonymous_of(&plain));
    ok(basic_docker(root, &["rm", &kept]));
    assert!(
        exists(&kept_anon),
        "rm without -v keeps the anonymous volume"
    );
    ok(basic_docker(root, &["volume", "rm", &kept_anon]));
    assert_eq!(ok(basic_docker(root, &["rm", "-v", &plain])), plain);
    assert!(!exists(&plain_anon), "rm -v removes the anonymous volume");
    assert!(exists(&named), "rm -v keeps the named volume");
    ok(basic_docker(
        root,
        &[
            "run",
            "-d",
            "--rm",
            "--name",
            &auto,
            "--network",
            "none",
            "-v",
            "/anon",
            "-v",
            &at_named,
            image,
            "sleep",
            "1000",
        ],
    ));
    let auto_anon = anonymous_of(&auto);
    assert!(exists(&auto_anon));
    ok(basic_docker(root, &["stop", "-t", "0", &auto]));
    assert!(
        until(|| !exists(&auto_anon)),
        "--rm removes the anonymous volume"
    );
    assert!(exists(&named), "--rm keeps the named volume");
}

#[test]
fn a_new_volume_is_filled_from_the_image_unless_nocopy() {
    let Some((dir, image)) = busybox_store() else {
        return;
    };
    let root = dir.path();
    let (filled, empty) = (unique("vol-filled"), unique("vol-empty"));
    let _volumes = Volumes(root, vec![filled.clone(), empty.clone()]);
    let at_etc = format!("{filled}:/etc");
    let o = basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &at_etc,
            image,
            "grep",
            "-c",
            "^root:",
            "/etc/passwd",
        ],
    );
    assert_eq!(ok(o), "1");
    let data = PathBuf::from(
        inspect_volume(root, &filled)["Mountpoint"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    assert!(
        std::fs::read_to_string(data.join("passwd"))
            .unwrap()
            .starts_with("root:"),
        "the image's /etc/passwd is in the volume"
    );
    let nocopy = format!("{empty}:/etc:nocopy");
    let o = basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &nocopy,
            image,
            "sh",
            "-c",
            "ls /etc/passwd 2>&1; true",
        ],
    );
    assert!(
        ok(o).contains("No such file"),
        "nocopy leaves the volume empty"
    );
}

#[test]
fn prune_asks_first_and_removes_the_unused_volumes_of_docker_20_10() {
    let Some(harness) = basic_test_support::harness() else {
        return;
    };
    if !basic_test_support::require_root() {
        return;
    }
    // A store of its own: prune removes every unused volume in it.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let image = harness.reference("busybox_latest");
    ok(basic_docker(root, &["pull", "-q", &image]));
    for args in [
        &["volume", "create", "unused"][..],
        &["volume", "create", "--label", "keep=yes", "labelled"][..],
        &[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "with-options",
        ][..],
    ] {
        ok(basic_docker(root, args));
    }
    let data = PathBuf::from(
        inspect_volume(root, "unused")["Mountpoint"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    std::fs::write(data.join("f"), vec![b'x'; 1500]).unwrap();
    let user = "vol-prune-user";
    let _cleanup = Cleanup::new(root, &[user]);
    ok(basic_docker(
        root,
        &["create", "--name", user, "-v", "used:/u", &image, "true"],
    ));
    let declined = with_stdin(root, &["volume", "prune"], b"n\n");
    assert!(declined.status.success());
    assert_eq!(
        out(&declined),
        "WARNING! This will remove all local volumes not used by at least one container.\n\
         Are you sure you want to continue? [y/N] Total reclaimed space: 0B\n"
    );
    assert_eq!(
        out(&basic_docker(root, &["volume", "ls", "-q"])),
        "labelled\nunused\nused\nwith-options\n"
    );
    let o = basic_docker(root, &["volume", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!(
        out(&o),
        "Deleted Volumes:\nunused\n\nTotal reclaimed space: 1.5kB\n"
    );
    let o = with_stdin(root, &["volume", "prune"], b"y\n");
    assert!(
        out(&o).ends_with("Deleted Volumes:\nlabelled\n\nTotal reclaimed space: 0B\n"),
        "{}",
        out(&o)
    );
    assert_eq!(
        out(&basic_docker(root, &["volume", "ls", "-q"])),
        "used\nwith-options\n",
        "a volume in use and one with driver options stay, as in docker 20.10"
    );
    let o = basic_docker(
        root,
        &["volume", "prune", "-f", "--filter", "dangling=true"],
    );
    assert!(
        !o.status.success() && err(&o).contains("Invalid filter 'dangling'"),
        "{}",
        err(&o)
    );
    let help = out(&basic_docker(root, &["volume", "prune", "--help"]));
    assert!(help.contains("docker 20.10"), "{help}");
}
