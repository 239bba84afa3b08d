//! The web archive: `/archive/` (every published run, newest first),
//! `/archive/<schedule>/` (one schedule's), `/archive/<schedule>/<slug>/`
//! (one run's page, as published in the store) and
//! `/archive/<schedule>/atom.xml` (its feed). Nothing is read from disk:
//! a schedule name and a slug are checked against their strict shapes,
//! then looked up in the store, so no path can lead anywhere else.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;

use crate::base::text::escape_html;
use crate::config::Config;
use crate::store::{Issue, Store};
use crate::templates::Templates;

pub const PREFIX: &str = "/archive";

/// Pages listed on an index and entries in a feed.
const LISTED: u32 = 200;

struct Archive {
    config: Arc<Config>,
    templates: Arc<Templates>,
    store: Arc<dyn Store>,
}

pub fn routes(config: Arc<Config>, templates: Arc<Templates>, store: Arc<dyn Store>) -> Router {
    let state = Arc::new(Archive {
        config,
        templates,
        store,
    });
    Router::new()
        .route(
            "/archive",
            get(|| async { Redirect::permanent("/archive/") }),
        )
        .route("/archive/", get(index))
        .route("/archive/{schedule}", get(to_slash))
        .route("/archive/{schedule}/", get(schedule_index))
        .route("/archive/{schedule}/atom.xml", get(feed))
        .route("/archive/{schedule}/{slug}", get(to_slash_page))
        .route("/archive/{schedule}/{slug}/", get(page))
        .with_state(state)
}

/// A schedule name as the config allows them (letters, digits, `-`, `_`).
fn schedule_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `YYYY-MM-DD` or `YYYY-MM-DD-N`.
fn slug_ok(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b.len() <= 20
        && b.iter().all(|c| c.is_ascii_digit() || *c == b'-')
        && b[4] == b'-'
        && b[7] == b'-'
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!("archive: {e}");
    (StatusCode::SERVICE_UNAVAILABLE, "try again later\n").into_response()
}

fn with_type(body: String, content_type: &'static str) -> Response {
    let mut res = (StatusCode::OK, body).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    res
}

async fn to_slash(Path(schedule): Path<String>) -> Response {
    if !schedule_ok(&schedule) {
        return not_found();
    }
    Redirect::permanent(&format!("/archive/{schedule}/")).into_response()
}

async fn to_slash_page(Path((schedule, slug)): Path<(String, String)>) -> Response {
    if !schedule_ok(&schedule) || !slug_ok(&slug) {
        return not_found();
    }
    Redirect::permanent(&format!("/archive/{schedule}/{slug}/")).into_response()
}

async fn page(
    State(a): State<Arc<Archive>>,
    Path((schedule, slug)): Path<(String, String)>,
) -> Response {
    if !schedule_ok(&schedule) || !slug_ok(&slug) {
        return not_found();
    }
    match a.store.issue(&schedule, &slug).await {
        Ok(Some(issue)) => with_type(issue.html, "text/html; charset=utf-8"),
        Ok(None) => not_found(),
        Err(e) => unavailable(e),
    }
}

async fn index(State(a): State<Arc<Archive>>) -> Response {
    listing(&a, None).await
}

async fn schedule_index(State(a): State<Arc<Archive>>, Path(schedule): Path<String>) -> Response {
    if !schedule_ok(&schedule) {
        return not_found();
    }
    listing(&a, Some(&schedule)).await
}

async fn listing(a: &Archive, schedule: Option<&str>) -> Response {
    let issues = match a.store.issues(schedule, LISTED).await {
        Ok(list) => list,
        Err(e) => return unavailable(e),
    };
    if schedule.is_some() && issues.is_empty() {
        return not_found();
    }
    let site = &a.config.site;
    let items: Vec<_> = issues
        .iter()
        .map(|i| {
            json!({
                "subject": i.subject,
                "url": a.config.archive_url(&i.schedule, Some(&i.slug)).to_string(),
                "date": i.published_at.format("%-d %B %Y").to_string(),
                "date_iso": i.published_at.to_rfc3339(),
                "schedule": i.schedule,
                "schedule_url": a.config.archive_url(&i.schedule, None).to_string(),
                "summary": i.summary.lines().collect::<Vec<_>>(),
            })
        })
        .collect();
    let data = json!({
        "site_title": site.title,
        "language": site.language.as_str(),
        "title": match schedule {
            Some(s) => format!("{} archive: {s}", site.title),
            None => format!("{} archive", site.title),
        },
        "schedule": schedule,
        "feed": schedule.map(|s| a.config.archive_url(s, None).join("atom.xml").map(|u| u.to_string()).unwrap_or_default()),
        "subscribe": a.config.page_url("subscribe", None).to_string(),
        "issues": items,
    });
    match a.templates.render("archive.html", &data) {
        Ok(body) => with_type(body, "text/html; charset=utf-8"),
        Err(e) => {
            tracing::error!("{e:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

async fn feed(State(a): State<Arc<Archive>>, Path(schedule): Path<String>) -> Response {
    if !schedule_ok(&schedule) {
        return not_found();
    }
    match a.store.issues(Some(&schedule), LISTED).await {
        Ok(issues) if issues.is_empty() => not_found(),
        Ok(issues) => with_type(
            atom(&a.config, &schedule, &issues),
            "application/atom+xml; charset=utf-8",
        ),
        Err(e) => unavailable(e),
    }
}

/// The archive of one schedule as Atom: one entry per page, newest first.
pub fn atom(config: &Config, schedule: &str, issues: &[Issue]) -> String {
    let index = config.archive_url(schedule, None);
    let own = index
        .join("atom.xml")
        .map(|u| u.to_string())
        .unwrap_or_default();
    let time =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let updated = issues
        .iter()
        .map(|i| i.published_at)
        .max()
        .map_or_else(|| "1970-01-01T00:00:00Z".to_string(), time);
    let site = &config.site;
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"{}\">\n<title>{}</title>\n<id>{}</id>\n<link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n<link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n<updated>{updated}</updated>\n<author><name>{}</name></author>\n",
        escape_html(site.language.as_str()),
        escape_html(&format!("{}: {schedule} archive", site.title)),
        escape_html(index.as_str()),
        escape_html(&own),
        escape_html(index.as_str()),
        escape_html(&site.author.name),
    );
    for i in issues {
        let url = config.archive_url(&i.schedule, Some(&i.slug));
        let summary: Vec<&str> = i.summary.lines().collect();
        out.push_str(&format!(
            "<entry>\n<title>{}</title>\n<id>{}</id>\n<link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n<updated>{}</updated>\n<summary>{}</summary>\n</entry>\n",
            escape_html(&i.subject),
            escape_html(url.as_str()),
            escape_html(url.as_str()),
            time(i.published_at),
            escape_html(&summary.join(" · ")),
        ));
    }
    out.push_str("</feed>\n");
    out
}
