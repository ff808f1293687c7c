//! `create`: an image's root as a snapshot, its volumes found or made (and filled from the
//! image), a runtime spec from the image's config and the container's, and a record that
//! holds the image.

use basic_image_store::{ContainerRecord, short_id};
use basic_registry::Reference;
use basic_rootfs::snapshot::Snapshotter;
use basic_runtime::Spec;

use crate::config::{ContainerConfig, StoredConfig};
use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};
use crate::mounts::{self, ContainerMount};
use crate::network::{self, Mode};
use crate::paths::ContainerPaths;
use crate::spec::{self, Identity, ImageDefaults};
use crate::status::now_nanos;
use crate::volumes::local::Lock;
use crate::{names, privacy, rootfs, status, validate};

/// How to create a container, beyond its configuration.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Its name (docker's `--name`; a leading `/` is allowed); generated when `None`.
    pub name: Option<String>,
    /// Refuse to create it when the host cannot give every isolation its spec asks for
    /// (otherwise that is a warning).
    pub strict_isolation: bool,
    /// Leave its root mounted, for a caller that starts it right away.
    pub keep_root_mounted: bool,
}

/// A new container and docker's warnings about it.
#[derive(Debug, Clone)]
pub struct Created {
    /// The container.
    pub container: Container,
    /// Things the user should know (ports discarded, less isolation than asked).
    pub warnings: Vec<String>,
}

impl Engine {
    /// Creates a container from `config` (its `Image` must be in the store: pull it
    /// first). Anything made is undone on failure.
    pub fn create(&self, config: ContainerConfig, options: &CreateOptions) -> Result<Created> {
        // A start usually follows: its cgroup migration's wait runs while we create.
        basic_runtime::cgroups::warm_up_migration();
        self.on_storage(self.create_container(config, options))
    }

