//! `top` and `stats` through the Docker Engine API, driven by docker's own CLI, curl and
//! docker-py: the processes of a running container, its memory against a `-m` limit, a
//! stats stream a second apart that ends when the client leaves or the container stops,
//! and a container churning short-lived processes that `top` must still list.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use basic_test_support::bounded::wait_with_output_within;
use common::service::ApiService;

#[track_caller]
fn ok(out: Output) -> String {
    common::ok(out)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// curl on the service's socket for `path`, reading for at most `seconds`.
fn curl_stream(api: &ApiService, path: &str, seconds: u32) -> std::process::Child {
    Command::new("curl")
        .args(["-s", "-N", "--max-time", &seconds.to_string()])
        .arg("--unix-socket")
        .arg(api.socket())
        .arg(format!("http://localhost{path}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run curl")
}

#[test]
fn docker_top_and_stats_show_a_running_container_and_refuse_a_stopped_one() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let id = ok(api.docker(&[
        "run", "-d", "--name", "tops", "-m", "64m", "busybox", "sleep", "300",
    ]))
    .trim()
    .to_string();
    let pid = ok(api.docker(&["inspect", "-f", "{{.State.Pid}}", "tops"]))
        .trim()
        .to_string();

    // top: ps -ef's columns and the sleep, by its host PID.
    let top = ok(api.docker(&["top", "tops"]));
    let header: Vec<&str> = top.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"],
        "{top}"
    );
    assert!(
        top.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.get(1) == Some(&pid.as_str()) && l.ends_with("sleep 300")
        }),
        "pid {pid} sleep 300 not in: {top}"
    );

    // Only docker's default ps arguments are served; others are refused by name.
    let (code, body) = api.request("GET", "/containers/tops/top?ps_args=aux", None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("aux"), "{body}");
    let (code, body) = api.request("GET", "/containers/tops/top?ps_args=-ef", None);
    assert_eq!(code, 200, "{body}");

    // stats --no-stream: the container's row with the 64 MiB limit.
    let table = ok(api.docker(&["stats", "--no-stream", "tops"]));
    let row = table
        .lines()
        .find(|l| l.starts_with(&id[..12]))
        .unwrap_or_else(|| panic!("no row for {id}: {table}"));
    assert!(row.contains("tops"), "{table}");
    assert!(row.contains(" / 64MiB"), "{table}");
    let json = ok(api.docker(&["stats", "--no-stream", "--format", "{{json .}}", "tops"]));
    let row: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(row["Name"], "tops", "{json}");
    let usage = row["MemUsage"].as_str().unwrap();
    let (used, limit) = usage.split_once(" / ").unwrap();
    assert_eq!(limit, "64MiB", "{json}");
    assert_ne!(used, "0B", "a running sleep uses some memory: {json}");
    assert!(
        row["PIDs"].as_str().unwrap().parse::<u64>().unwrap() >= 1,
        "{json}"
    );

    // The raw document as API 1.41 clients read it.
    let (code, body) = api.request("GET", "/containers/tops/stats?stream=0", None);
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["memory_stats"]["limit"], 64 * 1024 * 1024, "{body}");
    assert_eq!(doc["id"], id.as_str());
    assert!(
        doc["cpu_stats"]["cpu_usage"]["total_usage"].is_u64(),
        "{body}"
    );
    assert!(
        doc["cpu_stats"]["system_cpu_usage"].as_u64().unwrap()
            > doc["precpu_stats"]["system_cpu_usage"].as_u64().unwrap(),
        "stream=0 samples twice, a second apart: {body}"
    );
    assert!(
        doc["pids_stats"]["current"].as_u64().unwrap() >= 1,
        "{body}"
    );

    // Stopped: docker's conflict, for top and for stats.
    ok(api.docker(&["stop", "-t", "0", "tops"]));
    let out = api.docker(&["top", "tops"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&format!("Container {id} is not running")),
        "{}",
        text(&out.stderr)
    );
    let (code, body) = api.request("GET", "/containers/tops/stats?stream=0", None);
    assert_eq!(code, 409, "{body}");
    let (code, body) = api.request("GET", "/containers/nosuch/top", None);
    assert_eq!(code, 404, "{body}");
    ok(api.docker(&["rm", "tops"]));
}

