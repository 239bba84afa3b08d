//! The subscription pages: `/subscribe` (form and request), `/confirm`,
//! `/unsubscribe` (a page with a button on GET, which changes nothing since
//! mail scanners follow links; unsubscribing on POST, including RFC 8058
//! one-click), and `/preferences`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::ClientAddr;
use crate::subscribers::optin::{RequestError, SubscribeRequest, Subscriptions};
use crate::subscribers::tokens::TokenError;

/// Largest form body accepted.
const MAX_FORM: usize = 16 * 1024;

pub const SUBSCRIBE: &str = "/subscribe";
pub const CONFIRM: &str = "/confirm";
pub const UNSUBSCRIBE: &str = "/unsubscribe";
pub const PREFERENCES: &str = "/preferences";

pub fn routes(subs: Arc<Subscriptions>) -> Router {
    Router::new()
        .route(SUBSCRIBE, get(form).post(submit))
        .route(CONFIRM, get(confirm))
        .route(UNSUBSCRIBE, get(unsubscribe_page).post(unsubscribe))
        .route(PREFERENCES, get(preferences_page).post(save_preferences))
        .with_state(subs)
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, body).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    );
    res
}

fn base(subs: &Subscriptions) -> serde_json::Map<String, Value> {
    let site = &subs.config().site;
    let mut m = serde_json::Map::new();
    m.insert("site_title".into(), json!(site.title));
    m.insert("language".into(), json!(site.language.as_str()));
    m
}

