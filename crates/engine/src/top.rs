//! `top`: the processes of a running container as the host sees them, in the columns
//! of `ps -ef` (docker's default `ps_args`).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use basic_monitor::{ProcessSample, ProcessSampler};
use bollard_stubs::models::ContainerTopResponse;

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};

/// `ps -ef`'s columns, docker's `Titles`.
pub const TOP_TITLES: [&str; 8] = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"];

impl Engine {
    /// The processes of running (or paused) container `query`: docker's `Titles`
    /// ([`TOP_TITLES`]) and one row per process, ordered by host PID. A container that is
    /// not running is a conflict, as docker answers it. The processes are its cgroup's, or
    /// without a cgroup of its own (rootless mode on cgroup v1), its pid namespace's.
    pub fn top(&self, query: &str) -> Result<ContainerTopResponse> {
        let c = self.container(query)?;
        let pid = self.running_pid(&c)?;
        let not_running = || EngineError::Conflict(format!("Container {} is not running", c.id()));
        // The init may exit between the status and the cgroup read: then it is simply
        // not running any more.
        let mut sampler = crate::stats::sampler_for(c.id(), pid).map_err(|_| not_running())?;
        let mut pids = Vec::new();
        sampler.pids(&mut pids).map_err(|source| match source {
            // The process tree's init exited meanwhile.
            basic_monitor::CgroupError::NoProcess { .. } => not_running(),
            source => EngineError::Metrics {
                container: c.id().to_string(),
                what: "listing the processes",
                source,
            },
        })?;
        pids.sort_unstable();
        let users = users();
        let clock = Clock::read();
        let mut ps = ProcessSampler::new("/proc");
        let processes = pids
            .iter()
            // A process that exited meanwhile is simply not listed.
            .filter_map(|pid| ps.sample(*pid).ok())
            .map(|p| row(&p, &users, &clock))
            .collect();
        Ok(ContainerTopResponse {
            titles: Some(TOP_TITLES.iter().map(|t| t.to_string()).collect()),
            processes: Some(processes),
        })
    }

    /// The host PID of `c`'s init while it runs or is paused; docker's conflict otherwise.
    pub(crate) fn running_pid(&self, c: &Container) -> Result<i32> {
        self.status(c)
            .pid()
            .ok_or_else(|| EngineError::Conflict(format!("Container {} is not running", c.id())))
    }
}

/// Boot time and now, to place processes' start times.
struct Clock {
    boot_unix: u64,
    uptime_ns: u64,
    now_unix: u64,
}

impl Clock {
    fn read() -> Clock {
        let boot_unix = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        let uptime_ns = std::fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0, |s| (s * 1e9) as u64);
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Clock {
            boot_unix,
            uptime_ns,
            now_unix,
        }
    }
}

fn row(p: &ProcessSample, users: &HashMap<u32, String>, clock: &Clock) -> Vec<String> {
    let cpu_s = p.cpu_time_ns() / 1_000_000_000;
    // ps's C: CPU time over the process's lifetime, %.
    let elapsed = clock.uptime_ns.saturating_sub(p.start_time_ns);
    let c = (p.cpu_time_ns() as u128 * 100)
        .checked_div(elapsed as u128)
        .unwrap_or(0)
        .min(99);
    let started = clock.boot_unix + p.start_time_ns / 1_000_000_000;
    vec![
        users
            .get(&p.uid)
            .cloned()
            .unwrap_or_else(|| p.uid.to_string()),
        p.pid.to_string(),
        p.ppid.to_string(),
        c.to_string(),
        stime(started, clock.now_unix),
        tty(p.pid),
        format!(
            "{:02}:{:02}:{:02}",
            cpu_s / 3600,
            cpu_s / 60 % 60,
            cpu_s % 60
        ),
        cmdline(p),
    ]
}

/// `HH:MM` when it started today (UTC), else `MonDD`, as ps's STIME.
fn stime(started_unix: u64, now_unix: u64) -> String {
    let utc = |seconds: u64| {
        let t = jiff::Timestamp::from_second(i64::try_from(seconds).unwrap_or(0))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        jiff::tz::Offset::UTC.to_datetime(t)
    };
    let (started, now) = (utc(started_unix), utc(now_unix));
    if started.date() == now.date() {
        started.strftime("%H:%M").to_string()
    } else {
        started.strftime("%b%d").to_string()
    }
}

/// The controlling terminal from `/proc/PID/stat`'s `tty_nr`, or `?`.
fn tty(pid: i32) -> String {
    let tty_nr = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            // Fields after comm: state ppid pgrp session tty_nr.
            rest.split_whitespace().nth(4)?.parse::<u32>().ok()
        })
        .unwrap_or(0);
    tty_name(tty_nr)
}

/// The name ps gives device number `tty_nr` (0: none, `?`).
fn tty_name(tty_nr: u32) -> String {
    if tty_nr == 0 {
        return "?".to_string();
    }
    let major = (tty_nr >> 8) & 0xfff;
    let minor = (tty_nr & 0xff) | ((tty_nr >> 12) & 0xfff00);
    match major {
        136..=143 => format!("pts/{}", (major - 136) * 256 + minor),
        4 if minor < 64 => format!("tty{minor}"),
        4 => format!("ttyS{}", minor - 64),
        5 if minor == 0 => "tty".to_string(),
        5 if minor == 1 => "console".to_string(),
        _ => format!("{major}:{minor}"),
    }
}

/// The command line, or `[comm]` for a process without one (as ps). The container's
/// processes write their own command lines, so control characters (a newline that would
/// forge a row, a terminal escape) are shown as `?`, as ps shows them.
fn cmdline(p: &ProcessSample) -> String {
    let raw = std::fs::read(format!("/proc/{}/cmdline", p.pid)).unwrap_or_default();
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| printable(&String::from_utf8_lossy(a)))
        .collect();
    if args.is_empty() {
        format!("[{}]", printable(&p.comm))
    } else {
        args.join(" ")
    }
}

/// `text` with each control character replaced by `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The host's user names by uid (ps runs on the host, so it shows those).
fn users() -> HashMap<u32, String> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stime_is_a_clock_today_and_a_date_before() {
        // 2024-03-05 10:07 UTC, and the same day later.
        let t = 1_709_633_220;
        assert_eq!(stime(t, t + 3600), "10:07");
        assert_eq!(stime(t, t + 2 * 86400), "Mar05");
    }

    #[test]
    fn control_characters_are_shown_as_question_marks() {
        assert_eq!(printable("a\nroot 1\x1b[2J\tb"), "a?root 1?[2J?b");
        assert_eq!(printable("sleep 300"), "sleep 300");
    }

    #[test]
    fn terminals_are_named_as_ps_names_them() {
        assert_eq!(tty_name(0), "?");
        assert_eq!(tty_name(136 << 8), "pts/0");
        assert_eq!(tty_name((136 << 8) | 5), "pts/5");
        assert_eq!(tty_name((4 << 8) | 1), "tty1");
        assert_eq!(tty_name((5 << 8) | 1), "console");
    }
}
