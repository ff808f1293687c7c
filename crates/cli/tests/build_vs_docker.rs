//! The same Dockerfile built by docker's classic builder (Debian's dockerd, started
//! here on a private socket and data root, without touching the host's firewall) and
//! by basic-docker: the root filesystems of a container of each (exported) have the
//! same names, types, modes, owners and contents. (`--chmod` is left out: the classic
//! builder refuses it.) Then the image built here is pushed by basic-docker to the
//! harness registry, and docker pulls it and runs it: the same image id, the same
//! user, directory and files.

mod common;

use common::{basic_docker, ok};

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use basic_test_support::bounded::{COMMAND_LIMIT, output_within};

const DOCKERD: &str = "/usr/sbin/dockerd";
const DOCKER: &str = "/usr/bin/docker";

const DOCKERFILE: &str = r#"ARG BASE
FROM $BASE
WORKDIR /srv/app
COPY app/ ./
COPY --chown=1000:1000 app/main.txt /srv/owned.txt
ADD files.tar.gz /srv/unpacked/
RUN mkdir -p /var/made/deep && echo made > /var/made/deep/file && ln -s /var/made /made-link \
 && rm -rf /home /etc/group && chmod 700 /var/made && touch /srv/app/touched
USER 1000
RUN echo as-user > /tmp/user-file
"#;

/// A dockerd of our own, stopped when dropped.
struct Dockerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn start(mirror_registry: &str) -> Dockerd {
        let dir = tempfile::Builder::new()
            .prefix("dkd")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path();
        let log = fs::File::create(d.join("log")).unwrap();
        let child = Command::new(DOCKERD)
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .arg("--insecure-registry")
            .arg(mirror_registry)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let dockerd = Dockerd { child, dir };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if dockerd.docker(&["version"]).status.success() {
                return dockerd;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        panic!(
            "dockerd did not answer within 60 s:\n{}",
            fs::read_to_string(dockerd.dir.path().join("log")).unwrap_or_default()
        );
    }

    fn docker(&self, args: &[&str]) -> std::process::Output {
        output_within(
            Command::new(DOCKER)
                .env(
                    "DOCKER_HOST",
                    format!("unix://{}", self.dir.path().join("docker.sock").display()),
                )
                .env("DOCKER_BUILDKIT", "0")
                .env("DOCKER_CONFIG", self.dir.path().join("config"))
                .args(args),
            COMMAND_LIMIT,
            &format!("docker {args:?}"),
        )
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: signalling the child we started, by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One member of an export as compared: kind, mode, owner, size, content or target.
type Member = (char, u32, u64, u64, u64, Vec<u8>);

/// An exported root, less what each engine adds at run time.
fn members(archive: &Path) -> BTreeMap<String, Member> {
    let mut out = BTreeMap::new();
    let mut tar = tar::Archive::new(fs::File::open(archive).unwrap());
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .trim_start_matches("./")
            .to_string();
        // docker's init layer makes these (and /proc, /sys) for every container.
        let runtime_made = [
            ".dockerenv",
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "etc/mtab",
            "proc",
            "sys",
        ];
        if name.is_empty()
            || runtime_made.contains(&name.as_str())
            || name.starts_with("dev/")
            || name.starts_with("proc/")
            || name.starts_with("sys/")
        {
            continue;
        }
        let h = entry.header().clone();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => 'd',
            tar::EntryType::Symlink => 'l',
            tar::EntryType::Link => 'h',
            tar::EntryType::Regular | tar::EntryType::Continuous => 'f',
            tar::EntryType::Char => 'c',
            tar::EntryType::Block => 'b',
            tar::EntryType::Fifo => 'p',
            _ => '?',
        };
        let mut body = Vec::new();
        match kind {
            'f' => {
                entry.read_to_end(&mut body).unwrap();
            }
            'l' | 'h' => body = entry.link_name_bytes().unwrap_or_default().to_vec(),
            _ => {}
        }
        // Hard links: docker's export and ours may pick another first name.
        let kind = if kind == 'h' { 'f' } else { kind };
        out.insert(
            name,
            (
                kind,
                h.mode().unwrap() & 0o7777,
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.size().unwrap_or(0),
                body,
            ),
        );
    }
    out
}

