//! The accept loop: hyper's HTTP/1.1 connections on tokio sockets, with
//! the limits an internet-facing server needs.
//!
//! Why not `axum::serve`: as of axum 0.8.9 it gives hyper no timer (so no
//! header timeout at all), has no cap on connections and no idle timeout,
//! and its graceful shutdown waits for every connection however long it
//! takes. Newer axum sets the timer, but hyper's header timer also runs
//! while a kept-alive connection is idle, so an idle limit longer than
//! the header limit (needed behind proxies that keep upstream connections
//! for 60 s) cannot be had from it. The timeouts here are therefore kept
//! by one reaper task per server from the state in [`super::conn`], a few
//! times per header timeout. It replaced a timer per connection, whose
//! futures every connection task polled again at each wake-up: with it the
//! 304 path cost herald 8.9 us of CPU per request against 8.3 us for
//! `axum::serve` (scripts/bench-http.sh, same machine, same hour).
//!
//! - a request head must arrive within `server.header_read_timeout`, an
//!   idle connection is closed after `server.keepalive_timeout`;
//! - at most `server.max_connections` are served at once; at the cap the
//!   connection that has waited longest for a request is closed to make
//!   room (so a flood of idle or slow clients cannot lock others out), and
//!   when every one is busy, new ones wait in the listen backlog;
//! - on shutdown: no more accepts, idle connections close at once, the
//!   others finish their response and close; whatever is still open when
//!   the shutdown is abandoned is dropped.
//!
//! HTTP/1.1 only: readers and reverse proxies speak it to an origin, and
//! HTTP/2 would need its own slow-client defences.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use futures_util::future::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::{AbortOnDropHandle, TaskTracker};
use tower_service::Service;

use super::client_ip::Proxies;
use super::conn::{Command, ConnState, Counted, Epoch, InService, Limits, Registry, Tracked};
use super::feed_files::FeedsFront;
use super::App;
use crate::base::metrics::{CloseReason, Metrics};
use crate::base::runtime::RuntimeThread;
use crate::base::shutdown::ShutdownSignal;

/// Largest request head (request line and headers) read; longer ones are
/// answered 431 by hyper. Browsers send 1-2 KB; nginx allows 4 x 8 KB.
const MAX_HEAD_BYTES: usize = 32 * 1024;
/// How long a new connection may wait for a slot at the cap before it is
/// closed unserved.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// How the server treats connections.
#[derive(Debug, Clone)]
pub struct Edge {
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub max_connections: u32,
    pub proxies: Proxies,
    /// Threads the connections are served on, each with a runtime of its
    /// own ([`RuntimeThread`]); 0: on the caller's runtime.
    pub threads: usize,
}

/// One serving thread per core.
fn threads_per_core() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

impl Edge {
    /// The limits `[server]` sets, with the connection cap worked out by
    /// the caller (it depends on the open-file limit).
    pub fn from_config(config: &crate::config::Config, max_connections: u32) -> Edge {
        let s = &config.server;
        Edge {
            header_read_timeout: s.header_read_timeout.0,
            keepalive_timeout: s.keepalive_timeout.0,
            max_connections,
            proxies: Proxies::new(&s.trusted_proxies, s.client_ip_header),
            threads: threads_per_core(),
        }
    }
}

impl Default for Edge {
    /// The defaults of `[server]`, the cap as `"auto"` makes it for 1024
    /// open files.
    fn default() -> Edge {
        let s = crate::config::ServerConfig::default();
        Edge {
            header_read_timeout: s.header_read_timeout.0,
            keepalive_timeout: s.keepalive_timeout.0,
            max_connections: s.max_connections.resolve(1024),
            proxies: Proxies::new(&s.trusted_proxies, s.client_ip_header),
            threads: threads_per_core(),
        }
    }
}

/// What every connection task shares.
struct Shared {
    router: Router,
    /// Feed requests, answered ahead of the router.
    feeds: Option<FeedsFront>,
    limits: Limits,
    proxies: Proxies,
    metrics: Arc<Metrics>,
    registry: Registry,
    epoch: Epoch,
    http: hyper::server::conn::http1::Builder,
}

