//! [`Engine`]: a store root and a run-time state directory, opened once, and the
//! containers in them.

use std::ffi::OsString;
use std::path::PathBuf;

use basic_image_store::{ContainerRecord, ImageStore};
use basic_rootfs::snapshot::Snapshotter;

use crate::config::StoredConfig;
use crate::error::{EngineError, Result};
use crate::paths::{ContainerPaths, DEFAULT_ROOT, DEFAULT_STATE_DIR, EnginePaths};
use crate::status::Status;
use crate::{exits, host, legacy, privacy, status};

/// How a container's supervisor is started: a program and its arguments, to which the
/// engine appends the container's id. The supervisor is a process of its own (docker's
/// shim, podman's conmon) so that the container outlives the command that started it; it
/// must call [`Engine::supervise`] for that id with
/// [`Attachment::of_supervisor_process`](crate::Attachment::of_supervisor_process), exit
/// with the code that
/// returns and, on an error, print it on its stderr and exit with
/// [`EngineError::exit_code`](crate::EngineError::exit_code). Its stdio is `/dev/null`
/// for [`Engine::start`], and the attached caller's for [`Engine::start_attached`].
#[derive(Debug, Clone)]
pub struct SupervisorCommand {
    /// The program (by default this very program, through `/proc/self/exe`: the path
    /// stays right when it runs from a sealed copy of itself).
    pub program: PathBuf,
    /// `argv[0]` to show in `ps`.
    pub arg0: OsString,
    /// The arguments before the container's id.
    pub args: Vec<OsString>,
    /// The small program the supervisor runs while its container runs (see
    /// [`basic_runtime::supervisor`]: `basic-docker-supervise`, or a test binary that
    /// calls [`basic_runtime::supervisor::lean_main`]); `None` keeps the supervisor's own
    /// program throughout. Its `keep` is the engine's to fill.
    pub lean: Option<basic_runtime::supervisor::Lean>,
}

/// Where an engine keeps things and how it supervises.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The store root (default `/var/lib/basic-docker`).
    pub root: PathBuf,
    /// The run-time state directory (default `/run/basic-docker`).
    pub state: PathBuf,
    /// How supervisors start; `None` refuses [`Engine::start`] and
    /// [`Engine::start_attached`] (only [`Engine::supervise`] in this process is left).
    pub supervisor: Option<SupervisorCommand>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            root: PathBuf::from(DEFAULT_ROOT),
            state: PathBuf::from(DEFAULT_STATE_DIR),
            supervisor: None,
        }
    }
}

/// A container engine on one store.
pub struct Engine {
    pub(crate) paths: EnginePaths,
    pub(crate) store: ImageStore,
    pub(crate) supervisor: Option<SupervisorCommand>,
}

/// A container as the engine knows it: its record, its configuration, its files.
#[derive(Debug, Clone)]
pub struct Container {
    /// The store's record (id, name, image, times, last exit).
    pub record: ContainerRecord,
    /// The configuration it was created with.
    pub config: StoredConfig,
    /// Its files.
    pub paths: ContainerPaths,
}

impl Container {
    /// The full id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.record.name
    }
}

impl Engine {
    /// Opens (creating when new) the store at `options.root` and the state directory,
    /// and makes what an older version left there private.
    pub fn open(options: EngineOptions) -> Result<Engine> {
        let paths = EnginePaths {
            root: options.root,
            state: options.state,
        };
        let store = privacy::open_store(&paths)?;
        Ok(Engine {
            paths,
            store,
            supervisor: options.supervisor,
        })
    }

    /// The engine's directories.
    pub fn paths(&self) -> &EnginePaths {
        &self.paths
    }

    /// The image store.
    pub fn store(&self) -> &ImageStore {
        &self.store
    }

    /// The snapshotter of this store.
    pub fn snapshotter(&self) -> Box<dyn Snapshotter> {
        host::snapshotter(&self.paths)
    }

    /// The container named by `query`: a full id, a unique id prefix, or a name.
    pub fn container(&self, query: &str) -> Result<Container> {
        let record = self.store.container(query).map_err(|e| match e {
            basic_image_store::StoreError::NoSuchContainer(_) => {
                EngineError::NoSuchContainer(query.to_string())
            }
            e => e.into(),
        })?;
        self.load(record)
    }

    /// Every container, as the store lists them.
    pub fn containers(&self) -> Result<Vec<Container>> {
        self.store
            .containers()?
            .into_iter()
            .map(|r| self.load(r))
            .collect()
    }

    /// What container `c` is doing now.
    pub fn status(&self, c: &Container) -> Status {
        status::status(&self.paths, &c.record)
    }

    /// `result`, its error said as a full or read-only filesystem when it comes down to
    /// one (see [`EngineError::on_storage`]): for the verbs that write.
    pub(crate) fn on_storage<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| e.on_storage(&self.paths))
    }

    /// Records a docker event about `c` (see [`crate::events`]).
    pub(crate) fn event(&self, c: &Container, action: &str, extra: &[(&str, String)]) {
        crate::events::container_event(&self.paths.root, c, action, extra);
    }

    /// The store's record of container `id` (a full id), with the last run its
    /// supervisor kept aside when the store could not take it.
    pub(crate) fn stored(&self, id: &str) -> Result<ContainerRecord> {
        let mut record = self.store.container(id)?;
        exits::fold(&mut record, &self.paths.container(id));
        Ok(record)
    }

    pub(crate) fn load(&self, mut record: ContainerRecord) -> Result<Container> {
        let config = legacy::stored_config(&record)?;
        let paths = self.paths.container(&record.id);
        exits::fold(&mut record, &paths);
        Ok(Container {
            record,
            config,
            paths,
        })
    }
}
