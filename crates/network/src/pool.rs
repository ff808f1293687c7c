//! A small pool of prepared network namespaces per network, so that a
//! container start does not wait for the CNI `ADD`.
//!
//! Attaching a container to a bridge network costs about 17 ms before the
//! container can start, most of it the bridge plugin's `ADD` (its own start
//! and host-local's, the veth, the addresses). A pool entry is a namespace
//! attached ahead of time with nothing in it: `lo` up, `eth0` on the network,
//! an address allocated to the entry's own CNI container ID. Taking one is a
//! bind mount and two small record writes; the container's names, hosts and
//! resolver files are written as for any attach (they are the container's,
//! not the entry's). The plugins keep knowing the entry's ID, which the
//! container's record keeps ([`Attachment::cni_container_id`]), so the
//! container's `DEL` releases exactly what the entry's `ADD` allocated.
//!
//! Entries are made after a `--rm` container's teardown, in the background
//! process that runs it (off every caller's critical path), up to
//! [`NetworksConfig::pool_size`](crate::NetworksConfig::pool_size) per
//! network configuration. Only requests an entry fits are served from it:
//! one network, no published ports, a namespace made here.
//!
//! Nothing is leaked when a process dies half-way:
//! - an entry is recorded (`<networks>/pool/<id>.json`) before its `ADD` and
//!   locked (`<id>.lock`) by its maker until complete; a record without a
//!   result whose lock is free was left by a maker that died, and is torn
//!   down (`DEL` releases its address) by the next fill or drain;
//! - a taker writes the container's record before it forgets the entry: an
//!   entry whose ID a container record names is only forgotten, never torn
//!   down (the container owns its address now);
//! - an entry whose namespace is gone (a reboot) or whose veth left its
//!   bridge (a host cleaning up) is torn down instead of taken;
//! - each entry's namespace has an owner file (`<netns dir>/<id>.pool`) naming
//!   the networks directory it belongs to: when that directory is deleted
//!   (an engine root removed with its pool in it), the next fill of any root
//!   sharing the namespace directory unmounts the namespace, which takes the
//!   veth with it (the address went with the root).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::attachment::{Attachment, Cache};
use crate::cni::NetworkConfigList;
use crate::error::{Error, Result};
use crate::manager::{AttachRequest, Networks, without_idle_portmap};
use crate::netns;

/// The suffix of an entry namespace's owner file.
const OWNER_SUFFIX: &str = "pool";

impl Networks {
    /// The pool's records: `<networks dir>/pool`.
    fn pool(&self) -> Cache {
        Cache::new(self.config().dir.join("pool"))
    }

    fn pool_lock_file(&self, entry_id: &str) -> PathBuf {
        self.pool().dir().join(format!("{entry_id}.lock"))
    }

    fn owner_file(&self, entry_id: &str) -> PathBuf {
        self.config()
            .netns_dir
            .join(format!("{entry_id}.{OWNER_SUFFIX}"))
    }

    /// The lock of entry `entry_id`, if nobody holds it (its maker, a taker, a reclaimer).
    fn try_entry_lock(&self, entry_id: &str) -> Option<File> {
        let path = self.pool_lock_file(entry_id);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ok()?;
        file.try_lock().ok()?;
        Some(file)
    }

    /// Serves `planned` (a request's attachment, nothing run yet) from a
    /// prepared namespace of its network, when one is ready: the entry's
    /// namespace is bind-mounted at `planned.netns`, its `ADD` result becomes
    /// the container's, and the container's record is saved. `None` when no
    /// entry fits (the caller attaches as usual). The caller holds the
    /// networks lock.
    pub(crate) fn take_from_pool(&self, mut planned: Attachment) -> Option<Attachment> {
        if self.config().pool_size == 0
            || self.config().rootless
            || planned.networks.len() != 1
            || !planned.ports.is_empty()
        {
            return None;
        }
        let pool = self.pool();
        for entry in pool.all().ok()? {
            if !fits(&entry, &planned) {
                continue;
            }
            let Some(lock) = self.try_entry_lock(&entry.container_id) else {
                continue;
            };
            // An entry a dead taker left (a container record names it) is not ours to
            // give; one that cannot be adopted stays for the next reclaim, and the
            // caller attaches as usual.
            if entry_usable(&entry)
                && !self.entry_taken(&entry.container_id)
                && self.adopt(&entry, &mut planned).is_ok()
            {
                self.forget_entry(&entry);
                drop(lock);
                return Some(planned);
            }
        }
        None
    }

