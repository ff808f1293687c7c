//! The protocol as seen by plugins, checked with a recording runner (no root, no plugins).

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;

/// Records every invocation and answers each plugin type with a canned output.
#[derive(Default, Clone)]
pub(crate) struct Recorder {
    pub(crate) calls: Arc<Mutex<Vec<Invocation>>>,
    pub(crate) fail: Option<(&'static str, &'static str)>,
}

impl PluginRunner for Recorder {
    fn run(&self, inv: &Invocation) -> std::io::Result<PluginOutput> {
        self.calls.lock().unwrap().push(inv.clone());
        let kind = inv
            .plugin
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let command = inv
            .env
            .iter()
            .find(|(k, _)| k == "CNI_COMMAND")
            .unwrap()
            .1
            .clone();
        if self.fail == Some((kind.as_str(), command.as_str())) {
            return Ok(PluginOutput {
                success: false,
                stdout:
                    br#"{"cniVersion":"1.0.0","code":7,"msg":"bad config","details":"no bridge"}"#
                        .to_vec(),
                stderr: Vec::new(),
            });
        }
        // Each plugin adds one interface named after itself to whatever came before.
        let conf: Value = serde_json::from_slice(&inv.stdin).unwrap();
        let mut result = conf.get("prevResult").cloned().unwrap_or(json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0}]
        }));
        result["interfaces"]
            .as_array_mut()
            .map(|a| a.push(json!({"name": kind})))
            .unwrap_or_else(|| result["interfaces"] = json!([{"name": kind}]));
        Ok(PluginOutput {
            success: true,
            stdout: if command == "ADD" {
                serde_json::to_vec(&result).unwrap()
            } else {
                Vec::new()
            },
            stderr: Vec::new(),
        })
    }
}

pub(crate) fn plugin_dir(names: &[&str]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        let path = dir.path().join(name);
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn list() -> NetworkConfigList {
    NetworkConfigList::from_json(
        r#"{"cniVersion":"1.0.0","name":"net1","plugins":[
            {"type":"bridge","bridge":"br1"},
            {"type":"portmap","capabilities":{"portMappings":true}},
            {"type":"firewall"}]}"#,
    )
    .unwrap()
}

fn rt() -> RuntimeConf {
    let mut caps = Map::new();
    caps.insert(
        "portMappings".into(),
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
    );
    caps.insert("bandwidth".into(), json!({"ingressRate": 1}));
    RuntimeConf {
        container_id: "c1".into(),
        netns: "/run/netns/c1".into(),
        ifname: "eth0".into(),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K".into(), "V".into()),
        ],
        capability_args: caps,
    }
}

pub(crate) fn stdin(inv: &Invocation) -> Value {
    serde_json::from_slice(&inv.stdin).unwrap()
}

pub(crate) fn env<'a>(inv: &'a Invocation, key: &str) -> &'a str {
    &inv.env.iter().find(|(k, _)| k == key).unwrap().1
}

#[test]
fn add_chains_prev_result_and_passes_the_spec_environment() {
    let dir = plugin_dir(&["bridge", "portmap", "firewall"]);
    let recorder = Recorder::default();
    let cni = Cni::with_runner(vec![dir.path().into()], Box::new(recorder.clone()));
    let result = cni.add_list(&list(), &rt()).unwrap();
    let names: Vec<_> = result.interfaces.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["bridge", "portmap", "firewall"],
        "the last plugin's result is returned"
    );

    let calls = recorder.calls.lock().unwrap();
    assert_eq!(calls.len(), 3);
    let first = &calls[0];
    assert_eq!(env(first, "CNI_COMMAND"), "ADD");
    assert_eq!(env(first, "CNI_CONTAINERID"), "c1");
    assert_eq!(env(first, "CNI_NETNS"), "/run/netns/c1");
    assert_eq!(env(first, "CNI_IFNAME"), "eth0");
    assert_eq!(env(first, "CNI_ARGS"), "IgnoreUnknown=1;K=V");
    assert_eq!(env(first, "CNI_PATH"), dir.path().to_str().unwrap());
    let conf = stdin(first);
    assert_eq!(conf["name"], "net1");
    assert_eq!(conf["cniVersion"], "1.0.0");
    assert_eq!(conf["bridge"], "br1");
    assert!(
        conf.get("prevResult").is_none(),
        "the first plugin has no prevResult"
    );
    assert!(
        conf.get("runtimeConfig").is_none(),
        "bridge declares no capability"
    );

    let portmap = stdin(&calls[1]);
    assert_eq!(portmap["prevResult"]["interfaces"][0]["name"], "bridge");
    assert_eq!(
        portmap["runtimeConfig"]["portMappings"][0]["hostPort"],
        8080
    );
    assert!(
        portmap["runtimeConfig"].get("bandwidth").is_none(),
        "only declared capabilities"
    );
    let firewall = stdin(&calls[2]);
    assert_eq!(firewall["prevResult"]["interfaces"][1]["name"], "portmap");
}

