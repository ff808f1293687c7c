//! The Docker Engine API driven by docker's own CLI (Debian's docker.io 20.10, API 1.41):
//! what a docker user types works on basic-docker unchanged, and what the API refuses it
//! refuses with docker's status codes and messages.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::service::ApiService;
use serde_json::Value;

#[track_caller]
fn ok(out: Output) -> String {
    common::ok(out)
}

#[track_caller]
fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure; stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).to_string()
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_cli_negotiates_and_reports_the_engine() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let version = ok(api.docker(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]));
    assert_eq!(version, "1.41 linux");
    let info = ok(api.docker(&[
        "info",
        "--format",
        "{{.Images}} {{.DockerRootDir}} {{.OSType}}",
    ]));
    assert_eq!(info, format!("1 {} linux", api.root().display()));
    // A client that speaks a newer API learns ours from _ping's header.
    let (code, _) = api.request("GET", "/_ping", None);
    assert_eq!(code, 200);
    let headers = std::process::Command::new("curl")
        .args(["-s", "-I", "--unix-socket"])
        .arg(api.socket())
        .arg("http://localhost/_ping")
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_ascii_lowercase();
    assert!(headers.contains("api-version: 1.41"), "{headers}");
    // Only root and the basic-docker group may connect.
    let mode = std::fs::metadata(api.socket())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
}

