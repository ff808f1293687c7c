//! `monitor`: the host, a process, a container and the gaps between them,
//! through `basic-monitor`; `monitor serve` exposes them to Prometheus.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use basic_engine::Engine;
use basic_monitor::prometheus::Server;
use basic_monitor::{
    ContainerSampler, ContainerSnapshot, CorrelationView, GapView, HostRates, HostSampler,
    HostStats, ProcessSampler, Snapshot,
};
use serde_json::{Value, json};

use super::containers::{self, RunningContainer};
use super::format::{human_size, table};
use super::stats::{self, INTERVAL, Tracked, bytes_size, wants_json};
use super::template::ListingFormat;
use crate::cli::{
    GlobalOptions, MonitorCommand, MonitorContainerArgs, MonitorFormatArgs, MonitorProcessArgs,
    MonitorServeArgs,
};

/// `monitor ...`.
pub fn monitor(global: &GlobalOptions, command: MonitorCommand) -> anyhow::Result<ExitCode> {
    match command {
        MonitorCommand::Host(args) => host(global, &args),
        MonitorCommand::Process(args) => process(&args),
        MonitorCommand::Container(args) => container(global, &args),
        MonitorCommand::Gap(args) => gap(global, &args),
        MonitorCommand::Correlation(args) => correlation(global, &args),
        MonitorCommand::All(args) => all(global, &args),
        MonitorCommand::Serve(args) => serve(global, &args),
    }
}

fn print_json(value: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}%"))
}

fn per_second(v: Option<f64>) -> String {
    v.map_or_else(
        || "-".to_string(),
        |v| format!("{}/s", human_size(v as u64)),
    )
}

fn key_values(rows: Vec<(&str, String)>) -> String {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|(k, v)| vec![k.to_string(), v])
        .collect();
    table(&["METRIC", "VALUE"], &rows)
}

fn host_sampler(global: &GlobalOptions) -> HostSampler {
    let sampler = HostSampler::new("/proc", "/sys");
    if global.root.exists() {
        sampler.with_disk(&global.root)
    } else {
        sampler
    }
}

/// Two host samples, [`INTERVAL`] apart.
fn sample_host(global: &GlobalOptions) -> anyhow::Result<(HostStats, HostRates)> {
    let mut sampler = host_sampler(global);
    let a = sampler.sample().context("sampling the host")?;
    std::thread::sleep(INTERVAL);
    let b = sampler.sample().context("sampling the host")?;
    let rates = basic_monitor::host_rates(&a, &b);
    Ok((b, rates))
}

fn host_text(h: &HostStats, r: &HostRates) -> String {
    let mut rows = vec![
        ("CPUs", h.cpus.to_string()),
        ("CPU %", percent(r.cpu_percent)),
        (
            "Load average",
            format!("{:.2} {:.2} {:.2}", h.load.one, h.load.five, h.load.fifteen),
        ),
        (
            "Tasks running / total",
            format!("{} / {}", h.load.running, h.load.total),
        ),
        ("Memory total", bytes_size(h.memory.total_bytes)),
        ("Memory available", bytes_size(h.memory.available_bytes)),
        (
            "Swap used / total",
            format!(
                "{} / {}",
                bytes_size(
                    h.memory
                        .swap_total_bytes
                        .saturating_sub(h.memory.swap_free_bytes)
                ),
                bytes_size(h.memory.swap_total_bytes)
            ),
        ),
        ("Uptime", format!("{:.0}s", h.uptime_seconds)),
        ("Network rx", per_second(r.network_rx_bytes_per_second)),
        ("Network tx", per_second(r.network_tx_bytes_per_second)),
    ];
    if let Some(d) = &h.disk {
        rows.push((
            "Store disk used / total",
            format!(
                "{} / {} ({})",
                human_size(d.used_bytes),
                human_size(d.total_bytes),
                d.path.display()
            ),
        ));
    }
    key_values(rows)
}

fn host(global: &GlobalOptions, args: &MonitorFormatArgs) -> anyhow::Result<ExitCode> {
    let json = wants_json(args.format.as_deref())?;
    let (h, r) = sample_host(global)?;
    if json {
        return print_json(&json!({ "stats": h, "rates": r }));
    }
    print!("HOST\n{}", host_text(&h, &r));
    Ok(ExitCode::SUCCESS)
}

