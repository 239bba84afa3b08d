//! The HTTP face of `herald run`: the feeds from the [`ServedFeeds`] with
//! conditional GET and precompressed bodies, an index page, health and
//! readiness probes, and `/metrics`.
//!
//! [`router`] builds the whole application apart from any socket, so tests
//! drive it with `oneshot`; [`serve`] runs it on a bound listener until
//! shutdown. Nothing here reads the disk: only exact keys of the served snapshot are
//! reachable.

mod archive;
mod conditional;
mod error;
mod feed_files;
mod health;
mod index;
mod negotiate;
mod subscribe;
mod webhooks;

use std::future::IntoFuture;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::base::metrics::Metrics;
use crate::base::served::{FeedFile, ServedFeeds};
use crate::base::shutdown::ShutdownSignal;
use crate::config::Config;

pub use error::ApiError;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub served: Arc<ServedFeeds>,
    pub metrics: Arc<Metrics>,
    /// true once the first build finished
    pub ready: Arc<AtomicBool>,
    /// Page templates (the feeds index; the subscription pages use those
    /// of `subscriptions`, the same set).
    pub templates: Arc<crate::templates::Templates>,
    /// The subscription pages, when subscribers are enabled.
    pub subscriptions: Option<Arc<crate::subscribers::optin::Subscriptions>>,
    /// The store, for the web archive (`/archive/…`).
    pub store: Option<Arc<dyn crate::store::Store>>,
    /// The bounce and complaint webhooks (`/webhooks/…`), when any is
    /// configured.
    pub webhooks: Option<Arc<crate::subscribers::bounces::webhooks::Webhooks>>,
}

const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";
const METRICS: &str = "/metrics";

/// [`AppState`] plus what is worked out from the config once, not per
/// request.
struct Ctx {
    state: AppState,
    /// Path of the feeds base URL (`/`, `/feeds/`): always ends in `/`.
    base_path: String,
    /// `server.cache_control` as a header; `None` if it cannot be one.
    cache_control: Option<HeaderValue>,
}

/// The route label of a response in `/metrics`: a fixed set, never the
/// raw path, so that scanners cannot grow the label set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Feed,
    Index,
    Healthz,
    Readyz,
    Metrics,
    Subscribe,
    Confirm,
    Unsubscribe,
    Preferences,
    Archive,
    Webhook,
    NotFound,
}

impl Route {
    fn label(self) -> &'static str {
        match self {
            Route::Feed => "feed",
            Route::Index => "index",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::Subscribe => "subscribe",
            Route::Confirm => "confirm",
            Route::Unsubscribe => "unsubscribe",
            Route::Preferences => "preferences",
            Route::Archive => "archive",
            Route::Webhook => "webhook",
            Route::NotFound => "not_found",
        }
    }
}

/// What a path under the feeds base names, decided once per request.
#[derive(Clone)]
enum Target {
    Index,
    /// The file as it was when the request arrived; a publish during the
    /// response does not change what this request sends.
    Feed(Arc<FeedFile>),
    NotFound,
}

impl Target {
    fn route(&self) -> Route {
        match self {
            Target::Index => Route::Index,
            Target::Feed(_) => Route::Feed,
            Target::NotFound => Route::NotFound,
        }
    }
}

impl Ctx {
    fn new(state: AppState) -> Ctx {
        let base_path = state.config.feeds_base_url().path().to_string();
        let cache_control = match HeaderValue::from_str(&state.config.server.cache_control) {
            Ok(v) => Some(v),
            Err(_) => {
                tracing::error!(
                    value = %state.config.server.cache_control,
                    "server.cache_control is not a valid header value; feeds are sent without Cache-Control"
                );
                None
            }
        };
        Ctx {
            state,
            base_path,
            cache_control,
        }
    }

    /// Maps a raw request path (still percent-encoded) to what it names.
    fn resolve(&self, raw_path: &str) -> Target {
        let Some(rest) = raw_path.strip_prefix(self.base_path.as_str()) else {
            return Target::NotFound;
        };
        if rest.is_empty() {
            return Target::Index;
        }
        feed_files::store_key(rest)
            .and_then(|key| self.state.served.get(&key))
            .map_or(Target::NotFound, Target::Feed)
    }
}

