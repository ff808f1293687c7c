#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod containers;
mod error;
mod filters;
mod images;
mod json;
mod networks;
mod socket;
mod stream;
mod system;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use basic_engine::{Engine, EngineOptions};
use basic_registry::RegistryClientBuilder;
use tower::ServiceExt as _;

pub use error::ApiError;
pub use socket::{SocketError, bind_socket, socket_path};

/// The API version served (what docker 20.10 and docker-py 5 speak; newer clients
/// negotiate down to it through `/_ping`'s `API-Version` header).
pub const API_VERSION: &str = "1.41";

/// The oldest API version answered.
pub const MIN_API_VERSION: &str = "1.12";

/// Makes the registry client a pull goes through: the service's credentials, insecure
/// registries and mirrors; a request's `X-Registry-Auth` is added to what it returns.
pub type RegistryClientFactory = Arc<dyn Fn() -> RegistryClientBuilder + Send + Sync>;

/// What the service runs on.
#[derive(Clone)]
pub struct ServiceOptions {
    /// The engine's store, state directory and supervisor.
    pub engine: EngineOptions,
    /// The registry client for pulls.
    pub registry: RegistryClientFactory,
    /// Exit after this long without a request (socket activation); `None` never.
    pub idle_exit: Option<Duration>,
}

/// The API service.
#[derive(Clone)]
pub struct Service {
    state: Arc<State>,
}

pub(crate) struct State {
    pub options: ServiceOptions,
    last_request: AtomicI64,
    busy: AtomicI64,
}

/// A request being answered: the service is not idle while one is (the count goes down
/// when its response body has been sent or dropped).
struct Busy(Arc<State>);

impl Busy {
    fn new(state: &Arc<State>) -> Self {
        state.busy.fetch_add(1, Ordering::Relaxed);
        Busy(state.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.last_request.store(now_millis(), Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

impl State {
    /// Runs `f` on an engine, off the async threads (the engine's verbs block).
    pub async fn engine<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let options = self.options.engine.clone();
        tokio::task::spawn_blocking(move || {
            let engine = Engine::open(options)?;
            f(&engine)
        })
        .await
        .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))?
    }

    /// Runs `f` on an engine off the async threads without waiting for it: a stream's
    /// producer, which ends when its client goes away.
    pub fn spawn_engine(self: &Arc<Self>, f: impl FnOnce(&Engine) + Send + 'static) {
        let options = self.options.engine.clone();
        tokio::task::spawn_blocking(move || match Engine::open(options) {
            Ok(engine) => f(&engine),
            Err(e) => tracing::warn!("opening the engine for a stream: {e}"),
        });
    }
}

impl Service {
    /// A service on `options`.
    pub fn new(options: ServiceOptions) -> Self {
        Service {
            state: Arc::new(State {
                options,
                last_request: AtomicI64::new(now_millis()),
                busy: AtomicI64::new(0),
            }),
        }
    }

    /// Serves clients on `listener` until `shutdown` completes or the idle time passes;
    /// requests in flight are finished first.
    pub async fn serve(
        self,
        listener: tokio::net::UnixListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let state = self.state.clone();
        let app = tower::service_fn(move |mut request: Request| {
            state.last_request.store(now_millis(), Ordering::Relaxed);
            let busy = Busy::new(&state);
            strip_version(&mut request);
            let answer = router.clone().oneshot(request);
            async move {
                let response = answer.await?;
                // Busy until the body is sent (a stream of logs, events or a wait).
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    let stream =
                        futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
                            let _ = &busy;
                            chunk
                        });
                    axum::body::Body::from_stream(stream)
                }))
            }
        });
        let idle = self.state.clone();
        let idle_exit = async move {
            let Some(limit) = idle.options.idle_exit else {
                return std::future::pending().await;
            };
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if idle.busy.load(Ordering::Relaxed) > 0 {
                    continue;
                }
                let quiet = now_millis() - idle.last_request.load(Ordering::Relaxed);
                if quiet >= i64::try_from(limit.as_millis()).unwrap_or(i64::MAX) {
                    return;
                }
            }
        };
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = idle_exit => {}
            }
        };
        axum::serve(listener, tower::make::Shared::new(app))
            .with_graceful_shutdown(stop)
            .await
    }

    fn router(&self) -> Router {
        Router::new()
            .merge(system::routes())
            .merge(containers::routes())
            .merge(images::routes())
            .merge(networks::routes())
            .fallback(unknown_endpoint)
            .with_state(self.state.clone())
    }
}

/// docker's answer to a path it does not serve.
async fn unknown_endpoint(uri: Uri) -> ApiError {
    ApiError::not_found(format!("page not found: {}", uri.path()))
}

/// `/v1.41/containers/json` and `/containers/json` are the same endpoint.
fn strip_version(request: &mut Request) {
    let path = request.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return;
    };
    let Some(slash) = rest.find('/') else {
        return;
    };
    let version = &rest[..slash];
    let numeric = version
        .split('.')
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !numeric {
        return;
    }
    let stripped = match request.uri().query() {
        Some(q) => format!("{}?{q}", &rest[slash..]),
        None => rest[slash..].to_string(),
    };
    if let Ok(uri) = stripped.parse() {
        *request.uri_mut() = uri;
    }
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
