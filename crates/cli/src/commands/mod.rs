//! One module per verb; `run` dispatches.

pub mod attach;
pub mod build;
mod check;
pub mod commit;
mod container_config;
mod containers;
pub mod cp;
mod create;
mod events;
pub mod exec;
pub mod export;
mod format;
mod history;
mod image_mount;
mod images;
mod import;
mod info;
mod inspect;
mod lifecycle;
mod load;
mod login;
mod logs;
mod manifest;
mod monitor;
pub mod network;
mod ps;
mod pull;
mod push;
mod rmi;
pub mod run;
mod save;
mod service;
mod stats;
pub mod supervise;
pub mod template;
mod top;
pub mod volume;

use std::process::ExitCode;

use anyhow::Context as _;
use basic_registry::{CredentialStore, RegistryClient, RegistryClientBuilder, Timeouts};

use basic_engine::{Engine, EngineOptions, EnginePaths, SupervisorCommand};
use basic_image_store::ImageStore;

use crate::cli::{
    Cli, Command, ContainerCommand, GlobalOptions, ImageCommand, ManifestCommand, SystemCommand,
};

/// Runs a parsed command line, returning the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Manifest(ManifestCommand::Inspect(args)) => {
            manifest::inspect(&cli.global, args).await
        }
        Command::Login(args) => login::login(&cli.global, args).await,
        Command::Logout(args) => login::logout(&cli.global, args),
        Command::Pull(args) | Command::Image(ImageCommand::Pull(args)) => {
            pull::pull(&cli.global, args).await
        }
        Command::Push(args) | Command::Image(ImageCommand::Push(args)) => {
            push::push(&cli.global, args).await
        }
        Command::Tag(args) | Command::Image(ImageCommand::Tag(args)) => {
            history::tag(&cli.global, args)
        }
        Command::History(args) | Command::Image(ImageCommand::History(args)) => {
            history::history(&cli.global, args)
        }
        Command::Images(args) | Command::Image(ImageCommand::Ls(args)) => {
            images::images(&cli.global, args)
        }
        Command::Rmi(args) | Command::Image(ImageCommand::Rm(args)) => rmi::rmi(&cli.global, args),
        Command::Inspect(args) | Command::Image(ImageCommand::Inspect(args)) => {
            inspect::inspect(&cli.global, args)
        }
        Command::Image(ImageCommand::Prune(args)) => rmi::prune(&cli.global, args),
        Command::System(SystemCommand::Df) => images::system_df(&cli.global),
        Command::Info(args) => info::info(&cli.global, args),
        Command::Load(args) => load::load(&cli.global, args).await,
        Command::Save(args) => save::save(&cli.global, args),
        Command::Import(args) => import::import(&cli.global, args).await,
        Command::Export(args) | Command::Container(ContainerCommand::Export(args)) => {
            export::export(&cli.global, args)
        }
        Command::Cp(args) | Command::Container(ContainerCommand::Cp(args)) => {
            cp::cp(&cli.global, args)
        }
        Command::Build(args) | Command::Image(ImageCommand::Build(args)) => {
            build::build(&cli.global, args).await
        }
        Command::Commit(args) | Command::Container(ContainerCommand::Commit(args)) => {
            commit::commit(&cli.global, args)
        }
        Command::Diff(args) | Command::Container(ContainerCommand::Diff(args)) => {
            cp::diff(&cli.global, args)
        }
        Command::System(SystemCommand::Check(args)) => check::check(&cli.global, args),
        Command::System(SystemCommand::Service(args)) => service::service(&cli.global, args).await,
        Command::Image(ImageCommand::Mount(args)) => image_mount::mount(&cli.global, args),
        Command::Image(ImageCommand::Unmount(args)) => image_mount::unmount(&cli.global, args),
        Command::Stats(args) => stats::stats(&cli.global, args),
        Command::Top(args) => top::top(&cli.global, args),
        Command::Monitor(command) => monitor::monitor(&cli.global, command),
        Command::Exec(args) => exec::exec(&cli.global, args),
        Command::Network(command) => network::network(&cli.global, command),
        Command::Volume(command) => volume::volume(&cli.global, command),
        // docker's code for an engine error (a bad option, an image that cannot be found)
        Command::Create(args) => match create::run_create(&cli.global, &args).await {
            Ok(()) => Ok(ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("Error: {}", error_text(&e));
                Ok(ExitCode::from(125))
            }
        },
        Command::Start(args) | Command::Container(ContainerCommand::Start(args)) => {
            lifecycle::start(&cli.global, args)
        }
        Command::Attach(args) | Command::Container(ContainerCommand::Attach(args)) => {
            attach::attach(&cli.global, args)
        }
        Command::Stop(args) | Command::Container(ContainerCommand::Stop(args)) => {
            lifecycle::stop(&cli.global, args)
        }
        Command::Restart(args) => lifecycle::restart(&cli.global, args),
        Command::Kill(args) | Command::Container(ContainerCommand::Kill(args)) => {
            lifecycle::kill(&cli.global, args)
        }
        Command::Pause(args) => lifecycle::pause(&cli.global, args),
        Command::Unpause(args) => lifecycle::unpause(&cli.global, args),
        Command::Rm(args) | Command::Container(ContainerCommand::Rm(args)) => {
            lifecycle::rm(&cli.global, args)
        }
        Command::Wait(args) => lifecycle::wait(&cli.global, args),
        Command::Container(ContainerCommand::Prune(args)) => lifecycle::prune(&cli.global, args),
        Command::Ps(args) | Command::Container(ContainerCommand::Ls(args)) => {
            ps::ps(&cli.global, args)
        }
        Command::Logs(args) | Command::Container(ContainerCommand::Logs(args)) => {
            logs::logs(&cli.global, args)
        }
        Command::Port(args) => ps::port(&cli.global, args),
        Command::Events(args) => events::events(&cli.global, args),
        Command::Rename(args) => lifecycle::rename(&cli.global, args),
        Command::Container(ContainerCommand::Inspect(args)) => {
            inspect::inspect_containers(&cli.global, args)
        }
        // `main` runs these itself, outside the async runtime (see `run`).
        Command::Run(_) | Command::ContainerSupervise(_) => {
            unreachable!("dispatched by main")
        }
    }
}

