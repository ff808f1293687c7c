//! The command line, as clap types. Verbs and flags follow docker's.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// A container engine with docker's command line.
#[derive(Debug, Parser)]
#[command(name = "basic-docker", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// Location of client config files (docker's `--config`; default $DOCKER_CONFIG or ~/.docker)
    #[arg(long, global = true, value_name = "DIR", env = "DOCKER_CONFIG")]
    pub config: Option<PathBuf>,
    /// Registry to reach over HTTPS without certificate checks, or plain HTTP (repeatable)
    #[arg(
        long = "insecure-registry",
        global = true,
        value_name = "HOST[:PORT]",
        value_delimiter = ',',
        env = "BASIC_DOCKER_INSECURE_REGISTRIES"
    )]
    pub insecure_registries: Vec<String>,
    /// Docker Hub mirror to pull from before Docker Hub itself, e.g. https://mirror.gcr.io (repeatable, tried in order)
    #[arg(
        long = "registry-mirror",
        global = true,
        value_name = "URL",
        value_delimiter = ',',
        env = "BASIC_DOCKER_REGISTRY_MIRRORS",
        value_parser = parse_mirror
    )]
    pub registry_mirrors: Vec<String>,
    /// Daemon configuration file, in dockerd's daemon.json format: `registry-mirrors`, `insecure-registries` [default: /etc/basic-docker/daemon.json; for an ordinary user $XDG_CONFIG_HOME/basic-docker/daemon.json]
    #[arg(
        long = "config-file",
        global = true,
        value_name = "PATH",
        env = "BASIC_DOCKER_CONFIG_FILE"
    )]
    pub config_file: Option<PathBuf>,
    /// How long to wait for a connection to a registry (default 10s)
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        env = "BASIC_DOCKER_REGISTRY_CONNECT_TIMEOUT",
        value_parser = parse_timeout
    )]
    pub registry_connect_timeout: Option<Duration>,
    /// How long a registry may send nothing before the request is retried (default 15s)
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        env = "BASIC_DOCKER_REGISTRY_IDLE_TIMEOUT",
        value_parser = parse_timeout
    )]
    pub registry_idle_timeout: Option<Duration>,
    /// How long one manifest or blob may go without progress, over all retries, before the command fails (default 30s)
    #[arg(
        long,
        global = true,
        value_name = "DURATION",
        env = "BASIC_DOCKER_REGISTRY_TIMEOUT",
        value_parser = parse_timeout
    )]
    pub registry_timeout: Option<Duration>,
    /// Enable debug output
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,
    /// Log level: debug, info, warn, error
    #[arg(short = 'l', long, global = true, default_value = "warn")]
    pub log_level: String,
    /// Root of the image store
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "BASIC_DOCKER_ROOT",
        default_value = basic_image_store::DEFAULT_ROOT
    )]
    pub root: PathBuf,
    /// Run-time state: the runtime's container state, stop markers, caches
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        env = "BASIC_DOCKER_STATE",
        default_value = basic_engine::paths::DEFAULT_STATE_DIR
    )]
    pub state: PathBuf,
}

/// A registry mirror URL as dockerd accepts it, normalised (`http://host:port/`).
fn parse_mirror(text: &str) -> Result<String, String> {
    basic_registry::Mirror::parse(text)
        .map(|m| m.url().to_string())
        .map_err(|e| e.to_string())
}

