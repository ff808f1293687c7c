//! A Kubernetes node's view of basic-runtime: Debian's containerd (1.6) with its CRI plugin,
//! `basic-runtime` configured as the `basic` runtime handler (a RuntimeClass; see
//! docs/kubernetes.md), driven through the CRI gRPC API as the kubelet drives it. The pod
//! sandbox image is pushed to the harness registry by the test, the app image is the harness's
//! busybox fixture, and pod networking goes through Debian's CNI plugins (bridge and
//! host-local) with a bridge and a subnet of the test's own.
//!
//! Everything the node needs lives in one tempdir: containerd's root, state, socket, the
//! runtime's state root, the CNI configuration and IPAM leases, the pod's logs. At the end
//! nothing is left: containerd and its shims have exited, no mount under the tempdir remains,
//! the pod's veth and the test's bridge are gone, and so are the pod's cgroups.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use basic_test_support::bounded;
use k8s_cri::v1 as cri;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use tonic::transport::Channel;

/// The runtime handler name: what a RuntimeClass's `handler` says.
const HANDLER: &str = "basic";
/// Where libcni caches the results of CNI ADDs (fixed in containerd 1.6).
const CNI_RESULTS: &str = "/var/lib/cni/results";
/// How long one CRI call may take (a pull of the busybox fixture is the slowest).
const CALL_LIMIT: Duration = Duration::from_secs(60);

/// The network a CNI configuration of this test names: a bridge, its subnet, its name.
struct PodNetwork {
    name: String,
    bridge: String,
    /// `10.219.N.0/24`, with `prefix` = `10.219.N.`.
    subnet: String,
    prefix: String,
}

impl PodNetwork {
    /// A bridge named after this process and a /24 in 10.219.0.0/16 that no route on this
    /// machine covers yet (other tests of the project use 10.213–10.215 and 10.231).
    fn choose() -> PodNetwork {
        let routes = bounded::output_within(
            Command::new("ip").args(["-4", "route", "show", "table", "all"]),
            Duration::from_secs(10),
            "ip route",
        );
        let routes = String::from_utf8_lossy(&routes.stdout).into_owned();
        let pid = std::process::id();
        let n = (0..250)
            .map(|i| (pid + i) % 250 + 1)
            .find(|n| !routes.contains(&format!("10.219.{n}.")))
            .expect("a free /24 in 10.219.0.0/16");
        PodNetwork {
            name: format!("basic-cri-{pid}"),
            // At most 15 bytes, as an interface name must be.
            bridge: format!("bcri{pid}"),
            subnet: format!("10.219.{n}.0/24"),
            prefix: format!("10.219.{n}."),
        }
    }

    fn conflist(&self, ipam_dir: &Path) -> String {
        serde_json::json!({
            "cniVersion": "0.4.0",
            "name": self.name,
            "plugins": [{
                "type": "bridge",
                "bridge": self.bridge,
                // The bridge gets the gateway address, so the node reaches its pods, as a
                // kubelet's probes do. No masquerade: nothing written to the host's iptables.
                "isGateway": true,
                "ipMasq": false,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": self.subnet}]],
                    "dataDir": ipam_dir,
                },
            }],
        })
        .to_string()
    }

    /// Names of the interfaces enslaved to our bridge (the pods' host-side veths).
    fn ports(&self) -> Vec<String> {
        let out = bounded::output_within(
            Command::new("ip").args(["-o", "link", "show", "master", &self.bridge]),
            Duration::from_secs(10),
            "ip link show master",
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|name| name.trim().split('@').next().unwrap_or("").to_string())
            .collect()
    }

    /// libcni's cached results of this network (it has no cache-dir setting in containerd
    /// 1.6), with the sandbox id each names: `<network>-<sandbox id>-<ifname>`.
    fn cached_results(&self) -> Vec<(PathBuf, String)> {
        let prefix = format!("{}-", self.name);
        std::fs::read_dir(CNI_RESULTS)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let rest = name.strip_prefix(&prefix)?;
                        let sandbox = rest.split('-').next()?.to_string();
                        Some((e.path(), sandbox))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn bridge_exists(&self) -> bool {
        Path::new("/sys/class/net").join(&self.bridge).exists()
    }

    /// Deletes the bridge the CNI plugin made for this test (only ours, by its name).
    fn remove_bridge(&self) {
        if self.bridge_exists() {
            let _ = bounded::output_within(
                Command::new("ip").args(["link", "delete", &self.bridge, "type", "bridge"]),
                Duration::from_secs(10),
                "ip link delete",
            );
        }
    }
}