#[test]
fn images_are_pulled_listed_inspected_tagged_and_removed() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let image = &api.image;
    let pulled = ok(api.docker(&["pull", image]));
    assert!(pulled.contains("Image is up to date for"), "{pulled}");
    let listed = ok(api.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]));
    let (name, _) = image.rsplit_once(':').unwrap();
    assert!(listed.starts_with(&format!("{name}:latest ")), "{listed}");
    let inspected = ok(api.docker(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Cmd}} {{.Os}}",
        image,
    ]));
    assert_eq!(inspected, r#"["sh"] linux"#);
    // The CLI's document and the API's are one.
    let ours: Value = serde_json::from_str(&ok(api.basic(&["inspect", image]))).unwrap();
    let theirs: Value =
        serde_json::from_str(&ok(api.docker(&["image", "inspect", image]))).unwrap();
    assert_eq!(ours, theirs);
    ok(api.docker(&["tag", image, "example.test/renamed:v1"]));
    let tags = ok(api.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(
        tags.lines().any(|l| l == "example.test/renamed:v1"),
        "{tags}"
    );
    let history = ok(api.docker(&["history", "--format", "{{.CreatedBy}}", image]));
    assert!(!history.is_empty());
    let untagged = ok(api.docker(&["rmi", "example.test/renamed:v1"]));
    assert!(
        untagged.contains("Untagged: example.test/renamed:v1"),
        "{untagged}"
    );
    // A reference that does not exist is docker's 404.
    let missing = format!("{name}-missing:latest");
    let err = fails(api.docker(&["pull", &missing]));
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn docker_push_goes_through_the_api_with_the_clients_credentials() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let Some(h) = basic_test_support::harness() else {
        return;
    };
    let unique = format!(
        "api-push-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // The open registry: busybox came from there, so its layer is mounted.
    let open = format!("{}/{unique}/a:v1", h.open);
    ok(api.docker(&["tag", &api.image, &open]));
    let out = ok(api.docker(&["push", &open]));
    assert!(
        out.starts_with(&format!(
            "The push refers to repository [{}/{unique}/a]",
            h.open
        )),
        "{out}"
    );
    assert!(out.contains(": Mounted from fixtures/busybox"), "{out}");
    assert!(out.contains("v1: digest: sha256:"), "{out}");
    let again = ok(api.docker(&["push", &open]));
    assert!(again.contains(": Layer already exists"), "{again}");
    // Without a tag, the API pushes every tag of the repository (docker's -a).
    ok(api.docker(&["tag", &api.image, &format!("{}/{unique}/a:v2", h.open)]));
    let all = ok(api.docker(&["push", "-a", &format!("{}/{unique}/a", h.open)]));
    assert!(
        all.contains("v1: digest: sha256:") && all.contains("v2: digest: sha256:"),
        "{all}"
    );

    // The Basic registry, with the client's credentials (X-Registry-Auth): first
    // wrong ones, refused and named; then the right ones, pushed.
    let basic = format!("{}/{unique}/b:v1", h.basic);
    ok(api.docker(&["tag", &api.image, &basic]));
    let config = api.dir().join("config/config.json");
    let auth = |password: &str| {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", h.basic_user));
        format!(r#"{{"auths":{{"{}":{{"auth":"{token}"}}}}}}"#, h.basic)
    };
    std::fs::write(&config, auth("wrong-password")).unwrap();
    let err = fails(api.docker(&["push", &basic]));
    assert!(err.contains(&h.basic) && err.contains("rejected"), "{err}");
    std::fs::write(&config, auth(&h.basic_pass)).unwrap();
    let out = ok(api.docker(&["push", &basic]));
    assert!(out.contains(": Pushed"), "{out}");
    assert!(out.contains("v1: digest: sha256:"), "{out}");

    // An image the store does not have is docker's message.
    let err = fails(api.docker(&["push", &format!("{}/{unique}/missing:v1", h.open)]));
    assert!(err.contains("does not exist locally"), "{err}");
}

#[test]
fn detached_containers_are_listed_logged_inspected_stopped_and_removed() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let id = ok(api.docker(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "--label",
        "role=test",
        &api.image,
        "sh",
        "-c",
        "echo out; echo err >&2; exec sleep 300",
    ]));
    assert_eq!(id.len(), 64, "{id}");
    let ps = ok(api.docker(&["ps", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps.starts_with("ticker Up"), "{ps}");
    let filtered = ok(api.docker(&["ps", "-q", "--filter", "label=role=test"]));
    assert_eq!(filtered, &id[..12]);
    assert_eq!(
        ok(api.docker(&["ps", "-q", "--filter", "label=role=other"])),
        ""
    );
    eventually("the log", || {
        let out = api.docker(&["logs", "ticker"]);
        String::from_utf8_lossy(&out.stdout) == "out\n"
            && String::from_utf8_lossy(&out.stderr) == "err\n"
    });
    let pid: i32 = ok(api.docker(&["inspect", "-f", "{{.State.Pid}}", "ticker"]))
        .parse()
        .unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    // Its supervisor, started by the service, is the small one-thread program too.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |status: &str, name: &str| {
        status
            .lines()
            .find_map(|l| Some(l.strip_prefix(name)?.trim().to_string()))
            .unwrap()
    };
    let supervisor = field(&status, "PPid:");
    let cmdline = || std::fs::read(format!("/proc/{supervisor}/cmdline")).unwrap();
    // Handed over once the container has run for a moment.
    eventually("the supervisor becoming the small program", || {
        cmdline().starts_with(b"basic-docker-supervise\0")
    });
    let cmdline = cmdline();
    assert!(
        cmdline.starts_with(b"basic-docker-supervise\0"),
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    let status = std::fs::read_to_string(format!("/proc/{supervisor}/status")).unwrap();
    assert_eq!(field(&status, "Threads:"), "1");
    // Our CLI sees the container the API made, with the same document.
    let ours: Value = serde_json::from_str(&ok(api.basic(&["inspect", "ticker"]))).unwrap();
    assert_eq!(ours[0]["Id"], id.as_str());
    assert_eq!(ours[0]["State"]["Pid"], pid);

    ok(api.docker(&["pause", "ticker"]));
    assert_eq!(
        ok(api.docker(&["inspect", "-f", "{{.State.Status}}", "ticker"])),
        "paused"
    );
    ok(api.docker(&["unpause", "ticker"]));
    ok(api.docker(&["rename", "ticker", "tocker"]));
    let err = fails(api.docker(&["rm", "tocker"]));
    assert!(
        err.contains("Stop the container before attempting removal"),
        "{err}"
    );
    ok(api.docker(&["stop", "-t", "1", "tocker"]));
    let state = ok(api.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "tocker",
    ]));
    assert_eq!(state, "exited 137");
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    ok(api.docker(&["start", "tocker"]));
    assert_eq!(
        ok(api.docker(&["inspect", "-f", "{{.State.Running}}", "tocker"])),
        "true"
    );
    ok(api.docker(&["kill", "tocker"]));
    assert_eq!(ok(api.docker(&["wait", "tocker"])), "137");
    ok(api.docker(&["rm", "tocker"]));
    assert_eq!(ok(api.docker(&["ps", "-aq"])), "");
    let err = fails(api.docker(&["inspect", "tocker"]));
    assert!(err.contains("No such object: tocker"), "{err}");
}

#[test]
fn a_name_in_use_and_unknown_things_are_dockers_errors() {
    let Some(api) = ApiService::start() else {
        return;
    };
    ok(api.docker(&["create", "--name", "taken", &api.image, "true"]));
    let err = fails(api.docker(&["create", "--name", "taken", &api.image, "true"]));
    assert!(err.contains("is already in use by container"), "{err}");
    let err = fails(api.docker(&["stop", "nosuch"]));
    assert!(err.contains("No such container: nosuch"), "{err}");
    let err = fails(api.docker(&["run", "-d", "--network", "nosuchnet", &api.image, "true"]));
    assert!(err.contains("network nosuchnet not found"), "{err}");
    ok(api.docker(&["rm", "taken"]));
}

#[test]
fn services_reach_each_other_by_alias_on_a_user_network() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let net = format!("apinet{}", std::process::id());
    ok(api.docker(&["network", "create", "--label", "purpose=test", &net]));
    let listed = ok(api.docker(&[
        "network",
        "ls",
        "--filter",
        "label=purpose=test",
        "--format",
        "{{.Name}}",
    ]));
    assert_eq!(listed, net);
    ok(api.docker(&[
        "run",
        "-d",
        "--name",
        "db",
        "--network",
        &net,
        "--network-alias",
        "database",
        &api.image,
        "sleep",
        "300",
    ]));
    ok(api.docker(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        &net,
        &api.image,
        "sh",
        "-c",
        "ping -c1 -W2 database && ping -c1 -W2 db && echo reached",
    ]));
    assert_eq!(ok(api.docker(&["wait", "client"])), "0");
    let log = ok(api.docker(&["logs", "client"]));
    assert!(log.ends_with("reached"), "{log}");
    let inspected = ok(api.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        &net,
    ]));
    assert_eq!(inspected, "db");
    // Our CLI prints the document docker's CLI gets through the API, for a user network
    // with a container on it and for the built-ins.
    for name in [net.as_str(), "bridge", "host", "none"] {
        let theirs: serde_json::Value =
            serde_json::from_str(&ok(api.docker(&["network", "inspect", name]))).unwrap();
        let ours: serde_json::Value =
            serde_json::from_str(&ok(api.basic(&["network", "inspect", name]))).unwrap();
        assert_eq!(ours, theirs, "network inspect {name}");
    }
    let err = fails(api.docker(&["network", "rm", &net]));
    assert!(err.contains("active endpoints"), "{err}");
    ok(api.docker(&["rm", "-f", "db", "client"]));
    ok(api.docker(&["network", "rm", &net]));
    // By name or by the ID `network ls -q` prints: the default bridge is every
    // container's on the host, never removed.
    let bridge_id = ok(api.docker(&["network", "inspect", "-f", "{{.Id}}", "bridge"]));
    for given in ["bridge", bridge_id.trim(), &bridge_id[..12]] {
        let err = fails(api.docker(&["network", "rm", given]));
        assert!(
            err.contains("bridge is a pre-defined network"),
            "{given}: {err}"
        );
    }
}

