//! [`Networks`]: what an engine calls. Network definitions, attachments of
//! containers (namespace, CNI `ADD`, cached results, `/etc` files) and their
//! teardown, serialized between processes by a lock file.

use std::fs::File;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::attachment::{Attachment, Cache, NetworkAttachment};
use crate::cni::types::{Interface, IpConfig};
use crate::cni::{Cni, CniResult, NetworkConfigList, default_plugin_dirs};
use crate::error::{Error, Result};
use crate::etc_files::{self, DnsOptions, EtcFiles, HostEntry};
use crate::handoff::{self, Handoff};
use crate::host_rules::{self, BridgeRules, Firewall, Iptables};
use crate::netns;
use crate::network::{CniNetwork, Network as _, Sandbox, loopback};
use crate::ports::{PortSpec, assign_host_ports};
use crate::rootless::{PendingAttachment, is_pasta, teardown_pasta};
use crate::store::{self, CreateOptions, DefaultNetwork, Endpoint, NetworkInfo, NetworkStore};

/// Where a [`Networks`] keeps things, and which plugins it runs.
#[derive(Debug, Clone)]
pub struct NetworksConfig {
    /// Conflists, the cache (`cache/`), host-local allocations (`ipam/`), the lock.
    pub dir: PathBuf,
    /// Network namespace files (`/run/basic-docker/netns`), owner-only (`0700`).
    pub netns_dir: PathBuf,
    /// Plugin directories (`CNI_PATH`, else Debian's, Fedora's and upstream's).
    pub plugin_dirs: Vec<PathBuf>,
    /// The default network.
    pub default_network: DefaultNetwork,
    /// How many prepared namespaces to keep per network configuration (see
    /// [`Networks::fill_pool`]); 0, the default, keeps none. Rootless mode keeps none.
    pub pool_size: usize,
    /// Rootless mode: the engine is root only in a user namespace of its own and cannot
    /// make bridges, veths or firewall rules on the host. The default network is then
    /// user-mode networking through pasta (see [`crate::pasta`]); user-defined
    /// networks are refused.
    pub rootless: bool,
}

/// Where an engine keeps namespace files by default.
pub const DEFAULT_NETNS_DIR: &str = "/run/basic-docker/netns";

impl NetworksConfig {
    /// The layout under an engine root: `<root>/networks`, namespaces in [`DEFAULT_NETNS_DIR`].
    pub fn new(engine_root: &Path) -> Self {
        NetworksConfig {
            dir: engine_root.join("networks"),
            netns_dir: PathBuf::from(DEFAULT_NETNS_DIR),
            plugin_dirs: default_plugin_dirs(),
            default_network: DefaultNetwork::default(),
            pool_size: 0,
            rootless: false,
        }
    }
}

/// What to attach a container to, and how it should look to others.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// The container's ID (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`).
    pub container_id: String,
    /// The container's name.
    pub name: Option<String>,
    /// Its hostname (written to `/etc/hostname` and `/etc/hosts`).
    pub hostname: String,
    /// Extra names on user-defined networks (`--network-alias`).
    pub aliases: Vec<String>,
    /// Networks by name or ID, in order (`eth0`, `eth1`, ...). Empty: loopback only (`none`).
    pub networks: Vec<String>,
    /// Ports to publish (through the first network).
    pub ports: Vec<PortSpec>,
    /// An existing namespace to use; `None` creates one in the namespace directory.
    pub netns: Option<PathBuf>,
    /// `--dns`, `--dns-search`, `--dns-option`.
    pub dns: DnsOptions,
    /// Directory for `hosts`, `hostname` and `resolv.conf`, kept current as peers come and go.
    pub etc_dir: Option<PathBuf>,
    /// Detach in the background: [`Networks::detach`] hands the teardown to a
    /// child process and returns at once. For containers nothing will reuse
    /// (`--rm`); whatever depends on the container (its ports, its own
    /// `attach` and `detach`, removing its network) still waits for it.
    pub background_detach: bool,
}

impl AttachRequest {
    /// A request for `container_id` on the default network, hostname = its first 12 characters.
    pub fn new(container_id: &str) -> Self {
        AttachRequest {
            container_id: container_id.to_string(),
            hostname: container_id.chars().take(12).collect(),
            networks: vec![DefaultNetwork::default().name],
            ..AttachRequest::default()
        }
    }
}

/// Networks and attachments of one engine root.
#[derive(Debug, Clone)]
pub struct Networks {
    config: NetworksConfig,
    store: NetworkStore,
    cache: Cache,
    cni: Arc<Cni>,
    firewall: Arc<dyn Firewall>,
}

impl Networks {
    /// Opens (creating directories as needed) the networks of `config`. The directory is
    /// owner-only (`0700`; tightened when an older version made it wider): CNI plugins run
    /// as the engine's user and reach it, nobody else does.
    pub fn open(config: NetworksConfig) -> Result<Self> {
        crate::error::private_dir(&config.dir, crate::error::PRIVATE_DIR)?;
        let store = NetworkStore::new(config.dir.clone(), config.dir.join("ipam"));
        let cache = Cache::new(config.dir.join("cache"));
        let cni = Arc::new(Cni::new(config.plugin_dirs.clone()));
        Ok(Networks {
            config,
            store,
            cache,
            cni,
            firewall: Arc::new(Iptables),
        })
    }

    /// Like [`Networks::open`], running plugins through `cni` (tests record invocations).
    pub fn with_cni(config: NetworksConfig, cni: Cni) -> Result<Self> {
        let mut networks = Networks::open(config)?;
        networks.cni = Arc::new(cni);
        Ok(networks)
    }

