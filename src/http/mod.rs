//! The HTTP face of `herald run`: the feeds from the [`ServedFeeds`] with
//! conditional GET and precompressed bodies, an index page, health and
//! readiness probes, and `/metrics`.
//!
//! [`router`] builds the whole application apart from any socket, so tests
//! drive it with `oneshot`; [`serve`] runs it on a bound listener until
//! shutdown, through the accept loop of [`server`] (timeouts, connection
//! cap, client addresses behind proxies). Nothing here reads the disk:
//! only exact keys of the served snapshot are reachable. A handler that
//! panics answers 500 and is counted; the server goes on.

mod archive;
mod client_ip;
mod conditional;
mod conn;
mod error;
mod feed_files;
mod health;
mod index;
mod negotiate;
pub mod server;
mod subscribe;
mod webhooks;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::base::metrics::Metrics;
use crate::base::panic;
use crate::base::ready::Readiness;
use crate::base::served::{FeedFile, ServedFeeds};
use crate::base::shutdown::{Shutdown, ShutdownSignal};
use crate::config::Config;
use crate::store::Counts;

pub use client_ip::{ClientAddr, Proxies};
pub use error::ApiError;
pub use server::Edge;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub served: Arc<ServedFeeds>,
    pub metrics: Arc<Metrics>,
    /// What `/readyz` says.
    pub ready: Arc<Readiness>,
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
    /// Subscribers, runs and deliveries by state, counted at each scrape of
    /// `/metrics`.
    pub counts: Option<Arc<dyn Counts>>,
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
    /// When `/metrics` last counted the store.
    counted: health::Counted,
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
            counted: health::Counted::default(),
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
/// `config.feeds_base_url()`, `/healthz`, `/readyz` and (unless
/// `server.metrics_listen` moves it) `/metrics` at the root. Every
/// response is counted in `state.metrics`.
pub fn router(state: AppState) -> Router {
    app(state).router
}

/// What a server serves: a router, and optionally the feed requests it
/// answers ahead of it ([`FeedsFront`](feed_files::FeedsFront)).
pub struct App {
    pub(crate) router: Router,
    pub(crate) feeds: Option<feed_files::FeedsFront>,
}

impl From<Router> for App {
    fn from(router: Router) -> App {
        App {
            router,
            feeds: None,
        }
    }
}

/// [`router`], with its feed requests answered by the server ahead of it.
pub fn app(state: AppState) -> App {
    let timeout = state.config.server.request_timeout.0;
    let metrics_here = state.config.server.metrics_listen.is_none();
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
    let mut app = Router::new()
        .merge(pages.with_state(()))
        .merge(archive.with_state(()))
        .merge(hooks.with_state(()))
        .route(HEALTHZ, get(health::healthz))
        .route(READYZ, get(health::readyz));
    if metrics_here {
        app = app.route(METRICS, get(health::metrics));
    }
    let app = app
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(feed_files::dispatch);
    let router = harden(app, &ctx, timeout)
        // Outermost: feeds are answered before all of the above.
        .layer(feed_files::FeedsFirstLayer(Arc::clone(&ctx)))
        .with_state(Arc::clone(&ctx));
    App {
        router,
        feeds: Some(feed_files::FeedsFront(ctx)),
    }
}

/// `/metrics` alone, for `server.metrics_listen`.
pub fn metrics_router(state: AppState) -> Router {
    let timeout = state.config.server.request_timeout.0;
    let ctx = Arc::new(Ctx::new(state));
    let app = Router::new()
        .route(METRICS, get(health::metrics))
        .method_not_allowed_fallback(error::method_not_allowed)
        .fallback(|| async { ApiError::NotFound });
    harden(app, &ctx, timeout).with_state(ctx)
}

