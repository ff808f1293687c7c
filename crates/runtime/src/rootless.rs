//! Rootless mode: an ordinary user's engine runs in a user namespace of its own, where the
//! user is root and the user's subordinate ids (`/etc/subuid`, `/etc/subgid`) are the other
//! ids, together with a mount namespace that holds the containers' root filesystems.
//!
//! As podman does, one small process per user and state directory (the *namespace holder*)
//! keeps that user namespace and mount namespace alive; every command of the user's joins
//! both with [`enter`] before it starts a thread, so the mounts one command makes (a
//! container's root filesystem) are there for the next (`exec`, `rm`). The holder does
//! nothing but wait; it is made once, by the first command, and its pid is kept in
//! `<dir>/ns-holder.pid`.
//!
//! The ids are mapped by Debian's `newuidmap`/`newgidmap` (package `uidmap`), which check
//! `/etc/subuid` and `/etc/subgid`: the user is 0, the first subordinate id is 1, and so on.
//! A user without subordinate ranges gets their own id only, and the `warning` of
//! [`Entered::Joined`] says what will not work (images whose files belong to other users).

use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::CloneFlags;
use nix::unistd::{ForkResult, Pid};

/// The name the namespace holder shows in `ps` (and the check that a pid is still ours).
const HOLDER_NAME: &str = "bd-ns-holder";

/// Why rootless mode could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// A file or directory of rootless mode could not be used.
    #[error("rootless mode: {what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A system call failed.
    #[error("rootless mode: {what}: {source}")]
    Sys {
        /// What was being done.
        what: &'static str,
        /// The error number.
        source: nix::Error,
    },
    /// `newuidmap` or `newgidmap` refused the mapping.
    #[error(
        "rootless mode: {program} refused to map {ranges}: {stderr} (check /etc/subuid and /etc/subgid, and that the `uidmap` package is installed)"
    )]
    Map {
        /// The program (`newuidmap` or `newgidmap`).
        program: &'static str,
        /// The ranges asked for.
        ranges: String,
        /// What it said.
        stderr: String,
    },
    /// The process has threads, so it cannot join a user namespace (setns(2) refuses).
    #[error(transparent)]
    Threads(#[from] crate::fork_rule::ForkRuleError),
    /// The working directory is not visible in the mount namespace.
    #[error(
        "rootless mode: the working directory {0} cannot be reached in the user's mount namespace"
    )]
    WorkingDirectory(PathBuf),
}

/// What [`enter`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entered {
    /// The process runs as root on the host: rootless mode does not apply.
    NotNeeded,
    /// The process already ran in a user namespace (a command started by one that entered).
    AlreadyInside,
    /// Joined the user's namespaces; `created` when this call made the holder.
    Joined {
        /// Whether the namespace holder was started by this call.
        created: bool,
        /// A warning for the user: set when only the user's own id is mapped.
        warning: Option<String>,
    },
}

/// One range of a user namespace's id map, as `/proc/PID/uid_map` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    /// The first id inside the namespace.
    pub inside: u32,
    /// The first id on the host.
    pub outside: u32,
    /// How many ids.
    pub count: u32,
}

/// Whether this process runs in a user namespace other than the host's: rootless mode, or
/// a container engine nested in one. Creating cgroups, devices, bridges and veths on the
/// host is then out of reach, whatever `geteuid` says.
pub fn active() -> bool {
    !in_initial_user_namespace()
}

/// The uid map of this process's user namespace (one range `0 0 4294967295` on the host).
pub fn uid_map() -> Vec<IdRange> {
    read_map("/proc/self/uid_map")
}

/// The gid map of this process's user namespace.
pub fn gid_map() -> Vec<IdRange> {
    read_map("/proc/self/gid_map")
}

fn read_map(path: &str) -> Vec<IdRange> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some(IdRange {
                inside: f.next()??,
                outside: f.next()??,
                count: f.next()??,
            })
        })
        .collect()
}

/// The host's user namespace maps every id to itself (`0 0 4294967295`).
fn in_initial_user_namespace() -> bool {
    match fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"],
        // No /proc: nothing to go by; the host's is the likely answer.
        Err(_) => true,
    }
}

/// Joins the user's user and mount namespaces, making them (and their holder, recorded
/// under `dir`) first if there are none yet. Does nothing for root on the host or for a
/// process already in a user namespace. Must be called before any thread starts: setns(2)
/// into a user namespace refuses a threaded process. The working directory is kept.
pub fn enter(dir: &Path) -> Result<Entered, RootlessError> {
    if !in_initial_user_namespace() {
        return Ok(Entered::AlreadyInside);
    }
    if nix::unistd::geteuid().is_root() {
        return Ok(Entered::NotNeeded);
    }
    crate::fork_rule::check()?;
    private_dir(dir)?;
    let lock = lock(&dir.join("ns-holder.lock"))?;
    let pid_file = dir.join("ns-holder.pid");
    let (holder, created, warning) = match running_holder(&pid_file) {
        Some(pid) => (pid, false, None),
        None => {
            let (pid, warning) = start_holder()?;
            let write = fs::write(&pid_file, format!("{pid}\n"));
            write.map_err(io_err("write", &pid_file))?;
            (pid, true, warning)
        }
    };
    join(holder)?;
    drop(lock);
    Ok(Entered::Joined { created, warning })
}