    /// Puts `entry`'s namespace at `planned.netns` and saves the container's record.
    fn adopt(&self, entry: &Attachment, planned: &mut Attachment) -> Result<()> {
        netns::bind(&entry.netns, &planned.netns)?;
        let from = entry.networks[0].clone();
        let net = &mut planned.networks[0];
        net.address = from.address;
        net.gateway = from.gateway;
        net.mac = from.mac;
        net.host_interface = from.host_interface;
        net.result = from.result.map(|mut result| {
            let old = entry.netns.display().to_string();
            for iface in &mut result.interfaces {
                if iface.sandbox.as_deref() == Some(old.as_str()) {
                    iface.sandbox = Some(planned.netns.display().to_string());
                }
            }
            result
        });
        planned.cni_container_id = Some(entry.container_id.clone());
        if let Err(e) = self.cache().save(planned) {
            let _ = netns::remove(&planned.netns);
            return Err(e);
        }
        Ok(())
    }

    /// Whether a container's record names `entry_id` as its CNI container ID.
    fn entry_taken(&self, entry_id: &str) -> bool {
        self.cache().all().is_ok_and(|all| {
            all.iter()
                .any(|a| a.cni_container_id.as_deref() == Some(entry_id))
        })
    }

    /// Drops the entry's record, namespace file, owner file and lock file
    /// (its address, if any, is someone else's or released already).
    fn forget_entry(&self, entry: &Attachment) {
        let _ = netns::remove(&entry.netns);
        let _ = std::fs::remove_file(self.owner_file(&entry.container_id));
        let _ = self.pool().remove(&entry.container_id);
        let _ = std::fs::remove_file(self.pool_lock_file(&entry.container_id));
    }

    /// Makes prepared namespaces for `network` until the pool holds
    /// [`pool_size`](crate::NetworksConfig::pool_size) of its configuration
    /// (ready or being made); first reclaims what dead makers and takers left
    /// and the namespaces of deleted roots. Returns how many it made. Each
    /// costs a plugin `ADD` (about 10 ms): for background processes.
    pub fn fill_pool(&self, network: &str) -> Result<usize> {
        // Rootless: pool entries are CNI bridge attachments, which need the host.
        if self.config().pool_size == 0 || self.config().rootless {
            return Ok(0);
        }
        self.reclaim_orphaned_namespaces();
        let list = {
            let _lock = self.lock()?;
            without_idle_portmap(self.find_current(network)?, false)
        };
        self.reclaim_pool(false, None)?;
        let mut made = 0;
        while let Some((entry, lock)) = self.reserve_entry(&list)? {
            let mut entry = entry;
            let done = netns::create(&self.config().netns_dir, &entry.container_id)
                .and_then(|_| self.connect(&mut entry))
                .and_then(|()| self.pool().save(&entry));
            if let Err(e) = done {
                if self.teardown(&entry).is_ok() {
                    self.forget_entry(&entry);
                }
                return Err(e);
            }
            drop(lock);
            made += 1;
        }
        Ok(made)
    }

    /// Records a new entry for `list` (locked, no `ADD` yet) unless the pool
    /// is full; the count and the record are made under the pool's own lock,
    /// so two fillers do not overfill it.
    fn reserve_entry(&self, list: &NetworkConfigList) -> Result<Option<(Attachment, File)>> {
        let pool = self.pool();
        std::fs::create_dir_all(pool.dir()).map_err(|e| Error::io("creating", pool.dir(), e))?;
        let guard_path = pool.dir().join(".lock");
        let _guard = crate::manager::lock_file(&guard_path)?;
        let same = pool
            .all()?
            .iter()
            .filter(|e| e.networks.len() == 1 && e.networks[0].config == *list)
            .count();
        if same >= self.config().pool_size {
            return Ok(None);
        }
        let id = new_entry_id();
        let lock = self.try_entry_lock(&id).ok_or_else(|| {
            Error::io(
                "locking",
                self.pool_lock_file(&id),
                std::io::Error::other("a new entry's lock is held"),
            )
        })?;
        let netns = self.config().netns_dir.join(&id);
        let mut req = AttachRequest::new(&id);
        req.hostname = id.clone();
        req.networks = vec![list.name.clone()];
        let entry = self.planned(&req, vec![list.clone()], netns, true, Vec::new());
        crate::error::private_dir(&self.config().netns_dir, crate::error::PRIVATE_DIR)?;
        let owner = self.owner_file(&id);
        std::fs::write(&owner, self.config().dir.display().to_string())
            .map_err(|e| Error::io("writing", &owner, e))?;
        pool.save(&entry)?;
        Ok(Some((entry, lock)))
    }