    /// The same networks with another host firewall (tests record the rules instead).
    pub fn with_firewall(mut self, firewall: impl Firewall + 'static) -> Self {
        self.firewall = Arc::new(firewall);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &NetworksConfig {
        &self.config
    }

    /// The attachment records.
    pub(crate) fn cache(&self) -> &Cache {
        &self.cache
    }

    /// `network create`.
    pub fn create(&self, opts: &CreateOptions) -> Result<NetworkInfo> {
        if self.config.rootless {
            return Err(Error::Rootless(opts.name.clone()));
        }
        let _lock = self.lock()?;
        let mut reserved = store::host_routes();
        reserved.push(self.config.default_network.subnet);
        let list = self.store.create(opts, &reserved)?;
        Ok(store::info(&list, self.store.path_of(&list.name)))
    }

    /// `network ls`: the default network (created on first use) and every other one.
    pub fn list(&self) -> Result<Vec<NetworkInfo>> {
        self.ensure_default()?;
        let lists = self.store.list()?;
        Ok(lists
            .iter()
            .map(|l| store::info(l, self.store.path_of(&l.name)))
            .collect())
    }

    /// `network inspect`: one network with the containers attached to it.
    pub fn inspect(&self, name_or_id: &str) -> Result<NetworkInfo> {
        let list = self.find(name_or_id)?;
        let mut info = store::info(&list, self.store.path_of(&list.name));
        for att in self.cache.all()? {
            for net in att.networks.iter().filter(|n| n.network == list.name) {
                info.containers.push(Endpoint {
                    id: att.container_id.clone(),
                    name: att.name.clone().unwrap_or_default(),
                    ipv4_address: net.address,
                    mac_address: net.mac.clone(),
                });
            }
        }
        Ok(info)
    }

    /// `network rm`: refused for built-in networks and while containers are attached.
    /// Deletes the conflist, the IPAM state, the bridge device and its isolation rules.
    pub fn remove(&self, name_or_id: &str) -> Result<NetworkInfo> {
        let lock = self.lock()?;
        if self.is_builtin(name_or_id) {
            return Err(Error::Predefined(name_or_id.to_string(), "removed"));
        }
        let list = self.store.find(name_or_id)?;
        // Named by its ID (what `network ls -q` prints): refused all the same.
        if self.is_builtin(&list.name) {
            return Err(Error::Predefined(list.name, "removed"));
        }
        self.drain_pool(Some(&list.name))?;
        let on_it = |cache: &Cache| -> Result<Vec<Attachment>> {
            Ok(cache
                .all()?
                .into_iter()
                .filter(|a| a.networks.iter().any(|n| n.network == list.name))
                .collect())
        };
        let going = || -> Result<Vec<String>> {
            Ok(on_it(&self.cache)?
                .into_iter()
                .map(|a| a.container_id)
                .collect())
        };
        let _lock = self.wait_for_teardowns(lock, going)?;
        let attached: Vec<String> = on_it(&self.cache)?
            .into_iter()
            .map(|a| a.name.unwrap_or(a.container_id))
            .collect();
        if !attached.is_empty() {
            return Err(Error::NetworkInUse {
                network: list.name.clone(),
                containers: attached,
            });
        }
        let info = store::info(&list, self.store.path_of(&list.name));
        self.store.delete(&list.name)?;
        if let Some(bridge) = &info.bridge {
            let _ = std::fs::remove_file(self.host_rules_stamp_file(bridge));
            remove_bridge(self.firewall.as_ref(), bridge)?;
        }
        Ok(info)
    }

    /// Whether `name` is one of the networks every engine has (`bridge`, `host`,
    /// `none`, and the configured default).
    fn is_builtin(&self, name: &str) -> bool {
        store::PREDEFINED.contains(&name) || name == self.config.default_network.name
    }

    /// `network prune`: removes every user-defined network no container is
    /// attached to (with its prepared namespaces); returns their names.
    pub fn prune(&self) -> Result<Vec<String>> {
        let attached: Vec<Attachment> = self.cache.all()?;
        let mut removed = Vec::new();
        for list in self.store.list()? {
            let builtin = self.is_builtin(&list.name);
            let used = attached
                .iter()
                .any(|a| a.networks.iter().any(|n| n.network == list.name));
            if builtin || used {
                continue;
            }
            match self.remove(&list.name) {
                Ok(_) => removed.push(list.name),
                // Attached meanwhile: in use, so not pruned.
                Err(Error::NetworkInUse { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// Creates a network namespace for a container at `<netns dir>/<container id>`.
    pub fn create_netns(&self, container_id: &str) -> Result<PathBuf> {
        check_container_id(container_id)?;
        netns::create(&self.config.netns_dir, container_id)
    }

    /// Attaches a container: creates its namespace with `lo` up (or brings `lo`
    /// up in the one given, through the `loopback` plugin), runs `ADD` for each
    /// network (ports published through the first; `portmap` runs only then),
    /// makes sure each network's host rules are in place, caches the results,
    /// writes its `/etc` files and refreshes its peers'. On failure everything
    /// done so far is undone.
    pub fn attach(&self, req: &AttachRequest) -> Result<Attachment> {
        self.attach_pending(req)?.finish()
    }

    /// [`Networks::attach`] in two steps: the namespace exists and the container's
    /// record and `/etc` files are written when this returns, so the container can be
    /// created on it; [`PendingAttachment::finish`] waits for what configures the
    /// namespace and may take longer, before the container's command runs. Only
    /// rootless mode has such a step (pasta's start, tens of milliseconds); elsewhere
    /// the attachment is finished here.
    pub fn attach_pending(&self, req: &AttachRequest) -> Result<PendingAttachment> {
        check_container_id(&req.container_id)?;
        let _lock = self.clear_the_way(self.lock()?, req)?;
        if self.cache.load(&req.container_id)?.is_some() {
            return Err(Error::AlreadyAttached(req.container_id.clone()));
        }
        if self.config.rootless {
            return self.attach_pasta(req);
        }
        self.attach_cni(req).map(PendingAttachment::done)
    }

    /// [`Networks::attach`] through the CNI plugins; the caller holds the lock and has
    /// checked that no record exists.
    fn attach_cni(&self, req: &AttachRequest) -> Result<Attachment> {
        let lists = self.resolve(&req.networks)?;
        for list in &lists {
            self.cni.check_installed(list)?;
        }
        if req.netns.is_some() {
            self.cni.check_installed(&loopback())?;
        }
        let taken: Vec<_> = self
            .cache
            .all()?
            .into_iter()
            .flat_map(|a| a.ports)
            .collect();
        let ports = assign_host_ports(&req.ports, &taken)?;
        if req.netns.is_none() {
            let netns = self.config.netns_dir.join(&req.container_id);
            let planned = self.planned(req, lists.clone(), netns, true, ports.clone());
            if let Some(mut att) = self.take_from_pool(planned) {
                let done = self
                    .ensure_host_rules(&att)
                    .and_then(|()| self.write_etc_files(&mut att))
                    .and_then(|()| self.cache.save(&att));
                if let Err(e) = done {
                    return Err(self.roll_back(&att, e));
                }
                self.refresh_peers(&att)?;
                return Ok(att);
            }
        }
        let (netns, netns_owned) = match &req.netns {
            Some(path) => (path.clone(), false),
            None => (self.create_netns(&req.container_id)?, true),
        };
        let mut att = self.planned(req, lists, netns, netns_owned, ports);
        let done = self
            .cache
            .save(&att)
            .and_then(|()| self.connect(&mut att))
            .and_then(|()| self.ensure_host_rules(&att))
            .and_then(|()| self.write_etc_files(&mut att))
            .and_then(|()| self.cache.save(&att));
        if let Err(e) = done {
            return Err(self.roll_back(&att, e));
        }
        self.refresh_peers(&att)?;
        Ok(att)
    }

    /// Waits for background teardowns `req` depends on: a container going
    /// away still holds its record, and its ports until its `DEL` is through.
    fn clear_the_way(&self, lock: File, req: &AttachRequest) -> Result<File> {
        let in_the_way = || -> Result<Vec<String>> {
            Ok(self
                .cache
                .all()?
                .into_iter()
                .filter(|a| {
                    a.container_id == req.container_id
                        || !req.ports.is_empty() && !a.ports.is_empty()
                })
                .map(|a| a.container_id)
                .collect())
        };
        self.wait_for_teardowns(lock, in_the_way)
    }

    /// Detaches a container using only its cached record: `DEL` on every network
    /// (in reverse), then the namespace if this crate made it (`lo` through the
    /// `loopback` plugin otherwise). Without a record only a leftover namespace
    /// at the default path is removed (`Ok(None)`). On failure the record
    /// stays, so detach can be retried.
    ///
    /// A record attached with [`AttachRequest::background_detach`] is torn
    /// down by a child process when this process can fork safely (one
    /// thread); this call then returns at once, and so does a second `detach`
    /// of it from this process (see `handoff`). A `detach` from elsewhere
    /// waits for that teardown.
    pub fn detach(&self, container_id: &str) -> Result<Option<Attachment>> {
        check_container_id(container_id)?;
        if handoff::handed_off(self.cache.dir(), container_id) {
            return self.cache.load(container_id);
        }
        let lock = self.lock()?;
        let mut lock = self.wait_for_teardowns(lock, || Ok(vec![container_id.to_string()]))?;
        let Some(att) = self.cache.load(container_id)? else {
            let leftover = self.config.netns_dir.join(container_id);
            if leftover.exists() {
                netns::remove(&leftover)?;
            }
            return Ok(None);
        };
        if att.background_detach {
            match self.detach_in_background(lock, &att) {
                Handoff::Taken => return Ok(Some(att)),
                Handoff::Refused(mut back) => lock = back.swap_remove(0),
            }
        }
        self.finish_detach(&att)?;
        drop(lock);
        Ok(Some(att))
    }

    /// Hands the teardown of `att` to a background process, which holds the
    /// container's teardown lock throughout and the networks lock only at
    /// both ends: the plugins' `DEL` (30 ms, most of it the kernel deleting
    /// the veth) runs while other containers attach. Operations that depend
    /// on this container's record — its own `attach` and `detach`, ports it
    /// holds, `network rm` — find the teardown lock taken and wait for it.
    fn detach_in_background(&self, lock: File, att: &Attachment) -> Handoff {
        let id = &att.container_id;
        let Ok(in_flight) = self.take_teardown_lock(id) else {
            return Handoff::Refused(vec![lock]);
        };
        let work = |mut held: Vec<File>| {
            drop(held.swap_remove(0));
            // The next container of this kind finds a namespace ready. Made before the
            // teardown (whose 20 ms are mostly the kernel's wait) so that it is ready
            // sooner; a failure only means the next start attaches as usual.
            if att.networks.len() == 1 && att.ports.is_empty() && att.netns_owned {
                let _ = self.fill_pool(&att.networks[0].network);
            }
            let torn = self.teardown(att);
            let _lock = self.lock()?;
            torn?;
            self.cache.remove(id)?;
            let _ = std::fs::remove_file(self.teardown_lock_file(id));
            self.refresh_peers(att)
        };
        let work = |held| work(held).map_err(|e: Error| e.to_string());
        match handoff::run_detached(vec![lock, in_flight], self.cache.dir(), id, work) {
            Handoff::Taken => Handoff::Taken,
            Handoff::Refused(mut back) => {
                let _ = std::fs::remove_file(self.teardown_lock_file(id));
                back.truncate(1);
                Handoff::Refused(back)
            }
        }
    }

    /// `<cache>/<id>.lock`, held by a background teardown while it runs.
    fn teardown_lock_file(&self, container_id: &str) -> PathBuf {
        self.cache.dir().join(format!("{container_id}.lock"))
    }

    fn take_teardown_lock(&self, container_id: &str) -> Result<File> {
        let path = self.teardown_lock_file(container_id);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening the lock file", &path, e))?;
        // Under the networks lock nobody else starts one; a failure means a stale holder.
        file.try_lock()
            .map_err(|e| Error::io("locking", &path, std::io::Error::other(e.to_string())))?;
        Ok(file)
    }

    /// True while a background process tears `container_id` down (see
    /// [`AttachRequest::background_detach`]): its record and interfaces are
    /// going, and are not leftovers.
    pub fn teardown_in_flight(&self, container_id: &str) -> bool {
        let Ok(file) = File::open(self.teardown_lock_file(container_id)) else {
            return false;
        };
        matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    /// Waits, without the networks `lock`, for the background teardowns in
    /// flight among the containers `ids` names (asked again after each wait:
    /// another may have started meanwhile), and returns the lock taken again.
    /// A teardown takes the networks lock only while holding its own, and this
    /// never waits for a teardown's lock while holding the networks lock, so
    /// neither can wait for the other.
    fn wait_for_teardowns(
        &self,
        mut lock: File,
        ids: impl Fn() -> Result<Vec<String>>,
    ) -> Result<File> {
        loop {
            let busy: Vec<String> = ids()?
                .into_iter()
                .filter(|id| self.teardown_in_flight(id))
                .collect();
            if busy.is_empty() {
                return Ok(lock);
            }
            drop(lock);
            for id in &busy {
                if let Ok(file) = File::open(self.teardown_lock_file(id)) {
                    let _ = file.lock();
                }
            }
            lock = self.lock()?;
        }
    }

    /// True when this process handed the teardown of `container_id` to a
    /// background process (see [`AttachRequest::background_detach`]), which
    /// may still be running it.
    pub fn detached_in_background(&self, container_id: &str) -> bool {
        handoff::handed_off(self.cache.dir(), container_id)
    }

    /// Teardown, record and peers' hosts files; the caller holds the lock.
    fn finish_detach(&self, att: &Attachment) -> Result<()> {
        self.teardown(att)?;
        self.cache.remove(&att.container_id)?;
        // Left by a background teardown that failed or was killed.
        let _ = std::fs::remove_file(self.teardown_lock_file(&att.container_id));
        self.refresh_peers(att)
    }

    /// `DEL` without a cached result, for when the record is lost. Plugins clean up
    /// what they find by container ID; the firewall plugin needs the addresses,
    /// so a `prevResult` is rebuilt from host-local's allocation files when they
    /// have the container, and none is passed otherwise (as CNI allows). Then
    /// removes a namespace at the default path.
    pub fn detach_uncached(&self, container_id: &str, networks: &[String]) -> Result<()> {
        check_container_id(container_id)?;
        let lock = self.lock()?;
        let _lock = self.wait_for_teardowns(lock, || Ok(vec![container_id.to_string()]))?;
        let netns_path = self.config.netns_dir.join(container_id);
        let netns = usable_netns(&netns_path);
        let mut errors = Vec::new();
        for (i, list) in self.resolve(networks)?.into_iter().enumerate().rev() {
            let ifname = format!("eth{i}");
            let sandbox = Sandbox {
                container_id,
                netns: &netns,
                ifname: &ifname,
                ports: &[],
            };
            let prev = recovered_result(&list, container_id, &ifname, &netns);
            if let Err(e) = CniNetwork::new(list, self.cni.clone()).del(&sandbox, prev.as_ref()) {
                errors.push(e);
            }
        }
        if errors.is_empty() {
            netns::remove(&netns_path)?;
        }
        into_result(errors)
    }

    /// `CHECK` of every network of an attached container.
    pub fn check(&self, container_id: &str) -> Result<()> {
        let att = self
            .cache
            .load(container_id)?
            .ok_or_else(|| Error::NotAttached(container_id.to_string()))?;
        for (i, net) in att.networks.iter().enumerate() {
            let Some(result) = &net.result else { continue };
            let ports = if i == 0 { att.ports.as_slice() } else { &[] };
            let sandbox = Sandbox {
                container_id,
                netns: &att.netns,
                ifname: &net.ifname,
                ports,
            };
            CniNetwork::new(net.config.clone(), self.cni.clone()).check(&sandbox, result)?;
        }
        Ok(())
    }

    /// The cached attachment of a container (for `ps`, `port`, `inspect`, the monitor).
    pub fn attachment(&self, container_id: &str) -> Result<Option<Attachment>> {
        self.cache.load(container_id)
    }

    /// Every cached attachment: after an engine restart, detach those whose containers are gone.
    pub fn attachments(&self) -> Result<Vec<Attachment>> {
        self.cache.all()
    }

    pub(crate) fn lock(&self) -> Result<File> {
        lock_file(&self.config.dir.join(".lock"))
    }

    pub(crate) fn ensure_default(&self) -> Result<NetworkConfigList> {
        self.store.ensure_default(&self.config.default_network)
    }

    fn find(&self, name_or_id: &str) -> Result<NetworkConfigList> {
        if name_or_id == self.config.default_network.name {
            return self.ensure_default();
        }
        self.store.find(name_or_id)
    }

    /// Like `find`, rewriting a network this crate wrote in its previous form
    /// (per-container rules through `ipMasq` and `firewall`) into the current one.
    pub(crate) fn find_current(&self, name_or_id: &str) -> Result<NetworkConfigList> {
        let list = self.find(name_or_id)?;
        match store::upgraded(&list, &self.config.default_network.name) {
            Some(current) => {
                self.store.replace(&current)?;
                Ok(current)
            }
            None => Ok(list),
        }
    }

    fn resolve(&self, networks: &[String]) -> Result<Vec<NetworkConfigList>> {
        let lists = networks
            .iter()
            .map(|n| self.find_current(n))
            .collect::<Result<Vec<_>>>()?;
        for (i, list) in lists.iter().enumerate() {
            if lists[..i].iter().any(|l| l.name == list.name) {
                return Err(Error::BadConfig {
                    path: self.store.path_of(&list.name),
                    reason: "the same network is named twice".into(),
                });
            }
        }
        Ok(lists)
    }

    pub(crate) fn planned(
        &self,
        req: &AttachRequest,
        lists: Vec<NetworkConfigList>,
        netns: PathBuf,
        netns_owned: bool,
        ports: Vec<crate::ports::PortMapping>,
    ) -> Attachment {
        let networks = lists
            .into_iter()
            .enumerate()
            .map(|(i, config)| (i, without_idle_portmap(config, i == 0 && !ports.is_empty())))
            .map(|(i, config)| NetworkAttachment {
                network: config.name.clone(),
                network_id: store::network_id(&config),
                user_defined: config.name != self.config.default_network.name,
                ifname: format!("eth{i}"),
                address: None,
                gateway: None,
                mac: None,
                host_interface: None,
                bridge: store::bridge_name(&config),
                config,
                result: None,
            })
            .collect();
        Attachment {
            container_id: req.container_id.clone(),
            cni_container_id: None,
            name: req.name.clone(),
            hostname: req.hostname.clone(),
            aliases: req.aliases.clone(),
            netns,
            netns_owned,
            ports,
            dns: req.dns.clone(),
            etc_dir: req.etc_dir.clone(),
            background_detach: req.background_detach,
            networks,
            pasta: None,
            warnings: Vec::new(),
        }
    }

    pub(crate) fn connect(&self, att: &mut Attachment) -> Result<()> {
        if !att.netns_owned {
            let lo = CniNetwork::new(loopback(), self.cni.clone());
            lo.add(&Sandbox {
                container_id: att.cni_id(),
                netns: &att.netns,
                ifname: "lo",
                ports: &[],
            })?;
        }
        for i in 0..att.networks.len() {
            let net = &att.networks[i];
            let ports = if i == 0 { att.ports.as_slice() } else { &[] };
            let sandbox = Sandbox {
                container_id: att.cni_id(),
                netns: &att.netns,
                ifname: &net.ifname,
                ports,
            };
            let result = CniNetwork::new(net.config.clone(), self.cni.clone()).add(&sandbox)?;
            att.networks[i].set_result(result);
        }
        Ok(())
    }

    /// `DEL` everything of a record, networks in reverse, then `lo` (of a
    /// namespace given to `attach`) or the namespace (of one made there).
    pub(crate) fn teardown(&self, att: &Attachment) -> Result<()> {
        if att.pasta.is_some() || att.networks.iter().any(|n| is_pasta(&n.config)) {
            return teardown_pasta(att);
        }
        let netns = usable_netns(&att.netns);
        let mut errors = Vec::new();
        for (i, net) in att.networks.iter().enumerate().rev() {
            let ports = if i == 0 { att.ports.as_slice() } else { &[] };
            let sandbox = Sandbox {
                container_id: att.cni_id(),
                netns: &netns,
                ifname: &net.ifname,
                ports,
            };
            let network = CniNetwork::new(net.config.clone(), self.cni.clone());
            if let Err(e) = network.del(&sandbox, net.result.as_ref()) {
                errors.push(e);
            }
        }
        if !att.netns_owned {
            let lo = Sandbox {
                container_id: att.cni_id(),
                netns: &netns,
                ifname: "lo",
                ports: &[],
            };
            if let Err(e) = CniNetwork::new(loopback(), self.cni.clone()).del(&lo, None) {
                errors.push(e);
            }
        }
        // The namespace goes last: bridge's DEL reads the addresses to unmasquerade from it.
        if errors.is_empty() && att.netns_owned {
            netns::remove(&att.netns)?;
        }
        into_result(errors)
    }

    /// Puts the host rules of the attachment's networks in place unless the
    /// stamp says they already are: the same boot, the same bridge device
    /// (ifindex). A reboot, or a bridge deleted and made anew (`network rm`,
    /// a host cleaning up), sets them up again; a container start otherwise
    /// runs no `iptables` at all.
    fn ensure_host_rules(&self, att: &Attachment) -> Result<()> {
        for net in &att.networks {
            let Some(rules) = store::host_rules(&net.config) else {
                continue;
            };
            let file = self.host_rules_stamp_file(&rules.bridge);
            let stamp = host_rules_stamp(&rules);
            if stamp.is_some() && std::fs::read_to_string(&file).ok() == stamp {
                continue;
            }
            self.firewall.ensure(&rules)?;
            if let Some(stamp) = stamp {
                // Only a cache: losing it costs one more check.
                let _ = std::fs::create_dir_all(file.parent().unwrap_or(Path::new(".")));
                let _ = std::fs::write(&file, stamp);
            }
        }
        Ok(())
    }

    fn host_rules_stamp_file(&self, bridge: &str) -> PathBuf {
        self.config.dir.join("host-rules").join(bridge)
    }

    fn roll_back(&self, att: &Attachment, error: Error) -> Error {
        match self
            .teardown(att)
            .and_then(|()| self.cache.remove(&att.container_id))
        {
            Ok(()) => error,
            Err(cleanup) => Error::CleanupFailed {
                primary: Box::new(error),
                cleanup: Box::new(cleanup),
            },
        }
    }

    pub(crate) fn write_etc_files(&self, att: &mut Attachment) -> Result<()> {
        let Some(dir) = att.etc_dir.clone() else {
            return Ok(());
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("creating", &dir, e))?;
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        // pasta answers DNS itself, at an address of its own (rootless mode's only network).
        let resolv = if self.config.rootless && !att.networks.is_empty() {
            crate::pasta::render_resolv_conf(&host, &att.dns)
        } else {
            etc_files::render_resolv_conf(&host, &att.dns)
        };
        att.warnings.extend(resolv.warning);
        etc_files::write_in_place(&dir, etc_files::RESOLV_CONF, &resolv.content)?;
        etc_files::write_in_place(&dir, etc_files::HOSTNAME, &format!("{}\n", att.hostname))?;
        self.write_hosts(att)
    }

    /// Writes `att`'s hosts file (in place: a running container may have it mounted).
    pub(crate) fn write_hosts(&self, att: &Attachment) -> Result<()> {
        let Some(dir) = &att.etc_dir else {
            return Ok(());
        };
        let others = self.cache.all()?;
        etc_files::write_in_place(dir, etc_files::HOSTS, &hosts_for(att, &others))?;
        Ok(())
    }

    /// Rewrites the hosts files of containers sharing a user-defined network with `att`.
    fn refresh_peers(&self, att: &Attachment) -> Result<()> {
        let shared: Vec<&str> = att
            .networks
            .iter()
            .filter(|n| n.user_defined)
            .map(|n| n.network.as_str())
            .collect();
        if shared.is_empty() {
            return Ok(());
        }
        let all = self.cache.all()?;
        for peer in &all {
            let touches = peer
                .networks
                .iter()
                .any(|n| shared.contains(&n.network.as_str()));
            if peer.container_id == att.container_id || !touches {
                continue;
            }
            if let Some(dir) = &peer.etc_dir {
                etc_files::write_in_place(dir, etc_files::HOSTS, &hosts_for(peer, &all))?;
            }
        }
        Ok(())
    }
}

/// The hosts file of `att`: itself on each network, and the containers sharing
/// its user-defined networks (as docker's embedded DNS would answer).
pub fn hosts_for(att: &Attachment, all: &[Attachment]) -> String {
    let mut own_names = vec![att.hostname.clone()];
    own_names.extend(att.peer_names().into_iter().filter(|n| *n != att.hostname));
    let own: Vec<HostEntry> = att
        .networks
        .iter()
        .filter_map(|n| n.ip())
        .map(|ip| HostEntry {
            ip,
            names: own_names.clone(),
        })
        .collect();
    let mut peers = Vec::new();
    for net in att.networks.iter().filter(|n| n.user_defined) {
        for other in all.iter().filter(|o| o.container_id != att.container_id) {
            let ip: Option<IpAddr> = other
                .networks
                .iter()
                .find(|n| n.network == net.network)
                .and_then(NetworkAttachment::ip);
            if let Some(ip) = ip {
                peers.push(HostEntry {
                    ip,
                    names: other.peer_names(),
                });
            }
        }
    }
    etc_files::render_hosts(&own, &peers)
}

/// The files for a container without a network namespace of its own (`--network host`).
pub fn host_network_files(dir: &Path, hostname: &str) -> Result<EtcFiles> {
    etc_files::write_host_network_files(dir, hostname)
}

/// CNI's container ID rule; IDs also name files here.
fn check_container_id(id: &str) -> Result<()> {
    let mut chars = id.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidContainerId(id.to_string()))
    }
}

/// The namespace path for `DEL`, or an empty one when the namespace is gone
/// (plugins then release what they hold without entering it).
fn usable_netns(path: &Path) -> PathBuf {
    if netns::is_mounted(path) {
        path.to_path_buf()
    } else {
        PathBuf::new()
    }
}

/// A minimal `prevResult` (interface and addresses) from host-local's allocations.
fn recovered_result(
    list: &NetworkConfigList,
    container_id: &str,
    ifname: &str,
    netns: &Path,
) -> Option<CniResult> {
    let addresses = store::host_local_allocations(list, container_id, ifname);
    if addresses.is_empty() {
        return None;
    }
    let interface = Interface {
        name: ifname.to_string(),
        sandbox: Some(netns.display().to_string()),
        ..Interface::default()
    };
    let ips = addresses
        .into_iter()
        .map(|address| IpConfig {
            address,
            gateway: None,
            interface: Some(0),
            extra: Default::default(),
        })
        .collect();
    Some(CniResult {
        cni_version: list.cni_version.clone(),
        interfaces: vec![interface],
        ips,
        ..CniResult::default()
    })
}

fn into_result(mut errors: Vec<Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(Error::Teardown(errors)),
    }
}

/// Deletes a bridge device and the host rules naming it (this crate's and
/// the firewall plugin's isolation rules). A bridge that does not exist is fine.
pub fn delete_bridge(bridge: &str) -> Result<()> {
    remove_bridge(&Iptables, bridge)
}

fn remove_bridge(firewall: &dyn Firewall, bridge: &str) -> Result<()> {
    firewall.remove(bridge)?;
    if !Path::new("/sys/class/net").join(bridge).exists() {
        return Ok(());
    }
    host_rules::run("ip", &["link", "delete", bridge, "type", "bridge"], None).map(|_| ())
}

/// `boot id` and the bridge's ifindex; `None` while the bridge does not exist.
fn host_rules_stamp(rules: &BridgeRules) -> Option<String> {
    let ifindex = std::fs::read_to_string(
        Path::new("/sys/class/net")
            .join(&rules.bridge)
            .join("ifindex"),
    )
    .ok()?;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(format!(
        "{} {} {}\n",
        boot.trim(),
        ifindex.trim(),
        rules.subnet
    ))
}

/// `list` without its `portmap` plugins when no port is published through
/// it. Without mappings portmap's `ADD` passes the result through and its
/// `DEL` has nothing to remove, but each run costs a plugin start (2.6 ms).
/// The list kept in the record is this one, so `DEL` runs the same chain as
/// `ADD` did, as CNI requires.
pub(crate) fn without_idle_portmap(
    mut list: NetworkConfigList,
    publishes: bool,
) -> NetworkConfigList {
    let idle = |p: &serde_json::Map<String, serde_json::Value>| {
        crate::cni::types::plugin_type(p) == Some("portmap")
    };
    if !publishes && list.plugins.iter().any(|p| !idle(p)) {
        list.plugins.retain(|p| !idle(p));
    }
    list
}

/// The lock file at `path` (made if missing), locked exclusively, waiting for it.
pub(crate) fn lock_file(path: &Path) -> Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| Error::io("opening the lock file", path, e))?;
    file.lock().map_err(|e| Error::io("locking", path, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::cni::tests::{Recorder, env, plugin_dir, stdin};

    /// Records what the manager asks of the host firewall.
    #[derive(Debug, Default, Clone)]
    struct RecordingFirewall {
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl Firewall for RecordingFirewall {
        fn ensure(&self, rules: &BridgeRules) -> Result<()> {
            let call = format!("ensure {} {}", rules.bridge, rules.subnet);
            self.calls.lock().unwrap().push(call);
            Ok(())
        }

        fn remove(&self, bridge: &str) -> Result<()> {
            self.calls.lock().unwrap().push(format!("remove {bridge}"));
            Ok(())
        }
    }

    struct Setup {
        networks: Networks,
        req: AttachRequest,
        firewall: RecordingFirewall,
    }

    fn setup(recorder: &Recorder, root: &Path, plugins: &Path) -> Setup {
        let mut config = NetworksConfig::new(root);
        config.plugin_dirs = vec![plugins.into()];
        // `lo` always exists, so the host rules stamp (boot, ifindex) can be taken without root.
        config.default_network.bridge = "lo".into();
        let cni = Cni::with_runner(config.plugin_dirs.clone(), Box::new(recorder.clone()));
        let firewall = RecordingFirewall::default();
        let networks = Networks::with_cni(config, cni)
            .unwrap()
            .with_firewall(firewall.clone());
        let mut req = AttachRequest::new("c1");
        // Any path: the recorder runs no plugin, so no namespace is needed (nor root).
        req.netns = Some(root.join("netns-c1"));
        req.etc_dir = Some(root.join("etc"));
        Setup {
            networks,
            req,
            firewall,
        }
    }

    fn commands(recorder: &Recorder) -> Vec<String> {
        let calls = recorder.calls.lock().unwrap();
        calls
            .iter()
            .map(|c| {
                let plugin = c.plugin.file_name().unwrap().to_string_lossy();
                format!("{} {plugin}", env(c, "CNI_COMMAND"))
            })
            .collect()
    }

    #[test]
    fn the_network_directory_is_private_and_older_ones_are_tightened() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let plugins = plugin_dir(&["bridge", "portmap", "loopback"]);
        let root = tempfile::tempdir().unwrap();
        let recorder = Recorder::default();
        let Setup { networks, req, .. } = setup(&recorder, root.path(), plugins.path());
        let dir = root.path().join("networks");
        assert_eq!(mode(&dir), 0o700);
        networks.attach(&req).unwrap();
        assert_eq!(mode(&dir), 0o700, "attaching keeps it so");
        drop(networks);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        setup(&recorder, root.path(), plugins.path());
        assert_eq!(
            mode(&dir),
            0o700,
            "opening tightens what an older version made"
        );
        assert!(dir.join("cache").exists(), "and changes nothing else");
    }

    #[test]
    fn a_failed_attach_is_undone() {
        let plugins = plugin_dir(&["bridge", "portmap", "loopback"]);
        let root = tempfile::tempdir().unwrap();
        let failing = Recorder {
            fail: Some(("portmap", "ADD")),
            ..Recorder::default()
        };
        let Setup {
            networks,
            mut req,
            firewall,
        } = setup(&failing, root.path(), plugins.path());
        req.ports = PortSpec::parse("80").unwrap();
        let err = networks.attach(&req).unwrap_err();
        assert!(matches!(err, Error::Plugin { code: 7, .. }), "{err}");
        assert_eq!(
            commands(&failing),
            [
                "ADD loopback",
                "ADD bridge",
                "ADD portmap",
                "DEL portmap",
                "DEL bridge",
                "DEL loopback"
            ]
        );
        assert!(
            networks.attachments().unwrap().is_empty(),
            "no record is left"
        );
        assert!(firewall.calls.lock().unwrap().is_empty());
    }

    #[test]
    fn detach_from_another_instance_uses_the_cached_config_and_result() {
        let plugins = plugin_dir(&["bridge", "portmap", "loopback"]);
        let root = tempfile::tempdir().unwrap();
        let first = Recorder::default();
        let Setup {
            networks, mut req, ..
        } = setup(&first, root.path(), plugins.path());
        req.ports = PortSpec::parse("80").unwrap();
        let att = networks.attach(&req).unwrap();
        assert_eq!(att.networks[0].address.unwrap().to_string(), "10.1.0.2/24");
        let hosts = std::fs::read_to_string(att.etc_files().unwrap().hosts).unwrap();
        assert!(hosts.contains("10.1.0.2\tc1\n"), "{hosts}");

        let second = Recorder::default();
        let fresh = setup(&second, root.path(), plugins.path()).networks;
        let detached = fresh.detach("c1").unwrap().expect("the record");
        assert_eq!(detached, att);
        assert_eq!(
            commands(&second),
            ["DEL portmap", "DEL bridge", "DEL loopback"]
        );
        let calls = second.calls.lock().unwrap();
        let cached = serde_json::to_value(att.networks[0].result.as_ref().unwrap()).unwrap();
        for call in &calls[..2] {
            assert_eq!(stdin(call)["prevResult"], cached);
            assert_eq!(env(call, "CNI_CONTAINERID"), "c1");
        }
        let port = att.ports[0].host_port;
        assert_eq!(
            stdin(&calls[0])["runtimeConfig"]["portMappings"][0]["hostPort"],
            port
        );
        assert!(fresh.attachments().unwrap().is_empty());
        assert_eq!(
            fresh.detach("c1").unwrap(),
            None,
            "a second detach finds nothing to do"
        );
    }

    #[test]
    fn portmap_runs_only_for_published_ports_and_del_runs_what_add_ran() {
        let plugins = plugin_dir(&["bridge", "portmap", "loopback"]);
        let root = tempfile::tempdir().unwrap();
        let recorder = Recorder::default();
        let Setup { networks, req, .. } = setup(&recorder, root.path(), plugins.path());
        let att = networks.attach(&req).unwrap();
        assert_eq!(att.networks[0].config.plugin_types(), ["bridge"]);
        networks.detach("c1").unwrap();
        assert_eq!(
            commands(&recorder),
            ["ADD loopback", "ADD bridge", "DEL bridge", "DEL loopback"]
        );
        let network = networks.inspect("bridge").unwrap();
        assert_eq!(
            network.plugins,
            ["bridge", "portmap"],
            "the network keeps portmap"
        );
    }

    #[test]
    fn host_rules_are_set_up_once_per_network_and_bridge() {
        let plugins = plugin_dir(&["bridge", "portmap", "loopback"]);
        let root = tempfile::tempdir().unwrap();
        let recorder = Recorder::default();
        let Setup {
            networks,
            mut req,
            firewall,
        } = setup(&recorder, root.path(), plugins.path());
        for id in ["c1", "c2", "c3"] {
            req.container_id = id.into();
            networks.attach(&req).unwrap();
            networks.detach(id).unwrap();
        }
        assert_eq!(
            *firewall.calls.lock().unwrap(),
            ["ensure lo 172.29.0.0/16"],
            "the stamp saves the later checks"
        );
        let stamp = networks.host_rules_stamp_file("lo");
        std::fs::write(&stamp, "another boot").unwrap();
        req.container_id = "c4".into();
        networks.attach(&req).unwrap();
        assert_eq!(firewall.calls.lock().unwrap().len(), 2, "set up again");
    }

    #[test]
    fn a_network_written_before_host_rules_is_upgraded_on_use() {
        let plugins = plugin_dir(&["bridge", "portmap", "loopback"]);
        let root = tempfile::tempdir().unwrap();
        let recorder = Recorder::default();
        let Setup {
            networks,
            req,
            firewall,
        } = setup(&recorder, root.path(), plugins.path());
        let mut old = store::bridge_conflist(
            "bridge",
            "lo",
            "172.29.0.0/16".parse().unwrap(),
            "172.29.0.1".parse().unwrap(),
            &root.path().join("networks/ipam"),
        );
        old.extra.clear();
        old.plugins[0].insert("ipMasq".into(), true.into());
        old.plugins.push(
            serde_json::json!({"type": "firewall", "backend": "iptables", "ingressPolicy": "same-bridge"})
                .as_object()
                .unwrap()
                .clone(),
        );
        let path = root.path().join("networks/bridge.conflist");
        std::fs::write(&path, serde_json::to_string(&old).unwrap()).unwrap();
        assert_eq!(
            networks.inspect("bridge").unwrap().plugins,
            ["bridge", "portmap", "firewall"]
        );

        networks.attach(&req).unwrap();
        let upgraded = store::read_conflist(&path).unwrap();
        assert_eq!(upgraded.plugin_types(), ["bridge", "portmap"]);
        assert_eq!(upgraded.plugins[0]["ipMasq"], false);
        assert!(store::host_rules(&upgraded).is_some());
        assert_eq!(firewall.calls.lock().unwrap().len(), 1);
    }

    #[test]
    fn container_ids_follow_cnis_rule() {
        assert!(check_container_id("abc123_x.y-z").is_ok());
        for bad in ["", "-a", "a/b", "../x", "a b"] {
            assert!(check_container_id(bad).is_err(), "{bad}");
        }
    }
}
