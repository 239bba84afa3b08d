//! `POST /webhooks/{ses,postmark,mailgun,sendgrid}`: the providers'
//! bounce and complaint webhooks. Bodies are bounded by
//! `webhooks.max_body_size` (413 past it); each provider's scheme is
//! checked in `subscribers::bounces::webhooks`. Answers: 200 with what was
//! applied, 401 for a missing or forged signature (nothing changed), 400
//! for an authentic but malformed body, 404 for a provider that is not
//! configured, 503 when the database did not answer (providers retry).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;

use crate::subscribers::bounces::webhooks::{WebhookError, Webhooks};
use crate::subscribers::bounces::Applied;

pub const PREFIX: &str = "/webhooks/";

pub fn routes(webhooks: Arc<Webhooks>, max_body: usize) -> Router {
    Router::new()
        .route("/webhooks/ses", post(ses))
        .route("/webhooks/postmark", post(postmark))
        .route("/webhooks/mailgun", post(mailgun))
        .route("/webhooks/sendgrid", post(sendgrid))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(webhooks)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn answer(provider: &str, result: Result<Applied, WebhookError>) -> Response {
    match result {
        Ok(applied) => {
            tracing::debug!(provider, "webhook: {applied}");
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                format!(
                    "{{\"applied\":{},\"duplicates\":{},\"unmatched\":{},\"ignored\":{}}}\n",
                    applied.applied, applied.duplicates, applied.unmatched, applied.ignored
                ),
            )
                .into_response()
        }
        Err(e) => {
            let status = match &e {
                WebhookError::Disabled => StatusCode::NOT_FOUND,
                WebhookError::Unauthorized(why) => {
                    tracing::warn!(provider, "webhook refused: {why}");
                    StatusCode::UNAUTHORIZED
                }
                WebhookError::BadRequest(why) => {
                    tracing::warn!(provider, "webhook body not understood: {why}");
                    StatusCode::BAD_REQUEST
                }
                WebhookError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            };
            // The reason stays in the log: a forger learns nothing.
            let text = status.canonical_reason().unwrap_or("error");
            (status, format!("{text}\n")).into_response()
        }
    }
}

async fn ses(State(w): State<Arc<Webhooks>>, body: Bytes) -> Response {
    answer("ses", w.ses(&body).await)
}

async fn postmark(State(w): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    answer(
        "postmark",
        w.postmark(header(&headers, "authorization"), &body).await,
    )
}

async fn mailgun(State(w): State<Arc<Webhooks>>, body: Bytes) -> Response {
    answer("mailgun", w.mailgun(&body, chrono::Utc::now()).await)
}

async fn sendgrid(State(w): State<Arc<Webhooks>>, headers: HeaderMap, body: Bytes) -> Response {
    let result = w
        .sendgrid(
            header(&headers, "x-twilio-email-event-webhook-signature"),
            header(&headers, "x-twilio-email-event-webhook-timestamp"),
            &body,
            chrono::Utc::now(),
        )
        .await;
    answer("sendgrid", result)
}
