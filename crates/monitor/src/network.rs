//! Network interface counters from `/proc/net/dev` or `/proc/PID/net/dev`.
//!
//! `/proc/PID/net/dev` shows the network namespace *of that PID*, so the
//! host can read a container's counters without entering its namespace.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::read::{FileError, FileReader, num};

/// Why reading network counters failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The `net/dev` file does not exist (the process exited).
    #[error("{} not found", path.display())]
    NotFound {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read or parsed.
    #[error(transparent)]
    File(#[from] FileError),
}

/// Counters of one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    /// Interface name (`eth0`, `lo`, `veth1a2b3c`).
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Sent packets dropped.
    pub tx_dropped: u64,
}

/// All interfaces of one network namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// One entry per interface, in the kernel's order.
    pub interfaces: Vec<InterfaceStats>,
}

impl NetworkStats {
    /// Sum over the interfaces except loopback: traffic in and out of the
    /// namespace, which is what `docker stats` shows as NET I/O.
    pub fn total(&self) -> InterfaceStats {
        let mut t = InterfaceStats::default();
        for i in self.interfaces.iter().filter(|i| i.name != "lo") {
            t.rx_bytes += i.rx_bytes;
            t.rx_packets += i.rx_packets;
            t.rx_errors += i.rx_errors;
            t.rx_dropped += i.rx_dropped;
            t.tx_bytes += i.tx_bytes;
            t.tx_packets += i.tx_packets;
            t.tx_errors += i.tx_errors;
            t.tx_dropped += i.tx_dropped;
        }
        t
    }
}

/// Reads `net/dev` files, reusing one buffer.
#[derive(Debug)]
pub struct NetworkSampler {
    path: PathBuf,
    reader: FileReader,
}

impl NetworkSampler {
    /// Counters of the network namespace of `pid` (`proc_root/PID/net/dev`).
    pub fn for_pid(proc_root: &Path, pid: i32) -> Self {
        Self::for_file(proc_root.join(pid.to_string()).join("net/dev"))
    }

    /// Counters of the namespace the proc root belongs to (`proc_root/net/dev`).
    pub fn for_host(proc_root: &Path) -> Self {
        Self::for_file(proc_root.join("net/dev"))
    }

    fn for_file(path: PathBuf) -> Self {
        NetworkSampler {
            path,
            reader: FileReader::with_capacity(2048),
        }
    }

    /// Samples into `out`, reusing its entries.
    pub fn sample_into(&mut self, out: &mut NetworkStats) -> Result<(), NetworkError> {
        match self.reader.read(&self.path)? {
            Some(text) => Ok(parse_net_dev(&self.path, text, &mut out.interfaces)?),
            None => Err(NetworkError::NotFound {
                path: self.path.clone(),
            }),
        }
    }

    /// Samples into a new value.
    pub fn sample(&mut self) -> Result<NetworkStats, NetworkError> {
        let mut out = NetworkStats::default();
        self.sample_into(&mut out)?;
        Ok(out)
    }
}

/// Parses `net/dev`: two header lines, then `name: 8 rx fields 8 tx fields`.
pub(crate) fn parse_net_dev(
    path: &Path,
    text: &str,
    out: &mut Vec<InterfaceStats>,
) -> Result<(), FileError> {
    let mut n = 0;
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let mut f = rest.split_ascii_whitespace();
        let mut next = |what: &str| -> Result<u64, FileError> {
            let v = f
                .next()
                .ok_or_else(|| FileError::parse(path, format!("{what} missing in {line:?}")))?;
            num(path, what, v)
        };
        if n == out.len() {
            out.push(InterfaceStats::default());
        }
        let i = &mut out[n];
        i.name.clear();
        i.name.push_str(name.trim());
        i.rx_bytes = next("rx bytes")?;
        i.rx_packets = next("rx packets")?;
        i.rx_errors = next("rx errs")?;
        i.rx_dropped = next("rx drop")?;
        for what in ["rx fifo", "rx frame", "rx compressed", "rx multicast"] {
            next(what)?;
        }
        i.tx_bytes = next("tx bytes")?;
        i.tx_packets = next("tx packets")?;
        i.tx_errors = next("tx errs")?;
        i.tx_dropped = next("tx drop")?;
        n += 1;
    }
    out.truncate(n);
    Ok(())
}
