//! `cp` and `diff`: files in and out of containers, and what a container changed.

use std::io::{self, BufWriter, Write as _};
use std::path::Path;
use std::process::ExitCode;

use anyhow::bail;
use basic_engine::{CpOptions, CpSource, CpTarget, change_letter};
use clap::Args;

use super::engine;
use crate::cli::GlobalOptions;

/// `cp [-a] [-L] CONTAINER:SRC_PATH DEST_PATH|-` and `cp [-a] [-L] SRC_PATH|- CONTAINER:DEST_PATH`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long)]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy (there is none)
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, or a host path (`-`: a tar stream on STDIN)
    pub source: String,
    /// CONTAINER:DEST_PATH, or a host path (`-`: a tar stream to STDOUT)
    pub destination: String,
}

/// `diff CONTAINER`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The container: name, id or unique id prefix
    pub container: String,
}

/// docker's `splitCpArg`: `CONTAINER:PATH`, or a host path (absolute, or starting with
/// `.`, may hold a `:`).
fn split(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((container, path)) if !container.starts_with('.') => (Some(container), path),
        _ => (None, arg),
    }
}

/// Copies one way or the other.
pub fn cp(global: &GlobalOptions, args: CpArgs) -> anyhow::Result<ExitCode> {
    let options = CpOptions {
        follow_link: args.follow_link,
        archive: args.archive,
    };
    let (from, src) = split(&args.source);
    let (to, dest) = split(&args.destination);
    match (from, to) {
        (None, None) => bail!("must specify at least one container source"),
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (Some(container), None) => {
            let engine = engine(global)?;
            if dest == "-" {
                let mut out = BufWriter::new(io::stdout());
                engine.copy_out(container, src, CpTarget::Stream(&mut out), &options)?;
                out.flush()?;
            } else {
                engine.copy_out(container, src, CpTarget::Path(Path::new(dest)), &options)?;
            }
        }
        (None, Some(container)) => {
            let engine = engine(global)?;
            if src == "-" {
                let mut input = io::stdin();
                engine.copy_in(CpSource::Stream(&mut input), container, dest, &options)?;
            } else {
                engine.copy_in(CpSource::Path(Path::new(src)), container, dest, &options)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints `C /etc`, `A /etc/x`, `D /tmp/y`, one change a line.
pub fn diff(global: &GlobalOptions, args: DiffArgs) -> anyhow::Result<ExitCode> {
    let changes = engine(global)?.changes(&args.container)?;
    let mut out = BufWriter::new(io::stdout());
    for change in changes {
        writeln!(out, "{} {}", change_letter(change.kind), change.path)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_split_as_dockers() {
        assert_eq!(split("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split("web:tmp"), (Some("web"), "tmp"));
        assert_eq!(split("/abs/with:colon"), (None, "/abs/with:colon"));
        assert_eq!(split("./rel:colon"), (None, "./rel:colon"));
        assert_eq!(split("-"), (None, "-"));
        assert_eq!(split("file"), (None, "file"));
    }
}
