//! The runtime side of the CNI specification: find plugin binaries, run a
//! network configuration list's chain for `ADD`, `CHECK` and `DEL` with the
//! spec's environment and stdin, and read results and errors.
//!
//! What the spec asks of a runtime, and where it happens here:
//! - each plugin gets its configuration with the list's `name` and
//!   `cniVersion`, and `runtimeConfig` holding only the capability arguments it
//!   declares (`"capabilities": {"portMappings": true}`);
//! - on `ADD` every plugin after the first gets the previous plugin's result as
//!   `prevResult`; the last result is the network's result;
//! - `CHECK` and `DEL` pass the cached `ADD` result as `prevResult` to every
//!   plugin; `DEL` runs the chain in reverse and, without a cached result,
//!   still runs (plugins then clean up what they can).

pub mod types;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

use crate::error::{Error, Result};
pub use types::{CniResult, NetworkConfigList};

/// Directories searched for plugins when `CNI_PATH` is unset: Debian's, Fedora's, upstream's.
pub const DEFAULT_PLUGIN_DIRS: &[&str] = &["/usr/lib/cni", "/usr/libexec/cni", "/opt/cni/bin"];

/// What the runtime tells plugins about one container attachment.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: path of the network namespace.
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface name inside the namespace.
    pub ifname: String,
    /// `CNI_ARGS` as key/value pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, ...), given to plugins that declare them.
    pub capability_args: Map<String, Value>,
}

/// One run of a plugin binary, as handed to a [`PluginRunner`].
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The executable.
    pub plugin: PathBuf,
    /// The `CNI_*` variables.
    pub env: Vec<(String, String)>,
    /// The configuration JSON on stdin.
    pub stdin: Vec<u8>,
}

/// What a plugin run produced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PluginOutput {
    /// Exit status was zero.
    pub success: bool,
    /// Standard output (result or error JSON).
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

/// Runs plugin executables. The real one spawns processes; tests substitute a recorder.
pub trait PluginRunner: Send + Sync {
    /// Runs one plugin to completion.
    fn run(&self, invocation: &Invocation) -> std::io::Result<PluginOutput>;
}

/// Spawns plugins as child processes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessRunner;

impl PluginRunner for ProcessRunner {
    fn run(&self, invocation: &Invocation) -> std::io::Result<PluginOutput> {
        let mut child = Command::new(&invocation.plugin)
            .envs(invocation.env.iter().map(|(k, v)| (k, v)))
            .env("PATH", plugin_search_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // The configuration is small: it fits the pipe, so writing before reading cannot deadlock.
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&invocation.stdin)?;
        }
        let out = child.wait_with_output()?;
        Ok(PluginOutput {
            success: out.status.success(),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// `PATH` for plugins: they run `iptables` and friends, which live in sbin
/// directories that a caller's `PATH` may lack.
pub(crate) fn plugin_search_path() -> String {
    let mut path = std::env::var("PATH").unwrap_or_default();
    for dir in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        if !path.split(':').any(|p| p == dir) {
            if !path.is_empty() {
                path.push(':');
            }
            path.push_str(dir);
        }
    }
    path
}

/// A CNI runtime: plugin directories and how to run plugins.
pub struct Cni {
    dirs: Vec<PathBuf>,
    runner: Box<dyn PluginRunner>,
}

impl std::fmt::Debug for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cni").field("dirs", &self.dirs).finish()
    }
}

impl Default for Cni {
    fn default() -> Self {
        Cni::new(default_plugin_dirs())
    }
}

/// `CNI_PATH` when set, otherwise [`DEFAULT_PLUGIN_DIRS`].
pub fn default_plugin_dirs() -> Vec<PathBuf> {
    match std::env::var_os("CNI_PATH") {
        Some(path) if !path.is_empty() => std::env::split_paths(&path).collect(),
        _ => DEFAULT_PLUGIN_DIRS.iter().map(PathBuf::from).collect(),
    }
}

