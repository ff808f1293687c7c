//! The spec's hooks (runtime-spec `config.md`, "POSIX-platform Hooks", and the lifecycle in
//! `runtime.md`): host programs run at fixed moments of a container's life, each given the
//! container's state as JSON on its stdin.
//!
//! | hook | when | where it runs |
//! |---|---|---|
//! | `prestart`, `createRuntime` | `create`, the container's namespaces and mounts made, before `pivot_root` | the runtime's namespaces (run by the runner) |
//! | `createContainer` | right after them, still before `pivot_root` | the container's namespaces (run by its init), path resolved in the runtime's mount view |
//! | `startContainer` | `start`, before the command runs | the container's namespaces, inside its root, with its process's confinement |
//! | `poststart` | once the command runs, before `start` returns | the runtime's namespaces |
//! | `poststop` | `delete` (or the end of a foreground run), after the container is gone | the runtime's namespaces |
//!
//! A failing `prestart`, `createRuntime`, `createContainer` or `startContainer` hook fails
//! the operation and the container is stopped; a failing `poststart` or `poststop` hook is
//! a warning on stderr and everything goes on (the spec's words). A hook's `timeout` kills
//! it (SIGKILL) and counts as a failure. Its stdout and stderr are kept in memory (a
//! memfd) and their end quoted in the error.
//!
//! Hooks are spawned with `std::process::Command` (fork and exec at once), which the [fork
//! rule](crate::fork_rule) allows anywhere; the waits poll, so no thread is started.

use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks, Spec};

/// The moments hooks run at, named as in the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `prestart` (deprecated in the spec, still used): runtime namespaces, during create.
    Prestart,
    /// `createRuntime`: runtime namespaces, during create.
    CreateRuntime,
    /// `createContainer`: container namespaces, during create, before `pivot_root`.
    CreateContainer,
    /// `startContainer`: container namespaces, during start, before the command.
    StartContainer,
    /// `poststart`: runtime namespaces, after the command started.
    Poststart,
    /// `poststop`: runtime namespaces, after the container was deleted.
    Poststop,
}

impl HookKind {
    /// Every kind, in lifecycle order.
    pub const ALL: [HookKind; 6] = [
        HookKind::Prestart,
        HookKind::CreateRuntime,
        HookKind::CreateContainer,
        HookKind::StartContainer,
        HookKind::Poststart,
        HookKind::Poststop,
    ];

