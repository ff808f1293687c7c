#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod config;
mod create;
mod engine;
pub mod error;
pub mod events;
mod exec;
mod export;
pub mod host;
mod images;
mod inspect;
mod legacy;
mod lifecycle;
pub mod list;
mod logs;
pub mod names;
pub mod network;
pub mod paths;
pub mod privacy;
mod remove;
pub mod rootfs;
pub mod spec;
pub mod status;
mod supervise;
pub mod validate;

pub use config::{ContainerConfig, HostConfig, StoredConfig};
pub use create::{CreateOptions, Created};
pub use engine::{Container, Engine, EngineOptions, SupervisorCommand};
pub use error::{EngineError, ErrorKind, Result};
pub use events::EventOptions;
pub use exec::ExecOptions;
pub use lifecycle::{PruneReport, parse_signal};
pub use list::{Filters, Listed};
pub use logs::LogOptions;
pub use paths::{ContainerPaths, EnginePaths};
pub use status::Status;
pub use supervise::{Attachment, ENGINE_FAILURE};
