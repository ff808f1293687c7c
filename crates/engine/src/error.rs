//! What can go wrong in the engine, each with what a user can act on.

use std::path::PathBuf;

use basic_image_store::{StorageFault, filesystem_of};

use crate::paths::EnginePaths;

/// Errors of [`crate::Engine`]'s verbs. [`EngineError::exit_code`] gives docker's
/// command-line codes; [`EngineError::kind`] the HTTP-like class an API maps it to.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No container by that id, id prefix or name.
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    /// The image is not in the store (pull it first).
    #[error("No such image: {0}")]
    NoSuchImage(String),
    /// No such path in the container (docker's message, which its clients show).
    #[error("Could not find the file {path} in container {container}")]
    NoSuchPath {
        /// The container as the caller named it.
        container: String,
        /// The path inside it.
        path: String,
    },
    /// Something else a request names does not exist (a network driver, a volume...).
    #[error("{0}")]
    NotFound(String),
    /// No volume by that name.
    #[error("No such volume: {0}")]
    NoSuchVolume(String),
    /// The request is malformed or names something impossible.
    #[error("{0}")]
    InvalidArgument(String),
    /// The container is in a state that does not allow this.
    #[error("{0}")]
    Conflict(String),
    /// A running container's metrics (its cgroup, its processes) could not be read.
    #[error("{what} of container {container}")]
    Metrics {
        /// The container's id.
        container: String,
        /// What was being read.
        what: &'static str,
        /// The cause.
        #[source]
        source: basic_monitor::CgroupError,
    },
    /// A detached container did not start; `message` is what its supervisor reported.
    #[error("{message}")]
    StartFailed {
        /// The container.
        id: String,
        /// Why (the whole error chain, as text).
        message: String,
        /// docker's exit code for it (125, 126 or 127).
        code: i32,
    },
    /// A file of the engine could not be read or written.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done ("writing", "creating", ...).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The filesystem of the store or of the run-time state is full or mounted
    /// read-only; `source` is what failed for it.
    #[error("{fault} ({} {})", filesystem.display(), fault.state())]
    Storage {
        /// Full or read-only.
        fault: StorageFault,
        /// The mount point of the filesystem.
        filesystem: PathBuf,
        /// What failed.
        #[source]
        source: Box<EngineError>,
    },
    /// A record of the engine is not what it should be.
    #[error("{what}: {message}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// The image store failed.
    #[error(transparent)]
    Store(#[from] basic_image_store::StoreError),
    /// The image reference is malformed.
    #[error(transparent)]
    Reference(#[from] basic_registry::ReferenceError),
    /// The container could not start or run.
    #[error(transparent)]
    Container(#[from] basic_runtime::ContainerError),
    /// The runtime's lifecycle operations failed (pause, resume, state).
    #[error(transparent)]
    Lifecycle(#[from] basic_runtime::LifecycleError),
    /// An exec into a container failed.
    #[error(transparent)]
    Exec(#[from] basic_runtime::exec::ExecError),
    /// The supervisor failed around the container.
    #[error(transparent)]
    Supervisor(#[from] basic_runtime::supervisor::SupervisorError),
    /// A tar stream could not be extracted (`cp`).
    #[error("{what}")]
    Archive {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: basic_rootfs::ApplyError,
    },
    /// Building the runtime spec failed.
    #[error(transparent)]
    Spec(#[from] basic_runtime::SpecError),
    /// The network could not be set up or torn down.
    #[error(transparent)]
    Network(#[from] basic_network::Error),
    /// The root filesystem could not be prepared or mounted.
    #[error(transparent)]
    Snapshot(#[from] basic_rootfs::snapshot::SnapshotError),
    /// A root filesystem could not be written as a tarball.
    #[error(transparent)]
    Export(#[from] basic_rootfs::export::ExportError),
    /// A terminal could not be set up.
    #[error(transparent)]
    Terminal(#[from] basic_runtime::terminal::TerminalError),
    /// Attaching to a container's stdio failed.
    #[error(transparent)]
    Attach(#[from] basic_runtime::attach::AttachError),
    /// An OCI type refused a value.
    #[error(transparent)]
    Oci(#[from] oci_spec::OciSpecError),
    /// The caller's side of a foreground container (Engine::start_attached) could not be set up.
    #[error("attaching to container {id}: {what}")]
    Foreground {
        /// The container.
        id: String,
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A container's supervisor was killed: nothing recorded the container's end.
    #[error(
        "the supervisor of container {id} was killed by signal {signal}; `system check` reports what it left behind"
    )]
    SupervisorKilled {
        /// The container.
        id: String,
        /// The signal.
        signal: i32,
    },
    /// A stream's consumer stopped it (its callback returned this: the client went away).
    #[error("the stream was stopped by its reader")]
    Stopped,
    /// The image's content could not be copied into a new volume.
    #[error("copying the image's {destination} into volume {volume}: {source}")]
    CopyUp {
        /// The volume.
        volume: String,
        /// The mount's destination in the container.
        destination: String,
        /// What went wrong, and where in the tree.
        #[source]
        source: basic_rootfs::tree::TreeError,
    },
    /// A system call failed.
    #[error("{what}")]
    Sys {
        /// The operation.
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
}

/// The class of an [`EngineError`], as docker's API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request itself is wrong.
    InvalidArgument,
    /// 404: what it names does not exist.
    NotFound,
    /// 409: the state does not allow it.
    Conflict,
    /// 500: the engine failed.
    Internal,
}

/// The class of an image store error: what it names is missing, in use, or malformed.
fn store_kind(e: &basic_image_store::StoreError) -> ErrorKind {
    use basic_image_store::StoreError as S;
    match e {
        S::NoSuchImage(_) | S::NoSuchContainer(_) => ErrorKind::NotFound,
        S::NameInUse { .. } | S::Conflict { .. } | S::InUse { .. } | S::InUseById { .. } => {
            ErrorKind::Conflict
        }
        S::InvalidTag(_)
        | S::InvalidDigest(_)
        | S::AmbiguousContainer { .. }
        | S::Ambiguous { .. } => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    }
}

/// A bad archive is the caller's fault; a failing disk is not.
fn archive_kind(e: &basic_rootfs::ApplyError) -> ErrorKind {
    use basic_rootfs::ApplyError as A;
    match e {
        A::InvalidMember { .. }
        | A::Escape { .. }
        | A::LinkTarget { .. }
        | A::Truncated { .. }
        | A::Tar { .. }
        | A::Compression(_)
        | A::Decompress { .. }
        | A::Limit { .. } => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    }
}

/// The class of a network error.
fn network_kind(e: &basic_network::Error) -> ErrorKind {
    use basic_network::Error as N;
    match e {
        N::NetworkNotFound(_) => ErrorKind::NotFound,
        N::NetworkExists(_)
        | N::NetworkInUse { .. }
        | N::Predefined(..)
        | N::PortAllocated { .. }
        | N::AlreadyAttached(_) => ErrorKind::Conflict,
        N::InvalidName(_)
        | N::InvalidSubnet(_)
        | N::InvalidContainerId(_)
        | N::Rootless(_)
        | N::PrivilegedPort { .. } => ErrorKind::InvalidArgument,
        _ => ErrorKind::Internal,
    }
}

impl EngineError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::NoSuchContainer(_)
            | EngineError::NoSuchImage(_)
            | EngineError::NotFound(_)
            | EngineError::NoSuchVolume(_)
            | EngineError::NoSuchPath { .. } => ErrorKind::NotFound,
            EngineError::Archive { source, .. } => archive_kind(source),
            EngineError::Network(e) => network_kind(e),
            EngineError::InvalidArgument(_)
            | EngineError::Reference(_)
            | EngineError::Spec(_)
            | EngineError::Oci(_) => ErrorKind::InvalidArgument,
            EngineError::Conflict(_)
            | EngineError::Attach(basic_runtime::attach::AttachError::NotServing { .. }) => {
                ErrorKind::Conflict
            }
            EngineError::Store(e) => store_kind(e),
            _ => ErrorKind::Internal,
        }
    }

    /// docker's exit codes: 127 the command was not found in the container, 126 it
    /// cannot be executed, 125 anything else of the engine's.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Container(e) => e.exit_code(),
            EngineError::Supervisor(basic_runtime::supervisor::SupervisorError::Container(e)) => {
                e.exit_code()
            }
            EngineError::Exec(e) => e.exit_code(),
            EngineError::StartFailed { code, .. } => *code,
            _ => 125,
        }
    }

    /// An I/O error of `what` on `path`; a full or read-only filesystem is said as such
    /// ([`EngineError::Storage`]).
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| match StorageFault::of(&source) {
            Some(fault) => EngineError::Storage {
                fault,
                filesystem: filesystem_of(&path),
                source: Box::new(EngineError::Io { what, path, source }),
            },
            None => EngineError::Io { what, path, source },
        }
    }

    /// This error, said as a full or read-only filesystem when that is what it comes
    /// down to (an `ENOSPC` or `EROFS` somewhere in its chain, from any crate) and the
    /// store's or the state's filesystem is in that state now, naming that filesystem.
    pub(crate) fn on_storage(self, paths: &EnginePaths) -> Self {
        match StorageFault::diagnose(&self, &[&paths.root, &paths.state]) {
            Some((fault, filesystem)) => EngineError::Storage {
                fault,
                filesystem,
                source: Box::new(self),
            },
            None => self,
        }
    }

    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let what = what.into();
        move |source| EngineError::Sys { what, source }
    }
}

/// Shorthand for results of the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