#[test]
fn the_stats_stream_advances_and_ends_with_its_client_or_its_container() {
    let Some(api) = ApiService::start() else {
        return;
    };
    ok(api.docker(&["run", "-d", "--name", "streamed", "busybox", "sleep", "300"]));

    // The client leaves after 3.5 seconds: documents a second apart, `read` advancing.
    let out = wait_with_output_within(
        curl_stream(&api, "/containers/streamed/stats", 3),
        Duration::from_secs(30),
        "curl reading the stats stream",
    );
    let body = text(&out.stdout);
    let docs: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(docs.len() >= 2, "{body}");
    let reads: Vec<&str> = docs.iter().map(|d| d["read"].as_str().unwrap()).collect();
    assert!(reads.windows(2).all(|w| w[0] < w[1]), "{reads:?}");
    assert_eq!(docs[1]["precpu_stats"], docs[0]["cpu_stats"], "{body}");
    // The service is unharmed and still answers.
    let (code, body) = api.request("GET", "/_ping", None);
    assert_eq!((code, body.as_str()), (200, "OK"));
    let (code, _) = api.request(
        "GET",
        "/containers/streamed/stats?one-shot=1&stream=0",
        None,
    );
    assert_eq!(code, 200);

    // The container stops while a client reads: the stream ends, well before curl's limit.
    let child = curl_stream(&api, "/containers/streamed/stats", 60);
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    ok(api.docker(&["stop", "-t", "0", "streamed"]));
    let out = wait_with_output_within(
        child,
        Duration::from_secs(30),
        "curl reading the stats stream",
    );
    assert!(
        out.status.success(),
        "the stream ended by the service, not curl's time limit: {:?} {}",
        out.status,
        text(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!text(&out.stdout).is_empty());
    ok(api.docker(&["rm", "streamed"]));
}

#[test]
fn top_lists_a_container_that_churns_short_lived_processes() {
    let Some(api) = ApiService::start() else {
        return;
    };
    // Processes appear and exit between the cgroup's list and /proc's reads: top must
    // answer every time, with the container's long-lived shell among the rows.
    ok(api.docker(&[
        "run",
        "-d",
        "--name",
        "churn",
        "busybox",
        "sh",
        "-c",
        "while :; do /bin/true; /bin/true & done",
    ]));
    for _ in 0..10 {
        let top = ok(api.docker(&["top", "churn"]));
        assert!(top.contains("while :"), "{top}");
    }
    ok(api.docker(&["rm", "-f", "churn"]));
    let (code, body) = api.request("GET", "/_ping", None);
    assert_eq!((code, body.as_str()), (200, "OK"));
}

#[test]
fn a_container_cannot_forge_rows_of_top_with_its_command_line() {
    let Some(api) = ApiService::start() else {
        return;
    };
    // The shell stays alive (`; :` keeps it from exec'ing sleep) with an argument that
    // holds a newline, a fake ps row and a terminal escape.
    let hostile = "zero\nFORGED 0 0 0 00:00 ? 00:00:00 forged\x1b[2J";
    ok(api.docker(&[
        "run",
        "-d",
        "--name",
        "forger",
        "busybox",
        "sh",
        "-c",
        "sleep 300; :",
        hostile,
    ]));
    let top = ok(api.docker(&["top", "forger"]));
    assert!(
        !top.lines().any(|l| l.starts_with("FORGED")),
        "a forged row: {top}"
    );
    assert!(
        !top.contains('\x1b'),
        "a terminal escape passed through: {top:?}"
    );
    assert!(
        top.contains("zero?FORGED 0 0 0 00:00 ? 00:00:00 forged?[2J"),
        "{top}"
    );
    // The same through the API's JSON: one row per process, control characters as `?`.
    let (code, body) = api.request("GET", "/containers/forger/top", None);
    assert_eq!(code, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rows = doc["Processes"].as_array().unwrap();
    assert!(
        rows.iter()
            .all(|r| r.as_array().unwrap().len() == 8 && !r[7].as_str().unwrap().contains('\n')),
        "{body}"
    );
    ok(api.docker(&["rm", "-f", "forger"]));
}

#[test]
fn docker_py_reads_top_and_stats() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let has_docker_py = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .is_ok_and(|s| s.success());
    if !basic_test_support::prerequisite(has_docker_py, "python3-docker (scripts/install-deps.sh)")
    {
        return;
    }
    let script = r#"
import docker
c = docker.DockerClient(base_url="unix://" + SOCKET, version="auto")
ctr = c.containers.run("busybox", ["sleep", "300"], detach=True, name="pytop", mem_limit="64m")
top = ctr.top()
assert top["Titles"][1] == "PID" and top["Titles"][-1] == "CMD", top
assert any(p[-1] == "sleep 300" for p in top["Processes"]), top
s = ctr.stats(stream=False)
assert s["memory_stats"]["limit"] == 64 * 1024 * 1024, s
assert s["cpu_stats"]["online_cpus"] >= 1, s
ctr.remove(force=True)
print("ALL OK")
"#;
    let script = format!(
        "SOCKET = {:?}\n{script}",
        api.socket().display().to_string()
    );
    let child = Command::new("python3")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_with_output_within(child, Duration::from_secs(120), "docker-py");
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("ALL OK"));
}
