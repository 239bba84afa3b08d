//! Errors at the HTTP boundary and the responses they become. Clients get
//! a status and one plain line; the cause chain goes to the log.

use axum::http::header::{ALLOW, CONTENT_TYPE, VARY};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The methods every resource here allows.
const ALLOWED: &str = "GET, HEAD";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// `Accept-Encoding` excludes every coding the feed is available in.
    #[error("no acceptable content coding (available: br, gzip, identity)")]
    NotAcceptable,
    /// `If-Match` or `If-Unmodified-Since` failed.
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("internal server error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = ?err, "request failed");
        }
        let status = self.status();
        // Display never includes a source: internals stay in the log.
        let mut res = (status, format!("{self}\n")).into_response();
        let headers = res.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        match self {
            ApiError::MethodNotAllowed => {
                headers.insert(ALLOW, HeaderValue::from_static(ALLOWED));
            }
            ApiError::NotAcceptable | ApiError::PreconditionFailed => {
                // Both depend on which representation Accept-Encoding picks.
                headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
            }
            _ => {}
        }
        res
    }
}

/// For `/healthz`, `/readyz` and `/metrics` called with another method.
pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
