//! `start`, `stop`, `restart`, `kill`, `pause`, `unpause`, `rm`, `wait`, `rename` and
//! `container prune`, on containers named by id, id prefix or name.
//!
//! Each verb goes through every container given, reports failures on stderr as docker
//! does, and exits 1 when any failed.

use std::process::ExitCode;
use std::time::Duration;

use basic_engine::{Engine, RemoveOptions};

use super::engine;
use super::format::human_size;
use crate::cli::{
    ContainerPruneArgs, ContainersArgs, GlobalOptions, KillArgs, RenameArgs, RmArgs, StartArgs,
    StopArgs,
};

/// Runs `verb` on each container, printing what it returns (the name given, by default);
/// exit 1 if any failed.
fn each(
    global: &GlobalOptions,
    containers: &[String],
    mut verb: impl FnMut(&Engine, &str) -> basic_engine::Result<Option<String>>,
) -> anyhow::Result<ExitCode> {
    let engine = engine(global)?;
    let mut failed = false;
    for query in containers {
        match verb(&engine, query) {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => println!("{query}"),
            Err(e) => {
                eprintln!("Error response from daemon: {}", chain(&e));
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
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

/// `start`: a detached supervisor for each container that is not running; with `-a` or
/// `-i`, attached to the one container (see [`super::attach`]).
pub fn start(global: &GlobalOptions, args: StartArgs) -> anyhow::Result<ExitCode> {
    if args.attach || args.interactive {
        return super::attach::start_attached(global, &args);
    }
    each(global, &args.containers, |engine, query| {
        engine.start(query).map(|()| None)
    })
}

/// `stop`: the container's stop signal, then SIGKILL after `-t` seconds.
pub fn stop(global: &GlobalOptions, args: StopArgs) -> anyhow::Result<ExitCode> {
    let grace = Duration::from_secs(args.time);
    each(global, &args.containers, |engine, query| {
        engine.stop(query, grace).map(|()| None)
    })
}

/// `restart`: stop (when running), then start.
pub fn restart(global: &GlobalOptions, args: StopArgs) -> anyhow::Result<ExitCode> {
    let grace = Duration::from_secs(args.time);
    each(global, &args.containers, |engine, query| {
        engine.restart(query, grace).map(|()| None)
    })
}

/// `kill`: a signal to the container's init.
pub fn kill(global: &GlobalOptions, args: KillArgs) -> anyhow::Result<ExitCode> {
    // A bad signal is the command's mistake, not one container's.
    basic_engine::parse_signal(&args.signal)?;
    each(global, &args.containers, |engine, query| {
        engine.kill(query, &args.signal).map(|()| None)
    })
}

/// `pause`: freezes every process of the container.
pub fn pause(global: &GlobalOptions, args: ContainersArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |engine, query| {
        engine.pause(query).map(|()| None)
    })
}

/// `unpause`: thaws a paused container.
pub fn unpause(global: &GlobalOptions, args: ContainersArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |engine, query| {
        engine.unpause(query).map(|()| None)
    })
}

/// `rm`: removes stopped containers; `-f` kills running ones first; `-v` removes their
/// anonymous volumes.
pub fn rm(global: &GlobalOptions, args: RmArgs) -> anyhow::Result<ExitCode> {
    let options = RemoveOptions {
        force: args.force,
        volumes: args.volumes,
    };
    each(global, &args.containers, |engine, query| {
        engine.remove_with(query, &options).map(|()| None)
    })
}

/// `wait`: blocks until each container is not running, then prints its exit code.
pub fn wait(global: &GlobalOptions, args: ContainersArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |engine, query| {
        engine.wait(query).map(|code| Some(code.to_string()))
    })
}

/// `container prune`: removes every container that is not running.
pub fn prune(global: &GlobalOptions, _args: ContainerPruneArgs) -> anyhow::Result<ExitCode> {
    let report = engine(global)?.prune()?;
    if !report.deleted.is_empty() {
        println!("Deleted Containers:");
        for id in &report.deleted {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed));
    Ok(ExitCode::SUCCESS)
}

/// `rename`: a new unique name.
pub fn rename(global: &GlobalOptions, args: RenameArgs) -> anyhow::Result<ExitCode> {
    engine(global)?.rename(&args.container, &args.new_name)?;
    Ok(ExitCode::SUCCESS)
}
