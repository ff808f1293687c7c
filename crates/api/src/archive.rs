//! `GET|HEAD|PUT /containers/{id}/archive` (what `docker cp` uses) and
//! `GET /containers/{id}/changes`.
//!
//! The engine's copies are blocking and stream a tar; here they are bridged to the HTTP
//! bodies by channels, so a large copy is never held in memory.

use std::io::{BufWriter, Read, Write};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State as Shared};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use basic_engine::{CopyToOptions, PathStat};
use bollard_stubs::models::FilesystemChange;
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use crate::State;
use crate::attach::flag;
use crate::error::ApiError;
use crate::stream::Lines;

/// docker's header carrying the path's stat, base64 JSON.
const PATH_STAT: &str = "X-Docker-Container-Path-Stat";

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route(
            "/containers/{id}/archive",
            get(get_archive).head(head_archive).put(put_archive),
        )
        .route("/containers/{id}/changes", get(changes))
}

#[derive(Debug, Deserialize, Default)]
struct ArchiveQuery {
    path: Option<String>,
    #[serde(rename = "noOverwriteDirNonDir")]
    no_overwrite_dir_non_dir: Option<String>,
    #[serde(rename = "copyUIDGID")]
    copy_uid_gid: Option<String>,
}

fn path_of(query: &ArchiveQuery) -> Result<String, ApiError> {
    match query.path.as_deref() {
        Some(path) if !path.is_empty() => Ok(path.to_string()),
        _ => Err(ApiError::bad_request("path is required")),
    }
}

fn with_stat(mut response: Response, stat: &PathStat) -> Response {
    if let Ok(value) = HeaderValue::from_str(&stat.header_value()) {
        response.headers_mut().insert(PATH_STAT, value);
    }
    response
}

async fn head_archive(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    let path = path_of(&query)?;
    let stat = state
        .engine(move |engine| Ok(engine.path_stat(&id, &path)?))
        .await?;
    Ok(with_stat(StatusCode::OK.into_response(), &stat))
}

async fn get_archive(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<ArchiveQuery>,
) -> Result<Response, ApiError> {
    let path = path_of(&query)?;
    let (lines, body) = Lines::channel();
    let (stat_tx, stat_rx) = oneshot::channel::<Result<PathStat, ApiError>>();
    // Answered once: with the stat when the tar starts, or with the error before it.
    let answer = Arc::new(Mutex::new(Some(stat_tx)));
    let first = answer.clone();
    state.spawn_engine(move |engine| {
        let copied = engine.copy_from_with(&id, &path, move |stat| {
            if let Some(tx) = first.lock().unwrap().take() {
                let _ = tx.send(Ok(stat.clone()));
            }
            Ok(BufWriter::with_capacity(64 * 1024, LinesWriter(lines)))
        });
        if let Err(e) = copied
            && let Some(tx) = answer.lock().unwrap().take()
        {
            let _ = tx.send(Err(e.into()));
        }
    });
    let stat = stat_rx
        .await
        .map_err(|_| ApiError::internal("the copy ended before it started"))??;
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(with_stat(response, &stat))
}

/// A tar written into a streamed body.
pub(crate) struct LinesWriter(pub Lines);

impl Write for LinesWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(Bytes::copy_from_slice(bytes))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))?;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn put_archive(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<ArchiveQuery>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = path_of(&query)?;
    let options = CopyToOptions {
        no_overwrite_dir_non_dir: flag(&query.no_overwrite_dir_non_dir),
        copy_uid_gid: flag(&query.copy_uid_gid),
    };
    let reader = ChannelReader::from_body(request.into_body());
    state
        .engine(move |engine| Ok(engine.copy_to(&id, &path, reader, &options)?))
        .await?;
    Ok(StatusCode::OK.into_response())
}

/// The request's body as a blocking reader, for the engine's extraction.
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChannelReader {
    /// Reads `body` as it arrives.
    pub(crate) fn from_body(body: axum::body::Body) -> Self {
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        let mut body = body.into_data_stream();
        tokio::spawn(async move {
            while let Some(Ok(chunk)) = body.next().await {
                if tx.send(chunk).await.is_err() {
                    return;
                }
            }
        });
        ChannelReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

async fn changes(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Json<Vec<FilesystemChange>>, ApiError> {
    Ok(Json(
        state.engine(move |engine| Ok(engine.changes(&id)?)).await?,
    ))
}