#[test]
fn bad_requests_are_400s_and_unknown_ids_404s_never_a_crash() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let (code, body) = api.request("POST", "/v1.41/containers/create", Some("{\"Image\":"));
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("\"message\"") && body.contains("invalid JSON"),
        "{body}"
    );
    let (code, body) = api.request(
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"Privileges":true}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("HostConfig.Privileges"), "{body}");
    let (code, body) = api.request("POST", "/containers/create", Some(r#"{"Image":7}"#));
    assert_eq!(code, 400, "{body}");
    let (code, body) = api.request("GET", "/containers/deadbeef/json", None);
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("No such container: deadbeef"), "{body}");
    let (code, _) = api.request("GET", "/containers/json?filters=%7Bbad", None);
    assert_eq!(code, 400);
    let (code, body) = api.request(
        "GET",
        "/containers/json?filters=%7B%22nope%22%3A%5B%22x%22%5D%7D",
        None,
    );
    assert_eq!(code, 400, "{body}");
    let (code, body) = api.request("POST", "/containers/x/wait?condition=sometime", None);
    assert_eq!(code, 400, "{body}");
    let (code, body) = api.request("GET", "/no/such/endpoint", None);
    assert_eq!(code, 404, "{body}");
    // What clients call in teardown answers as a dockerd outside a swarm.
    let (code, body) = api.request("GET", "/services", None);
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("not a swarm manager"), "{body}");
    let (code, body) = api.request("GET", "/plugins", None);
    assert_eq!((code, body.trim()), (200, "[]"));
    // The service still answers.
    assert_eq!(ok(api.docker(&["ps", "-aq"])), "");
}

#[test]
fn containers_outlive_the_service_and_it_exits_when_idle() {
    let Some(mut api) = ApiService::start() else {
        return;
    };
    let id = ok(api.docker(&[
        "run", "-d", "--name", "survivor", &api.image, "sleep", "300",
    ]));
    assert!(api.stop().success());
    // Without the service: the container runs on, and our CLI sees it.
    let ps = ok(api.basic(&["ps", "-q", "--no-trunc"]));
    assert_eq!(ps, id);
    api.launch(&["--time", "1"]);
    let status = ok(api.docker(&["inspect", "-f", "{{.State.Status}}", "survivor"]));
    assert_eq!(status, "running");
    // Idle for a second: it exits by itself, and the socket goes with it.
    assert!(api.wait_exit(Duration::from_secs(20)).success());
    assert!(!api.socket().exists());
    assert_eq!(ok(api.basic(&["ps", "-q", "--no-trunc"])), id);
    ok(api.basic(&["rm", "-f", "survivor"]));
}

