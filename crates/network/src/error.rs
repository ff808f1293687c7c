//! The crate's error type.

use std::path::PathBuf;

/// The Debian/Ubuntu package that ships the reference CNI plugins.
pub const PLUGINS_PACKAGE: &str = "containernetworking-plugins";

/// Everything that can go wrong while managing networks and attachments.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A plugin named by a network's `type` is in none of the plugin directories.
    #[error(
        "CNI plugin {plugin:?} not found in {}: install the {PLUGINS_PACKAGE} package \
         (apt-get install {PLUGINS_PACKAGE}) or set CNI_PATH to where the plugins are",
        display_dirs(.dirs)
    )]
    PluginNotFound {
        /// The plugin type.
        plugin: String,
        /// Where it was looked for.
        dirs: Vec<PathBuf>,
    },
    /// A plugin could not be started or its output could not be read.
    #[error("running CNI plugin {plugin} ({command} on network {network:?})")]
    PluginExec {
        /// The plugin binary.
        plugin: PathBuf,
        /// `ADD`, `DEL`, `CHECK` or `VERSION`.
        command: &'static str,
        /// The network's name.
        network: String,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },
    /// A plugin ran and reported an error (the CNI error structure, or its exit status).
    #[error(
        "CNI plugin {plugin} failed ({command} on network {network:?}): {msg}{}{}",
        if details.is_empty() { String::new() } else { format!(": {details}") },
        if *code == 0 { String::new() } else { format!(" (CNI error code {code})") }
    )]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// `ADD`, `DEL` or `CHECK`.
        command: &'static str,
        /// The network's name.
        network: String,
        /// The CNI error code (0 when the plugin printed none).
        code: u32,
        /// The error message.
        msg: String,
        /// The plugin's details, or its standard error.
        details: String,
    },
    /// A plugin's result was not valid CNI result JSON.
    #[error("CNI plugin {plugin} returned an unreadable result for network {network:?}: {reason}")]
    BadResult {
        /// The plugin type.
        plugin: String,
        /// The network's name.
        network: String,
        /// What was wrong.
        reason: String,
    },
    /// A network configuration list could not be used.
    #[error("network configuration {}: {reason}", path.display())]
    BadConfig {
        /// The conflist file (or the network name when not from a file).
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// No network has this name or ID.
    #[error("network {0} not found")]
    NetworkNotFound(String),
    /// A network of this name already exists.
    #[error("network with name {0} already exists")]
    NetworkExists(String),
    /// The name cannot be a network name.
    #[error(
        "invalid network name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, \
         at most 64 characters"
    )]
    InvalidName(String),
    /// `bridge`, `host` and `none` are built in.
    #[error("{0} is a pre-defined network and cannot be {1}")]
    Predefined(String, &'static str),
    /// A network still has containers attached.
    #[error("network {network} has active endpoints: {}", containers.join(", "))]
    NetworkInUse {
        /// The network.
        network: String,
        /// The attached containers (names, or IDs when unnamed).
        containers: Vec<String>,
    },
    /// Subnet or gateway options that do not fit together or clash with others.
    #[error("{0}")]
    InvalidSubnet(String),
    /// No free subnet is left in the pool for a new network.
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults")]
    NoFreeSubnet,
    /// Not a valid CNI container ID.
    #[error(
        "invalid container ID {0:?}: it must start with a letter or digit, followed by letters, digits, '_', '.' or '-'"
    )]
    InvalidContainerId(String),
    /// No attachment is cached for the container.
    #[error("container {0} is not attached to any network")]
    NotAttached(String),
    /// A container is already attached (DEL it before the next ADD).
    #[error("container {0} is already attached to networks: detach it first")]
    AlreadyAttached(String),
    /// A host port is taken by another container or a host process.
    #[error("Bind for {host_ip}:{port} failed: port is already allocated")]
    PortAllocated {
        /// The host address (`0.0.0.0` for all).
        host_ip: String,
        /// The port.
        port: u16,
    },
    /// No free host port for a publish request.
    #[error("no free host port for {0}")]
    NoFreePort(String),
    /// A network namespace could not be created, mounted or removed.
    #[error("network namespace {}: {what}", path.display())]
    Netns {
        /// The namespace's mount point.
        path: PathBuf,
        /// The step that failed.
        what: &'static str,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// A host tool (`ip`, `iptables`) failed while removing a network.
    #[error("{command}: {message}")]
    HostTool {
        /// The command line.
        command: String,
        /// Its error output or the spawn error.
        message: String,
    },
    /// Reading or writing a file of the network store, the cache or a container's files.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// A directory of the network store or the namespace directory could not be made
    /// private to its owner.
    #[error("setting the mode of {} to {mode:04o}", path.display())]
    Mode {
        /// The directory.
        path: PathBuf,
        /// The mode it was to get.
        mode: u32,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// pasta (user-mode networking) could not be started or stopped.
    #[error("{what}: {message}")]
    Pasta {
        /// What was being done.
        what: String,
        /// pasta's error output, or the system error.
        message: String,
    },
    /// A host port below `net.ipv4.ip_unprivileged_port_start`, for a process that is
    /// not privileged on the host.
    #[error(
        "cannot publish host port {port}: rootless containers can only publish ports from \
         {start} (net.ipv4.ip_unprivileged_port_start); use a higher host port, or have root \
         lower that limit (sysctl net.ipv4.ip_unprivileged_port_start={port})"
    )]
    PrivilegedPort {
        /// The host port.
        port: u16,
        /// The sysctl's value.
        start: u16,
    },
    /// A network rootless mode cannot provide.
    #[error(
        "network {0}: rootless mode supports the default network (through pasta), none and \
         host; user-defined networks need the engine to run as root"
    )]
    Rootless(String),
    /// Teardown failed and so did the cleanup of a failed setup: both are reported.
    #[error("{primary}; cleaning up afterwards also failed: {cleanup}")]
    CleanupFailed {
        /// The first failure.
        primary: Box<Error>,
        /// The cleanup failure.
        cleanup: Box<Error>,
    },
    /// Several DELs of one teardown failed; the first is the source, all are listed.
    #[error("{} teardown steps failed: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Teardown(Vec<Error>),
}

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// The mode of the network store's directory and of the namespace directory: what they
/// hold (networks, addresses, containers' attachments, namespaces) is the engine's only.
pub(crate) const PRIVATE_DIR: u32 = 0o700;

/// Makes sure the directory `path` exists with at most `mode`: created with it (parents
/// with the usual modes), or tightened when an older version made it wider.
pub(crate) fn private_dir(path: &std::path::Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    let create = || std::fs::DirBuilder::new().mode(mode).create(path);
    let created = match create() {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
            }
            match create() {
                Ok(()) => true,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(Error::io("creating", path, e)),
            }
        }
        Err(e) => return Err(Error::io("creating", path, e)),
    };
    // mkdir's mode is only narrowed by the umask: a new directory is private already.
    if created {
        return Ok(());
    }
    let current = std::fs::metadata(path)
        .map_err(|e| Error::io("reading the mode of", path, e))?
        .permissions()
        .mode()
        & 0o7777;
    let wanted = current & !(0o777 & !mode);
    if wanted == current {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)).map_err(|source| {
        Error::Mode {
            path: path.to_path_buf(),
            mode: wanted,
            source,
        }
    })
}

fn display_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "(no plugin directory configured)".to_string();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
