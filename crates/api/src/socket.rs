//! The service's unix socket: where it is, who may connect, and what to do about a socket
//! file a previous service left behind.

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