/// The whole application: feeds and the index under the path of
/// `config.feeds_base_url()`, `/healthz`, `/readyz` and `/metrics` at the
/// root. Every response is counted in `state.metrics`.
pub fn router(state: AppState) -> Router {
    let timeout = state.config.server.request_timeout.0;
    let pages = match &state.subscriptions {
        Some(subs) => subscribe::routes(Arc::clone(subs)),
        None => Router::new(),
    };
    let archive = match &state.store {
        Some(store) => archive::routes(
            Arc::clone(&state.config),
            Arc::clone(&state.templates),
            Arc::clone(store),
        ),
        None => Router::new(),
    };
    let hooks = match &state.webhooks {
        Some(w) => webhooks::routes(
            Arc::clone(w),
            state.config.webhooks.max_body_size.0 as usize,
        ),
        None => Router::new(),
    };
    let ctx = Arc::new(Ctx::new(state));
    Router::new()
        .merge(pages.with_state(()))
        .merge(archive.with_state(()))
        .merge(hooks.with_state(()))
        .route(HEALTHZ, get(health::healthz))
        .route(READYZ, get(health::readyz))
        .route(METRICS, get(health::metrics))
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(feed_files::dispatch)
        // A handler that overruns is the server's fault, hence 503 and
        // not 408 (which blames the client).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        // 5xx here are timeouts and `/readyz` before the first build;
        // internal errors log themselves at error level (see `ApiError`).
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::WARN)))
        // Outermost, so that timeouts are counted too.
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            resolve_and_count,
        ))
        .with_state(ctx)
}

/// Decides the route once, hands a feed request its [`Target`], and counts
/// the response under the route's label.
async fn resolve_and_count(State(ctx): State<Arc<Ctx>>, mut req: Request, next: Next) -> Response {
    let route = match req
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
    {
        Some(HEALTHZ) => Route::Healthz,
        Some(READYZ) => Route::Readyz,
        Some(METRICS) => Route::Metrics,
        Some(subscribe::SUBSCRIBE) => Route::Subscribe,
        Some(subscribe::CONFIRM) => Route::Confirm,
        Some(subscribe::UNSUBSCRIBE) => Route::Unsubscribe,
        Some(subscribe::PREFERENCES) => Route::Preferences,
        Some(p) if p.starts_with(archive::PREFIX) => Route::Archive,
        Some(p) if p.starts_with(webhooks::PREFIX) => Route::Webhook,
        _ => {
            let target = ctx.resolve(req.uri().path());
            let route = target.route();
            req.extensions_mut().insert(target);
            route
        }
    };
    let res = next.run(req).await;
    ctx.state
        .metrics
        .count_request(route.label(), res.status().as_u16());
    res
}

/// Serves until `shutdown` fires, then stops accepting, lets requests in
/// flight finish for at most `grace`, and returns.
///
/// Connections still open after `grace` are not waited for; they end when
/// the runtime does.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: ShutdownSignal,
    grace: Duration,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving HTTP");
    }
    let mut stop = shutdown.clone();
    // Connection info gives the subscribe form the client's address for
    // its rate limit.
    // Feeds are written in one go; do not let Nagle hold back the last
    // segment of a response.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.wait().await })
    .into_future();
    tokio::pin!(server);

    let mut signal = shutdown;
    tokio::select! {
        res = &mut server => return res.context("HTTP server failed"),
        () = signal.wait() => {}
    }
    match tokio::time::timeout(grace, server).await {
        Ok(res) => {
            tracing::info!("HTTP server stopped");
            res.context("HTTP server failed")
        }
        Err(_) => {
            tracing::warn!(
                grace_ms = grace.as_millis() as u64,
                "requests still in flight when the shutdown grace period ended; not waiting for them"
            );
            Ok(())
        }
    }
}