/// A timeout: seconds (`30`) or a duration (`30s`, `1m30s`, `500ms`), above zero.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let parsed = match text.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(text).map_err(|e| e.to_string())?,
    };
    if parsed.is_zero() {
        return Err("a timeout must be longer than zero".to_string());
    }
    Ok(parsed)
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect image manifests and manifest lists in a registry
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// List images
    Images(ImagesArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Return low-level information on images
    Inspect(InspectArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage the engine's storage
    #[command(subcommand)]
    System(SystemCommand),
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Run a command in a running container
    Exec(crate::commands::exec::ExecArgs),
    /// Create a new container without starting it
    Create(Box<RunArgs>),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(crate::commands::attach::AttachArgs),
    /// Stop one or more running containers (StopSignal, then SIGKILL after a grace period)
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers with a signal
    Kill(KillArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// List containers
    Ps(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Get real time events from the engine
    Events(EventsArgs),
    /// List a container's published ports
    Port(PortArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Supervise a detached container (started by the engine itself)
    #[command(name = "container-supervise", hide = true)]
    ContainerSupervise(SuperviseArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Load images from a tar archive (docker save or OCI archive) or STDIN
    Load(LoadArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Export a container's filesystem as a tar archive (streamed to STDOUT by default)
    Export(crate::commands::export::ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::commands::cp::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(crate::commands::cp::DiffArgs),
    /// Create a new image from a container's changes
    Commit(crate::commands::commit::CommitArgs),
    /// Build an image from a Dockerfile
    Build(crate::commands::build::BuildArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Look at the host, a process, a container, and the gaps between them
    #[command(subcommand)]
    Monitor(MonitorCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(crate::commands::network::NetworkCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(crate::commands::volume::VolumeCommand),
}

/// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Format output: `table` (default), `table TEMPLATE`, `json` (one object per line),
    /// or a Go template such as '{{.Name}} {{.CPUPerc}}'
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Containers (id, id prefix or name); all running ones when none is given
    pub containers: Vec<String>,
}

/// `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container: id, id prefix or name
    pub container: String,
}

/// `monitor` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// The host: CPU, memory, load, network, disk of the store
    Host(MonitorFormatArgs),
    /// One process, by host PID
    Process(MonitorProcessArgs),
    /// One container's cgroup and network metrics
    Container(MonitorContainerArgs),
    /// What the host sees of a container beside what the container sees
    Gap(MonitorContainerArgs),
    /// A container's spec, disk, memory, network, runtime and isolation, side by side
    Correlation(MonitorContainerArgs),
    /// The host and every running container
    All(MonitorFormatArgs),
    /// Serve Prometheus metrics (cAdvisor's names) of the host and running containers
    Serve(MonitorServeArgs),
}

/// `monitor host|all`.
#[derive(Debug, Args)]
pub struct MonitorFormatArgs {
    /// Output format: `table` (default) or `json`
    #[arg(long)]
    pub format: Option<String>,
}

/// `monitor process`.
#[derive(Debug, Args)]
pub struct MonitorProcessArgs {
    /// Host PID of the process
    pub pid: i32,
    /// Output format: `table` (default) or `json`
    #[arg(long)]
    pub format: Option<String>,
}

/// `monitor container|gap|correlation`.
#[derive(Debug, Args)]
pub struct MonitorContainerArgs {
    /// The container: id, id prefix or name
    pub container: String,
    /// Output format: `table` (default) or `json`
    #[arg(long)]
    pub format: Option<String>,
}

/// `monitor serve`.
#[derive(Debug, Args)]
pub struct MonitorServeArgs {
    /// Address to listen on (port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:9323")]
    pub listen: String,
}

/// `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from a tar archive file, instead of STDIN
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

/// `save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Images: name[:tag], name@digest, or (a prefix of) an id
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, WORKDIR)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// A rootfs tarball (gzip, zstd or plain), or `-` for STDIN
    pub file: String,
    /// Name the image: repository[:tag]
    pub reference: Option<String>,
}

/// `system check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Remove what is corrupt or dangling, so that a later pull fetches it again
    #[arg(long)]
    pub repair: bool,
}

/// `run` and `create`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run the container in the background and print its id
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep STDIN open: the container reads this command's standard input
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal for the container
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Remove the container's files when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set metadata on the container (KEY=VALUE, or KEY for an empty value); `-l` is the
    /// global --log-level here
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Set environment variables (KEY=VALUE, or KEY to copy the caller's value)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read environment variables from a file of KEY=VALUE lines
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID, optionally with a group (USER[:GROUP])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the image's default ENTRYPOINT
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs (e.g. 0.5)
    #[arg(long, allow_negative_numbers = true)]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Limit on the number of processes (-1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Bind mount a volume: NAME:/PATH (a named volume, created when missing),
    /// /HOST/PATH:/PATH (a host directory) or /PATH (an anonymous volume), with
    /// :ro, :rw, :nocopy or a propagation (rshared, rslave, rprivate, ...)
    #[arg(short = 'v', long = "volume", value_name = "[SOURCE:]PATH[:MODE]")]
    pub volumes: Vec<String>,
    /// Attach a filesystem mount: type=volume|bind,source=NAME|/HOST,target=/PATH
    /// [,readonly][,volume-nocopy][,volume-label=K=V][,volume-opt=K=V][,bind-propagation=P]
    #[arg(long = "mount", value_name = "FIELDS")]
    pub mounts: Vec<String>,
    /// Mount the volumes of a container: CONTAINER[:ro|:rw]
    #[arg(long = "volumes-from", value_name = "CONTAINER[:MODE]")]
    pub volumes_from: Vec<String>,
    /// Container host name (default: the short container id)
    #[arg(long)]
    pub hostname: Option<String>,
    /// Mount the container's root filesystem read-only
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Security options: seccomp=PROFILE.json|unconfined|builtin, no-new-privileges[=true|false],
    /// systempaths=unconfined (apparmor= and label= are accepted where the host has neither)
    #[arg(long = "security-opt", value_name = "OPTION")]
    pub security_opt: Vec<String>,
    /// Give the container every capability of the host, all its devices, no seccomp profile
    /// and no masked paths
    #[arg(long)]
    pub privileged: bool,
    /// Add a host device to the container (HOST[:CONTAINER][:PERMISSIONS], permissions of rwm)
    #[arg(long = "device", value_name = "DEVICE")]
    pub devices: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Network: bridge (the default), a network's name, none (loopback only), host, or container:NAME|ID
    #[arg(long = "network", alias = "net", default_value = "bridge")]
    pub network: String,
    /// Publish a container's port to the host ([HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO])
    #[arg(short = 'p', long = "publish", value_name = "PORT")]
    pub publish: Vec<String>,
    /// Publish all the image's exposed ports to free host ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// DNS servers for the container's resolv.conf
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// Log rotation: max-size=SIZE (e.g. 10m), max-file=N
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// Platform to pull if the image is not present (os/arch[/variant])
    #[arg(long)]
    pub platform: Option<String>,
    /// default: warn once when some isolation cannot be had; strict: refuse to run
    #[arg(long, default_value = "default", value_parser = ["default", "strict"])]
    pub isolation: String,
    /// The image, then the command and its arguments
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub image_and_command: Vec<String>,
}

/// Verbs that take a list of containers.
#[derive(Debug, Args)]
pub struct ContainersArgs {
    /// Containers: names, ids or unique id prefixes
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach the container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container (with -a or -i)
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Containers: names, ids or unique id prefixes
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `stop` and `restart`.
#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait for the container to stop before killing it
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    /// Containers: names, ids or unique id prefixes
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `kill`.
#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send (name like SIGHUP or HUP, or number)
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    pub signal: String,
    /// Containers: names, ids or unique id prefixes
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove the anonymous volumes associated with the container
    #[arg(short = 'v', long = "volumes")]
    pub volumes: bool,
    /// Containers: names, ids or unique id prefixes
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// `ps`.
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container ids
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    /// Format output: `table` (default), `table TEMPLATE`, `json` (one object per line),
    /// or a Go template such as '{{.Names}}\t{{.Status}}'
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Filter: status=, name=, id=, ancestor=, exited= (repeatable)
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all" for every line)
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Only lines since this time (RFC 3339, e.g. 2024-01-02T15:04:05Z) or this long ago (e.g. 10m, 1h)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only lines before this time (same forms as --since)
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The container: name, id or unique id prefix
    pub container: String,
}

/// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Show events created since this time (RFC 3339, unix seconds, or this long ago)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Stream events until this time (same forms as --since); without it, follow
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Filter output: container=NAME|ID, event=ACTION, type=container
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Format: json (one object per line), or docker's text lines by default
    #[arg(long)]
    pub format: Option<String>,
}

/// `rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container: name, id or unique id prefix
    pub container: String,
    /// Its new name
    pub new_name: String,
}

/// `port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container: name, id or unique id prefix
    pub container: String,
}

/// `container` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum ContainerCommand {
    /// List containers
    Ls(PsArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
    /// Display detailed information on one or more containers
    Inspect(InspectArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(crate::commands::attach::AttachArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Export a container's filesystem as a tar archive
    Export(crate::commands::export::ExportArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::commands::cp::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(crate::commands::cp::DiffArgs),
    /// Create a new image from a container's changes
    Commit(crate::commands::commit::CommitArgs),
}

/// `container prune`.
#[derive(Debug, Args)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// The hidden `container-supervise`.
#[derive(Debug, Args)]
pub struct SuperviseArgs {
    /// The container's full id
    pub id: String,
}

/// `info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Output format: json, or the default table
    #[arg(short, long)]
    pub format: Option<String>,
}

/// `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Pull this platform (os/arch[/variant]) from a multi-platform image
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Layers downloaded at once
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub max_concurrent_downloads: usize,
    /// Image reference, e.g. busybox or registry:5000/repo:tag
    pub reference: String,
}

/// `push` / `image push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push all tags of the repository
    #[arg(short, long)]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Image to push, e.g. registry:5000/repo[:tag] (tag `latest` when none is given)
    pub reference: String,
}

/// `tag` / `image tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image: name[:tag], name@digest, or (a prefix of) an id
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// The new name
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// `history` / `image history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub human: bool,
    /// Format output: `table` (default), `table TEMPLATE`, `json`, or a Go template
    /// such as '{{.ID}} {{.CreatedBy}}'
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// The image: name[:tag], name@digest, or (a prefix of) an id
    pub image: String,
}

