//! `/images/...`: list, pull (`create`) and push with docker's JSON progress stream,
//! inspect, history, tag, remove and prune.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State as Shared};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use basic_image_store::{LayerStatus, PullEvent, PullOptions, short_id};
use basic_registry::{Credentials, Platform, Reference};
use bollard_stubs::models::{
    ImageDeleteResponseItem, ImageHistoryResponseItem, ImageInspect, ImagePruneResponse,
    ImageSummary,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::State;
use crate::error::ApiError;
use crate::stream;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(pull))
        .route("/images/prune", post(prune))
        .route("/images/get", get(save_many))
        .route("/images/load", post(load))
        // Names hold slashes (`127.0.0.1:5000/library/busybox`): the verb is the last
        // segment, the name everything before it.
        .route(
            "/images/{*path}",
            get(by_name_get).post(by_name_post).delete(remove),
        )
}

#[derive(Debug, Deserialize, Default)]
struct ListQuery {
    all: Option<String>,
    filters: Option<String>,
    digests: Option<String>,
}

async fn list(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<ImageSummary>>, ApiError> {
    let _ = &query.digests;
    let all = query
        .all
        .as_deref()
        .is_some_and(|a| matches!(a, "1" | "true" | "True"));
    let filters = crate::filters::parse(query.filters.as_deref())?;
    if let Some(key) = filters
        .keys()
        .find(|k| !matches!(k.as_str(), "reference" | "dangling" | "label"))
    {
        return Err(ApiError::bad_request(format!(
            "invalid filter {key:?}: use reference, dangling or label"
        )));
    }
    let images = state
        .engine(move |engine| Ok(engine.image_summaries(all)?))
        .await?;
    Ok(Json(
        images
            .into_iter()
            .filter(|image| image_matches(image, &filters))
            .collect(),
    ))
}

fn image_matches(
    image: &ImageSummary,
    filters: &std::collections::BTreeMap<String, Vec<String>>,
) -> bool {
    filters.iter().all(|(key, values)| {
        values.iter().any(|v| match key.as_str() {
            "dangling" => (v == "true") == image.repo_tags.is_empty(),
            "label" => match v.split_once('=') {
                Some((k, want)) => image.labels.get(k).is_some_and(|x| x == want),
                None => image.labels.contains_key(v.as_str()),
            },
            "reference" => image.repo_tags.iter().any(|t| reference_matches(t, v)),
            _ => false,
        })
    })
}

/// docker's `reference` filter: `repo`, `repo:tag`, with `*` matching within a segment.
fn reference_matches(tag: &str, pattern: &str) -> bool {
    let familiar = Reference::parse(tag).map_or(tag.to_string(), |r| r.familiar());
    let (repo, _) = familiar.rsplit_once(':').unwrap_or((&familiar, ""));
    glob(pattern, &familiar) || glob(pattern, repo)
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(after) = text.strip_prefix(head) else {
                return false;
            };
            (0..=after.len())
                .filter(|i| after.is_char_boundary(*i))
                .filter(|i| !after[..*i].contains('/'))
                .any(|i| glob(rest, &after[i..]))
        }
    }
}

#[derive(Debug, Deserialize, Default)]
struct PullQuery {
    #[serde(rename = "fromImage")]
    from_image: Option<String>,
    #[serde(rename = "fromSrc")]
    from_src: Option<String>,
    tag: Option<String>,
    platform: Option<String>,
}

/// The reference `fromImage` and `tag` name together (`tag` may be a digest).
fn pull_reference(query: &PullQuery) -> Result<Reference, ApiError> {
    let image = query
        .from_image
        .as_deref()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request("fromImage is required (importing with fromSrc is not served)")
        })?;
    let text = match query.tag.as_deref().filter(|t| !t.is_empty()) {
        Some(tag) if tag.starts_with("sha256:") => format!("{image}@{tag}"),
        Some(tag) => format!("{image}:{tag}"),
        None => image.to_string(),
    };
    Reference::parse(&text)
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))
}

/// `X-Registry-Auth`: base64url JSON `{"username", "password", "serveraddress",
/// "identitytoken"}`; absent or empty is anonymous (or the service's own store).
fn registry_auth(headers: &HeaderMap) -> Result<Option<Credentials>, ApiError> {
    let Some(value) = headers.get("X-Registry-Auth") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Auth header"))?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Auth header: not base64"))?;
    let auth: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Auth header: not JSON"))?;
    let field = |k: &str| {
        auth.get(k)
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
    };
    Ok(
        match (field("identitytoken"), field("username"), field("password")) {
            (Some(token), _, _) => Some(Credentials::IdentityToken(token.to_string())),
            (None, Some(username), Some(password)) => Some(Credentials::Basic {
                username: username.to_string(),
                password: password.to_string(),
            }),
            _ => None,
        },
    )
}

