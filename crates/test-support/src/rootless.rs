//! An ordinary user for rootless tests: created once per machine (with subordinate id
//! ranges, as `useradd` gives any new user on Debian), and a private home per test.
//!
//! A test builds a [`UserHome`] (its own `$HOME`, `$XDG_DATA_HOME`, `$XDG_RUNTIME_DIR` and
//! `$XDG_CONFIG_HOME`, owned by the user) and runs programs as the user with
//! [`UserHome::command`]. Programs must live where the user can read them (a build tree
//! under `/root` is not): [`UserHome::install`] copies one there.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The name of the test user.
pub const USER: &str = "basic-docker-rootless";

/// The name of the test user that has no subordinate ids.
pub const USER_WITHOUT_RANGES: &str = "basic-docker-single";

/// The unprivileged user: its ids and first subordinate ids.
#[derive(Debug, Clone)]
pub struct RootlessUser {
    /// Its name.
    pub name: &'static str,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// The first of its subordinate uids (`/etc/subuid`).
    pub subuid_start: u32,
    /// How many subordinate uids it has.
    pub subuid_count: u32,
}

impl RootlessUser {
    /// The test user, created (with a 65536-id subordinate range of uids and gids) if the
    /// machine does not have it yet. Needs root; serialised across processes by a lock.
    pub fn ensure() -> io::Result<RootlessUser> {
        Self::ensure_named(USER, true)
    }

    /// A second test user, [`USER_WITHOUT_RANGES`], with no subordinate ids at all
    /// (`subuid_count` 0): rootless mode maps only its own id.
    pub fn ensure_without_ranges() -> io::Result<RootlessUser> {
        Self::ensure_named(USER_WITHOUT_RANGES, false)
    }

    fn ensure_named(name: &'static str, ranges: bool) -> io::Result<RootlessUser> {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open("/tmp/.basic-docker-rootless-user.lock")?;
        lock_exclusive(&lock)?;
        if lookup(name)?.is_none() {
            run(Command::new("useradd").args([
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                name,
            ]))?;
        }
        let has_uids = subordinate("/etc/subuid", name)?;
        let has_gids = subordinate("/etc/subgid", name)?;
        if ranges && (has_uids.is_none() || has_gids.is_none()) {
            let start = free_subordinate_start()?;
            let range = format!("{start}-{}", start + 65535);
            run(Command::new("usermod").args([
                "--add-subuids",
                &range,
                "--add-subgids",
                &range,
                name,
            ]))?;
        }
        if !ranges {
            // useradd gives every new user a range (login.defs' SUB_UID_COUNT): taken back.
            for (flag, found) in [("--del-subuids", has_uids), ("--del-subgids", has_gids)] {
                if let Some((start, count)) = found {
                    let range = format!("{start}-{}", start + count - 1);
                    run(Command::new("usermod").args([flag, &range, name]))?;
                }
            }
        }
        let (uid, gid) = lookup(name)?.ok_or_else(|| io::Error::other("useradd made no user"))?;
        let (subuid_start, subuid_count) = match ranges {
            true => subordinate("/etc/subuid", name)?
                .ok_or_else(|| io::Error::other("usermod gave the user no subordinate uids"))?,
            false => (0, 0),
        };
        Ok(RootlessUser {
            name,
            uid,
            gid,
            subuid_start,
            subuid_count,
        })
    }

    /// The host uid a container's `id` maps to: 0 is the user, `n` > 0 is `subuid_start + n - 1`.
    pub fn host_uid(&self, container_uid: u32) -> u32 {
        match container_uid {
            0 => self.uid,
            n => self.subuid_start + n - 1,
        }
    }
}

/// One test's home for the user: a directory under `/tmp` owned by the user, holding the
/// XDG directories. Dropping it stops what the user's engine left running there (its
/// namespace holder) and removes the tree.
pub struct UserHome {
    /// The user.
    pub user: RootlessUser,
    dir: PathBuf,
}

