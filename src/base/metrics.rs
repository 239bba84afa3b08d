//! The counters and gauges behind `GET /metrics`, kept in one
//! `prometheus-client` registry owned by one [`Metrics`] value that the
//! tasks share (no global registry). The crate writes the exposition, in
//! the Prometheus text format or in OpenMetrics, so every `# HELP` and
//! `# TYPE` line names a family and never carries labels.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the rebuild duration histogram, in seconds.
const REBUILD_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the digest run duration histogram, in seconds: a run
/// takes from seconds (a few readers) to hours (a large list, rate-limited).
const DIGEST_RUN_BUCKETS: [f64; 8] = [1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0];

mod labels;

pub use labels::{CloseReason, EmailResult};
use labels::{ReasonLabel, RequestLabels, ResultLabel, StateLabel, StatusLabel, TaskLabel};

/// Route labels whose counters are cached in `http_fixed`.
const ROUTES: [&str; 10] = [
    "feed",
    "index",
    "healthz",
    "readyz",
    "metrics",
    "subscribe",
    "confirm",
    "unsubscribe",
    "preferences",
    "not_found",
];
const STATUSES: [u16; 13] = [
    200, 304, 400, 401, 404, 405, 406, 412, 413, 429, 500, 503, 422,
];

/// The tasks whose panics are caught and counted.
pub const TASKS: [&str; 6] = ["http", "rebuild", "digest", "websub", "purge", "maildir"];

