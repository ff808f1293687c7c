#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod archive;
pub mod attach;
mod changes;
pub mod check;
pub mod commit;
pub mod config;
mod cp;
mod create;
mod engine;
pub mod error;
pub mod events;
mod exec;
mod exits;
mod export;
mod foreground;
pub mod host;
mod image_docs;
mod images;
mod inspect;
mod legacy;
mod lifecycle;
pub mod list;
mod logs;
pub mod mounts;
pub mod names;
pub mod network;
mod networks;
pub mod paths;
pub mod privacy;
mod remove;
pub mod rootfs;
pub mod spec;
pub mod stats;
pub mod status;
mod supervise;
mod top;
pub mod validate;
mod view;
pub mod volumes;

pub use archive::{CopyToOptions, PathStat, file_mode};
pub use attach::{
    AttachEnd, AttachOptions, AttachReader, AttachWriter, Attached, DetachKeys, Detacher, Frame,
    Sent,
};
pub use changes::change_letter;
pub use commit::{CommitOptions, ConfigChange, LayerWriteOptions};
pub use config::{ContainerConfig, HostConfig, StoredConfig};
pub use cp::{CpOptions, CpSource, CpTarget};
pub use create::{CreateOptions, Created};
pub use engine::{Container, Engine, EngineOptions, SupervisorCommand};
pub use error::{EngineError, ErrorKind, Result};
pub use events::EventOptions;
pub use exec::ExecOptions;
pub use foreground::ForegroundOptions;
pub use image_docs::delete_item;
pub use inspect::{ContainerDocument, Empty, EndpointSettings, InspectConfig, NetworkSettings};
pub use lifecycle::{PruneReport, RemoveOptions, WaitCondition, parse_signal};
pub use list::{Filters, Listed};
pub use logs::LogOptions;
pub use mounts::{ContainerMount, MountKind};
pub use paths::{ContainerPaths, EnginePaths};
pub use stats::{StatsSampler, StatsSummary};
pub use status::Status;
pub use supervise::{Attachment, ENGINE_FAILURE};
pub use top::TOP_TITLES;
pub use volumes::{Volume, VolumeCreateRequest, VolumeFilters, VolumePruneReport};
