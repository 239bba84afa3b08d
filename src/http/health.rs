//! Probes and counters for whoever runs herald: `/healthz` (the process
//! answers), `/readyz` (the first build is being served) and `/metrics`.
//! None of them may be cached.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Ctx;

const NO_STORE: &str = "no-store";
const TEXT: &str = "text/plain; charset=utf-8";
/// The Prometheus text exposition format.
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(super) async fn healthz() -> Response {
    plain(StatusCode::OK, "ok")
}

pub(super) async fn readyz(State(ctx): State<Arc<Ctx>>) -> Response {
    if ctx.state.ready.load(Ordering::Acquire) {
        plain(StatusCode::OK, "ready")
    } else {
        plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first build has not finished",
        )
    }
}

pub(super) async fn metrics(State(ctx): State<Arc<Ctx>>) -> Response {
    (
        [(CONTENT_TYPE, PROMETHEUS), (CACHE_CONTROL, NO_STORE)],
        ctx.state.metrics.render(),
    )
        .into_response()
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(CONTENT_TYPE, TEXT), (CACHE_CONTROL, NO_STORE)],
        text,
    )
        .into_response()
}