    fn create_container(
        &self,
        config: ContainerConfig,
        options: &CreateOptions,
    ) -> Result<Created> {
        self.store.writable("create container")?;
        let image = config
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| EngineError::InvalidArgument("no image given (Image)".into()))?;
        let mut warnings = self.check_config(&config)?;
        let image_id = self.find_image(&image)?;
        let defaults = ImageDefaults::from(&self.store.image_configuration(&image_id)?);
        let id = names::new_container_id()?;
        let name = match &options.name {
            Some(name) => {
                let name = names::normalize_name(name);
                names::check_name(name)?;
                name.to_string()
            }
            None => names::generate(&self.store)?,
        };
        let paths = self.paths.container(&id);
        let snapshotter = self.snapshotter();
        let throwaway = config
            .host_config
            .as_ref()
            .and_then(|h| h.auto_remove)
            .unwrap_or(false);
        // A volatile snapshot mounts only once: only a root mounted from create to start.
        let volatile = throwaway && options.keep_root_mounted;
        // Held from finding or making the container's volumes until its record names
        // them, so that no `volume rm` or `volume prune` takes one away in between.
        let volumes = match mounts::wanted(&config, &defaults.volume_paths())? {
            true => {
                let local = self.local_volumes();
                let lock = local.lock()?;
                Some((local, lock))
            }
            false => None,
        };
        // The root is mounted now only for whoever needs it mounted: a caller that starts
        // the container at once, and volumes to fill from it. Otherwise the start mounts it.
        let mount_now = options.keep_root_mounted || volumes.is_some();
        let mut new_volumes = Vec::new();
        let undo = |new_volumes: &[String]| {
            discard(snapshotter.as_ref(), &paths, &id);
            if let Some((local, lock)) = &volumes {
                for name in new_volumes {
                    if let Err(e) = local.remove(lock, name) {
                        tracing::warn!("removing volume {name} made for a failed create: {e}");
                    }
                }
            }
        };
        let made = self.make(
            &config,
            &defaults,
            &image_id,
            Identified {
                id: &id,
                name: &name,
                paths: &paths,
            },
            RootPlan {
                volatile,
                mount_now,
            },
            volumes.as_ref().map(|(_, lock)| lock),
            &mut new_volumes,
        );
        let (spec, container_mounts, _making) = match made {
            Ok((spec, mounts, making, merged)) => {
                warnings.extend(merged);
                (spec, mounts, making)
            }
            Err(e) => {
                undo(&new_volumes);
                return Err(e);
            }
        };
        match self.isolation_gaps(&spec) {
            Some(gaps) if options.strict_isolation => {
                undo(&new_volumes);
                return Err(EngineError::InvalidArgument(format!(
                    "--isolation=strict: this host cannot give the isolation asked for: {gaps}"
                )));
            }
            Some(gaps) => warnings.push(format!(
                "running with less isolation than asked for: {gaps}"
            )),
            None => {}
        }
        let stored = StoredConfig {
            command: spec
                .process()
                .as_ref()
                .and_then(|p| p.args().clone())
                .unwrap_or_default(),
            stop_signal: spec::stop_signal(&config, &defaults),
            exposed_ports: spec::exposed_ports(&config, &defaults),
            mounts: container_mounts,
            config,
        };
        let record = ContainerRecord {
            id: id.clone(),
            name,
            image_id,
            image,
            created: now_nanos(),
            config: match serde_json::to_value(&stored) {
                Ok(value) => value,
                Err(e) => {
                    undo(&new_volumes);
                    return Err(EngineError::Corrupt {
                        what: "the container's configuration".into(),
                        message: e.to_string(),
                    });
                }
            },
            started: None,
            exit: None,
            restart_count: 0,
        };
        // The record also holds the image: from here an `rmi` cannot take the layers away
        // from under the container.
        if let Err(e) = self.store.create_container(&record) {
            undo(&new_volumes);
            return Err(e.into());
        }
        drop(volumes);
        if mount_now && !options.keep_root_mounted {
            rootfs::unmount(snapshotter.as_ref(), &paths);
        }
        let container = Container {
            record,
            config: stored,
            paths,
        };
        self.event(&container, "create", &[]);
        Ok(Created {
            container,
            warnings,
        })
    }

    /// What can be refused before anything is made; returns docker's warnings.
    fn check_config(&self, config: &ContainerConfig) -> Result<Vec<String>> {
        validate::check(config, &validate::HostCpus::read())?;
        let stored = StoredConfig {
            config: config.clone(),
            ..Default::default()
        };
        let restart = stored.restart_policy();
        let restarts = restart != basic_runtime::supervisor::RestartPolicy::No;
        if stored.auto_remove() && restarts {
            return Err(EngineError::InvalidArgument(
                "Conflicting options: --restart and --rm".into(),
            ));
        }
        if stored.tty() && restarts {
            return Err(EngineError::InvalidArgument(
                "--restart with -t is not supported: a restarted container would have no terminal"
                    .into(),
            ));
        }
        stored.log_rotation()?;
        mounts::check(config)?;
        if basic_runtime::rootless::active() {
            let env = crate::host::environment(&self.paths, false);
            crate::host::refuse_unreachable_limits(config, &env)?;
        }
        network::check(&self.paths, &stored)
    }

    /// The image's id, for a name, a reference or an id the store knows.
    pub fn find_image(&self, image: &str) -> Result<String> {
        if let Ok(record) = self.store.resolve(image) {
            return Ok(record.id);
        }
        let reference = Reference::parse(image)?;
        self.store
            .resolve(&reference.to_string())
            .map(|r| r.id)
            .map_err(|_| EngineError::NoSuchImage(image.to_string()))
    }

    /// The container's root, mounts and spec, and a warning when the image's bottom
    /// layers were merged for it. `volumes` is the volumes lock, held when the container
    /// mounts any; volumes made are added to `new_volumes`.
    #[allow(clippy::too_many_arguments)]
    fn make(
        &self,
        config: &ContainerConfig,
        defaults: &ImageDefaults,
        image_id: &str,
        who: Identified<'_>,
        root: RootPlan,
        volumes: Option<&Lock>,
        new_volumes: &mut Vec<String>,
    ) -> Result<(Spec, Vec<ContainerMount>, std::fs::File, Option<String>)> {
        let Identified { id, name, paths } = who;
        let snapshotter = self.snapshotter();
        let stack = rootfs::layer_stack(snapshotter.as_ref(), &self.store, image_id)?;
        // Said once, when the merge is made: that is when it costs time and disk.
        let merged = stack.merged.filter(|m| m.made_now).map(|m| m.to_string());
        privacy::create_container_dir(paths)?;
        // Held until the record exists: `system check` leaves alone a container directory
        // without a record while this lock is taken (a create in progress).
        let making = status::lock_supervisor(paths)?.ok_or_else(|| {
            EngineError::Conflict(format!("container {} is being created", short_id(id)))
        })?;
        rootfs::prepare(snapshotter.as_ref(), id, &stack.paths, root.volatile)?;
        if root.mount_now {
            snapshotter.mount_key(id, &paths.rootfs)?;
        }
        // The root is mounted when there are volumes: an empty one is filled from it.
        let container_mounts = match volumes {
            Some(lock) => self.resolve_mounts(
                config,
                &defaults.volume_paths(),
                &paths.rootfs,
                lock,
                new_volumes,
            )?,
            None => Vec::new(),
        };
        let who = Identity {
            id,
            name,
            rootfs: &paths.rootfs,
            mounts: &container_mounts,
        };
        let mut spec = spec::build(config, defaults, &who)?;
        crate::host::fit_spec_to_rootless(&self.paths, &mut spec);
        let hostname = spec.hostname().clone().unwrap_or_default();
        let stored = StoredConfig {
            config: config.clone(),
            ..Default::default()
        };
        network::configure_spec(
            &self.paths,
            &self.store,
            &mut spec,
            &Mode::parse(&stored.network_mode()),
            paths,
            &hostname,
        )?;
        // The spec holds the container's environment: owner-only, unlike Spec::save.
        let bytes = serde_json::to_vec(&spec).map_err(|e| EngineError::Corrupt {
            what: "the runtime spec".into(),
            message: e.to_string(),
        })?;
        privacy::write_private(&paths.spec(), &bytes)?;
        Ok((spec, container_mounts, making, merged))
    }

    /// What the host cannot give of what `spec` asks (namespaces, controllers), as one
    /// line, or `None`.
    fn isolation_gaps(&self, spec: &Spec) -> Option<String> {
        let missing =
            basic_runtime::unsupported(spec, &crate::host::environment(&self.paths, false));
        (!missing.is_empty()).then(|| {
            missing
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// A new container's id, name and files.
#[derive(Clone, Copy)]
struct Identified<'a> {
    id: &'a str,
    name: &'a str,
    paths: &'a ContainerPaths,
}

/// How the container's root is prepared at create.
#[derive(Clone, Copy)]
struct RootPlan {
    /// A volatile snapshot (mounted once, never synced).
    volatile: bool,
    /// Mounted now rather than at start.
    mount_now: bool,
}

/// Unmounts and deletes what a failed create made.
fn discard(snapshotter: &dyn Snapshotter, paths: &ContainerPaths, id: &str) {
    let _ = snapshotter.unmount(&paths.rootfs);
    if let Err(e) = snapshotter.remove(id) {
        tracing::debug!("removing the snapshot of {}: {e}", short_id(id));
    }
    let _ = std::fs::remove_dir_all(&paths.dir);
}
