//! WebSub publishing: after new feed bytes are live, tell every configured
//! hub which topics changed, retrying with backoff in background tasks.
//! A hub that fails is logged and counted, never fatal.

use std::collections::hash_map::RandomState;
use std::error::Error as _;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::task::{JoinHandle, JoinSet};
use url::Url;

use crate::base::metrics::Metrics;
use crate::base::shutdown::ShutdownSignal;

const USER_AGENT: &str = concat!("herald/", env!("CARGO_PKG_VERSION"));

/// How hard to try one hub with one topic.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Requests made in all, the first included (0 is taken as 1).
    pub attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub first_backoff: Duration,
    /// No wait is longer than this, before jitter.
    pub max_backoff: Duration,
    /// For one request, from connecting to the end of the answer.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    /// 6 attempts with waits of 1, 2, 4, 8 and 16 s in between (each cut to
    /// between half and all of that by jitter; never over 5 min), 10 s for
    /// each request.
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0 for the wait after the first
    /// failure), before jitter: `first_backoff * 2^retry`, at most
    /// `max_backoff`.
    pub fn backoff(&self, retry: u32) -> Duration {
        1u32.checked_shl(retry)
            .and_then(|factor| self.first_backoff.checked_mul(factor))
            .map_or(self.max_backoff, |d| d.min(self.max_backoff))
    }
}

/// Scales `base` into `[0.5, 1.0] × base`; `unit` in `[0, 1]` picks where.
/// Jitter keeps many hosts that failed together from retrying together.
fn jittered(base: Duration, unit: f64) -> Duration {
    let factor = 0.5 + 0.5 * unit.clamp(0.0, 1.0);
    Duration::try_from_secs_f64(base.as_secs_f64() * factor)
        .unwrap_or(base)
        .min(base)
}

/// A number in `[0, 1)`, different on each call. Jitter needs no better
/// randomness than the per-call keys std's hasher already draws.
fn random_unit() -> f64 {
    let bits = RandomState::new().build_hasher().finish() >> 11;
    bits as f64 / (1u64 << 53) as f64
}

/// Notifies WebSub hubs. Cheap to share behind an `Arc`; each
/// [`WebSub::notify`] call starts its own deliveries.
pub struct WebSub {
    hubs: Vec<Url>,
    /// `None` only when the HTTP client could not be built (no TLS
    /// backend); every ping then fails and is counted instead of panicking.
    client: Option<reqwest::Client>,
    metrics: Arc<Metrics>,
    shutdown: ShutdownSignal,
    policy: RetryPolicy,
}

