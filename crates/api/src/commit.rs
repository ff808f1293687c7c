//! `POST /commit`: a container's changes as a new image, answered as docker does
//! (`201 {"Id": "sha256:…"}`).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State as Shared};
use axum::http::StatusCode;
use axum::routing::post;
use basic_engine::CommitOptions;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::State;
use crate::error::ApiError;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new().route("/commit", post(commit))
}

#[derive(Debug, Deserialize, Default)]
struct CommitQuery {
    container: Option<String>,
    repo: Option<String>,
    tag: Option<String>,
    comment: Option<String>,
    author: Option<String>,
    pause: Option<String>,
    changes: Option<String>,
}

async fn commit(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<CommitQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let container = query
        .container
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("container is required: the container to commit"))?;
    let reference = match (query.repo.filter(|r| !r.is_empty()), query.tag) {
        (Some(repo), Some(tag)) if !tag.is_empty() => Some(format!("{repo}:{tag}")),
        (Some(repo), _) => Some(repo),
        (None, Some(tag)) if !tag.is_empty() => {
            return Err(ApiError::bad_request("tag given without repo"));
        }
        (None, _) => None,
    };
    let options = CommitOptions {
        reference,
        comment: query.comment.filter(|c| !c.is_empty()),
        author: query.author.filter(|a| !a.is_empty()),
        changes: query.changes.into_iter().collect(),
        // docker's API pauses unless told not to.
        pause: query.pause.is_none() || crate::attach::flag(&query.pause),
        ..CommitOptions::default()
    };
    let id = state
        .engine(move |engine| Ok(engine.commit(&container, &options)?))
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": id}))))
}
