//! `run --network`, `-p`, `port`, and teardown, through the real CNI plugins.
//! Traffic goes only to 127.0.0.1 and to containers these tests start.

mod common;

use common::{
    Cleanup, LOCAL_TOOL_LIMIT, basic_docker, busybox_rootfs_tar, busybox_store, fetch, ok,
};

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use basic_test_support::bounded::{output_within, until};
use basic_test_support::prerequisite;

/// `program args...`'s standard output (a local tool, bounded).
fn tool(program: &str, args: &[&str]) -> String {
    let out = output_within(
        Command::new(program).args(args),
        LOCAL_TOOL_LIMIT,
        &format!("{program} {args:?}"),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn store() -> Option<&'static (tempfile::TempDir, String)> {
    let store = busybox_store()?;
    prerequisite(
        Path::new("/usr/lib/cni/bridge").exists(),
        "the CNI plugins (containernetworking-plugins)",
    )
    .then_some(store)
}

/// The host side of a running container's eth0 (its peer's ifindex, read inside).
fn host_veth(root: &Path, name: &str) -> String {
    let index = ok(basic_docker(
        root,
        &["exec", name, "cat", "/sys/class/net/eth0/iflink"],
    ));
    tool("ip", &["-o", "link"])
        .lines()
        .find(|l| l.starts_with(&format!("{index}: ")))
        .and_then(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .expect("the host veth")
}

/// What a container's networking could leave on the host: its veth, and
/// iptables rules naming it (CNI's rules carry the container id).
fn host_traces(id: &str, veth: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in tool("ip", &["-o", "link"]).lines() {
        if line.contains(&format!(" {veth}@")) {
            found.push(line.to_string());
        }
    }
    for line in tool("iptables-save", &[]).lines() {
        if line.contains(id) {
            found.push(line.to_string());
        }
    }
    found
}

#[test]
fn containers_on_one_network_reach_each_other_and_no_one_else() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["alpha", "beta", "outsider"]).networks(&["front", "back"]);
    ok(basic_docker(
        root,
        &["network", "create", "--subnet", "10.214.1.0/24", "front"],
    ));
    ok(basic_docker(
        root,
        &["network", "create", "--subnet", "10.214.2.0/24", "back"],
    ));
    for (name, net) in [("alpha", "front"), ("beta", "front"), ("outsider", "back")] {
        ok(basic_docker(
            root,
            &[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                net,
                image,
                "sleep",
                "1000",
            ],
        ));
    }
    let ping = |from: &str, to: &str| {
        basic_docker(root, &["exec", from, "ping", "-c", "1", "-W", "2", to])
            .status
            .success()
    };
    assert!(ping("alpha", "beta"), "alpha reaches beta by name");
    assert!(ping("beta", "alpha"), "beta reaches alpha by name");
    let beta_ip = ok(basic_docker(
        root,
        &["exec", "beta", "sh", "-c", "ip -4 -o addr show eth0"],
    ));
    let beta_ip = beta_ip
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(beta_ip.starts_with("10.214.1."), "{beta_ip}");
    assert!(ping("alpha", &beta_ip), "by IP");
    assert!(
        !ping("outsider", &beta_ip),
        "another network cannot reach it"
    );
    let hosts = ok(basic_docker(root, &["exec", "alpha", "cat", "/etc/hosts"]));
    assert!(hosts.contains("beta"), "{hosts}");
    // beta goes; alpha's hosts file forgets it.
    ok(basic_docker(root, &["rm", "-f", "beta"]));
    let hosts = ok(basic_docker(root, &["exec", "alpha", "cat", "/etc/hosts"]));
    assert!(!hosts.contains("beta"), "{hosts}");
}