/// `images` / `image ls`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images: a build's unnamed steps)
    #[arg(short, long)]
    pub all: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Format output: `table` (default), `table TEMPLATE`, `json` (one object per line),
    /// or a Go template such as '{{.Repository}}:{{.Tag}}'
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Only images of this repository (optionally :tag)
    pub reference: Option<String>,
}

/// `rmi` / `image rm`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of an image tagged in several repositories
    #[arg(short, long)]
    pub force: bool,
    /// Images: name[:tag], name@digest, or (a prefix of) an id
    #[arg(required = true)]
    pub images: Vec<String>,
}

/// `inspect` / `image inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format the output using the given Go template (docker 20.10: without it, a JSON
    /// array; `json` is a template too)
    #[arg(short = 'f', long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// Containers (name or id) or images (name[:tag], name@digest, or a prefix of an id)
    #[arg(required = true, value_name = "NAME|ID")]
    pub images: Vec<String>,
}

/// `image` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build an image from a Dockerfile
    Build(crate::commands::build::BuildArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// List images
    Ls(ImagesArgs),
    /// Remove one or more images
    Rm(RmiArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Mount an image's root filesystem read-only and print where
    Mount(ImageMountArgs),
    /// Unmount an image's root filesystem
    Unmount(ImageMountArgs),
}

/// `image mount` / `image unmount`.
#[derive(Debug, Args)]
pub struct ImageMountArgs {
    /// Image name or id
    pub image: String,
}

/// `image prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation (there is no prompt; accepted for docker compatibility)
    #[arg(short, long)]
    pub force: bool,
}

