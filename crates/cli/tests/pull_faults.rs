//! A pull that runs out of disk, and a pull killed with SIGKILL: each leaves
//! the store consistent (no image, nothing in tmp/, `system check` clean) and
//! a later pull completes.

mod common;

use common::{basic_docker, stdout, tmp_is_empty};

use std::path::Path;
use std::process::Command;

use basic_test_support::{harness, require_root};

/// Unmounts the small tmpfs whatever the test does.
struct Mounted<'a>(&'a Path);

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn a_full_disk_fails_cleanly_and_a_bigger_root_pulls() {
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    // busybox is ~1 MB compressed and ~2 MB extracted: 2 MB cannot hold both.
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs");
    let _mounted = Mounted(&small);
    let reference = h.reference("busybox_latest");

    let out = basic_docker(&small, &["pull", &reference]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.to_lowercase().contains("no space left on device"),
        "{err}"
    );
    assert!(tmp_is_empty(&small), "tmp/ not empty after a full disk");
    assert_eq!(stdout(&basic_docker(&small, &["images", "-q"])).trim(), "");
    assert_eq!(
        stdout(&basic_docker(&small, &["system", "check"])).trim(),
        "No problems found"
    );
    assert!(
        std::fs::read_dir(small.join("layers"))
            .unwrap()
            .next()
            .is_none()
    );

    let big = dir.path().join("big");
    stdout(&basic_docker(&big, &["pull", "-q", &reference]));
    assert_eq!(
        stdout(&basic_docker(&big, &["system", "check"])).trim(),
        "No problems found"
    );
}

/// A proxy in front of the harness registry that sends blob bodies slowly
/// (64 KiB every 100 ms), so a pull can be killed in the middle of a layer.
const SLOW_PROXY: &str = r#"
import http.server, socketserver, sys, time, urllib.request
UPSTREAM = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        req = urllib.request.Request("http://" + UPSTREAM + self.path,
            headers={k: v for k, v in self.headers.items() if k.lower() in ("accept", "range")})
        try:
            resp = urllib.request.urlopen(req)
        except urllib.error.HTTPError as e:
            resp = e
        body = resp.read()
        self.send_response(resp.status if hasattr(resp, "status") else resp.code)
        for k in ("Content-Type", "Docker-Content-Digest", "Docker-Distribution-Api-Version"):
            if resp.headers.get(k):
                self.send_header(k, resp.headers.get(k))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        slow = "/blobs/" in self.path and len(body) > 100000
        try:
            for i in range(0, len(body), 65536):
                self.wfile.write(body[i:i + 65536])
                if slow:
                    time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the killed pull
    def do_HEAD(self):
        self.do_GET()
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
s = S(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

#[test]
fn a_pull_killed_mid_layer_is_completed_by_the_next() {
    use std::io::BufRead as _;
    let Some(h) = harness() else { return };
    if !require_root() {
        return;
    }
    let busybox = h.fixture("busybox_latest");
    let registry = busybox["registry"].as_str().unwrap().to_string();
    let mut proxy = Command::new("python3")
        .arg("-c")
        .arg(SLOW_PROXY)
        .arg(&registry)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut port = String::new();
    std::io::BufReader::new(proxy.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let reference = format!("127.0.0.1:{}/fixtures/busybox:latest", port.trim());

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(["pull", &reference])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the layer is being written in tmp/, then SIGKILL.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let busy = std::fs::read_dir(root.join("tmp"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if busy {
            std::thread::sleep(std::time::Duration::from_millis(300));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pull never started a layer"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the pull ended before the kill"
    );
    child.kill().unwrap(); // SIGKILL
    basic_test_support::bounded::wait_within(
        &mut child,
        std::time::Duration::from_secs(10),
        "the killed pull",
    );
    assert_eq!(stdout(&basic_docker(root, &["images", "-q"])).trim(), "");

    // The next pull (through the same slow proxy) completes and cleans up.
    stdout(&basic_docker(root, &["pull", "-q", &reference]));
    let _ = proxy.kill();
    let _ = proxy.wait();
    assert!(tmp_is_empty(root));
    let id = busybox["config"]["digest"].as_str().unwrap();
    assert!(id.contains(stdout(&basic_docker(root, &["images", "-q"])).trim()));
    assert_eq!(
        stdout(&basic_docker(root, &["system", "check"])).trim(),
        "No problems found"
    );
}

/// What a user reads when the registry cannot be reached: each piece of context once
/// (no `pulling X: pulling X:`, no URL said twice), with docker's exit code.
#[test]
fn an_unreachable_registry_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = basic_docker(dir.path(), &["run", "--rm", "127.0.0.1:1/nothing", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error line in {err}"));
    let url = "http://127.0.0.1:1/v2/nothing/manifests/latest";
    assert!(
        line.starts_with(&format!(
            "Error: pulling 127.0.0.1:1/nothing:latest: request to {url} failed: \
             error sending request: "
        )),
        "{line}"
    );
    assert!(
        line.ends_with("Connection refused (os error 111)"),
        "{line}"
    );
    assert_eq!(line.matches("pulling").count(), 1, "{line}");
    assert_eq!(line.matches(url).count(), 1, "{line}");
    let pieces: Vec<&str> = line.split(": ").collect();
    assert!(
        pieces.windows(2).all(|w| w[0] != w[1]),
        "a piece repeated: {line}"
    );
}
