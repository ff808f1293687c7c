//! An image's configuration, typed: the OCI document, and what docker writes
//! beside it.
//!
//! `oci_spec::image::ImageConfiguration` is the OCI image config and nothing
//! more: fields it does not define are dropped when it parses. Docker's image
//! configs carry several that an engine and a builder need — in `config`,
//! `Healthcheck` (`docker run` starts the probe), `OnBuild` (a `FROM` of the
//! image runs them), `Shell` (the form of later `RUN`s), `StopTimeout`; at the
//! top, `container_config` and `docker_version` (shown by image inspect). So
//! [`ImageConfig`] keeps the OCI type for everything OCI defines, and
//! [`DockerImageConfig`] for the rest, parsed from the same bytes.
//!
//! Parsing accepts what docker writes and OCI's types would refuse: `null` for
//! any absent value, `rootfs` without `diff_ids` (an image with no layer), no
//! `architecture` or `os` (docker leaves out empty ones).

use std::collections::BTreeMap;

use oci_spec::image::{Config, History, ImageConfiguration};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// An image's configuration, as stored in its config blob.
///
/// Serializing it writes one document again (docker's fields inside `config`
/// and at the top level, beside OCI's), so it can be shown as image inspect
/// shows it; the stored blob itself is never rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// Everything the OCI image spec defines: platform, creation time,
    /// author, run defaults (`config`), `rootfs` and `history`.
    pub oci: ImageConfiguration,
    /// What docker writes that the OCI spec does not define.
    pub docker: DockerImageConfig,
}

/// Docker's additions to an image config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerImageConfig {
    /// Docker's fields of `config`, the image's run defaults.
    #[serde(default, deserialize_with = "null_as_default")]
    pub config: DockerRunConfig,
    /// The configuration of the container the last build step ran in
    /// (docker's classic builder; its `Cmd` names the step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<RunConfig>,
    /// The id of that container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The version of docker that built the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    /// `docker commit -m`'s message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Docker's `container.Config` as image configs carry it: the OCI run
/// defaults and docker's own fields, in one JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawRunConfig")]
pub struct RunConfig {
    /// `User`, `ExposedPorts`, `Env`, `Entrypoint`, `Cmd`, `Volumes`,
    /// `WorkingDir`, `Labels`, `StopSignal`.
    #[serde(flatten)]
    pub oci: Config,
    /// The fields only docker defines.
    #[serde(flatten)]
    pub docker: DockerRunConfig,
}

/// [`RunConfig`] as parsed, before its sets are put in order.
#[derive(Deserialize)]
struct RawRunConfig {
    #[serde(flatten)]
    oci: Config,
    #[serde(flatten)]
    docker: DockerRunConfig,
}

impl From<RawRunConfig> for RunConfig {
    fn from(raw: RawRunConfig) -> Self {
        RunConfig {
            oci: sorted_sets(raw.oci),
            docker: raw.docker,
        }
    }
}

/// The fields of docker's `container.Config` that OCI's `Config` lacks. Each
/// is `None` when the document has it absent or `null`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerRunConfig {
    /// The health probe `docker run` starts (`HEALTHCHECK`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// Build instructions a `FROM` of this image runs first (`ONBUILD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// The shell of the shell form of `RUN`, `CMD` and `ENTRYPOINT` (`SHELL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Seconds `docker stop` waits before killing (`--stop-timeout` at build).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// Windows only: the command line is already escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// The container's host name (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The container's domain name (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// Whether stdin was attached (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_stdin: Option<bool>,
    /// Whether stdout was attached (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_stdout: Option<bool>,
    /// Whether stderr was attached (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_stderr: Option<bool>,
    /// Whether it had a terminal (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Whether stdin stayed open (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_stdin: Option<bool>,
    /// Whether stdin closed after the first attach ended (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_once: Option<bool>,
    /// The image the build step started from (an id), in build records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Whether networking was off (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    /// The container's MAC address (build records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

/// Docker's `HealthConfig`. Durations are nanoseconds, as docker stores
/// them; `0` or absent means "inherit the default".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]` (disabled), `["CMD", arg...]` or `["CMD-SHELL", command]`;
    /// empty inherits the parent image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Time between two probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time a probe may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Time at start during which failures do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Time between probes during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
}

