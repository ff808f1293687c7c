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
//! Modules: [`container`] (builder, run, exit status), [`cgroups`] (v1 and v2 managers),
//! [`detect`](mod@detect) (what the host allows), [`spec`] (docker's defaults), [`signals`]
//! (forwarding to the container), [`sealed_exe`] and [`in_root`] (what keeps the host out of
//! a container's reach). The container side of the fork lives in `process`.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod cgroups;
pub mod channel;
pub mod console;
pub mod container;
pub mod descriptors;
pub mod detect;
pub mod exec;
pub mod fork_rule;
pub mod in_root;
pub mod lifecycle;
pub mod logfile;
mod pipes;
mod process;
pub mod sealed_exe;
pub mod seccomp;
pub mod signals;
pub mod spec;
pub mod spec_check;
pub mod state;
pub mod supervisor;
pub mod terminal;

pub use cgroups::{CgroupError, CgroupManager, CgroupVersion};
pub use container::{Container, ContainerBuilder, ContainerError, ExitStatus, Running};
pub use detect::{Environment, Unsupported, detect, unsupported};
pub use lifecycle::{LifecycleError, StateRoot};
pub use oci_spec::runtime::Spec;
pub use spec::{SpecError, default_spec, resolve_user};
pub use state::{State, Status};