#[test]
fn a_socket_activated_service_serves_the_socket_it_is_passed() {
    let Some(mut api) = ApiService::start() else {
        return;
    };
    if !basic_test_support::prerequisite(
        Path::new(common::service::SOCKET_ACTIVATE).exists(),
        "systemd-socket-activate (Debian's systemd: scripts/install-deps.sh)",
    ) {
        return;
    }
    assert!(api.stop().success());
    api.launch_activated(&["--time", "3"]);
    assert_eq!(
        ok(api.docker(&["run", "--rm", &api.image, "echo", "activated"])),
        "activated"
    );
    // The listening socket reaches no container: only the standard descriptors and the
    // directory `ls` itself opens are there.
    let fds = ok(api.docker(&["run", "--rm", &api.image, "ls", "/proc/self/fd"]));
    assert_eq!(
        fds.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"]
    );
    // Idle, it exits, and leaves the socket file to whoever activated it.
    assert!(api.wait_exit(Duration::from_secs(20)).success());
    assert!(api.socket().exists());
    assert!(!api.dir().join("unused.sock").exists());
}

/// Clients that hang up while the service writes to them (`docker logs -f` ended with
/// Ctrl-C, an attached `run` killed), and an exec that ends while its client still sends it
/// input, cost the service nothing: it answers the next one.
#[test]
fn clients_hanging_up_mid_stream_leave_the_service_running() {
    let Some(api) = ApiService::start() else {
        return;
    };
    ok(api.docker(&[
        "run",
        "-d",
        "--name",
        "chatty",
        &api.image,
        "sh",
        "-c",
        "while :; do echo chatter; done",
    ]));
    // A command that ends without reading what its client keeps sending: the service's
    // writes to the exec's stdin fail (that used to end the service with SIGPIPE).
    for round in 0..3 {
        let mut client = api
            .docker_command(&["exec", "-i", "chatty", "true"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut input = client.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let chunk = [b'y'; 65536];
            for _ in 0..256 {
                if std::io::Write::write_all(&mut input, &chunk).is_err() {
                    break;
                }
            }
        });
        basic_test_support::bounded::wait_within(
            &mut client,
            Duration::from_secs(60),
            "docker exec -i fed more than it reads",
        );
        let _ = feeder.join();
        assert_eq!(
            ok(api.docker(&["inspect", "-f", "{{.State.Running}}", "chatty"])),
            "true",
            "round {round}, after exec -i: the service answers"
        );
    }
    for round in 0..3 {
        for args in [
            vec!["logs", "-f", "chatty"],
            vec!["attach", "--no-stdin", "chatty"],
        ] {
            let mut client = api
                .docker_command(&args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // Read a little, then go away without a word while output keeps coming.
            let mut some = [0u8; 4096];
            let mut out = client.stdout.take().unwrap();
            let _ = std::io::Read::read(&mut out, &mut some);
            let _ = client.kill();
            drop(out);
            let _ = client.wait();
            assert_eq!(
                ok(api.docker(&["inspect", "-f", "{{.State.Running}}", "chatty"])),
                "true",
                "round {round}, after {args:?}: the service answers"
            );
        }
    }
    ok(api.docker(&["rm", "-f", "chatty"]));
}

#[test]
fn only_unix_sockets_are_served() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .args(["system", "service", "tcp://127.0.0.1:2375"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only unix sockets are served"), "{err}");
}

#[test]
fn intermediate_images_are_listed_only_with_all() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {}\nENV A=1\nENV B=2\n", api.image),
    )
    .unwrap();
    ok(api.basic(&[
        "build",
        "-q",
        "-t",
        "layered:1",
        ctx.path().to_str().unwrap(),
    ]));
    let ids = |flags: &[&str]| {
        let mut args = vec!["images", "-q"];
        args.extend_from_slice(flags);
        ok(api.docker(&args)).lines().count()
    };
    // The base and the result; with -a (all=1) ENV A's image too.
    assert_eq!(ids(&[]), 2);
    assert_eq!(ids(&["-a"]), 3);
    let (code, body) = api.request("GET", "/images/json?all=1", None);
    assert_eq!(code, 200);
    let all: Value = serde_json::from_str(&body).unwrap();
    let result = all
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["RepoTags"][0] == "layered:1")
        .unwrap();
    assert!(
        result["ParentId"].as_str().unwrap().starts_with("sha256:"),
        "{result}"
    );
}
