//! `commit`: a container's changes as a new image (docker's `POST /commit`), running
//! (paused while its files are read, by default) or stopped.
//!
//! The layer is the container's snapshot's own directory written as an OCI layer
//! ([`basic_rootfs::export::write_layer`]): whiteouts and opaque directories as OCI
//! whiteouts, the runtime's empty mount points left out. The config is the image's,
//! with what the container was created with (its command, environment, working
//! directory, user, labels) and then the `-c` changes on top, as docker merges them;
//! `history` and `rootfs.diff_ids` gain an entry each.

use std::path::PathBuf;

use basic_image_store::{LayerCompression, LayerRecord, Lease, short_id};
use basic_registry::Reference;
use serde_json::{Map, Value, json};

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::status::Status;

/// How to commit a container.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `REPO[:TAG]` to tag the new image with.
    pub reference: Option<String>,
    /// The commit message (`-m`), the image's `comment`.
    pub comment: Option<String>,
    /// The author (`-a`).
    pub author: Option<String>,
    /// Dockerfile instructions to apply to the config (`-c`): see [`ConfigChange`].
    pub changes: Vec<String>,
    /// Pause a running container while its files are read (docker's default).
    pub pause: bool,
    /// The layer's compression.
    pub compression: LayerCompression,
    /// Unix seconds: the image's creation time, and no file time in the layer later
    /// than it (`SOURCE_DATE_EPOCH`), for an image that does not depend on the clock.
    pub source_date_epoch: Option<i64>,
}

/// How to write a container's changes as a layer ([`Engine::write_layer`]).
#[derive(Debug, Clone, Default)]
pub struct LayerWriteOptions {
    /// The layer's compression.
    pub compression: LayerCompression,
    /// No file time later than this (unix seconds).
    pub clamp_mtime: Option<i64>,
    /// The container is stopped and is removed right after (a build step): its
    /// changes are committed out of its snapshot and that directory becomes the
    /// store's layer, instead of the layer being extracted again from its blob.
    pub consume: bool,
}

impl Engine {
    /// Makes an image of container `query`'s changes on its image; returns its id
    /// (`sha256:…`). Bad `changes` or a bad reference fail before anything is made.
    pub fn commit(&self, query: &str, options: &CommitOptions) -> Result<String> {
        let changes = options
            .changes
            .iter()
            .flat_map(|text| text.lines())
            .filter(|line| !line.trim().is_empty())
            .map(ConfigChange::parse)
            .collect::<Result<Vec<_>>>()?;
        let tag = match &options.reference {
            Some(text) => Some(checked_tag(text)?),
            None => None,
        };
        let c = self.container(query)?;
        self.store.writable("commit")?;
        let _lock = crate::view::lock_shared(&c.paths)?;
        let lease = self.store.lease()?;
        let image = self.store.image(&c.record.image_id)?;
        let parent_chain = image.layers.last().map(|l| l.chain_id.clone());
        // A container without a cgroup of its own (rootless mode) has no freezer: as podman
        // does there, its files are read while it runs.
        let pause = options.pause
            && matches!(self.status(&c), Status::Running(pid) if crate::stats::has_own_cgroup(c.id(), pid));
        if pause {
            self.pause(c.id())?;
        }
        let layer_options = LayerWriteOptions {
            compression: options.compression,
            clamp_mtime: options.source_date_epoch,
            consume: false,
        };
        let layer = self.write_layer(&c, &lease, parent_chain.as_deref(), &layer_options);
        if pause && let Err(e) = self.unpause(c.id()) {
            tracing::warn!("unpausing {} after the commit: {e}", short_id(c.id()));
        }
        let layer = layer?;
        let mut config: Value =
            serde_json::from_slice(&self.store.read_blob(&image.id)?).map_err(|e| {
                EngineError::Corrupt {
                    what: format!("the config of image {}", image.id),
                    message: e.to_string(),
                }
            })?;
        let run = run_config(&mut config);
        merge_container_config(run, &c);
        for change in &changes {
            change.apply(run);
        }
        let created = crate::status::rfc3339(Some(
            options
                .source_date_epoch
                .map_or_else(crate::status::now_nanos, |s| {
                    s.saturating_mul(1_000_000_000)
                }),
        ));
        let created_by = c.config.command.join(" ");
        let mut entry = json!({"created": created, "created_by": created_by});
        set_text(&mut entry, "author", options.author.as_deref());
        set_text(&mut entry, "comment", options.comment.as_deref());
        let top = config.as_object_mut().ok_or_else(|| EngineError::Corrupt {
            what: format!("the config of image {}", image.id),
            message: "not a JSON object".into(),
        })?;
        top.insert("created".into(), json!(created));
        top.insert("container".into(), json!(c.id()));
        for (key, value) in [("author", &options.author), ("comment", &options.comment)] {
            match value {
                Some(v) => top.insert(key.into(), json!(v)),
                None => top.remove(key),
            };
        }
        append_layer(&mut config, &layer.diff_id, entry);
        let bytes = serde_json::to_vec(&config).map_err(|e| EngineError::Corrupt {
            what: "the new image's config".into(),
            message: e.to_string(),
        })?;
        let mut layers = image.layers.clone();
        layers.push(layer);
        let id = self
            .store
            .create_image(&lease, &bytes, &layers, tag.as_deref())?;
        self.event(
            &c,
            "commit",
            &[("comment", options.comment.clone().unwrap_or_default())],
        );
        Ok(id)
    }