/// Which exposition format a scrape asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
    /// OpenMetrics 1.0 text (`application/openmetrics-text`).
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    articles_published: Gauge,
    files_rejected: Gauge,
    rebuilds: Counter,
    rebuild_failures: Counter,
    feeds_updated: Counter,
    last_success_unix: Gauge,
    rebuild_duration: Histogram,
    websub_pings: Family<ResultLabel, Counter>,
    emails: Family<ResultLabel, Counter>,
    digest_run_duration: Histogram,
    digest_last_run: Gauge<f64, AtomicU64>,
    /// Deliveries of the run this process is sending (0 when none is),
    /// and how many of them are settled (any outcome).
    digest_run_deliveries: Gauge,
    digest_run_settled: Gauge,
    digest_batches: Counter,
    digest_bytes: Counter,
    http_requests: Family<RequestLabels, Counter>,
    /// Handles to the counters of the usual (route, status) pairs, taken
    /// from the family on first use: counting a response is then one
    /// atomic add, no lock and no hashing on the hot path.
    http_fixed: [[OnceLock<Counter>; STATUSES.len()]; ROUTES.len()],
    connections_open: Gauge,
    connections_accepted: Counter,
    connections_closed: Family<ReasonLabel, Counter>,
    panics: Family<TaskLabel, Counter>,
    subscribers: Family<StatusLabel, Gauge>,
    digest_runs: Family<StateLabel, Gauge>,
    digest_deliveries: Family<StateLabel, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            articles_published: Gauge::default(),
            files_rejected: Gauge::default(),
            rebuilds: Counter::default(),
            rebuild_failures: Counter::default(),
            feeds_updated: Counter::default(),
            last_success_unix: Gauge::default(),
            rebuild_duration: Histogram::new(REBUILD_BUCKETS),
            websub_pings: Family::default(),
            emails: Family::default(),
            digest_run_duration: Histogram::new(DIGEST_RUN_BUCKETS),
            digest_last_run: Gauge::default(),
            digest_run_deliveries: Gauge::default(),
            digest_run_settled: Gauge::default(),
            digest_batches: Counter::default(),
            digest_bytes: Counter::default(),
            http_requests: Family::default(),
            http_fixed: Default::default(),
            connections_open: Gauge::default(),
            connections_accepted: Counter::default(),
            connections_closed: Family::default(),
            panics: Family::default(),
            subscribers: Family::default(),
            digest_runs: Family::default(),
            digest_deliveries: Family::default(),
        };
        m.label_known_series();
        m.register()
    }

    /// Creates the series whose label values are known up front, at 0,
    /// so that they are there from the first scrape (a rate over a series
    /// that appears only with its first event misses that event).
    fn label_known_series(&self) {
        for ok in [true, false] {
            self.websub_pings.get_or_create_owned(&ping_label(ok));
        }
        for result in [
            EmailResult::Sent,
            EmailResult::Retried,
            EmailResult::Failed,
            EmailResult::Bounced,
            EmailResult::Skipped,
        ] {
            self.emails.get_or_create_owned(&ResultLabel {
                result: result.label(),
            });
        }
        for reason in [
            CloseReason::Done,
            CloseReason::HeaderTimeout,
            CloseReason::IdleTimeout,
            CloseReason::Evicted,
            CloseReason::Refused,
            CloseReason::Shutdown,
            CloseReason::Error,
        ] {
            self.connections_closed.get_or_create_owned(&ReasonLabel {
                reason: reason.label(),
            });
        }
        for task in TASKS {
            self.panics.get_or_create_owned(&TaskLabel { task });
        }
    }

    /// Names every family once; the registry holds clones of the handles
    /// (they share their values).
    fn register(mut self) -> Metrics {
        let r = &mut self.registry;
        r.register(
            "herald_articles_published",
            "Articles in the current feeds",
            self.articles_published.clone(),
        );
        r.register(
            "herald_files_rejected",
            "Content files rejected by the last build",
            self.files_rejected.clone(),
        );
        r.register(
            "herald_rebuilds",
            "Rebuilds run (at start, on schedule, on file change), failed ones included",
            self.rebuilds.clone(),
        );
        r.register(
            "herald_rebuild_failures",
            "Rebuilds that failed as a whole (a panic included)",
            self.rebuild_failures.clone(),
        );
        r.register(
            "herald_feeds_updated",
            "Feed files whose bytes changed and were published",
            self.feeds_updated.clone(),
        );
        r.register(
            "herald_last_successful_build_timestamp_seconds",
            "Unix time of the last successful rebuild (0: none yet)",
            self.last_success_unix.clone(),
        );
        r.register(
            "herald_rebuild_duration_seconds",
            "Time one rebuild took",
            self.rebuild_duration.clone(),
        );
        r.register(
            "herald_websub_pings",
            "WebSub hub notifications by result",
            self.websub_pings.clone(),
        );
        r.register(
            "herald_emails",
            "Digest email attempts by outcome (retried: failed temporarily, tried again later)",
            self.emails.clone(),
        );
        r.register(
            "herald_digest_run_duration_seconds",
            "Time from planning a digest run to its last delivery",
            self.digest_run_duration.clone(),
        );
        r.register(
            "herald_digest_last_run_duration_seconds",
            "Duration of the last finished digest run",
            self.digest_last_run.clone(),
        );
        r.register(
            "herald_digest_run_deliveries",
            "Deliveries of the digest run being sent (0 when none is)",
            self.digest_run_deliveries.clone(),
        );
        r.register(
            "herald_digest_run_settled",
            "Deliveries of that run settled (sent, bounced, failed, skipped or waiting for a retry)",
            self.digest_run_settled.clone(),
        );
        r.register(
            "herald_digest_batches",
            "Batches of digest deliveries recorded in the ledger by this process",
            self.digest_batches.clone(),
        );
        r.register(
            "herald_digest_bytes",
            "Bytes of digest messages handed to the mail server",
            self.digest_bytes.clone(),
        );
        r.register(
            "herald_http_requests",
            "HTTP responses by route and status",
            self.http_requests.clone(),
        );
        r.register(
            "herald_http_connections_open",
            "HTTP connections being served now",
            self.connections_open.clone(),
        );
        r.register(
            "herald_http_connections_accepted",
            "HTTP connections accepted",
            self.connections_accepted.clone(),
        );
        r.register(
            "herald_http_connections_closed",
            "HTTP connections closed, by why",
            self.connections_closed.clone(),
        );
        r.register(
            "herald_panics",
            "Panics caught (and survived), by the task they happened in",
            self.panics.clone(),
        );
        r.register(
            "herald_subscribers",
            "Subscribers in the database by status",
            self.subscribers.clone(),
        );
        r.register(
            "herald_digest_runs",
            "Digest runs in the ledger by state",
            self.digest_runs.clone(),
        );
        r.register(
            "herald_digest_deliveries",
            "Digest deliveries in the ledger by state",
            self.digest_deliveries.clone(),
        );
        self
    }

    /// A rebuild that published: its time, what it published and rejected,
    /// and how many feed files changed.
    pub fn rebuild_published(
        &self,
        took: Duration,
        articles: usize,
        rejected: usize,
        feeds_changed: usize,
    ) {
        self.rebuilds.inc();
        self.rebuild_duration.observe(took.as_secs_f64());
        self.articles_published.set(saturate(articles));
        self.files_rejected.set(saturate(rejected));
        self.feeds_updated.inc_by(feeds_changed as u64);
    }

    /// A rebuild that failed as a whole (an error or a panic).
    pub fn rebuild_failed(&self) {
        self.rebuilds.inc();
        self.rebuild_failures.inc();
    }

    /// The content was read and the served feeds are current, at `unix`.
    pub fn build_succeeded_at(&self, unix: i64) {
        self.last_success_unix.set(unix);
    }

    pub fn rebuild_failures(&self) -> u64 {
        self.rebuild_failures.get()
    }

    /// One WebSub ping (one hub, one topic) ended: delivered or failed for
    /// good.
    pub fn websub_ping(&self, ok: bool) {
        self.websub_pings.get_or_create(&ping_label(ok)).inc();
    }

    pub fn websub_pings(&self, ok: bool) -> u64 {
        self.websub_pings.get_or_create(&ping_label(ok)).get()
    }

    /// Counts one digest delivery attempt by how it ended.
    pub fn count_email(&self, result: EmailResult) {
        self.emails
            .get_or_create(&ResultLabel {
                result: result.label(),
            })
            .inc();
    }

    /// A run starts sending here: `total` deliveries, `settled` of them
    /// settled already.
    pub fn digest_run_started(&self, total: u64, settled: u64) {
        self.digest_run_deliveries.set(saturate(total));
        self.digest_run_settled.set(saturate(settled));
    }

    /// Deliveries of the run being sent, and how many are settled.
    pub fn digest_progress(&self) -> (u64, u64) {
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        (
            n(self.digest_run_deliveries.get()),
            n(self.digest_run_settled.get()),
        )
    }

    /// A batch of `count` deliveries was recorded in the ledger.
    pub fn digest_batch_settled(&self, count: u64) {
        self.digest_batches.inc();
        self.digest_run_settled.inc_by(saturate(count));
    }

    /// A digest of `bytes` went to the mail server.
    pub fn digest_bytes_sent(&self, bytes: u64) {
        self.digest_bytes.inc_by(bytes);
    }

    /// A digest run finished, `took` after it was planned.
    pub fn observe_digest_run(&self, took: Duration) {
        self.digest_run_duration.observe(took.as_secs_f64());
        self.digest_last_run.set(took.as_secs_f64());
    }

    /// Counts one HTTP response. `route` is one of a fixed set of labels
    /// (`feed`, `healthz`, …), never the raw path, so that scanners cannot
    /// grow the label set.
    pub fn count_request(&self, route: &'static str, status: u16) {
        match fixed_slot(route, status) {
            Some((r, s)) => self.http_fixed[r][s]
                .get_or_init(|| {
                    self.http_requests
                        .get_or_create_owned(&RequestLabels { route, status })
                })
                .inc(),
            None => self
                .http_requests
                .get_or_create(&RequestLabels { route, status })
                .inc(),
        };
    }

    pub fn requests(&self, route: &'static str, status: u16) -> u64 {
        self.http_requests
            .get(&RequestLabels { route, status })
            .map_or(0, |c| c.get())
    }

    pub fn connection_opened(&self) {
        self.connections_accepted.inc();
        self.connections_open.inc();
    }

    pub fn connection_closed(&self, reason: CloseReason) {
        self.connections_open.dec();
        self.count_close(reason);
    }

    /// A connection closed that was never counted open (refused at the cap).
    pub fn count_close(&self, reason: CloseReason) {
        self.connections_closed
            .get_or_create(&ReasonLabel {
                reason: reason.label(),
            })
            .inc();
    }

    pub fn connections_open(&self) -> i64 {
        self.connections_open.get()
    }

    pub fn connections_closed(&self, reason: CloseReason) -> u64 {
        self.connections_closed
            .get(&ReasonLabel {
                reason: reason.label(),
            })
            .map_or(0, |c| c.get())
    }

    /// A panic was caught in `task` (`http`, `rebuild`, `digest`, …).
    pub fn panicked(&self, task: &'static str) {
        self.panics.get_or_create(&TaskLabel { task }).inc();
    }

    pub fn panics(&self, task: &'static str) -> u64 {
        self.panics.get(&TaskLabel { task }).map_or(0, |c| c.get())
    }

    /// Subscribers with `status` in the database now.
    pub fn set_subscribers(&self, status: &'static str, n: u64) {
        self.subscribers
            .get_or_create(&StatusLabel { status })
            .set(saturate(n));
    }

    /// Digest runs in `state` in the ledger now.
    pub fn set_digest_runs(&self, state: &'static str, n: u64) {
        self.digest_runs
            .get_or_create(&StateLabel { state })
            .set(saturate(n));
    }

    /// Digest deliveries in `state` in the ledger now.
    pub fn set_digest_deliveries(&self, state: &'static str, n: u64) {
        self.digest_deliveries
            .get_or_create(&StateLabel { state })
            .set(saturate(n));
    }

    /// The exposition in `format`.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::with_capacity(8192);
        let written = match format {
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
        };
        // Writing to a String cannot fail; an error here would be the
        // crate's own, and a partial page is worse than an empty one.
        if written.is_err() {
            out.clear();
        }
        out
    }
}

