//! `stats`, `top`, `monitor` and `monitor serve` against a real running
//! container: busybox burning one core under a 100 MiB limit.

mod common;

use common::basic_docker;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use basic_test_support::{harness, require_root};

const NAME: &str = "mon-test";

/// The foreground `run`, killed (with its container) if the test fails.
struct Running {
    child: Child,
    id: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Some(pid) = init_pid(&self.id) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The container's init, from the runtime's state file.
fn init_pid(id: &str) -> Option<i64> {
    let text =
        std::fs::read_to_string(Path::new("/run/basic-docker").join(id).join("state.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["pid"].as_i64()
}

/// Waits until a container of `root` named `name` shows in `/run/basic-docker`.
fn wait_for_container(root: &Path, name: &str, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            child.try_wait().unwrap().is_none(),
            "run exited before the container showed up"
        );
        for entry in std::fs::read_dir("/run/basic-docker").into_iter().flatten() {
            let id = entry.unwrap().file_name().to_string_lossy().into_owned();
            let config = root.join("containers").join(&id).join("config.json");
            let named = std::fs::read_to_string(config)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|s| s["annotations"]["org.basic-docker.name"] == name);
            if named && init_pid(&id).is_some() {
                return id;
            }
        }
        assert!(Instant::now() < deadline, "the container never showed up");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ok(args: &[&str], root: &Path) -> String {
    let out = basic_docker(root, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `GET /metrics` over plain HTTP/1.0.
fn scrape(addr: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1."), "{response}");
    assert!(response.contains(" 200 "), "{response}");
    response
}

/// "100MiB" -> bytes.
fn binary_size(s: &str) -> f64 {
    let units = [
        ("KiB", 1024.0),
        ("MiB", 1048576.0),
        ("GiB", 1073741824.0),
        ("B", 1.0),
    ];
    for (unit, factor) in units {
        if let Some(n) = s.strip_suffix(unit) {
            return n.parse::<f64>().unwrap() * factor;
        }
    }
    panic!("not a size: {s}")
}

#[test]
fn stats_top_monitor_and_serve_see_a_busy_container() {
    let Some(h) = harness() else {
        return;
    };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let image = h.reference("busybox_latest");
    ok(&["pull", "-q", &image], root);

    // The trap lets SIGTERM end the shell: as PID 1 it would otherwise ignore it.
    let child = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(["run", "--rm", "--name", NAME, "-m", "100m", &image])
        .args(["sh", "-c", "trap 'exit 0' TERM; while :; do :; done"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start basic-docker run");
    let mut running = Running {
        child,
        id: String::new(),
    };
    running.id = wait_for_container(root, NAME, &mut running.child);
    let id = running.id.clone();

    // stats: one core busy, the 100 MiB limit, at least one process.
    let out = ok(&["stats", "--no-stream", "--format", "json", NAME], root);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    let row: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(row["ID"], &id[..12]);
    assert_eq!(row["Name"], NAME);
    let cpu: f64 = row["CPUPerc"]
        .as_str()
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!((50.0..=150.0).contains(&cpu), "CPU % {cpu}: {out}");
    let usage_limit = row["MemUsage"].as_str().unwrap();
    let limit = usage_limit.split(" / ").nth(1).unwrap();
    assert_eq!(limit, "100MiB", "{out}");
    assert_eq!(binary_size(limit), 100.0 * 1048576.0);
    assert_eq!(row["Raw"]["memory_limit_bytes"], 100 * 1024 * 1024);
    let pids: u64 = row["PIDs"].as_str().unwrap().parse().unwrap();
    assert!(pids >= 1, "{out}");

    // The table has docker's columns and the container's row.
    let table = ok(&["stats", "--no-stream"], root);
    assert!(table.starts_with("CONTAINER ID   NAME"), "{table}");
    for column in [
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(table.lines().next().unwrap().contains(column), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id[..12]) && l.contains(NAME)),
        "{table}"
    );

    // top: the shell, by host PID.
    let top = ok(&["top", NAME], root);
    assert!(top.starts_with("UID"), "{top}");
    let init = init_pid(&id).unwrap().to_string();
    assert!(
        top.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(init.as_str()) && l.contains("sh")),
        "{top}"
    );

    // monitor container: JSON that parses, by name and by id prefix.
    let view: serde_json::Value = serde_json::from_str(&ok(
        &["monitor", "container", NAME, "--format", "json"],
        root,
    ))
    .unwrap();
    assert_eq!(view["id"], id.as_str());
    assert_eq!(view["name"], NAME);
    assert_eq!(view["stats"]["memory"]["limit_bytes"], 100 * 1024 * 1024);
    let by_prefix = ok(&["monitor", "container", &id[..8]], root);
    assert!(by_prefix.contains(NAME), "{by_prefix}");
    for verb in ["gap", "correlation"] {
        let out = ok(&["monitor", verb, NAME, "--format", "json"], root);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["container_id"], id.as_str(), "{out}");
    }

    // An unknown container is docker's error.
    let missing = basic_docker(root, &["top", "no-such-container-here"]);
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr)
            .contains("No such container: no-such-container-here")
    );

    // monitor serve, scraped over HTTP.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(["monitor", "serve", "--listen", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    BufReader::new(server.stderr.take().unwrap())
        .read_line(&mut banner)
        .unwrap();
    assert!(banner.contains(&addr), "{banner}");
    let metrics = scrape(&addr);
    let _ = server.kill();
    let _ = server.wait();
    // Labels come in name order (id, image, name), as Prometheus clients write them.
    let line = metrics
        .lines()
        .find(|l| l.starts_with(&format!("container_cpu_usage_seconds_total{{id=\"{id}\",")))
        .unwrap_or_else(|| panic!("no cpu line for {id}: {metrics}"));
    assert!(line.contains(&format!("name=\"{NAME}\"")), "{line}");
    assert!(line.contains(&format!("image=\"{image}\"")), "{line}");
    assert!(
        metrics.contains(&format!(
            "container_spec_memory_limit_bytes{{id=\"{id}\",image=\"{image}\",name=\"{NAME}\"}} 104857600"
        )),
        "{metrics}"
    );

    // SIGTERM to the runner is forwarded to the container, which exits.
    let runner = running.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &runner])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "run did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "run exited with {status}");
    assert!(!Path::new("/run/basic-docker").join(&id).exists());
    let gone = basic_docker(root, &["top", NAME]);
    assert!(!gone.status.success());
}
