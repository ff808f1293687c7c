//! The OCI lifecycle split in steps, as runc's command line exposes it:
//! [`Container::create`] sets everything up and leaves the init parked before exec;
//! [`StateRoot`] finds created containers by id for `start`, `state`, `kill`, `pause`,
//! `resume` and `delete`, from any process.
//!
//! ```no_run
//! use basic_runtime::{Container, StateRoot, Status};
//! use nix::sys::signal::Signal;
//!
//! let root = StateRoot::new("/run/basic-runtime");
//! let state = Container::from_bundle("web", "/path/to/bundle".as_ref())?
//!     .state_dir(root.dir())
//!     .build()?
//!     .create()?;                       // returns with the init parked: "created"
//! println!("init pid {}", state.pid);
//! root.start("web")?;                   // the command execs: "running"
//! root.kill("web", Signal::SIGTERM, false)?;
//! while root.state("web")?.status != Status::Stopped {
//!     std::thread::sleep(std::time::Duration::from_millis(10));
//! }
//! root.delete("web", false)?;           // cgroup and state are gone
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On disk, `<root>/<id>/` holds `state.json` and, until `start`, `start/exec.fifo`. Status
//! is computed when asked: `stopped` when the recorded init pid is gone, a zombie, or a
//! different process (its start time differs); `paused` when its cgroup is frozen;
//! `created` while the fifo exists; `running` otherwise.
//!
//! The state is private to whoever runs the runtime (see [`crate::state`] for the modes);
//! [`StateRoot::open`] tightens a state root an older version made wider.

use std::os::fd::AsFd;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

use crate::cgroups::{self, CgroupError, CgroupManager, CgroupVersion};
use crate::container::{Container, ContainerError, kill_init};
use crate::hooks::HookKind;
use crate::state::{
    self as saved_state, CONTAINER_DIR_MODE, EXEC_FIFO, START_DIR, STATE_FILE_MODE, Saved, State,
    StateError, Status,
};

