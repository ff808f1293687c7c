//! Running containers, as the monitoring verbs find them: the runtime's
//! `/run/basic-docker/<id>/state.json` (while the container runs) joined with
//! the spec `run` saved at `<root>/containers/<id>/config.json`.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use basic_image_store::{HolderKind, ImageStore, short_id};
use serde_json::Value;

/// Where the runtime writes `<id>/state.json` while a container runs.
pub const STATE_DIR: &str = "/run/basic-docker";

/// Where compiled seccomp programs are kept between container starts and execs (the same
/// profile compiles to the same program; compiling docker's takes ~16 ms).
pub fn seccomp_cache() -> std::path::PathBuf {
    Path::new(STATE_DIR).join("seccomp-cache")
}

/// The spec annotation holding `run --name`.
pub const NAME_ANNOTATION: &str = "org.basic-docker.name";

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

/// Every running container, sorted by name then id. Stale state files (the
/// init is gone) are skipped.
pub fn running(root: &Path) -> anyhow::Result<Vec<RunningContainer>> {
    running_in(Path::new(STATE_DIR), root)
}

/// [`running`], with the state directory given.
pub fn running_in(state_dir: &Path, root: &Path) -> anyhow::Result<Vec<RunningContainer>> {
    let entries = match std::fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", state_dir.display())),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", state_dir.display()))?;
        let path = entry.path().join("state.json");
        // The container may just have exited (and its state been removed): not an error.
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(state) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let (Some(id), Some(pid)) = (
            state.get("id").and_then(Value::as_str),
            state.get("pid").and_then(Value::as_i64),
        ) else {
            continue;
        };
        let Ok(pid) = i32::try_from(pid) else {
            continue;
        };
        if pid <= 0 || !Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        let spec = std::fs::read_to_string(root.join("containers").join(id).join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok());
        let name = spec
            .as_ref()
            .and_then(|s| s.pointer("/annotations"))
            .and_then(|a| a.get(NAME_ANNOTATION))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        found.push(RunningContainer {
            id: id.to_string(),
            pid,
            name,
            image: String::new(),
            rootfs: state
                .get("rootfs")
                .and_then(Value::as_str)
                .map(PathBuf::from),
            spec,
        });
    }
    fill_images(root, &mut found);
    found.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    Ok(found)
}

/// Names each container's image from the store's holders (best effort: a
/// store that cannot be read leaves the images empty).
fn fill_images(root: &Path, containers: &mut [RunningContainer]) {
    if containers.is_empty() || !root.join("containers").is_dir() {
        return;
    }
    let Ok(store) = ImageStore::open(root) else {
        return;
    };
    let Ok(images) = store.images() else {
        return;
    };
    for image in images {
        let Ok(holders) = store.holders_of(&image.id) else {
            continue;
        };
        for holder in holders
            .iter()
            .filter(|h| matches!(h.kind, HolderKind::Container))
        {
            if let Some(c) = containers.iter_mut().find(|c| c.id == holder.id) {
                c.image = image
                    .repo_tags
                    .first()
                    .cloned()
                    .unwrap_or_else(|| short_id(&image.id).to_string());
            }
        }
    }
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
pub fn resolve(root: &Path, query: &str) -> anyhow::Result<RunningContainer> {
    resolve_in(&running(root)?, query)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_state(dir: &Path, id: &str, pid: i32) {
        let d = dir.join(id);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("state.json"),
            serde_json::json!({"ociVersion":"1.0.2","id":id,"status":"running","pid":pid,"rootfs":"/r"})
                .to_string(),
        )
        .unwrap();
    }

    #[test]
    fn discovers_live_containers_and_resolves_them() {
        let state = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        write_state(state.path(), "abcdef0123", me);
        write_state(state.path(), "abc9999999", me);
        write_state(state.path(), "dead000000", i32::MAX - 1);
        let spec_dir = root.path().join("containers/abcdef0123");
        std::fs::create_dir_all(&spec_dir).unwrap();
        std::fs::write(
            spec_dir.join("config.json"),
            r#"{"annotations":{"org.basic-docker.name":"web"},"process":{"args":["sh"]},
                "linux":{"resources":{"memory":{"limit":1048576}},"namespaces":[{"type":"pid"}]}}"#,
        )
        .unwrap();
        let all = running_in(state.path(), root.path()).unwrap();
        assert_eq!(all.len(), 2, "{all:?}");
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
