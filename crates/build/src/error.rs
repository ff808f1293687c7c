//! What can go wrong in a build, with what the user can act on.

use std::path::PathBuf;

/// Errors of [`crate::build`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The Dockerfile cannot be read as one.
    #[error("{file} line {line}: {message}")]
    Syntax {
        /// The Dockerfile's name.
        file: String,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An instruction is well formed but cannot be done.
    #[error("Step {step} ({keyword} on line {line}): {message}")]
    Instruction {
        /// The step number.
        step: usize,
        /// The instruction's word.
        keyword: String,
        /// Its line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A `RUN` command ended with a non-zero code.
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed {
        /// The command as docker prints it.
        command: String,
        /// Its exit code.
        code: i32,
    },
    /// A build option is wrong (`--target` naming no stage, a bad build arg).
    #[error("{0}")]
    Invalid(String),
    /// A file of the context or the build's own could not be read or written.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The engine failed (a container, the store).
    #[error(transparent)]
    Engine(#[from] basic_engine::EngineError),
    /// The image store failed.
    #[error(transparent)]
    Store(#[from] basic_image_store::StoreError),
}

impl BuildError {
    /// The exit code a command line should end with: a failed `RUN`'s own code, 1
    /// otherwise (as `docker build` ends).
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::RunFailed { code, .. } => *code,
            _ => 1,
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BuildError::Io { what, path, source }
    }
}
