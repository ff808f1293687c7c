//! runc's command line: global options, then a command.

use std::path::PathBuf;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

/// A runc-compatible OCI runtime.
#[derive(Debug, Parser)]
#[command(
    name = "basic-runtime",
    version = concat!("version ", env!("CARGO_PKG_VERSION"), "\nspec: 1.0.2"),
    disable_version_flag = true
)]
pub struct Cli {
    /// Directory for container state [default: /run/basic-runtime; for an ordinary user
    /// $XDG_RUNTIME_DIR/basic-runtime, as runc does]
    #[arg(long, global = true)]
    pub root: Option<PathBuf>,
    /// Also write errors (and with --debug, progress) to this file.
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Format of the --log file.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Use systemd to manage cgroups (refused: only cgroupfs is supported).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Log debug messages too.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Print the version.
    #[arg(short = 'v', long = "version", action = ArgAction::Version)]
    version: Option<bool>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The `--log` file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// logrus text: `time="..." level=error msg="..."`.
    Text,
    /// One JSON object per line: `{"level":"error","msg":"...","time":"..."}`.
    Json,
}

/// Options of `create` and `run`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The bundle directory (config.json and the root filesystem).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container init's pid to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root.
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra file descriptors (from fd 3 on) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container id.
    pub id: String,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Set a container up from a bundle; its command waits for `start`.
    Create(CreateArgs),
    /// Let a created container's command run.
    Start {
        /// The container id.
        id: String,
    },
    /// Print a container's OCI state as JSON.
    State {
        /// The container id.
        id: String,
    },
    /// Send a signal (name or number, default SIGTERM) to a container.
    Kill {
        /// Signal every process in the container, not only its init.
        #[arg(short, long)]
        all: bool,
        /// The container id.
        id: String,
        /// The signal: KILL, SIGKILL or 9.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a stopped container (with --force, kill it first if it runs).
    Delete {
        /// Kill a running container first.
        #[arg(short, long)]
        force: bool,
        /// The container id.
        id: String,
    },
    /// Create and start a container, and wait for it (unless --detach).
    Run {
        /// Options as for create.
        #[command(flatten)]
        create: CreateArgs,
        /// Return once started instead of waiting.
        #[arg(short, long)]
        detach: bool,
    },
    /// Freeze every process of a container.
    Pause {
        /// The container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// The container id.
        id: String,
    },
    /// List the processes of a container.
    Ps {
        /// table or json (a JSON array of pids, as runc prints it).
        #[arg(short, long, default_value = "table")]
        format: String,
        /// The container id.
        id: String,
    },
    /// List containers.
    List {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run one more process in a running container.
    Exec(ExecArgs),
    /// Change a container's cgroup limits (memory, CPU, pids, ...) while it runs.
    Update {
        /// The new limits as an OCI `linux.resources` JSON object, from this file
        /// (`-`: standard input). Only the fields present change.
        #[arg(short, long)]
        resources: Option<PathBuf>,
        /// The container id.
        id: String,
    },
    /// Print what this runtime supports, as runc's `features` JSON.
    Features,
    /// Write a starting config.json into the bundle directory.
    Spec {
        /// The bundle directory to write config.json into.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A spec an ordinary user can run: a user namespace mapping the user's own ids
        /// to root, no network namespace, no resource limits.
        #[arg(long)]
        rootless: bool,
    },
}

impl Cli {
    /// The state directory: `--root`, or runc's default for who runs us.
    pub fn state_root(&self) -> PathBuf {
        self.root.clone().unwrap_or_else(|| {
            default_root(
                nix::unistd::geteuid().is_root(),
                basic_runtime::rootless::active(),
                std::env::var_os("XDG_RUNTIME_DIR"),
                std::env::var_os("USER"),
            )
        })
    }
}

/// runc's rule: an ordinary user's state goes under `$XDG_RUNTIME_DIR`; so does that of
/// root in a user namespace (`unshare -r`, a rootless engine) unless `$USER` says root.
fn default_root(
    euid_is_root: bool,
    in_user_namespace: bool,
    xdg_runtime_dir: Option<std::ffi::OsString>,
    user: Option<std::ffi::OsString>,
) -> PathBuf {
    let system = PathBuf::from("/run/basic-runtime");
    let Some(xdg) = xdg_runtime_dir.filter(|d| !d.is_empty()) else {
        return system;
    };
    let honour = !euid_is_root || (in_user_namespace && user.is_none_or(|u| u != "root"));
    match honour {
        true => PathBuf::from(xdg).join("basic-runtime"),
        false => system,
    }
}

#[cfg(test)]
mod tests {
    use super::default_root;
    use std::path::Path;

    #[test]
    fn the_state_root_follows_runc() {
        let xdg = || Some("/run/user/1000".into());
        let user = Path::new("/run/user/1000/basic-runtime");
        let system = Path::new("/run/basic-runtime");
        assert_eq!(default_root(false, false, xdg(), None), user);
        assert_eq!(default_root(false, false, None, None), system);
        assert_eq!(default_root(true, false, xdg(), None), system);
        assert_eq!(default_root(true, true, xdg(), Some("me".into())), user);
        assert_eq!(default_root(true, true, xdg(), Some("root".into())), system);
    }
}

/// Options of `exec`.
#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// The process as an OCI `process` JSON file (instead of a command line).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process runs instead of waiting for it.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's pid to this file.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (with a terminal).
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (KEY=VALUE), repeatable.
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// uid[:gid] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// The container id.
    pub id: String,
    /// The command and its arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}
