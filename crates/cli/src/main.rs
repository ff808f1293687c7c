//! `basic-docker`: a docker-style command line over the basic-docker crates.

mod cli;
mod commands;
mod daemon_config;
mod message;
mod usage;

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Descriptors the caller leaked (a shell's `exec 7</`) reach nothing we start; those
    // systemd's socket activation passed to this very process are the service's socket.
    basic_runtime::descriptors::close_on_exec_from(3 + basic_api::activation_fd_count());
    basic_runtime::signals::die_on_broken_pipe();
    // An ordinary user's store and state live in their XDG directories;
    // an explicit flag or variable still wins.
    if let Some(user) = rootless_defaults() {
        for (variable, value) in [
            ("BASIC_DOCKER_ROOT", user.root),
            ("BASIC_DOCKER_STATE", user.state),
        ] {
            if std::env::var_os(variable).is_none() {
                // SAFETY: no other thread exists yet (the async runtime starts below).
                unsafe { std::env::set_var(variable, value) };
            }
        }
    }
    // docker's exit codes for a command line it cannot parse (125 for a bad flag).
    let mut cli = match usage::parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    // The service writes to clients that may hang up at any moment (a `logs -f` ended
    // with Ctrl-C): that must fail the write, not end the service.
    if matches!(
        cli.command,
        cli::Command::System(cli::SystemCommand::Service(_))
    ) {
        basic_runtime::signals::survive_broken_pipe();
    }
    // An ordinary user's commands all run in the user's own user and mount namespaces
    // (rootless mode), joined before any thread starts.
    match basic_runtime::rootless::enter(&cli.global.state) {
        Ok(basic_runtime::rootless::Entered::Joined {
            warning: Some(warning),
            ..
        }) => eprintln!("WARNING: {warning}"),
        Ok(_) => {}
        Err(e) => {
            eprintln!("Error: {e}");
            return ExitCode::from(125);
        }
    }
    // Supervisors run basic-docker-supervise while their container runs: found now, while
    // this program still has a path (a sealed copy has none), and passed on to them.
    if std::env::var_os(commands::SUPERVISE_ENV).is_none()
        && let Some(path) = commands::locate_supervise()
    {
        // SAFETY: no other thread exists yet (the async runtime starts below).
        unsafe { std::env::set_var(commands::SUPERVISE_ENV, path) };
    }
    // Commands whose processes enter containers first re-execute this program from a
    // read-only copy of itself, so that no container can overwrite it (CVE-2019-5736).
    // This must happen before any thread starts.
    if enters_containers(&cli.command)
        && let Err(e) = basic_runtime::sealed_exe::ensure()
    {
        eprintln!("Error: {e}");
        return ExitCode::from(125);
    }
    // `run` only starts a supervisor (which enters the container) and attaches to it: it
    // hands the supervisor a read-only copy of this program to start from, rather than
    // re-executing itself from one.
    if matches!(cli.command, cli::Command::Run(_)) {
        match basic_runtime::sealed_exe::sealed_program() {
            Ok(sealed) => commands::use_sealed_program(sealed),
            Err(e) => {
                eprintln!("Error: {e}");
                return ExitCode::from(125);
            }
        }
    }
    init_logging(&cli.global);
    // A supervisor runs with what its container was made with; it reads no configuration.
    if !matches!(cli.command, cli::Command::ContainerSupervise(_))
        && let Err(e) = daemon_config::apply(&mut cli.global)
    {
        eprintln!("Error: {}", commands::error_text(&e));
        return ExitCode::FAILURE;
    }
    // A supervisor forks containers for its whole life: no async runtime at all.
    if let cli::Command::ContainerSupervise(args) = &cli.command {
        return match commands::supervise::supervise(&cli.global, &args.id) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(125)),
            // The attached `run` shows this to the user (docker's 125, 126 or 127); nobody
            // may be reading any more, which is no reason to panic.
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "Error: {}", commands::error_text(&e));
                ExitCode::from(commands::run::exit_code_of(&e))
            }
        };
    }
    // `exec` forks the process from this one and must not wait for worker threads to wind
    // down before it does: it gets a runtime without any. So does `run`, which is short.
    let mut builder = if matches!(cli.command, cli::Command::Run(_) | cli::Command::Exec(_)) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Error: starting the async runtime: {e}");
            return ExitCode::from(125);
        }
    };
    if let cli::Command::Run(args) = cli.command {
        let prepared = runtime.block_on(commands::run::prepare(&cli.global, *args));
        drop(runtime);
        return match prepared {
            Ok(prepared) => commands::run::execute(&cli.global, prepared),
            Err(e) => {
                eprintln!("Error: {}", commands::error_text(&e));
                ExitCode::from(125)
            }
        };
    }
    let outcome = runtime.block_on(commands::run(cli));
    // A verb is done when its future is: blocking work still running (a stream's producer
    // whose client left mid-read) must not hold the process, so it gets a moment, no more.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", commands::error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// An ordinary user's directories, when this process is not root on the host.
fn rootless_defaults() -> Option<basic_engine::paths::UserPaths> {
    let host_root = basic_engine::paths::runs_as_root();
    (!host_root && !basic_runtime::rootless::active())
        .then(basic_engine::paths::UserPaths::from_env)
}

/// The commands that fork processes into containers, `exec` and a container's supervisor
/// (which `run`, `start` and `restart` spawn), and `run`, whose supervisor then starts from
/// the sealed copy already.
fn enters_containers(command: &cli::Command) -> bool {
    matches!(
        command,
        cli::Command::Exec(_)
            | cli::Command::ContainerSupervise(_)
            // The service starts supervisors and `exec`s from /proc/self/exe: sealed here,
            // they start sealed and need not re-execute themselves.
            | cli::Command::System(cli::SystemCommand::Service(_))
    )
}

fn init_logging(global: &cli::GlobalOptions) {
    let default = if global.debug {
        "debug"
    } else {
        global.log_level.as_str()
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BASIC_DOCKER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a person at a terminal: a pipe or a log file gets plain text.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}