/// `dir` and its parents, the last one private to the user.
fn private_dir(dir: &Path) -> Result<(), RootlessError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err("create", dir))
}

/// An exclusive lock on `path`, held until the returned file is dropped: two first
/// commands at once must not make two holders.
fn lock(path: &Path) -> Result<nix::fcntl::Flock<File>, RootlessError> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("open", path))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, source)| {
        RootlessError::Sys {
            what: "locking the namespace holder's lock file",
            source,
        }
    })
}

/// The recorded holder, if it still runs (a pid reused by another process has another
/// name, or another owner).
fn running_holder(pid_file: &Path) -> Option<Pid> {
    let pid: i32 = fs::read_to_string(pid_file).ok()?.trim().parse().ok()?;
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let comm = fs::read_to_string(proc.join("comm")).ok()?;
    let status = fs::read_to_string(proc.join("status")).ok()?;
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u32>()
        .ok()?;
    // A holder that was killed may linger as a zombie until its new parent reaps it.
    let zombie = status
        .lines()
        .any(|l| l.starts_with("State:") && l.contains("Z"));
    let ours = comm.trim() == HOLDER_NAME && uid == nix::unistd::getuid().as_raw();
    (ours && !zombie).then(|| Pid::from_raw(pid))
}

/// Starts the holder: a grandchild (so that no command ever waits for it) that makes the
/// user namespace, waits for its ids to be mapped, then makes the mount namespace and
/// waits forever.
fn start_holder() -> Result<(Pid, Option<String>), RootlessError> {
    let (to_parent_r, to_parent_w) = pipe()?;
    let (to_child_r, to_child_w) = pipe()?;
    // SAFETY: the fork rule was checked by the caller (this process has one thread); the
    // children call only async-signal-safe functions (unshare, read, write, mount, prctl,
    // fork, setsid, close_range, pause, _exit) and allocate nothing.
    match unsafe { nix::unistd::fork() }.map_err(sys("fork"))? {
        ForkResult::Child => {
            drop(to_parent_r);
            drop(to_child_w);
            holder_child(to_parent_w, to_child_r)
        }
        ForkResult::Parent { child } => {
            drop(to_parent_w);
            drop(to_child_r);
            // The first child exits as soon as it has forked the holder.
            let _ = nix::sys::wait::waitpid(child, None);
            let mut from_child = File::from(to_parent_r);
            let mut to_child = File::from(to_child_w);
            let pid = read_pid(&mut from_child)?;
            let warning = map_ids(pid)?;
            to_child
                .write_all(b"m")
                .map_err(io_err("signal", "the namespace holder"))?;
            let mut ready = [0u8; 1];
            from_child
                .read_exact(&mut ready)
                .map_err(io_err("wait for", "the namespace holder's mount namespace"))?;
            Ok((pid, warning))
        }
    }
}

/// The holder's side: never returns.
fn holder_child(to_parent: OwnedFd, from_parent: OwnedFd) -> ! {
    // SAFETY: still single-threaded (a fork of a single-threaded process).
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { .. }) => exit(0),
        Ok(ForkResult::Child) => {}
        Err(_) => exit(1),
    }
    let _ = nix::unistd::setsid();
    if nix::sched::unshare(CloneFlags::CLONE_NEWUSER).is_err() {
        exit(1);
    }
    let pid = nix::unistd::getpid().as_raw().to_ne_bytes();
    if nix::unistd::write(&to_parent, &pid) != Ok(pid.len()) {
        exit(1);
    }
    let mut go = [0u8; 1];
    if nix::unistd::read(&from_parent, &mut go) != Ok(1) {
        exit(1);
    }
    if nix::sched::unshare(CloneFlags::CLONE_NEWNS).is_err() {
        exit(1);
    }
    // Mounts the host makes later still reach us; ours never reach the host.
    let flags = nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE;
    let none: Option<&str> = None;
    if nix::mount::mount(none, "/", none, flags, none).is_err() {
        exit(1);
    }
    // SAFETY: prctl(PR_SET_NAME) copies at most 16 bytes from a NUL-terminated constant.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"bd-ns-holder".as_ptr()) };
    if nix::unistd::write(&to_parent, b"r") != Ok(1) {
        exit(1);
    }
    let _ = nix::unistd::chdir("/");
    // SAFETY: closes descriptors this process owns and no longer uses; it runs no other code.
    unsafe { libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) };
    // Signals from a terminal that is gone are no reason to drop every container's mounts.
    // SAFETY: SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    loop {
        nix::unistd::pause();
    }
}

fn exit(code: i32) -> ! {
    // SAFETY: _exit ends the process without running the parent's atexit handlers or
    // flushing buffers the parent owns.
    unsafe { libc::_exit(code) }
}

