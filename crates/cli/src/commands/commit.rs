//! `commit`: a container's changes as a new image; prints its id as docker does.

use std::process::ExitCode;

use anyhow::Context as _;
use basic_engine::CommitOptions;
use basic_image_store::LayerCompression;
use clap::Args;

use super::engine;
use crate::cli::GlobalOptions;

/// `commit [-c INSTRUCTION] [-m MSG] [-a AUTHOR] [-p] CONTAINER [REPO[:TAG]]`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, num_args = 0..=1, default_value = "true", default_missing_value = "true", value_name = "BOOL", action = clap::ArgAction::Set)]
    pub pause: bool,
    /// Compression of the new layer: gzip or zstd
    #[arg(long, default_value = "gzip")]
    pub compression: LayerCompression,
    /// The container: id, id prefix or name
    pub container: String,
    /// The new image's name
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Commits and prints `sha256:…`.
pub fn commit(global: &GlobalOptions, args: CommitArgs) -> anyhow::Result<ExitCode> {
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.is_empty() => Some(
            text.parse::<i64>()
                .with_context(|| format!("SOURCE_DATE_EPOCH={text}: expected unix seconds"))?,
        ),
        _ => None,
    };
    let options = CommitOptions {
        reference: args.reference,
        comment: args.message,
        author: args.author,
        changes: args.change,
        pause: args.pause,
        compression: args.compression,
        source_date_epoch: epoch,
    };
    let id = engine(global)?.commit(&args.container, &options)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}