/// docker's progress message for one event.
fn progress_message(event: &PullEvent) -> Vec<Value> {
    match event {
        PullEvent::Resolved { layers, .. } => layers
            .iter()
            .map(|l| json!({"status": "Pulling fs layer", "progressDetail": {}, "id": layer_id(l)}))
            .collect(),
        PullEvent::Layer { digest, status } => {
            let id = layer_id(digest);
            let message = match status {
                LayerStatus::Waiting => {
                    json!({"status": "Waiting", "progressDetail": {}, "id": id})
                }
                LayerStatus::AlreadyExists => {
                    json!({"status": "Already exists", "progressDetail": {}, "id": id})
                }
                LayerStatus::Downloading { current, total } => json!({
                    "status": "Downloading",
                    "progressDetail": {"current": current, "total": total},
                    "progress": bar(*current, *total),
                    "id": id,
                }),
                LayerStatus::Verifying => {
                    json!({"status": "Verifying Checksum", "progressDetail": {}, "id": id})
                }
                LayerStatus::DownloadComplete => {
                    json!({"status": "Download complete", "progressDetail": {}, "id": id})
                }
                LayerStatus::Extracting => {
                    json!({"status": "Extracting", "progressDetail": {}, "id": id})
                }
                LayerStatus::PullComplete => {
                    json!({"status": "Pull complete", "progressDetail": {}, "id": id})
                }
            };
            vec![message]
        }
        // docker's progress has no word for a silent registry; the pull's timeouts end it.
        _ => Vec::new(),
    }
}

fn layer_id(digest: &str) -> &str {
    short_id(digest)
}

/// docker's `[=====>      ]  1.2MB/4.5MB` bar.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.saturating_mul(WIDTH))
        .checked_div(total)
        .unwrap_or(0)
        .min(WIDTH);
    let mut bar = "=".repeat(filled as usize);
    if filled < WIDTH {
        bar.push('>');
        bar.push_str(&" ".repeat((WIDTH - filled - 1) as usize));
    }
    format!("[{bar}] {}/{}", human(current), human(total))
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{size:.3}{}", UNITS[unit]).replace(".000", "")
}

/// Pulls `fromImage[:tag]`, streaming docker's progress. A failure before the first
/// message is an HTTP error (404 for an image that does not exist); after it, docker's
/// `{"error": …, "errorDetail": {"message": …}}` line ends the stream.
async fn pull(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<PullQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if query.from_src.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::bad_request(
            "importing an archive with fromSrc is not served; use basic-docker import",
        ));
    }
    let reference = pull_reference(&query)?;
    let mut options = PullOptions::default();
    if let Some(p) = query.platform.as_deref().filter(|p| !p.is_empty()) {
        let platform = Platform::parse(p)
            .map_err(|e| ApiError::bad_request(format!("invalid platform {p:?}: {e}")))?;
        options = options.platform(platform);
    }
    let mut builder = (state.options.registry)();
    if let Some(credentials) = registry_auth(&headers)? {
        builder = builder.credentials(reference.registry(), credentials);
    }
    let client = builder.build().map_err(|e| {
        ApiError::internal(format!(
            "setting up the registry client: {}",
            crate::error::chain(&e)
        ))
    })?;
    let store = state.engine(|engine| Ok(engine.store().clone())).await?;
    let progress = Progress::new();
    let body = progress.body();
    let (started_tx, started_rx) = oneshot::channel::<Result<(), ApiError>>();
    tokio::spawn(async move {
        let what = reference.tag().or(reference.digest()).unwrap_or("latest");
        let opening =
            json!({"status": format!("Pulling from {}", reference.repository()), "id": what});
        let started = std::sync::Mutex::new(Some(started_tx));
        let begin = || {
            if let Some(tx) = started.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = tx.send(Ok(()));
                progress.send(&opening);
            }
        };
        let report = basic_image_store::pull(&store, &client, &reference, &options, |event| {
            begin();
            progress.event(&event);
        })
        .await;
        match report {
            Err(e) => {
                if let Some(tx) = started.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    let _ = tx.send(Err(pull_error(&e)));
                    return;
                }
                let message = crate::error::chain(&e);
                progress.send(&json!({"errorDetail": {"message": message}, "error": message}));
            }
            Ok(report) => {
                begin();
                let digest = report.repo_digest.rsplit('@').next().unwrap_or("");
                let status = match report.up_to_date {
                    true => "Image is up to date for",
                    false => "Downloaded newer image for",
                };
                progress.send(&json!({"status": format!("Digest: {digest}")}));
                progress
                    .send(&json!({"status": format!("Status: {status} {}", reference.familiar())}));
            }
        }
    });
    match started_rx.await {
        Ok(Ok(())) => Ok(stream::json_response(body)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiError::internal("the pull ended without a word")),
    }
}

