//! docker's `--format` on real containers: `inspect -f`, `ps`, `images` and `network ls`
//! templates, tables and errors, and the inspect document's `NetworkSettings`.
//! Traffic goes only to containers these tests start.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use basic_test_support::prerequisite;
use common::{basic_docker, busybox_store, ok};

fn store() -> Option<&'static (tempfile::TempDir, String)> {
    let store = busybox_store()?;
    prerequisite(
        Path::new("/usr/lib/cni/bridge").exists(),
        "the CNI plugins (containernetworking-plugins)",
    )
    .then_some(store)
}

/// The run-time state of this test binary's store: inside its own tempdir.
fn state(root: &Path) -> PathBuf {
    root.join("run-state")
}

/// `basic-docker --root ROOT --state ROOT/run-state ARGS...`.
fn bd(root: &Path, args: &[&str]) -> Output {
    let state = state(root);
    let mut all = vec!["--state", state.to_str().unwrap()];
    all.extend_from_slice(args);
    basic_docker(root, &all)
}

fn failed(out: &Output) -> (i32, String) {
    assert!(!out.status.success(), "{out:?}");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A state dir's containers are removed with it: `Cleanup` runs `rm -f` without
/// `--state`, so it is given here.
struct Removal<'a>(&'a Path, &'a [&'a str]);

impl Drop for Removal<'_> {
    fn drop(&mut self) {
        for name in self.1 {
            let _ = bd(self.0, &["rm", "-f", name]);
        }
    }
}

#[test]
fn inspect_shows_the_address_a_peer_reaches() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _removal = Removal(root, &["fmt-web", "fmt-peer", "fmt-idle"]);
    for name in ["fmt-web", "fmt-peer"] {
        ok(bd(
            root,
            &["run", "-d", "--name", name, image, "sleep", "1000"],
        ));
    }
    ok(bd(root, &["create", "--name", "fmt-idle", image, "true"]));

    let ip = ok(bd(
        root,
        &["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "fmt-web"],
    ));
    let parsed: std::net::Ipv4Addr = ip.parse().unwrap_or_else(|_| panic!("an IPv4: {ip:?}"));
    assert!(!parsed.is_unspecified());
    // The same address under the network's name, with its prefix and gateway.
    let on_bridge = ok(bd(
        root,
        &[
            "inspect",
            "-f",
            "{{with .NetworkSettings.Networks.bridge}}{{.IPAddress}}/{{.IPPrefixLen}} {{.Gateway}}{{end}}",
            "fmt-web",
        ],
    ));
    let (cidr, gateway) = on_bridge.split_once(' ').unwrap();
    assert!(cidr.starts_with(&format!("{ip}/")), "{on_bridge}");
    assert!(gateway.parse::<std::net::Ipv4Addr>().is_ok(), "{on_bridge}");
    // The container itself has that address on eth0, and a peer reaches it.
    let inside = ok(bd(
        root,
        &["exec", "fmt-web", "ip", "-4", "-o", "addr", "show", "eth0"],
    ));
    assert!(inside.contains(&format!(" {cidr} ")), "{inside} vs {cidr}");
    let ping = bd(
        root,
        &["exec", "fmt-peer", "ping", "-c", "1", "-W", "2", &ip],
    );
    assert!(ping.status.success(), "{ping:?}");

    // State.Pid is the init's host PID, the network namespace the one it runs in.
    let pid_and_key = ok(bd(
        root,
        &[
            "inspect",
            "-f",
            "{{.State.Pid}} {{.NetworkSettings.SandboxKey}} {{.State.FinishedAt}}",
            "fmt-web",
        ],
    ));
    let mut parts = pid_and_key.split(' ');
    let pid: u32 = parts.next().unwrap().parse().unwrap();
    let key = parts.next().unwrap();
    assert_eq!(parts.next(), Some("0001-01-01T00:00:00Z"));
    let netns_of =
        |path: &str| std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m));
    assert_eq!(
        netns_of(&format!("/proc/{pid}/ns/net")).unwrap(),
        netns_of(key).unwrap(),
        "SandboxKey is the init's network namespace"
    );

    // Never started: docker's zero values, and the network kept without addresses.
    let idle = ok(bd(
        root,
        &[
            "inspect",
            "-f",
            "{{.State.Pid}}|{{.State.StartedAt}}|{{.NetworkSettings.IPAddress}}|{{json .NetworkSettings.Ports}}|{{.NetworkSettings.Networks.bridge.IPAddress}}|{{len .NetworkSettings.Networks}}",
            "fmt-idle",
        ],
    ));
    assert_eq!(idle, "0|0001-01-01T00:00:00Z||{}||1");
}

