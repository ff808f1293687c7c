//! Dockerfile builds on [`basic_engine`]: docker's Dockerfile syntax, each `RUN` a
//! container, each file-changing step a layer written from the container's snapshot,
//! a cache that makes a rebuild with nothing changed start no container, and images
//! that are the same bytes on any machine when `SOURCE_DATE_EPOCH` is given.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use basic_build::{BuildOptions, Context, build};
//! use basic_engine::{Engine, EngineOptions};
//!
//! let engine = Engine::open(EngineOptions::default())?;
//! let dir = std::path::Path::new("app");
//! let dockerfile = std::fs::read_to_string(dir.join("Dockerfile"))?;
//! let options = BuildOptions { tags: vec!["app:latest".into()], ..BuildOptions::default() };
//! let id = build(&engine, &dockerfile, "Dockerfile", &Context::open(dir)?, &options, &mut std::io::stdout())?;
//! println!("{id}");
//! # Ok(())
//! # }
//! ```
//!
//! * [`parser`] reads Dockerfiles (directives, continuations, JSON and shell forms,
//!   variable expansion).
//! * [`Context`] is the build context with its `.dockerignore` ([`ignore`]).
//! * [`build`] runs the steps; [`base_images`] says what to pull first.
#![deny(missing_docs)]

mod builder;
mod context;
mod error;
pub mod ignore;
pub mod parser;
mod remote;

pub use builder::{BuildOptions, base_images, build, check_platform};
pub use context::Context;
pub use error::BuildError;