/// Serves `router` on `listener` until `shutdown` stops it, then drains:
/// returns once every connection has closed, or when the shutdown is
/// abandoned (connections still open are then dropped).
pub async fn run(
    listener: TcpListener,
    app: impl Into<App>,
    edge: Edge,
    metrics: Arc<Metrics>,
    shutdown: ShutdownSignal,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.max_buf_size(MAX_HEAD_BYTES)
        // Feeds are written in one go; Nagle would hold back the last
        // segment (the socket is TCP_NODELAY too).
        .writev(true)
        .half_close(false);
    let app = app.into();
    let shared = Arc::new(Shared {
        router: app.router,
        feeds: app.feeds,
        limits: Limits {
            header_read: edge.header_read_timeout,
            keepalive: edge.keepalive_timeout,
        },
        proxies: edge.proxies,
        metrics,
        registry: Registry::default(),
        epoch: Epoch::new(),
        http,
    });
    let slots = Arc::new(Semaphore::new(edge.max_connections.max(1) as usize));
    let tracker = TaskTracker::new();
    // Ends with the server, whichever way it ends.
    let _reaper = AbortOnDropHandle::new(tokio::spawn(reap(Arc::clone(&shared), shutdown.clone())));
    let threads = serving_threads(edge.threads);
    accept(listener, threads, &shared, &slots, &tracker, &shutdown).await;
    tracker.close();
    // The reaper tells every connection to drain, and at the abandon
    // point to close; they end on their own.
    tracker.wait().await;
    Ok(())
}

/// Accepts connections until `shutdown` and hands each to a serving
/// thread in turn (or serves it here, without them); then the listening
/// socket closes, so new clients are refused instead of queueing behind a
/// server that is going away.
///
/// Accepting here and handing over costs two `epoll_ctl` calls per
/// connection. Accepting on every serving thread instead (each with a
/// descriptor of the socket) was tried: whichever thread woke first took
/// nearly all of wrk's 64 connections, and the 304 path fell to 81% of
/// nginx's rate with one core idle.
async fn accept(
    listener: TcpListener,
    threads: &[RuntimeThread],
    shared: &Arc<Shared>,
    slots: &Arc<Semaphore>,
    tracker: &TaskTracker,
    shutdown: &ShutdownSignal,
) {
    let mut turn = 0usize;
    let mut stop = shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = stop.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let Some(permit) = slot(slots, shared, &mut stop).await else {
            shared.metrics.count_close(CloseReason::Refused);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (shared, signal) = (Arc::clone(shared), shutdown.clone());
        if threads.is_empty() {
            tracker.spawn(serve_connection(shared, stream, peer, permit, signal));
            continue;
        }
        // The socket moves to the serving thread's own reactor.
        let stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(%peer, "cannot hand the connection over: {e}");
                continue;
            }
        };
        turn = (turn + 1) % threads.len();
        tracker.spawn_on(
            async move {
                match TcpStream::from_std(stream) {
                    Ok(stream) => serve_connection(shared, stream, peer, permit, signal).await,
                    Err(e) => tracing::debug!(%peer, "cannot serve the connection: {e}"),
                }
            },
            threads[turn].handle(),
        );
    }
}

/// The serving threads, started by the first server that wants them
/// (`count` of them, or as many as start) and kept for the life of the
/// process: a handler may open a connection there that a pool keeps (a
/// PostgreSQL or SMTP connection), and whoever takes it from the pool
/// later, even after the server has stopped, needs that runtime running.
/// An empty slice: serve on the caller's runtime.
///
/// Why threads of their own: on the multi-threaded runtime, the 304 path
/// cost 8.4 us of CPU per request against nginx's 7.2 (scripts/bench-http.sh),
/// about a sixth of it in threads waking each other; with a single-threaded
/// runtime per core, as nginx has a worker process per core, a connection
/// stays on one thread and a wake-up wakes only that thread.
fn serving_threads(count: usize) -> &'static [RuntimeThread] {
    static THREADS: OnceLock<Vec<RuntimeThread>> = OnceLock::new();
    if count == 0 {
        return &[];
    }
    THREADS.get_or_init(|| {
        let mut threads = Vec::with_capacity(count);
        for i in 0..count {
            match RuntimeThread::start(&format!("herald-http-{i}")) {
                Ok(t) => threads.push(t),
                Err(e) => {
                    tracing::warn!("cannot start HTTP serving thread {i} ({e}); serving on fewer");
                    break;
                }
            }
        }
        threads
    })
}