#[test]
fn inspect_templates_read_labels_ports_and_several_objects() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _removal = Removal(root, &["fmt-labels"]);
    ok(bd(
        root,
        &[
            "create",
            "--name",
            "fmt-labels",
            "--label",
            "com.example.tier=front",
            "--label",
            "alpha=1",
            // Template text in data is data: it is printed, never run.
            "--label",
            "trap={{.Id}}",
            "-p",
            "127.0.0.1:18089:80",
            image,
            "true",
        ],
    ));
    assert_eq!(
        ok(bd(
            root,
            &["inspect", "-f", "{{json .Config.Labels}}", "fmt-labels"]
        )),
        r#"{"alpha":"1","com.example.tier":"front","trap":"{{.Id}}"}"#
    );
    assert_eq!(
        ok(bd(
            root,
            &[
                "inspect",
                "-f",
                r#"{{index .Config.Labels "com.example.tier"}}"#,
                "fmt-labels"
            ]
        )),
        "front"
    );
    assert_eq!(
        ok(bd(
            root,
            &[
                "inspect",
                "-f",
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                "fmt-labels"
            ]
        )),
        "alpha=1;com.example.tier=front;trap={{.Id}};"
    );
    // Published ports are exposed ones (docker adds them), not bound until it runs.
    assert_eq!(
        ok(bd(
            root,
            &[
                "inspect",
                "-f",
                "{{json .Config.ExposedPorts}}",
                "fmt-labels"
            ]
        )),
        r#"{"80/tcp":{}}"#
    );
    // One line per object; an image answers the same template.
    let out = ok(bd(root, &["inspect", "-f", "{{.Id}}", "fmt-labels", image]));
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().all(|l| !l.is_empty()), "{out}");
    // `json` is a template in `inspect` (docker 20.10): the word, once per object.
    assert_eq!(
        ok(bd(root, &["inspect", "-f", "json", "fmt-labels"])),
        "json"
    );
    // Without a format: docker's array, indented by four spaces, with struct order.
    let doc = ok(bd(root, &["container", "inspect", "fmt-labels"]));
    assert!(doc.starts_with("[\n    {\n        \"Id\": "), "{doc}");
    let parsed: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let settings = &parsed[0]["NetworkSettings"];
    for key in [
        "Bridge",
        "SandboxID",
        "SandboxKey",
        "Ports",
        "IPAddress",
        "IPPrefixLen",
        "Gateway",
        "MacAddress",
        "Networks",
    ] {
        assert!(
            settings.get(key).is_some(),
            "NetworkSettings.{key} missing: {settings}"
        );
    }
}