/// Errors of the lifecycle commands. Each names the container.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The id cannot name a container.
    #[error("invalid container id {0:?}: use letters, digits, '_', '-' and '.'")]
    InvalidId(String),
    /// No container with this id under the state root.
    #[error("container {id} does not exist (state root {root})")]
    NotFound {
        /// The container.
        id: String,
        /// The state root searched.
        root: PathBuf,
    },
    /// `create` with an id already in use.
    #[error("container {id} already exists (state root {root})")]
    Exists {
        /// The container.
        id: String,
        /// The state root.
        root: PathBuf,
    },
    /// The operation does not fit the container's status.
    #[error("container {id} is {status}: {what}")]
    WrongState {
        /// The container.
        id: String,
        /// Its status.
        status: Status,
        /// What cannot be done, and what to do instead.
        what: String,
    },
    /// Setting the container up failed.
    #[error(transparent)]
    Create(#[from] ContainerError),
    /// The state file is unreadable.
    #[error("container {id}: state")]
    State {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: StateError,
    },
    /// A file in the state directory or the freezer could not be used.
    #[error("container {id}: {what} {path}")]
    Io {
        /// The container.
        id: String,
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A syscall failed.
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
    /// The container's cgroup could not be used or removed.
    #[error("container {id}: cgroup")]
    Cgroup {
        /// The container.
        id: String,
        /// The cause.
        #[source]
        source: CgroupError,
    },
    /// The state root could not be listed or made private.
    #[error("state root {root}")]
    Root {
        /// The state root.
        root: PathBuf,
        /// The cause.
        #[source]
        source: StateError,
    },
    /// The init exited before it could be started.
    #[error("container {id}: the init process exited before start")]
    InitGone {
        /// The container.
        id: String,
    },
    /// A `startContainer` hook failed; the init exited without running the command.
    #[error("container {id}: {message}")]
    StartHook {
        /// The container.
        id: String,
        /// Which hook, and how it failed (as the init reported it).
        message: String,
    },
    /// The processes did not end after SIGKILL.
    #[error("container {id}: init {pid} still alive {secs} s after SIGKILL")]
    KillTimeout {
        /// The container.
        id: String,
        /// The init.
        pid: i32,
        /// How long we waited.
        secs: u64,
    },
}

/// How long `delete --force` waits for killed processes to go.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long `start` waits for the init's exec before the poststart hooks run anyway.
const EXEC_WAIT: Duration = Duration::from_secs(1);

impl Container {
    /// OCI `create`: sets the container up (cgroup, namespaces, mounts, capabilities,
    /// seccomp, terminal) and returns once its init is parked before exec, waiting for
    /// [`StateRoot::start`]. The state is written to `<state_dir>/<id>/state.json`.
    ///
    /// The init is this process's child until this process exits (a subreaper such as
    /// conmon then adopts it); a long-lived caller reaps it with `waitpid`. An id that is
    /// already in use under the state directory is refused.
    ///
    /// **The fork rule** (see [`crate::fork_rule`]): the calling process must be
    /// single-threaded, or this returns [`ContainerError::ForkRule`] before anything is set
    /// up.
    pub fn create(&self) -> Result<State, LifecycleError> {
        self.enforce_fork_rule()?;
        let id = self.b.id.clone();
        let root = self.b.state_dir.clone();
        let dir = root.join(&id);
        let io = |what, path: &Path| {
            let (id, path) = (id.clone(), path.to_path_buf());
            move |source| LifecycleError::Io {
                id,
                what,
                path,
                source,
            }
        };
        saved_state::create_root(&root).map_err(|source| LifecycleError::State {
            id: id.clone(),
            source,
        })?;
        match std::fs::DirBuilder::new()
            .mode(CONTAINER_DIR_MODE)
            .create(&dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(LifecycleError::Exists { id, root });
            }
            Err(e) => return Err(io("creating", &dir)(e)),
        }
        let result = self.create_in(&dir);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    fn create_in(&self, dir: &Path) -> Result<State, LifecycleError> {
        let id = &self.b.id;
        // The init may have switched to an unprivileged user by the time it opens the fifo:
        // the fifo's own directory is traversable and the fifo writable by anyone. The init
        // starts its lookup at a descriptor of that directory, so the owner-only directory
        // around it (and its state.json) stay out of everybody else's reach.
        let start_dir = dir.join(START_DIR);
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&start_dir)
            .map_err(|source| LifecycleError::Io {
                id: id.clone(),
                what: "creating",
                path: start_dir.clone(),
                source,
            })?;
        // mkdir's mode went through the umask, which may have taken the search bits.
        std::fs::set_permissions(&start_dir, std::fs::Permissions::from_mode(0o711)).map_err(
            |source| LifecycleError::Io {
                id: id.clone(),
                what: "chmod",
                path: start_dir.clone(),
                source,
            },
        )?;
        let fifo = start_dir.join(EXEC_FIFO);
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622))
            .map_err(sys(id, format!("mkfifo {}", fifo.display())))?;
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &fifo,
            Mode::from_bits_truncate(0o622),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(sys(id, format!("chmod {}", fifo.display())))?;
        let dir_fd = nix::fcntl::open(
            &start_dir,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys(id, format!("opening {}", start_dir.display())))?;
        let prepared = self.prepare()?;
        let cg = self.setup_cgroup()?;
        let spawned = self.spawn(cg.as_deref(), &prepared, Some(dir_fd.as_fd()));
        let result = spawned.and_then(|sp| {
            self.write_state(sp.init, Status::Created)
                .map_err(|e| kill_init(sp.init, e))
        });
        if result.is_err() {
            self.poststop_after_failure(None);
        }
        match (result, cg) {
            (Ok(state), _) => Ok(state),
            (Err(e), Some(m)) => Err(match m.remove() {
                Ok(()) => e.into(),
                Err(cleanup) => ContainerError::Cleanup {
                    error: Box::new(e),
                    cleanup,
                }
                .into(),
            }),
            (Err(e), None) => Err(e.into()),
        }
    }
}

fn sys(id: &str, what: impl Into<String>) -> impl FnOnce(nix::Error) -> LifecycleError {
    let (id, what) = (id.to_string(), what.into());
    move |source| LifecycleError::Sys { id, what, source }
}

/// The containers under one state directory (runc's `--root`), addressed by id.
#[derive(Debug, Clone)]
pub struct StateRoot {
    dir: PathBuf,
}

