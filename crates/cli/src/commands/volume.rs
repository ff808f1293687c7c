//! `volume create|ls|inspect|rm|prune`: docker's `local` volumes of the engine, with
//! docker's output.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, Write as _};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use basic_engine::{Engine, VolumeCreateRequest, VolumeFilters};
use clap::{Args, Subcommand};
use serde_json::Value;

use super::engine;
use super::format::human_size;
use super::inspect::print_documents;
use super::template::{InspectFormat, ListingFormat, VOLUMES, print_listing, volume_row};
use crate::cli::GlobalOptions;

/// `volume` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// List volumes
    #[command(alias = "list")]
    Ls(VolumeLsArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// Remove one or more volumes (a volume a container uses cannot be removed)
    #[command(alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove all unused local volumes
    ///
    /// As docker 20.10: every local volume no container (running or not) uses, named
    /// or anonymous, except volumes created with driver options (-o). Docker 23 and later
    /// remove only anonymous volumes unless given --filter all=true; this command does not
    /// take that filter.
    Prune(VolumePruneArgs),
}

/// `volume create`.
#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// Volume driver name (only `local`)
    #[arg(short = 'd', long, default_value = "local")]
    pub driver: String,
    /// Set driver specific options: type=tmpfs|none|FSTYPE, device=DEVICE, o=MOUNT_OPTIONS
    #[arg(short = 'o', long = "opt", value_name = "KEY=VALUE")]
    pub opt: Vec<String>,
    /// Set metadata for a volume
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long = "name")]
    pub name_flag: Option<String>,
    /// The volume's name (a 64-hex-digit one is generated when none is given)
    pub name: Option<String>,
}

/// `volume ls`.
#[derive(Debug, Args)]
pub struct VolumeLsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Filter: dangling=true|false, name=TEXT, driver=local, label=KEY[=VALUE] (repeatable)
    #[arg(short = 'f', long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
    /// Output format: a Go template, `table [TEMPLATE]` or `json` (one object per line)
    #[arg(long)]
    pub format: Option<String>,
}

/// `volume inspect`.
#[derive(Debug, Args)]
pub struct VolumeInspectArgs {
    /// Output format: a Go template (docker's JSON array without one)
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes, by name
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

/// `volume rm`.
#[derive(Debug, Args)]
pub struct VolumeRmArgs {
    /// Force the removal: a volume that does not exist is no error
    #[arg(short, long)]
    pub force: bool,
    /// Volumes, by name
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

/// `volume prune`.
#[derive(Debug, Args)]
pub struct VolumePruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Only volumes with these labels: label=KEY[=VALUE], label!=KEY[=VALUE]
    #[arg(long = "filter", value_name = "KEY=VALUE")]
    pub filter: Vec<String>,
}

/// Runs a `volume` sub-verb.
pub fn volume(global: &GlobalOptions, command: VolumeCommand) -> anyhow::Result<ExitCode> {
    let engine = engine(global)?;
    match command {
        VolumeCommand::Create(args) => create(&engine, args),
        VolumeCommand::Ls(args) => ls(&engine, args),
        VolumeCommand::Inspect(args) => inspect(&engine, args),
        VolumeCommand::Rm(args) => rm(&engine, args),
        VolumeCommand::Prune(args) => prune(&engine, args),
    }
}

fn create(engine: &Engine, args: VolumeCreateArgs) -> anyhow::Result<ExitCode> {
    let name = match (args.name_flag, args.name) {
        (Some(_), Some(_)) => {
            bail!("conflicting options: either specify --name or provide positional arg, not both")
        }
        (flag, positional) => flag.or(positional),
    };
    let request = VolumeCreateRequest {
        name,
        driver: Some(args.driver),
        driver_opts: Some(key_values("--opt", &args.opt)?),
        labels: Some(key_values("--label", &args.label)?),
        cluster_volume_spec: None,
    };
    let volume = engine.create_volume(&request)?;
    println!("{}", volume.name);
    Ok(ExitCode::SUCCESS)
}

/// `KEY=VALUE` options; a label may be a bare `KEY` (docker gives it an empty value).
fn key_values(flag: &str, items: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    for item in items {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k, v),
            None if flag == "--label" => (item.as_str(), ""),
            None => bail!("invalid {flag} {item:?}: expected KEY=VALUE"),
        };
        if key.is_empty() {
            bail!("invalid {flag} {item:?}: the key is empty");
        }
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}

fn ls(engine: &Engine, args: VolumeLsArgs) -> anyhow::Result<ExitCode> {
    let format = match ListingFormat::new(VOLUMES, args.format.as_deref()) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut volumes = engine.volumes(&VolumeFilters::parse(&args.filter)?)?;
    // docker's CLI lists them by name.
    volumes.sort_by(|a, b| a.name.cmp(&b.name));
    if args.quiet {
        volumes.iter().for_each(|v| println!("{}", v.name));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<_> = volumes
        .iter()
        .map(|v| {
            let labels: BTreeMap<String, String> = v.labels.clone().into_iter().collect();
            volume_row(&v.name, &v.driver, &v.mountpoint, &labels)
        })
        .collect();
    Ok(print_listing(&format, &rows))
}

fn inspect(engine: &Engine, args: VolumeInspectArgs) -> anyhow::Result<ExitCode> {
    let format = match InspectFormat::new(args.format.as_deref()) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("{e}");
            // docker's exit code for a template that does not parse.
            return Ok(ExitCode::from(64));
        }
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.volumes {
        match engine.volume(name) {
            Ok(volume) => found.push(sorted(serde_json::to_value(&volume)?)),
            Err(e) => errors.push(format!("Error: {e}")),
        }
    }
    Ok(print_documents(&format, found, errors))
}

/// docker's inspect output: keys in alphabetical order (the order of its Go struct).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

fn rm(engine: &Engine, args: VolumeRmArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for name in &args.volumes {
        match engine.remove_volume(name, args.force) {
            Ok(()) => println!("{name}"),
            Err(e @ basic_engine::EngineError::NoSuchVolume(_)) => {
                eprintln!("Error: {e}");
                failed = true;
            }
            Err(e) => {
                eprintln!("Error response from daemon: {e}");
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

fn prune(engine: &Engine, args: VolumePruneArgs) -> anyhow::Result<ExitCode> {
    let filters = VolumeFilters::parse(&args.filter)?;
    if !args.force && !confirmed()? {
        println!("Total reclaimed space: 0B");
        return Ok(ExitCode::SUCCESS);
    }
    let report = engine.prune_volumes(&filters)?;
    if !report.deleted.is_empty() {
        println!("Deleted Volumes:");
        for name in &report.deleted {
            println!("{name}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(report.reclaimed));
    Ok(ExitCode::SUCCESS)
}

/// docker's prompt; only `y` or `Y` goes on.
fn confirmed() -> anyhow::Result<bool> {
    print!(
        "WARNING! This will remove all local volumes not used by at least one container.\n\
         Are you sure you want to continue? [y/N] "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_and_labels_are_key_values() {
        let map = key_values("--label", &["a=b".into(), "flag".into()]).unwrap();
        assert_eq!(map["a"], "b");
        assert_eq!(map["flag"], "");
        assert!(key_values("--opt", &["novalue".into()]).is_err());
        assert!(key_values("--opt", &["=x".into()]).is_err());
    }
}
