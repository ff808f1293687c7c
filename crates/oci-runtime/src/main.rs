//! `basic-runtime`: the runc command line over the `basic-runtime` library, so podman
//! (through conmon), containerd's runc shim and other engines can drive it as their OCI
//! runtime. Errors go to stderr and, with `--log`, to that file as logrus-style text or JSON
//! lines, which is where engines look for them.

mod cli;
mod commands;
mod exec;
mod features;
mod log;
mod output;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let logger = log::Logger::open(&cli);
    // Commands that start processes in containers first re-execute this program from a
    // read-only copy of itself, so no container can overwrite it (CVE-2019-5736). Before
    // any thread starts.
    let enters = matches!(
        cli.command,
        cli::Command::Create(_) | cli::Command::Run { .. } | cli::Command::Exec(_)
    );
    if enters && let Err(e) = basic_runtime::sealed_exe::ensure() {
        let msg = e.to_string();
        logger.error(&msg);
        output::error_line(&msg);
        std::process::exit(1);
    }
    let code = match commands::dispatch(&cli, &logger) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            logger.error(&msg);
            output::error_line(&msg);
            1
        }
    };
    std::process::exit(code);
}