impl UserHome {
    /// A fresh home for `user`.
    pub fn new(user: &RootlessUser) -> io::Result<UserHome> {
        let dir = tempfile::Builder::new()
            .prefix("bd-rootless-")
            .tempdir_in("/tmp")?
            .keep();
        for sub in ["", "home", "data", "config", "run", "bin"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path)?;
            std::os::unix::fs::chown(&path, Some(user.uid), Some(user.gid))?;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o700))?;
        }
        // Others may pass through to the programs under bin/.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o711))?;
        fs::set_permissions(dir.join("bin"), fs::Permissions::from_mode(0o755))?;
        Ok(UserHome {
            user: user.clone(),
            dir,
        })
    }

    /// The directory holding everything.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `$HOME`.
    pub fn home(&self) -> PathBuf {
        self.dir.join("home")
    }

    /// `$XDG_DATA_HOME`: the user's store is `<this>/basic-docker`.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// `$XDG_RUNTIME_DIR`.
    pub fn runtime(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// `$XDG_CONFIG_HOME`.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config")
    }

    /// Copies `program` into this home's `bin/` (readable and executable by everyone)
    /// and returns its new path.
    pub fn install(&self, program: &Path) -> io::Result<PathBuf> {
        let name = program
            .file_name()
            .ok_or_else(|| io::Error::other("a program path without a file name"))?;
        let to = self.dir.join("bin").join(name);
        copy_in_another_process(program, &to)?;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
        Ok(to)
    }

    /// `program` as the user, with a clean environment naming this home's directories
    /// (plus `PATH`, `BASIC_DOCKER_LOG` and `BASIC_DOCKER_NETNS_POOL` from ours) and no
    /// supplementary groups.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", self.home())
            .env("USER", self.user.name)
            .env("LOGNAME", self.user.name)
            .env("XDG_DATA_HOME", self.data())
            .env("XDG_RUNTIME_DIR", self.runtime())
            .env("XDG_CONFIG_HOME", self.config())
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .current_dir(self.home())
            .uid(self.user.uid)
            .gid(self.user.gid)
            .stdin(Stdio::null());
        // The engine's log level, and the tests' setting for prepared network namespaces.
        for name in ["BASIC_DOCKER_LOG", "BASIC_DOCKER_NETNS_POOL"] {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        cmd
    }
}

impl Drop for UserHome {
    fn drop(&mut self) {
        // Whatever the user's engine keeps running for this home names it in its
        // environment or command line; stop those processes, ours only.
        kill_processes_of(self.user.uid, &self.dir);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// SIGKILLs the processes of `uid` whose environment mentions `dir`.
fn kill_processes_of(uid: u32, dir: &Path) {
    let needle = dir.as_os_str().as_encoded_bytes();
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let owned = fs::read_to_string(entry.path().join("status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u32>().ok())
            });
        if owned != Some(uid) {
            continue;
        }
        let environ = fs::read(entry.path().join("environ")).unwrap_or_default();
        if environ.windows(needle.len()).any(|w| w == needle) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Copies `from` to `to` with cp(1): a descriptor open for writing on the new program in
/// this process would be inherited by any child another test forks meanwhile, and running
/// the program would then fail with "Text file busy" until that child execs.
pub fn copy_in_another_process(from: &Path, to: &Path) -> io::Result<()> {
    run(Command::new("cp").arg("--").arg(from).arg(to))
}

fn lock_exclusive(file: &fs::File) -> io::Result<()> {
    // flock(1) on descriptor 0, which shares our open file description: the lock it
    // takes is ours until `file` is closed (this crate has no libc binding of its own).
    let status = Command::new("flock")
        .args(["--exclusive", "--timeout", "60", "0"])
        .stdin(file.try_clone()?)
        .status()?;
    if !status.success() {
        return Err(io::Error::other("could not lock the test user's lock file"));
    }
    Ok(())
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// The uid and gid of `name` in /etc/passwd.
fn lookup(name: &str) -> io::Result<Option<(u32, u32)>> {
    let passwd = fs::read_to_string("/etc/passwd")?;
    Ok(passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    }))
}

/// `name`'s first range in `/etc/subuid` or `/etc/subgid`.
fn subordinate(file: &str, name: &str) -> io::Result<Option<(u32, u32)>> {
    let text = match fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() == 3 && f[0] == name).then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))?
    }))
}

/// A start above every range already given out in either file.
fn free_subordinate_start() -> io::Result<u32> {
    let mut end = 100_000u32;
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = fs::read_to_string(file).unwrap_or_default();
        for l in text.lines() {
            let f: Vec<&str> = l.split(':').collect();
            if let (Some(s), Some(c)) = (
                f.get(1).and_then(|s| s.parse::<u32>().ok()),
                f.get(2).and_then(|s| s.parse::<u32>().ok()),
            ) {
                end = end.max(s.saturating_add(c));
            }
        }
    }
    Ok(end)
}
