//! `/volumes`: docker's `local` volumes, from the engine.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use basic_engine::{Volume, VolumeCreateRequest, VolumeFilters};
use bollard_stubs::models::{VolumeListResponse, VolumePruneResponse};
use serde::Deserialize;

use crate::State;
use crate::attach::flag;
use crate::error::ApiError;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

#[derive(Debug, Deserialize, Default)]
struct FiltersQuery {
    filters: Option<String>,
}

fn volume_filters(text: Option<&str>) -> Result<VolumeFilters, ApiError> {
    Ok(VolumeFilters::from_map(crate::filters::parse(text)?)?)
}

async fn list(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<FiltersQuery>,
) -> Result<Json<VolumeListResponse>, ApiError> {
    let filters = volume_filters(query.filters.as_deref())?;
    let volumes = state
        .engine(move |engine| Ok(engine.volumes(&filters)?))
        .await?;
    Ok(Json(VolumeListResponse {
        volumes: Some(volumes),
        warnings: Some(Vec::new()),
    }))
}

async fn create(Shared(state): Shared<Arc<State>>, body: Bytes) -> Result<Response, ApiError> {
    let request: VolumeCreateRequest = crate::json::parse(&body)?;
    let volume = state
        .engine(move |engine| Ok(engine.create_volume(&request)?))
        .await?;
    Ok((StatusCode::CREATED, Json(volume)).into_response())
}

async fn inspect(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
) -> Result<Json<Volume>, ApiError> {
    Ok(Json(
        state
            .engine(move |engine| Ok(engine.volume(&name)?))
            .await?,
    ))
}

#[derive(Debug, Deserialize, Default)]
struct RemoveQuery {
    force: Option<String>,
}

async fn remove(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Response, ApiError> {
    let force = flag(&query.force);
    state
        .engine(move |engine| Ok(engine.remove_volume(&name, force)?))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<FiltersQuery>,
) -> Result<Json<VolumePruneResponse>, ApiError> {
    let filters = volume_filters(query.filters.as_deref())?;
    let report = state
        .engine(move |engine| Ok(engine.prune_volumes(&filters)?))
        .await?;
    Ok(Json(VolumePruneResponse {
        volumes_deleted: Some(report.deleted),
        space_reclaimed: Some(i64::try_from(report.reclaimed).unwrap_or(i64::MAX)),
    }))
}