/// A private containerd with the CRI plugin and the `basic` handler.
struct Node {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    network: PodNetwork,
    /// Kubelet-style cgroup parent of the pod, e.g. `/basic-cri-1234`.
    cgroup_parent: String,
}

impl Node {
    fn path(&self, rest: &str) -> PathBuf {
        self.dir.path().join(rest)
    }

    fn socket(&self) -> PathBuf {
        self.path("containerd.sock")
    }

    /// basic-runtime's state root as the shim uses it: the handler's `Root` option plus
    /// the containerd namespace the CRI plugin works in.
    fn runtime_root(&self) -> PathBuf {
        self.path("runtime/k8s.io")
    }

    fn start(sandbox_image: &str, registry: &str) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("basic-runtime-cri")
            .tempdir()
            .unwrap();
        let network = PodNetwork::choose();
        let mut node = Node {
            dir,
            daemon: None,
            cgroup_parent: format!("/basic-cri-{}", std::process::id()),
            network,
        };
        let d = node.dir.path();
        for sub in ["net.d", "ipam", "pod-logs/app", "runtime", "opt"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        std::fs::write(
            d.join("net.d/10-basic-cri.conflist"),
            node.network.conflist(&d.join("ipam")),
        )
        .unwrap();
        // The registry speaks plain HTTP: a hosts.toml for it, as a node's admin would write.
        let hosts = d.join("certs.d").join(registry);
        std::fs::create_dir_all(&hosts).unwrap();
        std::fs::write(
            hosts.join("hosts.toml"),
            format!(
                "server = \"http://{registry}\"\n\n[host.\"http://{registry}\"]\n  \
                 capabilities = [\"pull\", \"resolve\"]\n"
            ),
        )
        .unwrap();
        let config = node.config(sandbox_image);
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("/usr/bin/containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting /usr/bin/containerd");
        node.daemon = Some(daemon);
        node
    }

