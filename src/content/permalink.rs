//! An article's permalink: its `url` or `path` from front matter, checked
//! to stay on the site, or the `content.article_url` pattern filled in
//! with its date, slug, title, file name, folder and Jekyll categories.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, FixedOffset};
use url::Url;

use super::fields::Fields;
use super::scan::SourceFile;
use crate::base::text::slugify;
use crate::config::Config;

/// Builds the permalink from `url`, `path`, or the configured pattern.
pub fn permalink(
    file: &SourceFile,
    fm: &Fields,
    slug: &str,
    published: DateTime<FixedOffset>,
    config: &Config,
) -> Result<Url, String> {
    let base = config.site.base_url.url();
    if let Some(u) = fm.url.as_ref().map(|u| u.value.trim()) {
        if let Ok(abs) = Url::parse(u) {
            if abs.scheme() != "http" && abs.scheme() != "https" {
                return Err(format!("url `{u}` must be an http(s) address or a path"));
            }
            return Ok(abs);
        }
        return join_site_path(base, u);
    }
    if let Some(p) = &fm.path {
        return join_site_path(base, &p.value);
    }
    let f = |fmt: &str| published.format(fmt).to_string();
    let (year, short_year, month, day, y_day) = (f("%Y"), f("%y"), f("%m"), f("%d"), f("%j"));
    let (i_month, i_day) = (published.month().to_string(), published.day().to_string());
    let (hour, minute, second) = (f("%H"), f("%M"), f("%S"));
    let title = fm
        .title
        .as_ref()
        .map(|t| slugify(&t.value))
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| slugify(slug));
    // Jekyll: lower-case, each once, in the order written.
    let mut categories: Vec<String> = Vec::new();
    for c in &fm.categories {
        let c = c.to_lowercase();
        if !categories.contains(&c) {
            categories.push(c);
        }
    }
    let categories = categories.join("/");
    // The folder holding the article; a page bundle's parent folder.
    let folder = if file.stem() == "index" {
        file.section()
            .rsplit_once('/')
            .map(|(d, _)| d)
            .unwrap_or("")
    } else {
        file.section()
    };
    let vars = BTreeMap::from([
        ("year", year.as_str()),
        ("short_year", short_year.as_str()),
        ("month", month.as_str()),
        ("i_month", i_month.as_str()),
        ("day", day.as_str()),
        ("i_day", i_day.as_str()),
        ("y_day", y_day.as_str()),
        ("hour", hour.as_str()),
        ("minute", minute.as_str()),
        ("second", second.as_str()),
        ("slug", slug),
        ("title", title.as_str()),
        ("filename", file.stem()),
        ("section", folder),
        ("categories", categories.as_str()),
    ]);
    let path = config.content.article_url.expand(&vars);
    base.join(&path)
        .map_err(|e| format!("cannot build the article URL from `{path}`: {e}"))
}

/// A site-relative path from front matter, checked so that it stays under
/// the site's base URL. Paths without a file extension get a trailing `/`,
/// as static-site generators serve them.
fn join_site_path(base: &Url, p: &str) -> Result<Url, String> {
    let trimmed = p.trim().trim_start_matches('/');
    if trimmed.contains("://") || trimmed.starts_with('/') {
        return Err(format!(
            "path `{p}` must be relative to the site; use `url` for a full address"
        ));
    }
    if trimmed.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(format!("path `{p}` may not contain `.` or `..` segments"));
    }
    if trimmed.contains(['?', '#', '\\']) || trimmed.chars().any(char::is_control) {
        return Err(format!("path `{p}` may not contain `?`, `#` or `\\`"));
    }
    let last = trimmed.rsplit('/').next().unwrap_or("");
    let path = if trimmed.is_empty()
        || trimmed.ends_with('/')
        || last.contains('.') && has_file_extension(last)
    {
        trimmed.to_string()
    } else {
        format!("{trimmed}/")
    };
    base.join(&path)
        .map_err(|e| format!("path `{p}` does not make a valid URL: {e}"))
}

fn has_file_extension(last: &str) -> bool {
    matches!(
        last.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()),
        Some(e) if ["html", "htm", "xml", "php", "txt"].contains(&e.as_str())
    )
}