/// The engine on `--root` and `--state`; its detached supervisors are this program's
/// `container-supervise`.
pub fn engine(global: &GlobalOptions) -> anyhow::Result<Engine> {
    Ok(Engine::open(engine_options(global))?)
}

/// A read-only copy of this program that supervisors are started from, for a command
/// that starts them without running sealed itself (see [`use_sealed_program`]).
static SEALED_PROGRAM: std::sync::OnceLock<std::os::fd::OwnedFd> = std::sync::OnceLock::new();

/// Starts this command's supervisors from `sealed` (a read-only copy of this program,
/// `basic_runtime::sealed_exe::sealed_program`) instead of from this process's own
/// program: `run` hands them a sealed program rather than re-executing itself from one
/// (it never enters a container itself), which saves a program start on every `run`.
pub fn use_sealed_program(sealed: std::os::fd::OwnedFd) {
    let _ = SEALED_PROGRAM.set(sealed);
}

/// What [`engine`] opens.
pub fn engine_options(global: &GlobalOptions) -> EngineOptions {
    use std::os::fd::AsRawFd as _;
    // This very program, through the kernel's handle on it rather than a path: when it
    // runs from a sealed copy of itself (see basic_runtime::sealed_exe), that copy has no
    // path; or the sealed copy this command keeps for its supervisors.
    let program = match SEALED_PROGRAM.get() {
        Some(fd) => format!("/proc/self/fd/{}", fd.as_raw_fd()).into(),
        None => "/proc/self/exe".into(),
    };
    let supervisor = SupervisorCommand {
        program,
        arg0: "basic-docker".into(),
        args: vec![
            "--root".into(),
            global.root.clone().into(),
            "--state".into(),
            global.state.clone().into(),
            "container-supervise".into(),
        ],
        lean: lean_supervisor(),
    };
    EngineOptions {
        root: global.root.clone(),
        state: global.state.clone(),
        supervisor: Some(supervisor),
    }
}

