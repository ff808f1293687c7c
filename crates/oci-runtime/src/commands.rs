//! Each command, over `basic_runtime`'s `Container` and `StateRoot`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use basic_runtime::signals::parse_signal;
use basic_runtime::{Container, State, StateRoot};

use crate::cli::{Cli, Command, CreateArgs};
use crate::log::Logger;
use crate::out;

/// Runs the command; the exit code to leave with.
pub fn dispatch(cli: &Cli, log: &Logger) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!(
            "--systemd-cgroup: the systemd cgroup driver is not supported, only cgroupfs \
             (podman: --cgroup-manager cgroupfs; containerd: SystemdCgroup = false)"
        );
    }
    if let Command::Spec { bundle, rootless } = &cli.command {
        write_spec(bundle, *rootless)?;
        return Ok(0);
    }
    // Opening tightens what an older version left wide under --root (cheap once done).
    let dir = cli.state_root();
    let root = StateRoot::open(&dir)
        .with_context(|| format!("opening the state root {}", dir.display()))?;
    log.debug(&format!("{:?}", cli.command));
    match &cli.command {
        Command::Create(args) => {
            create(&root, args)?;
        }
        Command::Start { id } => root.start(id)?,
        Command::State { id } => print_json(&root.state(id)?)?,
        Command::Kill { all, id, signal } => root.kill(id, parse_signal(signal)?, *all)?,
        Command::Delete { force, id } => root.delete(id, *force)?,
        Command::Run {
            create: args,
            detach,
        } => return run(&root, args, *detach),
        Command::Pause { id } => root.pause(id)?,
        Command::Resume { id } => root.resume(id)?,
        Command::Ps { format, id } => ps(&root, id, format)?,
        Command::List { format, quiet } => list(&root, format, *quiet)?,
        Command::Exec(args) => return crate::exec::exec(&root, args),
        Command::Update { resources, id } => update(&root, id, resources)?,
        Command::Features => print_json(&crate::features::features())?,
        Command::Spec { .. } => unreachable!("handled before the state root is opened"),
    }
    Ok(0)
}

fn builder(root: &StateRoot, args: &CreateArgs) -> Result<basic_runtime::ContainerBuilder> {
    let bundle = args
        .bundle
        .canonicalize()
        .with_context(|| format!("bundle {}", args.bundle.display()))?;
    let mut b = Container::from_bundle(&args.id, &bundle)?
        .state_dir(root.dir())
        .no_pivot(args.no_pivot)
        .new_keyring(!args.no_new_keyring)
        .preserve_fds(args.preserve_fds);
    if let Some(sock) = &args.console_socket {
        b = b.console_socket(sock);
    }
    Ok(b)
}

fn create(root: &StateRoot, args: &CreateArgs) -> Result<State> {
    let state = builder(root, args)?.build()?.create()?;
    if let Some(path) = &args.pid_file
        && let Err(e) = write_pid_file(path, state.pid)
    {
        // Nobody could find the init without it: do not leave it behind.
        let _ = root.delete(&args.id, true);
        return Err(e);
    }
    Ok(state)
}

fn run(root: &StateRoot, args: &CreateArgs, detach: bool) -> Result<i32> {
    if detach {
        create(root, args)?;
        root.start(&args.id)?;
        return Ok(0);
    }
    if args.pid_file.is_some() {
        bail!("run --pid-file needs --detach (the pid is only known once created)");
    }
    // The foreground path: the init stays our child and we wait for it; the state file
    // lets `state`/`kill` from elsewhere find it meanwhile.
    let b = builder(root, args)?;
    if args.console_socket.is_none() && wants_terminal(&args.bundle)? {
        return run_with_terminal(b);
    }
    Ok(b.build()?.run()?.exit_code())
}

fn wants_terminal(bundle: &Path) -> Result<bool> {
    let path = bundle.join("config.json");
    let spec = oci_spec::runtime::Spec::load(&path)
        .with_context(|| format!("loading {}", path.display()))?;
    Ok(spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false))
}

