//! Attacks on the engine from hostile images and container processes, each
//! run against the real binary as a user runs it. Every test first shows that
//! its attack really ran and really tried (a positive control: the attack
//! program reported its attempts, or the same attack succeeds on the host
//! against a target the test exposes on purpose), then that nothing of the
//! host changed: its terminal's input queue, its descriptors, directories
//! outside the container's root, the engine's own binary.
//!
//! Not trusted: images (layers, config, symlinks) and container processes.
//! Each module says which promise it attacks; the C attack programs are in
//! `tests/attacks/`.

mod common;

#[path = "security/attach.rs"]
mod attach;
#[path = "security/descriptors.rs"]
mod descriptors;
#[path = "security/host_binaries.rs"]
mod host_binaries;
#[path = "security/paths.rs"]
mod paths;
#[path = "security/support.rs"]
mod support;
#[path = "security/terminal.rs"]
mod terminal;
#[path = "security/users.rs"]
mod users;
#[path = "security/volumes.rs"]
mod volumes;
