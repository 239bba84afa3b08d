//! Counters and gauges for `GET /metrics`, in the Prometheus text format.
//! Plain atomics and one small map: no global registry, one `Metrics`
//! shared by the tasks that update it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the rebuild duration histogram, in seconds.
const REBUILD_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How one delivery attempt ended, as `herald_emails_total{result}` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailResult {
    Sent,
    Retried,
    Failed,
    Bounced,
    Skipped,
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub articles_published: AtomicU64,
    pub files_rejected: AtomicU64,
    pub rebuilds: AtomicU64,
    pub rebuild_failures: AtomicU64,
    /// Feeds whose bytes changed and were published.
    pub feeds_updated: AtomicU64,
    pub last_success_unix: AtomicU64,
    rebuild_buckets: [AtomicU64; 11],
    rebuild_count: AtomicU64,
    rebuild_sum_micros: AtomicU64,
    pub websub_pings_ok: AtomicU64,
    pub websub_pings_failed: AtomicU64,
    /// Digest emails by outcome of each attempt.
    pub emails_sent: AtomicU64,
    pub emails_failed: AtomicU64,
    pub emails_bounced: AtomicU64,
    /// Attempts that failed temporarily and will be tried again.
    pub emails_retried: AtomicU64,
    pub emails_skipped: AtomicU64,
    digest_runs: AtomicU64,
    digest_run_sum_millis: AtomicU64,
    digest_run_last_millis: AtomicU64,
    /// Deliveries of the runs this process is sending, and how many of
    /// them are settled (any outcome).
    digest_deliveries: AtomicU64,
    digest_settled: AtomicU64,
    digest_batches: AtomicU64,
    digest_bytes: AtomicU64,
    /// Requests by route and status, for the route labels and statuses
    /// herald answers with: plain atomics, no lock or allocation per
    /// request on the hot path.
    http_fixed: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
    /// Any other (route, status) pair.
    http_other: Mutex<BTreeMap<(String, u16), u64>>,
}

