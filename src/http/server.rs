//! The accept loop: hyper's HTTP/1.1 connections on tokio sockets, with
//! the limits an internet-facing server needs.
//!
//! Why not `axum::serve`: as of axum 0.8.9 it gives hyper no timer (so no
//! header timeout at all), has no cap on connections and no idle timeout,
//! and its graceful shutdown waits for every connection however long it
//! takes. Newer axum sets the timer, but hyper's header timer also runs
//! while a kept-alive connection is idle, so an idle limit longer than
//! the header limit (needed behind proxies that keep upstream connections
//! for 60 s) cannot be had from it. The timeouts here are therefore timed
//! by each connection's own task from the state in [`super::conn`].
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
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;
use tower_service::Service;

use super::client_ip::Proxies;
use super::conn::{ConnState, Counted, Epoch, Expired, InService, Limits, Registry, Tracked};
use crate::base::metrics::{CloseReason, Metrics};
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
        }
    }
}

/// What every connection task shares.
struct Shared {
    router: Router,
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
    router: Router,
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
    let shared = Arc::new(Shared {
        router,
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
        let Some(permit) = slot(&slots, &shared, &mut stop).await else {
            shared.metrics.count_close(CloseReason::Refused);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tracker.spawn(serve_connection(
            Arc::clone(&shared),
            stream,
            peer,
            permit,
            shutdown.clone(),
        ));
    }
    // No more accepts: the listening socket closes now, so new clients are
    // refused instead of queueing behind a server that is going away.
    drop(listener);
    tracker.close();
    tokio::select! {
        () = tracker.wait() => {}
        () = shutdown.abandoned() => {
            // Every connection task ends itself on the same signal.
            tracker.wait().await;
        }
    }
    Ok(())
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

    let mut stop = shutdown.clone();
    let mut draining = false;
    let reason = loop {
        // Look again at least once per header timeout: a request head that
        // starts after this moment gets its own, earlier deadline, and the
        // next wake-up arms it.
        let soon = tokio::time::Instant::now() + shared.limits.header_read;
        let wake = match state.deadline(shared.limits) {
            Some((at, _)) => at.min(soon),
            None => soon,
        };
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
            () = shutdown.abandoned() => break CloseReason::Shutdown,
            () = stop.wait(), if !draining => {
                // Idle connections close at once; a response in progress
                // finishes first, then the connection closes.
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
            () = state.evict.notified() => break CloseReason::Evicted,
            () = tokio::time::sleep_until(wake) => {
                if let Some((at, why)) = state.deadline(shared.limits) {
                    if at <= tokio::time::Instant::now() {
                        break match why {
                            Expired::Header => CloseReason::HeaderTimeout,
                            Expired::Idle => CloseReason::IdleTimeout,
                        };
                    }
                }
            }
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
    type Future = Counted<<Router as Service<hyper::Request<Incoming>>>::Future>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        let guard = InService::enter(&self.state);
        let client = self.shared.proxies.client(self.peer, req.headers());
        req.extensions_mut().insert(client);
        let mut router = self.shared.router.clone();
        Counted::new(router.call(req), guard)
    }
}