/// Set to the path of `basic-docker-supervise` (by `main`, from where this program was
/// started, or by the user).
pub const SUPERVISE_ENV: &str = "BASIC_DOCKER_SUPERVISE";

/// The small program supervisors run while their container runs: `$BASIC_DOCKER_SUPERVISE`
/// (see [`locate_supervise`]). Without it a supervisor keeps this whole program.
fn lean_supervisor() -> Option<basic_runtime::supervisor::Lean> {
    let program = std::env::var_os(SUPERVISE_ENV).filter(|p| !p.is_empty())?;
    Some(basic_runtime::supervisor::Lean {
        program: program.into(),
        args: Vec::new(),
        keep: Vec::new(),
    })
}

/// Where `basic-docker-supervise` is: beside this program's file (as `cargo install` and
/// packages put it), else on `PATH`. Only meaningful before the program runs from a sealed
/// copy of itself, which has no path (see `main`).
pub fn locate_supervise() -> Option<std::path::PathBuf> {
    const NAME: &str = "basic-docker-supervise";
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(NAME)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(NAME))
            .find(|p| p.is_file())
    })
}

/// The image store at `--root`, with the store and the run-time state made private.
pub fn image_store(global: &GlobalOptions) -> anyhow::Result<ImageStore> {
    Ok(basic_engine::privacy::open_store(&paths(global))?)
}

/// The engine's directories.
pub fn paths(global: &GlobalOptions) -> EnginePaths {
    EnginePaths {
        root: global.root.clone(),
        state: global.state.clone(),
    }
}

/// Docker's credential store, at `--config` when given.
pub fn credential_store(global: &GlobalOptions) -> CredentialStore {
    match &global.config {
        Some(dir) => CredentialStore::at(dir.join("config.json")),
        None => CredentialStore::from_env(),
    }
}

/// A registry client with the user's credentials, insecure registries, Docker Hub
/// mirrors and timeouts.
pub fn registry_client(global: &GlobalOptions) -> anyhow::Result<RegistryClient> {
    registry_builder(global)
        .build()
        .context("setting up the registry client")
}

/// What [`registry_client`] builds.
pub fn registry_builder(global: &GlobalOptions) -> RegistryClientBuilder {
    let mut builder = RegistryClient::builder()
        .credential_store(credential_store(global))
        .timeouts(timeouts(global))
        .user_agent(concat!("basic-docker/", env!("CARGO_PKG_VERSION")));
    for registry in &global.insecure_registries {
        builder = builder.insecure_registry(registry);
    }
    for mirror in &global.registry_mirrors {
        builder = builder.registry_mirror(mirror);
    }
    builder
}

/// The library's timeouts, with those given on the command line or in the environment.
fn timeouts(global: &GlobalOptions) -> Timeouts {
    let default = Timeouts::default();
    Timeouts {
        connect: global.registry_connect_timeout.unwrap_or(default.connect),
        idle: global.registry_idle_timeout.unwrap_or(default.idle),
        total: global.registry_timeout.unwrap_or(default.total),
    }
}

/// An error as the user sees it: the whole chain, each line escaped. The
/// libraries escape the registry's, archive's and image's text they put into
/// messages; this also catches text they pass through unknowingly (a system or
/// parser error quoting a name), keeping only the message's own line breaks.
pub fn error_text(error: &anyhow::Error) -> String {
    let text = crate::message::chain(error);
    text.lines()
        .map(basic_escape::escape)
        .collect::<Vec<_>>()
        .join("\n")
}