/// A pull's progress lines. The pull's callback cannot wait for a slow client, so the
/// channel is unbounded, and download progress is thinned to whole percents per layer
/// so that it stays small.
struct Progress {
    tx: tokio::sync::mpsc::UnboundedSender<bytes::Bytes>,
    rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<bytes::Bytes>>>,
    percents: std::sync::Mutex<std::collections::HashMap<String, u64>>,
}

impl Progress {
    fn new() -> Self {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        Progress {
            tx,
            rx: std::sync::Mutex::new(Some(rx)),
            percents: Default::default(),
        }
    }

    fn body(&self) -> axum::body::Body {
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut rx) = rx else {
            return axum::body::Body::empty();
        };
        let stream = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|item| item.map(Ok::<_, std::convert::Infallible>))
        });
        axum::body::Body::from_stream(stream)
    }

    fn send(&self, message: &Value) {
        let mut line = serde_json::to_vec(message).unwrap_or_default();
        line.push(b'\n');
        let _ = self.tx.send(line.into());
    }

    fn event(&self, event: &PullEvent) {
        if let PullEvent::Layer {
            digest,
            status: LayerStatus::Downloading { current, total },
        } = event
        {
            let percent = (current.saturating_mul(100))
                .checked_div(*total)
                .unwrap_or(0);
            let mut seen = self.percents.lock().unwrap_or_else(|p| p.into_inner());
            if seen.insert(digest.clone(), percent) == Some(percent) {
                return;
            }
        }
        for message in progress_message(event) {
            self.send(&message);
        }
    }
}

/// A pull that failed before it started: a missing image or repository is a 404, as
/// dockerd answers.
fn pull_error(e: &basic_image_store::PullError) -> ApiError {
    let message = crate::error::chain(e);
    let lower = message.to_ascii_lowercase();
    if lower.contains("manifest unknown")
        || lower.contains("not found")
        || lower.contains("name unknown")
    {
        ApiError::not_found(message)
    } else if lower.contains("unauthorized") || lower.contains("denied") {
        ApiError {
            status: StatusCode::FORBIDDEN,
            message,
        }
    } else {
        ApiError::internal(message)
    }
}

async fn by_name_get(
    Shared(state): Shared<Arc<State>>,
    Path(name_and_verb): Path<String>,
) -> Result<Response, ApiError> {
    let (name, verb) = split_verb(&name_and_verb)?;
    match verb {
        "json" => {
            let doc: ImageInspect = state
                .engine(move |engine| Ok(engine.inspect_image(&name)?))
                .await?;
            Ok(Json(doc).into_response())
        }
        "get" => save(state, vec![name]).await,
        "history" => {
            let items: Vec<ImageHistoryResponseItem> = state
                .engine(move |engine| Ok(engine.image_history(&name)?))
                .await?;
            Ok(Json(items).into_response())
        }
        other => Err(ApiError::not_found(format!(
            "page not found: /images/{name}/{other}"
        ))),
    }
}

#[derive(Debug, Deserialize, Default)]
struct TagQuery {
    repo: Option<String>,
    tag: Option<String>,
}

async fn by_name_post(
    Shared(state): Shared<Arc<State>>,
    Path(name_and_verb): Path<String>,
    Query(query): Query<TagQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (name, verb) = split_verb(&name_and_verb)?;
    if verb == "push" {
        return push(state, name, query.tag, &headers).await;
    }
    if verb != "tag" {
        return Err(ApiError::not_found(format!(
            "page not found: /images/{name}/{verb}"
        )));
    }
    let repo = query
        .repo
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("repo is required: the name to give the image"))?;
    let new_name = match query.tag.filter(|t| !t.is_empty()) {
        Some(tag) => format!("{repo}:{tag}"),
        None => repo,
    };
    state
        .engine(move |engine| Ok(engine.tag_image(&name, &new_name)?))
        .await?;
    Ok(StatusCode::CREATED.into_response())
}

