//! The host firewall rules of a bridge network, kept per network instead of
//! per container.
//!
//! The reference plugins keep them per container: `bridge` with `ipMasq`
//! makes a NAT chain and three rules for every address, and `firewall`
//! checks and adds its chains and rules on every `ADD` — about 25 `iptables`
//! processes per container start and 10 per stop, 1.2 to 20 ms each under
//! nf_tables (docs/performance.md, Networking). The rules here do the same
//! for a whole network, are written in one `iptables-restore` transaction
//! when the network is first used after a boot, and cost a container nothing:
//!
//! - outbound masquerade, as `ipMasq` does per address:
//!   `nat POSTROUTING -s SUBNET ! -d 224.0.0.0/4 ! -o BRIDGE -j MASQUERADE`;
//! - forwarding accepted from the bridge, and back to it for established
//!   connections, in the firewall plugin's `CNI-FORWARD` chain (after its
//!   `CNI-ADMIN` overrides), for hosts whose `FORWARD` policy is `DROP`;
//! - isolation from other bridges: the firewall plugin's own `same-bridge`
//!   rules, with its chains and comment, so that networks still running the
//!   plugin and networks set up here keep each other out.
//!
//! Everything goes through the `iptables` commands, so the rules land in
//! whichever backend (nf_tables or legacy) the host, and the plugins, use.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use ipnet::Ipv4Net;

use crate::error::{Error, Result};

/// The firewall plugin's chains this module shares.
const CNI_FORWARD: &str = "CNI-FORWARD";
const CNI_ADMIN: &str = "CNI-ADMIN";
const STAGE_1: &str = "CNI-ISOLATION-STAGE-1";
const STAGE_2: &str = "CNI-ISOLATION-STAGE-2";
/// The firewall plugin's comments, byte for byte: its `-C` checks must find these rules.
const ISOLATION_COMMENT: &str = "CNI firewall plugin rules (ingressPolicy: same-bridge)";
const FORWARD_COMMENT: &str = "CNI firewall plugin rules";
const ADMIN_COMMENT: &str = "CNI firewall plugin admin overrides";

/// Serializes the read-then-write of rule sets between processes (engines with
/// different roots share the host's tables and the default bridge).
const LOCK_FILE: &str = "/run/lock/basic-network-rules.lock";

/// One bridge network's rules: its device and its subnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRules {
    /// The bridge device (`-i`/`-o` of every rule).
    pub bridge: String,
    /// The containers' subnet (masqueraded when it leaves through another interface).
    pub subnet: Ipv4Net,
}

/// The host's packet filter as bridge networks use it. [`Iptables`] is the
/// real one; tests substitute a recorder.
pub trait Firewall: Send + Sync + std::fmt::Debug {
    /// Adds whichever of the network's rules are missing.
    fn ensure(&self, rules: &BridgeRules) -> Result<()>;
    /// Deletes every rule naming `bridge`. The shared chains and their jumps
    /// stay, as the firewall plugin leaves them.
    fn remove(&self, bridge: &str) -> Result<()>;
}

/// Rules through `iptables-save` and `iptables-restore --noflush`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Iptables;

impl Firewall for Iptables {
    fn ensure(&self, rules: &BridgeRules) -> Result<()> {
        let _lock = host_lock()?;
        let script = rules.restore_script(&Table::read("filter")?, &Table::read("nat")?);
        restore(&script)
    }

    fn remove(&self, bridge: &str) -> Result<()> {
        let _lock = host_lock()?;
        let script = deletion_script(bridge, &Table::read("filter")?, &Table::read("nat")?);
        restore(&script)
    }
}

impl BridgeRules {
    /// `iptables-restore --noflush` input adding what `filter` and `nat` lack
    /// (empty when nothing is missing). Chains are created with `-N` only when
    /// absent: declaring an existing chain (`:NAME`) would flush it.
    fn restore_script(&self, filter: &Table, nat: &Table) -> String {
        let br = &self.bridge;
        let mut f = Edits::new(filter);
        for chain in [CNI_FORWARD, CNI_ADMIN, STAGE_1, STAGE_2] {
            f.chain(chain);
        }
        forward_jumps(&mut f);
        let tag = format!("-m comment --comment \"{ISOLATION_COMMENT}\"");
        f.first(STAGE_1, &format!("-i {br} ! -o {br} {tag} -j {STAGE_2}"));
        f.last(STAGE_1, &format!("{tag} -j RETURN"));
        f.first(STAGE_2, &format!("-o {br} {tag} -j DROP"));
        f.last(STAGE_2, &format!("{tag} -j RETURN"));
        let admin = format!("-m comment --comment \"{ADMIN_COMMENT}\" -j {CNI_ADMIN}");
        f.first(CNI_FORWARD, &admin);
        let back = format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT");
        f.last(CNI_FORWARD, &back);
        f.last(CNI_FORWARD, &format!("-i {br} -j ACCEPT"));

        let mut n = Edits::new(nat);
        let subnet = self.subnet;
        let masquerade = format!("-s {subnet} ! -d 224.0.0.0/4 ! -o {br} -j MASQUERADE");
        n.last("POSTROUTING", &masquerade);
        [f, n].iter().map(Edits::section).collect()
    }
}

