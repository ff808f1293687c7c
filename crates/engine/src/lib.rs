//! `basic-engine`: containers made from images, as docker's engine makes them.
#![deny(missing_docs)]

pub mod config;
pub mod error;
pub mod host;
pub mod names;
pub mod paths;
pub mod privacy;
pub mod spec;
pub mod status;

pub use config::{ContainerConfig, HostConfig, StoredConfig};
pub use error::{EngineError, ErrorKind, Result};
pub use paths::{ContainerPaths, EnginePaths};
pub use status::Status;
