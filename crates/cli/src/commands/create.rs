//! `create` (and the first half of `run`): an image's root as a snapshot, a
//! runtime spec from the image config and the flags, and a container record.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use basic_image_store::{ContainerRecord, ImageStore, short_id};
use basic_registry::{Platform, Reference};
use basic_rootfs::snapshot::{Mount, Snapshotter};
use basic_runtime::Spec;
use basic_runtime::logfile::Rotation;
use basic_runtime::supervisor::RestartPolicy;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::container_network::{self, Mode};
use super::live::{Paths, now_nanos};
use super::run_spec::{self, ImageConfig};
use super::{host, image_store, names, privacy};
use crate::cli::{GlobalOptions, RunArgs};

/// What the engine keeps about a container beside its runtime spec (the
/// record's `config`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// `--restart`, as docker writes it.
    pub restart: String,
    /// `--rm`.
    pub auto_remove: bool,
    /// `--init`.
    #[serde(default)]
    pub init: bool,
    /// `-i`.
    #[serde(default)]
    pub interactive: bool,
    /// `-t`.
    #[serde(default)]
    pub tty: bool,
    /// `--network`.
    #[serde(default)]
    pub network: String,
    /// `-p`, as given.
    #[serde(default)]
    pub publish: Vec<String>,
    /// `-P`.
    #[serde(default)]
    pub publish_all: bool,
    /// The image's ExposedPorts (`80/tcp`), for `-P`.
    #[serde(default)]
    pub exposed: Vec<String>,
    /// `--dns`.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--log-opt max-size`, in bytes.
    #[serde(default)]
    pub log_max_size: Option<u64>,
    /// `--log-opt max-file`.
    #[serde(default)]
    pub log_max_files: Option<u32>,
    /// The image's StopSignal, or SIGTERM.
    pub stop_signal: String,
    /// `process.args` of the spec (docker's Path + Args).
    pub command: Vec<String>,
}

impl Settings {
    /// The settings stored in `record`.
    pub fn of(record: &ContainerRecord) -> anyhow::Result<Self> {
        serde_json::from_value(record.config.clone())
            .with_context(|| format!("reading the settings of container {}", record.id))
    }

    /// The log's rotation: docker's json-file options, else 20 MB × 5 files.
    pub fn log_rotation(&self) -> Rotation {
        let default = Rotation::default();
        Rotation {
            max_size: self.log_max_size.unwrap_or(default.max_size),
            max_files: self.log_max_files.unwrap_or(default.max_files),
        }
    }

    /// The restart policy.
    pub fn restart_policy(&self) -> RestartPolicy {
        self.restart.parse().unwrap_or_default()
    }
}

/// A container that has a record, a snapshot and a spec, its root mounted.
pub struct Created {
    /// The record, as stored.
    pub record: ContainerRecord,
    /// The container's paths.
    pub paths: Paths,
}

