#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod archive;
mod attach;
mod commit;
mod containers;
mod error;
mod exec;
mod filters;
mod hijack;
mod images;
mod json;
mod networks;
mod socket;
mod stats;
mod stream;
mod system;
mod volumes;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::Request;
use axum::http::Uri;
use basic_engine::{Engine, EngineOptions};
use basic_registry::RegistryClientBuilder;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tower::ServiceExt as _;

pub use error::ApiError;
pub use exec::ExecCommand;
pub use socket::{SocketError, activation_fd_count, activation_socket, bind_socket, socket_path};
pub use system::security_options;

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
    /// The command line an exec runs as (see [`ExecCommand`]); without it, starting an
    /// exec is an error.
    pub exec: Option<ExecCommand>,
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
    execs: exec::Execs,
    /// Engines earlier requests opened, for the next ones: opening one (the store's
    /// database connection, which reads the whole schema) is CPU every request paid.
    engines: Mutex<Vec<Engine>>,
}

/// How many opened engines are kept (about as many as requests run at once).
const POOLED_ENGINES: usize = 8;

/// A request being answered: the service is not idle while one is (the count goes down
/// when its response body has been sent or dropped).
pub(crate) struct Busy(Arc<State>);

impl Busy {
    pub(crate) fn new(state: &Arc<State>) -> Self {
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
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let engine = state.take_engine()?;
            let result = f(&engine);
            state.give_back(engine);
            result
        })
        .await
        .map_err(|e| ApiError::internal(format!("the request's worker failed: {e}")))?
    }

    /// Runs `f` on an engine off the async threads without waiting for it: a stream's
    /// producer, which ends when its client goes away.
    pub fn spawn_engine(self: &Arc<Self>, f: impl FnOnce(&Engine) + Send + 'static) {
        let state = self.clone();
        tokio::task::spawn_blocking(move || match state.take_engine() {
            Ok(engine) => {
                f(&engine);
                state.give_back(engine);
            }
            Err(e) => tracing::warn!("opening the engine for a stream: {e}"),
        });
    }

    /// A pooled engine, or a newly opened one.
    fn take_engine(&self) -> Result<Engine, basic_engine::EngineError> {
        let pooled = self.engines.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(engine) => Ok(engine),
            None => Engine::open(self.options.engine.clone()),
        }
    }

    /// Keeps `engine` for a later request, unless its store was opened read-only (a full
    /// or read-only filesystem then): a later open sees whether that has changed.
    fn give_back(&self, engine: Engine) {
        if engine.store().read_only().is_some() {
            return;
        }
        let mut pool = self.engines.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOLED_ENGINES {
            pool.push(engine);
        }
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
                execs: exec::Execs::default(),
                engines: Mutex::new(Vec::new()),
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
        let app = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(axum::body::Body::new);
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
        let mut stop = std::pin::pin!(async move {
            tokio::select! {
                () = shutdown => {}
                () = idle_exit => {}
            }
        });
        // hyper's own HTTP/1 connections rather than axum::serve: a hijacked connection
        // (attach, exec) must come back as the unix socket itself, to be split and
        // watched for a hang-up, and axum's server wraps it in a private type.
        let (closing, closed) = tokio::sync::watch::channel(false);
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut stop => break,
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), app.clone())
                .with_upgrades();
            let mut closed = closed.clone();
            connections.spawn(async move {
                let mut connection = std::pin::pin!(connection);
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!("a connection ended: {e}");
                        }
                        return;
                    }
                    _ = closed.wait_for(|closing| *closing) => {}
                }
                // Stopping: the request in flight is answered, then the connection closes.
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            });
            // Connections that ended are reaped as others come.
            while connections.try_join_next().is_some() {}
        }
        let _ = closing.send(true);
        // Requests in flight are answered (a stream's client may keep reading: bounded).
        let _ = tokio::time::timeout(Duration::from_secs(10), connections.join_all()).await;
        Ok(())
    }

    fn router(&self) -> Router {
        Router::new()
            .merge(system::routes())
            .merge(containers::routes())
            .merge(attach::routes())
            .merge(exec::routes())
            .merge(archive::routes())
            .merge(volumes::routes())
            .merge(images::routes())
            .merge(commit::routes())
            .merge(networks::routes())
            .merge(stats::routes())
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