impl Cni {
    /// A runtime that spawns plugins found in `dirs`.
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Cni::with_runner(dirs, Box::new(ProcessRunner))
    }

    /// A runtime with another way of running plugins (tests record invocations with it).
    pub fn with_runner(dirs: Vec<PathBuf>, runner: Box<dyn PluginRunner>) -> Self {
        Cni { dirs, runner }
    }

    /// The plugin directories.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// The executable for a plugin type, or [`Error::PluginNotFound`] naming the package to install.
    pub fn find_plugin(&self, plugin: &str) -> Result<PathBuf> {
        // A type is a file name, never a path: a configuration must not run arbitrary binaries.
        let usable = !plugin.is_empty() && !plugin.contains('/') && plugin != "." && plugin != "..";
        self.dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| usable && is_executable(p))
            .ok_or_else(|| Error::PluginNotFound {
                plugin: plugin.to_string(),
                dirs: self.dirs.clone(),
            })
    }

    /// Checks that every plugin of a list is installed.
    pub fn check_installed(&self, list: &NetworkConfigList) -> Result<()> {
        for plugin in list.plugin_types() {
            self.find_plugin(plugin)?;
        }
        Ok(())
    }

    /// `ADD` through the whole chain; returns the last plugin's result.
    pub fn add_list(&self, list: &NetworkConfigList, rt: &RuntimeConf) -> Result<CniResult> {
        self.check_installed(list)?;
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let conf = plugin_config(list, plugin, prev.as_ref(), rt);
            let out = self.exec(list, plugin, "ADD", &conf, rt)?;
            let result: Value = serde_json::from_slice(&out).map_err(|e| Error::BadResult {
                plugin: types::plugin_type(plugin).unwrap_or_default().to_string(),
                network: list.name.clone(),
                reason: e.to_string(),
            })?;
            prev = Some(result);
        }
        let last = prev.unwrap_or(Value::Null);
        serde_json::from_value(last).map_err(|e| Error::BadResult {
            plugin: list
                .plugin_types()
                .last()
                .copied()
                .unwrap_or_default()
                .to_string(),
            network: list.name.clone(),
            reason: e.to_string(),
        })
    }

    /// `CHECK` through the whole chain against the cached `ADD` result.
    /// Does nothing for lists with `disableCheck` or versions before 0.4.0.
    pub fn check_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
        prev: &CniResult,
    ) -> Result<()> {
        if list.disable_check || list.cni_version.starts_with("0.3") {
            return Ok(());
        }
        let prev = serde_json::to_value(prev).expect("a result serializes");
        for plugin in &list.plugins {
            let conf = plugin_config(list, plugin, Some(&prev), rt);
            self.exec(list, plugin, "CHECK", &conf, rt)?;
        }
        Ok(())
    }

    /// `DEL` through the chain in reverse. Every plugin runs even when an earlier one
    /// fails, so one failure does not strand the others' resources; all failures are returned.
    pub fn del_list(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
        prev: Option<&CniResult>,
    ) -> Result<()> {
        let prev = prev.map(|p| serde_json::to_value(p).expect("a result serializes"));
        let mut errors = Vec::new();
        for plugin in list.plugins.iter().rev() {
            let conf = plugin_config(list, plugin, prev.as_ref(), rt);
            let run = types::plugin_type(plugin)
                .ok_or_else(|| Error::BadConfig {
                    path: PathBuf::from(&list.name),
                    reason: "a plugin has no \"type\"".into(),
                })
                .and_then(|_| self.exec(list, plugin, "DEL", &conf, rt));
            if let Err(e) = run {
                errors.push(e);
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Teardown(errors)),
        }
    }

    fn exec(
        &self,
        list: &NetworkConfigList,
        plugin: &Map<String, Value>,
        command: &'static str,
        conf: &Value,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>> {
        let kind = types::plugin_type(plugin).unwrap_or_default();
        let path = self.find_plugin(kind)?;
        let invocation = Invocation {
            plugin: path.clone(),
            env: environment(command, rt, &self.dirs),
            stdin: serde_json::to_vec(conf).expect("a configuration serializes"),
        };
        let out = self
            .runner
            .run(&invocation)
            .map_err(|source| Error::PluginExec {
                plugin: path,
                command,
                network: list.name.clone(),
                source,
            })?;
        if out.success {
            return Ok(out.stdout);
        }
        Err(plugin_failure(kind, command, &list.name, &out))
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The spec's environment for one plugin run.
fn environment(command: &str, rt: &RuntimeConf, dirs: &[PathBuf]) -> Vec<(String, String)> {
    let args = rt
        .args
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";");
    let path = std::env::join_paths(dirs)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    vec![
        ("CNI_COMMAND".into(), command.into()),
        ("CNI_CONTAINERID".into(), rt.container_id.clone()),
        ("CNI_NETNS".into(), rt.netns.display().to_string()),
        ("CNI_IFNAME".into(), rt.ifname.clone()),
        ("CNI_ARGS".into(), args),
        ("CNI_PATH".into(), path),
    ]
}

/// One plugin's stdin: its own configuration plus `name`, `cniVersion`,
/// `prevResult` and the `runtimeConfig` for the capabilities it declares.
fn plugin_config(
    list: &NetworkConfigList,
    plugin: &Map<String, Value>,
    prev: Option<&Value>,
    rt: &RuntimeConf,
) -> Value {
    let mut conf = plugin.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    if let Some(prev) = prev {
        conf.insert("prevResult".into(), prev.clone());
    }
    let runtime_config: Map<String, Value> = declared_capabilities(plugin)
        .filter_map(|cap| {
            rt.capability_args
                .get(cap)
                .map(|v| (cap.to_string(), v.clone()))
        })
        .collect();
    if !runtime_config.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    Value::Object(conf)
}

fn declared_capabilities(plugin: &Map<String, Value>) -> impl Iterator<Item = &str> {
    plugin
        .get("capabilities")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .map(|(name, _)| name.as_str())
}

fn plugin_failure(plugin: &str, command: &'static str, network: &str, out: &PluginOutput) -> Error {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match serde_json::from_slice::<types::PluginError>(&out.stdout) {
        Ok(e) if !e.msg.is_empty() => Error::Plugin {
            plugin: plugin.into(),
            command,
            network: network.into(),
            code: e.code,
            msg: e.msg,
            details: if e.details.is_empty() {
                stderr
            } else {
                e.details
            },
        },
        _ => Error::Plugin {
            plugin: plugin.into(),
            command,
            network: network.into(),
            code: 0,
            msg: "exited with an error and printed no CNI error".into(),
            details: [
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
                stderr,
            ]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        },
    }
}

#[cfg(test)]
pub(crate) mod tests;