    /// containerd's configuration: docs/kubernetes.md's handler, with every path in the
    /// tempdir so that nothing of the host's own containerd is touched.
    fn config(&self, sandbox_image: &str) -> String {
        let d = self.dir.path().display();
        format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"

[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The pods' network namespaces are bind-mounted under the state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  # This machine's bounding set lacks CAP_SYS_RESOURCE: no runtime (runc neither) can lower
  # an oom_score_adj below containerd's own, as the -998 of a pod sandbox asks. Clamp it.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    # The node's default runtime stays runc: only pods of the RuntimeClass get basic-runtime.
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}.options]
        BinaryName = "{bin}"
        Root = "{d}/runtime"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/net.d"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d}/certs.d"
"#,
            bin = common::BIN,
        )
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("containerd.log")).unwrap_or_default()
    }

    /// `basic-runtime --root <the shim's root> state <id>`, as JSON, or `None` when the
    /// runtime does not know the container.
    fn runtime_state(&self, id: &str) -> Option<serde_json::Value> {
        let out = common::runtime(&self.runtime_root(), &["state", id]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Containers basic-runtime still holds state for under the shim's root.
    fn runtime_containers(&self) -> Vec<String> {
        std::fs::read_dir(self.runtime_root())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Mount points under the tempdir (overlay roots, the sandbox's /dev/shm, netns files).
    fn mounts(&self) -> Vec<String> {
        let prefix = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_string)
            .collect()
    }

    /// Processes whose command line names the tempdir: containerd and its shims.
    fn processes(&self) -> Vec<(i32, String)> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        let mine = self.daemon.as_ref().map(|c| c.id() as i32);
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| Some(*pid) != mine)
            .filter_map(|pid| {
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                cmdline.contains(&needle).then_some((pid, cmdline))
            })
            .collect()
    }

    /// The pod's cgroup directories left in any hierarchy.
    fn cgroups(&self) -> Vec<PathBuf> {
        std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .flatten()
            .map(|e| e.path().join(self.cgroup_parent.trim_start_matches('/')))
            .filter(|p| p.is_dir())
            .collect()
    }

    /// Stops containerd: SIGTERM, then SIGKILL if it has not exited within 10 s.
    fn stop_daemon(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let pid = nix::unistd::Pid::from_raw(daemon.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

impl Drop for Node {
    /// What a failed run may have left, removed (only what this test made): containers
    /// through basic-runtime itself, the shims by pid, mounts under the tempdir, the bridge,
    /// the pod's cgroups.
    fn drop(&mut self) {
        self.stop_daemon();
        if std::thread::panicking() {
            eprintln!("containerd's log:\n{}", self.log());
        }
        for id in self.runtime_containers() {
            let _ = common::runtime(&self.runtime_root(), &["delete", "--force", &id]);
        }
        for (pid, _) in self.processes() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Processes left in the pod's cgroups (a runtime that failed to clean up): by pid.
        let mut left = Vec::new();
        for parent in self.cgroups() {
            for child in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
                let procs = std::fs::read_to_string(child.path().join("cgroup.procs"));
                left.extend(
                    procs
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.parse::<i32>().ok()),
                );
            }
        }
        for pid in &left {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while left
            .iter()
            .any(|p| Path::new(&format!("/proc/{p}")).exists())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut mounts = self.mounts();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        self.network.remove_bridge();
        // libcni's cache of what the CNI ADDs returned (no DEL ran for them): our network's
        // entries, and the loopback entries of the same sandboxes.
        for (path, sandbox) in self.network.cached_results() {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_file(
                Path::new(CNI_RESULTS).join(format!("cni-loopback-{sandbox}-lo")),
            );
        }
        let mut cgroups = self.cgroups();
        // Children (the containers' own cgroups) before the parent.
        for parent in &cgroups {
            if let Ok(children) = std::fs::read_dir(parent) {
                for child in children.flatten().filter(|c| c.path().is_dir()) {
                    let _ = std::fs::remove_dir(child.path());
                }
            }
        }
        for parent in cgroups.drain(..) {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// The kubelet's two CRI clients on one channel over containerd's socket.
struct Kubelet {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    rt: tokio::runtime::Runtime,
}

impl Kubelet {
    fn connect(socket: &Path) -> Result<Kubelet, tonic::transport::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let socket = socket.to_path_buf();
        let channel = rt.block_on(async {
            // The URI is required by tonic but unused: every connection is the unix socket.
            tonic::transport::Endpoint::from_static("http://[::1]:50051")
                .connect_timeout(Duration::from_secs(5))
                .timeout(CALL_LIMIT)
                .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
                    let socket = socket.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(socket).await?;
                        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
                    }
                }))
                .await
        })?;
        Ok(Kubelet {
            runtime: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            rt,
        })
    }

    /// Runs one call on the runtime service and insists on success.
    #[track_caller]
    fn run<T, F>(&mut self, what: &str, call: impl FnOnce(RuntimeServiceClient<Channel>) -> F) -> T
    where
        F: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.runtime.clone();
        match self.rt.block_on(call(client)) {
            Ok(response) => response.into_inner(),
            Err(status) => panic!("CRI {what} failed: {status}"),
        }
    }

    #[track_caller]
    fn container_status(&mut self, id: &str) -> cri::ContainerStatusResponse {
        let request = cri::ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        };
        self.run("ContainerStatus", |mut c| async move {
            c.container_status(request).await
        })
    }
}

