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
    /// (route, status) -> requests.
    http: Mutex<BTreeMap<(String, u16), u64>>,
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

    /// Counts one HTTP response. `route` is the route pattern (`/healthz`,
    /// `feed`), never the raw path, so that the label set stays small.
    pub fn count_request(&self, route: &str, status: u16) {
        let mut map = self.http.lock().expect("metrics lock");
        *map.entry((route.to_string(), status)).or_insert(0) += 1;
    }

    pub fn requests(&self, route: &str, status: u16) -> u64 {
        let map = self.http.lock().expect("metrics lock");
        map.get(&(route.to_string(), status)).copied().unwrap_or(0)
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
        for ((route, status), n) in self.http.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                out,
                "herald_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out
    }
}
