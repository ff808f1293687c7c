//! Streamed response bodies fed from the engine's blocking callbacks: newline-separated
//! JSON (events, pull progress, stats) and docker's multiplexed stdout/stderr frames (logs,
//! attach).
//!
//! The engine's verbs run on blocking threads and call back per item; each item goes
//! through a bounded channel to the body the client reads. When the client goes away the
//! body is dropped, the next send fails, and the callback returns
//! [`EngineError::Stopped`], which ends the engine's verb.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use basic_engine::EngineError;
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

/// How many items may wait for a slow client before the engine's thread waits too.
const BACKLOG: usize = 64;

/// The sending side of a streamed body.
#[derive(Clone)]
pub(crate) struct Lines {
    tx: mpsc::Sender<Bytes>,
}

impl Lines {
    /// A sender and the body it feeds.
    pub fn channel() -> (Lines, Body) {
        let (tx, mut rx) = mpsc::channel::<Bytes>(BACKLOG);
        let stream = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|item| item.map(Ok::<_, std::convert::Infallible>))
        });
        (Lines { tx }, Body::from_stream(stream))
    }

    /// Sends raw bytes (from a blocking thread); fails once the client is gone.
    pub fn send(&self, bytes: impl Into<Bytes>) -> Result<(), EngineError> {
        self.tx
            .blocking_send(bytes.into())
            .map_err(|_| EngineError::Stopped)
    }

    /// Whether the client has gone away (its body was dropped).
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Sends `value` as one line of JSON.
    pub fn send_json<T: Serialize>(&self, value: &T) -> Result<(), EngineError> {
        let mut line = serde_json::to_vec(value).map_err(|e| EngineError::Corrupt {
            what: "a streamed document".into(),
            message: e.to_string(),
        })?;
        line.push(b'\n');
        self.send(line)
    }

    /// Sends `bytes` as docker's multiplexed frame for `stream` (1 stdout, 2 stderr): a
    /// header of the stream, three zero bytes and the big-endian length, then the bytes.
    pub fn send_frame(&self, stream: u8, bytes: &[u8]) -> Result<(), EngineError> {
        self.send(frame(stream, bytes))
    }
}

/// docker's multiplexed frame: `[stream, 0, 0, 0, len (u32 BE)] bytes`.
pub(crate) fn frame(stream: u8, bytes: &[u8]) -> Vec<u8> {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(8 + bytes.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

/// A 200 with a JSON stream body.
pub(crate) fn json_response(body: Body) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 200 with docker's raw stream body (multiplexed unless the container has a TTY).
pub(crate) fn raw_response(body: Body, multiplexed: bool) -> Response {
    let kind = match multiplexed {
        true => "application/vnd.docker.multiplexed-stream",
        false => "application/vnd.docker.raw-stream",
    };
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_the_stream_and_the_length() {
        assert_eq!(
            frame(1, b"hi\n"),
            vec![1, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']
        );
        assert_eq!(frame(2, b"")[..8], [2, 0, 0, 0, 0, 0, 0, 0]);
    }
}