    /// Writes container `c`'s changes as a layer on top of the layer `parent` (a
    /// chain ID: the top layer of its image), recorded in the store and leased by
    /// `lease`: for [`Engine::commit`] and for builders that make images of
    /// containers themselves. A running container should be paused first.
    pub fn write_layer(
        &self,
        c: &Container,
        lease: &Lease,
        parent: Option<&str>,
        options: &LayerWriteOptions,
    ) -> Result<LayerRecord> {
        let snapshotter = self.snapshotter();
        if options.consume {
            return self.consume_layer(c, lease, parent, options);
        }
        // Named by our pid first: tmp/ is swept of what dead processes left, by that name.
        let scratch =
            self.store
                .tmp_dir()
                .join(format!("{}-changes-{}", std::process::id(), c.id()));
        let dir = match snapshotter.changes_dir(c.id(), &scratch) {
            Err(basic_rootfs::SnapshotError::NoMetadata(_)) => {
                let parents = crate::rootfs::layer_stack(
                    snapshotter.as_ref(),
                    &self.store,
                    &c.record.image_id,
                )?
                .paths;
                snapshotter.adopt(c.id(), &parents, &basic_rootfs::PrepareOptions::new())?;
                snapshotter.changes_dir(c.id(), &scratch)
            }
            other => other,
        };
        let result = dir.map_err(EngineError::from).and_then(|dir| {
            let layer_options = basic_rootfs::export::LayerOptions::default()
                .clamp_mtime(options.clamp_mtime)
                .skip_if_empty(crate::changes::mount_points(c)?);
            Ok(self
                .store
                .create_layer(lease, parent, options.compression, |out| {
                    basic_rootfs::export::write_layer(&dir, &layer_options, out)?;
                    Ok(())
                })?)
        });
        if scratch.exists()
            && let Err(e) = std::fs::remove_dir_all(&scratch)
        {
            tracing::warn!("removing {}: {e}", scratch.display());
        }
        result
    }
}

impl Engine {
    /// [`Engine::write_layer`] with [`LayerWriteOptions::consume`]: the snapshot is
    /// committed (refused while it is mounted), written, settled to what the layer
    /// says and moved into the store.
    fn consume_layer(
        &self,
        c: &Container,
        lease: &Lease,
        parent: Option<&str>,
        options: &LayerWriteOptions,
    ) -> Result<LayerRecord> {
        if matches!(self.status(c), Status::Running(_) | Status::Paused(_)) {
            return Err(EngineError::Conflict(format!(
                "container {} is running: its changes cannot be taken from it",
                short_id(c.id())
            )));
        }
        let snapshotter = self.snapshotter();
        let name = format!("{}-layer", c.id());
        let dir = snapshotter.commit(c.id(), &name)?;
        let layer_options = basic_rootfs::export::LayerOptions::default()
            .clamp_mtime(options.clamp_mtime)
            .skip_if_empty(crate::changes::mount_points(c)?);
        let mut adopt = || -> std::result::Result<PathBuf, basic_image_store::SourceError> {
            basic_rootfs::export::settle_layer_dir(&dir, &layer_options)?;
            Ok(dir.clone())
        };
        let made = self.store.create_layer_adopting(
            lease,
            parent,
            options.compression,
            |out| {
                basic_rootfs::export::write_layer(&dir, &layer_options, out)?;
                Ok(())
            },
            Some(&mut adopt),
        );
        if let Err(e) = snapshotter.remove(&name) {
            tracing::warn!("removing the committed snapshot {name}: {e}");
        }
        Ok(made?)
    }
}