/// Finds (or pulls) the image, prepares and mounts the container's root, writes
/// the spec and records the container. Anything made is undone on failure.
pub async fn create(global: &GlobalOptions, args: &RunArgs) -> anyhow::Result<Created> {
    let (image, command) = args
        .image_and_command
        .split_first()
        .context("\"create\" requires at least 1 argument: IMAGE [COMMAND] [ARG...]")?;
    let restart: RestartPolicy = args.restart.parse()?;
    if args.rm && restart != RestartPolicy::No {
        bail!("Conflicting options: --restart and --rm");
    }
    if args.tty && restart != RestartPolicy::No {
        bail!("--restart with -t is not supported: a restarted container would have no terminal");
    }
    let log_options = parse_log_options(&args.log_opt)?;
    let network = Mode::parse(&args.network);
    container_network::check_flags(&global.root, &network, &args.publish, &args.dns)?;
    let store = image_store(global)?;
    let image_id = find_or_pull(global, &store, image, args.platform.as_deref()).await?;
    let config = store.image_config(&image_id)?;
    let id = new_container_id()?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => names::generate(&store)?,
    };
    let record = ContainerRecord {
        id: id.clone(),
        name: name.clone(),
        image_id: image_id.clone(),
        image: image.clone(),
        created: now_nanos(),
        config: Value::Null,
        started: None,
        exit: None,
        restart_count: 0,
    };
    let paths = Paths::new(&global.root, &id);
    let snapshotter = host::snapshotter(&global.root);
    let made = (|| {
        let layers = layer_dirs(&store, &image_id)?;
        privacy::create_container_dir(&paths)?;
        let mounts = prepare_snapshot(snapshotter.as_ref(), &id, &layers, args.rm)?;
        save_mounts(&paths, &mounts)?;
        mount(snapshotter.as_ref(), &paths, &mounts)?;
        let mut spec_args = args.clone();
        spec_args.name = Some(name.clone());
        // The spec gets a private network namespace unless it shares the host's;
        // which one it joins is set below.
        if network != Mode::Host {
            spec_args.network = "none".to_string();
        }
        let mut spec = run_spec::build(
            &spec_args,
            command,
            &ImageConfig::from_json(&config),
            &paths.rootfs,
            &id,
        )?;
        if let Some(process) = spec.process_mut() {
            process.set_terminal(Some(args.tty));
        }
        let hostname = spec.hostname().clone().unwrap_or_default();
        container_network::configure_spec(
            &global.root,
            &store,
            &mut spec,
            &network,
            &paths,
            &hostname,
        )?;
        // The spec holds the container's environment: owner-only, unlike Spec::save.
        privacy::write_private(&paths.spec(), &serde_json::to_vec(&spec)?)?;
        anyhow::Ok(spec)
    })();
    let spec = match made {
        Ok(spec) => spec,
        Err(e) => {
            discard(snapshotter.as_ref(), &paths, &id);
            return Err(e);
        }
    };
    let settings = Settings {
        restart: restart.to_string(),
        auto_remove: args.rm,
        init: args.init,
        interactive: args.interactive,
        tty: args.tty,
        network: args.network.clone(),
        publish: args.publish.clone(),
        publish_all: args.publish_all,
        exposed: config["config"]["ExposedPorts"]
            .as_object()
            .map(|ports| ports.keys().cloned().collect())
            .unwrap_or_default(),
        dns: args.dns.clone(),
        log_max_size: log_options.0,
        log_max_files: log_options.1,
        stop_signal: config["config"]["StopSignal"]
            .as_str()
            .unwrap_or("SIGTERM")
            .to_string(),
        command: command_of(&spec),
    };
    let record = ContainerRecord {
        config: serde_json::to_value(&settings)?,
        ..record
    };
    // The record also holds the image: from here an `rmi` cannot take the
    // layers away from under the container.
    if let Err(e) = store.create_container(&record) {
        discard(snapshotter.as_ref(), &paths, &id);
        return Err(e.into());
    }
    Ok(Created { record, paths })
}

/// Unmounts and deletes what a failed create made.
fn discard(snapshotter: &dyn Snapshotter, paths: &Paths, id: &str) {
    let _ = snapshotter.unmount(&paths.rootfs);
    let _ = snapshotter.remove(id);
    let _ = std::fs::remove_dir_all(&paths.dir);
}

fn command_of(spec: &Spec) -> Vec<String> {
    spec.process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default()
}

fn layer_dirs(store: &ImageStore, image_id: &str) -> anyhow::Result<Vec<PathBuf>> {
    store
        .image(image_id)?
        .layers
        .iter()
        .map(|l| Ok(store.layer_dir(&l.chain_id)?.join("diff")))
        .collect()
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

/// Prepares the container's snapshot. For a `--rm` container the overlay is
/// mounted `volatile`: its upper directory is deleted at exit, so the sync of it
/// that unmounting would otherwise do (tens of milliseconds on ext4) is wasted.
fn prepare_snapshot(
    snapshotter: &dyn Snapshotter,
    id: &str,
    layers: &[PathBuf],
    throwaway: bool,
) -> anyhow::Result<Vec<Mount>> {
    let mut snapshot = snapshotter
        .prepare(id, layers)
        .with_context(|| format!("preparing the root filesystem of {}", short_id(id)))?;
    if throwaway {
        for m in snapshot.mounts.iter_mut().filter(|m| m.fstype == "overlay") {
            m.options.push("volatile".to_string());
        }
    }
    Ok(snapshot.mounts)
}

/// Mounts the container's root from its saved mounts (at create, and at each
/// start after an unmount or a reboot).
pub fn mount(snapshotter: &dyn Snapshotter, paths: &Paths, mounts: &[Mount]) -> anyhow::Result<()> {
    let snapshot = basic_rootfs::snapshot::Snapshot {
        key: String::new(),
        dir: paths.dir.clone(),
        mounts: mounts.to_vec(),
        readonly: false,
    };
    if snapshotter.mount(&snapshot, &paths.rootfs).is_ok() {
        return Ok(());
    }
    // Kernels before 5.10 do not know `volatile`: mount without it there.
    let mut plain = snapshot.clone();
    for m in &mut plain.mounts {
        m.options.retain(|o| o != "volatile");
    }
    snapshotter
        .mount(&plain, &paths.rootfs)
        .with_context(|| format!("mounting the root filesystem at {}", paths.rootfs.display()))
}

/// Whether the container's root is mounted now.
pub fn is_mounted(paths: &Paths) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = paths.rootfs.to_string_lossy();
    table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mount_point| mount_point == want)
}

