//! `image mount` / `image unmount`, as podman has them: a read-only view of what a
//! pull built, at a path the user can look around in.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use basic_engine::host::snapshotter;
use basic_image_store::HolderKind;

use super::image_store;
use crate::cli::{GlobalOptions, ImageMountArgs};
use basic_engine::privacy::{PRIVATE_DIR, private_dir};

/// Where an image's view is mounted, and the snapshot key behind it.
struct ImageMount {
    key: String,
    target: PathBuf,
    id: String,
}

fn image_mount(global: &GlobalOptions, image: &str) -> anyhow::Result<(ImageMount, Vec<PathBuf>)> {
    let store = image_store(global)?;
    let record = store.resolve(image)?;
    let hex = record.id.trim_start_matches("sha256:").to_string();
    let layers = record
        .layers
        .iter()
        .map(|l| Ok(store.layer_dir(&l.chain_id)?.join("diff")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mount = ImageMount {
        key: format!("image-{hex}"),
        target: global.root.join("image-mounts").join(&hex),
        id: record.id,
    };
    Ok((mount, layers))
}

/// Mounts the image's layers read-only (once; a second call prints the same path).
pub fn mount(global: &GlobalOptions, args: ImageMountArgs) -> anyhow::Result<ExitCode> {
    let (m, layers) = image_mount(global, &args.image)?;
    if is_mount_point(&m.target) {
        println!("{}", m.target.display());
        return Ok(ExitCode::SUCCESS);
    }
    // Held before mounting, so no `rmi` or prune removes the layers under the view.
    let store = image_store(global)?;
    store
        .hold(HolderKind::Mount, &m.id, &m.id)
        .with_context(|| format!("holding image {}", m.id))?;
    // Owner-only: the view is for root to look at. The mount itself is nosuid,nodev
    // (every snapshotter view is), so nothing in it runs setuid or opens a device.
    let mounted = private_dir(m.target.parent().unwrap_or(&global.root), PRIVATE_DIR)
        .and_then(|()| private_dir(&m.target, PRIVATE_DIR))
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            let snapshotter = snapshotter(&super::paths(global));
            let _ = snapshotter.remove(&m.key);
            let view = snapshotter
                .view(&m.key, &layers)
                .context("preparing the image's view")?;
            snapshotter
                .mount(&view, &m.target)
                .with_context(|| format!("mounting {} at {}", m.id, m.target.display()))
        });
    if let Err(e) = mounted {
        if let Err(release) = store.release(HolderKind::Mount, &m.id) {
            eprintln!("Warning: releasing image {}: {release}", m.id);
        }
        return Err(e);
    }
    println!("{}", m.target.display());
    Ok(ExitCode::SUCCESS)
}

/// Unmounts what `image mount` mounted and removes its snapshot.
pub fn unmount(global: &GlobalOptions, args: ImageMountArgs) -> anyhow::Result<ExitCode> {
    let (m, _) = image_mount(global, &args.image)?;
    if !is_mount_point(&m.target) {
        anyhow::bail!("image {} is not mounted", args.image);
    }
    let snapshotter = snapshotter(&super::paths(global));
    snapshotter
        .unmount(&m.target)
        .with_context(|| format!("unmounting {}", m.target.display()))?;
    snapshotter
        .remove(&m.key)
        .context("removing the image's view")?;
    let _ = std::fs::remove_dir(&m.target);
    image_store(global)?
        .release(HolderKind::Mount, &m.id)
        .with_context(|| format!("releasing image {}", m.id))?;
    println!("{}", m.id);
    Ok(ExitCode::SUCCESS)
}

/// True when `path` is listed as a mount point in /proc/self/mountinfo.
fn is_mount_point(path: &std::path::Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let Ok(abs) = std::path::absolute(path) else {
        return false;
    };
    let want = abs.to_string_lossy().replace(' ', "\\040");
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}
