//! `POST /containers/{id}/attach` (hijacked, or a plain stream of output for a client
//! that does not ask to take over the connection) and `POST /containers/{id}/resize`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use basic_engine::{AttachOptions, AttachReader, Attached, DetachKeys, Frame, Sent};
use basic_runtime::logfile::Stream;
use basic_runtime::terminal::WindowSize;
use bytes::Bytes;
use serde::Deserialize;

use crate::State;
use crate::error::ApiError;
use crate::hijack::{self, Hijacked};
use crate::stream::{self, Lines};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/resize", post(resize))
}

#[derive(Debug, Deserialize, Default)]
struct AttachQuery {
    stream: Option<String>,
    stdin: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    logs: Option<String>,
    #[serde(rename = "detachKeys")]
    detach_keys: Option<String>,
}

/// docker's booleans in queries: `1`, `true`, `True`...; absent is false.
pub(crate) fn flag(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

async fn attach(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<AttachQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let detach_keys = match query.detach_keys.as_deref() {
        None | Some("") => None,
        Some(keys) => Some(keys.parse::<DetachKeys>().map_err(|e| {
            ApiError::bad_request(format!("Invalid detach keys ({keys}) provided: {e}"))
        })?),
    };
    let options = AttachOptions {
        stdin: flag(&query.stdin),
        stdout: flag(&query.stdout),
        stderr: flag(&query.stderr),
        logs: flag(&query.logs),
        stream: flag(&query.stream),
        detach_keys,
        // dockerd attaches to a stopped container too, for its next start (`docker start
        // -a`, docker-compose's `up`); docker's own `attach` command refuses one itself.
        await_start: true,
    };
    // Errors (no such container, a paused one) are answered before the connection is
    // taken over, as docker's are.
    let attached = state
        .engine(move |engine| Ok(engine.attach(&id, &options)?))
        .await?;
    if hijack::wants_upgrade(&request) {
        return Ok(hijack::upgrade(&state, request, move |hijacked| {
            relay(attached, hijacked)
        }));
    }
    // A client that does not take over the connection gets the output as the body.
    let tty = attached.tty();
    let (reader, _writer) = attached.split();
    let (lines, body) = Lines::channel();
    tokio::task::spawn_blocking(move || {
        forward_output(reader, tty, |bytes| lines.send(bytes).is_ok());
    });
    Ok(stream::raw_response(body, !tty))
}

/// Carries the client's input to the container and its output back, until the container
/// exits, the client detaches or hangs up.
async fn relay(attached: Attached, hijacked: Hijacked) {
    let Hijacked {
        mut input,
        output,
        mut gone,
    } = hijacked;
    let tty = attached.tty();
    let (reader, mut writer) = attached.split();
    let detacher = writer.detacher();
    let mut out = tokio::task::spawn_blocking(move || {
        forward_output(reader, tty, |bytes| output.blocking_send(bytes).is_ok());
    });
    let input_done = detacher.clone();
    tokio::task::spawn_blocking(move || {
        loop {
            match input.blocking_recv() {
                Some(bytes) => match writer.send(&bytes) {
                    Ok(Sent::Delivered) => {}
                    // Detach keys end the attachment; the reader sees it.
                    Ok(_) | Err(_) => return,
                },
                None => {
                    // docker's half-close: the input is over.
                    if writer.close_stdin().is_err() {
                        input_done.detach();
                    }
                    return;
                }
            }
        }
    });
    tokio::select! {
        _ = &mut out => {}
        hung_up = async { gone.wait_for(|gone| *gone).await.is_ok() } => {
            if hung_up {
                // The client went away: the container runs on without it.
                detacher.detach();
            }
            let _ = out.await;
        }
    }
}

/// Sends each output frame through `send` (docker's 8-byte framing unless the container
/// has a terminal) until the attachment ends or `send` says the client is gone.
fn forward_output(mut reader: AttachReader, tty: bool, send: impl Fn(Bytes) -> bool) {
    for frame in reader.by_ref() {
        let Ok(Frame { stream, bytes }) = frame else {
            break;
        };
        let bytes = match tty {
            true => bytes,
            false => stream::frame(stream_number(stream), &bytes),
        };
        if !send(Bytes::from(bytes)) {
            reader.detach();
            break;
        }
    }
}

fn stream_number(stream: Stream) -> u8 {
    match stream {
        Stream::Stderr => 2,
        _ => 1,
    }
}

#[derive(Debug, Deserialize, Default)]
struct ResizeQuery {
    h: Option<u16>,
    w: Option<u16>,
}

async fn resize(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<ResizeQuery>,
) -> Result<Response, ApiError> {
    let size = WindowSize {
        rows: query.h.unwrap_or(0),
        cols: query.w.unwrap_or(0),
    };
    state
        .engine(move |engine| Ok(engine.resize(&id, size)?))
        .await?;
    Ok(StatusCode::OK.into_response())
}