/// Pushes `name:tag`, or, as dockerd does when no tag is given, every tag of the
/// repository `name` in the store, streaming docker's push progress (`X-Registry-Auth`
/// credentials as for a pull). An image the store lacks is a 404 before the stream; a
/// failure after it is docker's `error` line, and ends the push.
async fn push(
    state: Arc<State>,
    name: String,
    tag: Option<String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let tag = tag.filter(|t| !t.is_empty());
    let tagged_name = name
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    let text = match &tag {
        Some(tag) => format!("{name}:{tag}"),
        None => name.clone(),
    };
    let reference = Reference::parse(&text)
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
    let mut builder = (state.options.registry)();
    if let Some(credentials) = registry_auth(headers)? {
        builder = builder.credentials(reference.registry(), credentials);
    }
    let client = builder.build().map_err(|e| {
        ApiError::internal(format!(
            "setting up the registry client: {}",
            crate::error::chain(&e)
        ))
    })?;
    let all_tags = tag.is_none() && !tagged_name;
    let wanted = reference.clone();
    let (store, references) = state
        .engine(move |engine| {
            let store = engine.store().clone();
            let references = if all_tags {
                store.repository_tags(&wanted)?
            } else {
                match store.resolve(&wanted.familiar()) {
                    Ok(_) => vec![wanted],
                    Err(basic_image_store::StoreError::NoSuchImage(_)) => Vec::new(),
                    Err(e) => return Err(e.into()),
                }
            };
            Ok((store, references))
        })
        .await?;
    if references.is_empty() {
        return Err(ApiError::not_found(format!(
            "An image does not exist locally with the tag: {text}"
        )));
    }
    let progress = Progress::new();
    let body = progress.body();
    tokio::spawn(async move {
        progress.send(&json!({"status": format!(
            "The push refers to repository [{}/{}]",
            reference.registry(),
            reference.repository()
        )}));
        let options = basic_image_store::PushOptions::default();
        for reference in &references {
            let report = basic_image_store::push(&store, &client, reference, &options, |event| {
                if let Some(message) = push_message(&event) {
                    progress.send(&message);
                }
            })
            .await;
            match report {
                Ok(r) => {
                    progress.send(&json!({"status": format!(
                        "{}: digest: {} size: {}", r.tag, r.digest, r.size
                    )}));
                    progress.send(&json!({
                        "progressDetail": {},
                        "aux": {"Tag": r.tag, "Digest": r.digest, "Size": r.size},
                    }));
                }
                Err(e) => {
                    let message = crate::error::chain(&e);
                    progress.send(&json!({"errorDetail": {"message": message}, "error": message}));
                    return;
                }
            }
        }
    });
    Ok(stream::json_response(body))
}

/// docker's push progress message for one event.
fn push_message(event: &basic_image_store::PushEvent) -> Option<Value> {
    use basic_image_store::{PushEvent, PushStatus};
    let PushEvent::Layer { id, status } = event else {
        return None;
    };
    let plain = |status: &str| json!({"status": status, "progressDetail": {}, "id": id});
    Some(match status {
        PushStatus::Preparing => plain("Preparing"),
        PushStatus::Waiting => plain("Waiting"),
        PushStatus::Compressing => plain("Preparing"),
        PushStatus::Pushing { current, total } => json!({
            "status": "Pushing",
            "progressDetail": {"current": current, "total": total},
            "progress": bar(*current, *total),
            "id": id,
        }),
        PushStatus::Pushed => plain("Pushed"),
        PushStatus::AlreadyExists => plain("Layer already exists"),
        PushStatus::MountedFrom(from) => plain(&format!("Mounted from {from}")),
        _ => return None,
    })
}

/// `busybox/json` → (`busybox`, `json`); `127.0.0.1:5000/x/y/history` → (…/x/y, history).
fn split_verb(path: &str) -> Result<(String, &str), ApiError> {
    path.rsplit_once('/')
        .filter(|(name, _)| !name.is_empty())
        .map(|(name, verb)| (name.to_string(), verb))
        .ok_or_else(|| ApiError::not_found(format!("page not found: /images/{path}")))
}

#[derive(Debug, Deserialize, Default)]
struct RemoveQuery {
    force: Option<String>,
    noprune: Option<String>,
}

async fn remove(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    Query(query): Query<RemoveQuery>,
) -> Result<Json<Vec<ImageDeleteResponseItem>>, ApiError> {
    let force = query
        .force
        .as_deref()
        .is_some_and(|f| matches!(f, "1" | "true" | "True"));
    let _ = query.noprune;
    Ok(Json(
        state
            .engine(move |engine| Ok(engine.remove_image(&name, force)?))
            .await?,
    ))
}

#[derive(Debug, Deserialize, Default)]
struct PruneQuery {
    filters: Option<String>,
}

