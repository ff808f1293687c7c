//! The container's root filesystem: [`plan`] decides it from the spec (a pure function,
//! unit-tested without root); [`setup`] carries the plan out, in the order the kernel needs
//! it: propagation, the rootfs bind, the spec's mounts, `/dev`, entering the root, sysctls,
//! the working directory, masked and read-only paths.
//!
//! Every path inside the root is resolved inside it at the moment it is used
//! ([`crate::in_root`]), and mounts go onto the resolved handle, so nothing swapped in
//! after resolution redirects them.

mod devices;
mod enter;
mod mounts;
mod plan;

pub(crate) use enter::root_is_ramfs;

use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sys::stat::Mode;
use oci_spec::runtime::Spec;

use super::{ChildError, io, sys};
use crate::in_root::{Leaf, Root};
use plan::{DevEntry, Host, Plan};

/// Builds the root filesystem `spec` asks for at `rootfs` and enters it; `no_pivot` is
/// runc's `--no-pivot`. `before_pivot` runs once the mounts are made, just before the root
/// is entered (the create hooks' moment).
pub(crate) fn setup(
    spec: &Spec,
    rootfs: &Path,
    no_pivot: bool,
    before_pivot: &mut dyn FnMut() -> Result<(), ChildError>,
) -> Result<(), ChildError> {
    let plan = plan::plan(spec, &Host::read(spec)?, no_pivot)?;
    execute(&plan, rootfs, before_pivot)
}

fn execute(
    plan: &Plan,
    rootfs: &Path,
    before_pivot: &mut dyn FnMut() -> Result<(), ChildError>,
) -> Result<(), ChildError> {
    // What we create without an explicit mode (none: see in_root) must not come out
    // world-writable; device nodes get their spec's mode with a chmod.
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    // Our mounts must not leak back to the host: slave everything first. The spec's
    // rootfsPropagation is applied only inside the new root (see `finish`): a shared or
    // unbindable tree here would make pivot_root fail with EINVAL.
    set_propagation(Path::new("/"), MsFlags::MS_SLAVE | MsFlags::MS_REC)
        .map_err(sys("making / rslave"))?;
    // pivot_root needs the new root to be a mount point.
    mount(
        Some(rootfs),
        rootfs,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(sys(format!(
        "bind-mounting the rootfs {}",
        rootfs.display()
    )))?;
    populate(plan, rootfs)?;
    before_pivot()?;
    enter::enter_root(rootfs, plan.enter)?;
    for s in &plan.sysctls {
        std::fs::write(&s.file, &s.value)
            .map_err(io(format!("setting sysctl {}={}", s.key, s.value)))?;
    }
    finish(plan)
}

/// Before entering the root: the spec's mounts and `/dev`.
fn populate(plan: &Plan, rootfs: &Path) -> Result<(), ChildError> {
    let root =
        Root::open(rootfs).map_err(io(format!("opening the rootfs {}", rootfs.display())))?;
    for step in &plan.mounts {
        mounts::mount_one(&root, step)?;
    }
    for entry in &plan.dev {
        match entry {
            DevEntry::Node(node) => devices::make_node(&root, node)?,
            DevEntry::Symlink { target, link } => devices::symlink(&root, target, link)?,
        }
    }
    Ok(())
}

/// Inside the root: what resolves there (a bundle's own masked paths may name symlinks of
/// its rootfs, which must be followed inside it).
fn finish(plan: &Plan) -> Result<(), ChildError> {
    let root = Root::open(Path::new("/")).map_err(io("opening the new root"))?;
    if let Some(cwd) = &plan.cwd {
        root.create(cwd, Leaf::Dir).map_err(io(format!(
            "creating the working directory {}",
            cwd.display()
        )))?;
    }
    for path in &plan.masked {
        mounts::mask(&root, path)?;
    }
    for path in &plan.readonly {
        mounts::readonly(&root, path)?;
    }
    if plan.readonly_root {
        mounts::remount_ro(Path::new("/"))?;
    }
    let prop = &plan.propagation;
    if prop.reapplied_in_root() {
        set_propagation(Path::new("/"), prop.flag | MsFlags::MS_REC)
            .map_err(sys(format!("making the new / {}", prop.name)))?;
    }
    Ok(())
}

fn set_propagation(target: &Path, flags: MsFlags) -> nix::Result<()> {
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}