impl fmt::Debug for WebSub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSub")
            .field("hubs", &self.hubs)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl WebSub {
    /// Hubs are reached over TLS trusting the system's CA certificates
    /// (see [`WebSub::with_ca_file`] for more).
    pub fn new(
        hubs: Vec<Url>,
        metrics: Arc<Metrics>,
        shutdown: ShutdownSignal,
        policy: RetryPolicy,
    ) -> WebSub {
        let client = client(&policy, &[]);
        WebSub {
            hubs,
            client,
            metrics,
            shutdown,
            policy,
        }
    }

    /// Also trusts the CA certificates in the PEM file at `path`
    /// (`websub.ca_file`): hubs behind a company CA.
    pub fn with_ca_file(mut self, path: &Path) -> anyhow::Result<WebSub> {
        let pem = std::fs::read(path).with_context(|| {
            format!(
                "config key `websub.ca_file`: cannot read {}",
                path.display()
            )
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            anyhow::anyhow!(
                "config key `websub.ca_file`: {} holds no PEM certificates: {}",
                path.display(),
                chain(&e)
            )
        })?;
        if certs.is_empty() {
            anyhow::bail!(
                "config key `websub.ca_file`: {} holds no PEM certificates",
                path.display()
            );
        }
        self.client = client(&self.policy, &certs);
        Ok(self)
    }

    /// Whether any hub is configured.
    pub fn is_enabled(&self) -> bool {
        !self.hubs.is_empty()
    }

    /// Tells every hub that each of `topics` changed: one request per topic
    /// per hub, each retried on its own. Returns at once.
    ///
    /// The handle completes when every delivery of this call has ended:
    /// delivered, failed for good, or abandoned at shutdown. Once the
    /// shutdown signal fires, waits between retries and requests in flight
    /// are dropped, nothing more is sent, and the handle completes promptly,
    /// so the daemon can await it on its way out. Dropping the handle lets
    /// the deliveries go on in the background; aborting it aborts them.
    ///
    /// Each ping (one hub, one topic) adds one to `websub_pings_ok` or,
    /// after its last attempt, to `websub_pings_failed` with a warning
    /// naming hub, topic and last error; one abandoned at shutdown is
    /// logged and counted in neither. Nothing here panics or returns an
    /// error. Must be called from within a Tokio runtime.
    pub fn notify(&self, topics: Vec<Url>) -> JoinHandle<()> {
        let mut set = JoinSet::new();
        for hub in &self.hubs {
            for topic in &topics {
                let delivery = Delivery {
                    hub: hub.clone(),
                    topic: topic.clone(),
                    client: self.client.clone(),
                    metrics: Arc::clone(&self.metrics),
                    shutdown: self.shutdown.clone(),
                    policy: self.policy,
                };
                set.spawn(delivery.run());
            }
        }
        let metrics = Arc::clone(&self.metrics);
        tokio::spawn(async move {
            while let Some(done) = set.join_next().await {
                if let Err(e) = done {
                    if e.is_panic() {
                        metrics.panicked("websub");
                    }
                    tracing::error!(error = %e, "a WebSub delivery task ended abnormally");
                }
            }
        })
    }
}

/// The HTTP client for hubs: the system's roots plus `extra`. `None` only
/// when no client can be built (no TLS backend); every ping then fails
/// and is counted instead of panicking.
fn client(policy: &RetryPolicy, extra: &[reqwest::Certificate]) -> Option<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .timeout(policy.request_timeout);
    for cert in extra {
        builder = builder.add_root_certificate(cert.clone());
    }
    builder
        .build()
        .map_err(|e| {
            tracing::error!(
                error = %chain(&e),
                "cannot build the HTTP client; WebSub pings will fail"
            )
        })
        .ok()
}

/// One topic to one hub.
struct Delivery {
    hub: Url,
    topic: Url,
    client: Option<reqwest::Client>,
    metrics: Arc<Metrics>,
    shutdown: ShutdownSignal,
    policy: RetryPolicy,
}

/// Why one attempt did not succeed.
enum Failure {
    Status(reqwest::StatusCode),
    Transport(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status(s) => write!(f, "hub answered {s}"),
            Failure::Transport(e) => f.write_str(e),
        }
    }
}

