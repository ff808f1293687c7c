//! The command line, as clap types. Verbs and flags follow docker's.

use std::path::PathBuf;

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
#[derive(Debug, Args)]
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
    /// Enable debug output
    #[arg(short = 'D', long, global = true)]
    pub debug: bool,
    /// Log level: debug, info, warn, error
    #[arg(short = 'l', long, global = true, default_value = "warn")]
    pub log_level: String,
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
