//! `/_ping`, `/version`, `/info`, `/events`, `/system/df`, and the endpoints of docker's
//! swarm and plugins, which answer as a dockerd outside a swarm does.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State as Shared};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use basic_engine::{EventOptions, Status};
use bollard_stubs::models::{
    SystemInfo, SystemVersion, SystemVersionComponents, SystemVersionPlatform,
};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::stream::{self, Lines};
use crate::{API_VERSION, MIN_API_VERSION, State};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
        .route("/system/df", get(disk_usage))
        .route("/swarm", any(not_a_swarm))
        .route("/swarm/{*rest}", any(not_a_swarm))
        .route("/nodes", any(not_a_swarm))
        .route("/nodes/{*rest}", any(not_a_swarm))
        .route("/services", any(not_a_swarm))
        .route("/services/{*rest}", any(not_a_swarm))
        .route("/tasks", any(not_a_swarm))
        .route("/tasks/{*rest}", any(not_a_swarm))
        .route("/secrets", any(not_a_swarm))
        .route("/secrets/{*rest}", any(not_a_swarm))
        .route("/configs", any(not_a_swarm))
        .route("/configs/{*rest}", any(not_a_swarm))
        .route("/plugins", get(no_plugins))
        .route("/plugins/{*rest}", any(no_such_plugin))
}

/// The headers dockerd puts on every `_ping`; clients negotiate their version from
/// `API-Version`.
async fn ping() -> Response {
    let mut headers = HeaderMap::new();
    headers.insert("API-Version", HeaderValue::from_static(API_VERSION));
    headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
    headers.insert("OSType", HeaderValue::from_static("linux"));
    headers.insert("Builder-Version", HeaderValue::from_static("1"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (StatusCode::OK, headers, "OK").into_response()
}

fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn version() -> Json<SystemVersion> {
    let version = env!("CARGO_PKG_VERSION").to_string();
    let details = HashMap::from([
        ("ApiVersion".to_string(), API_VERSION.to_string()),
        ("MinAPIVersion".to_string(), MIN_API_VERSION.to_string()),
        ("Os".to_string(), "linux".to_string()),
        ("Arch".to_string(), arch().to_string()),
        ("KernelVersion".to_string(), kernel_version()),
    ]);
    Json(SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "basic-docker".to_string(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".to_string(),
            version: version.clone(),
            details: Some(details),
        }]),
        version: Some(version),
        api_version: Some(API_VERSION.to_string()),
        min_api_version: Some(MIN_API_VERSION.to_string()),
        git_commit: Some(String::new()),
        go_version: Some(String::new()),
        os: Some("linux".to_string()),
        arch: Some(arch().to_string()),
        kernel_version: Some(kernel_version()),
        experimental: Some(false),
        build_time: Some(String::new()),
    })
}

