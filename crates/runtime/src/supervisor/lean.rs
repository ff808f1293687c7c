//! The handoff between a supervisor's own program and the small one that runs while the
//! container does (see [`crate::supervisor`]).
//!
//! Both are the same process: the init stays its child. The descriptors cross the
//! `execve` (their close-on-exec flag cleared for it) and their numbers go on the small
//! program's command line, `PROGRAM [ARGS] --handoff KEY=VALUE… -- ORIGINAL-ARGV…`; the
//! small program comes back by executing the original program (through a descriptor
//! opened on `/proc/self/exe`, so that a sealed copy stays the one that runs) with the
//! original arguments and [`RESUMED_ENV`] in its environment.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::Output;
use super::pump::{self, Out};
use crate::attach::{Endpoint, Hub, Serve};
use crate::logfile::{LogWriter, Rotation, Stream};

/// Set in the environment of the original program when the small one executes it again:
/// `PID,RESTARTS,DELAY_MS,STARTED_NS,LISTENER_FD|-,KEPT_FD:KEPT_FD…`.
pub const RESUMED_ENV: &str = "_BASIC_RUNTIME_SUPERVISOR_RESUMED";

/// The small program a supervisor runs while its container runs (see
/// [`Supervisor::lean`](super::Supervisor::lean)): `program` with `args`, which must call
/// [`lean_main`].
#[derive(Debug, Clone)]
pub struct Lean {
    /// The program (`basic-docker-supervise`).
    pub program: PathBuf,
    /// Its arguments (after `argv[0]`, which is `basic-docker-supervise`) before the
    /// handoff's.
    pub args: Vec<OsString>,
    /// Descriptors of the caller's to keep open across both executions (a lock held for
    /// the whole supervision); [`Resumed::kept`] gives them back.
    pub keep: Vec<RawFd>,
}

/// Where the supervision was when it left for the small program.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resume {
    pub(crate) restarts: u32,
    pub(crate) delay: Duration,
    /// CLOCK_MONOTONIC at the start, in nanoseconds.
    pub(crate) started: u64,
}

/// A supervision that this process's previous program image left to the small program,
/// which has executed this program again: give it to
/// [`Supervisor::resume`](super::Supervisor::resume).
#[derive(Debug)]
pub struct Resumed {
    pub(crate) pid: i32,
    pub(crate) restarts: u32,
    pub(crate) delay: Duration,
    started: u64,
    pub(crate) listener: Option<OwnedFd>,
    kept: Vec<RawFd>,
}

impl Resumed {
    /// The supervision this program continues, when the small program executed it (see
    /// `_BASIC_RUNTIME_SUPERVISOR_RESUMED`); `None` otherwise. Reads the environment: call it
    /// before any thread starts (a supervisor has none).
    pub fn from_env() -> Option<Resumed> {
        let value = std::env::var(RESUMED_ENV).ok()?;
        let fields: Vec<&str> = value.split(',').collect();
        let [pid, restarts, delay, started, listener, kept] = fields[..] else {
            return None;
        };
        let fd = |s: &str| s.parse::<RawFd>().ok().filter(|fd| *fd > 2);
        Some(Resumed {
            pid: pid.parse().ok()?,
            restarts: restarts.parse().ok()?,
            delay: Duration::from_millis(delay.parse().ok()?),
            started: started.parse().ok()?,
            // SAFETY: the small program passed this descriptor open to this program, for it
            // alone (the attach socket it was given).
            listener: fd(listener).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            kept: kept.split(':').filter_map(fd).collect(),
        })
    }

    /// The descriptors [`Lean::keep`] named, open still, in that order. They are not
    /// close-on-exec.
    pub fn kept(&self) -> &[RawFd] {
        &self.kept
    }

    /// How long the start that ended has run.
    pub(crate) fn ran(&self) -> Duration {
        Duration::from_nanos(monotonic_now().saturating_sub(self.started))
    }
}

