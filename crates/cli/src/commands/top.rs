//! `top`: the processes of a running container, as the host sees them, in the columns
//! of docker's default (`ps -ef`), from the engine's [`basic_engine::Engine::top`].

use std::process::ExitCode;

use super::format::table;
use crate::cli::{GlobalOptions, TopArgs};

/// `top CONTAINER`.
pub fn top(global: &GlobalOptions, args: TopArgs) -> anyhow::Result<ExitCode> {
    let top = super::engine(global)?.top(&args.container)?;
    let titles = top.titles.unwrap_or_default();
    let titles: Vec<&str> = titles.iter().map(String::as_str).collect();
    print!("{}", table(&titles, &top.processes.unwrap_or_default()));
    Ok(ExitCode::SUCCESS)
}
