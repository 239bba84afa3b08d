//! What the server knows of each open connection, for its timeouts and for
//! the connection cap: whether a request is being served, since when it
//! has been waiting, when bytes last moved. Kept in atomics that the
//! socket wrapper ([`Tracked`]) and the per-request service ([`Counted`])
//! update, and that one reaper task per server reads a few times per
//! header timeout ([`Registry::reap`]): no timer per connection, and a
//! connection's task polls one extra future per wake-up, its
//! [`ConnState::control`] notice.
//!
//! The timeouts, like nginx's: a new connection must send a whole request
//! head within `header_read_timeout`; between requests a connection may
//! sit idle for `keepalive_timeout`, and once the next head starts it must
//! finish within `header_read_timeout` again; a response no one reads
//! (nothing moving, nothing in service) counts as idle.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Milliseconds since the server's start, the unit of every timestamp
/// here: an atomic `u64` is all a timestamp then needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Epoch(Instant);

impl Epoch {
    pub(super) fn new() -> Epoch {
        Epoch(Instant::now())
    }

    pub(super) fn now_ms(self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }

    pub(super) fn instant(self, ms: u64) -> Instant {
        self.0 + Duration::from_millis(ms)
    }
}

/// The two limits a connection's task enforces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) header_read: Duration,
    pub(super) keepalive: Duration,
}

/// Why a connection is past its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    Header,
    Idle,
}

/// What a connection's task is told to do, weakest first: a stronger
/// command replaces a weaker one not yet acted on, never the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(super) enum Command {
    None = 0,
    /// Finish the response in progress, then close (shutdown).
    Drain = 1,
    /// Close now: past `header_read_timeout`.
    HeaderTimeout = 2,
    /// Close now: past `keepalive_timeout`.
    IdleTimeout = 3,
    /// Close now: make room at the cap.
    Evict = 4,
    /// Close now: the shutdown is abandoned.
    Abandon = 5,
}

impl Command {
    fn from_u8(n: u8) -> Command {
        match n {
            1 => Command::Drain,
            2 => Command::HeaderTimeout,
            3 => Command::IdleTimeout,
            4 => Command::Evict,
            5 => Command::Abandon,
            _ => Command::None,
        }
    }
}

/// `head_started` when no request head has begun.
const NO_HEAD: u64 = u64::MAX;

/// One connection's state.
#[derive(Debug)]
pub(super) struct ConnState {
    epoch: Epoch,
    /// Requests being served (the service future has not finished).
    in_flight: AtomicU32,
    /// Requests served so far: 0 means the first is still awaited.
    served: AtomicU32,
    /// Since when no request has been in service (the accept, or the end
    /// of the last request).
    waiting_since: AtomicU64,
    /// When the first byte of the next request head arrived.
    head_started: AtomicU64,
    /// When bytes last moved in either direction.
    last_io: AtomicU64,
    /// The strongest [`Command`] not yet taken.
    command: AtomicU8,
    /// Wakes the connection's task when a command is given.
    pub(super) control: Notify,
}

impl ConnState {
    pub(super) fn new(epoch: Epoch) -> ConnState {
        let now = epoch.now_ms();
        ConnState {
            epoch,
            in_flight: AtomicU32::new(0),
            served: AtomicU32::new(0),
            waiting_since: AtomicU64::new(now),
            head_started: AtomicU64::new(NO_HEAD),
            last_io: AtomicU64::new(now),
            command: AtomicU8::new(Command::None as u8),
            control: Notify::new(),
        }
    }

    /// Tells the connection's task to do `c` (unless told something
    /// stronger already).
    pub(super) fn command(&self, c: Command) {
        if self.command.fetch_max(c as u8, Relaxed) < c as u8 {
            self.control.notify_one();
        }
    }

    /// The command given, taken: the next call says `None` until another.
    pub(super) fn take_command(&self) -> Command {
        Command::from_u8(self.command.swap(Command::None as u8, Relaxed))
    }