/// How often the reaper looks: a few times per header timeout, so that a
/// connection closes at most a quarter of it late.
fn reap_every(limits: Limits) -> Duration {
    (limits.header_read.min(limits.keepalive) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Closes connections past their deadlines, and passes the shutdown on to
/// every connection: drain when it is stopped, close when it is abandoned.
async fn reap(shared: Arc<Shared>, shutdown: ShutdownSignal) {
    let mut tick = tokio::time::interval(reap_every(shared.limits));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = shutdown.clone();
    let mut draining = false;
    loop {
        tokio::select! {
            biased;
            () = shutdown.abandoned() => {
                shared.registry.tell_all(Command::Abandon);
                return;
            }
            () = stop.wait(), if !draining => {
                shared.registry.tell_all(Command::Drain);
                draining = true;
            }
            _ = tick.tick() => {
                shared.registry.reap(shared.limits);
            }
        }
    }
}

/// A slot for the connection just accepted. At the cap, the connection
/// idle the longest is told to close, and its slot taken; `None` when no
/// slot frees within [`SLOT_WAIT`] (every connection is busy) or on
/// shutdown.
async fn slot(
    slots: &Arc<Semaphore>,
    shared: &Shared,
    stop: &mut ShutdownSignal,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
        return Some(permit);
    }
    shared.registry.evict_longest_idle();
    tokio::select! {
        permit = Arc::clone(slots).acquire_owned() => permit.ok(),
        () = tokio::time::sleep(SLOT_WAIT) => None,
        () = stop.wait() => None,
    }
}

/// `accept` fails when the process is out of file descriptors (EMFILE)
/// or the system is (ENFILE): connections wait in the backlog meanwhile.
/// Waiting a little keeps the loop from spinning on the same error.
async fn accept_failed(e: &std::io::Error) {
    tracing::warn!("cannot accept a connection: {e}");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    _permit: OwnedSemaphorePermit,
    shutdown: ShutdownSignal,
) {
    let state = Arc::new(ConnState::new(shared.epoch));
    let id = shared.registry.insert(Arc::clone(&state));
    shared.metrics.connection_opened();
    let service = PerConnection {
        shared: Arc::clone(&shared),
        state: Arc::clone(&state),
        peer,
    };
    let io = TokioIo::new(Tracked::new(stream, Arc::clone(&state)));
    let conn = shared.http.serve_connection(io, service);
    tokio::pin!(conn);

    // Accepted just as the server stopped: the reaper's word to drain may
    // have gone out before this connection was there to hear it.
    if shutdown.is_abandoned() {
        state.command(Command::Abandon);
    } else if shutdown.is_triggered() {
        state.command(Command::Drain);
    }
    let reason = loop {
        tokio::select! {
            biased;
            done = conn.as_mut() => break match done {
                Ok(()) => CloseReason::Done,
                Err(e) if e.is_incomplete_message() || e.is_canceled() => CloseReason::Done,
                Err(e) => {
                    tracing::debug!(%peer, "connection ended: {e}");
                    CloseReason::Error
                }
            },
            () = state.control.notified() => match state.take_command() {
                Command::None => {}
                // Idle connections close at once; a response in progress
                // finishes first, then the connection closes.
                Command::Drain => conn.as_mut().graceful_shutdown(),
                Command::HeaderTimeout => break CloseReason::HeaderTimeout,
                Command::IdleTimeout => break CloseReason::IdleTimeout,
                Command::Evict => break CloseReason::Evicted,
                Command::Abandon => break CloseReason::Shutdown,
            },
        }
    };
    // Dropping the connection closes the socket.
    shared.registry.remove(id);
    shared.metrics.connection_closed(reason);
}

/// The service of one connection: tags each request with its addresses and
/// marks it in service while it is.
#[derive(Clone)]
struct PerConnection {
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    peer: SocketAddr,
}

impl hyper::service::Service<hyper::Request<Incoming>> for PerConnection {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Counted<
        Either<
            Ready<Result<Self::Response, Infallible>>,
            <Router as Service<hyper::Request<Incoming>>>::Future,
        >,
    >;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        let guard = InService::enter(&self.state);
        if let Some(feeds) = &self.shared.feeds {
            if let Some(res) = feeds.answer(req.method(), req.uri(), req.headers()) {
                return Counted::new(Either::Left(ready(Ok(res))), guard);
            }
        }
        let client = self.shared.proxies.client(self.peer, req.headers());
        req.extensions_mut().insert(client);
        let mut router = self.shared.router.clone();
        Counted::new(Either::Right(router.call(req)), guard)
    }
}