/// `text` as a tag: a reference without a digest, `latest` when it names no tag.
fn checked_tag(text: &str) -> Result<String> {
    let reference = Reference::parse(text).map_err(|e| {
        EngineError::InvalidArgument(format!("invalid reference format: {text}: {e}"))
    })?;
    if reference.digest().is_some() {
        return Err(EngineError::InvalidArgument(format!(
            "invalid reference format: {text}: a commit is tagged, not named by a digest"
        )));
    }
    Ok(reference.familiar())
}

fn set_text(entry: &mut Value, key: &str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        entry[key] = json!(v);
    }
}

/// The config's `config` object (the run defaults), made when missing or `null`.
pub fn run_config(config: &mut Value) -> &mut Map<String, Value> {
    if !config["config"].is_object() {
        config["config"] = json!({});
    }
    config["config"]
        .as_object_mut()
        .expect("made an object above")
}

/// Appends the layer `diff_id` to `rootfs.diff_ids` and `entry` to `history`.
pub fn append_layer(config: &mut Value, diff_id: &str, entry: Value) {
    if !config["rootfs"].is_object() {
        config["rootfs"] = json!({"type": "layers", "diff_ids": []});
    }
    if !config["rootfs"]["diff_ids"].is_array() {
        config["rootfs"]["diff_ids"] = json!([]);
    }
    if let Some(ids) = config["rootfs"]["diff_ids"].as_array_mut() {
        ids.push(json!(diff_id));
    }
    append_history(config, entry);
}

/// Appends `entry` to the config's `history`.
pub fn append_history(config: &mut Value, entry: Value) {
    if !config["history"].is_array() {
        config["history"] = json!([]);
    }
    if let Some(history) = config["history"].as_array_mut() {
        history.push(entry);
    }
}

/// What the container was created with, over the image's defaults: what docker's
/// commit takes from the container's own config.
fn merge_container_config(run: &mut Map<String, Value>, c: &Container) {
    let given = &c.config.config;
    if let Some(cmd) = given.cmd.as_ref().filter(|v| !v.is_empty()) {
        run.insert("Cmd".into(), json!(cmd));
    }
    if let Some(entrypoint) = given.entrypoint.as_ref().filter(|v| !v.is_empty()) {
        run.insert("Entrypoint".into(), json!(entrypoint));
        if given.cmd.as_ref().is_none_or(|v| v.is_empty()) {
            run.insert("Cmd".into(), Value::Null);
        }
    }
    for env in given.env.iter().flatten() {
        ConfigChange::Env(vec![split_env(env)]).apply(run);
    }
    for (key, value) in [("WorkingDir", &given.working_dir), ("User", &given.user)] {
        if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
            run.insert(key.into(), json!(v));
        }
    }
    if let Some(labels) = &given.labels {
        let pairs = labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        ConfigChange::Label(pairs).apply(run);
    }
}

fn split_env(env: &str) -> (String, String) {
    match env.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (env.to_string(), String::new()),
    }
}

/// One Dockerfile instruction that changes an image's run defaults: what `commit -c`
/// and `import --change` take, and what a Dockerfile's config instructions do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigChange {
    /// `CMD`: exec form, or the shell form already wrapped (`/bin/sh -c …`).
    Cmd(Vec<String>),
    /// `ENTRYPOINT` (clears `CMD`, as docker does).
    Entrypoint(Vec<String>),
    /// `ENV K=V …`.
    Env(Vec<(String, String)>),
    /// `LABEL K=V …`.
    Label(Vec<(String, String)>),
    /// `EXPOSE 80 53/udp`.
    Expose(Vec<String>),
    /// `VOLUME /a /b` or `VOLUME ["/a"]`.
    Volume(Vec<String>),
    /// `USER name[:group]`.
    User(String),
    /// `WORKDIR /path` (relative to the current one).
    Workdir(String),
    /// `STOPSIGNAL SIGQUIT`.
    StopSignal(String),
    /// `ONBUILD INSTRUCTION`, stored for images built on this one.
    OnBuild(String),
}