/// A loaded container: its saved state and where it lives.
struct Found {
    dir: PathBuf,
    saved: Saved,
}

impl StateRoot {
    /// The containers under `dir` (e.g. `/run/basic-runtime`). Touches nothing on disk; see
    /// [`StateRoot::open`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        StateRoot { dir: dir.into() }
    }

    /// The containers under `dir`, after making what an older version left there private:
    /// the root is tightened to at most `0711`, each container's directory to `0700` and its
    /// `state.json` to `0600`. Nothing else changes, a missing root is fine (`create` makes
    /// it), and once done this costs a `stat` per container.
    ///
    /// A container still parked in `created` with the older layout (its fifo directly in
    /// its directory) keeps its directory's mode until it has started: its init may have
    /// switched to a user that must still reach the fifo.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, LifecycleError> {
        let root = StateRoot::new(dir);
        let state = |id: &str| {
            let id = id.to_string();
            move |source| LifecycleError::State { id, source }
        };
        let entries = match std::fs::read_dir(&root.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(root),
            Err(source) => {
                return Err(LifecycleError::Root {
                    root: root.dir.clone(),
                    source: StateError::Io {
                        what: "listing",
                        path: root.dir.clone(),
                        source,
                    },
                });
            }
        };
        saved_state::tighten(&root.dir, saved_state::ROOT_MODE).map_err(|source| {
            LifecycleError::Root {
                root: root.dir.clone(),
                source,
            }
        })?;
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            let dir = entry.path();
            if check_id(&id).is_err() || !Saved::path(&dir).exists() {
                continue;
            }
            saved_state::tighten(&Saved::path(&dir), STATE_FILE_MODE).map_err(state(&id))?;
            if !dir.join(EXEC_FIFO).exists() {
                saved_state::tighten(&dir, CONTAINER_DIR_MODE).map_err(state(&id))?;
            }
        }
        Ok(root)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn find(&self, id: &str) -> Result<Found, LifecycleError> {
        check_id(id)?;
        let dir = self.dir.join(id);
        if !Saved::path(&dir).exists() {
            return Err(LifecycleError::NotFound {
                id: id.to_string(),
                root: self.dir.clone(),
            });
        }
        let saved = Saved::load(&dir).map_err(|source| LifecycleError::State {
            id: id.to_string(),
            source,
        })?;
        Ok(Found { dir, saved })
    }

    /// OCI `state`: the saved state with its status computed now.
    pub fn state(&self, id: &str) -> Result<State, LifecycleError> {
        let found = self.find(id)?;
        Ok(found.current())
    }

    /// Every container under the root, sorted by id (unreadable entries are skipped).
    pub fn list(&self) -> Result<Vec<State>, LifecycleError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(LifecycleError::Io {
                    id: String::new(),
                    what: "listing",
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out: Vec<State> = entries
            .flatten()
            .filter_map(|e| self.state(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// OCI `start`: lets a created container's init exec its command. Fails for a
    /// container that is not `created`, or whose init died.
    pub fn start(&self, id: &str) -> Result<(), LifecycleError> {
        let mut found = self.find(id)?;
        let status = found.status();
        if status != Status::Created {
            let what = match status {
                Status::Stopped => "cannot start a container that has stopped",
                _ => "cannot start an already running container",
            };
            return Err(found.wrong(status, what));
        }
        let poststart = !HookKind::Poststart
            .of(found.saved.hooks.as_ref())
            .is_empty();
        let parked_exe = poststart.then(|| found.init_exe()).flatten();
        found.open_fifo()?;
        found.saved.state.status = Status::Running;
        found.save()?;
        if poststart {
            // The spec: poststart runs after the user-specified process is executed. The
            // init execs right after its byte; wait (briefly) until it has.
            found.wait_for_exec(parked_exe);
            found.run_warning_hooks(HookKind::Poststart);
        }
        Ok(())
    }

    /// OCI `kill`: sends `signal` to the init, or with `all` to every process in the
    /// container's cgroup. A stopped container is refused.
    pub fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<(), LifecycleError> {
        let found = self.find(id)?;
        let status = found.status();
        if status == Status::Stopped {
            return Err(found.wrong(status, "container not running, nothing to signal"));
        }
        if all {
            return found.signal_all(signal);
        }
        nix::sys::signal::kill(Pid::from_raw(found.saved.state.pid), signal).map_err(sys(
            id,
            format!("sending {signal} to init {}", found.saved.state.pid),
        ))
    }

    /// OCI `delete`: removes a stopped container's cgroup and state, then runs its
    /// `poststop` hooks. A created, running or paused one is refused unless `force`, which
    /// kills it first (the spec: deleting a container that is not stopped must fail and
    /// leave it alone; runc deletes created ones anyway, crun does not). With `force` an
    /// unknown id is not an error (runc's behaviour, which engines rely on).
    pub fn delete(&self, id: &str, force: bool) -> Result<(), LifecycleError> {
        let found = match self.find(id) {
            Err(LifecycleError::NotFound { .. }) if force => {
                // A create that died half-way may have left the directory without a state.
                let _ = std::fs::remove_dir_all(self.dir.join(id));
                return Ok(());
            }
            other => other?,
        };
        let status = found.status();
        match status {
            Status::Stopped => {}
            Status::Created | Status::Creating if force => found.kill_and_wait(false)?,
            Status::Running | Status::Paused if force => found.kill_and_wait(true)?,
            Status::Created | Status::Creating | Status::Running | Status::Paused => {
                return Err(found.wrong(
                    status,
                    "cannot delete a container that is not stopped; stop it first (kill) or use --force",
                ));
            }
        }
        found.remove()?;
        found.run_warning_hooks(HookKind::Poststop);
        Ok(())
    }

    /// Freezes every process of the container (freezer cgroup).
    pub fn pause(&self, id: &str) -> Result<(), LifecycleError> {
        let found = self.find(id)?;
        let status = found.status();
        if status != Status::Running {
            return Err(found.wrong(status, "only a running container can be paused"));
        }
        found.freeze(true)
    }

    /// Thaws a paused container.
    pub fn resume(&self, id: &str) -> Result<(), LifecycleError> {
        let found = self.find(id)?;
        let status = found.status();
        if status != Status::Paused {
            return Err(found.wrong(status, "only a paused container can be resumed"));
        }
        found.freeze(false)
    }

    /// OCI runtimes' `update`: writes new limits into a created, running or paused
    /// container's cgroup (what containerd's shim asks for when the kubelet changes a pod's
    /// resources). Only the fields present change. Device rules are left alone, as runc
    /// does: rewriting them would deny every device to running processes for a moment.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<(), LifecycleError> {
        let found = self.find(id)?;
        let status = found.status();
        if status == Status::Stopped {
            return Err(found.wrong(status, "a stopped container's limits cannot be changed"));
        }
        let cg = found.cgroup().ok_or_else(|| {
            found.wrong(
                status,
                "it was created without a cgroup, so it has no limits to change",
            )
        })?;
        let mut resources = resources.clone();
        resources.set_devices(None);
        cg.apply(&resources)
            .map_err(|source| LifecycleError::Cgroup {
                id: id.to_string(),
                source,
            })
    }

    /// Pids (in this pid namespace) of the container's processes: its cgroup's members, or
    /// just the init when it has no cgroup.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, LifecycleError> {
        let found = self.find(id)?;
        if found.status() == Status::Stopped {
            return Ok(Vec::new());
        }
        found.pids()
    }
}

fn check_id(id: &str) -> Result<(), LifecycleError> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(LifecycleError::InvalidId(id.to_string()))
    }
}