async fn info(Shared(state): Shared<Arc<State>>) -> Result<Json<SystemInfo>, ApiError> {
    let info = state
        .engine(|engine| {
            let containers = engine.containers()?;
            let statuses: Vec<Status> = containers.iter().map(|c| engine.status(c)).collect();
            let running = statuses
                .iter()
                .filter(|s| matches!(s, Status::Running(_)))
                .count();
            let paused = statuses
                .iter()
                .filter(|s| matches!(s, Status::Paused(_)))
                .count();
            let images = engine.store().images()?.len();
            let env = basic_engine::host::environment(engine.paths(), false);
            let count = |n: usize| Some(i64::try_from(n).unwrap_or(i64::MAX));
            Ok(SystemInfo {
                id: Some(String::new()),
                containers: count(containers.len()),
                containers_running: count(running),
                containers_paused: count(paused),
                containers_stopped: count(containers.len() - running - paused),
                images: count(images),
                driver: Some(basic_engine::host::snapshotter_kind(engine.paths()).to_string()),
                docker_root_dir: Some(engine.paths().root.display().to_string()),
                kernel_version: Some(kernel_version()),
                operating_system: Some(os_release_name()),
                os_type: Some("linux".to_string()),
                architecture: Some(std::env::consts::ARCH.to_string()),
                ncpu: Some(std::thread::available_parallelism().map_or(1, |n| n.get() as i64)),
                mem_total: Some(mem_total()),
                name: Some(
                    nix::unistd::gethostname()
                        .map(|h| h.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
                server_version: Some(env!("CARGO_PKG_VERSION").to_string()),
                cgroup_driver: Some(bollard_stubs::models::SystemInfoCgroupDriverEnum::CGROUPFS),
                cgroup_version: Some(if env.cgroup_version.to_string().contains('2') {
                    bollard_stubs::models::SystemInfoCgroupVersionEnum::_2
                } else {
                    bollard_stubs::models::SystemInfoCgroupVersionEnum::_1
                }),
                security_options: Some(security_options()),
                logging_driver: Some("json-file".to_string()),
                default_runtime: Some("basic-runtime".to_string()),
                live_restore_enabled: Some(true),
                ..Default::default()
            })
        })
        .await?;
    Ok(Json(info))
}

fn os_release_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".to_string())
}

fn mem_total() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[derive(Debug, Deserialize, Default)]
struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

/// docker's `since`/`until`: unix seconds, with optional fractional nanoseconds.
fn parse_time(text: &str) -> Result<i64, ApiError> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, "0"));
    let secs: i64 = secs.parse().map_err(|_| {
        ApiError::bad_request(format!("invalid time {text:?}: expected unix seconds"))
    })?;
    let nanos: i64 = format!("{frac:0<9}")[..9].parse().map_err(|_| {
        ApiError::bad_request(format!("invalid time {text:?}: expected unix seconds"))
    })?;
    Ok(secs * 1_000_000_000 + nanos)
}

/// The events as they happen, one JSON object per line, until the client goes (or
/// `until` passes).
async fn events(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let filters = crate::filters::parse(query.filters.as_deref())?;
    let now = basic_engine::status::now_nanos();
    let options = EventOptions {
        since: query
            .since
            .as_deref()
            .map(parse_time)
            .transpose()?
            .or(Some(now)),
        until: query.until.as_deref().map(parse_time).transpose()?,
        filters: filters.into_iter().collect(),
        follow: true,
    };
    let (lines, body) = Lines::channel();
    state.spawn_engine(move |engine| {
        let _ = engine.events(&options, |event| lines.send_json(event));
    });
    Ok(stream::json_response(body))
}

async fn disk_usage(
    Shared(state): Shared<Arc<State>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let usage = state
        .engine(|engine| {
            let images = engine.image_summaries(true)?;
            let containers: Vec<_> = engine
                .list(true, &basic_engine::Filters::default())?
                .into_iter()
                .map(|listed| {
                    let mut summary = listed.summary();
                    summary.size_rw =
                        Some(i64::try_from(engine.writable_size(&listed.container)).unwrap_or(0));
                    summary
                })
                .collect();
            let layers = engine.store().disk_usage()?;
            Ok(json!({
                "LayersSize": layers.layers_size,
                "Images": images,
                "Containers": containers,
                "Volumes": [],
                "BuildCache": [],
            }))
        })
        .await?;
    Ok(Json(usage))
}

async fn not_a_swarm() -> ApiError {
    ApiError::unavailable(
        "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.",
    )
}

async fn no_plugins() -> Json<Vec<serde_json::Value>> {
    Json(Vec::new())
}

async fn no_such_plugin(uri: axum::http::Uri) -> ApiError {
    let name = uri.path().trim_start_matches("/plugins/");
    let name = name.split('/').next().unwrap_or(name);
    ApiError::not_found(format!("plugin \"{name}\" not found"))
}

/// docker's `SecurityOptions`: the default seccomp profile, and `name=rootless` in
/// rootless mode (docker's CLI shows it under "Security Options").
pub fn security_options() -> Vec<String> {
    let mut options = vec!["name=seccomp,profile=default".to_string()];
    if basic_runtime::rootless::active() {
        options.push("name=rootless".into());
    }
    options
}
