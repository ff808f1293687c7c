//! Pull images from OCI and Docker registries.
#![deny(missing_docs)]

pub mod reference;

pub use reference::{Reference, ReferenceError};
