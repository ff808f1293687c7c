//! The Docker Engine API driven the way users drive it: docker's CLI in the foreground
//! (`run`, `run -i`, `run -it`, `exec`, `cp`, `volume`), docker-compose 1.29 bringing up
//! two services that reach each other by name, docker-py 5 for the same flows — and
//! clients that misbehave: a hostile archive given to `cp`, a client that hangs up in the
//! middle of a hijacked stream.
//!
//! The service resolves `busybox` through the harness's registry as a Docker Hub mirror,
//! as offline users configure it.

mod common;

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use basic_test_support::bounded::{wait_with_output_within, wait_within};
use common::service::ApiService;

#[track_caller]
fn ok(out: Output) -> String {
    common::ok(out)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// Runs `command` with stdin fed `input`, bounded.
fn with_input(mut command: Command, input: &[u8]) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    wait_with_output_within(child, Duration::from_secs(60), "docker's CLI")
}

/// docker's CLI on a terminal of its own (`script` gives it one), its size set first.
fn on_terminal(api: &ApiService, rows: u16, cols: u16, docker_args: &str) -> Output {
    let line = format!(
        "stty rows {rows} cols {cols}; {} {docker_args}",
        common::service::DOCKER
    );
    let mut command = api.docker_command(&[]);
    let envs: Vec<(String, String)> = command
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
        .collect();
    command = Command::new("script");
    command.args(["-qec", &line, "/dev/null"]).envs(envs);
    let child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_output_within(child, Duration::from_secs(60), "docker's CLI")
}