fn process(args: &MonitorProcessArgs) -> anyhow::Result<ExitCode> {
    let json = wants_json(args.format.as_deref())?;
    let mut sampler = ProcessSampler::new("/proc");
    let sample = |s: &mut ProcessSampler| {
        s.sample(args.pid)
            .with_context(|| format!("sampling process {}", args.pid))
    };
    let a = sample(&mut sampler)?;
    std::thread::sleep(INTERVAL);
    let p = sample(&mut sampler)?;
    let r = basic_monitor::process_rates(&a, &p);
    if json {
        return print_json(&json!({ "sample": p, "rates": r }));
    }
    let ns = p
        .namespaces
        .entries()
        .iter()
        .map(|(n, v)| format!("{n}:{}", opt(*v)))
        .collect::<Vec<_>>()
        .join(" ");
    let rows = vec![
        ("PID", p.pid.to_string()),
        (
            "PID in its namespaces",
            p.ns_pids
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("PPID", p.ppid.to_string()),
        ("Command", p.comm.clone()),
        ("State", p.state.to_string()),
        ("UID / GID", format!("{} / {}", p.uid, p.gid)),
        ("CPU %", percent(r.cpu_percent)),
        (
            "CPU time user / system",
            format!(
                "{:.2}s / {:.2}s",
                p.utime_ns as f64 / 1e9,
                p.stime_ns as f64 / 1e9
            ),
        ),
        ("RSS", bytes_size(p.rss_bytes)),
        ("RSS peak", bytes_size(p.rss_peak_bytes)),
        ("Virtual memory", bytes_size(p.vsize_bytes)),
        ("Threads", p.threads.to_string()),
        ("Open fds", opt(p.fd_count)),
        (
            "Context switches vol / invol",
            format!(
                "{} / {}",
                p.voluntary_ctxt_switches, p.nonvoluntary_ctxt_switches
            ),
        ),
        ("Read", per_second(r.read_bytes_per_second)),
        ("Write", per_second(r.write_bytes_per_second)),
        (
            "Cgroup",
            opt(p.cgroup_path(Some("memory")).or(p.cgroup_path(None))),
        ),
        ("Namespaces", ns),
    ];
    print!("PROCESS {}\n{}", p.pid, key_values(rows));
    Ok(ExitCode::SUCCESS)
}

fn container_json(t: &Tracked, cgroup: &str) -> Value {
    json!({
        "id": t.container.id,
        "name": t.container.name,
        "image": t.container.image,
        "pid": t.container.pid,
        "cgroup": cgroup,
        "stats": t.stats(),
        "rates": t.rates(),
    })
}

fn container_text(t: &Tracked) -> String {
    let s = t.stats();
    let r = t.rates();
    let mut rows = vec![
        ("ID", t.container.id.clone()),
        ("Name", t.container.display_name().to_string()),
        (
            "Image",
            if t.container.image.is_empty() {
                "-".to_string()
            } else {
                t.container.image.clone()
            },
        ),
        ("Init PID (host)", t.container.pid.to_string()),
        ("CPU %", percent(r.cpu_percent)),
        ("Throttled periods %", percent(r.throttled_percent)),
    ];
    if let Some(cpu) = &s.cpu {
        rows.push(("CPU usage", format!("{:.3}s", cpu.usage_ns as f64 / 1e9)));
        if let (Some(q), Some(p)) = (cpu.quota_us, cpu.period_us) {
            rows.push(("CPU quota / period", format!("{q}us / {p}us")));
        }
    }
    if let Some(m) = &s.memory {
        rows.push(("Memory usage", bytes_size(m.usage_bytes)));
        rows.push(("Memory working set", bytes_size(m.working_set_bytes)));
        rows.push(("Memory limit", opt(m.limit_bytes.map(bytes_size))));
        rows.push(("Memory %", percent(r.memory_percent)));
        rows.push((
            "Memory RSS / cache",
            format!(
                "{} / {}",
                bytes_size(m.rss_bytes),
                bytes_size(m.cache_bytes)
            ),
        ));
        rows.push(("OOM kills", opt(m.oom_kills)));
    }
    if let Some(p) = &s.pids {
        rows.push(("PIDs / limit", format!("{} / {}", p.current, opt(p.limit))));
    }
    if let Some(b) = &s.blkio {
        rows.push((
            "Block read / write",
            format!(
                "{} / {}",
                human_size(b.read_bytes),
                human_size(b.write_bytes)
            ),
        ));
    }
    if let Some(n) = &s.network {
        let n = n.total();
        rows.push((
            "Network rx / tx",
            format!("{} / {}", human_size(n.rx_bytes), human_size(n.tx_bytes)),
        ));
        rows.push(("Network rx rate", per_second(r.network_rx_bytes_per_second)));
        rows.push(("Network tx rate", per_second(r.network_tx_bytes_per_second)));
    }
    key_values(rows)
}

fn container(global: &GlobalOptions, args: &MonitorContainerArgs) -> anyhow::Result<ExitCode> {
    let json = wants_json(args.format.as_deref())?;
    let c = containers::resolve(global, &args.container)?;
    let engine = super::engine(global)?;
    let mut t = Tracked::new(&engine, c)?;
    std::thread::sleep(INTERVAL);
    t.resample()?;
    let cgroup = cgroup_of(&engine, &t.container)?;
    if json {
        return print_json(&container_json(&t, &cgroup));
    }
    let source = match cgroup.is_empty() {
        true => "no cgroup of its own: its processes, from /proc".to_string(),
        false => format!("cgroup {cgroup}"),
    };
    print!(
        "CONTAINER {} ({source})\n{}",
        t.container.short_id(),
        container_text(&t)
    );
    Ok(ExitCode::SUCCESS)
}

/// The container's cgroup sampler, or its process tree's when it has no cgroup of its own
/// (the engine decides).
fn sampler_for(engine: &Engine, c: &RunningContainer) -> anyhow::Result<ContainerSampler> {
    engine
        .container_sampler(&c.id)
        .with_context(|| format!("finding the cgroup of container {}", c.short_id()))
}

/// The container's cgroup path; empty for a container without a cgroup of its own.
fn cgroup_of(engine: &Engine, c: &RunningContainer) -> anyhow::Result<String> {
    Ok(sampler_for(engine, c)?.cgroup_path().to_string())
}

fn gap(global: &GlobalOptions, args: &MonitorContainerArgs) -> anyhow::Result<ExitCode> {
    let json = wants_json(args.format.as_deref())?;
    let c = containers::resolve(global, &args.container)?;
    let mut sampler = sampler_for(&super::engine(global)?, &c)?;
    let view = GapView::collect(&c.id, Path::new("/proc"), Path::new("/sys"), &mut sampler)
        .with_context(|| format!("collecting the gap view of container {}", c.short_id()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{view}");
    }
    Ok(ExitCode::SUCCESS)
}

fn correlation(global: &GlobalOptions, args: &MonitorContainerArgs) -> anyhow::Result<ExitCode> {
    let json = wants_json(args.format.as_deref())?;
    let c = containers::resolve(global, &args.container)?;
    let mut sampler = sampler_for(&super::engine(global)?, &c)?;
    let view = CorrelationView::collect(&c.correlation_input(), Path::new("/proc"), &mut sampler)
        .with_context(|| {
        format!(
            "collecting the correlation view of container {}",
            c.short_id()
        )
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print!("{view}");
    }
    Ok(ExitCode::SUCCESS)
}

fn all(global: &GlobalOptions, args: &MonitorFormatArgs) -> anyhow::Result<ExitCode> {
    let json = wants_json(args.format.as_deref())?;
    let mut host = host_sampler(global);
    let h0 = host.sample().context("sampling the host")?;
    // A container that exits meanwhile is left out.
    let engine = super::engine(global)?;
    let mut tracked: Vec<Tracked> = containers::running(global)?
        .into_iter()
        .filter_map(|c| Tracked::new(&engine, c).ok())
        .collect();
    std::thread::sleep(INTERVAL);
    let h = host.sample().context("sampling the host")?;
    tracked.retain_mut(|t| t.resample().is_ok());
    let hr = basic_monitor::host_rates(&h0, &h);
    if json {
        let containers: Vec<Value> = tracked
            .iter()
            .map(|t| {
                let cgroup = cgroup_of(&engine, &t.container).unwrap_or_default();
                container_json(t, &cgroup)
            })
            .collect();
        return print_json(&json!({
            "host": { "stats": h, "rates": hr },
            "containers": containers,
        }));
    }
    let rows: Vec<_> = tracked.iter().map(Tracked::row).collect();
    let containers = ListingFormat::new(stats::STATS, None)?.render(&rows)?;
    print!("HOST\n{}\nCONTAINERS\n{containers}", host_text(&h, &hr));
    Ok(ExitCode::SUCCESS)
}

/// A Prometheus snapshot: the host and every running container.
fn snapshot(global: &GlobalOptions, host: &mut HostSampler) -> anyhow::Result<Snapshot> {
    let host = host.sample().context("sampling the host")?;
    let engine = super::engine(global)?;
    let mut out = Vec::new();
    for c in containers::running(global)? {
        // A container that exits between listing and sampling is not an error.
        let Ok(mut sampler) = sampler_for(&engine, &c) else {
            continue;
        };
        let Ok(stats) = sampler.sample() else {
            continue;
        };
        out.push(ContainerSnapshot {
            id: c.id,
            name: c.name,
            image: c.image,
            stats,
        });
    }
    Ok(Snapshot {
        host: Some(host),
        containers: out,
    })
}

fn serve(global: &GlobalOptions, args: &MonitorServeArgs) -> anyhow::Result<ExitCode> {
    let server = Server::bind(args.listen.as_str())?;
    let addr = server.local_addr().context("reading the bound address")?;
    eprintln!("Serving Prometheus metrics on http://{addr}/metrics");
    let mut host = host_sampler(global);
    server.run(|| snapshot(global, &mut host).map_err(|e| format!("{e:#}")))?;
    Ok(ExitCode::SUCCESS)
}