impl Found {
    fn id(&self) -> &str {
        &self.saved.state.id
    }

    fn wrong(&self, status: Status, what: &str) -> LifecycleError {
        LifecycleError::WrongState {
            id: self.id().to_string(),
            status,
            what: what.to_string(),
        }
    }

    fn cgroup(&self) -> Option<Box<dyn CgroupManager>> {
        self.saved
            .cgroup_path
            .as_ref()
            .map(|p| cgroups::manager_for(&self.saved.cgroup_root, p))
    }

    fn status(&self) -> Status {
        if !self.saved.init_alive() {
            return Status::Stopped;
        }
        if self.frozen() {
            return Status::Paused;
        }
        if self.fifo().exists() {
            return Status::Created;
        }
        // Started in process: recorded `creating` until the command was executed.
        if self.saved.state.status == Status::Creating {
            return Status::Creating;
        }
        Status::Running
    }

    /// Where the exec fifo is: in [`START_DIR`], or, for a container an older version
    /// created, directly in the container's directory.
    fn fifo(&self) -> PathBuf {
        let old = self.dir.join(EXEC_FIFO);
        if old.exists() {
            old
        } else {
            self.dir.join(START_DIR).join(EXEC_FIFO)
        }
    }

    fn current(mut self) -> State {
        let status = self.status();
        self.saved.state.status = status;
        if status == Status::Stopped {
            self.saved.state.pid = 0;
        }
        self.saved.state
    }

