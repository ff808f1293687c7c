//! dockerd's `daemon.json`, for the settings this engine shares with it:
//! `registry-mirrors` and `insecure-registries`.
//!
//! Read once at start-up into the global options, so every registry client made
//! from them ([`crate::commands::registry_builder`], the API service's too) has
//! the same settings. As with dockerd: the default file may be missing; a file
//! named with `--config-file` must exist; a malformed file is an error naming the
//! file and what is wrong. Keys this engine has no use for are ignored, so a
//! daemon.json written for dockerd works as it is. The command line's mirrors and
//! insecure registries are added after the file's.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::cli::GlobalOptions;

/// Where the configuration file is looked for when `--config-file` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/basic-docker/daemon.json";

/// [`DEFAULT_CONFIG_FILE`], or in rootless mode the user's
/// `$XDG_CONFIG_HOME/basic-docker/daemon.json`.
fn default_config_file() -> PathBuf {
    match basic_runtime::rootless::active() {
        true => basic_engine::paths::UserPaths::from_env()
            .config
            .join("daemon.json"),
        false => PathBuf::from(DEFAULT_CONFIG_FILE),
    }
}

/// The keys read; dockerd's names.
#[derive(Debug, Default, Deserialize)]
struct DaemonFile {
    #[serde(rename = "registry-mirrors", default)]
    registry_mirrors: Vec<String>,
    #[serde(rename = "insecure-registries", default)]
    insecure_registries: Vec<String>,
}

/// Reads the configuration file into `global`: its lists first, then the
/// command line's.
pub fn apply(global: &mut GlobalOptions) -> anyhow::Result<()> {
    let (path, explicit) = match &global.config_file {
        Some(path) => (path.clone(), true),
        None => (default_config_file(), false),
    };
    let Some(file) = read(&path, explicit).with_context(|| {
        format!(
            "unable to configure basic-docker with file {}",
            basic_escape::escape_path(&path)
        )
    })?
    else {
        return Ok(());
    };
    global.registry_mirrors = file
        .registry_mirrors
        .into_iter()
        .chain(std::mem::take(&mut global.registry_mirrors))
        .collect();
    global.insecure_registries = file
        .insecure_registries
        .into_iter()
        .chain(std::mem::take(&mut global.insecure_registries))
        .collect();
    Ok(())
}

/// The file's settings, mirrors validated and normalised; `None` when the
/// default file does not exist.
fn read(path: &Path, explicit: bool) -> anyhow::Result<Option<DaemonFile>> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(None),
        Err(e) => return Err(e).context("reading it"),
    };
    let mut file: DaemonFile = serde_json::from_slice(&text)?;
    for mirror in &mut file.registry_mirrors {
        *mirror = basic_registry::Mirror::parse(mirror)?.url().to_string();
    }
    for registry in &file.insecure_registries {
        if registry.contains("://") {
            bail!("insecure registry {registry:?} should not contain '://'");
        }
    }
    Ok(Some(file))
}