    /// Tears down what the pool holds that nobody can take: entries a dead
    /// maker left unfinished, entries whose namespace or veth is gone, and
    /// (with `all`) every entry, waiting for makers and takers to finish.
    /// `network` limits it to one network's entries. Entries a container
    /// took are only forgotten.
    fn reclaim_pool(&self, all: bool, network: Option<&str>) -> Result<()> {
        let mut errors = Vec::new();
        for entry in self.pool().all()? {
            if network.is_some_and(|n| entry.networks.iter().all(|e| e.network != n)) {
                continue;
            }
            let lock = match all {
                true => crate::manager::lock_file(&self.pool_lock_file(&entry.container_id))?,
                false => match self.try_entry_lock(&entry.container_id) {
                    Some(lock) => lock,
                    None => continue,
                },
            };
            // Read again under its lock: a maker may have finished it meanwhile.
            let Some(entry) = self.pool().load(&entry.container_id)? else {
                continue;
            };
            if self.entry_taken(&entry.container_id) {
                self.forget_entry(&entry);
            } else if all
                || entry.networks.iter().any(|n| n.result.is_none())
                || !entry_usable(&entry)
            {
                match self.teardown(&entry) {
                    Ok(()) => self.forget_entry(&entry),
                    Err(e) => errors.push(e),
                }
            }
            drop(lock);
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Teardown(errors)),
        }
    }

    /// Tears down every prepared namespace (of `network` only, when given),
    /// releasing their addresses: for `network rm`, `network prune` and
    /// before an engine root is deleted.
    pub fn drain_pool(&self, network: Option<&str>) -> Result<()> {
        self.reclaim_pool(true, network)
    }

    /// The prepared namespaces ready or being made, as recorded.
    pub fn pool_entries(&self) -> Result<Vec<Attachment>> {
        self.pool().all()
    }

    /// Unmounts the pool namespaces whose owner file names a networks
    /// directory that no longer exists (its engine root was deleted); the
    /// veth goes with the namespace.
    fn reclaim_orphaned_namespaces(&self) {
        let dir = &self.config().netns_dir;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != OWNER_SUFFIX) {
                continue;
            }
            let Ok(owner) = std::fs::read_to_string(&path) else {
                continue;
            };
            if owner.is_empty() || Path::new(&owner).exists() {
                continue;
            }
            if netns::remove(&path.with_extension("")).is_ok() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

/// Whether `entry` serves `planned`: complete, and made from the same configuration.
fn fits(entry: &Attachment, planned: &Attachment) -> bool {
    entry.networks.len() == 1
        && entry.networks[0].result.is_some()
        && entry.networks[0].config == planned.networks[0].config
        && entry.networks[0].ifname == planned.networks[0].ifname
}

/// Whether an entry's namespace is still mounted and its veth still on its bridge.
fn entry_usable(entry: &Attachment) -> bool {
    if !netns::is_mounted(&entry.netns) {
        return false;
    }
    entry.networks.iter().all(|net| {
        let Some(veth) = &net.host_interface else {
            return false;
        };
        let link = Path::new("/sys/class/net").join(veth);
        match &net.bridge {
            Some(bridge) => std::fs::read_link(link.join("master"))
                .is_ok_and(|m| m.file_name().is_some_and(|n| n == bridge.as_str())),
            None => link.exists(),
        }
    })
}

/// A new entry ID: CNI's container ID rule, unique across processes and boots.
fn new_entry_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "pool-{:x}-{:x}-{n:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff
    )
}
