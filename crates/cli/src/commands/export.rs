//! `export [-o FILE] CONTAINER`: the container's root filesystem as a tar
//! archive, as `docker export` writes it (the merged tree: what the image gave
//! and what the container changed, without whiteouts).
//!
//! The root is read in a private mount namespace of a thread of its own:
//! a running container's root is seen there as it is mounted now, and a
//! stopped container's is mounted there read-only. Nothing mounted for the
//! export is ever visible outside that namespace, and it goes with the thread
//! however the export ends, so a stopped container's root never stays
//! mounted. The copy of a running container's mount does not keep the
//! container's own unmount from succeeding when it exits meanwhile.
//!
//! While a stopped container is exported, a shared hold on its supervisor's
//! lock keeps it from being started (a `start` then fails as for a running
//! container), so its writable layer does not change under the export.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use basic_image_store::ContainerRecord;
use basic_rootfs::snapshot::Snapshotter;
use clap::Args;
use nix::mount::MsFlags;
use nix::sched::CloneFlags;

use basic_image_store::short_id;

use super::create::{load_mounts, mount};
use super::live::Paths;
use super::{host, image_store};
use crate::cli::GlobalOptions;

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The container: name, id or unique id prefix
    pub container: String,
}

/// Writes the archive to `-o FILE` (through a temp file renamed at the end, so
/// a failed export leaves no half archive) or to STDOUT.
pub fn export(global: &GlobalOptions, args: ExportArgs) -> anyhow::Result<ExitCode> {
    if args.output.is_none() && io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let store = image_store(global)?;
    let record = store.container(&args.container)?;
    match &args.output {
        Some(path) => write_file(path, |file| {
            let mut out = BufWriter::new(file);
            export_root(&global.root, &record, &mut out)?;
            let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
            file.sync_all()
                .with_context(|| format!("writing {}", path.display()))
        })?,
        None => export_root(&global.root, &record, BufWriter::new(io::stdout()))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Calls `write` with a temp file beside `path`, renamed to `path` when it succeeds.
fn write_file(path: &Path, write: impl FnOnce(&File) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".tmp-{}", std::process::id()));
    let temp = PathBuf::from(temp);
    let file = File::create(&temp).with_context(|| format!("creating {}", temp.display()))?;
    let written = write(&file).and_then(|()| {
        fs::rename(&temp, path)
            .with_context(|| format!("renaming the archive to {}", path.display()))
    });
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    }
    written
}

/// Writes the container's root to `out`, from a private mount namespace.
fn export_root(
    root: &Path,
    record: &ContainerRecord,
    out: impl Write + Send,
) -> anyhow::Result<()> {
    let paths = Paths::new(root, &record.id);
    // While this is held no supervisor can take its lock, so a stopped
    // container stays stopped (its upper directory unchanged) until the end.
    let _stopped = hold_stopped(&paths)?;
    let snapshotter = host::snapshotter(root);
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                private_mount_namespace()?;
                export_in_namespace(snapshotter.as_ref(), &paths, out)
            })
            .join()
            .unwrap_or_else(|_| bail!("the export of {} panicked", short_id(&record.id)))
    })
    .with_context(|| format!("exporting container {}", short_id(&record.id)))
}

/// A shared hold on the supervisor's lock, or `None` when a supervisor holds
/// it (the container runs, or waits to restart).
fn hold_stopped(paths: &Paths) -> anyhow::Result<Option<File>> {
    let path = paths.supervisor_lock();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(fs::TryLockError::WouldBlock) => Ok(None),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Gives this thread a mount namespace of its own in which nothing propagates
/// back to the host's.
fn private_mount_namespace() -> anyhow::Result<()> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNS)
        .context("creating a private mount namespace for the export")?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .context("making the export's mount namespace private")
}

/// In the private namespace: the root as mounted (a running container's),
/// else mounted read-only for the export (a stopped container's, or one
/// whose supervisor has not mounted it yet).
fn export_in_namespace(
    snapshotter: &dyn Snapshotter,
    paths: &Paths,
    out: impl Write,
) -> anyhow::Result<()> {
    let _unmount = if mounted_here(&paths.rootfs)? {
        None
    } else {
        let mut mounts = load_mounts(paths)?;
        // Only read from: not the container's root, so no setuid bit or device counts.
        for m in &mut mounts {
            m.options
                .extend(["ro", "nosuid", "nodev"].map(String::from));
        }
        mount(snapshotter, paths, &mounts)?;
        Some(Unmount(snapshotter, &paths.rootfs))
    };
    basic_rootfs::export::write_tree(&paths.rootfs, out)?;
    Ok(())
}

/// Unmounts on drop. The namespace dies with the thread anyway; unmounting
/// first lets go of the snapshot's upper directory at once.
struct Unmount<'a>(&'a dyn Snapshotter, &'a Path);

impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.unmount(self.1) {
            tracing::debug!("unmounting the export's view of {}: {e}", self.1.display());
        }
    }
}

/// Whether `target` is a mount point in this thread's mount namespace
/// (`/proc/self` would show the process' namespace, not this thread's).
fn mounted_here(target: &Path) -> anyhow::Result<bool> {
    let table = fs::read_to_string("/proc/thread-self/mountinfo")
        .context("reading /proc/thread-self/mountinfo")?;
    let want = target.to_string_lossy();
    Ok(table
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mount_point| mount_point == want))
}
