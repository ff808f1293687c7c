//! `exec`: a command in a running container, with the container's own process
//! settings (user, environment, working directory, capabilities) unless the
//! flags say otherwise, as docker does.

use std::io::IsTerminal as _;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use basic_runtime::exec::{Exec, ExecError, process_from};
use basic_runtime::terminal::{RawMode, window_size};
use basic_runtime::{Spec, resolve_user};
use clap::Args;
use oci_spec::runtime::Process;

use super::containers::STATE_DIR;
use super::image_store;
use super::live::{self, Paths, Status};
use crate::cli::GlobalOptions;
use basic_image_store::short_id;

/// docker's exit code when the engine fails before the command runs.
const ENGINE_FAILURE: u8 = 125;

/// `exec`.
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Set environment variables (KEY=VALUE, or KEY to copy this shell's value)
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long, value_name = "USER")]
    pub user: Option<String>,
    /// Give the command every capability of the host (the container's seccomp profile
    /// stays, as in docker)
    #[arg(long)]
    pub privileged: bool,
    /// The container: id, id prefix or name
    pub container: String,
    /// The command and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Runs the command; the exit code is its own, docker's 126/127 when it cannot
/// run, 125 when the engine fails, 1 when the container is not running.
pub fn exec(global: &GlobalOptions, args: ExecArgs) -> anyhow::Result<ExitCode> {
    if args.tty && args.interactive && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    if args.tty && args.detach {
        bail!(
            "-t with -d: a terminal cannot outlive this command (no daemon holds it); \
             leave out -t, or -d"
        );
    }
    let container = find(global, &args.container)?;
    let prepared = prepare(&container, &args);
    let outcome = prepared.and_then(|exec| start(exec, &args).map_err(Failure::Exec));
    Ok(match outcome {
        Ok(code) => code,
        Err(Failure::Setup(e)) => {
            eprintln!("Error: {e:#}");
            ExitCode::from(ENGINE_FAILURE)
        }
        Err(Failure::Exec(e)) => {
            eprintln!("Error: {}", chain(&e));
            match e {
                // The container stopped since it was looked up: as when it was stopped before.
                ExecError::NotRunning { .. } => ExitCode::FAILURE,
                e => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(ENGINE_FAILURE)),
            }
        }
    })
}

enum Failure {
    Setup(anyhow::Error),
    Exec(ExecError),
}

/// A running container, as the other container verbs find it.
struct Found {
    id: String,
    spec: Spec,
    rootfs: PathBuf,
}

/// The container named by id, id prefix or name; an error unless it runs.
fn find(global: &GlobalOptions, query: &str) -> anyhow::Result<Found> {
    // Only for the lookup: the store is not held while the command runs.
    let record = image_store(global)?.container(query)?;
    match live::status(&global.root, &record) {
        Status::Running(_) => {}
        Status::Paused(_) => bail!(
            "container {} is paused, unpause the container before exec",
            record.id
        ),
        _ => bail!("container {} is not running", record.id),
    }
    let paths = Paths::new(&global.root, &record.id);
    let spec = Spec::load(paths.spec())
        .with_context(|| format!("reading the spec of container {}", short_id(&record.id)))?;
    Ok(Found {
        id: record.id,
        spec,
        rootfs: paths.rootfs,
    })
}

/// The exec, not yet started: the container's process with the flags applied.
fn prepare(
    container: &Found,
    args: &ExecArgs,
) -> Result<basic_runtime::exec::ExecBuilder, Failure> {
    let process = process(container, args).map_err(Failure::Setup)?;
    let seccomp = container
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().clone());
    let mut builder = Exec::in_container(&container.id, process)
        .state_dir(STATE_DIR)
        .env(env_entries(&args.env))
        .seccomp(seccomp)
        .seccomp_cache(super::containers::seccomp_cache());
    let null = || -> Result<OwnedFd, Failure> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .context("opening /dev/null")
            .map_err(Failure::Setup)?;
        Ok(OwnedFd::from(file))
    };
    if args.detach {
        // Nothing is attached to a detached command, as under docker: it must not hold
        // this command's output open after it returns.
        builder = builder.stdin(null()?).stdout(null()?).stderr(null()?);
    } else if !args.interactive && !args.tty {
        // Not attached: the command reads end of file.
        builder = builder.stdin(null()?);
    }
    Ok(builder)
}

/// The container's process settings for `args.command`, with `-w`, `-u` and `-t`.
fn process(container: &Found, args: &ExecArgs) -> anyhow::Result<Process> {
    let mut process = process_from(&container.spec, args.command.clone())?;
    if let Some(dir) = &args.workdir {
        process.set_cwd(dir.into());
    }
    if let Some(user) = &args.user {
        let resolved = resolve_user(&container.rootfs, user)?;
        let u = process.user_mut();
        u.set_uid(resolved.uid);
        u.set_gid(resolved.gid);
        u.set_additional_gids(Some(resolved.additional_gids));
    }
    if args.privileged {
        process.set_capabilities(Some(basic_runtime::spec::privileged_capabilities()?));
    }
    process.set_terminal(Some(args.tty));
    if args.tty {
        // The command may ask before the relay copies it: size its terminal from the start.
        let size = window_size(std::io::stdin()).or_else(|| window_size(std::io::stdout()));
        process.set_console_size(size.map(Into::into));
    }
    Ok(process)
}

/// `-e KEY=VALUE` as given; `-e KEY` takes this shell's value, or is left out
/// when the shell has none.
fn env_entries(flags: &[String]) -> Vec<String> {
    flags
        .iter()
        .filter_map(|e| match e.contains('=') {
            true => Some(e.clone()),
            false => std::env::var(e).ok().map(|v| format!("{e}={v}")),
        })
        .collect()
}

fn start(
    builder: basic_runtime::exec::ExecBuilder,
    args: &ExecArgs,
) -> Result<ExitCode, ExecError> {
    if args.detach {
        builder.detached().build()?.start()?;
        return Ok(ExitCode::SUCCESS);
    }
    // With a terminal, keys do the signalling (docker's --sig-proxy does not apply to -t).
    let exec = builder.foreground().forward_signals(!args.tty).build()?;
    let status = if args.tty {
        let stdin = std::io::stdin();
        let raw = match args.interactive {
            true => RawMode::enable(stdin.as_fd()).map_err(ExecError::Terminal)?,
            false => None,
        };
        let status = exec.run_with_console(|console| {
            let input = args.interactive.then(|| stdin.as_fd());
            if let Err(e) = console.relay(input, std::io::stdout().as_fd()) {
                eprintln!("Error: relaying the terminal: {e}");
            }
        });
        drop(raw);
        status?
    } else {
        exec.run()?
    };
    Ok(ExitCode::from(
        u8::try_from(status.exit_code()).unwrap_or(ENGINE_FAILURE),
    ))
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_env_keys_copy_this_shells_value_or_are_left_out() {
        let path = std::env::var("PATH").unwrap();
        let entries = env_entries(&[
            "A=1".into(),
            "PATH".into(),
            "BASIC_DOCKER_SURELY_UNSET_VAR".into(),
            "B=x=y".into(),
        ]);
        assert_eq!(
            entries,
            ["A=1".to_string(), format!("PATH={path}"), "B=x=y".into()]
        );
    }
}
