//! `network create|ls|inspect|rm` over basic-network: bridge networks stored as
//! CNI conflists under `<root>/networks/`.

use std::process::ExitCode;

use basic_network::{CreateOptions, NetworkInfo, Networks};
use clap::{Args, Subcommand};

use super::format::table;
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
    /// Output format: `table` (default) or `json`
    #[arg(long)]
    pub format: Option<String>,
}

/// `network inspect`.
#[derive(Debug, Args)]
pub struct NetworkInspectArgs {
    /// Output format: `json` (the default, docker's array)
    #[arg(short, long)]
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
    let networks = networks(global)?;
    match command {
        NetworkCommand::Create(args) => create(&networks, args),
        NetworkCommand::Ls(args) => ls(&networks, args),
        NetworkCommand::Inspect(args) => inspect(&networks, args),
        NetworkCommand::Rm(args) => rm(&networks, args),
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

fn ls(networks: &Networks, args: NetworkLsArgs) -> anyhow::Result<ExitCode> {
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
    match args.format.as_deref() {
        Some("json") | Some("{{json .}}") => {
            for r in &rows {
                let json = serde_json::json!({
                    "CreatedAt": r.created,
                    "Driver": r.driver,
                    "ID": id(r),
                    "IPv6": "false",
                    "Internal": "false",
                    "Labels": "",
                    "Name": r.name,
                    "Scope": "local",
                });
                println!("{json}");
            }
        }
        Some("table") | None => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| vec![id(r), r.name.clone(), r.driver.clone(), "local".into()])
                .collect();
            print!(
                "{}",
                table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &cells)
            );
        }
        Some(other) => anyhow::bail!("unsupported --format {other:?}: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

fn inspect(networks: &Networks, args: NetworkInspectArgs) -> anyhow::Result<ExitCode> {
    if let Some(other) = args
        .format
        .as_deref()
        .filter(|f| *f != "json" && *f != "{{json .}}")
    {
        anyhow::bail!("unsupported --format {other:?}: use json");
    }
    let mut found: Vec<NetworkInfo> = Vec::new();
    let mut failed = false;
    for name in &args.networks {
        match networks.inspect(name) {
            Ok(info) => found.push(info),
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn rm(networks: &Networks, args: NetworkRmArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for name in &args.networks {
        match networks.remove(name) {
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