/// As runc does for `run` without a console socket: the container's terminal is relayed to
/// ours (raw mode while it runs), keys do the signalling. The relay runs in this thread once
/// the container is started: no thread exists when it forks (basic-runtime's fork rule).
fn run_with_terminal(b: basic_runtime::ContainerBuilder) -> Result<i32> {
    use basic_runtime::terminal::{ConsoleSocket, RawMode};
    let (ours, theirs) = ConsoleSocket::pair()?;
    let container = b.console_socket_fd(theirs).forward_signals(false).build()?;
    let raw = RawMode::enable(std::io::stdin())?;
    let running = container.start()?;
    // The terminal was sent during setup; the relay ends when the init exits.
    let relayed = ours
        .receive()
        .and_then(|console| console.watch_process(running.pid()))
        .and_then(|console| console.relay_stdio(true));
    let status = running.wait();
    drop(raw);
    let status = status?;
    if let Err(e) = relayed {
        crate::output::error_line(&format!("relaying the terminal: {e}"));
    }
    Ok(status.exit_code())
}

/// runc writes the pid file atomically: engines poll for it.
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")
    ));
    std::fs::write(&tmp, pid.to_string())
        .with_context(|| format!("writing pid file {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing pid file {}", path.display()))
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    out!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn ps(root: &StateRoot, id: &str, format: &str) -> Result<()> {
    let pids = root.pids(id)?;
    match format {
        "json" => out!("{}", serde_json::to_string(&pids)?),
        "table" => {
            out!("{:>8}  CMD", "PID");
            for pid in pids {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| {
                        String::from_utf8_lossy(&b)
                            .split('\0')
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                out!("{pid:>8}  {cmd}");
            }
        }
        other => bail!("unknown format {other:?}: use table or json"),
    }
    Ok(())
}

fn list(root: &StateRoot, format: &str, quiet: bool) -> Result<()> {
    let all = root.list()?;
    if quiet {
        for s in &all {
            out!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        "json" => out!("{}", serde_json::to_string(&all)?),
        "table" => {
            out!("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER");
            for s in &all {
                out!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created,
                    if s.owner.is_empty() { "root" } else { &s.owner }
                );
            }
        }
        other => bail!("unknown format {other:?}: use table or json"),
    }
    Ok(())
}

/// `update`: reads the limits from `resources` (a file, or `-` for standard input, which is
/// how containerd's runc shim sends them for the kubelet's `UpdateContainerResources`) and
/// writes them into the container's cgroup.
fn update(root: &StateRoot, id: &str, resources: &Option<PathBuf>) -> Result<()> {
    let Some(from) = resources else {
        bail!(
            "update: give the new limits as --resources FILE, an OCI linux.resources JSON \
             object (- reads it from standard input); runc's per-limit flags (--memory, \
             --cpu-shares, ...) are not supported"
        );
    };
    let json = if from == Path::new("-") {
        let mut json = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut json)
            .context("update: reading --resources from standard input")?;
        json
    } else {
        std::fs::read(from).with_context(|| format!("update: reading {}", from.display()))?
    };
    let resources: oci_spec::runtime::LinuxResources =
        serde_json::from_slice(&json).with_context(|| {
            format!(
                "update: --resources {} is not an OCI linux.resources JSON object",
                from.display()
            )
        })?;
    root.update(id, &resources)?;
    Ok(())
}

/// `spec`: runc's starting point, written as `<bundle>/config.json` (never over one that
/// exists): `sh` on a terminal in `rootfs`, with docker's defaults; `--rootless` for the
/// calling user.
fn write_spec(bundle: &Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.symlink_metadata().is_ok() {
        bail!("{} exists: remove it first", path.display());
    }
    let mut spec = basic_runtime::default_spec(vec!["sh".into()], vec!["TERM=xterm".into()], "/")?;
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
    }
    spec.set_hostname(Some("basic-runtime".into()));
    if rootless {
        basic_runtime::spec::make_rootless(
            &mut spec,
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )?;
    }
    let json = serde_json::to_vec_pretty(&spec)?;
    // create_new: a file that appeared since the check above is not overwritten either.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut f, &json).with_context(|| format!("writing {}", path.display()))
}