#[test]
fn bad_templates_fail_as_docker_fails() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _removal = Removal(root, &["fmt-bad"]);
    ok(bd(root, &["create", "--name", "fmt-bad", image, "true"]));

    // A template that does not parse: exit 64, nothing on stdout.
    let out = bd(root, &["inspect", "-f", "{{.Id", "fmt-bad"]);
    let (code, err) = failed(&out);
    assert_eq!(code, 64);
    assert!(
        err.starts_with("template parsing error: template: :1: "),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let (code, err) = failed(&bd(root, &["inspect", "-f", "{{nosuch .}}", "fmt-bad"]));
    assert_eq!(code, 64);
    assert_eq!(
        err.trim(),
        r#"template parsing error: template: :1: function "nosuch" not defined"#
    );
    // One that fails on the object: exit 1, the error named.
    let (code, err) = failed(&bd(
        root,
        &["inspect", "-f", "{{upper .State.Pid}}", "fmt-bad"],
    ));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("template parsing error: ") && err.contains("expected string"),
        "{err}"
    );

    let (code, err) = failed(&bd(root, &["ps", "-a", "--format", "{{.Nope}}"]));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("failed to execute template: ") && err.contains("Nope"),
        "{err}"
    );
    let (code, err) = failed(&bd(root, &["ps", "--format", "{{.ID"]));
    assert_eq!(code, 1);
    assert!(
        err.starts_with("failed to parse template: template: :1: "),
        "{err}"
    );
    let (code, err) = failed(&bd(root, &["images", "--format", "{{if}}"]));
    assert_eq!(code, 1);
    assert!(err.starts_with("template parsing error: "), "{err}");

    // A template that would loop for ever is stopped, not run.
    let started = Instant::now();
    let (code, err) = failed(&bd(
        root,
        &[
            "inspect",
            "-f",
            "{{range 100000000000}}{{range 100000000000}}x{{end}}{{end}}",
            "fmt-bad",
        ],
    ));
    assert_eq!(code, 1, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn listings_take_templates_tables_and_json() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _removal = Removal(root, &["fmt-a", "fmt-a-much-longer-name"]);
    ok(bd(
        root,
        &[
            "create",
            "--name",
            "fmt-a",
            "--label",
            "com.example.tier=back",
            image,
            "true",
        ],
    ));
    ok(bd(
        root,
        &[
            "run",
            "-d",
            "--name",
            "fmt-a-much-longer-name",
            image,
            "sleep",
            "1000",
        ],
    ));
    let filter = ["ps", "-a", "--filter", "name=fmt-a"];

    let lines = ok(bd(
        root,
        &[&filter[..], &["--format", r"{{.Names}}\t{{.Status}}"]].concat(),
    ));
    let mut lines: Vec<&str> = lines.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "fmt-a\tCreated");
    assert!(
        lines[1].starts_with("fmt-a-much-longer-name\tUp "),
        "{lines:?}"
    );

    // A table: docker's header names, columns aligned (three spaces past the widest
    // cell, ten at least), the last column unpadded.
    let table = stdout_of(bd(
        root,
        &[
            &filter[..],
            &[
                "--format",
                r#"table {{.Names}}\t{{.State}}\t{{.Label "com.example.tier"}}"#,
            ],
        ]
        .concat(),
    ));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows[0], "NAMES                    STATE     tier");
    let longer = rows.iter().find(|r| r.starts_with("fmt-a-much")).unwrap();
    assert_eq!(*longer, "fmt-a-much-longer-name   running   ");
    let short = rows.iter().find(|r| r.starts_with("fmt-a ")).unwrap();
    assert_eq!(*short, "fmt-a                    created   back");

    // The default table is docker's, with its header.
    let default = stdout_of(bd(root, &filter));
    assert!(default.starts_with("CONTAINER ID   IMAGE "), "{default}");
    assert!(
        default.lines().next().unwrap().ends_with("   NAMES"),
        "{default}"
    );

    // json: one object per line, docker's fields.
    let json = stdout_of(bd(root, &[&filter[..], &["--format", "json"]].concat()));
    for line in json.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        for key in [
            "ID",
            "Image",
            "Command",
            "CreatedAt",
            "RunningFor",
            "Ports",
            "State",
            "Status",
            "Names",
            "Labels",
            "Mounts",
            "Networks",
        ] {
            assert!(row.get(key).is_some(), "{key} missing in {line}");
        }
        assert_eq!(row["Networks"], "bridge");
    }

    let images = ok(bd(
        root,
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
    ));
    assert!(images.lines().any(|l| l == image), "{images} lacks {image}");
    let table = stdout_of(bd(
        root,
        &["images", "--format", r"table {{.Repository}}\t{{.Size}}"],
    ));
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(
        table.lines().next().unwrap().ends_with("   SIZE"),
        "{table}"
    );

    let networks = ok(bd(
        root,
        &[
            "network",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Scope}}",
        ],
    ));
    assert!(
        networks.lines().any(|l| l == "bridge bridge local"),
        "{networks}"
    );
    assert!(
        networks.lines().any(|l| l == "none null local"),
        "{networks}"
    );
}

#[track_caller]
fn stdout_of(out: Output) -> String {
    common::stdout(&out)
}