    fn read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = self.epoch.now_ms();
        self.last_io.store(now, Relaxed);
        // Bytes while nothing is in service start the next request head
        // (bytes of a pipelined request arrive while one is in service
        // and are parsed at once after it).
        if self.in_flight.load(Relaxed) == 0 && self.head_started.load(Relaxed) == NO_HEAD {
            self.head_started.store(now, Relaxed);
        }
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            self.last_io.store(self.epoch.now_ms(), Relaxed);
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.head_started.store(NO_HEAD, Relaxed);
    }

    fn request_finished(&self) {
        self.served.fetch_add(1, Relaxed);
        self.waiting_since.store(self.epoch.now_ms(), Relaxed);
        self.in_flight.fetch_sub(1, Relaxed);
    }

    /// Waiting for a request (none in service), and since when; `None`
    /// while one is served.
    pub(super) fn idle_since(&self) -> Option<u64> {
        (self.in_flight.load(Relaxed) == 0).then(|| self.waiting_since.load(Relaxed))
    }

    /// When this connection is to be closed unless something happens
    /// first, and why; `None` while a request is in service (the request
    /// timeout bounds that).
    pub(super) fn deadline(&self, limits: Limits) -> Option<(Instant, Expired)> {
        if self.in_flight.load(Relaxed) > 0 {
            return None;
        }
        let ms = |d: Duration| d.as_millis() as u64;
        let head = self.head_started.load(Relaxed);
        let (at, why) = if self.served.load(Relaxed) == 0 {
            // The first request: its head is due from the accept.
            (
                self.waiting_since.load(Relaxed) + ms(limits.header_read),
                Expired::Header,
            )
        } else if head != NO_HEAD {
            (head + ms(limits.header_read), Expired::Header)
        } else {
            let since = self
                .waiting_since
                .load(Relaxed)
                .max(self.last_io.load(Relaxed));
            (since + ms(limits.keepalive), Expired::Idle)
        };
        Some((self.epoch.instant(at), why))
    }
}

/// Every open connection, so that at the cap the one idle the longest can
/// be told to make room. Touched once per connection, never per request.
#[derive(Debug, Default)]
pub(super) struct Registry {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    pub(super) fn insert(&self, state: Arc<ConnState>) -> u64 {
        let id = self.next.fetch_add(1, Relaxed);
        if let Ok(mut open) = self.open.lock() {
            open.insert(id, state);
        }
        id
    }

    pub(super) fn remove(&self, id: u64) {
        if let Ok(mut open) = self.open.lock() {
            open.remove(&id);
        }
    }

    /// Tells the connection that has waited longest for a request to
    /// close; `false` when every connection is serving one. A linear scan:
    /// it runs only at the cap, and a few thousand entries take
    /// microseconds.
    pub(super) fn evict_longest_idle(&self) -> bool {
        let Ok(open) = self.open.lock() else {
            return false;
        };
        let victim = open
            .values()
            .filter_map(|c| c.idle_since().map(|t| (t, c)))
            .min_by_key(|(t, _)| *t);
        match victim {
            Some((_, c)) => {
                c.command(Command::Evict);
                true
            }
            None => false,
        }
    }

    /// Tells every connection past its deadline to close; how many. About
    /// 5 ns a connection: 16,384 connections take under 0.1 ms per pass.
    pub(super) fn reap(&self, limits: Limits) -> usize {
        let now = Instant::now();
        let Ok(open) = self.open.lock() else {
            return 0;
        };
        let mut closed = 0;
        for c in open.values() {
            if let Some((at, why)) = c.deadline(limits) {
                if at <= now {
                    c.command(match why {
                        Expired::Header => Command::HeaderTimeout,
                        Expired::Idle => Command::IdleTimeout,
                    });
                    closed += 1;
                }
            }
        }
        closed
    }

    /// Gives every open connection `c`.
    pub(super) fn tell_all(&self, c: Command) {
        if let Ok(open) = self.open.lock() {
            for conn in open.values() {
                conn.command(c);
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A socket that reports its traffic to its [`ConnState`].
    pub(super) struct Tracked<S> {
        #[pin]
        inner: S,
        state: Arc<ConnState>,
    }
}

impl<S> Tracked<S> {
    pub(super) fn new(inner: S, state: Arc<ConnState>) -> Tracked<S> {
        Tracked { inner, state }
    }
}

impl<S: AsyncRead> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let res = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            this.state.read(buf.filled().len() - before);
        }
        res
    }
}

