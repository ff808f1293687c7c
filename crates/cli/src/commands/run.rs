//! `run`: an image's root as an overlay snapshot, a runtime spec from the image
//! config and the flags, the container in the foreground, then cleanup.
//!
//! The work is split in two because the runtime forks: [`prepare`] does the async
//! part (finding or pulling the image) while the tokio runtime runs, and
//! [`execute`] runs the container after that runtime and its threads are gone,
//! so the forked child never inherits locks held by other threads.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use basic_image_store::{HolderKind, ImageStore};
use basic_registry::{Platform, Reference};
use basic_rootfs::snapshot::Snapshotter;
use basic_runtime::{Container, ContainerError, Spec};
use serde_json::Value;

use super::run_spec::{self, ImageConfig};
use super::{host, image_store};
use crate::cli::{GlobalOptions, RunArgs};

/// docker's exit code for a failure of the engine itself.
pub const ENGINE_FAILURE: u8 = 125;

/// Everything decided before the container starts.
pub struct Prepared {
    id: String,
    spec: Spec,
    container_dir: PathBuf,
    rootfs: PathBuf,
    snapshotter: Box<dyn Snapshotter>,
    /// Holds the image for this container until its files are removed.
    store: ImageStore,
    remove: bool,
    init: bool,
}

/// Finds the image (pulling it when absent, as docker does), prepares and mounts its
/// snapshot, and builds the runtime spec.
pub async fn prepare(global: &GlobalOptions, args: RunArgs) -> anyhow::Result<Prepared> {
    let (image, command) = args
        .image_and_command
        .split_first()
        .context("\"run\" requires at least 1 argument: IMAGE [COMMAND] [ARG...]")?;
    let store = image_store(global)?;
    let image_id = find_or_pull(global, &store, image, args.platform.as_deref()).await?;
    let config = ImageConfig::from_json(&store.image_config(&image_id)?);
    let record = store.image(&image_id)?;
    let layers = record
        .layers
        .iter()
        .map(|l| Ok(store.layer_dir(&l.chain_id)?.join("diff")))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let id = new_container_id()?;
    // Held before the layers are mounted: from here an `rmi` (even `-f`) or a
    // prune cannot take the layers away from under the container. Holding
    // fails if an `rmi` removed the image since it was resolved above.
    store
        .hold(HolderKind::Container, &id, &image_id)
        .with_context(|| format!("holding image {image_id} for container {}", short(&id)))?;
    let container_dir = global.root.join("containers").join(&id);
    let rootfs = container_dir.join("rootfs");
    let mounted = std::fs::create_dir_all(&rootfs)
        .with_context(|| format!("creating {}", rootfs.display()))
        .map(|()| host::snapshotter(&global.root))
        .and_then(|snapshotter| {
            mount_snapshot(snapshotter.as_ref(), &id, &layers, &rootfs, args.rm)
                .map(|()| snapshotter)
        });
    let snapshotter = match mounted {
        Ok(snapshotter) => snapshotter,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&container_dir);
            release(&store, &id);
            return Err(e);
        }
    };
    let prepared = Prepared {
        id,
        spec: Spec::default(),
        container_dir,
        rootfs,
        snapshotter,
        store,
        remove: args.rm,
        init: args.init,
    };
    let spec = run_spec::build(&args, command, &config, &prepared.rootfs, &prepared.id)
        .and_then(|spec| check_isolation(&spec, args.isolation == "strict").map(|()| spec));
    match spec {
        Ok(spec) => Ok(Prepared { spec, ..prepared }),
        Err(e) => {
            prepared.cleanup(true);
            Err(e)
        }
    }
}

/// Runs the prepared container in the foreground and cleans up; the exit code is the
/// container's own, or docker's 125/126/127 when it could not start.
pub fn execute(prepared: Prepared) -> ExitCode {
    let spec_path = prepared.container_dir.join("config.json");
    if let Err(e) = prepared.spec.save(&spec_path) {
        eprintln!("Error: writing {}: {e}", spec_path.display());
        prepared.cleanup(true);
        return ExitCode::from(ENGINE_FAILURE);
    }
    let outcome = Container::builder(prepared.id.clone(), prepared.spec.clone(), &prepared.rootfs)
        .init(prepared.init)
        .build()
        .and_then(|c| c.run());
    let code = match outcome {
        Ok(status) => {
            if status.oom_killed {
                eprintln!(
                    "container {} was OOM killed (memory limit reached)",
                    short(&prepared.id)
                );
            }
            status.exit_code()
        }
        Err(e) => {
            eprintln!("Error: {}", error_chain(&e));
            start_failure_code(&e)
        }
    };
    prepared.cleanup(prepared.remove);
    ExitCode::from(u8::try_from(code).unwrap_or(ENGINE_FAILURE))
}

