//! A container run in the foreground: builder, the runner's side of the start protocol,
//! waiting, cleanup.

use std::path::{Path, PathBuf};

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::cgroups::{self, CgroupError, CgroupManager};
use crate::channel::{self, ChannelError, FailureKind, Message};
use crate::process::{self, ChildConfig};
use crate::signals;

/// Errors running a container. [`ContainerError::exit_code`] maps them to docker's codes.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The container id is empty or has characters that do not belong in a path.
    #[error("invalid container id {0:?}: use letters, digits, '_', '-' and '.'")]
    InvalidId(String),
    /// The root filesystem does not exist.
    #[error("root filesystem {0} is not a directory")]
    NoRootfs(PathBuf),
    /// The spec is unusable as given.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// Loading a bundle's config.json failed.
    #[error("loading {path}")]
    LoadSpec {
        /// The config file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: oci_spec::OciSpecError,
    },
    /// Setting up the cgroup failed.
    #[error("container {id}: cgroup setup")]
    Cgroup {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: CgroupError,
    },
    /// The sync pipes failed.
    #[error("container {id}: talking to the container's processes")]
    Channel {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: ChannelError,
    },
    /// A syscall on the runner's side failed.
    #[error("container {id}: {what}")]
    Sys {
        /// The container.
        id: String,
        /// The operation.
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// Writing run-time state or id maps failed.
    #[error("container {id}: writing {path}")]
    Io {
        /// The container.
        id: String,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The container's processes failed before exec (the message comes from them).
    #[error("container {id}: {message}")]
    Start {
        /// The container.
        id: String,
        /// What kind of failure: not found, permission denied, or setup.
        kind: FailureKind,
        /// The whole error chain, as text.
        message: String,
    },
    /// Something failed, and so did removing the cgroup afterwards.
    #[error("{error}; cleaning up also failed: {cleanup}")]
    Cleanup {
        /// The first failure.
        #[source]
        error: Box<ContainerError>,
        /// The cleanup failure.
        cleanup: CgroupError,
    },
}

impl ContainerError {
    /// docker's convention: 127 command not found, 126 cannot execute, 125 anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ContainerError::Start {
                kind: FailureKind::NotFound,
                ..
            } => 127,
            ContainerError::Start {
                kind: FailureKind::PermissionDenied,
                ..
            } => 126,
            ContainerError::Cleanup { error, .. } => error.exit_code(),
            _ => 125,
        }
    }
}

/// How the container's init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
    /// Whether the kernel OOM-killed a process of the container.
    pub oom_killed: bool,
}

impl ExitStatus {
    /// The shell's convention: the exit code, or 128 + the signal number.
    pub fn exit_code(&self) -> i32 {
        self.code.unwrap_or_else(|| 128 + self.signal.unwrap_or(0))
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exited with code {c}")?,
            (_, Some(s)) => write!(f, "killed by signal {s}")?,
            _ => write!(f, "ended")?,
        }
        if self.oom_killed {
            write!(f, " (OOM killed)")?;
        }
        Ok(())
    }
}

/// Options shared by every way of starting a container.
#[derive(Debug, Clone)]
pub struct ContainerBuilder {
    id: String,
    spec: Spec,
    rootfs: PathBuf,
    state_dir: PathBuf,
    cgroup_root: PathBuf,
    use_cgroups: bool,
    init: bool,
    forward_signals: bool,
}

/// A container ready to run.
#[derive(Debug)]
pub struct Container {
    b: ContainerBuilder,
}

impl Container {
    /// Starts building container `id` from `spec`, with its root filesystem at `rootfs`
    /// (the spec's `root.path` is ignored; see [`Container::from_bundle`] for bundles).
    pub fn builder(
        id: impl Into<String>,
        spec: Spec,
        rootfs: impl Into<PathBuf>,
    ) -> ContainerBuilder {
        ContainerBuilder {
            id: id.into(),
            spec,
            rootfs: rootfs.into(),
            state_dir: PathBuf::from("/run/basic-docker"),
            cgroup_root: PathBuf::from(cgroups::DEFAULT_ROOT),
            use_cgroups: true,
            init: false,
            forward_signals: true,
        }
    }

    /// A builder for an OCI bundle: `<bundle>/config.json`, rootfs relative to the bundle.
    pub fn from_bundle(
        id: impl Into<String>,
        bundle: &Path,
    ) -> Result<ContainerBuilder, ContainerError> {
        let path = bundle.join("config.json");
        let spec = Spec::load(&path).map_err(|source| ContainerError::LoadSpec {
            path: path.clone(),
            source,
        })?;
        let root = spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| PathBuf::from("rootfs"));
        let rootfs = if root.is_absolute() {
            root
        } else {
            bundle.join(root)
        };
        Ok(Container::builder(id, spec, rootfs))
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.b.id
    }

    /// The cgroup path (relative to the hierarchy root) this container uses.
    pub fn cgroup_path(&self) -> PathBuf {
        self.b
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .unwrap_or_else(|| PathBuf::from(format!("basic-docker/{}", self.b.id)))
    }
}