#[derive(Serialize, Deserialize)]
struct SavedMount {
    fstype: String,
    source: PathBuf,
    options: Vec<String>,
    relative_to: Option<PathBuf>,
}

fn save_mounts(paths: &Paths, mounts: &[Mount]) -> anyhow::Result<()> {
    let saved: Vec<SavedMount> = mounts
        .iter()
        .map(|m| SavedMount {
            fstype: m.fstype.clone(),
            source: m.source.clone(),
            options: m.options.clone(),
            relative_to: m.relative_to.clone(),
        })
        .collect();
    privacy::write_private(&paths.mounts(), &serde_json::to_vec(&saved)?)
}

/// The mounts saved at create.
pub fn load_mounts(paths: &Paths) -> anyhow::Result<Vec<Mount>> {
    let path = paths.mounts();
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let saved: Vec<SavedMount> =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(saved
        .into_iter()
        .map(|m| Mount {
            fstype: m.fstype,
            source: m.source,
            options: m.options,
            relative_to: m.relative_to,
        })
        .collect())
}

/// 64 hex digits from the kernel's random source, as docker's container ids.
fn new_container_id() -> anyhow::Result<String> {
    let bytes: [u8; 32] = names::random_bytes().context("making a container id")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// `create`: prints the new container's id.
pub async fn run_create(global: &GlobalOptions, args: &RunArgs) -> anyhow::Result<()> {
    let created = create(global, args).await?;
    let snapshotter = host::snapshotter(&global.root);
    if let Err(e) = snapshotter.unmount(&created.paths.rootfs) {
        eprintln!(
            "Warning: unmounting {}: {e}",
            created.paths.rootfs.display()
        );
    }
    println!("{}", created.record.id);
    Ok(())
}

/// Warns once about what the host cannot give (namespaces, cgroup controllers, ...),
/// or with `--isolation=strict` refuses: never a silent downgrade.
pub fn check_isolation(paths: &Paths, strict: bool) -> anyhow::Result<()> {
    let spec =
        Spec::load(paths.spec()).with_context(|| format!("reading {}", paths.spec().display()))?;
    let missing = basic_runtime::unsupported(&spec, &host::environment(false));
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

/// `--log-opt max-size=10m` and `max-file=3`, as docker's json-file driver takes them.
fn parse_log_options(options: &[String]) -> anyhow::Result<(Option<u64>, Option<u32>)> {
    let (mut size, mut files) = (None, None);
    for option in options {
        match option.split_once('=') {
            Some(("max-size", v)) => {
                let bytes = run_spec::parse_bytes(v)
                    .with_context(|| format!("invalid --log-opt max-size {v:?}"))?;
                size = Some(u64::try_from(bytes).context("max-size must not be negative")?);
            }
            Some(("max-file", v)) => {
                let n: u32 = v.parse().ok().filter(|n| *n > 0).with_context(|| {
                    format!("invalid --log-opt max-file {v:?}: a number of files, at least 1")
                })?;
                files = Some(n);
            }
            _ => bail!("unknown log opt {option:?}: json-file takes max-size=SIZE and max-file=N"),
        }
    }
    Ok((size, files))
}