/// `FORWARD`'s jumps into the isolation chain and then `CNI-FORWARD`, in that
/// order: the accepts there must not be reached before isolation is judged.
fn forward_jumps(f: &mut Edits<'_>) {
    let isolation = format!("-m comment --comment \"{ISOLATION_COMMENT}\" -j {STAGE_1}");
    let forward = format!("-m comment --comment \"{FORWARD_COMMENT}\" -j {CNI_FORWARD}");
    let at = |spec: &str| f.table.position("FORWARD", spec);
    let (has_isolation, has_forward) = (at(&isolation), at(&forward));
    if has_forward.is_none() {
        f.lines.push(format!("-I FORWARD 1 {forward}"));
    }
    match (has_isolation, has_forward) {
        (Some(i), Some(j)) if i < j => {}
        (Some(_), _) => {
            f.lines.push(format!("-D FORWARD {isolation}"));
            f.lines.push(format!("-I FORWARD 1 {isolation}"));
        }
        (None, _) => f.lines.push(format!("-I FORWARD 1 {isolation}")),
    }
}

/// `iptables-restore --noflush` input deleting the rules of `bridge`: by
/// number, highest first, so that the lower numbers stay valid.
fn deletion_script(bridge: &str, filter: &Table, nat: &Table) -> String {
    let mut f = Edits::new(filter);
    for chain in [STAGE_1, STAGE_2, CNI_FORWARD] {
        f.delete_naming(chain, bridge);
    }
    let mut n = Edits::new(nat);
    n.delete_naming("POSTROUTING", bridge);
    [f, n].iter().map(Edits::section).collect()
}

/// Lines for one table of a restore script.
struct Edits<'a> {
    table: &'a Table,
    lines: Vec<String>,
}

impl<'a> Edits<'a> {
    fn new(table: &'a Table) -> Self {
        Edits {
            table,
            lines: Vec::new(),
        }
    }

    fn chain(&mut self, chain: &str) {
        if !self.table.chains.iter().any(|c| c == chain) {
            self.lines.push(format!("-N {chain}"));
        }
    }

    /// Inserts `spec` at the top of `chain` unless it is there.
    fn first(&mut self, chain: &str, spec: &str) {
        if !self.table.has(chain, spec) {
            self.lines.push(format!("-I {chain} 1 {spec}"));
        }
    }

    /// Appends `spec` to `chain` unless it is there.
    fn last(&mut self, chain: &str, spec: &str) {
        if !self.table.has(chain, spec) {
            self.lines.push(format!("-A {chain} {spec}"));
        }
    }

    fn delete_naming(&mut self, chain: &str, bridge: &str) {
        let numbers = rule_numbers_naming(&self.table.rules, chain, bridge);
        for n in numbers.into_iter().rev() {
            self.lines.push(format!("-D {chain} {n}"));
        }
    }

    fn section(&self) -> String {
        if self.lines.is_empty() {
            return String::new();
        }
        format!("*{}\n{}\nCOMMIT\n", self.table.name, self.lines.join("\n"))
    }
}

/// One table's chains and rules, as `iptables-save` prints them.
#[derive(Debug, Default, PartialEq)]
struct Table {
    name: &'static str,
    chains: Vec<String>,
    /// `-A CHAIN ...` lines, in order.
    rules: Vec<String>,
}

impl Table {
    fn read(name: &'static str) -> Result<Table> {
        let text = run("iptables-save", &["-t", name], None)?;
        Ok(Table::parse(name, &text))
    }

    fn parse(name: &'static str, text: &str) -> Table {
        let chains = text
            .lines()
            .filter_map(|l| l.strip_prefix(':'))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect();
        let rules = text
            .lines()
            .filter(|l| l.starts_with("-A "))
            .map(str::to_string)
            .collect();
        Table {
            name,
            chains,
            rules,
        }
    }

    fn has(&self, chain: &str, spec: &str) -> bool {
        self.position(chain, spec).is_some()
    }

    /// Where `spec` is in `chain`, counting that chain's rules only.
    fn position(&self, chain: &str, spec: &str) -> Option<usize> {
        let prefix = format!("-A {chain} ");
        self.rules
            .iter()
            .filter(|r| r.starts_with(&prefix))
            .position(|r| r[prefix.len()..] == *spec)
    }
}

