//! `/containers/...`: create, list, inspect, start, stop, restart, kill, pause, unpause,
//! wait, remove, logs, rename, export and prune, each one engine verb.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use basic_engine::{
    ContainerConfig, CreateOptions, EngineError, Filters, LogOptions, WaitCondition,
};
use basic_runtime::logfile::Stream;
use bollard_stubs::models::{
    ContainerCreateResponse, ContainerPruneResponse, ContainerSummary, ContainerWaitResponse,
};
use serde::Deserialize;

use crate::State;
use crate::error::ApiError;
use crate::stream::{self, Lines};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}", delete(remove))
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn not_modified() -> Response {
    StatusCode::NOT_MODIFIED.into_response()
}

/// docker's booleans in queries: `1`, `true`, `True`...; absent is false.
fn flag(value: &Option<String>) -> bool {
    value
        .as_deref()
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

#[derive(Debug, Deserialize, Default)]
struct CreateQuery {
    name: Option<String>,
    platform: Option<String>,
}

async fn create(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<CreateQuery>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let config: ContainerConfig = crate::json::parse(&body)?;
    if config.image.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container",
        ));
    }
    if let Some(platform) = query.platform.as_deref().filter(|p| !p.is_empty()) {
        check_platform(platform)?;
    }
    let options = CreateOptions {
        name: query.name.filter(|n| !n.is_empty()),
        ..CreateOptions::default()
    };
    let created = state
        .engine(move |engine| Ok(engine.create(config, &options)?))
        .await?;
    let response = ContainerCreateResponse {
        id: created.container.id().to_string(),
        warnings: created.warnings,
    };
    Ok((StatusCode::CREATED, Json(response)).into_response())
}

/// Only this machine's platform runs here.
fn check_platform(platform: &str) -> Result<(), ApiError> {
    let wanted = basic_registry::Platform::parse(platform)
        .map_err(|e| ApiError::bad_request(format!("invalid platform {platform:?}: {e}")))?;
    let here = basic_registry::Platform::host();
    if wanted.os != here.os || wanted.architecture != here.architecture {
        return Err(ApiError::bad_request(format!(
            "image platform {platform} does not match this host ({}/{})",
            here.os, here.architecture
        )));
    }
    Ok(())
}

#[derive(Debug, Deserialize, Default)]
struct ListQuery {
    all: Option<String>,
    limit: Option<i64>,
    size: Option<String>,
    filters: Option<String>,
}

async fn list(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<ContainerSummary>>, ApiError> {
    let filters = Filters::from_map(crate::filters::parse(query.filters.as_deref())?)?;
    let all = flag(&query.all) || query.limit.is_some_and(|l| l > 0);
    let with_size = flag(&query.size);
    let limit = query.limit.filter(|l| *l > 0);
    let summaries = state
        .engine(move |engine| {
            let mut listed = engine.list(all, &filters)?;
            if let Some(limit) = limit {
                listed.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            }
            Ok(listed
                .iter()
                .map(|l| {
                    let mut summary = l.summary();
                    if with_size {
                        let size = i64::try_from(engine.writable_size(&l.container)).unwrap_or(0);
                        summary.size_rw = Some(size);
                    }
                    summary
                })
                .collect())
        })
        .await?;
    Ok(Json(summaries))
}

async fn inspect(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Json<basic_engine::ContainerDocument>, ApiError> {
    Ok(Json(
        state.engine(move |engine| Ok(engine.inspect(&id)?)).await?,
    ))
}

async fn start(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state
        .engine(move |engine| {
            let c = engine.container(&id)?;
            if engine.status(&c).is_up() {
                return Ok(not_modified());
            }
            engine.start(c.id())?;
            Ok(no_content())
        })
        .await
}

#[derive(Debug, Deserialize, Default)]
struct StopQuery {
    t: Option<i64>,
    signal: Option<String>,
}

/// The grace period: `t` when given (negative waits forever, as docker), else the
/// container's `StopTimeout`, else docker's 10 seconds.
fn grace(t: Option<i64>, stop_timeout: Option<i64>) -> Duration {
    match t.or(stop_timeout) {
        Some(s) if s < 0 => Duration::from_secs(u64::MAX / 4),
        Some(s) => Duration::from_secs(s.unsigned_abs()),
        None => Duration::from_secs(10),
    }
}

async fn stop(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<StopQuery>,
) -> Result<Response, ApiError> {
    if query.signal.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad_request(
            "the signal parameter of stop is API 1.42; this engine serves 1.41",
        ));
    }
    state
        .engine(move |engine| {
            let c = engine.container(&id)?;
            if !engine.status(&c).is_up() {
                return Ok(not_modified());
            }
            engine.stop(c.id(), grace(query.t, c.config.config.stop_timeout))?;
            Ok(no_content())
        })
        .await
}

async fn restart(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<StopQuery>,
) -> Result<Response, ApiError> {
    state
        .engine(move |engine| {
            let c = engine.container(&id)?;
            engine.restart(c.id(), grace(query.t, c.config.config.stop_timeout))?;
            Ok(no_content())
        })
        .await
}

#[derive(Debug, Deserialize, Default)]
struct KillQuery {
    signal: Option<String>,
}

async fn kill(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<KillQuery>,
) -> Result<Response, ApiError> {
    let signal = query
        .signal
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "SIGKILL".into());
    basic_engine::parse_signal(&signal)?;
    state
        .engine(move |engine| {
            engine.kill(&id, &signal)?;
            Ok(no_content())
        })
        .await
}

async fn pause(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state
        .engine(move |engine| {
            engine.pause(&id)?;
            Ok(no_content())
        })
        .await
}