/// CLOCK_MONOTONIC now, in nanoseconds (the same clock in both programs).
pub(crate) fn monotonic_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into `ts`, a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What the supervisor's program hands to the small one.
pub(crate) struct Handoff<'a> {
    pub(crate) id: &'a str,
    pub(crate) pid: i32,
    pub(crate) outs: &'a [OwnedFd],
    pub(crate) master: Option<&'a OwnedFd>,
    pub(crate) relayed_stdin: Option<&'a OwnedFd>,
    pub(crate) attach_stdin: Option<&'a OwnedFd>,
    pub(crate) terminal_input: bool,
    pub(crate) output: &'a Output,
    pub(crate) hub: Option<&'a Hub>,
    pub(crate) stdin_once: bool,
    pub(crate) forward_signals: bool,
    pub(crate) resume: Resume,
}

impl Handoff<'_> {
    /// Executes `lean`; returns only with why that failed (the descriptors are then
    /// close-on-exec again and the caller supervises on by itself).
    pub(crate) fn exec(&self, lean: &Lean) -> io::Error {
        let back = match std::fs::File::open("/proc/self/exe") {
            Ok(f) => OwnedFd::from(f),
            Err(e) => return e,
        };
        let mut handed: Vec<RawFd> = vec![back.as_raw_fd()];
        let mut args: Vec<OsString> = vec!["basic-docker-supervise".into()];
        args.extend(lean.args.iter().cloned());
        args.push("--handoff".into());
        let mut kv = |key: &str, value: &OsStr| {
            let mut arg = OsString::from(key);
            arg.push("=");
            arg.push(value);
            args.push(arg);
        };
        let mut fd_arg = |key: &str, fd: Option<&OwnedFd>, kv: &mut dyn FnMut(&str, &OsStr)| {
            if let Some(fd) = fd {
                handed.push(fd.as_raw_fd());
                kv(key, OsStr::new(&fd.as_raw_fd().to_string()));
            }
        };
        kv("id", OsStr::new(self.id));
        kv("pid", OsStr::new(&self.pid.to_string()));
        fd_arg("return", Some(&back), &mut kv);
        fd_arg("stdout", self.outs.first(), &mut kv);
        fd_arg("stderr", self.outs.get(1), &mut kv);
        fd_arg("master", self.master, &mut kv);
        fd_arg("relayed-stdin", self.relayed_stdin, &mut kv);
        fd_arg("attach-stdin", self.attach_stdin, &mut kv);
        let listener = self
            .hub
            .map(|h| h.listener().try_clone_to_owned())
            .transpose();
        let listener = match listener {
            Ok(l) => l,
            Err(e) => return e,
        };
        fd_arg("listener", listener.as_ref(), &mut kv);
        if let Some(hub) = self.hub {
            kv("attach-dir", hub.dir_path().as_os_str());
            kv("console", OsStr::new(flag(hub.tty())));
        }
        if let Some((path, rotation)) = &self.output.log {
            kv("log", path.as_os_str());
            let rotation = format!("{},{}", rotation.max_size, rotation.max_files);
            kv("rotation", OsStr::new(&rotation));
        }
        kv("echo", OsStr::new(flag(self.output.echo)));
        kv("terminal-input", OsStr::new(flag(self.terminal_input)));
        kv("stdin-once", OsStr::new(flag(self.stdin_once)));
        kv("forward", OsStr::new(flag(self.forward_signals)));
        let keep: Vec<String> = lean.keep.iter().map(|fd| fd.to_string()).collect();
        kv("keep", OsStr::new(&keep.join(":")));
        let r = self.resume;
        let resume = format!("{},{},{}", r.restarts, r.delay.as_millis(), r.started);
        kv("resume", OsStr::new(&resume));
        args.push("--".into());
        args.extend(std::env::args_os());
        for fd in handed.iter().chain(&lean.keep) {
            set_cloexec(*fd, false);
        }
        let program = lean.program.as_os_str().to_owned();
        let e = exec(Exec::Path(program), &args, None);
        for fd in &handed {
            set_cloexec(*fd, true);
        }
        e
    }
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