#[test]
fn del_runs_in_reverse_with_the_cached_result_and_without_one() {
    let dir = plugin_dir(&["bridge", "portmap", "firewall"]);
    let recorder = Recorder::default();
    let cni = Cni::with_runner(vec![dir.path().into()], Box::new(recorder.clone()));
    let cached = cni.add_list(&list(), &rt()).unwrap();
    recorder.calls.lock().unwrap().clear();

    cni.del_list(&list(), &rt(), Some(&cached)).unwrap();
    cni.del_list(&list(), &rt(), None).unwrap();
    let calls = recorder.calls.lock().unwrap();
    let order: Vec<_> = calls
        .iter()
        .map(|c| c.plugin.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(
        order,
        [
            "firewall", "portmap", "bridge", "firewall", "portmap", "bridge"
        ]
    );
    for call in &calls[..3] {
        assert_eq!(env(call, "CNI_COMMAND"), "DEL");
        assert_eq!(
            stdin(call)["prevResult"],
            serde_json::to_value(&cached).unwrap()
        );
    }
    for call in &calls[3..] {
        assert!(stdin(call).get("prevResult").is_none());
    }
    assert_eq!(
        stdin(&calls[1])["runtimeConfig"]["portMappings"][0]["containerPort"],
        80
    );
}

#[test]
fn check_passes_prev_result_to_every_plugin() {
    let dir = plugin_dir(&["bridge", "portmap", "firewall"]);
    let recorder = Recorder::default();
    let cni = Cni::with_runner(vec![dir.path().into()], Box::new(recorder.clone()));
    let cached = cni.add_list(&list(), &rt()).unwrap();
    recorder.calls.lock().unwrap().clear();
    cni.check_list(&list(), &rt(), &cached).unwrap();
    let calls = recorder.calls.lock().unwrap();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| env(c, "CNI_COMMAND") == "CHECK"));
    assert!(calls.iter().all(|c| stdin(c).get("prevResult").is_some()));
}

#[test]
fn a_plugin_error_is_reported_with_its_cni_fields_and_del_goes_on() {
    let dir = plugin_dir(&["bridge", "portmap", "firewall"]);
    let recorder = Recorder {
        fail: Some(("portmap", "DEL")),
        ..Recorder::default()
    };
    let cni = Cni::with_runner(vec![dir.path().into()], Box::new(recorder.clone()));
    let err = cni.del_list(&list(), &rt(), None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("portmap") && text.contains("bad config"),
        "{text}"
    );
    assert!(
        text.contains("no bridge") && text.contains("code 7"),
        "{text}"
    );
    assert_eq!(
        recorder.calls.lock().unwrap().len(),
        3,
        "bridge still ran after portmap failed"
    );

    let add_fails = Recorder {
        fail: Some(("bridge", "ADD")),
        ..Recorder::default()
    };
    let cni = Cni::with_runner(vec![dir.path().into()], Box::new(add_fails.clone()));
    assert!(matches!(
        cni.add_list(&list(), &rt()),
        Err(Error::Plugin { code: 7, .. })
    ));
    assert_eq!(
        add_fails.calls.lock().unwrap().len(),
        1,
        "ADD stops at the first failure"
    );
}

#[test]
fn a_missing_plugin_names_the_package_to_install() {
    let dir = plugin_dir(&["bridge"]);
    let cni = Cni::with_runner(vec![dir.path().into()], Box::new(Recorder::default()));
    let err = cni.add_list(&list(), &rt()).unwrap_err();
    assert!(matches!(&err, Error::PluginNotFound { plugin, .. } if plugin == "portmap"));
    let text = err.to_string();
    assert!(text.contains("containernetworking-plugins"), "{text}");
    assert!(text.contains(dir.path().to_str().unwrap()), "{text}");
    assert!(
        cni.find_plugin("../bridge").is_err(),
        "a type is never a path"
    );
}