/// The `info` entry of a verbose status: containerd's JSON about the task.
fn info(map: &std::collections::HashMap<String, String>) -> serde_json::Value {
    serde_json::from_str(map.get("info").expect("a verbose status has info")).unwrap()
}

#[test]
fn a_pod_runs_through_containerds_cri_on_basic_runtime() {
    if !common::ready()
        || !basic_test_support::prerequisite(
            Path::new("/usr/bin/containerd").exists()
                && Path::new("/usr/bin/containerd-shim-runc-v2").exists(),
            "containerd with its runc v2 shim (scripts/install-deps.sh)",
        )
        || !basic_test_support::prerequisite(
            ["bridge", "host-local", "loopback"]
                .iter()
                .all(|p| Path::new("/usr/lib/cni").join(p).exists()),
            "Debian's CNI plugins in /usr/lib/cni (containernetworking-plugins)",
        )
    {
        return;
    }
    let Some(harness) = basic_test_support::harness() else {
        return;
    };
    // A pause-like sandbox image: busybox whose entrypoint sleeps for ever, holding the
    // pod's namespaces as the pause container does.
    let sandbox_image = basic_test_support::image::ImageBuilder::busybox()
        .config(
            "Entrypoint",
            serde_json::json!(["/bin/sleep", "2147483647"]),
        )
        .push_direct(&harness.open, "cri/pause");
    let app_image = harness.reference("busybox_latest");

    let mut node = Node::start(&sandbox_image, &harness.open);
    let started = Instant::now();
    let mut kubelet = loop {
        if node.socket().exists()
            && let Ok(k) = Kubelet::connect(&node.socket())
        {
            break k;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "containerd did not come up: {}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    let version = kubelet.run("Version", |mut c| async move {
        c.version(cri::VersionRequest::default()).await
    });
    assert_eq!(version.runtime_name, "containerd");
    assert_eq!(version.runtime_api_version, "v1");

    // As the kubelet does, wait for the runtime to say its network is ready (the CNI
    // configuration is loaded) before running a pod.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = kubelet.run("Status", |mut c| async move {
            c.status(cri::StatusRequest { verbose: false }).await
        });
        let conditions = status.status.unwrap_or_default().conditions;
        if conditions.iter().all(|c| c.status) && conditions.len() >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the CRI runtime is not ready: {conditions:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // --- RunPodSandbox with the `basic` runtime handler.
    let pod_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "basic-pod".into(),
            uid: format!("uid-{}", std::process::id()),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "basic-pod".into(),
        log_directory: node.path("pod-logs").display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: node.cgroup_parent.clone(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Pod as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let request = cri::RunPodSandboxRequest {
        config: Some(pod_config.clone()),
        runtime_handler: HANDLER.into(),
    };
    let pod = kubelet
        .run("RunPodSandbox", |mut c| async move {
            c.run_pod_sandbox(request).await
        })
        .pod_sandbox_id;

    let request = cri::PodSandboxStatusRequest {
        pod_sandbox_id: pod.clone(),
        verbose: true,
    };
    let status = kubelet.run("PodSandboxStatus", |mut c| async move {
        c.pod_sandbox_status(request).await
    });
    let sandbox = status.status.clone().unwrap();
    assert_eq!(sandbox.state, cri::PodSandboxState::SandboxReady as i32);
    let pod_ip = sandbox.network.unwrap().ip;
    assert!(
        pod_ip.starts_with(&node.network.prefix),
        "the pod's IP {pod_ip} is not from the CNI range {}",
        node.network.subnet
    );
    let sandbox_info = info(&status.info);
    assert_eq!(sandbox_info["runtimeHandler"], HANDLER, "{sandbox_info}");
    // The pause container is one of basic-runtime's, running, with the pid containerd has.
    let state = node
        .runtime_state(&pod)
        .expect("basic-runtime holds the sandbox container");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(
        state["pid"], sandbox_info["pid"],
        "{state} vs {sandbox_info}"
    );
    // One veth of the pod on our bridge, which has the gateway address.
    assert_eq!(node.network.ports().len(), 1, "{:?}", node.network.ports());

    // --- PullImage, CreateContainer, StartContainer.
    let request = cri::PullImageRequest {
        image: Some(cri::ImageSpec {
            image: app_image.clone(),
            ..Default::default()
        }),
        sandbox_config: Some(pod_config.clone()),
        ..Default::default()
    };
    let image_ref = {
        let client = kubelet.images.clone();
        kubelet
            .rt
            .block_on(async move { client.clone().pull_image(request).await })
            .unwrap_or_else(|s| panic!("CRI PullImage of {app_image} failed: {s}"))
            .into_inner()
            .image_ref
    };
    assert!(image_ref.starts_with("sha256:"), "{image_ref}");

    const MEMORY_LIMIT: i64 = 96 << 20;
    let container_config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "app".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image_ref.clone(),
            ..Default::default()
        }),
        // Sleeps in the background so that SIGTERM's trap runs at once; exits 7 on it.
        command: vec!["sh".into(), "-c".into()],
        args: vec![
            "trap 'echo stopping; exit 7' TERM; echo started; \
             while :; do sleep 1 & wait $!; done"
                .into(),
        ],
        log_path: "app/0.log".into(),
        linux: Some(cri::LinuxContainerConfig {
            // What the kubelet sends for `resources.limits.memory: 96Mi` and a small request.
            resources: Some(cri::LinuxContainerResources {
                cpu_period: 100_000,
                cpu_shares: 102,
                memory_limit_in_bytes: MEMORY_LIMIT,
                oom_score_adj: 999,
                ..Default::default()
            }),
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: cri::NamespaceMode::Pod as i32,
                    pid: cri::NamespaceMode::Container as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let request = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(container_config),
        sandbox_config: Some(pod_config.clone()),
    };
    let container = kubelet
        .run("CreateContainer", |mut c| async move {
            c.create_container(request).await
        })
        .container_id;
    let status = kubelet.container_status(&container);
    assert_eq!(
        status.status.unwrap().state,
        cri::ContainerState::ContainerCreated as i32
    );

    let request = cri::StartContainerRequest {
        container_id: container.clone(),
    };
    kubelet.run("StartContainer", |mut c| async move {
        c.start_container(request).await
    });

    // --- ContainerStatus: running, under basic-runtime, with the kubelet's limits.
    let status = kubelet.container_status(&container);
    assert_eq!(
        status.status.as_ref().unwrap().state,
        cri::ContainerState::ContainerRunning as i32,
        "{status:?}"
    );
    let container_info = info(&status.info);
    assert_eq!(container_info["runtimeType"], "io.containerd.runc.v2");
    assert_eq!(
        container_info["runtimeOptions"]["binary_name"],
        common::BIN,
        "{container_info}"
    );
    let pid = container_info["pid"]
        .as_i64()
        .expect("a running task's pid");
    let state = node
        .runtime_state(&container)
        .expect("basic-runtime holds the app container");
    assert_eq!(state["status"], "running", "{state}");
    assert_eq!(state["pid"].as_i64(), Some(pid), "{state}");
    let memory_cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let memory = controllers.split(',').any(|c| c == "memory")
                // cgroup v2: one hierarchy.
                || (controllers.is_empty() && Path::new("/sys/fs/cgroup/cgroup.controllers").exists());
            memory.then(|| path.to_string())
        })
        .expect("the container's memory cgroup");
    assert_eq!(
        memory_cgroup,
        format!("{}/{container}", node.cgroup_parent),
        "the container's cgroup is the kubelet's parent plus its id"
    );
    let limit_file = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        format!("/sys/fs/cgroup{memory_cgroup}/memory.max")
    } else {
        format!("/sys/fs/cgroup/memory{memory_cgroup}/memory.limit_in_bytes")
    };
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        MEMORY_LIMIT.to_string(),
        "{limit_file}"
    );
    assert_eq!(
        std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim(),
        "999"
    );

    // --- ExecSync: output and exit code, in the app container's namespaces: the pod's
    // network (its address on eth0) and hostname, the container's own pid namespace (the
    // sandbox's process is not visible), and only the descriptors the shim gave (no
    // descriptor of the runtime or the shim reaches the container's processes).
    let request = cri::ExecSyncRequest {
        container_id: container.clone(),
        cmd: vec![
            "sh".into(),
            "-c".into(),
            "echo exec-out; echo exec-err >&2; hostname; ip -4 -o addr show eth0; \
             echo fds; ls /proc/$$/fd; echo ps; ps -o args; exit 3"
                .into(),
        ],
        timeout: 20,
    };
    let exec = kubelet.run(
        "ExecSync",
        |mut c| async move { c.exec_sync(request).await },
    );
    assert_eq!(exec.exit_code, 3, "{exec:?}");
    assert_eq!(String::from_utf8_lossy(&exec.stderr), "exec-err\n");
    let stdout = String::from_utf8_lossy(&exec.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[..2], ["exec-out", "basic-pod"], "{stdout}");
    assert!(
        lines[2].contains(&format!("inet {pod_ip}/24")),
        "the container sees the pod's address on eth0: {stdout}"
    );
    let fds_at = lines.iter().position(|l| *l == "fds").unwrap();
    let ps_at = lines.iter().position(|l| *l == "ps").unwrap();
    assert_eq!(lines[fds_at + 1..ps_at], ["0", "1", "2"], "{stdout}");
    let processes = &lines[ps_at + 1..];
    assert!(
        processes.iter().any(|p| p.contains("trap")),
        "the app's own shell is visible: {stdout}"
    );
    assert!(
        !processes.iter().any(|p| p.contains("2147483647")),
        "the sandbox's process is not: {stdout}"
    );
    // The app's init, seen from the node: its three standard descriptors, nothing more.
    let init_fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(init_fds.len(), 3, "{init_fds:?}");

    // An exec probe that outlives its timeout (a hung liveness probe): containerd gives up
    // after a second and kills the exec'd process by the pid basic-runtime reported, so
    // nothing of it is left in the container.
    let request = cri::ExecSyncRequest {
        container_id: container.clone(),
        cmd: vec!["sleep".into(), "31".into()],
        timeout: 1,
    };
    let client = kubelet.runtime.clone();
    let hung = kubelet
        .rt
        .block_on(async move { client.clone().exec_sync(request).await });
    assert_eq!(
        hung.unwrap_err().code(),
        tonic::Code::DeadlineExceeded,
        "a probe past its timeout"
    );
    let request = cri::ExecSyncRequest {
        container_id: container.clone(),
        cmd: vec!["ps".into(), "-o".into(), "args".into()],
        timeout: 10,
    };
    let ps = kubelet.run(
        "ExecSync",
        |mut c| async move { c.exec_sync(request).await },
    );
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(ps.contains("trap"), "{ps}");
    assert!(
        !ps.contains("sleep 31"),
        "the timed-out exec is still there: {ps}"
    );

    // The node reaches the pod at its address over the CNI bridge.
    let ping = bounded::output_within(
        Command::new("/bin/busybox").args(["ping", "-c", "1", "-W", "5", &pod_ip]),
        Duration::from_secs(20),
        "ping the pod",
    );
    assert!(
        ping.status.success(),
        "the pod does not answer at {pod_ip}: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    // --- UpdateContainerResources (in-place resize, the CPU manager): containerd's shim
    // runs `update --resources=-`; a raised memory limit (above the memory+swap limit
    // containerd set equal to it) and new CPU shares land in the running container's cgroup.
    const RAISED: i64 = 160 << 20;
    let request = cri::UpdateContainerResourcesRequest {
        container_id: container.clone(),
        linux: Some(cri::LinuxContainerResources {
            cpu_period: 100_000,
            cpu_shares: 256,
            memory_limit_in_bytes: RAISED,
            oom_score_adj: 999,
            ..Default::default()
        }),
        ..Default::default()
    };
    kubelet.run("UpdateContainerResources", |mut c| async move {
        c.update_container_resources(request).await
    });
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        RAISED.to_string(),
        "{limit_file}"
    );
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let shares = format!("/sys/fs/cgroup/cpu{memory_cgroup}/cpu.shares");
        assert_eq!(std::fs::read_to_string(&shares).unwrap().trim(), "256");
    }
    let status = kubelet.container_status(&container).status.unwrap();
    assert_eq!(status.state, cri::ContainerState::ContainerRunning as i32);

    // --- StopContainer: SIGTERM reaches the app, whose exit code the status reports.
    let request = cri::StopContainerRequest {
        container_id: container.clone(),
        timeout: 10,
    };
    kubelet.run("StopContainer", |mut c| async move {
        c.stop_container(request).await
    });
    let status = kubelet.container_status(&container).status.unwrap();
    assert_eq!(
        status.state,
        cri::ContainerState::ContainerExited as i32,
        "{status:?}"
    );
    assert_eq!(status.exit_code, 7, "{status:?}");
    assert_eq!(status.reason, "Error", "{status:?}");
    // The container's output reached its CRI log (`<time> stdout F <line>`).
    let log = std::fs::read_to_string(node.path("pod-logs/app/0.log")).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3))
        .collect();
    assert_eq!(lines, ["started", "stopping"], "{log}");

    // --- RemoveContainer: gone from containerd and from basic-runtime.
    let request = cri::RemoveContainerRequest {
        container_id: container.clone(),
    };
    kubelet.run("RemoveContainer", |mut c| async move {
        c.remove_container(request).await
    });
    let request = cri::ContainerStatusRequest {
        container_id: container.clone(),
        verbose: false,
    };
    let client = kubelet.runtime.clone();
    let gone = kubelet
        .rt
        .block_on(async move { client.clone().container_status(request).await });
    assert_eq!(
        gone.unwrap_err().code(),
        tonic::Code::NotFound,
        "a removed container has no status"
    );
    assert!(node.runtime_state(&container).is_none());

    // --- StopPodSandbox, RemovePodSandbox.
    let request = cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    };
    kubelet.run("StopPodSandbox", |mut c| async move {
        c.stop_pod_sandbox(request).await
    });
    assert!(
        node.network.ports().is_empty(),
        "the pod's veth is gone once its sandbox stops"
    );
    let request = cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    };
    kubelet.run("RemovePodSandbox", |mut c| async move {
        c.remove_pod_sandbox(request).await
    });
    let request = cri::ListPodSandboxRequest::default();
    let pods = kubelet.run("ListPodSandbox", |mut c| async move {
        c.list_pod_sandbox(request).await
    });
    assert!(pods.items.is_empty(), "{:?}", pods.items);
    assert!(
        node.runtime_containers().is_empty(),
        "basic-runtime state left: {:?}",
        node.runtime_containers()
    );

    // --- Nothing left on the node: containerd stops, its shims are gone, no mount under
    // the tempdir, no cgroup of the pod's containers, no CNI cache entry of our network.
    drop(kubelet);
    node.stop_daemon();
    bounded::until(Duration::from_secs(10), "the shims exit", || {
        node.processes().is_empty()
    });
    assert_eq!(node.mounts(), Vec::<String>::new(), "mounts left");
    for parent in node.cgroups() {
        let children: Vec<_> = std::fs::read_dir(&parent)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.path())
            .collect();
        assert!(children.is_empty(), "container cgroups left: {children:?}");
    }
    let cached = node.network.cached_results();
    assert!(cached.is_empty(), "CNI results cached: {cached:?}");
    // The bridge is the CNI plugin's, made for this test's network: remove it, and with it
    // the route to the subnet.
    assert!(node.network.bridge_exists());
    node.network.remove_bridge();
    assert!(!node.network.bridge_exists());
}
