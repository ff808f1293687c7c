//! Exec instances: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked),
//! `POST /exec/{id}/resize`, `GET /exec/{id}/json`.
//!
//! An exec forks into the container's namespaces, and the runtime's fork rule
//! (`basic_runtime::fork_rule`) allows that only from a process with a single thread:
//! this service has many. So an exec runs as the command line's own `exec` verb, a
//! child process on the service's store ([`ExecCommand`]), and the service relays its
//! stdio: through pipes, or a pseudo-terminal the service owns when the exec has a TTY
//! (its size is the client's, set by `resize`). The child's exit code is the exec's.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use basic_engine::Status;
use bollard_stubs::models::{ExecConfig, ExecInspectResponse, ExecStartConfig, ProcessConfig};
use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::State;
use crate::error::ApiError;
use crate::hijack::{self, Hijacked};
use crate::stream::{self, Lines};

/// The program an exec runs as: the command line, with the arguments that put it on the
/// service's store and state (`--root R --state S`); `exec [flags] -- CONTAINER CMD...`
/// follows them.
#[derive(Debug, Clone)]
pub struct ExecCommand {
    /// The program.
    pub program: PathBuf,
    /// The arguments before `exec`.
    pub args: Vec<OsString>,
}

/// The exec instances this service made (docker keeps them in memory too).
#[derive(Default)]
pub(crate) struct Execs(Mutex<HashMap<String, Arc<Exec>>>);

pub(crate) struct Exec {
    id: String,
    container: String,
    config: ExecConfig,
    run: Mutex<Run>,
}

#[derive(Default)]
struct Run {
    started: bool,
    running: bool,
    exit_code: Option<i64>,
    pid: Option<u32>,
    /// The pseudo-terminal's controlling side, while a TTY exec runs.
    terminal: Option<Arc<OwnedFd>>,
    /// The size asked for before the start.
    size: Option<(u16, u16)>,
}

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

fn conflict(message: String) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        message,
    }
}

async fn create(
    Shared(state): Shared<Arc<State>>,
    Path(query): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config: ExecConfig = crate::json::parse(&body)?;
    if config.cmd.as_ref().is_none_or(Vec::is_empty) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let container = state
        .engine(move |engine| {
            let c = engine.container(&query)?;
            Ok((c.id().to_string(), engine.status(&c)))
        })
        .await?;
    let (container, status) = container;
    match status {
        Status::Running(_) => {}
        Status::Paused(_) => {
            return Err(conflict(format!(
                "Container {container} is paused, unpause the container before exec"
            )));
        }
        _ => return Err(conflict(format!("Container {container} is not running"))),
    }
    let id = new_id();
    let exec = Arc::new(Exec {
        id: id.clone(),
        container,
        config,
        run: Mutex::new(Run::default()),
    });
    state.execs.0.lock().unwrap().insert(id.clone(), exec);
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))).into_response())
}

fn new_id() -> String {
    let mut bytes = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        // Unique in this service all the same: the time and a counter.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes[..16].copy_from_slice(&t.to_le_bytes());
        bytes[16..24].copy_from_slice(&n.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn find(state: &State, id: &str) -> Result<Arc<Exec>, ApiError> {
    state
        .execs
        .0
        .lock()
        .unwrap()
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

async fn start(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let exec = find(&state, &id)?;
    let upgrade = hijack::wants_upgrade(&request);
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?;
    let options: ExecStartConfig = crate::json::parse(&bytes)?;
    {
        let mut run = exec.run.lock().unwrap();
        if run.started {
            return Err(conflict(format!("exec {id} has already been started")));
        }
        run.started = true;
        run.running = true;
    }
    let Some(command) = state.options.exec.clone() else {
        return Err(ApiError::internal(
            "this service was started without a command to run execs with",
        ));
    };
    let tty = options.tty.unwrap_or(false) || exec.config.tty.unwrap_or(false);
    let detach = options.detach.unwrap_or(false);
    let args = exec_args(&exec, tty, detach);
    // The exec's process joins the container's cgroups once its child has started: the
    // kernel's wait for that migration runs meanwhile.
    basic_runtime::cgroups::warm_up_migration();
    if detach {
        let child = spawn_plain(&command, &args, false)
            .map_err(|e| ApiError::internal(format!("starting the exec: {e}")))?;
        tokio::spawn(finish(exec, child));
        return Ok(StatusCode::OK.into_response());
    }
    // The body is read; what the upgrade needs is in the request's extensions.
    let request = Request::from_parts(parts, axum::body::Body::empty());
    if upgrade {
        let started = launch(&command, &args, &exec, tty)
            .map_err(|e| ApiError::internal(format!("starting the exec: {e}")))?;
        return Ok(hijack::upgrade(&state, request, move |hijacked| {
            relay(exec, started, hijacked)
        }));
    }
    // A client that does not take over the connection gets the output as the body.
    let started = launch(&command, &args, &exec, tty)
        .map_err(|e| ApiError::internal(format!("starting the exec: {e}")))?;
    let (lines, body) = Lines::channel();
    let (output, mut rx) = mpsc::channel::<Bytes>(64);
    let (_input, input_rx) = mpsc::channel::<Bytes>(1);
    tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            let lines = lines.clone();
            if tokio::task::spawn_blocking(move || lines.send(bytes))
                .await
                .map_or(true, |r| r.is_err())
            {
                break;
            }
        }
    });
    let (_gone_tx, gone) = tokio::sync::watch::channel(false);
    tokio::spawn(relay(
        exec,
        started,
        Hijacked {
            input: input_rx,
            output,
            gone,
        },
    ));
    Ok(stream::raw_response(body, !tty))
}

