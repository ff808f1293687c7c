//! What networking adds to a container's start and stop: `attach` (namespace
//! with `lo`, bridge + host-local, portmap when publishing, host rules check,
//! cache, /etc files) and `detach`, timed separately, on a user-defined
//! network and for `--network none`; and the first container on a network,
//! which also makes the bridge and the network's host rules.
//! Needs root and containernetworking-plugins: `sudo cargo bench -p basic-network`.

use std::time::{Duration, Instant};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use basic_network::cni::{Invocation, PluginOutput, PluginRunner, ProcessRunner};
use basic_network::{
    AttachRequest, Cni, CreateOptions, DefaultNetwork, Networks, NetworksConfig, PortSpec,
};
use criterion::{Criterion, criterion_group, criterion_main};

struct Bench {
    networks: Networks,
    network: String,
    root: tempfile::TempDir,
    n: usize,
    runner: TimingRunner,
}

/// Spawns plugins as the engine does and adds up the time each one takes,
/// so the report can say where an attach spends it.
#[derive(Clone, Default)]
struct TimingRunner {
    totals: Arc<Mutex<BTreeMap<String, (Duration, u32)>>>,
}

impl PluginRunner for TimingRunner {
    fn run(&self, invocation: &Invocation) -> std::io::Result<PluginOutput> {
        let start = Instant::now();
        let out = ProcessRunner.run(invocation);
        let command = invocation
            .env
            .iter()
            .find(|(k, _)| k == "CNI_COMMAND")
            .map(|(_, v)| v.clone());
        let plugin = invocation
            .plugin
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let key = format!("{} {plugin}", command.unwrap_or_default());
        let mut totals = self.totals.lock().unwrap();
        let entry = totals.entry(key).or_default();
        entry.0 += start.elapsed();
        entry.1 += 1;
        out
    }
}

impl TimingRunner {
    fn report(&self) {
        eprintln!("mean time per plugin run:");
        for (key, (total, count)) in self.totals.lock().unwrap().iter() {
            eprintln!(
                "  {key:<20} {:>8.1} ms  ({count} runs)",
                total.as_secs_f64() * 1e3 / f64::from(*count)
            );
        }
    }
}

impl Bench {
    fn new() -> Option<Bench> {
        let root_user = nix_euid_is_root();
        if !root_user || !std::path::Path::new("/usr/lib/cni/bridge").exists() {
            eprintln!(
                "skipping: the networking benchmark needs root and containernetworking-plugins"
            );
            return None;
        }
        let root = tempfile::tempdir().unwrap();
        let mut config = NetworksConfig::new(root.path());
        config.netns_dir = "/run/basic-network-bench/netns".into();
        config.default_network = DefaultNetwork {
            name: "bridge".into(),
            bridge: "bnbench0".into(),
            subnet: "10.214.0.0/24".parse().unwrap(),
            gateway: "10.214.0.1".parse().unwrap(),
        };
        let runner = TimingRunner::default();
        let cni = Cni::with_runner(config.plugin_dirs.clone(), Box::new(runner.clone()));
        let networks = Networks::with_cni(config, cni).unwrap();
        let network = format!("bench-{}", std::process::id());
        let opts = CreateOptions {
            name: network.clone(),
            subnet: Some("10.214.1.0/24".parse().unwrap()),
            gateway: None,
            ..Default::default()
        };
        networks.create(&opts).unwrap();
        Some(Bench {
            networks,
            network,
            root,
            n: 0,
            runner,
        })
    }

    fn request(&mut self, networks: &[&str], ports: &[&str]) -> AttachRequest {
        self.n += 1;
        let id = format!("bench-{}-{}", std::process::id(), self.n);
        let mut req = AttachRequest::new(&id);
        req.networks = networks.iter().map(|s| s.to_string()).collect();
        req.ports = ports
            .iter()
            .flat_map(|p| PortSpec::parse(p).unwrap())
            .collect();
        req.etc_dir = Some(self.root.path().join("etc").join(&id));
        req
    }

    /// Times `iters` attaches (and, separately, the detaches that follow each).
    fn cycles(&mut self, iters: u64, networks: &[&str], ports: &[&str]) -> (Duration, Duration) {
        self.cycles_after(iters, networks, ports, || {})
    }

    /// `cycles`, running `before` ahead of each attach (untimed).
    fn cycles_after(
        &mut self,
        iters: u64,
        networks: &[&str],
        ports: &[&str],
        before: impl Fn(),
    ) -> (Duration, Duration) {
        let (mut attach, mut detach) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..iters {
            before();
            let req = self.request(networks, ports);
            let start = Instant::now();
            self.networks.attach(&req).unwrap();
            attach += start.elapsed();
            let start = Instant::now();
            self.networks.detach(&req.container_id).unwrap();
            detach += start.elapsed();
        }
        (attach, detach)
    }
}

impl Bench {
    fn bridge(&self) -> String {
        let info = self.networks.inspect(&self.network).unwrap();
        info.bridge.expect("a bridge network")
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = self.networks.remove(&self.network);
    }
}

fn nix_euid_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(str::to_string)
        })
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

fn bench(c: &mut Criterion) {
    let Some(mut b) = Bench::new() else { return };
    let net = b.network.clone();
    let mut group = c.benchmark_group("network");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("attach bridge network", |bench| {
        bench.iter_custom(|iters| b.cycles(iters, &[&net], &[]).0)
    });
    group.bench_function("detach bridge network", |bench| {
        bench.iter_custom(|iters| b.cycles(iters, &[&net], &[]).1)
    });
    group.bench_function("attach bridge network with -p", |bench| {
        bench.iter_custom(|iters| b.cycles(iters, &[&net], &["127.0.0.1::80"]).0)
    });
    group.bench_function("detach bridge network with -p", |bench| {
        bench.iter_custom(|iters| b.cycles(iters, &[&net], &["127.0.0.1::80"]).1)
    });
    let bridge = b.bridge();
    group.bench_function(
        "attach first container (bridge and host rules made)",
        |bench| {
            bench.iter_custom(|iters| {
                b.cycles_after(iters, &[&net], &[], || {
                    basic_network::delete_bridge(&bridge).unwrap()
                })
                .0
            })
        },
    );
    group.bench_function("attach none (netns + lo)", |bench| {
        bench.iter_custom(|iters| b.cycles(iters, &[], &[]).0)
    });
    group.finish();
    b.runner.report();
}

criterion_group!(benches, bench);
criterion_main!(benches);
