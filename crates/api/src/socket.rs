//! The service's unix socket: where it is, who may connect, and what to do about a socket
//! file a previous service left behind.

use std::os::fd::{FromRawFd as _, RawFd};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// The socket's mode: its owner (root) and its group may connect.
pub const SOCKET_MODE: u32 = 0o660;

/// The group that may use the socket when it exists, as docker's `docker` group.
pub const SOCKET_GROUP: &str = "basic-docker";

/// Why the socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The URI is not a unix socket's.
    #[error("unsupported URI {0:?}: only unix sockets are served (unix:///path/to/socket)")]
    Unsupported(String),
    /// Another service answers on the socket.
    #[error("another service is listening on {}: stop it first", .0.display())]
    InUse(PathBuf),
    /// What systemd's socket activation passed is not one listening unix socket.
    #[error(
        "socket activation: {0} (the .socket unit must have exactly one ListenStream= with a path)"
    )]
    Activation(String),
    /// A file system operation failed.
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
}

/// The path of a `unix:///path` URI (a bare absolute path is taken as is).
pub fn socket_path(uri: &str) -> Result<PathBuf, SocketError> {
    let path = match uri.strip_prefix("unix://") {
        Some(path) => path,
        None if uri.starts_with('/') => uri,
        None => return Err(SocketError::Unsupported(uri.to_string())),
    };
    if !path.starts_with('/') || path.len() <= 1 {
        return Err(SocketError::Unsupported(uri.to_string()));
    }
    Ok(PathBuf::from(path))
}

/// Binds the socket at `path` (its directory made if missing, traversable by all), mode
/// mode 0660, group `basic-docker` when it exists. A socket file nobody answers
/// on (a service that was killed) is replaced; one a live service answers on is not.
/// Must be called within a tokio runtime.
pub fn bind_socket(path: &Path) -> Result<tokio::net::UnixListener, SocketError> {
    let io = |what: &'static str| {
        let path = path.to_path_buf();
        move |source| SocketError::Io { what, path, source }
    };
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .map_err(io("setting the mode of the directory of"))?;
    }
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(io("removing the stale socket"))?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(io("listening on"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(io("setting the mode of"))?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name(SOCKET_GROUP) {
        nix::unistd::chown(path, None, Some(group.gid))
            .map_err(|e| io("giving the group basic-docker")(e.into()))?;
    }
    Ok(listener)
}

/// The first descriptor systemd's socket activation passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// How many descriptors systemd's socket activation passed to this process: `LISTEN_FDS`
/// when `LISTEN_PID` names this process, else 0 (sd_listen_fds(3)). A program that marks
/// inherited descriptors close-on-exec at start spares these.
pub fn activation_fd_count() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|pid| pid.parse::<u32>().ok())
        == Some(std::process::id());
    match ours {
        true => std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
        false => 0,
    }
}

/// The listening unix socket systemd's socket activation passed (a `.socket` unit, or
/// `systemd-socket-activate`), or `None` when this process was not socket-activated. The
/// descriptor is made close-on-exec: nothing the service starts inherits it. Must be called
/// within a tokio runtime, once.
pub fn activation_socket() -> Result<Option<tokio::net::UnixListener>, SocketError> {
    let fail = |what: String| SocketError::Activation(what);
    match activation_fd_count() {
        0 => return Ok(None),
        1 => {}
        n => return Err(fail(format!("{n} sockets were passed; one is served"))),
    }
    // SAFETY: sd_listen_fds(3): with LISTEN_PID naming this process, descriptor 3 was
    // passed to it and nothing else in this process owns it; it is taken once (the count
    // is read again by nobody after this call in the service).
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    let unix = matches!(
        nix::sys::socket::getsockname::<nix::sys::socket::UnixAddr>(
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ),
        Ok(addr) if addr.path().is_some()
    );
    let listening =
        nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::AcceptConn).unwrap_or(false);
    if !unix || !listening {
        // Not ours to close: leave the descriptor as it was found.
        let _ = std::os::fd::IntoRawFd::into_raw_fd(fd);
        return Err(fail(
            "descriptor 3 is not a listening unix socket with a path".into(),
        ));
    }
    let io = |what: &'static str| {
        move |source| SocketError::Io {
            what,
            path: PathBuf::from("/proc/self/fd/3"),
            source,
        }
    };
    nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .map_err(|e| io("marking close-on-exec the activation socket")(e.into()))?;
    let listener = std::os::unix::net::UnixListener::from(fd);
    listener
        .set_nonblocking(true)
        .map_err(io("making non-blocking the activation socket"))?;
    tokio::net::UnixListener::from_std(listener)
        .map(Some)
        .map_err(io("serving the activation socket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_uris_are_served() {
        assert_eq!(
            socket_path("unix:///run/x.sock").unwrap(),
            PathBuf::from("/run/x.sock")
        );
        assert_eq!(
            socket_path("/tmp/y.sock").unwrap(),
            PathBuf::from("/tmp/y.sock")
        );
        for bad in [
            "tcp://0.0.0.0:2375",
            "unix://relative",
            "fd://",
            "unix://",
            "x.sock",
        ] {
            let e = socket_path(bad).unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("unix"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_live_socket_is_kept_and_a_stale_one_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/api.sock");
        let live = bind_socket(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        assert!(matches!(bind_socket(&path), Err(SocketError::InUse(_))));
        drop(live);
        // The file stays behind a dead listener, as after a kill.
        assert!(path.exists());
        bind_socket(&path).unwrap();
    }
}