impl ImageConfig {
    /// Parses a config blob (OCI or docker).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        Self::from_value(serde_json::from_slice(bytes)?)
    }

    fn from_value(mut value: Value) -> Result<Self, serde_json::Error> {
        let docker = DockerImageConfig::deserialize(&value)?;
        fill_what_oci_requires(&mut value);
        let mut oci = ImageConfiguration::deserialize(value)?;
        if let Some(config) = oci.config().clone() {
            oci.set_config(Some(sorted_sets(config)));
        }
        Ok(ImageConfig { oci, docker })
    }

    /// The run defaults, OCI's fields and docker's together (empty when the
    /// image has none): what image inspect shows as `Config`.
    pub fn run_config(&self) -> RunConfig {
        RunConfig {
            oci: self.oci.config().clone().unwrap_or_default(),
            docker: self.docker.config.clone(),
        }
    }

    /// `Entrypoint`, empty when unset.
    pub fn entrypoint(&self) -> &[String] {
        self.strings(Config::entrypoint)
    }

    /// `Cmd`, empty when unset.
    pub fn cmd(&self) -> &[String] {
        self.strings(Config::cmd)
    }

    /// `Env` (`NAME=value` entries), empty when unset.
    pub fn env(&self) -> &[String] {
        self.strings(Config::env)
    }

    /// `WorkingDir`, when set and not empty.
    pub fn working_dir(&self) -> Option<&str> {
        self.string(Config::working_dir)
    }

    /// `User`, when set and not empty.
    pub fn user(&self) -> Option<&str> {
        self.string(Config::user)
    }

    /// `StopSignal`, when set and not empty.
    pub fn stop_signal(&self) -> Option<&str> {
        self.string(Config::stop_signal)
    }

    /// `ExposedPorts` (`80/tcp`, ...), sorted.
    pub fn exposed_ports(&self) -> &[String] {
        self.strings(Config::exposed_ports)
    }

    /// `Volumes` (container paths), sorted.
    pub fn volumes(&self) -> &[String] {
        self.strings(Config::volumes)
    }

    /// `Labels`, sorted by name.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let labels = self.oci.config().as_ref().and_then(|c| c.labels().as_ref());
        labels
            .map(|l| l.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// The history, oldest first (empty when the config has none).
    pub fn history(&self) -> &[History] {
        self.oci.history().as_deref().unwrap_or_default()
    }

    fn strings(&self, field: fn(&Config) -> &Option<Vec<String>>) -> &[String] {
        let value = self.oci.config().as_ref().and_then(|c| field(c).as_deref());
        value.unwrap_or_default()
    }

    fn string(&self, field: fn(&Config) -> &Option<String>) -> Option<&str> {
        let value = self.oci.config().as_ref().and_then(|c| field(c).as_deref());
        value.filter(|s| !s.is_empty())
    }

    fn to_value(&self) -> Result<Value, serde_json::Error> {
        let mut value = serde_json::to_value(&self.oci)?;
        let docker = serde_json::to_value(&self.docker)?;
        let (Value::Object(top), Value::Object(mut extra)) = (&mut value, docker) else {
            return Ok(value);
        };
        if let Some(Value::Object(run)) = extra.remove("config")
            && !run.is_empty()
        {
            let config = top
                .entry("config")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(config) = config {
                config.extend(run);
            }
        }
        top.extend(extra);
        Ok(value)
    }
}

impl Serialize for ImageConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ImageConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::from_value(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// Fills in what OCI's types require and docker may leave out or write as
/// `null`, so that a document docker accepts parses here too.
fn fill_what_oci_requires(value: &mut Value) {
    let Value::Object(top) = value else { return };
    for key in ["architecture", "os"] {
        if top.get(key).is_none_or(Value::is_null) {
            top.insert(key.into(), Value::String(String::new()));
        }
    }
    let rootfs = top
        .entry("rootfs")
        .or_insert_with(|| Value::Object(Map::new()));
    if rootfs.is_null() {
        *rootfs = Value::Object(Map::new());
    }
    if let Value::Object(rootfs) = rootfs {
        if rootfs.get("type").is_none_or(Value::is_null) {
            rootfs.insert("type".into(), "layers".into());
        }
        if rootfs.get("diff_ids").is_none_or(Value::is_null) {
            rootfs.insert("diff_ids".into(), Value::Array(Vec::new()));
        }
    }
    if let Some(Value::Object(config)) = top.get_mut("config") {
        empty_set_members(config);
    }
    if let Some(Value::Object(config)) = top.get_mut("container_config") {
        empty_set_members(config);
    }
}

/// `ExposedPorts` and `Volumes` are Go `map[string]struct{}`: each member is
/// `{}`. A `null` member means the same and is read as one.
fn empty_set_members(config: &mut Map<String, Value>) {
    for key in ["ExposedPorts", "Volumes"] {
        if let Some(Value::Object(set)) = config.get_mut(key) {
            for member in set.values_mut() {
                if member.is_null() {
                    *member = Value::Object(Map::new());
                }
            }
        }
    }
}

/// OCI's `Config` reads the port and volume sets into vectors in hash order;
/// sorted, two parses of one document compare equal and print the same.
fn sorted_sets(mut config: Config) -> Config {
    let sorted = |set: &Option<Vec<String>>| {
        set.clone().map(|mut members| {
            members.sort();
            members
        })
    };
    config.set_exposed_ports(sorted(config.exposed_ports()));
    config.set_volumes(sorted(config.volumes()));
    config
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
