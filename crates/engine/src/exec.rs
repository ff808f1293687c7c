//! `exec`: one more process in a running container, with the container's own process
//! settings (user, environment, working directory, capabilities, seccomp) unless the
//! options say otherwise, as docker does.

use basic_runtime::exec::{Exec, ExecBuilder, process_from};
use basic_runtime::terminal::WindowSize;
use basic_runtime::{Spec, resolve_user};

use crate::engine::Engine;
use crate::error::{EngineError, Result};
use crate::status::Status;

/// What to run, and how (docker's exec create body).
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries over the container's environment.
    pub env: Vec<String>,
    /// The working directory, instead of the container's.
    pub working_dir: Option<String>,
    /// The user (`name|uid[:group|gid]`), looked up in the container's files.
    pub user: Option<String>,
    /// A pty of the container's, this size.
    pub tty: Option<Option<WindowSize>>,
    /// Every capability of the host (the container's seccomp profile stays, as in docker).
    pub privileged: bool,
}

impl Engine {
    /// An exec into running container `query`, ready for the caller to choose its role
    /// (foreground or detached) and stdio (see [`basic_runtime::exec`]).
    pub fn exec(&self, query: &str, options: &ExecOptions) -> Result<ExecBuilder> {
        let c = self.container(query)?;
        match self.status(&c) {
            Status::Running(_) => {}
            Status::Paused(_) => {
                return Err(EngineError::Conflict(format!(
                    "container {} is paused, unpause the container before exec",
                    c.id()
                )));
            }
            _ => {
                return Err(EngineError::Conflict(format!(
                    "container {} is not running",
                    c.id()
                )));
            }
        }
        // The exec's process joins the container's cgroups: the kernel's wait for that
        // migration runs while the spec is read and the process forked.
        basic_runtime::cgroups::warm_up_migration();
        let spec_path = c.paths.spec();
        let spec = Spec::load(&spec_path).map_err(|e| EngineError::Corrupt {
            what: spec_path.display().to_string(),
            message: e.to_string(),
        })?;
        let mut process = process_from(&spec, options.cmd.clone())?;
        if let Some(dir) = &options.working_dir {
            process.set_cwd(dir.into());
        }
        if let Some(user) = &options.user {
            let resolved = resolve_user(&c.paths.rootfs, user)?;
            let u = process.user_mut();
            u.set_uid(resolved.uid);
            u.set_gid(resolved.gid);
            u.set_additional_gids(Some(resolved.additional_gids));
        }
        if options.privileged {
            process.set_capabilities(Some(basic_runtime::spec::privileged_capabilities()?));
        }
        process.set_terminal(Some(options.tty.is_some()));
        if let Some(size) = options.tty.flatten() {
            // The command may ask before a relay copies it: size its terminal from the start.
            process.set_console_size(Some(size.into()));
        }
        let seccomp = spec.linux().as_ref().and_then(|l| l.seccomp().clone());
        Ok(Exec::in_container(c.id(), process)
            .state_dir(&self.paths.state)
            .env(options.env.iter().cloned())
            .seccomp(seccomp)
            .seccomp_cache(self.paths.seccomp_cache()))
    }
}