/// Our command line's `exec` for this instance.
fn exec_args(exec: &Exec, tty: bool, detach: bool) -> Vec<OsString> {
    let config = &exec.config;
    let mut args: Vec<OsString> = vec!["exec".into()];
    if config.attach_stdin.unwrap_or(false) && !detach {
        args.push("-i".into());
    }
    if tty {
        args.push("-t".into());
    }
    if detach {
        args.push("-d".into());
    }
    for env in config.env.iter().flatten() {
        args.push("-e".into());
        args.push(env.into());
    }
    if let Some(dir) = config.working_dir.as_deref().filter(|d| !d.is_empty()) {
        args.push("-w".into());
        args.push(dir.into());
    }
    if let Some(user) = config.user.as_deref().filter(|u| !u.is_empty()) {
        args.push("-u".into());
        args.push(user.into());
    }
    if config.privileged.unwrap_or(false) {
        args.push("--privileged".into());
    }
    args.push("--".into());
    args.push(exec.container.clone().into());
    args.extend(config.cmd.iter().flatten().map(OsString::from));
    args
}

fn spawn_plain(
    command: &ExecCommand,
    args: &[OsString],
    stdin: bool,
) -> std::io::Result<tokio::process::Child> {
    tokio::process::Command::new(&command.program)
        .arg0("basic-docker")
        .args(&command.args)
        .args(args)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false)
        .spawn()
}

/// A running exec and its stdio.
enum Started {
    Pipes(tokio::process::Child),
    Terminal(tokio::process::Child, Arc<OwnedFd>),
}

fn launch(
    command: &ExecCommand,
    args: &[OsString],
    exec: &Exec,
    tty: bool,
) -> std::io::Result<Started> {
    let stdin = exec.config.attach_stdin.unwrap_or(false);
    let started = if tty {
        let (rows, cols) = exec.run.lock().unwrap().size.unwrap_or((24, 80));
        let size = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&size), None).map_err(std::io::Error::from)?;
        let slave = pty.slave;
        let mut cmd = tokio::process::Command::new(&command.program);
        cmd.arg0("basic-docker")
            .args(&command.args)
            .args(args)
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        // SAFETY: between fork and exec only async-signal-safe system calls run (setsid,
        // ioctl): the terminal becomes the child's controlling terminal, so its `exec -t`
        // follows resizes (SIGWINCH goes to a terminal's foreground process group).
        unsafe {
            cmd.pre_exec(|| {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn()?;
        // The command's copies of the terminal's other side went with it.
        drop(cmd);
        Started::Terminal(child, Arc::new(pty.master))
    } else {
        Started::Pipes(spawn_plain(command, args, stdin)?)
    };
    let mut run = exec.run.lock().unwrap();
    let (child, terminal) = match &started {
        Started::Pipes(child) => (child, None),
        Started::Terminal(child, master) => (child, Some(master.clone())),
    };
    run.pid = child.id();
    run.terminal = terminal;
    Ok(started)
}

/// Relays the exec's stdio until it exits (or the client hangs up), then records its
/// exit code.
async fn relay(exec: Arc<Exec>, started: Started, hijacked: Hijacked) {
    let Hijacked {
        input,
        output,
        mut gone,
    } = hijacked;
    // The connection stays open until the exit code is recorded: a client inspects the
    // exec as soon as its stream ends, and must find it finished.
    let open = output.clone();
    let child = match started {
        Started::Pipes(mut child) => {
            let stdin = child.stdin.take();
            let stdout = child.stdout.take();
            let stderr = child.stderr.take();
            tokio::spawn(feed_pipe(input, stdin));
            let out = tokio::spawn(pipe_frames(stdout, 1, output.clone()));
            let err = tokio::spawn(pipe_frames(stderr, 2, output.clone()));
            drop(output);
            tokio::select! {
                _ = async { let _ = out.await; let _ = err.await; } => {}
                _ = gone.wait_for(|g| *g) => {}
            }
            child
        }
        Started::Terminal(child, master) => {
            let reader = duplicate(&master);
            let writer = duplicate(&master);
            let out = tokio::task::spawn_blocking(move || {
                let Ok(mut reader) = reader else { return };
                let mut buf = vec![0u8; 32 * 1024];
                // EIO once the exec and all it started closed the terminal.
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0
                        || output
                            .blocking_send(Bytes::copy_from_slice(&buf[..n]))
                            .is_err()
                    {
                        break;
                    }
                }
            });
            tokio::task::spawn_blocking(move || {
                let Ok(mut writer) = writer else { return };
                let mut input = input;
                while let Some(bytes) = input.blocking_recv() {
                    if writer.write_all(&bytes).is_err() {
                        break;
                    }
                }
            });
            tokio::select! {
                _ = out => {}
                _ = gone.wait_for(|g| *g) => {}
            }
            child
        }
    };
    finish(exec, child).await;
    drop(open);
}