/// The layers every response goes through, innermost first: a panic
/// becomes a 500, a handler that overruns a 503, both are traced, and the
/// response is counted.
fn harden(routes: Router<Arc<Ctx>>, ctx: &Arc<Ctx>, timeout: Duration) -> Router<Arc<Ctx>> {
    let metrics = Arc::clone(&ctx.state.metrics);
    let ctx = Arc::clone(ctx);
    routes
        .layer(CatchPanicLayer::custom(
            move |payload: Box<dyn Any + Send>| {
                metrics.panicked("http");
                tracing::error!("a request handler panicked: {}", panic::message(&*payload));
                ApiError::Internal(anyhow::anyhow!("the handler panicked")).into_response()
            },
        ))
        // A handler that overruns is the server's fault, hence 503 and
        // not 408 (which blames the client).
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        // 5xx here are timeouts and `/readyz` before the first build;
        // internal errors log themselves at error level (see `ApiError`).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let client = req.extensions().get::<ClientAddr>().map(|c| c.ip);
                    tracing::debug_span!(
                        "request",
                        method = %req.method(),
                        uri = %req.uri(),
                        client = tracing::field::debug(client),
                    )
                })
                .on_failure(DefaultOnFailure::new().level(Level::WARN)),
        )
        // Outside these, so that timeouts and panics are counted too.
        .layer(middleware::from_fn_with_state(
            ctx.clone(),
            resolve_and_count,
        ))
}

/// The answer to a request whose handler panicked: logged, counted, 500.
fn panicked(metrics: &Metrics, payload: Box<dyn Any + Send>) -> Response {
    metrics.panicked("http");
    tracing::error!("a request handler panicked: {}", panic::message(&*payload));
    ApiError::Internal(anyhow::anyhow!("the handler panicked")).into_response()
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
/// flight finish for at most `grace`, and returns. The server's limits are
/// the defaults of `[server]`; `herald run` uses [`server::run`] with its
/// own.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: ShutdownSignal,
    grace: Duration,
) -> anyhow::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving HTTP");
    }
    let local = Shutdown::new();
    let server = server::run(
        listener,
        router,
        Edge::default(),
        Arc::new(Metrics::new()),
        local.signal(),
    );
    tokio::pin!(server);
    let mut outer = shutdown;
    tokio::select! {
        res = &mut server => return res.context("HTTP server failed"),
        () = outer.wait() => local.trigger(),
    }
    tokio::select! {
        res = &mut server => {
            tracing::info!("HTTP server stopped");
            return res.context("HTTP server failed");
        }
        () = tokio::time::sleep(grace) => {}
        () = outer.abandoned() => {}
    }
    tracing::warn!(
        grace_ms = grace.as_millis() as u64,
        "requests still in flight when the shutdown grace period ended; not waiting for them"
    );
    local.abandon();
    server.await.context("HTTP server failed")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layers of every herald router around one handler that panics
    /// and one that does not.
    fn panicking_app(metrics: Arc<Metrics>) -> Router {
        let text = "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/\"\nauthor = { name = \"A\" }\n";
        let state = AppState {
            config: Arc::new(Config::parse(text).unwrap()),
            served: Arc::new(ServedFeeds::new()),
            metrics,
            ready: Arc::new(Readiness::ready()),
            templates: Arc::new(crate::templates::Templates::load(None).unwrap()),
            subscriptions: None,
            store: None,
            webhooks: None,
            counts: None,
        };
        let routes = Router::new()
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("a handler bug");
                    }
                    "unreachable"
                }),
            )
            .route(HEALTHZ, get(health::healthz));
        let ctx = Arc::new(Ctx::new(state));
        harden(routes, &ctx, Duration::from_secs(5)).with_state(ctx)
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_connection_carries_on() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let metrics = Arc::new(Metrics::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let server = tokio::spawn(serve(
            listener,
            panicking_app(Arc::clone(&metrics)),
            shutdown.signal(),
            Duration::from_secs(1),
        ));
        // Both requests on one connection, the second after the panic.
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(
            b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        let statuses: Vec<&str> = answer
            .lines()
            .filter(|l| l.starts_with("HTTP/1.1 "))
            .collect();
        assert_eq!(
            statuses,
            ["HTTP/1.1 500 Internal Server Error", "HTTP/1.1 200 OK"],
            "{answer}"
        );
        assert!(!answer.contains("a handler bug"), "internals stay inside");
        assert_eq!(metrics.panics("http"), 1);
        assert_eq!(metrics.requests("not_found", 500), 1);
        shutdown.trigger();
        server.await.unwrap().unwrap();
    }
}