#[test]
fn foreground_run_carries_stdio_terminals_and_exit_codes() {
    let Some(api) = ApiService::start() else {
        return;
    };
    // Output on both streams, kept apart, and the exit code; --rm leaves nothing.
    let out = api.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"), "{}", stderr(&out));
    // Input through the hijacked connection, ended by the client's half-close.
    let out = with_input(
        api.docker_command(&["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done"]),
        b"line one\nline two\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "line one\nline two\ndone\n");
    // A terminal: the container has one, and docker's exit code comes back.
    let out = on_terminal(&api, 30, 100, "run --rm -it busybox sh -c 'tty; exit 7'");
    assert_eq!(out.status.code(), Some(7), "{}", stdout(&out));
    assert!(stdout(&out).contains("/dev/pts/"), "{}", stdout(&out));
    assert_eq!(ok(api.docker(&["ps", "-aq"])), "");
    // The image came through the mirror, named as Docker Hub's.
    let images = ok(api.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert!(images.lines().any(|l| l == "busybox:latest"), "{images}");
}

/// A container that exits at once races its supervisor's end against the client's
/// attachment (the supervisor may close before reading what the client sent): no run may
/// lose the output, however short.
/// docker's CLI against the service for at most 30 s; past that, the test fails with what
/// the engine shows of its containers, their attachments and the service's log.
fn run_or_explain(api: &ApiService, args: &[&str]) -> Output {
    let child = api
        .docker_command(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output());
    let until = Instant::now() + Duration::from_secs(30);
    while !waiter.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    if waiter.is_finished() {
        return waiter.join().unwrap().unwrap();
    }
    let containers = api.basic(&["ps", "-a", "--no-trunc"]);
    let attach = Command::new("find").arg(api.state()).output().unwrap();
    let processes = Command::new("ps")
        .args(["-eo", "pid,ppid,stat,args"])
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
    panic!(
        "docker {args:?} did not end within 30 s\ncontainers:\n{}{}\nstate:\n{}\nprocesses:\n{}\nservice log:\n{}",
        stdout(&containers),
        stderr(&containers),
        String::from_utf8_lossy(&attach.stdout),
        String::from_utf8_lossy(&processes.stdout)
            .lines()
            .filter(|l| l.contains("basic-docker") || l.contains("docker "))
            .collect::<Vec<_>>()
            .join("\n"),
        api.log()
    );
}

#[test]
fn short_lived_containers_never_lose_their_output() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let lost: Vec<String> = (0..40)
        .filter_map(|i| {
            let word = format!("run-{i}");
            let out = run_or_explain(
                &api,
                &["run", "--rm", "--network", "none", "busybox", "echo", &word],
            );
            let printed = stdout(&out);
            (!out.status.success() || printed != format!("{word}\n")).then(|| {
                format!(
                    "{word}: {:?} printed {printed:?} {}",
                    out.status,
                    stderr(&out)
                )
            })
        })
        .collect();
    assert!(lost.is_empty(), "runs that lost their output: {lost:#?}");
    assert_eq!(ok(api.docker(&["ps", "-aq"])), "");
}

#[test]
fn exec_runs_with_pipes_and_with_a_terminal_of_the_clients_size() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let id = ok(api.docker(&["run", "-d", "busybox", "sleep", "300"]));
    let out = api.docker(&["exec", &id, "sh", "-c", "echo in; echo err >&2; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(stdout(&out), "in\n");
    assert_eq!(stderr(&out), "err\n");
    let out = with_input(
        api.docker_command(&["exec", "-i", &id, "sh", "-c", "cat; echo after"]),
        b"data\n",
    );
    assert_eq!(stdout(&out), "data\nafter\n", "{}", stderr(&out));
    let out = on_terminal(
        &api,
        40,
        120,
        &format!("exec -it {id} sh -c 'stty size; exit 6'"),
    );
    assert_eq!(out.status.code(), Some(6), "{}", stdout(&out));
    assert!(stdout(&out).contains("40 120"), "{}", stdout(&out));
    // An exec into a container that is not running is docker's conflict.
    ok(api.docker(&["stop", "-t", "0", &id]));
    let out = api.docker(&["exec", &id, "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
}

#[test]
fn cp_diff_and_volumes_through_the_api_and_a_hostile_archive_stays_inside() {
    let Some(api) = ApiService::start() else {
        return;
    };
    let id = ok(api.docker(&["run", "-d", "busybox", "sleep", "300"]));
    let file = api.dir().join("note.txt");
    std::fs::write(&file, "from the host\n").unwrap();
    ok(api.docker(&["cp", file.to_str().unwrap(), &format!("{id}:/tmp/")]));
    assert_eq!(
        ok(api.docker(&["exec", &id, "cat", "/tmp/note.txt"])),
        "from the host"
    );
    let back = api.dir().join("back");
    ok(api.docker(&["cp", &format!("{id}:/tmp/note.txt"), back.to_str().unwrap()]));
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "from the host\n");
    let diff = ok(api.docker(&["diff", &id]));
    assert!(diff.lines().any(|l| l == "A /tmp/note.txt"), "{diff}");
    let out = api.docker(&["cp", &format!("{id}:/no/such"), back.to_str().unwrap()]);
    assert!(
        stderr(&out).contains("No such container:path"),
        "{}",
        stderr(&out)
    );

    // An archive whose names climb out, and a link planted to reach the host through it.
    let target = api.dir().join("host-target");
    std::fs::create_dir(&target).unwrap();
    let evil = api.dir().join("evil.tar");
    hostile_tar(&evil, &target);
    let (code, body) = api.put_file(&format!("/containers/{id}/archive?path=/tmp"), &evil);
    assert!(code == 200 || code == 400 || code == 500, "{code} {body}");
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "the archive wrote on the host"
    );
    assert!(!Path::new("/pwned-by-archive").exists());

    // Volumes: a named one shared by two containers, then removed.
    ok(api.docker(&["volume", "create", "shared"]));
    ok(api.docker(&[
        "run",
        "--rm",
        "-v",
        "shared:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]));
    assert_eq!(
        ok(api.docker(&[
            "run",
            "--rm",
            "-v",
            "shared:/data",
            "busybox",
            "cat",
            "/data/f"
        ])),
        "kept"
    );
    assert_eq!(ok(api.docker(&["volume", "ls", "-q"])), "shared");
    ok(api.docker(&["volume", "rm", "shared"]));
    assert_eq!(ok(api.docker(&["volume", "ls", "-q"])), "");
    // rm -v takes the anonymous volume along.
    let anon = ok(api.docker(&["create", "-v", "/scratch", "busybox", "true"]));
    assert_eq!(ok(api.docker(&["volume", "ls", "-q"])).lines().count(), 1);
    ok(api.docker(&["rm", "-v", &anon]));
    assert_eq!(ok(api.docker(&["volume", "ls", "-q"])), "");
}

/// A tar with `../` names aimed at `target`, an absolute name, and a symlink to `target`
/// followed by a file through it.
fn hostile_tar(path: &Path, target: &Path) {
    let script = format!(
        r#"
import io, tarfile
t = tarfile.open({path:?}, "w")
def add(name, data=b"x"):
    i = tarfile.TarInfo(name); i.size = len(data); t.addfile(i, io.BytesIO(data))
add("../../../../../../../../..{target}/climbed")
add("/pwned-by-archive")
link = tarfile.TarInfo("hop"); link.type = tarfile.SYMTYPE; link.linkname = {target:?}
t.addfile(link)
add("hop/through-link")
t.close()
"#,
        path = path.display().to_string(),
        target = target.display().to_string(),
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_client_that_hangs_up_mid_attach_lets_the_service_go_idle() {
    let Some(mut api) = ApiService::start() else {
        return;
    };
    let id = ok(api.docker(&["run", "-d", "-i", "busybox", "sleep", "300"]));
    assert!(api.stop().success());
    api.launch(&["--time", "1"]);
    // A silent container: nothing is written to the client, so only its hang-up can end
    // the relay.
    let mut client = api
        .docker_command(&["attach", &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        api.socket().exists(),
        "the service left while a client was attached"
    );
    client.kill().unwrap();
    wait_within(
        &mut client,
        Duration::from_secs(10),
        "the killed attach client",
    );
    // The attachment ends with the client; idle for a second, the service exits.
    assert!(api.wait_exit(Duration::from_secs(20)).success());
    // The container runs on without it.
    let status = ok(api.basic(&["inspect", "-f", "{{.State.Status}}", &id]));
    assert_eq!(status, "running");
}

#[test]
fn compose_brings_up_services_that_reach_each_other_by_name_and_down_leaves_nothing() {
    let Some(api) = ApiService::start() else {
        return;
    };
    if !basic_test_support::prerequisite(
        Path::new("/usr/bin/docker-compose").exists(),
        "docker-compose (Debian's 1.29: scripts/install-deps.sh)",
    ) {
        return;
    }
    let file = api.dir().join("docker-compose.yml");
    std::fs::write(
        &file,
        r#"version: "3.7"
services:
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www"]
  client:
    image: busybox
    command: ["sleep", "300"]
    depends_on: [web]
"#,
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut command = api.docker_command(&[]);
        let envs: Vec<(String, String)> = command
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_str()?.to_string(), v?.to_str()?.to_string())))
            .collect();
        command = Command::new("docker-compose");
        command
            .envs(envs)
            .args(["-p", "basicproj", "-f", file.to_str().unwrap()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        wait_with_output_within(
            command.spawn().unwrap(),
            Duration::from_secs(120),
            "docker-compose",
        )
    };
    let up = compose(&["up", "-d"]);
    assert!(up.status.success(), "{}{}", stdout(&up), stderr(&up));
    let until = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let out = api.docker(&["exec", "basicproj_client_1", "wget", "-qO-", "http://web/"]);
        if out.status.success() {
            break stdout(&out);
        }
        assert!(
            Instant::now() < until,
            "web never answered: {}",
            stderr(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(page, "hello-from-web\n");
    let ps = compose(&["ps"]);
    assert!(stdout(&ps).contains("basicproj_web_1"), "{}", stdout(&ps));
    let down = compose(&["down"]);
    assert!(down.status.success(), "{}{}", stdout(&down), stderr(&down));
    assert_eq!(ok(api.docker(&["ps", "-aq"])), "");
    let networks = ok(api.docker(&["network", "ls", "--format", "{{.Name}}"]));
    assert!(!networks.contains("basicproj"), "{networks}");
}

#[test]
fn docker_py_drives_containers_exec_archives_networks_and_volumes() {
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
import io, tarfile, time, docker
c = docker.DockerClient(base_url="unix://" + SOCKET, version="auto")
assert c.ping()
c.images.pull("busybox", tag="latest")
out = c.containers.run("busybox", ["sh", "-c", "echo hi; echo err >&2"], remove=True)
assert out == b"hi\n", out
net = c.networks.create("pynet")
srv = c.containers.run("busybox", ["sh", "-c", "echo pong > /tmp/index.html; exec httpd -f -p 80 -h /tmp"],
                       detach=True, name="pysrv", network="pynet")
cli = c.containers.run("busybox", ["sleep", "60"], detach=True, name="pycli", network="pynet")
for _ in range(150):
    code, out = cli.exec_run(["wget", "-qO-", "http://pysrv/"])
    if code == 0:
        break
    time.sleep(0.2)
assert (code, out) == (0, b"pong\n"), (code, out)
code, out = cli.exec_run(["sh", "-c", "echo ex; exit 3"])
assert (code, out) == (3, b"ex\n"), (code, out)
buf = io.BytesIO()
t = tarfile.open(fileobj=buf, mode="w")
data = b"payload"
info = tarfile.TarInfo("f.txt"); info.size = len(data); t.addfile(info, io.BytesIO(data)); t.close()
assert cli.put_archive("/tmp", buf.getvalue())
stream, stat = cli.get_archive("/tmp/f.txt")
assert stat["name"] == "f.txt" and stat["size"] == 7, stat
got = tarfile.open(fileobj=io.BytesIO(b"".join(stream))).extractfile("f.txt").read()
assert got == data, got
cli.reload(); assert cli.status == "running"
assert c.containers.get("pysrv").attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"]
vol = c.volumes.create("pyvol")
assert "pyvol" in [v.name for v in c.volumes.list()]
c.containers.run("busybox", ["sh", "-c", "echo v > /d/x"], volumes={"pyvol": {"bind": "/d", "mode": "rw"}}, remove=True)
assert c.containers.run("busybox", ["cat", "/d/x"], volumes={"pyvol": {"bind": "/d", "mode": "rw"}}, remove=True) == b"v\n"
for x in (srv, cli):
    x.remove(force=True)
vol.remove()
net.remove()
assert c.containers.list(all=True) == []
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
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("ALL OK"), "{}", stdout(&out));
}

#[test]
fn images_are_saved_and_loaded_through_the_api_and_a_broken_archive_changes_nothing() {
    let Some(api) = ApiService::start() else {
        return;
    };
    ok(api.docker(&["pull", "-q", "busybox"]));
    let archive = api.dir().join("busybox.tar");
    ok(api.docker(&["save", "-o", archive.to_str().unwrap(), "busybox"]));
    ok(api.docker(&["rmi", "busybox"]));
    let loaded = ok(api.docker(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(loaded, "Loaded image: busybox:latest");
    assert_eq!(
        ok(api.docker(&["run", "--rm", "busybox", "echo", "back"])),
        "back"
    );
    let out = api.docker(&[
        "save",
        "-o",
        api.dir().join("x.tar").to_str().unwrap(),
        "nosuch",
    ]);
    assert!(
        stderr(&out).contains("No such image: nosuch"),
        "{}",
        stderr(&out)
    );

    // A truncated archive: refused, and the store is as it was.
    let before = ok(api.docker(&["images", "-q", "--no-trunc"]));
    let bytes = std::fs::read(&archive).unwrap();
    let broken = api.dir().join("broken.tar");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).unwrap();
    let out = api.docker(&["load", "-i", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Error response from daemon"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ok(api.docker(&["images", "-q", "--no-trunc"])), before);
    let check = api.basic(&["system", "check"]);
    assert!(
        check.status.success(),
        "{}{}",
        stdout(&check),
        stderr(&check)
    );
}
