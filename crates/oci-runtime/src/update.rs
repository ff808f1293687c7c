//! `update`: new cgroup limits for a container, as containerd's runc shim asks with
//! `update --resources=- ID` (the JSON on standard input) when the kubelet calls
//! `UpdateContainerResources`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use basic_runtime::StateRoot;
use oci_spec::runtime::LinuxResources;

/// Reads the limits from `resources` (a file, or `-` for standard input) and writes them
/// into the container's cgroup.
pub fn update(root: &StateRoot, id: &str, resources: &Option<PathBuf>) -> Result<()> {
    let Some(from) = resources else {
        bail!(
            "update: give the new limits as --resources FILE, an OCI linux.resources JSON \
             object (- reads it from standard input); runc's per-limit flags (--memory, \
             --cpu-shares, ...) are not supported"
        );
    };
    let json = if from == Path::new("-") {
        let mut json = Vec::new();
        std::io::stdin()
            .read_to_end(&mut json)
            .context("update: reading --resources from standard input")?;
        json
    } else {
        std::fs::read(from).with_context(|| format!("update: reading {}", from.display()))?
    };
    let resources: LinuxResources = serde_json::from_slice(&json).with_context(|| {
        format!(
            "update: --resources {} is not an OCI linux.resources JSON object",
            from.display()
        )
    })?;
    root.update(id, &resources)?;
    Ok(())
}
