//! `basic-docker network create|ls|inspect|rm`, as a user runs them. Each test
//! has its own `--root` and subnets in 10.215.0.0/16.

mod common;

use std::fs;
use std::path::Path;

use basic_network::{AttachRequest, Networks, NetworksConfig};
use common::{basic_docker, ok};

fn failure(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a failure: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn create_ls_inspect_rm_round_trip() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let id = ok(basic_docker(
        root,
        &[
            "network",
            "create",
            "--subnet",
            "10.215.1.0/24",
            "--gateway",
            "10.215.1.254",
            "front",
        ],
    ));
    assert_eq!(id.len(), 64, "the full ID is printed: {id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));

    let table = ok(basic_docker(root, &["network", "ls"]));
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0]
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(header, ["NETWORK ID", "NAME", "DRIVER", "SCOPE"]);
    let rows: Vec<Vec<&str>> = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let names: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(names, ["bridge", "front", "host", "none"], "{table}");
    let front = rows.iter().find(|r| r[1] == "front").unwrap();
    assert_eq!(front, &[&id[..12], "front", "bridge", "local"]);
    let none = rows.iter().find(|r| r[1] == "none").unwrap();
    assert_eq!(none[2], "null");

    let quiet = ok(basic_docker(root, &["network", "ls", "-q"]));
    assert!(quiet.lines().any(|l| l == &id[..12]), "{quiet}");
    let json = ok(basic_docker(root, &["network", "ls", "--format", "json"]));
    let front: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["Name"] == "front")
        .unwrap();
    assert_eq!(front["ID"], &id[..12]);
    assert_eq!(front["Driver"], "bridge");
    assert_eq!(front["Scope"], "local");

    let inspect: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["network", "inspect", &id[..8]]))).unwrap();
    let net = &inspect[0];
    assert_eq!(net["Name"], "front");
    assert_eq!(net["Id"], id);
    assert_eq!(net["IPAM"]["Driver"], "default");
    assert_eq!(net["IPAM"]["Config"][0]["Subnet"], "10.215.1.0/24");
    assert_eq!(net["IPAM"]["Config"][0]["Gateway"], "10.215.1.254");
    assert_eq!(net["Containers"], serde_json::json!({}));
    assert_eq!(net["Driver"], "bridge");
    assert_eq!(net["Scope"], "local");
    let conflist = root.join("networks/front.conflist");
    assert!(conflist.exists(), "{}", conflist.display());
    // The built-ins too, as docker shows them.
    let host: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["network", "inspect", "host"]))).unwrap();
    assert_eq!(host[0]["Name"], "host");
    assert_eq!(host[0]["Driver"], "host");

    assert_eq!(ok(basic_docker(root, &["network", "rm", "front"])), "front");
    assert!(!conflist.exists());
    let err = failure(&basic_docker(root, &["network", "inspect", "front"]));
    assert!(err.contains("network front not found"), "{err}");
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    ok(basic_docker(
        root,
        &["network", "create", "--subnet", "10.215.2.0/24", "one"],
    ));
    let again = |args: &[&str]| failure(&basic_docker(root, args));
    assert!(again(&["network", "create", "one"]).contains("network with name one already exists"));
    let overlap = again(&["network", "create", "--subnet", "10.215.2.128/25", "two"]);
    assert!(overlap.contains("overlaps"), "{overlap}");
    assert!(
        again(&["network", "create", "--subnet", "10.215.3.0/33", "two"])
            .contains("invalid subnet")
    );
    let gateway = again(&[
        "network",
        "create",
        "--subnet",
        "10.215.3.0/24",
        "--gateway",
        "10.215.4.1",
        "two",
    ]);
    assert!(gateway.contains("not a host address"), "{gateway}");
    assert!(again(&["network", "create", "-d", "overlay", "two"]).contains("bridge driver"));
    assert!(again(&["network", "create", "bad/name"]).contains("invalid network name"));
    // By name, by ID (what `network ls -q` prints, and what cleanup scripts pass) and by
    // an ID's prefix: the default network's bridge is every container's, never removed.
    let bridge_device = || fs::read_to_string("/sys/class/net/basic0/ifindex").ok();
    let device_before = bridge_device();
    let list = || {
        ok(basic_docker(
            root,
            &[
                "network",
                "ls",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Name}}",
            ],
        ))
    };
    let listed = list();
    for builtin in ["bridge", "host", "none"] {
        let id = listed
            .lines()
            .find_map(|l| l.strip_suffix(&format!(" {builtin}")))
            .unwrap_or_else(|| panic!("{builtin} not in {listed}"));
        for given in [builtin, id, &id[..12]] {
            let err = again(&["network", "rm", given]);
            assert!(
                err.contains(&format!(
                    "{builtin} is a pre-defined network and cannot be removed"
                )),
                "network rm {given}: {err}"
            );
        }
    }
    assert_eq!(list(), listed);
    if device_before.is_some() {
        assert_eq!(bridge_device(), device_before, "basic0 was deleted");
    }
    assert!(again(&["network", "rm", "missing"]).contains("network missing not found"));
}

#[test]
fn a_network_with_a_container_attached_is_not_removed() {
    if !basic_test_support::require_root()
        || !basic_test_support::prerequisite(
            Path::new("/usr/lib/cni/bridge").exists(),
            "containernetworking-plugins",
        )
    {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    ok(basic_docker(
        root,
        &["network", "create", "--subnet", "10.215.5.0/24", "busy"],
    ));
    let mut config = NetworksConfig::new(root);
    config.netns_dir = "/run/basic-network-test/netns".into();
    let networks = Networks::open(config).unwrap();
    let id = format!("cli-net-{}", std::process::id());
    let mut req = AttachRequest::new(&id);
    req.name = Some("worker".into());
    req.networks = vec!["busy".into()];
    let att = networks.attach(&req).unwrap();
    let bridge = att.networks[0].bridge.clone().unwrap();
    let _cleanup = Cleanup {
        networks: &networks,
        id: &id,
        bridge: &bridge,
    };

    let inspect: serde_json::Value =
        serde_json::from_str(&ok(basic_docker(root, &["network", "inspect", "busy"]))).unwrap();
    let endpoints = inspect[0]["Containers"].as_object().unwrap();
    assert_eq!(endpoints.len(), 1, "{inspect}");
    let endpoint = endpoints.values().next().unwrap();
    assert_eq!(endpoint["Name"], "worker");
    assert_eq!(
        endpoint["IPv4Address"],
        att.networks[0].address.unwrap().to_string()
    );
    let err = failure(&basic_docker(root, &["network", "rm", "busy"]));
    assert!(
        err.contains("network busy has active endpoints: worker"),
        "{err}"
    );

    networks.detach(&id).unwrap();
    assert_eq!(ok(basic_docker(root, &["network", "rm", "busy"])), "busy");
    assert!(
        !Path::new("/sys/class/net").join(&bridge).exists(),
        "the bridge is gone"
    );
}

/// Detaches and deletes the bridge even when an assertion fails.
struct Cleanup<'a> {
    networks: &'a Networks,
    id: &'a str,
    bridge: &'a str,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.networks.detach(self.id);
        let _ = basic_network::delete_bridge(self.bridge);
    }
}
