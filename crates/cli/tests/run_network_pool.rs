//! Prepared network namespaces (the engine keeps a pool per network): a loop of
//! `run --rm` on the default bridge network leaves nothing but the pool, which
//! `network prune` drains; a container served from the pool has its own names; a
//! container whose supervisor is killed is reclaimed with the address its namespace
//! came with.

mod common;

use common::{basic_docker_pool, ok};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use basic_test_support::bounded::{output_within, until};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const POOL: usize = 2;
const LIMIT: Duration = Duration::from_secs(60);
const NETNS_DIR: &str = "/run/basic-docker/netns";

fn run(root: &Path, args: &[&str]) -> String {
    ok(basic_docker_pool(root, POOL, args))
}

/// A store of its own with busybox, when the harness, root and the plugins are there.
fn store() -> Option<(tempfile::TempDir, String)> {
    let h = basic_test_support::harness()?;
    if !basic_test_support::require_root()
        || !basic_test_support::prerequisite(
            Path::new("/usr/lib/cni/bridge").exists(),
            "the CNI plugins (containernetworking-plugins)",
        )
    {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = h.reference("busybox_latest");
    run(dir.path(), &["pull", "-q", &image]);
    Some((dir, image))
}

/// Drains the pool however the test ends (the store's directory goes after it).
struct Drain<'a>(&'a Path);

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let _ = basic_docker_pool(self.0, POOL, &["network", "prune", "-f"]);
    }
}

