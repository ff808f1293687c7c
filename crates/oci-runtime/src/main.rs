//! `basic-runtime`: the runc command line over the `basic-runtime` library, so podman
//! (through conmon), containerd's runc shim and other engines can drive it as their OCI
//! runtime. Errors go to stderr and, with `--log`, to that file as logrus-style text or JSON
//! lines, which is where engines look for them.

mod cli;
mod commands;
mod exec;
mod features;
mod log;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    let logger = log::Logger::open(&cli);
    let code = match commands::dispatch(&cli, &logger) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("{e:#}");
            logger.error(&msg);
            eprintln!("basic-runtime: {msg}");
            1
        }
    };
    std::process::exit(code);
}