async fn prune(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<PruneQuery>,
) -> Result<Json<ImagePruneResponse>, ApiError> {
    let filters = crate::filters::parse(query.filters.as_deref())?;
    let all = match filters.get("dangling").map(Vec::as_slice) {
        None => false,
        Some([v]) if v == "true" || v == "1" => false,
        Some([v]) if v == "false" || v == "0" => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid filter dangling={other:?}"
            )));
        }
    };
    if let Some(key) = filters.keys().find(|k| *k != "dangling") {
        return Err(ApiError::bad_request(format!(
            "invalid filter {key:?}: image prune takes dangling"
        )));
    }
    let response = state
        .engine(move |engine| {
            let store = engine.store();
            let before = store.disk_usage()?;
            let removals = store.prune(all)?;
            let after = store.disk_usage()?;
            let reclaimed = (before.layers_size + before.blobs_size)
                .saturating_sub(after.layers_size + after.blobs_size);
            Ok(ImagePruneResponse {
                images_deleted: Some(removals.iter().map(basic_engine::delete_item).collect()),
                space_reclaimed: Some(i64::try_from(reclaimed).unwrap_or(i64::MAX)),
            })
        })
        .await?;
    Ok(Json(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filters_match_as_dockers() {
        assert!(reference_matches(
            "docker.io/library/busybox:latest",
            "busybox"
        ));
        assert!(reference_matches(
            "docker.io/library/busybox:latest",
            "busybox:latest"
        ));
        assert!(reference_matches(
            "docker.io/library/busybox:latest",
            "busy*"
        ));
        assert!(!reference_matches(
            "docker.io/library/busybox:latest",
            "alpine"
        ));
        assert!(reference_matches(
            "127.0.0.1:5000/a/b:1",
            "127.0.0.1:5000/a/*"
        ));
    }

    #[test]
    fn progress_bars_fill_as_bytes_arrive() {
        assert!(bar(0, 100).starts_with("[>"));
        assert!(bar(100, 100).starts_with(&format!("[{}]", "=".repeat(50))));
        assert!(bar(50, 0).starts_with("[>"));
    }
}

/// `GET /images/get?names=A&names=B`: the images as one `docker save` archive.
async fn save_many(
    Shared(state): Shared<Arc<State>>,
    uri: axum::http::Uri,
) -> Result<Response, ApiError> {
    // `names` repeats, which the query extractor does not take.
    let names: Vec<String> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .filter(|(key, value)| key == "names" && !value.is_empty())
        .map(|(_, value)| value.into_owned())
        .collect();
    save(state, names).await
}

/// `docker save`'s archive of `names`, streamed; unknown names are a 404 before it starts.
async fn save(state: Arc<State>, names: Vec<String>) -> Result<Response, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let checked = names.clone();
    state
        .engine(move |engine| {
            for name in &checked {
                engine.inspect_image(name)?;
            }
            Ok(())
        })
        .await?;
    let (lines, body) = stream::Lines::channel();
    state.spawn_engine(move |engine| {
        let out = std::io::BufWriter::with_capacity(64 * 1024, crate::archive::LinesWriter(lines));
        if let Err(e) = basic_image_store::save(engine.store(), &names, out) {
            tracing::warn!("saving {names:?}: {e}");
        }
    });
    let mut response = Response::new(body);
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/x-tar"),
    );
    Ok(response)
}

#[derive(Debug, Deserialize, Default)]
struct LoadQuery {
    quiet: Option<String>,
}

/// `POST /images/load`: the images of a `docker save` or OCI archive in the body, answered
/// with docker's JSON lines naming them.
async fn load(
    Shared(state): Shared<Arc<State>>,
    Query(query): Query<LoadQuery>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let _quiet = crate::attach::flag(&query.quiet);
    let reader = crate::archive::ChannelReader::from_body(request.into_body());
    let store = state.engine(|engine| Ok(engine.store().clone())).await?;
    let loaded = basic_image_store::load(&store, reader, "the request's archive", |_| {})
        .await
        .map_err(|e| match e {
            basic_image_store::LoadError::Format { .. } => {
                ApiError::bad_request(crate::error::chain(&e))
            }
            e => ApiError::internal(crate::error::chain(&e)),
        })?;
    let mut text = String::new();
    for image in loaded {
        let mut said = Vec::new();
        if image.tags.is_empty() {
            said.push(format!("Loaded image ID: {}\n", image.id));
        }
        said.extend(image.tags.iter().map(|t| format!("Loaded image: {t}\n")));
        for line in said {
            text.push_str(&serde_json::json!({ "stream": line }).to_string());
            text.push('\n');
        }
    }
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response())
}
