//! The page at the feeds base path: every feed being served as a link, and
//! as a `<link rel="alternate">` so that browsers and readers discover
//! them. Plain HTML with inline CSS, no script.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use super::Ctx;
use crate::base::served::FeedFile;
use crate::base::FeedFormat;

const STYLE: &str =
    "body{font:1rem/1.5 system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff}\
main{max-width:40rem;margin:0 auto;padding:1rem}\
a{color:#0645ad}a:focus{outline:2px solid currentColor;outline-offset:2px}\
ul{padding-left:1.25rem}li{margin:.25rem 0}\
@media (prefers-color-scheme:dark){body{color:#eee;background:#111}a{color:#8ab4f8}}";

/// Inline CSS only: nothing else may load, run or frame the page.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

pub(super) fn page(ctx: &Ctx) -> Response {
    let html = render(ctx);
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

fn render(ctx: &Ctx) -> String {
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

    let title = escape(&config.site.title);
    let url = |f: &FeedFile| match config.feeds_base_url().join(&f.path) {
        Ok(u) => escape(u.as_str()),
        Err(_) => escape(&f.path),
    };
    let feed_title = |g: &Group<'_>, f: &FeedFile| {
        if !f.title.is_empty() {
            format!("{} ({})", f.title, format_name(f.format))
        } else if g.dir.is_empty() {
            format!("{} ({})", config.site.title, format_name(f.format))
        } else {
            format!(
                "{} – {} ({})",
                config.site.title,
                g.name(&config.site.title),
                format_name(f.format)
            )
        }
    };

    let mut out = String::with_capacity(4096);
    out.push_str("<!DOCTYPE html>\n");
    let _ = writeln!(
        out,
        "<html lang=\"{}\">",
        escape(config.site.language.as_str())
    );
    out.push_str("<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    let _ = writeln!(out, "<title>Feeds – {title}</title>");
    for g in site.iter().chain(&others) {
        for f in &g.files {
            let _ = writeln!(
                out,
                "<link rel=\"alternate\" type=\"{}\" title=\"{}\" href=\"{}\">",
                media_type(f.format),
                escape(&feed_title(g, f)),
                url(f),
            );
        }
    }
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>\n<main>");
    let _ = writeln!(out, "<h1>{title}</h1>");
    if !config.site.description.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", escape(&config.site.description));
    }

    if site.is_empty() && others.is_empty() {
        out.push_str("<p>No feeds have been published yet.</p>\n");
    }
    if let Some(g) = site.first() {
        out.push_str("<h2 id=\"site\">Everything</h2>\n<ul aria-labelledby=\"site\">\n");
        for f in &g.files {
            let _ = writeln!(
                out,
                "<li><a href=\"{}\">{}</a></li>",
                url(f),
                format_name(f.format)
            );
        }
        out.push_str("</ul>\n");
    }
    if !others.is_empty() {
        out.push_str("<h2 id=\"tags\">By tag</h2>\n<ul aria-labelledby=\"tags\">\n");
        for g in &others {
            let name = escape(g.name(&config.site.title));
            let _ = write!(out, "<li>{name}:");
            for (i, f) in g.files.iter().enumerate() {
                let sep = if i == 0 { " " } else { ", " };
                // The visible text is short; the label says whose feed it is.
                let _ = write!(
                    out,
                    "{sep}<a href=\"{}\" aria-label=\"{} for {name}\">{}</a>",
                    url(f),
                    feed_noun(f.format),
                    format_name(f.format),
                );
            }
            out.push_str("</li>\n");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
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

/// Escapes text for HTML content and quoted attribute values.
fn escape(s: &str) -> String {
    crate::base::text::escape_html(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_attribute_specials() {
        assert_eq!(
            escape(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape("café"), "café");
    }
}
