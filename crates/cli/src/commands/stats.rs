//! `stats`: docker's live resource table of running containers.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use basic_engine::{Engine, StatsSampler};
use basic_monitor::{ContainerRates, ContainerStats};
use serde_json::json;

use super::containers::{self, RunningContainer};
use super::format::human_size;
use super::template::{ErrorWords, Listing, ListingFormat, Row};
use crate::cli::{GlobalOptions, StatsArgs};

/// The interval between the two samples a rate is computed from.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// docker's stats columns (`formatter.StatsContext`). Rows also carry `.Raw`, the
/// numbers behind the text (this program's own field).
pub const STATS: Listing = Listing {
    default_table: "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}",
    headers: &[
        ("Container", "CONTAINER"),
        ("ID", "CONTAINER ID"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ],
    errors: ErrorWords::Formatter,
};

/// A container being sampled (through the engine's [`StatsSampler`]).
pub struct Tracked {
    /// The container.
    pub container: RunningContainer,
    sampler: StatsSampler,
}

impl Tracked {
    /// Starts sampling `container`'s cgroup and network namespace.
    pub fn new(engine: &Engine, container: RunningContainer) -> anyhow::Result<Tracked> {
        let sampler = engine
            .stats(&container.id)
            .with_context(|| format!("sampling container {}", container.short_id()))?;
        Ok(Tracked { container, sampler })
    }

    /// Takes another sample, keeping the previous one for rates.
    pub fn resample(&mut self) -> anyhow::Result<()> {
        self.sampler
            .resample()
            .with_context(|| format!("sampling container {}", self.container.short_id()))
    }

    /// The last sample.
    pub fn stats(&self) -> &ContainerStats {
        self.sampler.current()
    }

    /// The rates between the last two samples.
    pub fn rates(&self) -> ContainerRates {
        self.sampler.rates()
    }

    /// One `stats` row as docker's JSON format writes it (strings as in the
    /// table), plus the raw numbers.
    pub fn json(&self) -> serde_json::Value {
        let s = self.sampler.summary();
        let (usage, limit) = (s.memory_usage, s.memory_limit);
        let (mem_percent, cpu, pids) = (s.memory_percent, s.cpu_percent, s.pids);
        json!({
            "BlockIO": format!("{} / {}", human_size(s.block_read), human_size(s.block_write)),
            "CPUPerc": format!("{cpu:.2}%"),
            "Container": self.container.short_id(),
            "ID": self.container.short_id(),
            "MemPerc": format!("{mem_percent:.2}%"),
            "MemUsage": format!("{} / {}", bytes_size(usage), bytes_size(limit)),
            "Name": self.container.display_name(),
            "NetIO": format!("{} / {}", human_size(s.network_rx), human_size(s.network_tx)),
            "PIDs": pids.to_string(),
            "Raw": {
                "id": self.container.id,
                "image": self.container.image,
                "cpu_percent": cpu,
                "memory_usage_bytes": usage,
                "memory_limit_bytes": limit,
                "memory_percent": mem_percent,
                "network_rx_bytes": s.network_rx,
                "network_tx_bytes": s.network_tx,
                "block_read_bytes": s.block_read,
                "block_write_bytes": s.block_write,
                "pids": pids,
            },
        })
    }

    /// One `stats` row for `--format`: docker's fields, as text, and `.Raw`.
    pub fn row(&self) -> Row {
        let j = self.json();
        let mut row = Row::new();
        for field in [
            "Container",
            "ID",
            "Name",
            "CPUPerc",
            "MemUsage",
            "MemPerc",
            "NetIO",
            "BlockIO",
            "PIDs",
        ] {
            row = row.text(field, j[field].as_str().unwrap_or_default());
        }
        row.json("Raw", &j["Raw"])
    }
}

/// Binary units with four significant digits, as docker's `units.BytesSize`:
/// `0B`, `1.465MiB`, `100MiB`, `7.772GiB`.
pub fn bytes_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1024.0 && unit < UNITS.len() - 1 {
        size /= 1024.0;
        unit += 1;
    }
    let int_digits = if size < 1.0 {
        1
    } else {
        (size.log10().floor() as i32 + 1).max(1)
    };
    let decimals = (4 - int_digits).max(0) as usize;
    let mut text = format!("{size:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

/// Whether a `monitor` verb's `--format` asks for JSON; anything but table/json is
/// refused (those are this program's own verbs: docker's templates are for `stats`).
pub fn wants_json(format: Option<&str>) -> anyhow::Result<bool> {
    match format {
        None | Some("table") => Ok(false),
        Some("json") => Ok(true),
        Some(other) => anyhow::bail!("unsupported format {other:?}: use \"table\" or \"json\""),
    }
}

/// The containers `queries` name (all running ones when empty).
fn select(global: &GlobalOptions, queries: &[String]) -> anyhow::Result<Vec<RunningContainer>> {
    let all = containers::running(global)?;
    if queries.is_empty() {
        return Ok(all);
    }
    queries
        .iter()
        .map(|q| containers::resolve_in(&all, q))
        .collect()
}

/// Renders one frame through `--format`.
fn frame(tracked: &[Tracked], format: &ListingFormat) -> anyhow::Result<String> {
    let rows: Vec<Row> = tracked.iter().map(Tracked::row).collect();
    Ok(format.render(&rows)?)
}

/// `stats`.
pub fn stats(global: &GlobalOptions, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let format = match ListingFormat::new(STATS, args.format.as_deref()) {
        Ok(format) => format,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let engine = super::engine(global)?;
    let explicit = !args.containers.is_empty();
    let mut tracked: Vec<Tracked> = Vec::new();
    for c in select(global, &args.containers)? {
        match Tracked::new(&engine, c) {
            Ok(t) => tracked.push(t),
            // Named explicitly: its failure is the user's answer.
            Err(e) if explicit => return Err(e),
            Err(_) => {}
        }
    }
    std::thread::sleep(INTERVAL);
    let interactive = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout().lock();
    loop {
        // A container that exited since is dropped (docker leaves it at zeros).
        tracked.retain_mut(|t| t.resample().is_ok());
        let text = match frame(&tracked, &format) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        if args.no_stream {
            stdout.write_all(text.as_bytes())?;
            return Ok(ExitCode::SUCCESS);
        }
        if interactive {
            // Clear the screen and go home, then draw: refresh in place.
            stdout.write_all(b"\x1b[2J\x1b[H")?;
        }
        stdout.write_all(text.as_bytes())?;
        stdout.flush()?;
        if explicit && tracked.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        if !explicit {
            // Show containers started since the last frame.
            let known: HashMap<String, ()> = tracked
                .iter()
                .map(|t| (t.container.id.clone(), ()))
                .collect();
            for c in containers::running(global)? {
                if !known.contains_key(&c.id)
                    && let Ok(t) = Tracked::new(&engine, c)
                {
                    tracked.push(t);
                }
            }
            tracked.sort_by(|a, b| {
                (a.container.name.as_str(), a.container.id.as_str())
                    .cmp(&(b.container.name.as_str(), b.container.id.as_str()))
            });
        }
        std::thread::sleep(INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_size_follows_docker() {
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(100 * 1024 * 1024), "100MiB");
        assert_eq!(bytes_size(1_536_000), "1.465MiB");
        assert_eq!(bytes_size(512), "512B");
        assert_eq!(bytes_size(8_345_000_000), "7.772GiB");
    }
}
