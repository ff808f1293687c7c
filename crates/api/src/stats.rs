//! `GET /containers/{id}/top` and `GET /containers/{id}/stats`, over the engine's
//! [`basic_engine::Engine::top`] and [`basic_engine::StatsSampler`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State as Shared};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use basic_engine::StatsSampler;
use serde::Deserialize;

use crate::State;
use crate::error::ApiError;
use crate::stream::{self, Lines};

/// How often a stream sends a document, as docker does.
const INTERVAL: Duration = Duration::from_secs(1);

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
}

#[derive(Deserialize)]
struct TopQuery {
    ps_args: Option<String>,
}

async fn top(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<TopQuery>,
) -> Result<Response, ApiError> {
    // The processes are read from /proc rather than by running ps, so only the
    // columns of docker's default are there to give.
    match query.ps_args.as_deref().map(str::trim) {
        None | Some("") | Some("-ef") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unsupported ps_args {other:?}: only docker's default \"-ef\" is served"
            )));
        }
    }
    let top = state.engine(move |engine| Ok(engine.top(&id)?)).await?;
    Ok(Json(top).into_response())
}

#[derive(Deserialize)]
struct StatsQuery {
    stream: Option<String>,
    #[serde(rename = "one-shot")]
    one_shot: Option<String>,
}

/// docker's booleans, where absent means `default`; anything else is refused by name.
fn boolean(name: &str, value: &Option<String>, default: bool) -> Result<bool, ApiError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") => Ok(default),
        Some("1" | "true" | "yes") => Ok(true),
        Some("0" | "false" | "no") => Ok(false),
        Some(_) => Err(ApiError::bad_request(format!(
            "invalid value for {name}: {:?}: expected 1, 0, true or false",
            value.as_deref().unwrap_or_default()
        ))),
    }
}

async fn stats(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    Query(query): Query<StatsQuery>,
) -> Result<Response, ApiError> {
    let streaming = boolean("stream", &query.stream, true)?;
    let one_shot = boolean("one-shot", &query.one_shot, false)?;
    if streaming && one_shot {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    // The first sample is taken here, so an unknown or stopped container is an error
    // answered before any body.
    let sampler = state.engine(move |engine| Ok(engine.stats(&id)?)).await?;
    if !streaming {
        let document = tokio::task::spawn_blocking(move || {
            let mut sampler = sampler;
            if !one_shot {
                // A second sample a second later, so CPU % is meaningful.
                std::thread::sleep(INTERVAL);
                sampler.resample()?;
            }
            Ok::<_, ApiError>(sampler.document())
        })
        .await
        .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))??;
        return Ok(Json(document).into_response());
    }
    let (lines, body) = Lines::channel();
    state.spawn_engine(move |_| feed(sampler, &lines));
    Ok(stream::json_response(body))
}

/// Sends a document a second until the client goes away or the container stops.
fn feed(mut sampler: StatsSampler, lines: &Lines) {
    loop {
        if lines.send_json(&sampler.document()).is_err() {
            return;
        }
        // Waits in steps, so a client that left frees the thread soon.
        let next = Instant::now() + INTERVAL;
        while Instant::now() < next {
            if lines.is_closed() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100).min(next - Instant::now()));
        }
        // A container that stopped has no cgroup, or none of its processes in it.
        if sampler.resample().is_err()
            || sampler
                .current()
                .pids
                .as_ref()
                .is_some_and(|p| p.current == 0)
        {
            return;
        }
    }
}
