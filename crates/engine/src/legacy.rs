//! Records written before containers kept docker's config: the command line's own
//! settings, read into a [`StoredConfig`] so that such containers keep working.

use std::collections::HashMap;

use basic_image_store::ContainerRecord;
use serde::Deserialize;

use crate::config::{
    ContainerConfig, HostConfig, HostConfigLogConfig, JSON_FILE, StoredConfig, parse_restart,
    port_bindings,
};
use crate::error::{EngineError, Result};

/// The settings records held before.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    restart: String,
    auto_remove: bool,
    #[serde(default)]
    init: bool,
    #[serde(default)]
    interactive: bool,
    #[serde(default)]
    tty: bool,
    #[serde(default)]
    network: String,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    publish_all: bool,
    #[serde(default)]
    exposed: Vec<String>,
    #[serde(default)]
    dns: Vec<String>,
    #[serde(default)]
    log_max_size: Option<u64>,
    #[serde(default)]
    log_max_files: Option<u32>,
    stop_signal: String,
    command: Vec<String>,
}

/// The record's configuration: a [`StoredConfig`], or the older settings converted.
pub(crate) fn stored_config(record: &ContainerRecord) -> Result<StoredConfig> {
    let corrupt = |e: serde_json::Error| EngineError::Corrupt {
        what: format!("the configuration of container {}", record.id),
        message: e.to_string(),
    };
    if record.config.get("config").is_some() {
        return serde_json::from_value(record.config.clone()).map_err(corrupt);
    }
    let old: Settings = serde_json::from_value(record.config.clone()).map_err(corrupt)?;
    let mut log = HashMap::new();
    if let Some(size) = old.log_max_size {
        log.insert("max-size".to_string(), size.to_string());
    }
    if let Some(files) = old.log_max_files {
        log.insert("max-file".to_string(), files.to_string());
    }
    let host = HostConfig {
        restart_policy: Some(parse_restart(&old.restart)?),
        auto_remove: Some(old.auto_remove),
        init: Some(old.init),
        network_mode: Some(old.network),
        port_bindings: Some(port_bindings(&old.publish)?),
        publish_all_ports: Some(old.publish_all),
        dns: Some(old.dns),
        log_config: Some(HostConfigLogConfig {
            typ: Some(JSON_FILE.to_string()),
            config: Some(log),
        }),
        ..Default::default()
    };
    Ok(StoredConfig {
        config: ContainerConfig {
            image: Some(record.image.clone()),
            tty: Some(old.tty),
            open_stdin: Some(old.interactive),
            host_config: Some(host),
            ..Default::default()
        },
        command: old.command,
        stop_signal: old.stop_signal,
        exposed_ports: old.exposed,
        mounts: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_record_reads_as_dockers_config() {
        let record = ContainerRecord {
            id: "c0ffee".into(),
            name: "web".into(),
            image_id: "sha256:x".into(),
            image: "busybox".into(),
            created: 1,
            config: serde_json::json!({
                "restart": "on-failure:3", "autoRemove": false, "init": true, "tty": true,
                "network": "none", "publish": ["8080:80"], "publishAll": true,
                "exposed": ["80/tcp"], "dns": ["1.1.1.1"], "logMaxSize": 1024,
                "stopSignal": "SIGQUIT", "command": ["sh"]
            }),
            started: None,
            exit: None,
            restart_count: 0,
        };
        let stored = stored_config(&record).unwrap();
        assert_eq!(stored.restart_policy().to_string(), "on-failure:3");
        assert!(stored.init() && stored.tty() && !stored.auto_remove());
        assert_eq!(stored.network_mode(), "none");
        assert_eq!(stored.published_ports().unwrap().len(), 2, "-p and -P");
        assert_eq!(stored.log_rotation().unwrap().max_size, 1024);
        assert_eq!(stored.command, ["sh"]);
        // And a new record reads back as written.
        let again = ContainerRecord {
            config: serde_json::to_value(&stored).unwrap(),
            ..record
        };
        assert_eq!(stored_config(&again).unwrap(), stored);
    }
}