impl<S: AsyncWrite> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            this.state.wrote(n);
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let res = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = res {
            this.state.wrote(n);
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Marks a request in service for as long as it lives (also when its
/// future is dropped half-way).
pub(super) struct InService(Arc<ConnState>);

impl InService {
    pub(super) fn enter(state: &Arc<ConnState>) -> InService {
        state.request_started();
        InService(Arc::clone(state))
    }
}

impl Drop for InService {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

pin_project_lite::pin_project! {
    /// A response future that holds its request [`InService`].
    pub(super) struct Counted<F> {
        #[pin]
        inner: F,
        guard: Option<InService>,
    }
}

impl<F> Counted<F> {
    pub(super) fn new(inner: F, guard: InService) -> Counted<F> {
        Counted {
            inner,
            guard: Some(guard),
        }
    }
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let out = this.inner.poll(cx);
        if out.is_ready() {
            // The response is handed to hyper: from here on the
            // connection waits for the client (to read it, or to ask
            // again), which the idle rule covers.
            this.guard.take();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        header_read: Duration::from_secs(10),
        keepalive: Duration::from_secs(75),
    };

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_owes_its_first_head_within_the_header_timeout() {
        let c = Arc::new(ConnState::new(Epoch::new()));
        let start = Instant::now();
        let (at, why) = c.deadline(LIMITS).unwrap();
        assert_eq!(
            (at - start, why),
            (Duration::from_secs(10), Expired::Header)
        );
        // Trickling bytes does not move that deadline.
        tokio::time::advance(Duration::from_secs(3)).await;
        c.read(1);
        assert_eq!(
            c.deadline(LIMITS).unwrap().0 - start,
            Duration::from_secs(10)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_idle_then_the_next_head_is_timed_from_its_first_byte() {
        let epoch = Epoch::new();
        let start = Instant::now();
        let c = Arc::new(ConnState::new(epoch));
        let guard = InService::enter(&c);
        assert!(c.deadline(LIMITS).is_none(), "nothing while serving");
        tokio::time::advance(Duration::from_secs(2)).await;
        drop(guard);
        let (at, why) = c.deadline(LIMITS).unwrap();
        assert_eq!((at - start, why), (Duration::from_secs(77), Expired::Idle));
        tokio::time::advance(Duration::from_secs(30)).await;
        c.read(5);
        let (at, why) = c.deadline(LIMITS).unwrap();
        assert_eq!(
            (at - start, why),
            (Duration::from_secs(42), Expired::Header)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_connection_waiting_longest_is_told_to_go() {
        let epoch = Epoch::new();
        let reg = Registry::default();
        let old = Arc::new(ConnState::new(epoch));
        reg.insert(Arc::clone(&old));
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = Arc::new(ConnState::new(epoch));
        let _serving = InService::enter(&busy);
        reg.insert(Arc::clone(&busy));
        let newer = Arc::new(ConnState::new(epoch));
        let id = reg.insert(Arc::clone(&newer));
        assert!(reg.evict_longest_idle());
        // The oldest idle one got the notice (a stored permit).
        tokio::time::timeout(Duration::from_millis(1), old.control.notified())
            .await
            .expect("the oldest idle connection is evicted");
        assert_eq!(old.take_command(), Command::Evict);
        assert_eq!(newer.take_command(), Command::None);
        reg.remove(id);
    }

    #[tokio::test(start_paused = true)]
    async fn the_reaper_closes_what_is_past_its_deadline_and_commands_only_get_stronger() {
        let epoch = Epoch::new();
        let reg = Registry::default();
        let slow = Arc::new(ConnState::new(epoch));
        reg.insert(Arc::clone(&slow));
        let busy = Arc::new(ConnState::new(epoch));
        let _serving = InService::enter(&busy);
        reg.insert(Arc::clone(&busy));
        assert_eq!(reg.reap(LIMITS), 0);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(reg.reap(LIMITS), 1, "the head is late; the busy one is not");
        reg.tell_all(Command::Drain);
        assert_eq!(slow.take_command(), Command::HeaderTimeout, "not weakened");
        assert_eq!(busy.take_command(), Command::Drain);
        assert_eq!(busy.take_command(), Command::None);
    }
}