    /// The spec's field name.
    pub fn name(self) -> &'static str {
        match self {
            HookKind::Prestart => "prestart",
            HookKind::CreateRuntime => "createRuntime",
            HookKind::CreateContainer => "createContainer",
            HookKind::StartContainer => "startContainer",
            HookKind::Poststart => "poststart",
            HookKind::Poststop => "poststop",
        }
    }

    /// Whether a failure only warns (`poststart`, `poststop`).
    pub fn only_warns(self) -> bool {
        matches!(self, HookKind::Poststart | HookKind::Poststop)
    }

    /// This kind's hooks in `hooks` (empty when none).
    pub fn of(self, hooks: Option<&Hooks>) -> &[Hook] {
        let Some(h) = hooks else { return &[] };
        let list = match self {
            HookKind::Prestart => h.prestart(),
            HookKind::CreateRuntime => h.create_runtime(),
            HookKind::CreateContainer => h.create_container(),
            HookKind::StartContainer => h.start_container(),
            HookKind::Poststart => h.poststart(),
            HookKind::Poststop => h.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How much of a failed hook's output is quoted in the error.
const OUTPUT_TAIL: usize = 2048;

/// Why a hook failed. Each names the hook as `hooks.<kind>[<index>]` and its path.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The hook could not be started (missing file, not executable, ...).
    #[error("hooks.{kind}[{index}] {path}: cannot run it")]
    Spawn {
        /// Which hooks.
        kind: HookKind,
        /// Its place in the list.
        index: usize,
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The hook ended unsuccessfully.
    #[error("hooks.{kind}[{index}] {path} {status}{}", quote(output))]
    Failed {
        /// Which hooks.
        kind: HookKind,
        /// Its place in the list.
        index: usize,
        /// Its path.
        path: PathBuf,
        /// How it ended ("exited with code 1", "was killed by signal 9").
        status: String,
        /// The end of its stdout and stderr.
        output: String,
    },
    /// The hook ran longer than its `timeout` and was killed.
    #[error(
        "hooks.{kind}[{index}] {path} did not finish within its timeout of {secs} s and was killed{}",
        quote(output)
    )]
    Timeout {
        /// Which hooks.
        kind: HookKind,
        /// Its place in the list.
        index: usize,
        /// Its path.
        path: PathBuf,
        /// The timeout.
        secs: i64,
        /// The end of its stdout and stderr.
        output: String,
    },
    /// Waiting for the hook or keeping its output failed.
    #[error("hooks.{kind}[{index}] {path}: {what}")]
    Io {
        /// Which hooks.
        kind: HookKind,
        /// Its place in the list.
        index: usize,
        /// Its path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn quote(output: &str) -> String {
    match output.trim() {
        "" => String::new(),
        out => format!("; its output: {out}"),
    }
}

/// What a spec's hooks must look like before anything runs: absolute paths (the spec's
/// rule; a relative one would depend on the runtime's working directory) and positive
/// timeouts.
pub fn validate(spec: &Spec) -> Result<(), String> {
    let hooks = spec.hooks().as_ref();
    for kind in HookKind::ALL {
        for (index, hook) in kind.of(hooks).iter().enumerate() {
            let path = hook.path();
            if !path.is_absolute() {
                return Err(format!(
                    "hooks.{kind}[{index}].path {:?} must be an absolute path",
                    path.display().to_string()
                ));
            }
            if let Some(t) = hook.timeout()
                && t <= 0
            {
                return Err(format!(
                    "hooks.{kind}[{index}].timeout {t} must be a positive number of seconds"
                ));
            }
        }
    }
    Ok(())
}

/// Whether `spec` has any hook the create or start steps run (all but poststart/poststop).
pub(crate) fn any_in_container_setup(spec: &Spec) -> bool {
    let hooks = spec.hooks().as_ref();
    [
        HookKind::Prestart,
        HookKind::CreateRuntime,
        HookKind::CreateContainer,
        HookKind::StartContainer,
    ]
    .into_iter()
    .any(|k| !k.of(hooks).is_empty())
}

/// Runs the hooks of `kind` in order, each with `state` (the container's state as JSON) on
/// its stdin; stops at the first failure.
pub fn run(kind: HookKind, hooks: &[Hook], state: &[u8]) -> Result<(), HookError> {
    for (index, hook) in hooks.iter().enumerate() {
        run_one(kind, index, hook, state)?;
    }
    Ok(())
}

/// Runs the hooks of a kind whose failures only warn: each failure goes to stderr, and the
/// remaining hooks still run.
pub fn run_warning(kind: HookKind, hooks: &[Hook], state: &[u8]) {
    for (index, hook) in hooks.iter().enumerate() {
        if let Err(e) = run_one(kind, index, hook, state) {
            let _ = writeln!(
                std::io::stderr(),
                "basic-runtime: warning: {}",
                crate::process::chain(&e)
            );
        }
    }
}

fn run_one(kind: HookKind, index: usize, hook: &Hook, state: &[u8]) -> Result<(), HookError> {
    let path = hook.path().clone();
    let io = |what| {
        let path = path.clone();
        move |source| HookError::Io {
            kind,
            index,
            path,
            what,
            source,
        }
    };
    // One in-memory file for both streams: no pipe to drain while waiting, no disk.
    let output: OwnedFd = nix::sys::memfd::memfd_create(
        c"basic-runtime-hook",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
    )
    .map_err(|e| io("keeping its output")(e.into()))?;
    let out_file = std::fs::File::from(output);
    let err_file = out_file.try_clone().map_err(io("keeping its output"))?;
    let mut cmd = Command::new(&path);
    let args = hook.args().as_deref().unwrap_or_default();
    match args.split_first() {
        Some((argv0, rest)) => {
            cmd.arg0(argv0).args(rest);
        }
        None => {
            cmd.arg0(&path);
        }
    }
    // The spec gives `env` environ's meaning: when given, it is the whole environment.
    // Without it the hook inherits the runtime's, as runc's hooks do (hooks such as GPU
    // toolkits' find their helpers through PATH).
    if let Some(env) = hook.env() {
        cmd.env_clear();
        for pair in env {
            match pair.split_once('=') {
                Some((k, v)) => cmd.env(k, v),
                None => cmd.env(pair, ""),
            };
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::from(
            out_file.try_clone().map_err(io("keeping its output"))?,
        ))
        .stderr(Stdio::from(err_file));
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        kind,
        index,
        path: path.clone(),
        source,
    })?;
    let _pipe = IgnoreSigpipe::new();
    let mut stdin = child.stdin.take();
    if let Some(s) = &stdin {
        // Non-blocking, so a hook that never reads its stdin cannot hold us past its
        // timeout; what does not fit is written while waiting.
        let _ = nix::fcntl::fcntl(
            s,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
    }
    let mut written = 0;
    let timeout = hook
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t as u64));
    let started = Instant::now();
    let mut pause = Duration::from_micros(200);
    let status = loop {
        if let Some(s) = stdin.as_mut() {
            match s.write(&state[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // The hook closed its stdin (or exited): it wants no more.
                Err(_) => written = state.len(),
            }
            if written == state.len() {
                stdin = None;
            }
        }
        if let Some(status) = child.try_wait().map_err(io("waiting for it"))? {
            break status;
        }
        if let Some(limit) = timeout
            && started.elapsed() >= limit
        {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout {
                kind,
                index,
                path,
                secs: limit.as_secs() as i64,
                output: tail(out_file),
            });
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    };
    if status.success() {
        return Ok(());
    }
    let status = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(code), _) => format!("exited with code {code}"),
        (_, Some(sig)) => format!("was killed by signal {sig}"),
        _ => "failed".to_string(),
    };
    Err(HookError::Failed {
        kind,
        index,
        path,
        status,
        output: tail(out_file),
    })
}

