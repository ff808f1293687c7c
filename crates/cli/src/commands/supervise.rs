//! Running a recorded container under [`basic_runtime::supervisor`]: in this
//! process for a foreground `run`, or in a detached process of its own
//! (`basic-docker container-supervise ID`) for `run -d` and `start`.
//!
//! The supervisor mounts the container's root, records each start and exit in
//! the store, writes the json-file log, and on the final exit unmounts (and,
//! for `--rm`, removes) the container.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use basic_image_store::{ContainerExit, ContainerRecord, ImageStore};
use basic_runtime::supervisor::{Input, Output, Supervisor, SupervisorError, SupervisorEvent};
use basic_runtime::terminal::{ConsoleSocket, RawMode};
use basic_runtime::{Container, Spec};

use basic_image_store::short_id;

use super::create::{Settings, is_mounted, load_mounts, mount};
use super::live::{self, Paths, now_nanos};
use super::{cleanup, container_network, host, privacy};

/// docker's exit code for a failure of the engine itself.
pub const ENGINE_FAILURE: i32 = 125;

/// Supervises container `id` in this process until it exits for good; returns
/// the exit code docker would report. `echo` copies its output to our stdout
/// and stderr (a foreground run).
pub fn supervise(root: &Path, id: &str, echo: bool) -> anyhow::Result<i32> {
    let store = privacy::open_store(root)?;
    let record = store.container(id)?;
    let paths = Paths::new(root, &record.id);
    let Some(_lock) = live::lock_supervisor(&paths)? else {
        bail!("container {} is already running", short_id(&record.id));
    };
    let settings = Settings::of(&record)?;
    let _ = std::fs::remove_file(paths.stop_marker());
    let _ = std::fs::remove_file(paths.start_error());
    let result = run_container(&store, &record, &settings, &paths, echo);
    // The attachment outlives restarts; it goes with the final exit.
    container_network::detach(root, &record.id, &settings.network);
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            let message = format!("{e:#}");
            let _ = privacy::write_private(&paths.start_error(), message.as_bytes());
            let code = start_failure_code(&e);
            let exit = ContainerExit {
                code,
                finished: now_nanos(),
                oom_killed: false,
            };
            let _ = store.container_exited(&record.id, exit, false);
            if echo {
                eprintln!("Error: {message}");
            }
            code
        }
    };
    let _ = std::fs::remove_file(paths.stop_marker());
    if settings.auto_remove {
        cleanup::remove(root, &store, &record)?;
    } else {
        cleanup::unmount(root, &paths);
    }
    Ok(code)
}

fn run_container(
    store: &ImageStore,
    record: &ContainerRecord,
    settings: &Settings,
    paths: &Paths,
    echo: bool,
) -> anyhow::Result<i32> {
    if !is_mounted(paths) {
        mount(
            host::snapshotter(store.root()).as_ref(),
            paths,
            &load_mounts(paths)?,
        )?;
    }
    let spec =
        Spec::load(paths.spec()).with_context(|| format!("reading {}", paths.spec().display()))?;
    let hostname = spec.hostname().clone().unwrap_or_default();
    container_network::attach(store.root(), &record.id, &record.name, &hostname, settings)?;
    let mut builder = Container::builder(record.id.clone(), spec, &paths.rootfs)
        .init(settings.init)
        .seccomp_cache(super::containers::seccomp_cache());
    // With a terminal the container sends its pty master over this socket; keys
    // typed by the user (Ctrl-C) signal the container through it, not through us.
    let console = if settings.tty {
        let (socket, container_end) = ConsoleSocket::pair()?;
        builder = builder
            .console_socket_fd(container_end)
            .forward_signals(false);
        Some(socket)
    } else {
        None
    };
    let container = builder.build()?;
    // Raw mode only for a user's terminal; restored however this function ends.
    let _raw = if console.is_some() && echo {
        RawMode::enable(std::io::stdin())?
    } else {
        None
    };
    // The relay writes what the terminal shows to our stdout, which the
    // supervisor below captures into the log (and echoes) like any output.
    let relay = console.map(|socket| socket.relay_stdio_in_background(settings.interactive));
    let output = Output {
        log: Some((paths.log(), settings.log_rotation())),
        echo,
        stdin: match (settings.tty, settings.interactive) {
            (true, _) => Input::Terminal,
            (false, true) => Input::Relayed,
            (false, false) => Input::Null,
        },
    };
    let supervisor = Supervisor::new(&container, output, settings.restart_policy());
    let stop_marker = paths.stop_marker();
    let mut on_event = |event: SupervisorEvent<'_>| {
        let recorded = match event {
            SupervisorEvent::Starting => store.container_started(&record.id, now_nanos()),
            SupervisorEvent::Exited { status, restarting } => {
                if status.oom_killed && echo {
                    eprintln!(
                        "container {} was OOM killed (memory limit reached)",
                        short_id(&record.id)
                    );
                }
                let exit = ContainerExit {
                    code: status.exit_code(),
                    finished: now_nanos(),
                    oom_killed: status.oom_killed,
                };
                store.container_exited(&record.id, exit, restarting)
            }
        };
        if let Err(e) = recorded {
            eprintln!(
                "Warning: recording the state of {}: {e}",
                short_id(&record.id)
            );
        }
    };
    let status = supervisor.run(&|| stop_marker.exists(), &mut on_event);
    drop(supervisor);
    drop(container);
    if let Some(relay) = relay {
        let _ = relay.join();
    }
    Ok(status?.exit_code())
}

/// docker's 126 (cannot execute) and 127 (not found), else 125.
fn start_failure_code(e: &anyhow::Error) -> i32 {
    let container = e
        .downcast_ref::<basic_runtime::ContainerError>()
        .or_else(|| match e.downcast_ref::<SupervisorError>() {
            Some(SupervisorError::Container(c)) => Some(c),
            _ => None,
        });
    container.map_or(ENGINE_FAILURE, |c| c.exit_code())
}

/// Starts a detached supervisor for `record` and waits until its container
/// runs, or reports why it did not start (with docker's exit code).
pub fn start_detached(root: &Path, record: &ContainerRecord) -> anyhow::Result<Result<(), i32>> {
    let paths = Paths::new(root, &record.id);
    let mut child = spawn(root, &record.id)?;
    let mut exited = None;
    live::wait_for(Duration::from_secs(60), || {
        if live::live_init(&paths).is_some() {
            return true;
        }
        exited = child.try_wait().ok().flatten();
        exited.is_some()
    });
    if live::live_init(&paths).is_some() || exited.is_none() {
        return Ok(Ok(()));
    }
    // The supervisor ended before the init appeared: it failed to start it,
    // or the container ran and exited already.
    let store = ImageStore::open(root)?;
    let record = store.container(&record.id)?;
    match std::fs::read_to_string(paths.start_error()) {
        Ok(message) => {
            eprintln!("Error: {message}");
            Ok(Err(record.exit.map_or(ENGINE_FAILURE, |e| e.code)))
        }
        Err(_) => Ok(Ok(())),
    }
}

fn spawn(root: &Path, id: &str) -> anyhow::Result<Child> {
    // This very program, through the kernel's handle on it rather than a path: when it runs
    // from a sealed copy of itself (see basic_runtime::sealed_exe), that copy has no path.
    let mut command = Command::new("/proc/self/exe");
    command
        .arg0("basic-docker")
        .arg("--root")
        .arg(root)
        .arg("container-supervise")
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; the supervisor leaves our session so
    // that closing the user's terminal does not hang it up.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    command
        .spawn()
        .with_context(|| format!("starting the supervisor of {}", short_id(id)))
}