impl ContainerBuilder {
    /// Directory for run-time state (`<dir>/<id>/state.json`); default `/run/basic-docker`.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Root of the cgroup hierarchies; default `/sys/fs/cgroup`.
    pub fn cgroup_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cgroup_root = dir.into();
        self
    }

    /// Whether to put the container in its own cgroup (default true; rootless callers
    /// without a delegated hierarchy turn it off).
    pub fn cgroups(mut self, on: bool) -> Self {
        self.use_cgroups = on;
        self
    }

    /// Run a tiny init as PID 1 that reaps zombies and forwards signals (docker `--init`).
    pub fn init(mut self, on: bool) -> Self {
        self.init = on;
        self
    }

    /// Forward SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1/2 received by this process to the
    /// container while it runs (default true). This replaces the process's handlers for
    /// that time.
    pub fn forward_signals(mut self, on: bool) -> Self {
        self.forward_signals = on;
        self
    }

    /// Validates and returns the container.
    pub fn build(self) -> Result<Container, ContainerError> {
        let ok = !self.id.is_empty()
            && self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            && !self.id.starts_with('.');
        if !ok {
            return Err(ContainerError::InvalidId(self.id));
        }
        if !self.rootfs.is_dir() {
            return Err(ContainerError::NoRootfs(self.rootfs));
        }
        if self.spec.process().is_none() {
            return Err(ContainerError::InvalidSpec("no process".into()));
        }
        let rootfs = self
            .rootfs
            .canonicalize()
            .map_err(|source| ContainerError::Io {
                id: self.id.clone(),
                path: self.rootfs.clone(),
                source,
            })?;
        Ok(Container {
            b: ContainerBuilder { rootfs, ..self },
        })
    }
}

impl Container {
    /// Runs the container in the foreground until its init exits; the cgroup and the state
    /// directory are removed before returning.
    pub fn run(&self) -> Result<ExitStatus, ContainerError> {
        let id = self.b.id.clone();
        let cg = if self.b.use_cgroups {
            let m = cgroups::manager_for(&self.b.cgroup_root, &self.cgroup_path());
            let cgerr = |source| ContainerError::Cgroup {
                id: id.clone(),
                source,
            };
            let setup = m.create().and_then(|()| match self.resources() {
                Some(r) => m.apply(r),
                None => Ok(()),
            });
            if let Err(e) = setup {
                return Err(with_cleanup(cgerr(e), m.remove()));
            }
            Some(m)
        } else {
            None
        };
        let result = self.run_in(cg.as_deref());
        let state = self.b.state_dir.join(&id);
        let _ = std::fs::remove_dir_all(&state);
        match (result, cg) {
            (Ok(mut status), Some(m)) => {
                status.oom_killed = m.oom_killed().unwrap_or(false);
                m.remove()
                    .map_err(|source| ContainerError::Cgroup { id, source })?;
                Ok(status)
            }
            (Err(e), Some(m)) => Err(with_cleanup(e, m.remove())),
            (r, None) => r,
        }
    }

    fn resources(&self) -> Option<&oci_spec::runtime::LinuxResources> {
        self.b
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
    }

    fn sys(&self, what: impl Into<String>) -> impl FnOnce(nix::Error) -> ContainerError {
        let (id, what) = (self.b.id.clone(), what.into());
        move |source| ContainerError::Sys { id, what, source }
    }

    fn chan(&self) -> impl FnOnce(ChannelError) -> ContainerError {
        let id = self.b.id.clone();
        move |source| ContainerError::Channel { id, source }
    }

