//! Running containers, as the monitoring verbs (`stats`, `top`, `monitor`) find them:
//! the engine's running containers with the runtime spec each was started with.

use std::path::PathBuf;

use anyhow::bail;
use basic_image_store::short_id;
use serde_json::Value;

use crate::cli::GlobalOptions;

/// One running container.
#[derive(Debug, Clone)]
pub struct RunningContainer {
    /// Full container id.
    pub id: String,
    /// Its init's PID, as the host sees it.
    pub pid: i32,
    /// `--name`, or empty.
    pub name: String,
    /// The image (a `repo:tag`, or its id), or empty when unknown.
    pub image: String,
    /// The merged root filesystem, from the state file.
    pub rootfs: Option<PathBuf>,
    /// The runtime spec (`config.json`), when this `--root` has it.
    pub spec: Option<Value>,
}

impl RunningContainer {
    /// The first 12 characters of the id, as docker shows it.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    /// The name, or `--` when the container has none (docker's placeholder).
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            "--"
        } else {
            &self.name
        }
    }

    /// `process.args` of the spec.
    pub fn command(&self) -> Vec<String> {
        self.spec
            .as_ref()
            .and_then(|s| s.pointer("/process/args"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The correlation view's input: what the spec says about this container.
    pub fn correlation_input(&self) -> basic_monitor::CorrelationInput {
        let spec = self.spec.as_ref();
        let at = |p: &str| spec.and_then(|s| s.pointer(p));
        let cpu_quota = match (
            at("/linux/resources/cpu/quota").and_then(Value::as_i64),
            at("/linux/resources/cpu/period").and_then(Value::as_u64),
        ) {
            (Some(q), Some(p)) => Some((q, p)),
            (Some(q), None) => Some((q, 100_000)),
            _ => None,
        };
        let namespaces = at("/linux/namespaces")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.get("type").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        basic_monitor::CorrelationInput {
            container_id: self.id.clone(),
            name: (!self.name.is_empty()).then(|| self.name.clone()),
            image: (!self.image.is_empty()).then(|| self.image.clone()),
            command: self.command(),
            memory_limit: at("/linux/resources/memory/limit")
                .and_then(Value::as_i64)
                .and_then(|l| u64::try_from(l).ok()),
            cpu_quota,
            pids_limit: at("/linux/resources/pids/limit").and_then(Value::as_i64),
            namespaces,
            rootfs: self.rootfs.clone(),
            upper_dir: None,
        }
    }
}

/// Every running (or paused) container of the engine, sorted by name then id.
pub fn running(global: &GlobalOptions) -> anyhow::Result<Vec<RunningContainer>> {
    let engine = super::engine(global)?;
    let mut found: Vec<RunningContainer> = engine
        .list(false, &basic_engine::Filters::default())?
        .into_iter()
        .filter_map(|listed| {
            let pid = listed.status.pid()?;
            let c = listed.container;
            let spec = std::fs::read(c.paths.spec())
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            Some(RunningContainer {
                pid,
                name: c.name().to_string(),
                image: c.record.image.clone(),
                rootfs: Some(c.paths.rootfs.clone()),
                spec,
                id: c.record.id,
            })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    Ok(found)
}

/// Finds `query` (a full id, a name, or a unique id prefix) among `all`.
pub fn resolve_in(all: &[RunningContainer], query: &str) -> anyhow::Result<RunningContainer> {
    if query.is_empty() {
        bail!("No such container: {query}");
    }
    if let Some(c) = all.iter().find(|c| c.id == query) {
        return Ok(c.clone());
    }
    let wanted = query.strip_prefix('/').unwrap_or(query);
    if let Some(c) = all.iter().find(|c| !c.name.is_empty() && c.name == wanted) {
        return Ok(c.clone());
    }
    let matches: Vec<&RunningContainer> = all.iter().filter(|c| c.id.starts_with(query)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("No such container: {query}"),
        _ => bail!(
            "multiple containers match the prefix {query}: use more of the id ({})",
            matches
                .iter()
                .map(|c| c.short_id())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Finds one running container by id, name or id prefix.
pub fn resolve(global: &GlobalOptions, query: &str) -> anyhow::Result<RunningContainer> {
    resolve_in(&running(global)?, query)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(id: &str, name: &str, spec: Option<Value>) -> RunningContainer {
        RunningContainer {
            id: id.into(),
            pid: 1,
            name: name.into(),
            image: "busybox".into(),
            rootfs: None,
            spec,
        }
    }

    #[test]
    fn resolves_by_id_name_and_prefix_and_reads_the_spec() {
        let spec = serde_json::from_str(
            r#"{"process":{"args":["sh"]},
                "linux":{"resources":{"memory":{"limit":1048576}},"namespaces":[{"type":"pid"}]}}"#,
        )
        .unwrap();
        let all = vec![
            running("abcdef0123", "web", Some(spec)),
            running("abc9999999", "", None),
        ];
        assert_eq!(resolve_in(&all, "web").unwrap().id, "abcdef0123");
        assert_eq!(resolve_in(&all, "abcd").unwrap().id, "abcdef0123");
        assert_eq!(resolve_in(&all, "abc9999999").unwrap().name, "");
        let ambiguous = resolve_in(&all, "abc").unwrap_err().to_string();
        assert!(ambiguous.contains("multiple"), "{ambiguous}");
        let missing = resolve_in(&all, "dead").unwrap_err().to_string();
        assert_eq!(missing, "No such container: dead");
        let input = resolve_in(&all, "web").unwrap().correlation_input();
        assert_eq!(input.memory_limit, Some(1048576));
        assert_eq!(input.command, ["sh"]);
        assert_eq!(input.namespaces, ["pid"]);
    }
}