    fn save(&self) -> Result<(), LifecycleError> {
        self.saved
            .save(&self.dir)
            .map_err(|source| LifecycleError::State {
                id: self.id().to_string(),
                source,
            })
    }

    /// `start`'s side of the fifo: opening it for reading releases the init's blocked open;
    /// its byte says it got there. Polled so that an init that died is noticed instead of
    /// waited on forever.
    fn open_fifo(&self) -> Result<(), LifecycleError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let id = self.id();
        let path = self.fifo();
        let fd = nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys(id, format!("opening {}", path.display())))?;
        loop {
            let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            let n = match poll(&mut fds, PollTimeout::from(100u16)) {
                Ok(n) => n,
                Err(nix::Error::EINTR) => continue,
                Err(e) => return Err(sys(id, format!("waiting on {}", path.display()))(e)),
            };
            if n > 0 {
                let mut b = [0u8; 1];
                match nix::unistd::read(&fd, &mut b) {
                    Ok(1) if b[0] == b'0' => break,
                    Ok(1) => return Err(self.start_hook_failure(&fd)),
                    Ok(_) => return Err(LifecycleError::InitGone { id: id.to_string() }),
                    Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => continue,
                    Err(e) => return Err(sys(id, format!("reading {}", path.display()))(e)),
                }
            }
            if !self.saved.init_alive() {
                return Err(LifecycleError::InitGone { id: id.to_string() });
            }
        }
        std::fs::remove_file(&path).map_err(|source| LifecycleError::Io {
            id: id.to_string(),
            what: "removing",
            path,
            source,
        })
    }

    /// What the init runs now (`/proc/<pid>/exe`), to see it change at its exec.
    fn init_exe(&self) -> Option<PathBuf> {
        std::fs::read_link(format!("/proc/{}/exe", self.saved.state.pid)).ok()
    }

    /// Waits until the init has exec'd its command (its exe is no longer `parked`), it is
    /// gone, or [`EXEC_WAIT`] has passed (an init that runs the command as its child, as
    /// `--init` does, never changes its exe).
    fn wait_for_exec(&self, parked: Option<PathBuf>) {
        let Some(parked) = parked else { return };
        let start = Instant::now();
        while start.elapsed() < EXEC_WAIT && self.saved.init_alive() {
            if self.init_exe().is_none_or(|exe| exe != parked) {
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// What the init wrote after its failure byte: the failed `startContainer` hook, until
    /// it exits and the fifo ends.
    fn start_hook_failure(&self, fd: &std::os::fd::OwnedFd) -> LifecycleError {
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()));
        let mut message = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = nix::unistd::read(fd, &mut buf) {
            message.extend_from_slice(&buf[..n]);
        }
        LifecycleError::StartHook {
            id: self.id().to_string(),
            message: String::from_utf8_lossy(&message).into_owned(),
        }
    }

    /// Runs the saved hooks of a kind whose failures only warn, with the state as it is now.
    fn run_warning_hooks(&self, kind: HookKind) {
        let hooks = kind.of(self.saved.hooks.as_ref());
        if hooks.is_empty() {
            return;
        }
        let mut state = self.saved.state.clone();
        // The state of the moment the spec names: poststart follows the command's start
        // (a quick command may already be gone), poststop the deletion.
        state.status = match kind {
            HookKind::Poststop => Status::Stopped,
            _ => Status::Running,
        };
        let json = serde_json::to_vec(&state).expect("a state always serialises");
        crate::hooks::run_warning(kind, hooks, &json);
    }

    fn pids(&self) -> Result<Vec<i32>, LifecycleError> {
        match self.cgroup() {
            Some(cg) => cg.pids().map_err(|source| LifecycleError::Cgroup {
                id: self.id().to_string(),
                source,
            }),
            None => Ok(vec![self.saved.state.pid]),
        }
    }

    fn signal_all(&self, signal: Signal) -> Result<(), LifecycleError> {
        let mut pids = self.pids()?;
        if !pids.contains(&self.saved.state.pid) {
            pids.push(self.saved.state.pid);
        }
        for pid in pids {
            match nix::sys::signal::kill(Pid::from_raw(pid), signal) {
                Ok(()) | Err(nix::Error::ESRCH) => {}
                Err(e) => return Err(sys(self.id(), format!("sending {signal} to {pid}"))(e)),
            }
        }
        Ok(())
    }

    /// SIGKILL (the whole cgroup when `all`, after thawing it) and wait for the init to go.
    fn kill_and_wait(&self, all: bool) -> Result<(), LifecycleError> {
        if all {
            if self.frozen() {
                self.freeze(false)?;
            }
            self.signal_all(Signal::SIGKILL)?;
        } else {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.saved.state.pid), Signal::SIGKILL);
        }
        let start = Instant::now();
        while self.saved.init_alive() {
            if start.elapsed() > KILL_WAIT {
                return Err(LifecycleError::KillTimeout {
                    id: self.id().to_string(),
                    pid: self.saved.state.pid,
                    secs: KILL_WAIT.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn remove(&self) -> Result<(), LifecycleError> {
        if let Some(cg) = self.cgroup() {
            cg.remove().map_err(|source| LifecycleError::Cgroup {
                id: self.id().to_string(),
                source,
            })?;
        }
        std::fs::remove_dir_all(&self.dir).map_err(|source| LifecycleError::Io {
            id: self.id().to_string(),
            what: "removing",
            path: self.dir.clone(),
            source,
        })
    }

    /// The freezer file and the values meaning frozen / thawed, for this hierarchy.
    fn freezer(&self) -> Option<(PathBuf, &'static str, &'static str)> {
        let cg = self.cgroup()?;
        match cg.version() {
            CgroupVersion::V1 => Some((
                cg.controller_path("freezer")?.join("freezer.state"),
                "FROZEN",
                "THAWED",
            )),
            CgroupVersion::V2 => Some((
                cg.controller_path("freezer")?.join("cgroup.freeze"),
                "1",
                "0",
            )),
        }
    }

    fn frozen(&self) -> bool {
        self.freezer().is_some_and(|(file, frozen, _)| {
            std::fs::read_to_string(file).is_ok_and(|s| s.trim() == frozen)
        })
    }

    /// Writes the freezer state and waits until the kernel reports it (v1 passes through
    /// FREEZING while tasks are stopped one by one).
    fn freeze(&self, on: bool) -> Result<(), LifecycleError> {
        let id = self.id().to_string();
        let Some((file, frozen, thawed)) = self.freezer() else {
            return Err(LifecycleError::WrongState {
                id,
                status: self.status(),
                what: "it has no freezer cgroup (cgroups were off, or the freezer hierarchy is not mounted)"
                    .into(),
            });
        };
        let want = if on { frozen } else { thawed };
        let io = |what, source| LifecycleError::Io {
            id: id.clone(),
            what,
            path: file.clone(),
            source,
        };
        let start = Instant::now();
        loop {
            std::fs::write(&file, want).map_err(|e| io("writing", e))?;
            let now = std::fs::read_to_string(&file).map_err(|e| io("reading", e))?;
            if now.trim() == want {
                return Ok(());
            }
            if start.elapsed() > KILL_WAIT {
                return Err(io(
                    "waiting for the freezer state to settle in",
                    std::io::Error::other(format!(
                        "still {:?} after {} s, wanted {want}",
                        now.trim(),
                        KILL_WAIT.as_secs()
                    )),
                ));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