fn read_pid(from_child: &mut File) -> Result<Pid, RootlessError> {
    let mut buf = [0u8; 4];
    from_child.read_exact(&mut buf).map_err(io_err(
        "start",
        "the namespace holder (it could not make a user namespace)",
    ))?;
    Ok(Pid::from_raw(i32::from_ne_bytes(buf)))
}

/// Maps the holder's ids: the user's own to 0 and the subordinate ranges after it through
/// newuidmap/newgidmap, or (without ranges or those programs) the user's own id only,
/// written directly, with a warning.
fn map_ids(pid: Pid) -> Result<Option<String>, RootlessError> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let name = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name);
    let subuids = subordinate("/etc/subuid", name.as_deref(), uid);
    let subgids = subordinate("/etc/subgid", name.as_deref(), uid);
    let helpers = which("newuidmap").zip(which("newgidmap"));
    match (subuids, subgids, helpers) {
        (Some(u), Some(g), Some((newuidmap, newgidmap))) => {
            run_map(&newuidmap, "newuidmap", pid, uid, u)?;
            run_map(&newgidmap, "newgidmap", pid, gid, g)?;
            Ok(None)
        }
        (u, g, helpers) => {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let write = |file: &str, text: String| {
                let path = proc.join(file);
                fs::write(&path, text).map_err(io_err("write", &path))
            };
            write("uid_map", format!("0 {uid} 1\n"))?;
            write("setgroups", "deny".into())?;
            write("gid_map", format!("0 {gid} 1\n"))?;
            let why = match helpers {
                None => "newuidmap/newgidmap are not installed (Debian's `uidmap`)".to_string(),
                Some(_) if u.is_none() => "the user has no range in /etc/subuid".to_string(),
                Some(_) => {
                    debug_assert!(g.is_none());
                    "the user has no range in /etc/subgid".to_string()
                }
            };
            Ok(Some(format!(
                "rootless mode maps only your own id ({why}): files of images that belong to other users cannot be extracted, and containers cannot switch users"
            )))
        }
    }
}

fn run_map(
    program: &Path,
    name: &'static str,
    pid: Pid,
    own: u32,
    (start, count): (u32, u32),
) -> Result<(), RootlessError> {
    let args = [
        pid.to_string(),
        "0".into(),
        own.to_string(),
        "1".into(),
        "1".into(),
        start.to_string(),
        count.to_string(),
    ];
    let out = Command::new(program)
        .args(&args)
        .output()
        .map_err(io_err("run", program))?;
    if !out.status.success() {
        return Err(RootlessError::Map {
            program: name,
            ranges: args[1..].join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// The user's first range in `/etc/subuid`-style `file` (by name or by number).
fn subordinate(file: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    let text = fs::read_to_string(file).ok()?;
    let id = id.to_string();
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let ours = f.len() == 3 && (Some(f[0]) == name || f[0] == id);
        let range = (f.get(1)?.parse().ok()?, f.get(2)?.parse().ok()?);
        (ours && range.1 > 0).then_some(range)
    })
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// setns(2) into the holder's user namespace, then its mount namespace, keeping the
/// working directory (entering a mount namespace moves it to the namespace's root).
fn join(holder: Pid) -> Result<(), RootlessError> {
    let cwd = std::env::current_dir().map_err(io_err("read", "the working directory"))?;
    let open = |ns: &str| {
        let path = PathBuf::from(format!("/proc/{holder}/ns/{ns}"));
        File::open(&path).map_err(io_err("open", &path))
    };
    let user = open("user")?;
    let mnt = open("mnt")?;
    nix::sched::setns(&user, CloneFlags::CLONE_NEWUSER)
        .map_err(sys("joining the user namespace"))?;
    nix::sched::setns(&mnt, CloneFlags::CLONE_NEWNS).map_err(sys("joining the mount namespace"))?;
    std::env::set_current_dir(&cwd).map_err(|_| RootlessError::WorkingDirectory(cwd))
}

fn pipe() -> Result<(OwnedFd, OwnedFd), RootlessError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> RootlessError {
    move |source| RootlessError::Sys { what, source }
}

fn io_err(what: &'static str, path: impl AsRef<Path>) -> impl FnOnce(io::Error) -> RootlessError {
    let path = path.as_ref().to_path_buf();
    move |source| RootlessError::Io { what, path, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_are_found_by_name_or_number() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("subuid");
        fs::write(
            &file,
            "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        assert_eq!(subordinate(f, Some("alice"), 1000), Some((100000, 65536)));
        assert_eq!(subordinate(f, Some("carol"), 1001), Some((200000, 1000)));
        assert_eq!(
            subordinate(f, Some("bob"), 1002),
            None,
            "an empty range is none"
        );
        assert_eq!(subordinate(f, None, 4242), None);
    }

    #[test]
    fn the_hosts_map_is_the_initial_namespace() {
        // Tests run on the host (root in CI): one range mapping everything to itself.
        if in_initial_user_namespace() {
            assert_eq!(
                uid_map(),
                vec![IdRange {
                    inside: 0,
                    outside: 0,
                    count: u32::MAX
                }]
            );
            assert!(!active());
        }
    }
}
