//! `system service [--time S] [URI]`: the Docker Engine API on a unix socket.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use basic_api::{
    ExecCommand, Service, ServiceOptions, activation_socket, bind_socket, socket_path,
};

use super::{engine_options, registry_builder};
use crate::cli::{GlobalOptions, ServiceArgs};

/// Serves until SIGINT or SIGTERM, or until `--time` seconds pass without a request.
/// Containers keep running when it stops: each has its own supervisor.
pub async fn service(global: &GlobalOptions, args: ServiceArgs) -> anyhow::Result<ExitCode> {
    let uri = args.uri.unwrap_or_else(default_uri);
    let path = socket_path(&uri)?;
    // Socket-activated, the socket is systemd's (its .socket unit names the path): serve
    // it, and leave its file in place on exit so that the next connection starts us again.
    let (listener, bound) = match activation_socket()? {
        Some(listener) => (listener, None),
        None => (bind_socket(&path)?, Some(path)),
    };
    let registry_global = global.clone();
    let options = ServiceOptions {
        engine: engine_options(global),
        registry: Arc::new(move || registry_builder(&registry_global)),
        idle_exit: (args.time > 0).then(|| Duration::from_secs(args.time)),
        // This very program (see engine_options for why through /proc/self/exe).
        exec: Some(ExecCommand {
            program: "/proc/self/exe".into(),
            args: vec![
                "--root".into(),
                global.root.clone().into(),
                "--state".into(),
                global.state.clone().into(),
            ],
        }),
    };
    let served = Service::new(options).serve(listener, stop_signal()).await;
    if let Some(path) = bound {
        let _ = std::fs::remove_file(&path);
    }
    served?;
    Ok(ExitCode::SUCCESS)
}

/// dockerd's socket for root; in rootless mode one in the user's runtime directory, as
/// rootless docker and podman keep theirs.
fn default_uri() -> String {
    match basic_runtime::rootless::active() {
        true => {
            let state = basic_engine::paths::UserPaths::from_env().state;
            format!("unix://{}", state.join("docker.sock").display())
        }
        false => "unix:///run/basic-docker/docker.sock".into(),
    }
}

/// Completes on SIGINT or SIGTERM.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