impl Prepared {
    /// Unmounts the root; with `remove`, also deletes the snapshot and the container's
    /// directory (`--rm`, or a container that never started).
    fn cleanup(&self, remove: bool) {
        if let Err(e) = self.snapshotter.unmount(&self.rootfs) {
            eprintln!("Warning: unmounting {}: {e}", self.rootfs.display());
        }
        if !remove {
            return;
        }
        if let Err(e) = self.snapshotter.remove(&self.id) {
            eprintln!("Warning: removing the snapshot of {}: {e}", short(&self.id));
        }
        if let Err(e) = std::fs::remove_dir_all(&self.container_dir) {
            eprintln!("Warning: removing {}: {e}", self.container_dir.display());
            // Its files are still there, so are its upper layers' lower dirs:
            // keep holding the image rather than let GC pull them away.
            return;
        }
        release(&self.store, &self.id);
    }
}

/// Lets the image go once the container's files are gone; an image `rmi -f`
/// removed while the container used it is collected now.
fn release(store: &ImageStore, id: &str) {
    if let Err(e) = store.release(HolderKind::Container, id) {
        eprintln!("Warning: releasing the image of {}: {e}", short(id));
    }
}

/// The image's id, pulling it first when the store does not have it.
async fn find_or_pull(
    global: &GlobalOptions,
    store: &ImageStore,
    image: &str,
    platform: Option<&str>,
) -> anyhow::Result<String> {
    if let Ok(record) = store.resolve(image) {
        return Ok(record.id);
    }
    let reference = Reference::parse(image)?;
    if let Ok(record) = store.resolve(&reference.to_string()) {
        return Ok(record.id);
    }
    eprintln!("Unable to find image '{}' locally", reference.familiar());
    let platform = platform.map(Platform::parse).transpose()?;
    let report = super::pull::pull_to_stderr(global, &reference, platform).await?;
    Ok(report.image_id)
}

/// Prepares and mounts the container's root. For a `--rm` container the overlay is
/// mounted `volatile`: its upper directory is deleted at exit, so the sync of it that
/// unmounting would otherwise do (tens of milliseconds on ext4) is wasted work.
fn mount_snapshot(
    snapshotter: &dyn Snapshotter,
    id: &str,
    layers: &[PathBuf],
    rootfs: &Path,
    throwaway: bool,
) -> anyhow::Result<()> {
    let mut snapshot = snapshotter
        .prepare(id, layers)
        .with_context(|| format!("preparing the root filesystem of {}", short(id)))?;
    let plain = snapshot.clone();
    if throwaway {
        for m in snapshot.mounts.iter_mut().filter(|m| m.fstype == "overlay") {
            m.options.push("volatile".to_string());
        }
    }
    // Kernels before 5.10 do not know `volatile`: mount without it there.
    let mounted = snapshotter
        .mount(&snapshot, rootfs)
        .or_else(|_| snapshotter.mount(&plain, rootfs));
    if let Err(e) = mounted {
        let _ = snapshotter.remove(id);
        return Err(e).with_context(|| format!("mounting the root filesystem of {}", short(id)));
    }
    Ok(())
}

/// Warns once about what the host cannot give (namespaces, cgroup controllers, ...),
/// or with `--isolation=strict` refuses: never a silent downgrade.
fn check_isolation(spec: &Spec, strict: bool) -> anyhow::Result<()> {
    let missing = basic_runtime::unsupported(spec, &host::environment(false));
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    if strict {
        bail!("--isolation=strict: this host cannot give the isolation asked for: {list}");
    }
    eprintln!("WARNING: running with less isolation than asked for: {list}");
    Ok(())
}

/// docker's 126 (cannot execute) and 127 (not found), else 125.
fn start_failure_code(e: &ContainerError) -> i32 {
    e.exit_code()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// 64 hex digits from the kernel's random source, as docker's container ids.
fn new_container_id() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for a container id")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Reads a JSON string array field.
pub(super) fn strings(value: &Value) -> Option<Vec<String>> {
    value.as_array().map(|a| {
        a.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    })
}