    fn run_in(&self, cg: Option<&dyn CgroupManager>) -> Result<ExitStatus, ContainerError> {
        let (mut from_child, to_parent) = channel::pipe().map_err(self.chan())?;
        let (from_parent, mut to_child) = channel::pipe().map_err(self.chan())?;
        let stage1 = match unsafe { fork() }.map_err(self.sys("fork"))? {
            ForkResult::Child => {
                drop(from_child);
                drop(to_child);
                process::stage1(ChildConfig {
                    spec: &self.b.spec,
                    rootfs: self.b.rootfs.clone(),
                    init: self.b.init,
                    to_parent,
                    from_parent,
                })
            }
            ForkResult::Parent { child } => child,
        };
        drop(to_parent);
        drop(from_parent);

        let init = loop {
            match channel::recv(&mut from_child).map_err(self.chan())? {
                Message::NeedIdMaps => {
                    self.write_id_maps(stage1)?;
                    channel::signal(&mut to_child).map_err(self.chan())?;
                }
                Message::InitPid(pid) => break Pid::from_raw(pid),
                Message::Failure(kind, message) => {
                    let _ = waitpid(stage1, None);
                    return Err(self.start_error(kind, message));
                }
                Message::Eof => {
                    let _ = waitpid(stage1, None);
                    return Err(self.start_error(
                        FailureKind::Setup,
                        "the container's first process exited before starting init".into(),
                    ));
                }
            }
        };
        let _ = waitpid(stage1, None);
        // From here on the init must not outlive a failure of ours.
        let kill_init = |e: ContainerError| {
            let _ = nix::sys::signal::kill(init, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(init, None);
            e
        };
        if let Some(cg) = cg {
            cg.add_task(init.as_raw()).map_err(|source| {
                kill_init(ContainerError::Cgroup {
                    id: self.b.id.clone(),
                    source,
                })
            })?;
        }
        self.write_state(init).map_err(kill_init)?;
        let _guard = self
            .b
            .forward_signals
            .then(|| signals::forward_to(init.as_raw()));
        channel::signal(&mut to_child).map_err(|e| kill_init(self.chan()(e)))?;
        match channel::recv(&mut from_child).map_err(|e| kill_init(self.chan()(e)))? {
            Message::Eof => {}
            Message::Failure(kind, message) => {
                return Err(kill_init(self.start_error(kind, message)));
            }
            other => {
                return Err(kill_init(self.start_error(
                    FailureKind::Setup,
                    format!("unexpected message {other:?} from the container"),
                )));
            }
        }
        self.wait(init)
    }

    fn wait(&self, init: Pid) -> Result<ExitStatus, ContainerError> {
        loop {
            match waitpid(init, None) {
                Ok(WaitStatus::Exited(_, code)) => {
                    return Ok(ExitStatus {
                        code: Some(code),
                        signal: None,
                        oom_killed: false,
                    });
                }
                Ok(WaitStatus::Signaled(_, sig, _)) => {
                    return Ok(ExitStatus {
                        code: None,
                        signal: Some(sig as i32),
                        oom_killed: false,
                    });
                }
                Ok(_) | Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(self.sys(format!("waiting for init {init}"))(e)),
            }
        }
    }

    fn start_error(&self, kind: FailureKind, message: String) -> ContainerError {
        ContainerError::Start {
            id: self.b.id.clone(),
            kind,
            message,
        }
    }

    /// uid_map/gid_map of the first child's new user namespace. Unprivileged writers must
    /// deny setgroups first (kernel rule since 3.19).
    fn write_id_maps(&self, pid: Pid) -> Result<(), ContainerError> {
        let linux = self.b.spec.linux().as_ref();
        let fmt = |maps: Option<&Vec<LinuxIdMapping>>| {
            maps.map(|m| {
                m.iter()
                    .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
                    .collect::<String>()
            })
        };
        let uid = fmt(linux.and_then(|l| l.uid_mappings().as_ref()));
        let gid = fmt(linux.and_then(|l| l.gid_mappings().as_ref()));
        let proc = PathBuf::from(format!("/proc/{pid}"));
        let write = |file: &str, content: &str| {
            let path = proc.join(file);
            std::fs::write(&path, content).map_err(|source| ContainerError::Io {
                id: self.b.id.clone(),
                path,
                source,
            })
        };
        if !nix::unistd::geteuid().is_root() {
            write("setgroups", "deny")?;
        }
        if let Some(u) = uid {
            write("uid_map", &u)?;
        }
        if let Some(g) = gid {
            write("gid_map", &g)?;
        }
        Ok(())
    }

    /// A small runc-like state.json so other tools can find the init while it runs.
    fn write_state(&self, init: Pid) -> Result<(), ContainerError> {
        let dir = self.b.state_dir.join(&self.b.id);
        let err = |path: &Path| {
            let (id, path) = (self.b.id.clone(), path.to_path_buf());
            move |source| ContainerError::Io { id, path, source }
        };
        std::fs::create_dir_all(&dir).map_err(err(&dir))?;
        let state = serde_json::json!({
            "ociVersion": "1.0.2",
            "id": self.b.id,
            "status": "running",
            "pid": init.as_raw(),
            "rootfs": self.b.rootfs,
        });
        let path = dir.join("state.json");
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, state.to_string()).map_err(err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(err(&path))
    }
}

fn with_cleanup(error: ContainerError, cleanup: Result<(), CgroupError>) -> ContainerError {
    match cleanup {
        Ok(()) => error,
        Err(cleanup) => ContainerError::Cleanup {
            error: Box::new(error),
            cleanup,
        },
    }
}

/// Whether `spec` asks for a new namespace of this type (no `path`).
pub fn wants_namespace(spec: &Spec, typ: LinuxNamespaceType) -> bool {
    process::wants_new(spec, typ)
}