fn ping_label(ok: bool) -> ResultLabel {
    ResultLabel {
        result: if ok { "ok" } else { "failed" },
    }
}

fn fixed_slot(route: &str, status: u16) -> Option<(usize, usize)> {
    let r = ROUTES.iter().position(|x| *x == route)?;
    let s = STATUSES.iter().position(|x| *x == status)?;
    Some((r, s))
}

fn saturate(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_route_and_status_in_the_exposition() {
        let m = Metrics::new();
        m.count_request("feed", 200);
        m.count_request("feed", 200);
        m.count_request("feed", 304);
        m.count_request("odd", 418);
        assert_eq!(m.requests("feed", 200), 2);
        assert_eq!(m.requests("odd", 418), 1);
        let text = m.render(Format::Text);
        for line in [
            "herald_http_requests_total{route=\"feed\",status=\"200\"} 2",
            "herald_http_requests_total{route=\"feed\",status=\"304\"} 1",
            "herald_http_requests_total{route=\"odd\",status=\"418\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }

    #[test]
    fn help_and_type_lines_name_a_family_and_carry_no_labels() {
        let m = Metrics::new();
        m.websub_ping(true);
        m.websub_ping(false);
        m.count_email(EmailResult::Sent);
        for format in [Format::Text, Format::OpenMetrics] {
            let text = m.render(format);
            for line in text.lines().filter(|l| l.starts_with("# ")) {
                assert!(!line.contains('{'), "{line}");
            }
            assert!(
                text.contains("herald_websub_pings_total{result=\"ok\"} 1"),
                "{text}"
            );
            assert!(
                text.contains("herald_websub_pings_total{result=\"failed\"} 1"),
                "{text}"
            );
        }
        assert!(m.render(Format::OpenMetrics).ends_with("# EOF\n"));
    }
}
