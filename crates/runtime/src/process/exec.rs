//! Resolving the command inside the container and exec'ing it.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use super::ChildError;

/// A command ready to exec: everything allocated before the last step.
pub(crate) struct Command {
    program: PathBuf,
    shown: String,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

fn cstring(s: &str) -> Result<CString, ChildError> {
    CString::new(s).map_err(|_| ChildError::Spec(format!("NUL byte in {s:?}")))
}

impl Command {
    /// Resolves `args[0]` with the container's `PATH` (the spec's env, not ours).
    pub(crate) fn new(process: &Process) -> Result<Self, ChildError> {
        let args = process.args().clone().unwrap_or_default();
        let first = args
            .first()
            .ok_or_else(|| ChildError::Spec("the process has no args".into()))?;
        let env = process.env().clone().unwrap_or_default();
        let path_var = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        let program =
            resolve(first, path_var).ok_or_else(|| ChildError::NotFound(first.clone()))?;
        Ok(Command {
            program,
            shown: first.clone(),
            argv: args.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?,
            envp: env.iter().map(|e| cstring(e)).collect::<Result<_, _>>()?,
        })
    }

    /// Replaces the process; returns only the error.
    pub(crate) fn exec(&self) -> ChildError {
        let program = match cstring(&self.program.to_string_lossy()) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let err = match nix::unistd::execve(&program, &self.argv, &self.envp) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        match err {
            nix::Error::ENOENT => ChildError::NotFound(self.shown.clone()),
            nix::Error::EACCES | nix::Error::EPERM | nix::Error::ENOEXEC => {
                ChildError::PermissionDenied {
                    cmd: self.shown.clone(),
                    source: err,
                }
            }
            source => ChildError::Sys {
                what: format!("exec {:?}", self.shown),
                source,
            },
        }
    }
}

/// `PATH` lookup as execvp does it, but against the container's `PATH`. A name with a slash
/// is used as given (exec reports what is wrong with it).
fn resolve(cmd: &str, path_var: &str) -> Option<PathBuf> {
    if cmd.contains('/') {
        return Some(PathBuf::from(cmd));
    }
    let mut first_existing = None;
    for dir in path_var.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(cmd);
        if let Ok(meta) = std::fs::metadata(&candidate) {
            if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                return Some(candidate);
            }
            // Keep a non-executable match so exec fails with "permission denied" (126),
            // which is what docker reports in that case.
            first_existing.get_or_insert(candidate);
        }
    }
    first_existing
}