#[test]
fn a_published_port_serves_the_host_at_localhost() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["httpd"]);
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "served from the container\n").unwrap();
    let volume = format!("{}:/www:ro", www.path().display());
    let id = ok(basic_docker(
        root,
        &[
            "run", "-d", "--name", "httpd", "-p", "18080:80", "-v", &volume, image, "httpd", "-f",
            "-p", "80", "-h", "/www",
        ],
    ));
    let ps = ok(basic_docker(root, &["ps"]));
    assert!(ps.contains("0.0.0.0:18080->80/tcp"), "{ps}");
    assert_eq!(
        ok(basic_docker(root, &["port", "httpd"])),
        "80/tcp -> 0.0.0.0:18080"
    );
    assert_eq!(
        fetch("http://127.0.0.1:18080/"),
        "served from the container\n"
    );
    let ip = ok(basic_docker(
        root,
        &["exec", "httpd", "sh", "-c", "ip -4 -o addr show eth0"],
    ));
    let ip = ip
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let veth = host_veth(root, "httpd");
    // The monitor's gap view finds the same host end of the pair.
    let gap = ok(basic_docker(
        root,
        &["monitor", "gap", "httpd", "--format", "json"],
    ));
    assert!(gap.contains(&format!("\"{veth}\"")), "{gap}");
    assert!(
        host_traces(&id, &veth).len() >= 2,
        "a veth and rules while it runs"
    );
    ok(basic_docker(root, &["rm", "-f", "httpd"]));
    assert_eq!(host_traces(&id, &veth), Vec::<String>::new());
    let leases = root.join("networks");
    let held = walk(&leases)
        .into_iter()
        .filter(|p| p.ends_with(&ip))
        .count();
    assert_eq!(held, 0, "no IP allocation left for {ip}");
}

#[test]
fn a_killed_supervisor_leaves_nothing_after_rm_f() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["victim"]);
    let id = ok(basic_docker(
        root,
        &["run", "-d", "--name", "victim", image, "sleep", "1000"],
    ));
    let doc: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["inspect", "victim"]))).unwrap();
    let pid = doc[0]["State"]["Pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ppid: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let veth = host_veth(root, "victim");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(ppid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(!host_traces(&id, &veth).is_empty());
    ok(basic_docker(root, &["rm", "-f", "victim"]));
    assert_eq!(host_traces(&id, &veth), Vec::<String>::new());
    assert!(!Path::new("/run/basic-docker/netns").join(&id).exists());
}