impl Delivery {
    async fn run(self) {
        let attempts = self.policy.attempts.max(1);
        let mut shutdown = self.shutdown.clone();
        let mut last: Option<Failure> = None;
        for attempt in 1..=attempts {
            if let Some(error) = &last {
                let wait = jittered(self.policy.backoff(attempt - 2), random_unit());
                tracing::debug!(
                    hub = %self.hub,
                    topic = %self.topic,
                    next_attempt = attempt,
                    ?wait,
                    %error,
                    "WebSub ping failed; will retry"
                );
                tokio::select! {
                    biased;
                    _ = shutdown.wait() => return self.abandon(attempt - 1, last),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            // Biased so that a signal that has already fired wins over
            // starting a request.
            let outcome = tokio::select! {
                biased;
                _ = shutdown.wait() => return self.abandon(attempt - 1, last),
                outcome = self.attempt() => outcome,
            };
            match outcome {
                Ok(()) => {
                    self.metrics.websub_ping(true);
                    tracing::debug!(
                        hub = %self.hub,
                        topic = %self.topic,
                        attempt,
                        "WebSub hub notified"
                    );
                    return;
                }
                Err(f) => last = Some(f),
            }
        }
        self.metrics.websub_ping(false);
        let error = last.map_or_else(String::new, |f| f.to_string());
        tracing::warn!(
            hub = %self.hub,
            topic = %self.topic,
            attempts,
            %error,
            "WebSub hub notification failed; giving up"
        );
    }

    /// `finished` counts attempts that got an answer or an error; one cut
    /// off in flight is not among them.
    fn abandon(&self, finished: u32, last: Option<Failure>) {
        let last_error = last.map_or_else(|| "none".to_string(), |f| f.to_string());
        tracing::warn!(
            hub = %self.hub,
            topic = %self.topic,
            attempts_finished = finished,
            %last_error,
            "WebSub hub notification abandoned at shutdown"
        );
    }

    async fn attempt(&self) -> Result<(), Failure> {
        let Some(client) = &self.client else {
            return Err(Failure::Transport("no HTTP client".into()));
        };
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("hub.mode", "publish")
            .append_pair("hub.url", self.topic.as_str())
            .finish();
        let answer = client
            .post(self.hub.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| Failure::Transport(chain(&e)))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Status(status))
        }
    }
}

/// An error and its causes on one line: reqwest's own message rarely says
/// more than "error sending request".
fn chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            attempts: 10,
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn backoff_doubles_from_the_first_wait() {
        let p = policy();
        assert_eq!(p.backoff(0), Duration::from_millis(100));
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(2), Duration::from_millis(400));
        assert_eq!(p.backoff(3), Duration::from_millis(800));
    }

    #[test]
    fn backoff_is_monotonic_and_capped_even_for_huge_retry_counts() {
        let p = policy();
        let mut prev = Duration::ZERO;
        for retry in 0..200 {
            let b = p.backoff(retry);
            assert!(b >= prev, "retry {retry}: {b:?} < {prev:?}");
            assert!(b <= p.max_backoff, "retry {retry}: {b:?} over the cap");
            prev = b;
        }
        assert_eq!(p.backoff(4), p.max_backoff);
        assert_eq!(p.backoff(u32::MAX), p.max_backoff);
    }

    #[test]
    fn backoff_survives_extreme_durations() {
        let p = RetryPolicy {
            first_backoff: Duration::MAX,
            max_backoff: Duration::MAX,
            ..policy()
        };
        assert_eq!(p.backoff(0), Duration::MAX);
        assert_eq!(p.backoff(5), Duration::MAX);
        let j = jittered(Duration::MAX, 0.3);
        assert!(j <= Duration::MAX);
    }

    #[test]
    fn jitter_stays_within_half_and_whole_of_the_backoff() {
        let base = Duration::from_millis(1000);
        assert_eq!(jittered(base, 0.0), Duration::from_millis(500));
        assert_eq!(jittered(base, 1.0), base);
        assert_eq!(jittered(base, -3.0), Duration::from_millis(500));
        assert_eq!(jittered(base, 7.0), base);
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u), "{u}");
            let j = jittered(base, u);
            assert!(j >= base / 2 && j <= base, "{j:?}");
        }
    }

    #[test]
    fn random_unit_varies_between_calls() {
        let draws: std::collections::BTreeSet<u64> =
            (0..100).map(|_| random_unit().to_bits()).collect();
        assert!(draws.len() > 90, "only {} distinct draws", draws.len());
    }

    #[test]
    fn default_policy_matches_the_documented_one() {
        let p = RetryPolicy::default();
        assert_eq!(p.attempts, 6);
        assert_eq!(p.backoff(0), Duration::from_secs(1));
        assert_eq!(p.backoff(1), Duration::from_secs(2));
        assert_eq!(p.max_backoff, Duration::from_secs(300));
        assert_eq!(p.request_timeout, Duration::from_secs(10));
    }
}
