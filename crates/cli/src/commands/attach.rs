//! `attach`, and `start -a [-i]`: this command's stdio connected to a container's, as
//! docker's.
//!
//! With a terminal, the caller's terminal is raw and its size followed, and the detach
//! keys (ctrl-p ctrl-q) leave the container running; without one, signals this command
//! receives go to the container (`--sig-proxy`). The exit code is the container's when it
//! exits while attached, 0 after a detach.

use std::process::ExitCode;

use anyhow::bail;
use basic_engine::{AttachEnd, AttachOptions, DetachKeys, Engine};
use clap::Args;

use super::engine;
use crate::cli::{GlobalOptions, StartArgs};

/// docker's exit code for a failure of the engine.
const ENGINE_FAILURE: u8 = 125;

/// `attach`.
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container (e.g. ctrl-a,ctrl-d)
    #[arg(long = "detach-keys", value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process (--sig-proxy=false to not)
    #[arg(
        long = "sig-proxy",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub sig_proxy: bool,
    /// The container: name, id or unique id prefix
    pub container: String,
}

/// Attaches until the container exits, or the user detaches.
pub fn attach(global: &GlobalOptions, args: AttachArgs) -> anyhow::Result<ExitCode> {
    let engine = engine(global)?;
    let options = AttachOptions {
        stdin: !args.no_stdin,
        detach_keys: detach_keys(args.detach_keys.as_deref())?,
        ..Default::default()
    };
    let end = engine
        .attach(&args.container, &options)?
        .relay_stdio(args.sig_proxy)?;
    ended(&engine, &args.container, end)
}

/// `start -a` / `start -i`: attached before the start, so nothing it writes is missed.
pub fn start_attached(global: &GlobalOptions, args: &StartArgs) -> anyhow::Result<ExitCode> {
    let [query] = args.containers.as_slice() else {
        bail!("you cannot start and attach multiple containers at once");
    };
    let engine = engine(global)?;
    let options = AttachOptions {
        stdin: args.interactive,
        detach_keys: detach_keys(args.detach_keys.as_deref())?,
        await_start: true,
        ..Default::default()
    };
    let attached = engine.attach(query, &options)?;
    if let Err(e) = engine.start(query) {
        eprintln!("Error response from daemon: {}", chain(&e));
        return Ok(ExitCode::from(
            u8::try_from(e.exit_code()).unwrap_or(ENGINE_FAILURE),
        ));
    }
    let end = attached.relay_stdio(true)?;
    ended(&engine, query, end)
}

fn detach_keys(text: Option<&str>) -> anyhow::Result<Option<DetachKeys>> {
    Ok(text.map(str::parse).transpose()?)
}

/// The exit code for how the attachment ended: the container's, or 0 after a detach; when
/// the attachment ended while the container runs on (its input ended), as docker's
/// command line, the code it exits with later.
fn ended(engine: &Engine, query: &str, end: AttachEnd) -> anyhow::Result<ExitCode> {
    let code = match end {
        AttachEnd::Exited(code) => code,
        AttachEnd::Detached => {
            eprintln!("read escape sequence");
            0
        }
        AttachEnd::Closed => engine.wait(query)?,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(ENGINE_FAILURE)))
}

/// "a: b: c" from an error and its sources.
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