impl ConfigChange {
    /// Parses one instruction line (`CMD ["sh"]`, `ENV A=1`). An instruction that does
    /// not change run defaults, or a malformed one, is an error naming it.
    pub fn parse(line: &str) -> Result<ConfigChange> {
        let line = line.trim();
        let (word, rest) = line
            .split_once(|c: char| c.is_whitespace())
            .map_or((line, ""), |(w, r)| (w, r.trim()));
        let bad = |why: &str| {
            EngineError::InvalidArgument(format!("dockerfile instruction `{line}`: {why}"))
        };
        let upper = word.to_ascii_uppercase();
        if rest.is_empty() && upper != "CMD" && upper != "ENTRYPOINT" {
            return Err(bad(&format!("{upper} requires at least one argument")));
        }
        Ok(match upper.as_str() {
            "CMD" => ConfigChange::Cmd(command_form(rest)),
            "ENTRYPOINT" => ConfigChange::Entrypoint(command_form(rest)),
            "ENV" => ConfigChange::Env(pairs(rest, true).map_err(|e| bad(&e))?),
            "LABEL" => ConfigChange::Label(pairs(rest, false).map_err(|e| bad(&e))?),
            "EXPOSE" => ConfigChange::Expose(
                words(rest)
                    .map_err(|e| bad(&e))?
                    .into_iter()
                    .map(|p| port(&p).map_err(|e| bad(&e)))
                    .collect::<Result<_>>()?,
            ),
            "VOLUME" => ConfigChange::Volume(match json_array(rest) {
                Some(list) => list,
                None => words(rest).map_err(|e| bad(&e))?,
            }),
            "USER" => ConfigChange::User(rest.to_string()),
            "WORKDIR" => ConfigChange::Workdir(rest.to_string()),
            "STOPSIGNAL" => ConfigChange::StopSignal(rest.to_string()),
            "ONBUILD" => ConfigChange::OnBuild(rest.to_string()),
            _ => return Err(bad(&format!("{word} cannot change an image's config here"))),
        })
    }

    /// Applies the change to a config's `config` object (docker's keys: `Cmd`, `Env`...).
    pub fn apply(&self, run: &mut Map<String, Value>) {
        match self {
            ConfigChange::Cmd(cmd) => {
                run.insert("Cmd".into(), json!(cmd));
            }
            ConfigChange::Entrypoint(entrypoint) => {
                run.insert("Entrypoint".into(), json!(entrypoint));
                run.insert("Cmd".into(), Value::Null);
            }
            ConfigChange::Env(pairs) => {
                let mut env: Vec<String> = run
                    .get("Env")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                for (key, value) in pairs {
                    let item = format!("{key}={value}");
                    match env
                        .iter_mut()
                        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
                    {
                        Some(existing) => *existing = item,
                        None => env.push(item),
                    }
                }
                run.insert("Env".into(), json!(env));
            }
            ConfigChange::Label(pairs) => {
                let labels = object(run, "Labels");
                for (key, value) in pairs {
                    labels.insert(key.clone(), json!(value));
                }
            }
            ConfigChange::Expose(ports) => {
                let exposed = object(run, "ExposedPorts");
                for p in ports {
                    exposed.insert(p.clone(), json!({}));
                }
            }
            ConfigChange::Volume(paths) => {
                let volumes = object(run, "Volumes");
                for p in paths {
                    volumes.insert(p.clone(), json!({}));
                }
            }
            ConfigChange::User(user) => {
                run.insert("User".into(), json!(user));
            }
            ConfigChange::Workdir(dir) => {
                let current = run.get("WorkingDir").and_then(Value::as_str).unwrap_or("/");
                let joined = PathBuf::from(if current.is_empty() { "/" } else { current })
                    .join(dir)
                    .display()
                    .to_string();
                run.insert("WorkingDir".into(), json!(joined));
            }
            ConfigChange::StopSignal(signal) => {
                run.insert("StopSignal".into(), json!(signal));
            }
            ConfigChange::OnBuild(text) => {
                if !run.get("OnBuild").is_some_and(Value::is_array) {
                    run.insert("OnBuild".into(), json!([]));
                }
                if let Some(list) = run.get_mut("OnBuild").and_then(Value::as_array_mut) {
                    list.push(json!(text));
                }
            }
        }
    }
}

