//! The store and the run-time state are private to the user who runs the engine, as
//! docker's and containerd's are (docs/security.md, "Privacy of the store and state").
//!
//! The libraries make their own directories private (the image store its root,
//! `blobs/`, `layers/`, `tmp/`, `containers/` and database; the snapshotter
//! `snapshots/`; the network crate `networks/` and the namespace directory; the
//! runtime each container's state). What is the engine's own is made private here:
//! each `containers/<id>/` (`0700`) and the files in it (`0600`: the runtime spec
//! holds the environment, the log what the container printed), `image-mounts/`,
//! and the run-time state directory (`0711`). A store or state directory an older version
//! made wide is tightened the first time a command opens it, at the cost of a
//! `stat` per container afterwards.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use basic_image_store::ImageStore;
use basic_runtime::StateRoot;

use crate::error::{EngineError, Result};
use crate::host;
use crate::paths::{ContainerPaths, EnginePaths};

/// Directories holding a container's or an image's contents: the owner's only.
pub const PRIVATE_DIR: u32 = 0o700;

/// Files of a container (spec, mounts, start error, stop marker, lock): the owner's only.
pub const PRIVATE_FILE: u32 = 0o600;

/// The run-time state directory: others may pass through, not list (as `/run/containerd`).
pub const STATE_DIR_MODE: u32 = basic_runtime::state::ROOT_MODE;

/// Opens the image store at `root` and makes what an older version left there private:
/// the store's own directories (through [`ImageStore::open`]), the snapshotter's, each
/// container's directory and files, `image-mounts/`, `networks/`, and the run-time state
/// directory.
pub fn open_store(paths: &EnginePaths) -> Result<ImageStore> {
    let root = &paths.root;
    let store = ImageStore::open(root)?;
    host::snapshotter(paths).init()?;
    tighten_containers(&store.containers_dir())?;
    tighten(&paths.image_mounts(), PRIVATE_DIR)?;
    // `Networks::open` makes it private too, but only commands that use networks open it.
    tighten(&crate::network::config(paths).dir, PRIVATE_DIR)?;
    state_dir(paths)?;
    Ok(store)
}

/// Makes sure the run-time state directory exists and is private: the directory `0711`, what the
/// runtime keeps there per container `0700` (see [`StateRoot::open`]), the namespace
/// directory `0700`.
pub fn state_dir(paths: &EnginePaths) -> Result<()> {
    let dir = &paths.state;
    private_dir(dir, STATE_DIR_MODE)?;
    tighten(&crate::network::config(paths).netns_dir, PRIVATE_DIR)?;
    StateRoot::open(dir)?;
    Ok(())
}

/// Creates a new container's directory `containers/<id>/` (`0700`) and the mount point
/// of its root inside it.
pub fn create_container_dir(paths: &ContainerPaths) -> Result<()> {
    for dir in [&paths.dir, &paths.rootfs] {
        DirBuilder::new()
            .mode(PRIVATE_DIR)
            .create(dir)
            .map_err(EngineError::io("creating", dir))?;
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temp file made `0600` from the start, then a
/// rename: readers see the old content or the new, and nobody else sees either.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(PRIVATE_FILE)
            .open(&tmp)?;
        file.write_all(bytes)?;
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(EngineError::io("writing", path))
}

/// Creates (or opens) `path` for writing without truncating it, `0600` when new.
pub fn open_private(path: &Path) -> io::Result<fs::File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(PRIVATE_FILE)
        .open(path)
}

/// Makes sure the directory `path` exists with at most `mode`: created with it (its
/// parents with the usual modes), or tightened when it is wider.
pub fn private_dir(path: &Path, mode: u32) -> Result<()> {
    let create = || DirBuilder::new().mode(mode).create(path);
    let created = match create() {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(EngineError::io("creating", parent))?;
            }
            match create() {
                Ok(()) => true,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                Err(e) => return Err(EngineError::io("creating", path)(e)),
            }
        }
        Err(e) => return Err(EngineError::io("creating", path)(e)),
    };
    // mkdir's mode is only narrowed by the umask: a new directory is private already.
    if created { Ok(()) } else { tighten(path, mode) }
}

/// The mode `path` would have with the permission bits `mode` does not grant removed, or
/// `None` when it has none of them (or does not exist, or is a symlink).
fn narrower(path: &Path, mode: u32) -> Result<Option<u32>> {
    let current = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => return Ok(None),
        Ok(meta) => meta.permissions().mode() & 0o7777,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::io("reading the mode of", path)(e)),
    };
    let wanted = current & !(0o777 & !mode);
    Ok((wanted != current).then_some(wanted))
}

/// Removes from the permission bits of `path` (when it exists) those `mode` does not
/// grant. Nothing else changes, and nothing is written when nothing needs to.
fn tighten(path: &Path, mode: u32) -> Result<()> {
    let Some(wanted) = narrower(path, mode)? else {
        return Ok(());
    };
    match fs::set_permissions(path, fs::Permissions::from_mode(wanted)) {
        // A read-only store (a mounted backup) can still be read; it is tightened the
        // first time it is opened writable.
        Err(e) if e.kind() == io::ErrorKind::ReadOnlyFilesystem => {
            tracing::warn!(path = %path.display(), "read-only: its mode stays as it is");
            Ok(())
        }
        other => other.map_err(EngineError::io("tightening the mode of", path)),
    }
}

/// Each `containers/<id>/` made wide by an older version becomes `0700` and the files
/// directly in it `0600`. Its subdirectories are left alone: `etc/` holds the hosts and
/// resolv.conf files containers read as any user, `rootfs/` is the container's root,
/// whose mode is the image's. The directory is tightened last, so an interrupted run is
/// finished by the next, and a directory already private is not listed again.
fn tighten_containers(containers: &Path) -> Result<()> {
    let entries = fs::read_dir(containers).map_err(EngineError::io("listing", containers))?;
    for entry in entries.flatten() {
        let dir = entry.path();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) || narrower(&dir, PRIVATE_DIR)?.is_none() {
            continue;
        }
        let files = fs::read_dir(&dir).map_err(EngineError::io("listing", &dir))?;
        for file in files.flatten() {
            if file.file_type().is_ok_and(|t| t.is_file()) {
                tighten(&file.path(), PRIVATE_FILE)?;
            }
        }
        tighten(&dir, PRIVATE_DIR)?;
    }
    Ok(())
}