/// The small program's `main`: takes over the supervision handed to it on its command
/// line (see the module's documentation), runs the container's pump until the init has
/// exited, and executes the original program again to reap it and go on. Run from a
/// sealed copy of itself, as every program that starts or keeps containers
/// ([`crate::sealed_exe`]).
pub fn lean_main() -> ExitCode {
    // Descriptors this program was handed are close-on-exec only once it owns them.
    if let Err(e) = crate::sealed_exe::ensure() {
        eprintln!("basic-docker-supervise: {e}");
        return ExitCode::from(125);
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some(handed) = parse(&args) else {
        eprintln!(
            "basic-docker-supervise: this program is started by a container supervisor, with a --handoff; it is no command for a user"
        );
        return ExitCode::from(125);
    };
    let id = handed.id.clone();
    let code = handed.run();
    eprintln!(
        "basic-docker-supervise: container {}: could not return to the supervisor's program: {code}",
        id
    );
    ExitCode::from(125)
}

/// A handoff as the small program reads it.
struct Handed {
    id: String,
    pid: i32,
    back: OwnedFd,
    back_argv: Vec<OsString>,
    outs: Vec<(OwnedFd, Stream)>,
    master: Option<OwnedFd>,
    relayed_stdin: Option<OwnedFd>,
    attach_stdin: Option<OwnedFd>,
    listener: Option<OwnedFd>,
    attach_dir: Option<PathBuf>,
    console: bool,
    log: Option<(PathBuf, Rotation)>,
    echo: bool,
    terminal_input: bool,
    stdin_once: bool,
    forward: bool,
    keep: String,
    resume: String,
}

fn parse(args: &[OsString]) -> Option<Handed> {
    let at = args.iter().position(|a| a == "--handoff")?;
    let end = args.iter().position(|a| a == "--")?;
    let mut get = std::collections::HashMap::new();
    for arg in &args[at + 1..end] {
        let bytes = arg.as_bytes();
        let eq = bytes.iter().position(|&b| b == b'=')?;
        get.insert(
            String::from_utf8_lossy(&bytes[..eq]).into_owned(),
            OsStr::from_bytes(&bytes[eq + 1..]).to_owned(),
        );
    }
    let text = |k: &str| get.get(k).map(|v| v.to_string_lossy().into_owned());
    let on = |k: &str| text(k).as_deref() == Some("1");
    let fd = |k: &str| {
        let n: RawFd = text(k)?.parse().ok().filter(|n| *n > 2)?;
        set_cloexec(n, true);
        // SAFETY: the supervisor's program handed this descriptor to this program alone,
        // open, under this key.
        Some(unsafe { OwnedFd::from_raw_fd(n) })
    };
    let rotation = text("rotation").and_then(|r| {
        let (size, files) = r.split_once(',')?;
        Some(Rotation {
            max_size: size.parse().ok()?,
            max_files: files.parse().ok()?,
        })
    });
    let mut outs = Vec::new();
    for (key, stream) in [("stdout", Stream::Stdout), ("stderr", Stream::Stderr)] {
        if let Some(fd) = fd(key) {
            outs.push((fd, stream));
        }
    }
    Some(Handed {
        id: text("id")?,
        pid: text("pid")?.parse().ok()?,
        back: fd("return")?,
        back_argv: args[end + 1..].to_vec(),
        outs,
        master: fd("master"),
        relayed_stdin: fd("relayed-stdin"),
        attach_stdin: fd("attach-stdin"),
        listener: fd("listener"),
        attach_dir: get.get("attach-dir").map(PathBuf::from),
        console: on("console"),
        log: get
            .get("log")
            .map(|p| (PathBuf::from(p), rotation.unwrap_or_default())),
        echo: on("echo"),
        terminal_input: on("terminal-input"),
        stdin_once: on("stdin-once"),
        forward: on("forward"),
        keep: text("keep").unwrap_or_default(),
        resume: text("resume")?,
    })
}

impl Handed {
    /// Supervises until the exit, then executes the original program; returns only when
    /// that failed.
    fn run(mut self) -> io::Error {
        let _forward = self.forward.then(|| crate::signals::forward_to(self.pid));
        let mut log = self.log.as_ref().and_then(|(path, rotation)| {
            LogWriter::open(path, *rotation)
                .map_err(|e| eprintln!("opening the log {}: {e}", path.display()))
                .ok()
        });
        let hub = match (&self.listener, &self.attach_dir) {
            (Some(listener), Some(dir)) => {
                let serve = Serve {
                    endpoint: Endpoint::new(dir),
                    stdin_once: self.stdin_once,
                };
                match listener
                    .try_clone()
                    .and_then(|l| Hub::adopt(&serve, self.console, l))
                {
                    Ok(hub) => Some(hub),
                    Err(e) => return e,
                }
            }
            _ => None,
        };
        // Moved, not copied: `StdinOnce` closes the container's stdin by closing it.
        let stdin = self.attach_stdin.take();
        let mut session = hub.as_ref().and_then(|hub| hub.session(stdin).ok());
        if let Some(session) = session.as_mut() {
            session.set_init(self.pid);
            if let Some(master) = self.master.as_ref().and_then(|m| m.try_clone().ok()) {
                session.set_terminal(master);
            }
        }
        let pump = std::mem::take(&mut self.outs)
            .into_iter()
            .map(|(fd, stream)| Out::pipe(fd, stream))
            .collect::<io::Result<Vec<_>>>()
            .and_then(|outs| {
                pump::for_start(
                    self.pid,
                    outs,
                    // Moved: the container sees the end of its input when the copy ends.
                    self.relayed_stdin.take(),
                    self.master.take(),
                    self.terminal_input,
                    self.echo,
                    log.as_mut(),
                )
            });
        let code = match pump {
            Ok(pump) => pump.session(session.as_mut()).run(),
            Err(e) => {
                eprintln!("relaying the stdio of container {}: {e}", self.id);
                pump::wait_nowait(self.pid, true)
            }
        };
        if let Some(session) = session {
            session.finish(code);
        }
        // The socket stays bound for the original program.
        let listener = hub.map(|hub| {
            let fd = hub.listener().as_raw_fd();
            std::mem::forget(hub);
            set_cloexec(fd, false);
            fd.to_string()
        });
        for fd in self.keep.split(':').filter_map(|fd| fd.parse().ok()) {
            set_cloexec(fd, false);
        }
        let resumed = format!(
            "{},{},{},{}",
            self.pid,
            self.resume,
            listener.as_deref().unwrap_or("-"),
            self.keep
        );
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| k != RESUMED_ENV)
            .collect();
        env.push((RESUMED_ENV.into(), resumed.into()));
        // SAFETY: `back` is open for the whole program.
        let back = unsafe { BorrowedFd::borrow_raw(self.back.as_raw_fd()) };
        exec(Exec::Fd(back), &self.back_argv, Some(env))
    }
}