fn duplicate(fd: &OwnedFd) -> std::io::Result<std::fs::File> {
    Ok(std::fs::File::from(fd.as_fd().try_clone_to_owned()?))
}

async fn feed_pipe(mut input: mpsc::Receiver<Bytes>, stdin: Option<tokio::process::ChildStdin>) {
    let Some(mut stdin) = stdin else {
        // Without stdin, what the client sends is dropped, as docker does.
        while input.recv().await.is_some() {}
        return;
    };
    while let Some(bytes) = input.recv().await {
        if stdin.write_all(&bytes).await.is_err() {
            return;
        }
    }
    // The client's half-close: the exec's input ends.
    drop(stdin);
}

async fn pipe_frames(
    pipe: Option<impl tokio::io::AsyncRead + Unpin>,
    stream_number: u8,
    output: mpsc::Sender<Bytes>,
) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = pipe.read(&mut buf).await {
        if n == 0 {
            return;
        }
        let frame = stream::frame(stream_number, &buf[..n]);
        if output.send(Bytes::from(frame)).await.is_err() {
            return;
        }
    }
}

/// Waits for the exec's program and records its exit code.
async fn finish(exec: Arc<Exec>, mut child: tokio::process::Child) {
    let code = match child.wait().await {
        Ok(status) => status
            .code()
            .or_else(|| std::os::unix::process::ExitStatusExt::signal(&status).map(|s| 128 + s))
            .unwrap_or(-1),
        Err(_) => -1,
    };
    let mut run = exec.run.lock().unwrap();
    run.running = false;
    run.exit_code = Some(i64::from(code));
    run.terminal = None;
}

#[derive(Debug, Deserialize, Default)]
struct ResizeQuery {
    h: Option<u16>,
    w: Option<u16>,
}

async fn resize(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<ResizeQuery>,
) -> Result<Response, ApiError> {
    let exec = find(&state, &id)?;
    let size = (query.h.unwrap_or(0), query.w.unwrap_or(0));
    let terminal = {
        let mut run = exec.run.lock().unwrap();
        run.size = Some(size);
        run.terminal.clone()
    };
    if let Some(master) = terminal {
        let winsize = nix::pty::Winsize {
            ws_row: size.0,
            ws_col: size.1,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call;
        // the descriptor is the terminal's, held by `master`.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &winsize) };
        if rc < 0 {
            return Err(ApiError::internal(format!(
                "resizing the exec's terminal: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(StatusCode::OK.into_response())
}

async fn inspect(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Json<ExecInspectResponse>, ApiError> {
    let exec = find(&state, &id)?;
    let run = exec.run.lock().unwrap();
    let config = &exec.config;
    let mut cmd = config.cmd.clone().unwrap_or_default().into_iter();
    Ok(Json(ExecInspectResponse {
        can_remove: Some(false),
        detach_keys: Some(config.detach_keys.clone().unwrap_or_default()),
        id: Some(exec.id.clone()),
        running: Some(run.running),
        exit_code: run.exit_code,
        process_config: Some(ProcessConfig {
            privileged: config.privileged,
            user: Some(config.user.clone().unwrap_or_default()),
            tty: config.tty,
            entrypoint: cmd.next(),
            arguments: Some(cmd.collect()),
        }),
        open_stdin: config.attach_stdin,
        open_stderr: config.attach_stderr,
        open_stdout: config.attach_stdout,
        container_id: Some(exec.container.clone()),
        // The program relaying the exec; the process in the container is its child.
        pid: run.pid.map(i64::from),
    }))
}