/// 1-based positions of the rules of `chain` (`-A` lines as `iptables-save`
/// prints them) whose in or out interface is `bridge`.
pub(crate) fn rule_numbers_naming(rules: &[String], chain: &str, bridge: &str) -> Vec<usize> {
    let prefix = format!("-A {chain} ");
    rules
        .iter()
        .filter(|l| l.starts_with(&prefix))
        .enumerate()
        .filter(|(_, rule)| {
            let words: Vec<&str> = rule.split_whitespace().collect();
            words
                .windows(2)
                .any(|w| (w[0] == "-i" || w[0] == "-o") && w[1] == bridge)
        })
        .map(|(i, _)| i + 1)
        .collect()
}

fn restore(script: &str) -> Result<()> {
    if script.is_empty() {
        return Ok(());
    }
    run("iptables-restore", &["--noflush", "-w"], Some(script)).map(|_| ())
}

fn host_lock() -> Result<File> {
    let path = Path::new(LOCK_FILE);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    crate::manager::lock_file(path)
}

/// Runs a host tool (found in the sbin directories too), returning its standard output.
pub(crate) fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let command = format!("{program} {}", args.join(" "));
    let fail = |message: String| Error::HostTool {
        command: command.clone(),
        message,
    };
    let mut child = Command::new(program)
        .args(args)
        .env("PATH", crate::cni::plugin_search_path())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Scripts are a few lines: they fit the pipe, so writing before reading cannot block.
        pipe.write_all(text.as_bytes())
            .map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // iptables-nft warns about legacy tables on every run; that is not the error.
        let message: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("# Warning:"))
            .collect();
        return Err(fail(message.join(" ").trim().to_string()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> BridgeRules {
        BridgeRules {
            bridge: "br-a".into(),
            subnet: "10.7.0.0/24".parse().unwrap(),
        }
    }

    /// What a host shows after `ensure` of `br-a` (recorded under nf_tables).
    const SET_UP: &str = "*filter\n\
        :INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n\
        :CNI-ADMIN - [0:0]\n:CNI-FORWARD - [0:0]\n\
        :CNI-ISOLATION-STAGE-1 - [0:0]\n:CNI-ISOLATION-STAGE-2 - [0:0]\n\
        -A FORWARD -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-1\n\
        -A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD\n\
        -A CNI-FORWARD -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN\n\
        -A CNI-FORWARD -o br-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
        -A CNI-FORWARD -i br-a -j ACCEPT\n\
        -A CNI-ISOLATION-STAGE-1 -i br-a ! -o br-a -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2\n\
        -A CNI-ISOLATION-STAGE-1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j RETURN\n\
        -A CNI-ISOLATION-STAGE-2 -o br-a -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j DROP\n\
        -A CNI-ISOLATION-STAGE-2 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j RETURN\n\
        COMMIT\n";
    const NAT_SET_UP: &str = "*nat\n:POSTROUTING ACCEPT [0:0]\n\
        -A POSTROUTING -m comment --comment \"CNI portfwd requiring masquerade\" -j CNI-HOSTPORT-MASQ\n\
        -A POSTROUTING -s 10.7.0.0/24 ! -d 224.0.0.0/4 ! -o br-a -j MASQUERADE\n\
        COMMIT\n";

    #[test]
    fn an_empty_host_gets_chains_jumps_and_the_networks_rules_in_one_script() {
        let empty = Table::parse("filter", ":FORWARD ACCEPT [0:0]\n");
        let nat = Table::parse("nat", "");
        let script = rules().restore_script(&empty, &nat);
        let expected = "*filter\n\
            -N CNI-FORWARD\n-N CNI-ADMIN\n-N CNI-ISOLATION-STAGE-1\n-N CNI-ISOLATION-STAGE-2\n\
            -I FORWARD 1 -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD\n\
            -I FORWARD 1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-1\n\
            -I CNI-ISOLATION-STAGE-1 1 -i br-a ! -o br-a -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j CNI-ISOLATION-STAGE-2\n\
            -A CNI-ISOLATION-STAGE-1 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j RETURN\n\
            -I CNI-ISOLATION-STAGE-2 1 -o br-a -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j DROP\n\
            -A CNI-ISOLATION-STAGE-2 -m comment --comment \"CNI firewall plugin rules (ingressPolicy: same-bridge)\" -j RETURN\n\
            -I CNI-FORWARD 1 -m comment --comment \"CNI firewall plugin admin overrides\" -j CNI-ADMIN\n\
            -A CNI-FORWARD -o br-a -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
            -A CNI-FORWARD -i br-a -j ACCEPT\n\
            COMMIT\n\
            *nat\n\
            -A POSTROUTING -s 10.7.0.0/24 ! -d 224.0.0.0/4 ! -o br-a -j MASQUERADE\n\
            COMMIT\n";
        assert_eq!(script, expected);
    }

    #[test]
    fn a_host_that_has_everything_gets_no_script() {
        let filter = Table::parse("filter", SET_UP);
        let nat = Table::parse("nat", NAT_SET_UP);
        assert_eq!(rules().restore_script(&filter, &nat), "");
    }

    #[test]
    fn a_second_bridge_adds_only_its_own_rules() {
        let filter = Table::parse("filter", SET_UP);
        let nat = Table::parse("nat", NAT_SET_UP);
        let other = BridgeRules {
            bridge: "br-b".into(),
            subnet: "10.8.0.0/24".parse().unwrap(),
        };
        let script = other.restore_script(&filter, &nat);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines.len(), 9, "{script}");
        assert!(lines.iter().all(|l| l.starts_with('*')
            || *l == "COMMIT"
            || l.contains("br-b")
            || l.contains("10.8.0.0/24")));
    }

    #[test]
    fn a_missing_forward_jump_goes_in_behind_isolation() {
        let without: String = SET_UP
            .lines()
            .filter(|l| !l.ends_with("-j CNI-FORWARD"))
            .map(|l| format!("{l}\n"))
            .collect();
        let filter = Table::parse("filter", &without);
        let script = rules().restore_script(&filter, &Table::parse("nat", NAT_SET_UP));
        let forward: Vec<&str> = script.lines().filter(|l| l.contains(" FORWARD ")).collect();
        assert_eq!(forward.len(), 3, "{script}");
        assert!(forward[0].starts_with("-I FORWARD 1") && forward[0].ends_with(CNI_FORWARD));
        assert!(forward[1].starts_with("-D FORWARD") && forward[1].ends_with(STAGE_1));
        assert!(forward[2].starts_with("-I FORWARD 1") && forward[2].ends_with(STAGE_1));
    }

    #[test]
    fn isolation_behind_the_accepts_is_moved_in_front() {
        let mut lines: Vec<&str> = SET_UP.lines().collect();
        let isolation = lines.iter().position(|l| l.ends_with(STAGE_1)).unwrap();
        let jump = lines.remove(isolation);
        lines.insert(isolation + 1, jump);
        let swapped: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let filter = Table::parse("filter", &swapped);
        let script = rules().restore_script(&filter, &Table::parse("nat", NAT_SET_UP));
        let forward: Vec<&str> = script.lines().filter(|l| l.contains(" FORWARD ")).collect();
        assert_eq!(forward.len(), 2, "{script}");
        assert!(forward[0].starts_with("-D FORWARD") && forward[0].ends_with(STAGE_1));
        assert!(forward[1].starts_with("-I FORWARD 1") && forward[1].ends_with(STAGE_1));
    }

    #[test]
    fn removal_deletes_the_bridges_rules_highest_first_and_keeps_shared_ones() {
        let second = SET_UP.replace(
            "-A CNI-FORWARD -i br-a -j ACCEPT\n",
            "-A CNI-FORWARD -i br-a -j ACCEPT\n-A CNI-FORWARD -i br-b -j ACCEPT\n-A CNI-FORWARD -o br-a -j DROP\n",
        );
        let filter = Table::parse("filter", &second);
        let nat = Table::parse("nat", NAT_SET_UP);
        let script = deletion_script("br-a", &filter, &nat);
        assert_eq!(
            script,
            "*filter\n\
             -D CNI-ISOLATION-STAGE-1 1\n\
             -D CNI-ISOLATION-STAGE-2 1\n\
             -D CNI-FORWARD 5\n-D CNI-FORWARD 3\n-D CNI-FORWARD 2\n\
             COMMIT\n\
             *nat\n-D POSTROUTING 2\nCOMMIT\n"
        );
        assert_eq!(deletion_script("br-c", &filter, &nat), "");
    }

    #[test]
    fn rules_are_found_by_interface_not_by_prefix() {
        let rules: Vec<String> = [
            "-A CNI-ISOLATION-STAGE-1 -i br-a ! -o br-a -m comment --comment \"x\" -j CNI-ISOLATION-STAGE-2",
            "-A CNI-ISOLATION-STAGE-1 -i br-b ! -o br-b -j CNI-ISOLATION-STAGE-2",
            "-A CNI-ISOLATION-STAGE-1 -j RETURN",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(rule_numbers_naming(&rules, STAGE_1, "br-b"), [2]);
        assert_eq!(rule_numbers_naming(&rules, STAGE_1, "br-a"), [1]);
        assert!(rule_numbers_naming(&rules, STAGE_1, "br").is_empty());
    }
}