/// Route labels counted in `http_fixed`.
const ROUTES: &[&str] = &[
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
const STATUSES: &[u16] = &[200, 304, 400, 404, 405, 406, 412, 413, 429, 500, 503];

fn fixed_slot(route: &str, status: u16) -> Option<(usize, usize)> {
    let r = ROUTES.iter().position(|x| *x == route)?;
    let s = STATUSES.iter().position(|x| *x == status)?;
    Some((r, s))
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    pub fn observe_rebuild(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (i, bound) in REBUILD_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.rebuild_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.rebuild_count.fetch_add(1, Relaxed);
        self.rebuild_sum_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// Counts one digest delivery attempt by how it ended.
    pub fn count_email(&self, result: EmailResult) {
        let counter = match result {
            EmailResult::Sent => &self.emails_sent,
            EmailResult::Retried => &self.emails_retried,
            EmailResult::Failed => &self.emails_failed,
            EmailResult::Bounced => &self.emails_bounced,
            EmailResult::Skipped => &self.emails_skipped,
        };
        counter.fetch_add(1, Relaxed);
    }

    /// A digest run finished, `took` after it was planned.
    pub fn observe_digest_run(&self, took: Duration) {
        let ms = took.as_millis() as u64;
        self.digest_runs.fetch_add(1, Relaxed);
        self.digest_run_sum_millis.fetch_add(ms, Relaxed);
        self.digest_run_last_millis.store(ms, Relaxed);
    }

    /// A run starts sending here: `total` deliveries, `settled` of them
    /// settled already.
    pub fn digest_run_started(&self, total: u64, settled: u64) {
        self.digest_deliveries.store(total, Relaxed);
        self.digest_settled.store(settled, Relaxed);
    }

    /// Deliveries of the run being sent, and how many are settled.
    pub fn digest_progress(&self) -> (u64, u64) {
        (
            self.digest_deliveries.load(Relaxed),
            self.digest_settled.load(Relaxed),
        )
    }

    /// A batch of `count` deliveries was recorded in the ledger.
    pub fn digest_batch_settled(&self, count: u64) {
        self.digest_batches.fetch_add(1, Relaxed);
        self.digest_settled.fetch_add(count, Relaxed);
    }

    /// A digest of `bytes` went to the mail server.
    pub fn digest_bytes_sent(&self, bytes: u64) {
        self.digest_bytes.fetch_add(bytes, Relaxed);
    }

    /// Counts one HTTP response. `route` is the route pattern (`/healthz`,
    /// `feed`), never the raw path, so that the label set stays small.
    pub fn count_request(&self, route: &str, status: u16) {
        match fixed_slot(route, status) {
            Some((r, s)) => {
                self.http_fixed[r][s].fetch_add(1, Relaxed);
            }
            None => {
                let mut map = self.http_other.lock().expect("metrics lock");
                *map.entry((route.to_string(), status)).or_insert(0) += 1;
            }
        }
    }

    pub fn requests(&self, route: &str, status: u16) -> u64 {
        match fixed_slot(route, status) {
            Some((r, s)) => self.http_fixed[r][s].load(Relaxed),
            None => {
                let map = self.http_other.lock().expect("metrics lock");
                map.get(&(route.to_string(), status)).copied().unwrap_or(0)
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut gauge = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        gauge(
            "herald_articles_published",
            "Articles in the current feeds.",
            "gauge",
            self.articles_published.load(Relaxed),
        );
        gauge(
            "herald_files_rejected",
            "Content files rejected by the last build.",
            "gauge",
            self.files_rejected.load(Relaxed),
        );
        gauge(
            "herald_rebuilds_total",
            "Rebuilds run (scheduled, on file change, or at start).",
            "counter",
            self.rebuilds.load(Relaxed),
        );
        gauge(
            "herald_rebuild_failures_total",
            "Rebuilds that failed as a whole.",
            "counter",
            self.rebuild_failures.load(Relaxed),
        );
        gauge(
            "herald_feeds_updated_total",
            "Feed files whose bytes changed and were published.",
            "counter",
            self.feeds_updated.load(Relaxed),
        );
        gauge(
            "herald_last_successful_build_timestamp_seconds",
            "Unix time of the last successful build.",
            "gauge",
            self.last_success_unix.load(Relaxed),
        );
        gauge(
            "herald_digest_run_deliveries",
            "Deliveries of the digest run being sent (0 when none is).",
            "gauge",
            self.digest_deliveries.load(Relaxed),
        );
        gauge(
            "herald_digest_run_settled",
            "Deliveries of that run settled (sent, bounced, failed, skipped or waiting for a retry).",
            "gauge",
            self.digest_settled.load(Relaxed),
        );
        gauge(
            "herald_digest_batches_total",
            "Batches of digest deliveries recorded in the ledger by this process.",
            "counter",
            self.digest_batches.load(Relaxed),
        );
        gauge(
            "herald_digest_bytes_total",
            "Bytes of digest messages handed to the mail server.",
            "counter",
            self.digest_bytes.load(Relaxed),
        );
        gauge(
            "herald_websub_pings_total{result=\"ok\"}",
            "WebSub hub notifications.",
            "counter",
            self.websub_pings_ok.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "herald_websub_pings_total{{result=\"failed\"}} {}",
            self.websub_pings_failed.load(Relaxed)
        );

        let _ = writeln!(
            out,
            "# HELP herald_emails_total Digest email attempts by outcome (retried: failed temporarily, tried again later).\n# TYPE herald_emails_total counter"
        );
        for (result, counter) in [
            ("sent", &self.emails_sent),
            ("failed", &self.emails_failed),
            ("bounced", &self.emails_bounced),
            ("retried", &self.emails_retried),
            ("skipped", &self.emails_skipped),
        ] {
            let _ = writeln!(
                out,
                "herald_emails_total{{result=\"{result}\"}} {}",
                counter.load(Relaxed)
            );
        }
        let runs = self.digest_runs.load(Relaxed);
        let _ = writeln!(
            out,
            "# HELP herald_digest_run_duration_seconds Time from planning a digest run to its last delivery.\n# TYPE herald_digest_run_duration_seconds summary\nherald_digest_run_duration_seconds_sum {}\nherald_digest_run_duration_seconds_count {runs}",
            self.digest_run_sum_millis.load(Relaxed) as f64 / 1e3
        );
        let _ = writeln!(
            out,
            "# HELP herald_digest_last_run_duration_seconds Duration of the last finished digest run.\n# TYPE herald_digest_last_run_duration_seconds gauge\nherald_digest_last_run_duration_seconds {}",
            self.digest_run_last_millis.load(Relaxed) as f64 / 1e3
        );

        let _ = writeln!(
            out,
            "# HELP herald_rebuild_duration_seconds Time one rebuild took."
        );
        let _ = writeln!(out, "# TYPE herald_rebuild_duration_seconds histogram");
        for (i, bound) in REBUILD_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "herald_rebuild_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                self.rebuild_buckets[i].load(Relaxed)
            );
        }
        let count = self.rebuild_count.load(Relaxed);
        let _ = writeln!(
            out,
            "herald_rebuild_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "herald_rebuild_duration_seconds_sum {}",
            self.rebuild_sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "herald_rebuild_duration_seconds_count {count}");

        let _ = writeln!(
            out,
            "# HELP herald_http_requests_total HTTP responses by route and status."
        );
        let _ = writeln!(out, "# TYPE herald_http_requests_total counter");
        let mut all: BTreeMap<(String, u16), u64> =
            self.http_other.lock().expect("metrics lock").clone();
        for (r, route) in ROUTES.iter().enumerate() {
            for (s, status) in STATUSES.iter().enumerate() {
                let n = self.http_fixed[r][s].load(Relaxed);
                if n > 0 {
                    all.insert((route.to_string(), *status), n);
                }
            }
        }
        for ((route, status), n) in &all {
            let _ = writeln!(
                out,
                "herald_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out
    }
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
        let text = m.render();
        assert!(
            text.contains("herald_http_requests_total{route=\"feed\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("herald_http_requests_total{route=\"feed\",status=\"304\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("herald_http_requests_total{route=\"odd\",status=\"418\"} 1"),
            "{text}"
        );
    }
}
