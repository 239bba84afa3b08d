//! The page at the feeds base path: every feed being served as a link, and
//! as a `<link rel="alternate">` so that browsers and readers discover
//! them. Rendered from the `feeds.html` template (overridable like the
//! others): plain HTML with inline CSS, no script.

use std::collections::BTreeMap;

use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use serde_json::{json, Value};

use super::{ApiError, Ctx};
use crate::base::served::FeedFile;
use crate::base::FeedFormat;

/// Inline CSS only: nothing else may load, run or frame the page.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

pub(super) fn page(ctx: &Ctx) -> Response {
    let html = match ctx.state.templates.render("feeds.html", &data(ctx)) {
        Ok(html) => html,
        Err(e) => {
            tracing::error!("cannot render the feeds index page: {e:#}");
            return ApiError::Internal(e).into_response();
        }
    };
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
        ],
        html,
    )
        .into_response()
}

/// One feed directory (`""` or `tags/<slug>/`) and its files, in format
/// order.
struct Group<'a> {
    dir: &'a str,
    files: Vec<&'a FeedFile>,
}

impl Group<'_> {
    /// Human name of the group: the tag slug, or the folder for anything
    /// else a future build might publish.
    fn name<'s>(&'s self, site_title: &str) -> &'s str {
        let dir = self.dir.trim_end_matches('/');
        let slug = dir.strip_prefix("tags/").unwrap_or(dir);
        // The tag as written (`C++`), from the feed title `Site – C++`.
        let prefix = format!("{site_title} – ");
        self.files
            .first()
            .and_then(|f| f.title.strip_prefix(prefix.as_str()))
            .filter(|t| !t.is_empty())
            .unwrap_or(slug)
    }
}

/// What `feeds.html` shows: every feed directory (site-wide first, then
/// each tag) with its files in format order.
fn data(ctx: &Ctx) -> Value {
    let config = &ctx.state.config;
    let snapshot = ctx.state.served.snapshot();
    let mut groups: BTreeMap<&str, Group<'_>> = BTreeMap::new();
    for file in snapshot.files.values() {
        let dir = match file.path.rfind('/') {
            Some(i) => &file.path[..=i],
            None => "",
        };
        groups
            .entry(dir)
            .or_insert_with(|| Group {
                dir,
                files: Vec::new(),
            })
            .files
            .push(file);
    }
    for g in groups.values_mut() {
        g.files.sort_by_key(|f| f.format);
    }
    // The empty directory sorts first: site-wide feeds lead.
    let (site, others): (Vec<_>, Vec<_>) = groups.into_values().partition(|g| g.dir.is_empty());

    let site_title = config.site.title.as_str();
    let url = |f: &FeedFile| match config.feeds_base_url().join(&f.path) {
        Ok(u) => u.to_string(),
        Err(_) => f.path.clone(),
    };
    let feed_title = |g: &Group<'_>, f: &FeedFile| {
        if !f.title.is_empty() {
            format!("{} ({})", f.title, format_name(f.format))
        } else if g.dir.is_empty() {
            format!("{site_title} ({})", format_name(f.format))
        } else {
            format!(
                "{site_title} – {} ({})",
                g.name(site_title),
                format_name(f.format)
            )
        }
    };
    let group = |g: &Group<'_>| {
        let files: Vec<Value> = g
            .files
            .iter()
            .map(|f| {
                json!({
                    "href": url(f),
                    "media_type": media_type(f.format),
                    "title": feed_title(g, f),
                    "format": format_name(f.format),
                    "noun": feed_noun(f.format),
                })
            })
            .collect();
        json!({ "name": g.name(site_title), "files": files })
    };
    let all: Vec<Value> = site.iter().chain(&others).map(group).collect();
    json!({
        "language": config.site.language.as_str(),
        "site_title": site_title,
        "description": config.site.description,
        "groups": all,
        "site": site.first().map(group),
        "tags": others.iter().map(group).collect::<Vec<_>>(),
    })
}

/// The media type for `<link type>`: without parameters, as readers match
/// it literally.
fn media_type(format: FeedFormat) -> &'static str {
    let ct = format.content_type();
    ct.split_once(';').map_or(ct, |(mt, _)| mt).trim()
}

/// What the link is, said in full, for screen readers.
fn feed_noun(format: FeedFormat) -> &'static str {
    match format {
        FeedFormat::Rss => "RSS feed",
        FeedFormat::Atom => "Atom feed",
        FeedFormat::Json => "JSON Feed",
    }
}

fn format_name(format: FeedFormat) -> &'static str {
    match format {
        FeedFormat::Rss => "RSS",
        FeedFormat::Atom => "Atom",
        FeedFormat::Json => "JSON Feed",
    }
}
