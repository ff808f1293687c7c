//! Hijacked connections: docker's `attach` and `exec start` take over the HTTP connection
//! (`Connection: Upgrade`, `Upgrade: tcp`, answered `101 UPGRADED`) and carry the
//! process's input one way and its output the other, half-closed by the client when its
//! input ends.
//!
//! A client that goes away entirely must end what it was attached to even when nothing
//! is written to it (a silent container would otherwise hold a thread and the attachment
//! forever). A read returning end-of-file cannot tell a half-close from a hang-up, so
//! after one the socket is watched for `POLLHUP`, which a unix socket reports only once
//! the peer has closed both directions.

use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use crate::{Busy, State};

/// How often a half-closed connection is looked at for a hang-up.
const HANGUP_POLL: Duration = Duration::from_millis(250);

/// docker's media type for a hijacked stream at API 1.41 (framed or not by the TTY).
const RAW_STREAM: &str = "application/vnd.docker.raw-stream";

/// The client's end of a hijacked connection.
pub(crate) struct Hijacked {
    /// What the client sends (its input); `None` once it half-closed or went away.
    pub input: mpsc::Receiver<Bytes>,
    /// What goes to the client; dropping it closes the connection.
    pub output: mpsc::Sender<Bytes>,
    /// Set when the client has hung up (not merely ended its input).
    pub gone: tokio::sync::watch::Receiver<bool>,
}

/// Whether the request asks to take over the connection.
pub(crate) fn wants_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// Answers `101 UPGRADED` and, once the connection is handed over, runs `relay` on it;
/// the service counts as busy until `relay` ends.
pub(crate) fn upgrade<F, Fut>(state: &Arc<State>, mut request: Request, relay: F) -> Response
where
    F: FnOnce(Hijacked) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let busy = Busy::new(state);
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let _busy = busy;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!("the client left before its connection was handed over: {e}");
                return;
            }
        };
        // axum serves unix sockets through hyper-util's TokioIo; the stream itself is
        // needed to split it and to see a hang-up.
        let parts = match upgraded.downcast::<TokioIo<UnixStream>>() {
            Ok(parts) => parts,
            Err(_) => {
                tracing::warn!("a hijacked connection that is not a unix socket");
                return;
            }
        };
        let stream = parts.io.into_inner();
        let (hijacked, pumps) = pump(stream, parts.read_buf);
        tokio::join!(relay(hijacked), pumps);
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(RAW_STREAM));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    response
}

/// Moves bytes between the socket and the channels of a [`Hijacked`].
fn pump(stream: UnixStream, already_read: Bytes) -> (Hijacked, impl Future<Output = ()>) {
    let (in_tx, input) = mpsc::channel(16);
    let (output, out_rx) = mpsc::channel(64);
    let (gone_tx, gone) = tokio::sync::watch::channel(false);
    let (read, write) = stream.into_split();
    let pumps = async move {
        tokio::join!(
            read_input(read, already_read, in_tx, gone_tx),
            write_output(write, out_rx)
        );
    };
    (
        Hijacked {
            input,
            output,
            gone,
        },
        pumps,
    )
}

async fn read_input(
    mut read: OwnedReadHalf,
    already_read: Bytes,
    input: mpsc::Sender<Bytes>,
    gone: tokio::sync::watch::Sender<bool>,
) {
    if !already_read.is_empty() && input.send(already_read).await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            read = read.read(&mut buf) => match read {
                Ok(0) => break,
                Ok(n) => {
                    if input.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                        // Nobody reads the input any more (no stdin, or the relay ended).
                        break;
                    }
                }
                Err(_) => {
                    let _ = gone.send(true);
                    return;
                }
            },
            () = input.closed() => return,
        }
    }
    // The input ended: a half-close, or the client went away. Only a hang-up ends the
    // relay from this side.
    drop(input);
    let fd = read.as_ref().as_raw_fd();
    loop {
        if hung_up(fd) {
            let _ = gone.send(true);
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(HANGUP_POLL) => {}
            () = gone.closed() => return,
        }
    }
}

/// Whether the peer of socket `fd` closed both directions.
fn hung_up(fd: std::os::fd::RawFd) -> bool {
    // SAFETY: `fd` belongs to the read half, which the caller holds for this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::empty())];
    match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
        Ok(_) => fds[0].revents().is_some_and(|r| {
            r.intersects(nix::poll::PollFlags::POLLHUP | nix::poll::PollFlags::POLLERR)
        }),
        Err(_) => true,
    }
}

async fn write_output(mut write: OwnedWriteHalf, mut output: mpsc::Receiver<Bytes>) {
    while let Some(bytes) = output.recv().await {
        if write.write_all(&bytes).await.is_err() {
            return;
        }
    }
    // Everything was sent: the end of the stream is the end of the connection.
    let _ = write.shutdown().await;
}