/// What to execute.
enum Exec<'a> {
    Path(OsString),
    Fd(BorrowedFd<'a>),
}

/// Executes `what` with `argv` and `env` (this process's when `None`); returns only why
/// that failed.
fn exec(what: Exec<'_>, argv: &[OsString], env: Option<Vec<(OsString, OsString)>>) -> io::Error {
    let to_c = |s: &OsStr| CString::new(s.as_bytes()).ok();
    let Some(argv): Option<Vec<CString>> = argv.iter().map(|a| to_c(a)).collect() else {
        return io::Error::new(io::ErrorKind::InvalidInput, "an argument holds a NUL byte");
    };
    let env = env.unwrap_or_else(|| std::env::vars_os().collect());
    let envp: Vec<CString> = env
        .into_iter()
        .filter_map(|(k, v)| {
            let mut entry = k.into_vec();
            entry.push(b'=');
            entry.extend(v.into_vec());
            CString::new(entry).ok()
        })
        .collect();
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    match what {
        Exec::Path(path) => {
            let Some(path) = to_c(&path) else {
                return io::Error::new(io::ErrorKind::InvalidInput, "the path holds a NUL byte");
            };
            // SAFETY: NUL-terminated strings and NULL-terminated arrays that outlive the
            // call; execve returns only on failure.
            unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
        }
        Exec::Fd(fd) => {
            // SAFETY: as above; AT_EMPTY_PATH executes the file `fd` refers to.
            unsafe {
                libc::syscall(
                    libc::SYS_execveat,
                    fd.as_raw_fd(),
                    c"".as_ptr(),
                    argv_p.as_ptr(),
                    envp_p.as_ptr(),
                    libc::AT_EMPTY_PATH,
                )
            };
        }
    }
    io::Error::last_os_error()
}

fn set_cloexec(fd: RawFd, on: bool) {
    // SAFETY: F_GETFD/F_SETFD change only the descriptor flag of a descriptor we hold.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            let flags = if on {
                flags | libc::FD_CLOEXEC
            } else {
                flags & !libc::FD_CLOEXEC
            };
            libc::fcntl(fd, libc::F_SETFD, flags);
        }
    }
}
