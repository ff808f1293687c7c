//! `start`, `stop`, `restart`, `kill`, `pause`, `unpause`, `rm`, `wait` and
//! `container prune`, on containers named by id, id prefix or name.
//!
//! Each verb goes through every container given, reports failures on stderr
//! as docker does, and exits 1 when any failed.

use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use basic_image_store::{ContainerRecord, ImageStore};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use basic_image_store::short_id;

use super::create::Settings;
use super::format::human_size;
use super::live::{self, Paths, Status};
use super::{cleanup, image_store, supervise};
use crate::cli::{
    ContainerPruneArgs, ContainersArgs, GlobalOptions, KillArgs, RenameArgs, RmArgs, StopArgs,
};

/// How long `rm -f` and `kill` wait for a killed container's supervisor to finish.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// Runs `verb` on each container, printing what it returns; exit 1 if any failed.
fn each(
    global: &GlobalOptions,
    containers: &[String],
    mut verb: impl FnMut(&ImageStore, &ContainerRecord) -> anyhow::Result<Option<String>>,
) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let mut failed = false;
    for query in containers {
        let done = store
            .container(query)
            .map_err(anyhow::Error::from)
            .and_then(|record| verb(&store, &record));
        match done {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => println!("{query}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `start`: a detached supervisor for each container that is not running.
pub fn start(global: &GlobalOptions, args: ContainersArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |_, record| {
        start_one(&global.root, record).map(|()| None)
    })
}

fn start_one(root: &Path, record: &ContainerRecord) -> anyhow::Result<()> {
    if live::status(root, record).is_up() {
        return Ok(());
    }
    match supervise::start_detached(root, record)? {
        Ok(()) => Ok(()),
        Err(code) => bail!(
            "container {} failed to start (exit code {code})",
            short_id(&record.id)
        ),
    }
}

/// `stop`: the container's stop signal, then SIGKILL after `-t` seconds.
pub fn stop(global: &GlobalOptions, args: StopArgs) -> anyhow::Result<ExitCode> {
    let grace = Duration::from_secs(args.time);
    each(global, &args.containers, |_, record| {
        stop_one(&global.root, record, grace).map(|()| None)
    })
}

fn stop_one(root: &Path, record: &ContainerRecord, grace: Duration) -> anyhow::Result<()> {
    let paths = Paths::new(root, &record.id);
    request_stop(&paths)?;
    let Some(pid) = live::live_init(&paths) else {
        // Not running; a supervisor waiting to restart sees the marker.
        wait_supervisor_gone(&paths, KILL_WAIT);
        return Ok(());
    };
    let settings = Settings::of(record)?;
    let signal = parse_signal(&settings.stop_signal).unwrap_or(Signal::SIGTERM);
    thaw(&record.id);
    let _ = nix::sys::signal::kill(Pid::from_raw(pid), signal);
    if !live::wait_for(grace, || live::live_init(&paths).is_none()) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    live::wait_for(KILL_WAIT, || live::live_init(&paths).is_none());
    wait_supervisor_gone(&paths, KILL_WAIT);
    Ok(())
}

/// Tells the supervisor not to restart the container after this exit.
fn request_stop(paths: &Paths) -> anyhow::Result<()> {
    use super::privacy;
    if let Some(dir) = paths.stop_marker().parent() {
        privacy::private_dir(dir, privacy::STATE_DIR_MODE)?;
    }
    privacy::write_private(&paths.stop_marker(), b"")
}

fn wait_supervisor_gone(paths: &Paths, timeout: Duration) {
    live::wait_for(timeout, || !live::supervisor_alive(paths));
}

/// `restart`: stop (when running), then start.
pub fn restart(global: &GlobalOptions, args: StopArgs) -> anyhow::Result<ExitCode> {
    let grace = Duration::from_secs(args.time);
    each(global, &args.containers, |store, record| {
        stop_one(&global.root, record, grace)?;
        let record = store.container(&record.id)?;
        start_one(&global.root, &record).map(|()| None)
    })
}

/// `kill`: a signal to the container's init.
pub fn kill(global: &GlobalOptions, args: KillArgs) -> anyhow::Result<ExitCode> {
    let signal = parse_signal(&args.signal)?;
    each(global, &args.containers, |_, record| {
        let paths = Paths::new(&global.root, &record.id);
        let Some(pid) = live::live_init(&paths) else {
            bail!(
                "cannot kill container: {}: container is not running",
                short_id(&record.id)
            );
        };
        // docker: a killed container is not restarted by its policy.
        request_stop(&paths)?;
        nix::sys::signal::kill(Pid::from_raw(pid), signal)
            .with_context(|| format!("sending {signal} to container {}", short_id(&record.id)))?;
        Ok(None)
    })
}

/// A signal by name (`SIGHUP`, `HUP`, `hup`) or number.
pub fn parse_signal(text: &str) -> anyhow::Result<Signal> {
    if let Ok(n) = text.parse::<i32>() {
        return Signal::try_from(n).with_context(|| format!("invalid signal: {text}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).with_context(|| format!("invalid signal: {text}"))
}

/// `pause`: freezes every process of the container (freezer cgroup).
pub fn pause(global: &GlobalOptions, args: ContainersArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |_, record| {
        match live::status(&global.root, record) {
            Status::Running(_) => freeze(&record.id, true).map(|()| None),
            Status::Paused(_) => bail!("container {} is already paused", short_id(&record.id)),
            _ => bail!("container {} is not running", short_id(&record.id)),
        }
    })
}

/// `unpause`: thaws a paused container.
pub fn unpause(global: &GlobalOptions, args: ContainersArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |_, record| {
        match live::status(&global.root, record) {
            Status::Paused(_) => freeze(&record.id, false).map(|()| None),
            _ => bail!("container {} is not paused", short_id(&record.id)),
        }
    })
}

fn thaw(id: &str) {
    let _ = live::runtime().resume(id);
}

fn freeze(id: &str, frozen: bool) -> anyhow::Result<()> {
    let runtime = live::runtime();
    if frozen {
        runtime.pause(id)?;
    } else {
        runtime.resume(id)?;
    }
    Ok(())
}

/// `rm`: removes stopped containers; `-f` kills running ones first.
pub fn rm(global: &GlobalOptions, args: RmArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |store, record| {
        let status = live::status(&global.root, record);
        if status.is_up() {
            if !args.force {
                bail!(
                    "You cannot remove a {} container {}. Stop the container before attempting removal or force remove",
                    status.word(),
                    record.id
                );
            }
            force_stop(&global.root, record)?;
        }
        cleanup::remove(&global.root, store, record)?;
        Ok(None)
    })
}

/// Kills the container and waits for its supervisor to finish with it.
fn force_stop(root: &Path, record: &ContainerRecord) -> anyhow::Result<()> {
    let paths = Paths::new(root, &record.id);
    request_stop(&paths)?;
    thaw(&record.id);
    if let Some(pid) = live::live_init(&paths) {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let gone = live::wait_for(KILL_WAIT, || {
        live::live_init(&paths).is_none() && !live::supervisor_alive(&paths)
    });
    if !gone {
        bail!(
            "container {} did not stop after SIGKILL",
            short_id(&record.id)
        );
    }
    Ok(())
}

/// `wait`: blocks until each container is not running, then prints its exit code.
pub fn wait(global: &GlobalOptions, args: ContainersArgs) -> anyhow::Result<ExitCode> {
    each(global, &args.containers, |store, record| {
        let mut status = live::status(&global.root, record);
        while status.is_up() || status == Status::Created && supervised(&global.root, record) {
            std::thread::sleep(Duration::from_millis(50));
            status = live::status(&global.root, &store.container(&record.id)?);
        }
        match status {
            Status::Exited(code) => Ok(Some(code.to_string())),
            _ => Ok(Some("0".to_string())),
        }
    })
}

fn supervised(root: &Path, record: &ContainerRecord) -> bool {
    live::supervisor_alive(&Paths::new(root, &record.id))
}

/// `container prune`: removes every container that is not running.
pub fn prune(global: &GlobalOptions, _args: ContainerPruneArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for record in store.containers()? {
        if live::status(&global.root, &record).is_up() || supervised(&global.root, &record) {
            continue;
        }
        let size = cleanup::writable_size(&global.root, &record.id);
        cleanup::remove(&global.root, &store, &record)?;
        reclaimed += size;
        deleted.push(record.id);
    }
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for id in &deleted {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(ExitCode::SUCCESS)
}

/// `rename`: a new unique name; the spec's name annotation follows, so the
/// monitoring verbs show it too.
pub fn rename(global: &GlobalOptions, args: RenameArgs) -> anyhow::Result<ExitCode> {
    let store = image_store(global)?;
    let record = store.container(&args.container)?;
    super::run_spec::check_name(&args.new_name)?;
    store.rename_container(&record.id, &args.new_name)?;
    let paths = Paths::new(&global.root, &record.id);
    if let Ok(mut spec) = basic_runtime::Spec::load(paths.spec()) {
        let mut annotations = spec.annotations().clone().unwrap_or_default();
        annotations.insert(
            super::containers::NAME_ANNOTATION.to_string(),
            args.new_name.clone(),
        );
        spec.set_annotations(Some(annotations));
        super::privacy::write_private(&paths.spec(), &serde_json::to_vec(&spec)?)?;
    }
    Ok(ExitCode::SUCCESS)
}
