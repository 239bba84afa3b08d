//! Probes and counters for whoever runs herald: `/healthz` (the process
//! answers), `/readyz` (serving current feeds, or why not) and `/metrics`
//! (optionally behind a bearer token). None of them may be cached.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::{ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::Ctx;
use crate::base::metrics::{Format, Metrics};
use crate::store::StoreCounts;

const NO_STORE: &str = "no-store";
const TEXT: &str = "text/plain; charset=utf-8";

pub(super) async fn healthz() -> Response {
    plain(StatusCode::OK, "ok".into())
}

/// 200 while current (or last good) feeds are served, 503 otherwise; the
/// body says which, and why.
pub(super) async fn readyz(State(ctx): State<Arc<Ctx>>) -> Response {
    let state = ctx.state.ready.get();
    let status = if state.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    plain(status, state.describe())
}

pub(super) async fn metrics(State(ctx): State<Arc<Ctx>>, headers: HeaderMap) -> Response {
    if let Some(token) = &ctx.state.config.server.metrics_token {
        if !bearer_matches(&headers, token.expose()) {
            let mut res = plain(StatusCode::UNAUTHORIZED, "a bearer token is needed".into());
            res.headers_mut().insert(
                WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"herald metrics\""),
            );
            return res;
        }
    }
    let metrics = &ctx.state.metrics;
    if let Some(counts) = &ctx.state.counts {
        if ctx.counted.due() {
            let started = Instant::now();
            match counts.counts().await {
                Ok(c) => set_counts(metrics, &c),
                // The other families are still worth a scrape; the gauges
                // keep their last values.
                Err(e) => {
                    tracing::warn!("/metrics: cannot count subscribers and deliveries: {e:#}")
                }
            }
            ctx.counted.done(started);
        }
    }
    let format = wanted_format(&headers);
    (
        [
            (CONTENT_TYPE, format.content_type()),
            (CACHE_CONTROL, NO_STORE),
        ],
        metrics.render(format),
    )
        .into_response()
}

/// When the store's counts were last taken and how long that took. They
/// are taken again only once 20 times that long has passed, so that
/// scrapes (however frequent) spend at most a twentieth of one core on
/// them: every scrape on a small database, every few seconds on a ledger
/// of millions of deliveries.
#[derive(Debug, Default)]
pub(super) struct Counted(Mutex<Option<(Instant, Duration)>>);

impl Counted {
    fn due(&self) -> bool {
        match self.0.lock().ok().and_then(|last| *last) {
            Some((at, took)) => at.elapsed() >= took * 20,
            None => true,
        }
    }

    fn done(&self, started: Instant) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some((Instant::now(), started.elapsed()));
        }
    }
}

fn set_counts(metrics: &Metrics, c: &StoreCounts) {
    for (status, n) in &c.subscribers {
        metrics.set_subscribers(status.as_str(), *n);
    }
    for (state, n) in &c.runs {
        metrics.set_digest_runs(state, *n);
    }
    for (state, n) in &c.deliveries {
        metrics.set_digest_deliveries(state.as_str(), *n);
    }
}

/// OpenMetrics when the scraper asks for it (Prometheus does), the
/// classic text format otherwise.
fn wanted_format(headers: &HeaderMap) -> Format {
    let openmetrics = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            let mut params = media.split(';').map(str::trim);
            let kind = params.next().unwrap_or("");
            let refused = params.any(|p| p.replace(' ', "") == "q=0");
            kind.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        });
    if openmetrics {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// `Authorization: Bearer <token>` with the right token. Compared as
/// digests, so the time taken says nothing about how much of it matched.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
    else {
        return false;
    };
    Sha256::digest(given.as_bytes()) == Sha256::digest(token.as_bytes())
}

fn plain(status: StatusCode, text: String) -> Response {
    (
        status,
        [(CONTENT_TYPE, TEXT), (CACHE_CONTROL, NO_STORE)],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: axum::http::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        assert_eq!(wanted_format(&HeaderMap::new()), Format::Text);
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(
            wanted_format(&with(ACCEPT, prometheus)),
            Format::OpenMetrics
        );
        assert_eq!(
            wanted_format(&with(
                ACCEPT,
                "application/openmetrics-text; q=0, text/plain"
            )),
            Format::Text
        );
    }

    #[test]
    fn only_the_right_bearer_token_passes() {
        assert!(bearer_matches(
            &with(AUTHORIZATION, "Bearer s3cret-token"),
            "s3cret-token"
        ));
        assert!(bearer_matches(
            &with(AUTHORIZATION, "bearer  s3cret-token "),
            "s3cret-token"
        ));
        assert!(!bearer_matches(
            &with(AUTHORIZATION, "Bearer s3cret"),
            "s3cret-token"
        ));
        assert!(!bearer_matches(
            &with(AUTHORIZATION, "Basic s3cret-token"),
            "s3cret-token"
        ));
        assert!(!bearer_matches(&HeaderMap::new(), "s3cret-token"));
    }
}
