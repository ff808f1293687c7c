//! Attachments in rootless mode ([`NetworksConfig::rootless`](crate::NetworksConfig)):
//! the default network is user-mode networking through pasta in a namespace of the
//! container's own; no CNI plugin, bridge, veth or host firewall rule is involved.

use crate::attachment::Attachment;
use crate::cni::NetworkConfigList;
use crate::error::{Error, Result};
use crate::manager::{AttachRequest, Networks};
use crate::netns;
use crate::pasta::{self, Pasta, PastaOptions, StartingPasta};
use crate::ports::assign_host_ports;
use crate::store;

/// The plugin type recorded for a network pasta provides.
const PASTA_TYPE: &str = "pasta";

impl Networks {
    /// [`Networks::attach_pending`] in rootless mode: a namespace (made, or the one
    /// given) with pasta starting on it, the ports published through pasta, the `/etc`
    /// files (the hosts file without the container's address until pasta has given it
    /// one). Only the default network (or none) can be asked for. The caller holds the
    /// lock and has checked that no record exists.
    pub(crate) fn attach_pasta(&self, req: &AttachRequest) -> Result<PendingAttachment> {
        let default = self.config().default_network.name.clone();
        if let Some(other) = req.networks.iter().find(|n| **n != default) {
            return Err(Error::Rootless(other.clone()));
        }
        pasta::check_port_specs(
            &req.ports,
            pasta::unprivileged_port_start(),
            pasta::privileged_on_host(),
        )?;
        let taken: Vec<_> = self
            .cache()
            .all()?
            .into_iter()
            .flat_map(|a| a.ports)
            .collect();
        let ports = assign_host_ports(&req.ports, &taken)?;
        let lists = match req.networks.is_empty() {
            true => Vec::new(),
            false => vec![pasta_conflist(&default)],
        };
        let (netns, netns_owned) = match &req.netns {
            Some(path) => (path.clone(), false),
            None => (self.create_netns(&req.container_id)?, true),
        };
        let mut att = self.planned(req, lists, netns, netns_owned, ports);
        if let Some(net) = att.networks.first_mut() {
            // The id `network ls` shows for the default network.
            net.network_id = store::network_id(&self.ensure_default()?);
        }
        // Recorded before pasta runs: a process dying here leaves a record whose detach
        // removes the namespace, and pasta quits when its namespace file goes.
        let started = self.cache().save(&att).and_then(|()| {
            if att.networks.is_empty() {
                return Ok(None);
            }
            let mut opts = PastaOptions::new(
                &att.netns,
                self.cache()
                    .dir()
                    .join(format!("{}.pasta.pid", att.container_id)),
            );
            opts.ifname = att.networks[0].ifname.clone();
            opts.ports = att.ports.clone();
            Pasta::spawn(&opts).map(Some)
        });
        let pasta = match started {
            Ok(pasta) => pasta,
            Err(e) => return Err(self.roll_back_pasta(&att, e)),
        };
        if let Err(e) = self.write_etc_files(&mut att) {
            drop(pasta);
            return Err(self.roll_back_pasta(&att, e));
        }
        Ok(PendingAttachment {
            attachment: att,
            pasta: pasta.map(|starting| (self.clone(), starting)),
        })
    }

    /// The rest of [`Networks::attach_pasta`] once pasta has configured the namespace:
    /// its interface and process recorded, the hosts file rewritten in place (the
    /// container may have it mounted already). On failure everything is undone.
    pub(crate) fn finish_pasta(
        &self,
        mut att: Attachment,
        starting: StartingPasta,
    ) -> Result<Attachment> {
        let pasta = match starting.wait() {
            Ok(pasta) => pasta,
            Err(e) => return Err(self.roll_back_pasta(&att, e)),
        };
        let iface = pasta.interface();
        let net = &mut att.networks[0];
        net.address = iface.address;
        net.gateway = iface.gateway;
        net.mac = iface.mac.clone();
        att.pasta = Some(pasta.process());
        // Only the hosts file names the address; resolv.conf and hostname stand.
        let done = self
            .write_hosts(&att)
            .and_then(|()| self.cache().save(&att));
        if let Err(e) = done {
            drop(pasta);
            return Err(self.roll_back_pasta(&att, e));
        }
        // Recorded: from here on detach stops it.
        pasta.keep();
        Ok(att)
    }

    fn roll_back_pasta(&self, att: &Attachment, error: Error) -> Error {
        match teardown_pasta(att).and_then(|()| self.cache().remove(&att.container_id)) {
            Ok(()) => error,
            Err(cleanup) => Error::CleanupFailed {
                primary: Box::new(error),
                cleanup: Box::new(cleanup),
            },
        }
    }
}

/// An attachment made by [`Networks::attach_pending`]: its namespace, record and `/etc`
/// files exist; what configures the namespace may still be running. Dropped without
/// [`PendingAttachment::finish`], that is stopped, and the record stays for the
/// container's detach to tear down.
#[derive(Debug)]
pub struct PendingAttachment {
    attachment: Attachment,
    /// pasta configuring the namespace, with the networks that record it.
    pasta: Option<(Networks, StartingPasta)>,
}

impl PendingAttachment {
    /// An attachment with nothing left to wait for.
    pub(crate) fn done(attachment: Attachment) -> Self {
        PendingAttachment {
            attachment,
            pasta: None,
        }
    }

    /// The attachment as recorded so far (its namespace path is final).
    pub fn attachment(&self) -> &Attachment {
        &self.attachment
    }

    /// Waits until the namespace is configured; the finished attachment. On failure
    /// the attachment is undone (namespace, record, pasta).
    pub fn finish(self) -> Result<Attachment> {
        match self.pasta {
            None => Ok(self.attachment),
            Some((networks, starting)) => networks.finish_pasta(self.attachment, starting),
        }
    }
}

/// Stops the attachment's pasta and removes the namespace if it was made for it.
pub(crate) fn teardown_pasta(att: &Attachment) -> Result<()> {
    if let Some(process) = &att.pasta {
        process.stop()?;
    }
    if att.netns_owned {
        netns::remove(&att.netns)?;
    }
    Ok(())
}

/// The configuration recorded for a network pasta provides: its name and the `pasta`
/// type, which no CNI plugin answers to (nothing runs CNI on it).
pub(crate) fn pasta_conflist(name: &str) -> NetworkConfigList {
    let value = serde_json::json!({
        "cniVersion": crate::cni::types::CNI_VERSION,
        "name": name,
        "plugins": [{"type": PASTA_TYPE}]
    });
    serde_json::from_value(value).expect("a well-formed conflist")
}

/// Whether `list` is a network pasta provides.
pub(crate) fn is_pasta(list: &NetworkConfigList) -> bool {
    list.plugin_types() == [PASTA_TYPE]
}
