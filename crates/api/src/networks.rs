//! `/networks/...`: create, list, inspect, remove, connect, disconnect and prune.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bollard_stubs::models::{
    NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest, NetworkInspect,
    NetworkPruneResponse,
};
use serde::Deserialize;

use crate::State;
use crate::error::ApiError;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

#[derive(Debug, Deserialize, Default)]
struct ListQuery {
    filters: Option<String>,
}

async fn list(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<NetworkInspect>>, ApiError> {
    let filters = crate::filters::parse(query.filters.as_deref())?;
    Ok(Json(
        state
            .engine(move |engine| Ok(engine.list_networks(&filters)?))
            .await?,
    ))
}

async fn create(Shared(state): Shared<Arc<State>>, body: Bytes) -> Result<Response, ApiError> {
    let request: NetworkCreateRequest = crate::json::parse(&body)?;
    if request.name.is_empty() {
        return Err(ApiError::bad_request("network name is required"));
    }
    let created = state
        .engine(move |engine| Ok(engine.create_network(&request)?))
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn inspect(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Json<NetworkInspect>, ApiError> {
    Ok(Json(
        state
            .engine(move |engine| Ok(engine.inspect_network(&id)?))
            .await?,
    ))
}

async fn remove(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state
        .engine(move |engine| Ok(engine.remove_network(&id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn connect(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: NetworkConnectRequest = crate::json::parse(&body)?;
    if request.container.is_empty() {
        return Err(ApiError::bad_request("Container is required"));
    }
    state
        .engine(move |engine| {
            Ok(engine.connect_network(&id, &request.container, request.endpoint_config)?)
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn disconnect(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: NetworkDisconnectRequest = crate::json::parse(&body)?;
    if request.container.is_empty() {
        return Err(ApiError::bad_request("Container is required"));
    }
    state
        .engine(move |engine| Ok(engine.disconnect_network(&id, &request.container)?))
        .await?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Debug, Deserialize, Default)]
struct PruneQuery {
    filters: Option<String>,
}

async fn prune(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<PruneQuery>,
) -> Result<Json<NetworkPruneResponse>, ApiError> {
    let filters = crate::filters::parse(query.filters.as_deref())?;
    if let Some(key) = filters.keys().next() {
        return Err(ApiError::bad_request(format!(
            "invalid filter {key:?}: network prune takes no filters here"
        )));
    }
    let deleted = state.engine(|engine| Ok(engine.prune_networks()?)).await?;
    Ok(Json(NetworkPruneResponse {
        networks_deleted: Some(deleted),
    }))
}