fn render(subs: &Subscriptions, status: StatusCode, template: &str, extra: Value) -> Response {
    let mut data = base(subs);
    if let Value::Object(more) = extra {
        data.extend(more);
    }
    match subs.templates().render(template, &Value::Object(data)) {
        Ok(body) => html(status, body),
        Err(e) => {
            tracing::error!("{e:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

fn message(
    subs: &Subscriptions,
    status: StatusCode,
    title: &str,
    kind: &str,
    text: &str,
) -> Response {
    render(
        subs,
        status,
        "message.html",
        json!({"title": title, "kind": kind, "message": text, "link": null}),
    )
}

fn token_problem(subs: &Subscriptions, e: TokenError) -> Response {
    match e {
        TokenError::Expired => message(
            subs,
            StatusCode::BAD_REQUEST,
            "This link has expired",
            "error",
            "The link is no longer valid. Nothing was changed. Subscribe again to get a new one.",
        ),
        TokenError::Invalid => message(
            subs,
            StatusCode::BAD_REQUEST,
            "This link is not valid",
            "error",
            "The link is incomplete or was altered. Nothing was changed. Copy the whole link from the email.",
        ),
        // The link may be fine: the database did not answer.
        TokenError::Unavailable => {
            let mut res = message(
                subs,
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again in a few minutes",
                "error",
                "We could not look up your subscription just now. Nothing was changed, and the link still works: please follow it again in a few minutes.",
            );
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            res
        }
    }
}

fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn all(fields: &[(String, String)], name: &str) -> Vec<String> {
    fields
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .collect()
}

/// The `[[digest]]` schedules as form choices, ticked where `checked` says.
fn schedule_choices(subs: &Subscriptions, checked: impl Fn(&str) -> bool) -> Value {
    json!(subs
        .config()
        .digest
        .iter()
        .map(|d| json!({
            "name": d.name,
            "label": if d.description.is_empty() { d.name.clone() } else { d.description.clone() },
            "checked": checked(&d.name),
        }))
        .collect::<Vec<_>>())
}

async fn form(State(subs): State<Arc<Subscriptions>>) -> Response {
    render(
        &subs,
        StatusCode::OK,
        "subscribe.html",
        json!({"action": SUBSCRIBE, "email": "", "error": null, "schedules": schedule_choices(&subs, |_| true), "tags": subs.config().subscribers.tags, "sections": section_choices(&subs, &[])}),
    )
}

async fn submit(State(subs): State<Arc<Subscriptions>>, req: Request) -> Response {
    // The client, as a trusted proxy named it: what the rate limit and
    // the consent record use.
    let ip = req.extensions().get::<ClientAddr>().map(|c| c.ip);
    let body = match axum::body::to_bytes(req.into_body(), MAX_FORM).await {
        Ok(b) => b,
        Err(_) => {
            return message(
                &subs,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                "error",
                "The form was too large.",
            )
        }
    };
    let fields = form_fields(&body);
    let email = all(&fields, "email").into_iter().next().unwrap_or_default();
    let request = SubscribeRequest {
        email: email.clone(),
        schedules: all(&fields, "schedule"),
        tags: all(&fields, "tag"),
    };
    match subs.request(request.clone(), ip, now()).await {
        Ok(()) => message(
            &subs,
            StatusCode::OK,
            "Check your inbox",
            "ok",
            "If the address can receive mail, a message with a confirmation link is on its way. Nothing is sent until you follow it.",
        ),
        Err(RequestError::RateLimited(wait)) => {
            if let Some(ip) = ip {
                tracing::info!(client = %ip, "sign-up refused: too many from this network");
            }
            let minutes = wait.as_secs().div_ceil(60).max(1);
            let mut res = message(
                &subs,
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "error",
                &format!("Too many subscription requests came from your network. Please try again in {minutes} minute{}.", if minutes == 1 { "" } else { "s" }),
            );
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
            res
        }
        Err(RequestError::Unavailable) => message(
            &subs,
            StatusCode::SERVICE_UNAVAILABLE,
            "Please try again later",
            "error",
            "The confirmation email could not be sent just now. Nothing was lost; please try again in a few minutes.",
        ),
        Err(RequestError::Internal(e)) => {
            tracing::error!("subscribe: {e:#}");
            message(&subs, StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "error", "Please try again later.")
        }
        Err(e @ (RequestError::InvalidEmail(_) | RequestError::UnknownChoice(_))) => {
            // Show the address back only when it is printable and short.
            let shown = if email.chars().any(char::is_control) || email.chars().count() > 254 {
                String::new()
            } else {
                email.clone()
            };
            render(
                &subs,
                StatusCode::BAD_REQUEST,
                "subscribe.html",
                json!({"action": SUBSCRIBE, "email": shown, "error": format!("Please check the form: {e}."), "schedules": schedule_choices(&subs, |n| request.schedules.is_empty() || request.schedules.iter().any(|s| s == n)), "tags": subs.config().subscribers.tags, "sections": section_choices(&subs, &[])}),
            )
        }
    }
}

async fn confirm(State(subs): State<Arc<Subscriptions>>, Query(q): Query<TokenQuery>) -> Response {
    let token = q.token.unwrap_or_default();
    match subs.confirm(&token, now()).await {
        Ok(sub) => {
            let manage = subs.manage_token(sub.id, now());
            render(
                &subs,
                StatusCode::OK,
                "message.html",
                json!({
                    "title": "You are subscribed",
                    "kind": "ok",
                    "message": format!("{} will receive new articles by email.", sub.email),
                    "link": subs.page_url("preferences", Some(&manage)).as_str(),
                    "link_text": "Choose what you receive",
                }),
            )
        }
        Err(e) => token_problem(&subs, e),
    }
}

async fn unsubscribe_page(
    State(subs): State<Arc<Subscriptions>>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    // Looks the subscriber up and changes nothing.
    match subs.manage(&token, now()).await {
        Ok(sub) => render(
            &subs,
            StatusCode::OK,
            "unsubscribe.html",
            json!({
                "email": sub.email.as_str(),
                "action": subs.page_url("unsubscribe", Some(&token)).as_str(),
                "preferences": subs.page_url("preferences", Some(&token)).as_str(),
            }),
        ),
        Err(e) => token_problem(&subs, e),
    }
}

/// POST from our button, or RFC 8058 one-click from a mail provider (body
/// `List-Unsubscribe=One-Click`, no cookies, no auth): unsubscribe at once
/// and answer 200, no redirect.
async fn unsubscribe(
    State(subs): State<Arc<Subscriptions>>,
    Query(q): Query<TokenQuery>,
    body: Bytes,
) -> Response {
    let token = q.token.unwrap_or_default();
    let one_click = form_fields(&body)
        .iter()
        .any(|(k, v)| k == "List-Unsubscribe" && v == "One-Click");
    let how = if one_click {
        "one-click"
    } else {
        "unsubscribe-page"
    };
    match subs.unsubscribe(&token, how, now()).await {
        Ok(sub) => render(
            &subs,
            StatusCode::OK,
            "message.html",
            json!({
                "title": "You are unsubscribed",
                "kind": "ok",
                "message": format!("No more digests will be sent to {}.", sub.email),
                "link": subs.page_url("subscribe", None).as_str(),
                "link_text": "Subscribed by mistake? Subscribe again",
            }),
        ),
        Err(e) => token_problem(&subs, e),
    }
}

async fn preferences_page(
    State(subs): State<Arc<Subscriptions>>,
    Query(q): Query<TokenQuery>,
) -> Response {
    let token = q.token.unwrap_or_default();
    match subs.manage(&token, now()).await {
        Ok(sub) => preferences(&subs, &token, &sub, false),
        Err(e) => token_problem(&subs, e),
    }
}

async fn save_preferences(
    State(subs): State<Arc<Subscriptions>>,
    Query(q): Query<TokenQuery>,
    body: Bytes,
) -> Response {
    let token = q.token.unwrap_or_default();
    let fields = form_fields(&body);
    match subs
        .save_preferences(&token, all(&fields, "schedule"), all(&fields, "tag"), now())
        .await
    {
        Ok(Ok(sub)) => preferences(&subs, &token, &sub, true),
        Ok(Err(e)) => message(
            &subs,
            StatusCode::BAD_REQUEST,
            "Please check the form",
            "error",
            &e.to_string(),
        ),
        Err(e) => token_problem(&subs, e),
    }
}

fn preferences(
    subs: &Subscriptions,
    token: &str,
    sub: &crate::store::Subscriber,
    saved: bool,
) -> Response {
    let tags: Vec<Value> = subs
        .config()
        .subscribers
        .tags
        .iter()
        .map(|t| json!({"name": t, "checked": sub.tags.contains(t)}))
        .collect();
    let schedules = schedule_choices(subs, |n| sub.schedules.iter().any(|s| s == n));
    let sections = section_choices(subs, &sub.tags);
    render(
        subs,
        StatusCode::OK,
        "preferences.html",
        json!({
            "email": sub.email.as_str(),
            "saved": saved,
            "action": subs.page_url("preferences", Some(token)).as_str(),
            "unsubscribe": subs.page_url("unsubscribe", Some(token)).as_str(),
            "schedules": schedules,
            "tags": tags,
            "sections": sections,
        }),
    )
}

/// The `[[feeds.section]]` entries a reader may pick, stored beside tags
/// as `section:<path>`; `chosen` ticks those already picked.
fn section_choices(subs: &Subscriptions, chosen: &[String]) -> Vec<Value> {
    subs.config()
        .feeds
        .section
        .iter()
        .map(|s| {
            let value = crate::subscribers::choices::section_choice(&s.path);
            json!({
                "value": value,
                "label": s.title.clone().unwrap_or_else(|| s.path.trim_matches('/').to_string()),
                "checked": chosen.contains(&value),
            })
        })
        .collect()
}
