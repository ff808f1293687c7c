//! `basic-docker system service` on a private store, state dir and socket, for tests that
//! drive it with docker's own clients.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Debian's docker CLI (20.10, API 1.41), installed by scripts/install-deps.sh.
pub const DOCKER: &str = "/usr/bin/docker";

/// systemd's socket-activation tool (Debian's systemd), installed by scripts/install-deps.sh.
pub const SOCKET_ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// A running service and what it owns.
pub struct ApiService {
    child: Option<Child>,
    dir: tempfile::TempDir,
    /// The image the harness serves, pulled into the service's store.
    pub image: String,
    /// The harness's open registry as a Docker Hub mirror: `busybox` resolves there.
    mirror: String,
}

impl ApiService {
    /// Starts a service on a fresh store with the harness's busybox pulled; `None` (the
    /// test returns) when root, the harness or docker's CLI is missing and skipping is
    /// allowed.
    pub fn start() -> Option<ApiService> {
        let h = basic_test_support::harness()?;
        if !basic_test_support::require_root()
            || !basic_test_support::prerequisite(
                Path::new(DOCKER).exists(),
                "docker's CLI (/usr/bin/docker, Debian's docker.io: scripts/install-deps.sh)",
            )
        {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("config")).unwrap();
        let mut service = ApiService {
            child: None,
            dir,
            image: h.reference("busybox_latest"),
            mirror: format!("http://{}", h.open),
        };
        service.launch(&["--time", "0"]);
        let image = service.image.clone();
        super::ok(service.basic(&["pull", "-q", &image]));
        Some(service)
    }

    /// Starts the service process (again) with `args` before the socket URI.
    pub fn launch(&mut self, args: &[&str]) {
        let command = Command::new(env!("CARGO_BIN_EXE_basic-docker"));
        let uri = format!("unix://{}", self.socket().display());
        let mut args = args.to_vec();
        args.push(&uri);
        self.launch_with(command, &args);
    }

    /// Starts the service as systemd's socket activation does: `systemd-socket-activate`
    /// listens on the socket and, at the first connection, becomes the service with the
    /// listening socket as its descriptor 3 (`LISTEN_FDS`). The URI given is another path:
    /// the service must serve the socket it is passed, not bind its own.
    pub fn launch_activated(&mut self, args: &[&str]) {
        let mut command = Command::new(SOCKET_ACTIVATE);
        command
            .arg("-l")
            .arg(self.socket())
            .arg(env!("CARGO_BIN_EXE_basic-docker"));
        let mut args = args.to_vec();
        let elsewhere = format!("unix://{}", self.dir.path().join("unused.sock").display());
        args.push(&elsewhere);
        self.launch_with(command, &args);
    }

    fn launch_with(&mut self, mut command: Command, args: &[&str]) {
        command
            .arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.state())
            .args(["--registry-mirror", &self.mirror])
            .args(["system", "service"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("service.log"))
                    .unwrap(),
            ));
        self.child = Some(command.spawn().expect("start the service"));
        let until = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(self.socket()).is_err() {
            assert!(
                Instant::now() < until,
                "the service did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the service as an administrator would (SIGTERM), and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the service runs");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        wait_bounded(&mut child, Duration::from_secs(20))
            .unwrap_or_else(|| panic!("the service did not stop on SIGTERM: {}", self.log()))
    }

    /// Waits (bounded) for the service to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the service runs");
        wait_bounded(&mut child, timeout).unwrap_or_else(|| {
            panic!(
                "the service did not exit within {timeout:?}: {}",
                self.log()
            )
        })
    }

    /// The store root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// The run-time state directory.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The test's private directory (the service's store and socket are in it).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("api.sock")
    }

    /// `DOCKER_HOST` for clients.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// What the service wrote on stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("service.log")).unwrap_or_default()
    }

    /// docker's CLI against the service, with a private client config; a command that
    /// does not end (a service that accepts no connection) fails the test.
    pub fn docker(&self, args: &[&str]) -> Output {
        basic_test_support::bounded::output_within(
            &mut self.docker_command(args),
            basic_test_support::bounded::COMMAND_LIMIT,
            &format!("docker {}", args.join(" ")),
        )
    }

    /// The same, as a command to adjust.
    pub fn docker_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(DOCKER);
        command
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("config"))
            .env_remove("DOCKER_API_VERSION")
            .args(args);
        command
    }

    /// Our own CLI on the service's store and state.
    pub fn basic(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_basic-docker"))
            .arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.state())
            .args(args)
            .output()
            .expect("run basic-docker")
    }

    /// A raw request with curl: (status, body).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut command = Command::new("curl");
        command
            .args(["-s", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--unix-socket")
            .arg(self.socket())
            .args(["-X", method]);
        if let Some(body) = body {
            command.args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
            ]);
        }
        let out = command
            .arg(format!("http://localhost{path}"))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl ApiService {
    /// PUTs a file's bytes as the body (an archive for `/containers/{id}/archive`):
    /// (status, body).
    pub fn put_file(&self, path: &str, file: &Path) -> (u16, String) {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"])
            .arg("--unix-socket")
            .arg(self.socket())
            .args([
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/x-tar",
                "--data-binary",
            ])
            .arg(format!("@{}", file.display()))
            .arg(format!("http://localhost{path}"))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

/// The child's exit status, or `None` (after killing it) when `timeout` passes first.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for ApiService {
    fn drop(&mut self) {
        // Everything in this store is this test's: its containers go with it.
        if let Ok(out) = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
            .arg("--root")
            .arg(self.root())
            .arg("--state")
            .arg(self.state())
            .args(["ps", "-aq", "--no-trunc"])
            .output()
        {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.basic(&["rm", "-f", id]);
            }
        }
        let networks = self.basic(&["network", "ls", "-q", "--no-trunc"]);
        for id in String::from_utf8_lossy(&networks.stdout).split_whitespace() {
            // The built-ins refuse; the test's own networks (and their bridges) go.
            let _ = self.basic(&["network", "rm", id]);
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
