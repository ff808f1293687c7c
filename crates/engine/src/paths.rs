//! Where the engine keeps things: the store root (records, images, each container's
//! directory) and the run-time state directory (the runtime's state, stop markers,
//! network namespaces), both chosen when the [`crate::Engine`] is opened.

use std::path::PathBuf;

/// docker's `/run/docker`: the default run-time state directory.
pub const DEFAULT_STATE_DIR: &str = "/run/basic-docker";

/// docker's `/var/lib/docker`: the default store root.
pub const DEFAULT_ROOT: &str = "/var/lib/basic-docker";

/// An ordinary user's store root, run-time state directory and configuration directory
/// (rootless mode), where podman keeps its own: `$XDG_DATA_HOME/basic-docker` (default
/// `~/.local/share/basic-docker`), `$XDG_RUNTIME_DIR/basic-docker` (default
/// `/run/user/UID/basic-docker` when that directory is the user's, else
/// `/tmp/basic-docker-UID`) and `$XDG_CONFIG_HOME/basic-docker` (default
/// `~/.config/basic-docker`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPaths {
    /// The store root.
    pub root: PathBuf,
    /// The run-time state directory.
    pub state: PathBuf,
    /// Where `daemon.json` is read from.
    pub config: PathBuf,
}

/// Whether this process runs as root: uid 0 on the host, or in the user namespace it runs in.
pub fn runs_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl UserPaths {
    /// The directories for the user running this process, from its environment.
    pub fn from_env() -> UserPaths {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home = var("HOME").unwrap_or_else(|| PathBuf::from("/"));
        let uid = nix::unistd::getuid();
        let runtime = var("XDG_RUNTIME_DIR").unwrap_or_else(|| {
            let login = PathBuf::from(format!("/run/user/{uid}"));
            match std::fs::metadata(&login) {
                Ok(m) if std::os::unix::fs::MetadataExt::uid(&m) == uid.as_raw() => login,
                _ => PathBuf::from(format!("/tmp/basic-docker-{uid}")),
            }
        });
        UserPaths {
            root: var("XDG_DATA_HOME")
                .unwrap_or_else(|| home.join(".local/share"))
                .join("basic-docker"),
            state: runtime.join("basic-docker"),
            config: var("XDG_CONFIG_HOME")
                .unwrap_or_else(|| home.join(".config"))
                .join("basic-docker"),
        }
    }
}

/// The two directories of an engine.
#[derive(Debug, Clone)]
pub struct EnginePaths {
    /// The store root.
    pub root: PathBuf,
    /// The run-time state directory.
    pub state: PathBuf,
}

impl EnginePaths {
    /// The paths of container `id`.
    pub fn container(&self, id: &str) -> ContainerPaths {
        let dir = self.root.join("containers").join(id);
        ContainerPaths {
            rootfs: dir.join("rootfs"),
            state: self.state.join(id),
            dir,
        }
    }

    /// Where compiled seccomp programs are kept between starts and execs.
    pub fn seccomp_cache(&self) -> PathBuf {
        self.state.join("seccomp-cache")
    }

    /// The host facts recorded for this boot.
    pub fn environment_record(&self) -> PathBuf {
        self.state.join("environment.json")
    }

    /// The snapshotter recorded for this store.
    pub fn snapshotter_record(&self) -> PathBuf {
        self.root.join("snapshotter")
    }

    /// docker's `local` volumes: `volumes/<name>/_data` and each volume's record.
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// Read-only views of images (`image mount`).
    pub fn image_mounts(&self) -> PathBuf {
        self.root.join("image-mounts")
    }
}

/// The files of one container.
#[derive(Debug, Clone)]
pub struct ContainerPaths {
    /// `<root>/containers/<id>`.
    pub dir: PathBuf,
    /// The merged root mount point.
    pub rootfs: PathBuf,
    /// The runtime's state directory `<state>/<id>`.
    pub state: PathBuf,
}

impl ContainerPaths {
    /// The container's id (the directory's name).
    pub fn id(&self) -> String {
        self.dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    }

    /// The runtime spec.
    pub fn spec(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The json-file log, named as docker names it.
    pub fn log(&self) -> PathBuf {
        self.dir.join(format!("{}-json.log", self.id()))
    }

    /// Held by the supervisor while it lives.
    pub fn supervisor_lock(&self) -> PathBuf {
        self.dir.join("supervisor.lock")
    }

    /// Held shared by every view of the container's files (`cp`, `export`), and
    /// exclusively around mounting its root (a start) and removing it.
    pub fn view_lock(&self) -> PathBuf {
        self.dir.join("view.lock")
    }

    /// The directory where the container's supervisor serves attach clients
    /// (`<state>/containers/<id>`, see [`basic_runtime::attach`]): beside the runtime's
    /// `<state>/<id>`, which the runtime removes at each exit, while this one lasts as
    /// long as the container (clients wait in it for the next start).
    pub fn attach_dir(&self) -> PathBuf {
        let state_root = self.state.parent().unwrap_or(&self.state);
        state_root.join("containers").join(self.id())
    }

    /// Present while a stop was asked for: no restart follows the exit.
    pub fn stop_marker(&self) -> PathBuf {
        self.state.with_extension("stop")
    }

    /// The last exit the supervisor saw, kept for when the store could not record it
    /// (see `exits`).
    pub fn last_exit(&self) -> PathBuf {
        self.dir.join("last-exit")
    }

    /// Why the last start failed, written by the supervisor.
    pub fn start_error(&self) -> PathBuf {
        self.dir.join("start-error")
    }

    /// The `hosts`, `hostname` and `resolv.conf` the container sees.
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
}