/// The object `run[key]`, made when missing or `null`.
fn object<'a>(run: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    if !run.get(key).is_some_and(Value::is_object) {
        run.insert(key.into(), json!({}));
    }
    run.get_mut(key)
        .and_then(Value::as_object_mut)
        .expect("made an object above")
}

/// A JSON array of strings, or `None` when `text` is not one (docker then takes
/// the shell form).
pub fn json_array(text: &str) -> Option<Vec<String>> {
    if !text.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(text).ok()
}

/// `CMD`/`ENTRYPOINT` arguments: the exec form as given, the shell form under
/// `/bin/sh -c`; nothing at all is an empty command.
fn command_form(text: &str) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    json_array(text).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), text.to_string()])
}

/// `80` → `80/tcp`; `53/udp` as given; a port that is not a number is an error.
pub fn port(text: &str) -> std::result::Result<String, String> {
    let (number, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    let valid_number = |n: &str| n.parse::<u16>().is_ok();
    let range_ok = match number.split_once('-') {
        Some((a, b)) => valid_number(a) && valid_number(b),
        None => valid_number(number),
    };
    if !range_ok || !matches!(proto.to_ascii_lowercase().as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid port `{text}`"));
    }
    Ok(format!("{number}/{}", proto.to_ascii_lowercase()))
}

/// Words as the shell would split them: whitespace apart, quotes (`"a b"`, `'a b'`)
/// and backslashes kept together and removed.
pub fn words(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                let quote = c;
                loop {
                    match chars.next() {
                        Some(ch) if ch == quote => break,
                        Some('\\') if quote == '"' => match chars.next() {
                            Some(next) => word.push(next),
                            None => return Err("unfinished escape".into()),
                        },
                        Some(ch) => word.push(ch),
                        None => return Err(format!("unmatched {quote}")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(next) => word.push(next),
                    None => return Err("unfinished escape".into()),
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        out.push(word);
    }
    Ok(out)
}

/// `K=V K2="v 2"`, or (only when `legacy`, ENV's old form) `K the rest`.
pub fn pairs(text: &str, legacy: bool) -> std::result::Result<Vec<(String, String)>, String> {
    let first = text.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        if !legacy {
            return Err("expected KEY=VALUE".into());
        }
        let (key, value) = text
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("{text}: expected KEY VALUE or KEY=VALUE"))?;
        let value = words(value.trim())?.join(" ");
        return Ok(vec![(key.to_string(), value)]);
    }
    words(text)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("`{w}`: a name is missing")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!("`{w}`: expected KEY=VALUE")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_parse_as_docker_reads_them() {
        assert_eq!(
            ConfigChange::parse(r#"CMD ["sh", "-c", "x"]"#).unwrap(),
            ConfigChange::Cmd(vec!["sh".into(), "-c".into(), "x".into()])
        );
        assert_eq!(
            ConfigChange::parse("cmd echo hi").unwrap(),
            ConfigChange::Cmd(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(
            ConfigChange::parse(r#"ENV A=1 B="two words""#).unwrap(),
            ConfigChange::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into())
            ])
        );
        assert_eq!(
            ConfigChange::parse("ENV A one two").unwrap(),
            ConfigChange::Env(vec![("A".into(), "one two".into())])
        );
        assert_eq!(
            ConfigChange::parse("EXPOSE 80 53/udp").unwrap(),
            ConfigChange::Expose(vec!["80/tcp".into(), "53/udp".into()])
        );
        assert!(ConfigChange::parse("EXPOSE http").is_err());
        assert!(ConfigChange::parse("RUN rm -rf /").is_err());
        assert!(ConfigChange::parse("LABEL novalue").is_err());
    }

    #[test]
    fn changes_apply_to_docker_keys() {
        let mut run = Map::new();
        run.insert("Env".into(), json!(["PATH=/bin", "A=0"]));
        run.insert("Cmd".into(), json!(["sh"]));
        for line in [
            "ENV A=1 B=2",
            "WORKDIR /app",
            "WORKDIR sub",
            "ENTRYPOINT [\"/e\"]",
        ] {
            ConfigChange::parse(line).unwrap().apply(&mut run);
        }
        assert_eq!(run["Env"], json!(["PATH=/bin", "A=1", "B=2"]));
        assert_eq!(run["WorkingDir"], json!("/app/sub"));
        assert_eq!(run["Entrypoint"], json!(["/e"]));
        assert_eq!(run["Cmd"], Value::Null);
    }
}