/// SIGPIPE ignored while it lives, so writing the state to a hook that exited without
/// reading it is an error (EPIPE) and not the death of the caller: the container's init,
/// which runs `createContainer` and `startContainer` hooks, has the default disposition.
struct IgnoreSigpipe(Option<nix::sys::signal::SigAction>);

impl IgnoreSigpipe {
    fn new() -> Self {
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        // SAFETY: installing SIG_IGN runs no handler code; the previous action is restored
        // on drop.
        IgnoreSigpipe(unsafe { sigaction(Signal::SIGPIPE, &ignore) }.ok())
    }
}

impl Drop for IgnoreSigpipe {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            // SAFETY: restores the action that was installed before `new`.
            let _ = unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGPIPE, old) };
        }
    }
}

/// The last [`OUTPUT_TAIL`] bytes a hook wrote, as text.
fn tail(mut file: std::fs::File) -> String {
    let len = file.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
    let from = len.saturating_sub(OUTPUT_TAIL as u64);
    let mut buf = Vec::new();
    if file.seek(std::io::SeekFrom::Start(from)).is_ok() {
        let _ = file.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_state_arrives_on_stdin_with_args_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}; echo \"$0 $1 $GREETING\" >> {}", out.display(), out.display()), "argv0", "one"],
            "env": ["GREETING=hello"]
        }));
        run(HookKind::Prestart, &[h], br#"{"id":"x"}"#).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"x\"}argv0 one hello\n"
        );
    }

    #[test]
    fn without_env_the_hook_inherits_the_runtimes_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("echo \"$PATH\" > {}", out.display());
        let h = hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script]}));
        run(HookKind::Poststop, &[h], b"{}").unwrap();
        let path = std::env::var("PATH").unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap().trim(), path);
        let h =
            hook(serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": []}));
        run(HookKind::Poststop, &[h], b"{}").unwrap();
        assert_ne!(std::fs::read_to_string(&out).unwrap().trim(), path);
    }

    #[test]
    fn a_failing_hook_is_named_with_its_output() {
        let h = hook(serde_json::json!({
            "path": "/bin/sh", "args": ["sh", "-c", "echo no luck >&2; exit 3"]
        }));
        let e = run(HookKind::CreateRuntime, &[h], b"{}").unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("hooks.createRuntime[0] /bin/sh exited with code 3"),
            "{msg}"
        );
        assert!(msg.contains("no luck"), "{msg}");
    }

    #[test]
    fn a_hook_past_its_timeout_is_killed() {
        let h = hook(serde_json::json!({
            "path": "/bin/sh", "args": ["sh", "-c", "sleep 30"], "timeout": 1
        }));
        let start = Instant::now();
        let e = run(HookKind::Prestart, &[h], b"{}").unwrap_err();
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(e, HookError::Timeout { secs: 1, .. }), "{e}");
    }

    #[test]
    fn a_missing_hook_is_a_clear_error() {
        let h = hook(serde_json::json!({"path": "/nonexistent/hook"}));
        let e = run(HookKind::Poststart, &[h], b"{}").unwrap_err();
        let msg = crate::process::chain(&e);
        assert!(
            msg.contains("hooks.poststart[0] /nonexistent/hook"),
            "{msg}"
        );
        assert!(msg.contains("No such file"), "{msg}");
    }

    #[test]
    fn a_hook_that_ignores_a_large_state_still_finishes() {
        let big = vec![b' '; 1 << 20];
        let h = hook(serde_json::json!({"path": "/bin/true"}));
        run(HookKind::Prestart, &[h], &big).unwrap();
    }

    #[test]
    fn relative_paths_and_bad_timeouts_are_refused_before_anything_runs() {
        let spec = |hooks: serde_json::Value| -> Spec {
            let mut s = serde_json::to_value(
                crate::default_spec(vec!["true".into()], vec![], "/").unwrap(),
            )
            .unwrap();
            s["hooks"] = hooks;
            serde_json::from_value(s).unwrap()
        };
        let e = validate(&spec(
            serde_json::json!({"poststop": [{"path": "bin/hook"}]}),
        ))
        .unwrap_err();
        assert!(
            e.contains("hooks.poststop[0].path \"bin/hook\" must be an absolute path"),
            "{e}"
        );
        let e = validate(&spec(
            serde_json::json!({"prestart": [{"path": "/bin/true", "timeout": 0}]}),
        ))
        .unwrap_err();
        assert!(e.contains("hooks.prestart[0].timeout 0"), "{e}");
        validate(&spec(
            serde_json::json!({"prestart": [{"path": "/bin/true", "timeout": 5}]}),
        ))
        .unwrap();
    }
}
