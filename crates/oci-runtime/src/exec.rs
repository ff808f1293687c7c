//! `exec`: one more process in a running container, over `basic_runtime::exec`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use basic_runtime::StateRoot;
use basic_runtime::exec::{Exec, process_from};
use oci_spec::runtime::{Process, Spec};

use crate::cli::ExecArgs;

/// Runs the exec; the exit code to leave with (the process's own in the foreground).
pub fn exec(root: &StateRoot, args: &ExecArgs) -> Result<i32> {
    let state = root.state(&args.id)?;
    let spec = container_spec(&state.bundle)?;
    let process = process(args, spec.as_ref())?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && args.detach && args.console_socket.is_none() {
        bail!("a detached exec with a terminal needs --console-socket to hand the terminal to");
    }
    let mut builder = Exec::in_container(&args.id, process)
        .state_dir(root.dir())
        .env(args.env.iter().cloned())
        .seccomp(
            spec.as_ref()
                .and_then(|s| s.linux().as_ref())
                .and_then(|l| l.seccomp().clone()),
        );
    if !terminal {
        // runc's contract: the process gets this command's own stdio, which the engine
        // driving us made for it (conmon's pipes, the containerd shim's fifos).
        let [stdin, stdout, stderr] = own_stdio()?;
        builder = builder.stdin(stdin).stdout(stdout).stderr(stderr);
    }
    if args.detach {
        let mut b = builder.detached();
        if let Some(p) = &args.pid_file {
            b = b.pid_file(p);
        }
        let started = b.build()?.start()?;
        if let (Some(console), Some(sock)) = (started.console, &args.console_socket) {
            send_console(sock, console.into_master())?;
        }
        return Ok(0);
    }
    if args.pid_file.is_some() {
        bail!("exec --pid-file needs --detach (the pid is only known once started)");
    }
    let exec = builder.foreground().forward_signals(!terminal).build()?;
    let status = match &args.console_socket {
        Some(sock) => {
            let mut sent = Ok(());
            let status = exec.run_with_console(|console| {
                sent = send_console(sock, console.into_master());
            })?;
            sent?;
            status
        }
        None => exec.run()?,
    };
    Ok(status.exit_code())
}

/// Copies of this process's stdin, stdout and stderr.
fn own_stdio() -> Result<[std::os::fd::OwnedFd; 3]> {
    use std::os::fd::AsFd;
    let copy = |fd: std::os::fd::BorrowedFd<'_>, name: &str| {
        fd.try_clone_to_owned()
            .with_context(|| format!("duplicating this command's {name}"))
    };
    Ok([
        copy(std::io::stdin().as_fd(), "stdin")?,
        copy(std::io::stdout().as_fd(), "stdout")?,
        copy(std::io::stderr().as_fd(), "stderr")?,
    ])
}

fn send_console(sock: &Path, master: std::os::fd::OwnedFd) -> Result<()> {
    use std::os::fd::AsFd;
    let conn = basic_runtime::console::connect(sock)?;
    basic_runtime::console::send_fd(conn.as_fd(), master.as_fd(), "exec")?;
    Ok(())
}

/// The container's config.json, for its seccomp profile and default process settings.
fn container_spec(bundle: &Path) -> Result<Option<Spec>> {
    if bundle.as_os_str().is_empty() {
        return Ok(None);
    }
    let path = bundle.join("config.json");
    Ok(Some(
        Spec::load(&path).with_context(|| format!("loading {}", path.display()))?,
    ))
}

fn process(args: &ExecArgs, spec: Option<&Spec>) -> Result<Process> {
    let mut process = match (&args.process, args.command.is_empty()) {
        (Some(path), true) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading process file {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("parsing process file {}", path.display()))?
        }
        (Some(_), false) => bail!("give either --process or a command, not both"),
        (None, true) => bail!("no command given (and no --process file)"),
        (None, false) => match spec {
            Some(spec) => process_from(spec, args.command.clone())?,
            None => bail!(
                "container {} has no bundle to take process settings from",
                args.id
            ),
        },
    };
    if args.tty {
        process.set_terminal(Some(true));
    }
    if let Some(cwd) = &args.cwd {
        process.set_cwd(cwd.clone());
    }
    if let Some(user) = &args.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        let mut u = process.user().clone();
        u.set_uid(
            uid.parse()
                .with_context(|| format!("--user {user:?}: uid is not a number"))?,
        );
        if let Some(g) = gid {
            u.set_gid(
                g.parse()
                    .with_context(|| format!("--user {user:?}: gid is not a number"))?,
            );
        }
        process.set_user(u);
    }
    Ok(process)
}
