//! `diff`: what a container changed in its root filesystem (docker's
//! `GET /containers/{id}/changes`), running or stopped, from its snapshot's own
//! directory compared with the image's layers (see
//! [`basic_rootfs::Snapshotter::changes`] for the rules, docker's). Mount points the
//! runtime made at start (for `/etc/hosts`, volumes, `/proc`...) are not the
//! container's changes and are left out, as docker's init layer leaves them out.

use std::path::PathBuf;

use basic_rootfs::snapshot::{ChangeKind, PrepareOptions, SnapshotError};
use bollard_stubs::models::{ChangeType, FilesystemChange};

use crate::engine::{Container, Engine};
use crate::error::{EngineError, Result};

impl Engine {
    /// The container's changes, docker's `[{Path, Kind}]` (Kind 0 modified, 1 added,
    /// 2 deleted), parents before what is inside them.
    pub fn changes(&self, query: &str) -> Result<Vec<FilesystemChange>> {
        let c = self.container(query)?;
        let snapshotter = self.snapshotter();
        let points = mount_points(&c)?;
        let changes = match snapshotter.changes(c.id(), &points) {
            Err(SnapshotError::NoMetadata(_)) => {
                let parents = crate::rootfs::layer_stack(
                    snapshotter.as_ref(),
                    &self.store,
                    &c.record.image_id,
                )?
                .paths;
                snapshotter.adopt(c.id(), &parents, &PrepareOptions::new())?;
                snapshotter.changes(c.id(), &points)?
            }
            other => other?,
        };
        Ok(changes
            .into_iter()
            .map(|change| FilesystemChange {
                path: change.path.to_string_lossy().into_owned(),
                kind: match change.kind {
                    ChangeKind::Modified => ChangeType::_0,
                    ChangeKind::Added => ChangeType::_1,
                    ChangeKind::Deleted => ChangeType::_2,
                },
            })
            .collect())
    }
}

/// Where the container's spec mounts things: the runtime makes what is missing there.
pub(crate) fn mount_points(c: &Container) -> Result<Vec<PathBuf>> {
    let spec_path = c.paths.spec();
    let spec = basic_runtime::Spec::load(&spec_path).map_err(|e| EngineError::Corrupt {
        what: spec_path.display().to_string(),
        message: e.to_string(),
    })?;
    Ok(spec
        .mounts()
        .iter()
        .flatten()
        .map(|m| basic_runtime::in_root::lexical(m.destination()))
        .collect())
}

/// The letter `docker diff` prints for a change kind.
pub fn change_letter(kind: ChangeType) -> char {
    match kind {
        ChangeType::_0 => 'C',
        ChangeType::_1 => 'A',
        ChangeType::_2 => 'D',
    }
}