/// The addresses host-local holds for this store's default network.
fn allocations(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("networks/ipam/bridge"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The pool's records: (entry id, address, host veth).
fn pool(root: &Path) -> Vec<(String, String, String)> {
    let Ok(entries) = std::fs::read_dir(root.join("networks/pool")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            let net = &v["networks"][0];
            let address = net["address"].as_str().unwrap_or("").to_string();
            (
                v["container_id"].as_str().unwrap().to_string(),
                address.split('/').next().unwrap().to_string(),
                net["host_interface"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn links() -> String {
    let out = output_within(Command::new("ip").args(["-o", "link"]), LIMIT, "ip link");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mounted(path: &Path) -> bool {
    let needle = format!(" {} ", path.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&needle)
}

/// Waits (bounded) for the background teardown and the pool's refill to finish: then the
/// veths of the pool entries exist, their namespaces are mounted, and host-local holds
/// exactly their addresses: nothing else is left.
fn only_the_pool_is_left(root: &Path) {
    until(LIMIT, "the teardown and the refill", || {
        let entries = pool(root);
        entries.len() == POOL
            && entries.iter().all(|e| !e.1.is_empty())
            && allocations(root) == entries.iter().map(|e| e.1.clone()).collect()
    });
    let entries = pool(root);
    assert!(entries.len() <= POOL, "the pool is bounded: {entries:?}");
    let held: BTreeSet<String> = entries.iter().map(|e| e.1.clone()).collect();
    assert_eq!(allocations(root), held, "no address but the pool's");
    let links = links();
    for (id, _, veth) in &entries {
        assert!(links.contains(&format!(" {veth}@")), "{veth}");
        assert!(mounted(&Path::new(NETNS_DIR).join(id)), "{id}");
    }
}

#[test]
fn a_run_rm_loop_leaves_nothing_but_the_pool_and_prune_drains_it() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _drain = Drain(root);
    for i in 0..6 {
        let before: BTreeSet<String> = pool(root).into_iter().map(|e| e.1).collect();
        // Its own names and files, whichever namespace it got.
        let host = format!("loop{i}");
        let out = run(
            root,
            &[
                "run",
                "--rm",
                "--hostname",
                &host,
                &image,
                "sh",
                "-c",
                "hostname; grep -w $(hostname) /etc/hosts; \
                 ip -o -4 addr show eth0",
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], host, "{out}");
        let ip = lines[2]
            .split_whitespace()
            .nth(3)
            .and_then(|a| a.split('/').next())
            .unwrap_or_else(|| panic!("{out}"));
        assert!(lines[1].starts_with(&format!("{ip}\t")), "{out}");
        assert!(lines[1].contains(&host), "{out}");
        // The first run finds the pool empty; its teardown fills it, and every later
        // run takes an address the pool held.
        assert_eq!(before.contains(ip), i > 0, "{ip} {before:?}");
        only_the_pool_is_left(root);
    }
    assert_eq!(pool(root).len(), POOL, "the teardowns filled the pool");
    let entries = pool(root);

    let pruned = run(root, &["network", "prune", "-f"]);
    assert_eq!(pruned, "", "no user network to delete");
    assert!(pool(root).is_empty());
    assert!(allocations(root).is_empty(), "every address released");
    let links = links();
    for (id, _, veth) in &entries {
        assert!(!links.contains(&format!(" {veth}@")), "{veth} left");
        let netns = Path::new(NETNS_DIR).join(id);
        assert!(!mounted(&netns) && !netns.exists(), "{id} left");
    }
}

fn inspect(root: &Path, name: &str) -> serde_json::Value {
    let out = run(root, &["inspect", name]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

fn parent_of(pid: i64) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn a_killed_supervisor_of_a_pooled_container_is_reclaimed_with_its_address() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _drain = Drain(root);
    // The first run's teardown fills the pool.
    run(root, &["run", "--rm", &image, "true"]);
    until(LIMIT, "the pool filled", || {
        let entries = pool(root);
        entries.len() == POOL && entries.iter().all(|e| !e.1.is_empty())
    });
    let ready = pool(root);

    let id = run(root, &["run", "-d", &image, "sleep", "1000"]);
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root.join(format!("networks/cache/{id}.json"))).unwrap(),
    )
    .unwrap();
    let taken = record["cni_container_id"].as_str().expect("from the pool");
    let (_, address, veth) = ready
        .iter()
        .find(|e| e.0 == taken)
        .cloned()
        .expect("one of the prepared namespaces");
    assert_eq!(
        inspect(root, &id)["NetworkSettings"]["IPAddress"],
        address.as_str()
    );
    let pid = inspect(root, &id)["State"]["Pid"].as_i64().unwrap();
    kill(Pid::from_raw(parent_of(pid)), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    until(LIMIT, "the init gone", || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    assert!(allocations(root).contains(&address), "the control");

    let report = basic_docker_pool(root, POOL, &["system", "check"]);
    let report = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(report.contains("network attachment left"), "{report}");
    run(root, &["system", "check", "--repair"]);
    run(root, &["rm", "-f", &id]);
    assert!(
        !allocations(root).contains(&address),
        "its address is released"
    );
    assert!(!links().contains(&format!(" {veth}@")), "its veth is gone");
    let netns: PathBuf = Path::new(NETNS_DIR).join(&id);
    assert!(!netns.exists(), "its namespace is gone");
}

/// `basic-docker` with the plugins of `plugins` (`CNI_PATH`), its output not waited for.
fn run_with_plugins(root: &Path, plugins: &Path, args: &[&str]) -> std::process::ExitStatus {
    let mut child = Command::new(env!("CARGO_BIN_EXE_basic-docker"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env(common::POOL_ENV, POOL.to_string())
        .env("CNI_PATH", plugins)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = None;
    until(LIMIT, "the run", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap()
}

#[test]
fn an_engine_killed_between_the_exit_and_the_teardown_leaves_what_the_next_command_reclaims() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _drain = Drain(root);
    // The real plugins, but a bridge plugin whose DEL hangs (and says so): the teardown
    // process of a `--rm` run can then be killed half-way, as a crash would.
    let plugins = tempfile::tempdir().unwrap();
    let marker = plugins.path().join("del-pid");
    for entry in std::fs::read_dir("/usr/lib/cni").unwrap().flatten() {
        if entry.file_name() != "bridge" {
            std::os::unix::fs::symlink(entry.path(), plugins.path().join(entry.file_name()))
                .unwrap();
        }
    }
    let wrapper = plugins.path().join("bridge");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nif [ \"$CNI_COMMAND\" = DEL ]; then echo $$ > {}.tmp && mv {0}.tmp {0}; \
             exec sleep 1000; fi\nexec /usr/lib/cni/bridge\n",
            marker.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    // A first run (the real plugins) fills the pool; the second takes a namespace from it,
    // and its teardown's DEL hangs.
    run(root, &["run", "--rm", &image, "true"]);
    until(LIMIT, "the pool filled", || {
        let entries = pool(root);
        entries.len() == POOL && entries.iter().all(|e| !e.1.is_empty())
    });
    let name = "killed-teardown";
    let status = run_with_plugins(
        root,
        plugins.path(),
        &["run", "--rm", "--name", name, &image, "true"],
    );
    assert!(status.success());
    until(LIMIT, "the teardown's DEL", || marker.exists());
    let del: i32 = std::fs::read_to_string(&marker)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let teardown = parent_of(del.into());
    let record = std::fs::read_dir(root.join("networks/cache"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| {
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(e.path()).unwrap()).unwrap()
        })
        .expect("the attachment record, kept while the teardown runs");
    let id = record["container_id"].as_str().unwrap().to_string();
    assert!(
        record["cni_container_id"].is_string(),
        "from the pool: {record}"
    );
    let address = record["networks"][0]["address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // While the teardown runs, its attachment is its own, not a leftover.
    assert_eq!(run(root, &["system", "check"]), "No problems found");
    kill(Pid::from_raw(teardown), Signal::SIGKILL).unwrap();
    kill(Pid::from_raw(del), Signal::SIGKILL).unwrap();
    until(LIMIT, "the teardown gone", || {
        !Path::new(&format!("/proc/{teardown}")).exists()
    });
    let out = basic_docker_pool(root, POOL, &["inspect", name]);
    assert!(!out.status.success(), "--rm removed the container");
    assert!(
        allocations(root).contains(&address),
        "the control: {address}"
    );

    // The next command that looks (`system check`) finds the attachment and repairs it.
    let report = basic_docker_pool(root, POOL, &["system", "check"]);
    let report = String::from_utf8_lossy(&report.stdout).into_owned();
    assert!(
        report.contains(&id[..12]) && report.contains("network attachment left"),
        "{report}"
    );
    run(root, &["system", "check", "--repair"]);
    // The repair's teardown may run in a background process of its own.
    until(LIMIT, "its address released and its namespace gone", || {
        !allocations(root).contains(&address) && !Path::new(NETNS_DIR).join(&id).exists()
    });
    assert_eq!(run(root, &["system", "check"]), "No problems found");
}
