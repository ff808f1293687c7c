//! `network create|ls|inspect|rm|prune` over basic-network: bridge networks stored as
//! CNI conflists under `<root>/networks/`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use basic_network::{CreateOptions, Networks};
use clap::{Args, Subcommand};

use super::format::go_time;
use super::template::{self, ErrorWords, InspectFormat, Listing, ListingFormat, print_listing};
use crate::cli::GlobalOptions;

/// `network` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network with its own bridge device and subnet
    Create(NetworkCreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(NetworkLsArgs),
    /// Display detailed information on one or more networks
    Inspect(NetworkInspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(NetworkRmArgs),
    /// Remove all unused networks, and the network namespaces kept prepared for new containers
    Prune(NetworkPruneArgs),
}

/// `network prune`.
#[derive(Debug, Args)]
pub struct NetworkPruneArgs {
    /// Do not prompt for confirmation (there is no prompt; accepted for docker compatibility)
    #[arg(short, long)]
    pub force: bool,
}

/// `network create`.
#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// Driver to manage the network (only `bridge`)
    #[arg(short = 'd', long, default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format, e.g. 10.10.0.0/24 (picked from 172.30.0.0/15 when absent)
    #[arg(long)]
    pub subnet: Option<String>,
    /// IPv4 gateway for the subnet (its first address when absent)
    #[arg(long)]
    pub gateway: Option<String>,
    /// The network's name
    pub name: String,
}

/// `network ls`.
#[derive(Debug, Args)]
pub struct NetworkLsArgs {
    /// Only display network IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output: `table` (default), `table TEMPLATE`, `json` (one object per line),
    /// or a Go template such as '{{.Name}} {{.Driver}}'
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// `network inspect`.
#[derive(Debug, Args)]
pub struct NetworkInspectArgs {
    /// Format the output using the given Go template (without it, docker's JSON array)
    #[arg(short, long, value_name = "TEMPLATE")]
    pub format: Option<String>,
    /// Networks: names, IDs or unique ID prefixes
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

/// `network rm`.
#[derive(Debug, Args)]
pub struct NetworkRmArgs {
    /// Networks: names, IDs or unique ID prefixes
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

/// Runs a `network` sub-verb.
pub fn network(global: &GlobalOptions, command: NetworkCommand) -> anyhow::Result<ExitCode> {
    match command {
        NetworkCommand::Create(args) => create(&networks(global)?, args),
        NetworkCommand::Ls(args) => ls(&networks(global)?, args),
        NetworkCommand::Inspect(args) => inspect(&super::engine(global)?, args),
        NetworkCommand::Rm(args) => rm(&super::engine(global)?, args),
        NetworkCommand::Prune(_) => prune(&networks(global)?),
    }
}

/// The networks of `--root` (namespaces under `--state`).
pub fn networks(global: &GlobalOptions) -> anyhow::Result<Networks> {
    Ok(basic_engine::network::networks(&super::paths(global))?)
}

fn create(networks: &Networks, args: NetworkCreateArgs) -> anyhow::Result<ExitCode> {
    if args.driver != "bridge" {
        anyhow::bail!(
            "plugin {:?} not found: only the bridge driver is available",
            args.driver
        );
    }
    let subnet = args
        .subnet
        .as_deref()
        .map(|s| {
            s.parse().map_err(|_| {
                anyhow::anyhow!("invalid subnet {s:?}: expected CIDR such as 10.10.0.0/24")
            })
        })
        .transpose()?;
    let gateway = args
        .gateway
        .as_deref()
        .map(|g| {
            g.parse()
                .map_err(|_| anyhow::anyhow!("invalid gateway {g:?}: expected an IPv4 address"))
        })
        .transpose()?;
    if gateway.is_some() && subnet.is_none() {
        anyhow::bail!("--gateway needs --subnet: a gateway is only given for a subnet you choose");
    }
    let info = networks.create(&CreateOptions {
        name: args.name,
        subnet,
        gateway,
        ..Default::default()
    })?;
    println!("{}", info.id);
    Ok(ExitCode::SUCCESS)
}

/// One `ls` row: stored networks plus docker's built-in `host` and `none`.
struct Row {
    id: String,
    name: String,
    driver: String,
    created: String,
}

fn rows(networks: &Networks) -> anyhow::Result<Vec<Row>> {
    let mut rows: Vec<Row> = networks
        .list()?
        .into_iter()
        .map(|n| Row {
            id: n.id,
            name: n.name,
            driver: n.driver,
            created: n.created,
        })
        .collect();
    for (name, driver) in [("host", "host"), ("none", "null")] {
        rows.push(Row {
            id: basic_network::store::name_id(name),
            name: name.into(),
            driver: driver.into(),
            created: String::new(),
        });
    }
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// docker's network columns (`formatter.NetworkContext`).
const NETWORKS: Listing = Listing {
    default_table: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    headers: &[
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
        ("CreatedAt", "CREATED AT"),
    ],
    errors: ErrorWords::Formatter,
};

fn ls(networks: &Networks, args: NetworkLsArgs) -> anyhow::Result<ExitCode> {
    let format = match ListingFormat::new(NETWORKS, args.format.as_deref()) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let rows = rows(networks)?;
    let id = |r: &Row| {
        if args.no_trunc {
            r.id.clone()
        } else {
            r.id.chars().take(12).collect()
        }
    };
    if args.quiet {
        rows.iter().for_each(|r| println!("{}", id(r)));
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<template::Row> = rows
        .iter()
        .map(|r| {
            let created = parse_rfc3339_nanos(&r.created)
                .map(|n| go_time(n, true))
                .unwrap_or_default();
            template::Row::new()
                .text("ID", id(r))
                .text("Name", r.name.clone())
                .text("Driver", r.driver.clone())
                .text("Scope", "local")
                .text("IPv6", "false")
                .text("Internal", "false")
                .text("CreatedAt", created)
                .labels(&BTreeMap::new())
        })
        .collect();
    Ok(print_listing(&format, &rows))
}

/// An RFC 3339 time in nanoseconds since the epoch.
fn parse_rfc3339_nanos(text: &str) -> Option<i64> {
    let at: jiff::Timestamp = text.parse().ok()?;
    i64::try_from(at.as_nanosecond()).ok()
}

/// Through the engine: the document the API's `GET /networks/{id}` returns, docker's
/// (the built-in `host` and `none` included).
fn inspect(engine: &basic_engine::Engine, args: NetworkInspectArgs) -> anyhow::Result<ExitCode> {
    let format = match InspectFormat::new(args.format.as_deref()) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(64));
        }
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.networks {
        match engine.inspect_network(name) {
            Ok(doc) => found.push(serde_json::to_value(doc)?),
            Err(e) => errors.push(format!("Error: {e}")),
        }
    }
    Ok(super::inspect::print_documents(&format, found, errors))
}

/// Through the engine, as the API's `DELETE /networks/{id}`: the built-ins are refused
/// by name or by ID alike.
fn rm(engine: &basic_engine::Engine, args: NetworkRmArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for name in &args.networks {
        match engine.remove_network(name) {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("Error: {e}");
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

fn prune(networks: &Networks) -> anyhow::Result<ExitCode> {
    networks.drain_pool(None)?;
    let removed = networks.prune()?;
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for name in removed {
            println!("{name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
