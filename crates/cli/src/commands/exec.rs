//! `exec`: a command in a running container, with the container's own process
//! settings (user, environment, working directory, capabilities) unless the
//! flags say otherwise, as docker does.

use std::io::IsTerminal as _;
use std::os::fd::{AsFd as _, OwnedFd};
use std::process::ExitCode;

use anyhow::bail;
use basic_engine::{EngineError, ExecOptions};
use basic_runtime::exec::{ExecBuilder, ExecError};
use basic_runtime::terminal::{RawMode, window_size};
use clap::Args;

use super::engine;
use crate::cli::GlobalOptions;

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
    let options = ExecOptions {
        cmd: args.command.clone(),
        env: env_entries(&args.env),
        working_dir: args.workdir.clone(),
        user: args.user.clone(),
        // The command may ask before the relay copies it: size its terminal from the start.
        tty: args
            .tty
            .then(|| window_size(std::io::stdin()).or_else(|| window_size(std::io::stdout()))),
        privileged: args.privileged,
    };
    let builder = match engine(global)?.exec(&args.container, &options) {
        Ok(builder) => builder,
        // Not there, or not running: docker's 1, as for any failed command.
        Err(e @ (EngineError::NoSuchContainer(_) | EngineError::Conflict(_))) => {
            return Err(e.into());
        }
        Err(e) => {
            eprintln!("Error: {}", chain(&e));
            return Ok(ExitCode::from(ENGINE_FAILURE));
        }
    };
    let outcome = with_stdio(builder, &args).and_then(|exec| start(exec, &args));
    Ok(match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", chain(&e));
            match e {
                // The container stopped since it was looked up: as when it was stopped before.
                ExecError::NotRunning { .. } => ExitCode::FAILURE,
                e => ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(ENGINE_FAILURE)),
            }
        }
    })
}

/// What the command reads: nothing (end of file) unless `-i`; detached, it is attached
/// to nothing at all, as under docker, and must not hold this command's output open.
fn with_stdio(builder: ExecBuilder, args: &ExecArgs) -> Result<ExecBuilder, ExecError> {
    let null = || -> Result<OwnedFd, ExecError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|source| ExecError::Stdio {
                what: "stdin",
                source,
            })?;
        Ok(OwnedFd::from(file))
    };
    Ok(if args.detach {
        builder.stdin(null()?).stdout(null()?).stderr(null()?)
    } else if !args.interactive && !args.tty {
        builder.stdin(null()?)
    } else {
        builder
    })
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

fn start(builder: ExecBuilder, args: &ExecArgs) -> Result<ExitCode, ExecError> {
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
