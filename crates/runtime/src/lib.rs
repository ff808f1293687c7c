//! `basic-runtime`: run an OCI runtime-spec container in the foreground, libcontainer-style.
//!
//! ```no_run
//! use basic_runtime::{Container, default_spec};
//! // First in main: no container may overwrite this program (see `sealed_exe`).
//! basic_runtime::sealed_exe::ensure()?;
//! let mut spec = default_spec(vec!["echo".into(), "hi".into()], vec![], "/")?;
//! spec.set_hostname(Some("box".into()));
//! let status = Container::builder("demo", spec, "/path/to/rootfs").build()?.run()?;
//! std::process::exit(status.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **The fork rule**: this library forks container processes only from a single-threaded
//! process. [`Container::start`], [`Container::run`], [`Container::create`] and
//! [`exec::Exec`] check it and refuse otherwise ([`fork_rule`] says why and what to do):
//! start threads (an async runtime, relays) after [`Container::start`] has returned, or run
//! containers from a process of their own.
//!
//! At the root: [`Container`] (builder, start, run, exit status), [`StateRoot`] (runc's
//! create/start/state/kill/delete), [`detect()`] and [`unsupported`] (what the host
//! allows). Modules: [`attach`] (clients of a supervised container's stdio), [`cgroups`] (v1 and v2 managers), [`spec`] (docker's defaults),
//! [`signals`] (parsing, forwarding to the container), [`hooks`] (the spec's hooks),
//! [`fork_rule`], [`sealed_exe`] and
//! [`in_root`] (what keeps the host out of a container's reach). The container side of the
//! fork lives in `process`.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod attach;
pub mod cgroups;
mod channel;
pub mod console;
mod container;
pub mod descriptors;
mod detect;
pub mod exec;
pub mod fork_rule;
pub mod hooks;
pub mod in_root;
mod lifecycle;
pub mod logfile;
mod pipes;
mod poll_set;
mod process;
pub mod rootless;
pub mod sealed_exe;
pub mod seccomp;
pub mod signals;
pub mod spec;
mod spec_check;
pub mod state;
pub mod supervisor;
pub mod terminal;

pub use cgroups::{CgroupError, CgroupManager, CgroupVersion};
pub use channel::{ChannelError, FailureKind};
pub use container::{
    Container, ContainerBuilder, ContainerError, ExitStatus, Running, wants_namespace,
};
pub use detect::{Environment, Unsupported, detect, unsupported};
pub use lifecycle::{LifecycleError, StateRoot};
pub use oci_spec::runtime::Spec;
pub use spec::{SpecError, default_spec, resolve_user};
pub use state::{State, Status};

/// The README's examples, compiled with the doctests so that they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