/// `system` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show disk usage
    Df,
    /// Re-hash every blob and check every record's references
    Check(CheckArgs),
    /// Serve the Docker Engine API (v1.41) on a unix socket, for docker's CLI, docker-compose and docker-py
    Service(ServiceArgs),
}

/// `system service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Exit after this many seconds without a request (0: never), for socket activation
    #[arg(short, long, default_value_t = 5, value_name = "SECONDS")]
    pub time: u64,
    /// Where to listen: unix:///path/to/socket (socket-activated by systemd: the socket it passes) [default: unix:///run/basic-docker/docker.sock; for an ordinary user unix://$XDG_RUNTIME_DIR/basic-docker/docker.sock]
    pub uri: Option<String>,
}

/// `manifest` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Display an image manifest, or manifest list
    Inspect(ManifestInspectArgs),
}

/// `manifest inspect`.
#[derive(Debug, Args)]
pub struct ManifestInspectArgs {
    /// Show the manifest for this platform (os/arch[/variant]) instead of the index
    #[arg(long)]
    pub platform: Option<String>,
    /// Image reference, e.g. busybox or registry:5000/repo:tag
    pub reference: String,
}

/// `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (insecure: visible in the process list; prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    pub password_stdin: bool,
    /// Registry server (default: Docker Hub)
    pub server: Option<String>,
}

/// `logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry server (default: Docker Hub)
    pub server: Option<String>,
}