#[test]
fn fifty_containers_leak_nothing() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    // Other engines and tests on the machine have containers too: only these fifty count.
    let tag = format!("fifty-{}", std::process::id());
    for i in 0..50 {
        let name = format!("{tag}-{i}");
        let out = basic_docker(root, &["run", "--rm", "--name", &name, image, "true"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ids = created_ids(root, &tag);
    assert_eq!(ids.len(), 50, "the fifty containers in the events journal");
    // A `--rm` container's network is torn down in the background after `run` returns.
    until(
        Duration::from_secs(60),
        "the fifty containers' networks torn down",
        || network_traces(root, &ids).is_empty(),
    );
}

/// The ids of the containers created in the store at `root` whose names start with `tag`,
/// from its events journal.
fn created_ids(root: &Path, tag: &str) -> Vec<String> {
    let journal = std::fs::read_to_string(root.join("events.jsonl")).unwrap();
    journal
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| e["Action"] == "create")
        .filter(|e| {
            e["Actor"]["Attributes"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(tag))
        })
        .filter_map(|e| e["Actor"]["ID"].as_str().map(str::to_string))
        .collect()
}

/// What the networking of containers `ids` could still hold: namespaces, network records,
/// address allocations (host-local writes the container's id into each) and iptables rules
/// naming them. A veth lives only as long as its container's namespace.
fn network_traces(root: &Path, ids: &[String]) -> Vec<String> {
    let rules = tool("iptables-save", &[]);
    let allocations: Vec<(std::path::PathBuf, String)> = walk(&root.join("networks").join("ipam"))
        .into_iter()
        .filter_map(|p| Some((p.clone(), std::fs::read_to_string(&p).ok()?)))
        .collect();
    let mut found = Vec::new();
    for id in ids {
        let netns = Path::new("/run/basic-docker/netns").join(id);
        let record = root
            .join("networks")
            .join("cache")
            .join(format!("{id}.json"));
        found.extend(
            [netns, record]
                .into_iter()
                .filter(|p| p.exists())
                .map(|p| p.display().to_string()),
        );
        found.extend(
            allocations
                .iter()
                .filter(|(_, owner)| owner.contains(id.as_str()))
                .map(|(p, _)| format!("allocation {}", p.display())),
        );
        found.extend(
            rules
                .lines()
                .filter(|l| l.contains(id.as_str()))
                .map(str::to_string),
        );
    }
    found
}

#[test]
fn none_host_and_unknown_networks() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let out = ok(basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "ip",
            "-o",
            "link",
        ],
    ));
    assert_eq!(out.lines().count(), 1, "loopback only: {out}");
    let err = basic_docker(
        root,
        &["run", "--rm", "--network", "nosuchnet", image, "true"],
    );
    assert_eq!(err.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&err.stderr);
    assert!(stderr.contains("network nosuchnet not found"), "{stderr}");
    let err = basic_docker(root, &["run", "--rm", "-p", "99999:80", image, "true"]);
    assert_eq!(err.status.code(), Some(125));
    let resolv = ok(basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--dns",
            "192.0.2.53",
            image,
            "cat",
            "/etc/resolv.conf",
        ],
    ));
    assert_eq!(resolv, "nameserver 192.0.2.53");
    let host = ok(basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            image,
            "cat",
            "/etc/hostname",
        ],
    ));
    assert!(!host.is_empty());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn publish_all_maps_the_images_exposed_ports_to_free_ports() {
    let Some((dir, _)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["exposed"]);
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs_tar(work.path());
    ok(basic_docker(
        root,
        &[
            "import",
            "-c",
            "EXPOSE 80",
            "-c",
            r#"CMD ["httpd", "-f", "-p", "80", "-h", "/www"]"#,
            tar.to_str().unwrap(),
            "local/exposed:1",
        ],
    ));
    ok(basic_docker(
        root,
        &["run", "-d", "-P", "--name", "exposed", "local/exposed:1"],
    ));
    let port = ok(basic_docker(root, &["port", "exposed"]));
    let host_port: u16 = port
        .strip_prefix("80/tcp -> 0.0.0.0:")
        .unwrap_or_else(|| panic!("{port}"))
        .parse()
        .unwrap();
    assert!(host_port > 1024, "a free ephemeral port: {port}");
    let url = format!("http://127.0.0.1:{host_port}/");
    assert_eq!(fetch(&url), "served by an imported image\n");
    ok(basic_docker(root, &["rm", "-f", "exposed"]));
}

#[test]
fn network_container_shares_another_containers_namespace() {
    let Some((dir, image)) = store() else { return };
    let root = dir.path();
    let _cleanup = Cleanup::new(root, &["host-of-net"]);
    ok(basic_docker(
        root,
        &["run", "-d", "--name", "host-of-net", image, "sleep", "1000"],
    ));
    let addr = |flags: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[image.as_str(), "readlink", "/proc/self/ns/net"]);
        ok(basic_docker(root, &args))
    };
    let theirs = ok(basic_docker(
        root,
        &["exec", "host-of-net", "readlink", "/proc/self/ns/net"],
    ));
    assert_eq!(addr(&["--network", "container:host-of-net"]), theirs);
    assert_ne!(addr(&["--network", "none"]), theirs);
    let err = basic_docker(
        root,
        &[
            "run",
            "--rm",
            "--network",
            "container:nosuch",
            image,
            "true",
        ],
    );
    assert_eq!(err.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&err.stderr).contains("No such container: nosuch"));
}