#[test]
fn docker_and_basic_docker_build_the_same_tree() {
    let Some((store, image)) = common::busybox_store() else {
        return;
    };
    if !basic_test_support::prerequisite(
        Path::new(DOCKERD).exists() && Path::new(DOCKER).exists(),
        "Debian's docker.io (dockerd and docker): scripts/install-deps.sh",
    ) {
        return;
    }
    let h = basic_test_support::harness().unwrap();
    let root = store.path();
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    fs::create_dir_all(c.join("app/sub")).unwrap();
    fs::write(c.join("Dockerfile"), DOCKERFILE).unwrap();
    fs::write(c.join("app/main.txt"), "main\n").unwrap();
    fs::write(c.join("app/sub/deep.txt"), "deep\n").unwrap();
    std::os::unix::fs::symlink("main.txt", c.join("app/link")).unwrap();
    fs::set_permissions(
        c.join("app/main.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    fs::create_dir_all(c.join("files")).unwrap();
    fs::write(c.join("files/inside.txt"), "tarred\n").unwrap();
    assert!(
        Command::new("tar")
            .arg("-C")
            .arg(c.join("files"))
            .arg("-czf")
            .arg(c.join("files.tar.gz"))
            .arg("inside.txt")
            .status()
            .unwrap()
            .success()
    );

    let dockerd = Dockerd::start(&h.open);
    let base = format!("BASE={image}");
    let ctx_arg = c.to_str().unwrap();
    let built = dockerd.docker(&[
        "build",
        "--network",
        "none",
        "--build-arg",
        &base,
        "-t",
        "compare:docker",
        ctx_arg,
    ]);
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    ok(dockerd.docker(&["create", "--name", "compare", "compare:docker"]));
    let theirs = ctx.path().join("docker.tar");
    ok(dockerd.docker(&["export", "-o", theirs.to_str().unwrap(), "compare"]));

    // Where the image built here goes, for docker to pull and run it.
    let shipped = format!("{}/built/compare:{}", h.open, std::process::id());
    let _cleanup =
        common::Cleanup::new(root, &["compare-basic"]).images(&["compare:basic", shipped.as_str()]);
    ok(basic_docker(
        root,
        &[
            "build",
            "--network",
            "none",
            "--build-arg",
            &base,
            "-t",
            "compare:basic",
            ctx_arg,
        ],
    ));
    ok(basic_docker(
        root,
        &[
            "create",
            "--network",
            "none",
            "--name",
            "compare-basic",
            "compare:basic",
        ],
    ));
    let ours: PathBuf = ctx.path().join("basic.tar");
    ok(basic_docker(
        root,
        &["export", "-o", ours.to_str().unwrap(), "compare-basic"],
    ));

    let (theirs, ours) = (members(&theirs), members(&ours));
    let names = |m: &BTreeMap<String, Member>| m.keys().cloned().collect::<Vec<_>>();
    let only_theirs: Vec<_> = names(&theirs)
        .into_iter()
        .filter(|n| !ours.contains_key(n))
        .collect();
    let only_ours: Vec<_> = names(&ours)
        .into_iter()
        .filter(|n| !theirs.contains_key(n))
        .collect();
    assert!(
        only_theirs.is_empty() && only_ours.is_empty(),
        "only docker's: {only_theirs:?}\nonly ours: {only_ours:?}"
    );
    for (name, member) in &theirs {
        assert_eq!(
            Some(member),
            ours.get(name),
            "{name} differs (docker's first)"
        );
    }

    // Shipped: pushed by basic-docker, pulled and run by docker, the same image.
    ok(basic_docker(root, &["tag", "compare:basic", &shipped]));
    ok(basic_docker(root, &["push", &shipped]));
    ok(dockerd.docker(&["pull", &shipped]));
    let ran = ok(dockerd.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &shipped,
        "sh",
        "-c",
        "id -u; pwd; cat /tmp/user-file /srv/unpacked/inside.txt",
    ]));
    assert_eq!(ran, "1000\n/srv/app\nas-user\ntarred");
    assert_eq!(
        ok(dockerd.docker(&["inspect", "-f", "{{.Id}}", &shipped])),
        ok(basic_docker(
            root,
            &["inspect", "-f", "{{.Id}}", "compare:basic"]
        )),
        "docker pulled another image than the one built here"
    );
}
