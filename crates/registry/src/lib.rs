//! Pull images from OCI and Docker registries.
#![deny(missing_docs)]

pub mod challenge;
pub mod credentials;
pub mod platform;
pub mod reference;

pub use challenge::{Challenge, ChallengeError};
pub use credentials::{CredentialStore, Credentials, CredentialsError};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