async fn unpause(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state
        .engine(move |engine| {
            engine.unpause(&id)?;
            Ok(no_content())
        })
        .await
}

#[derive(Debug, Deserialize, Default)]
struct WaitQuery {
    condition: Option<String>,
}

/// Answers at once with the headers (as dockerd does, so a client can start the container
/// after its wait is registered), and with the exit code when the condition holds.
async fn wait(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let condition: WaitCondition = query.condition.as_deref().unwrap_or("").parse()?;
    // Unknown containers are a 404, not a stream that ends in an error.
    let id = state
        .engine(move |engine| Ok(engine.container(&id)?.id().to_string()))
        .await?;
    let (lines, body) = Lines::channel();
    state.spawn_engine(move |engine| {
        let response = match engine.wait_while_wanted(&id, condition, &|| !lines.is_closed()) {
            Ok(code) => ContainerWaitResponse {
                status_code: i64::from(code),
                error: None,
            },
            Err(EngineError::Stopped) => return,
            Err(e) => ContainerWaitResponse {
                status_code: -1,
                error: Some(bollard_stubs::models::ContainerWaitExitError {
                    message: Some(crate::error::chain(&e)),
                }),
            },
        };
        let _ = lines.send_json(&response);
    });
    Ok(stream::json_response(body))
}

#[derive(Debug, Deserialize, Default)]
struct RemoveQuery {
    force: Option<String>,
    v: Option<String>,
    link: Option<String>,
}

async fn remove(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    if flag(&query.link) {
        return Err(ApiError::bad_request(
            "links are not supported: there is no link to remove",
        ));
    }
    let options = basic_engine::RemoveOptions {
        force: flag(&query.force),
        volumes: flag(&query.v),
    };
    state
        .engine(move |engine| {
            engine.remove_with(&id, &options)?;
            Ok(no_content())
        })
        .await
}

#[derive(Debug, Deserialize, Default)]
struct RenameQuery {
    name: Option<String>,
}

async fn rename(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<RenameQuery>,
) -> Result<Response, ApiError> {
    let name = query
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("the new name is missing: pass ?name=NEW_NAME"))?;
    state
        .engine(move |engine| {
            engine.rename(&id, &name)?;
            Ok(no_content())
        })
        .await
}

#[derive(Debug, Deserialize, Default)]
struct LogsQuery {
    follow: Option<String>,
    stdout: Option<String>,
    stderr: Option<String>,
    since: Option<String>,
    until: Option<String>,
    timestamps: Option<String>,
    tail: Option<String>,
}

/// docker's log times: unix seconds with optional fraction; 0 is "not given".
fn log_time(text: &Option<String>) -> Result<Option<SystemTime>, ApiError> {
    let Some(text) = text.as_deref().filter(|t| !t.is_empty() && *t != "0") else {
        return Ok(None);
    };
    let seconds: f64 = text.parse().map_err(|_| {
        ApiError::bad_request(format!("invalid time {text:?}: expected unix seconds"))
    })?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(ApiError::bad_request(format!("invalid time {text:?}")));
    }
    Ok(Some(UNIX_EPOCH + Duration::from_secs_f64(seconds)))
}

async fn logs(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let (want_out, want_err) = (flag(&query.stdout), flag(&query.stderr));
    if !want_out && !want_err {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match query.tail.as_deref() {
        None | Some("") | Some("all") => None,
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "invalid tail {n:?}: a number or all"
                )));
            }
        },
    };
    let options = LogOptions {
        tail,
        since: log_time(&query.since)?,
        until: log_time(&query.until)?,
        follow: flag(&query.follow),
    };
    let timestamps = flag(&query.timestamps);
    let (tty, id) = state
        .engine(move |engine| {
            let c = engine.container(&id)?;
            Ok((c.config.tty(), c.id().to_string()))
        })
        .await?;
    let (lines, body) = Lines::channel();
    state.spawn_engine(move |engine| {
        let _ = engine.logs(&id, &options, |entry| {
            let number = match entry.stream {
                Stream::Stdout if want_out => 1,
                Stream::Stderr if want_err => 2,
                _ => return Ok(()),
            };
            let text = match timestamps {
                true => format!("{} {}", entry.time, entry.log),
                false => entry.log.clone(),
            };
            match tty {
                true => lines.send(text.into_bytes()),
                false => lines.send_frame(number, text.as_bytes()),
            }
        });
    });
    Ok(stream::raw_response(body, !tty))
}

async fn export(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = state
        .engine(move |engine| Ok(engine.container(&id)?.id().to_string()))
        .await?;
    let (lines, body) = Lines::channel();
    state.spawn_engine(move |engine| {
        let _ = engine.export(&id, ChunkWriter(lines));
    });
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-tar"),
    );
    Ok(response)
}

/// A `Write` whose chunks become the body: a client that goes away fails the write.
struct ChunkWriter(Lines);

impl std::io::Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Debug, Deserialize, Default)]
struct PruneQuery {
    filters: Option<String>,
}

async fn prune(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<PruneQuery>,
) -> Result<Json<ContainerPruneResponse>, ApiError> {
    let filters = crate::filters::parse(query.filters.as_deref())?;
    if let Some(key) = filters.keys().next() {
        return Err(ApiError::bad_request(format!(
            "invalid filter {key:?}: container prune takes no filters here"
        )));
    }
    let report = state.engine(|engine| Ok(engine.prune()?)).await?;
    Ok(Json(ContainerPruneResponse {
        containers_deleted: Some(report.deleted),
        space_reclaimed: Some(i64::try_from(report.reclaimed).unwrap_or(i64::MAX)),
    }))
}
