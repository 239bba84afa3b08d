//! One source file becomes one [`Article`]: fields from front matter with
//! their fallbacks (dates from file names and paths, titles from headings,
//! summaries from the body), a permalink, and HTML whose links are absolute.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, FixedOffset, Utc};
use url::Url;

use super::dates::{at_midnight, date_from_name, date_from_path, parse_date, strip_date_prefix};
use super::error::ContentError;
use super::front_matter::{self, FrontMatter, OneOrMany, RawAuthor, RawImage};
use super::scan::{Kind, SourceFile};
use super::{html, markdown, plain};
use crate::base::text::{collapse_whitespace, slugify, xml_clean};
use crate::config::{Config, LanguageTag, Person};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// As the author wrote it (the first spelling seen).
    pub name: String,
    /// Lower-case, URL-safe; tags with the same slug are the same tag.
    pub slug: String,
}

impl Tag {
    pub fn new(name: &str) -> Option<Tag> {
        let name = collapse_whitespace(name);
        let slug = slugify(&name);
        (!slug.is_empty()).then_some(Tag { name, slug })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub url: Url,
    pub mime: String,
    /// Size in bytes; 0 when unknown (as the RSS profile says to write it).
    pub length: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Article {
    /// Source file relative to the content directory (`posts/a.md`).
    pub source: String,
    pub slug: String,
    pub title: String,
    /// The permalink.
    pub url: Url,
    /// Stable identity: the front matter's `id`, else the permalink.
    pub id: String,
    pub published: DateTime<FixedOffset>,
    pub updated: Option<DateTime<FixedOffset>>,
    /// Plain text.
    pub summary: String,
    pub content_html: String,
    /// Never empty: the site's author stands in when the article names none.
    pub authors: Vec<Person>,
    pub tags: Vec<Tag>,
    pub language: Option<LanguageTag>,
    pub image: Option<Image>,
    pub draft: bool,
    /// The date came from neither front matter, file name nor path.
    pub date_assigned: bool,
}

impl Article {
    /// The later of `updated` and `published`.
    pub fn last_modified(&self) -> DateTime<FixedOffset> {
        match self.updated {
            Some(u) if u > self.published => u,
            _ => self.published,
        }
    }

    pub fn published_utc(&self) -> DateTime<Utc> {
        self.published.with_timezone(&Utc)
    }
}

/// What parsing needs besides the file.
pub struct ParseContext<'a> {
    pub config: &'a Config,
    /// Display prefix for error paths (the content directory as configured).
    pub content_dir: &'a Path,
    /// Looks up the date an undated file was first given.
    pub assigned_date: &'a (dyn Fn(&SourceFile) -> DateTime<FixedOffset> + Sync),
}

/// Reads and parses one file.
pub fn parse_file(file: &SourceFile, ctx: &ParseContext<'_>) -> Result<Article, ContentError> {
    let shown = ctx.content_dir.join(&file.rel);
    let err = |reason: String| ContentError::new(shown.clone(), reason);
    let max = ctx.config.content.max_file_size.0;
    if file.size > max {
        return Err(err(format!(
            "file is {} bytes, more than content.max_file_size ({max} bytes)",
            file.size
        )));
    }
    let bytes = std::fs::read(&file.abs).map_err(|e| err(format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > max {
        return Err(err(format!(
            "file is more than content.max_file_size ({max} bytes)"
        )));
    }
    if let Some(pos) = bytes.iter().take(8192).position(|&b| b == 0) {
        return Err(err("binary file, not text (it contains NUL bytes)".into())
            .at_line(Some(line_at(&bytes, pos))));
    }
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        err(format!(
            "not valid UTF-8 (bad byte at offset {}); save the file as UTF-8",
            e.valid_up_to()
        ))
        .at_line(Some(line_at(&bytes, e.valid_up_to())))
    })?;
    let built = match file.kind {
        Kind::Markdown => from_markdown(file, text, ctx),
        Kind::Text => from_plain(file, text, ctx),
    };
    built.map_err(|(line, reason)| err(reason).at_line(line))
}

type Failure = (Option<usize>, String);

/// An article's body, rendered once its URL is known.
struct Body {
    html: String,
    summary: String,
    /// Title to use when the front matter has none.
    title_fallback: Option<String>,
    /// Raw HTML inside: run the HTML pass over the result.
    needs_html_pass: bool,
}

fn from_markdown(
    file: &SourceFile,
    text: &str,
    ctx: &ParseContext<'_>,
) -> Result<Article, Failure> {
    let split = front_matter::split(text).map_err(|e| (e.line, e.reason))?;
    let fm = match split.format {
        Some(format) => {
            front_matter::parse(format, split.front, 2).map_err(|e| (e.line, e.reason))?
        }
        None => FrontMatter::default(),
    };
    let key_line = |key: &str| find_key_line(split.front, key).map(|l| l + 1);
    assemble(file, fm, ctx, &key_line, |url| {
        let r = markdown::render(split.body, url);
        Body {
            html: r.html,
            summary: r.summary,
            title_fallback: r.first_heading,
            needs_html_pass: r.has_raw_html,
        }
    })
}

fn from_plain(file: &SourceFile, text: &str, ctx: &ParseContext<'_>) -> Result<Article, Failure> {
    let Some(p) = plain::parse(text) else {
        return Err((
            None,
            "empty file: a text article needs its title on the first line".into(),
        ));
    };
    assemble(file, FrontMatter::default(), ctx, &|_| None, |_| Body {
        html: p.html,
        summary: p.summary,
        title_fallback: Some(p.title),
        needs_html_pass: false,
    })
}

fn assemble(
    file: &SourceFile,
    fm: FrontMatter,
    ctx: &ParseContext<'_>,
    key_line: &dyn Fn(&str) -> Option<usize>,
    render_body: impl FnOnce(&Url) -> Body,
) -> Result<Article, Failure> {
    let config = ctx.config;
    let tz = config.site.timezone.0;

    // Slug: explicit, else the last segment of an explicit path, else the
    // file (or bundle folder) name without its date prefix.
    let slug = match &fm.slug {
        Some(s) => {
            validate_slug(s).map_err(|r| (key_line("slug"), r))?;
            s.trim().to_string()
        }
        None => {
            let from_path = fm
                .path
                .as_deref()
                .and_then(|p| p.trim_matches('/').rsplit('/').next())
                .filter(|s| !s.is_empty());
            let raw = from_path.unwrap_or_else(|| strip_date_prefix(file.name_for_slug()));
            raw.split_whitespace().collect::<Vec<_>>().join("-")
        }
    };

    // Date: front matter, file or folder name, front-matter path, else the
    // date herald assigned when it first saw the file.
    let mut date_assigned = false;
    let published = match &fm.date {
        Some(raw) => parse_date(&raw.as_text(), tz).map_err(|r| (key_line("date"), r))?,
        None => {
            let from_names = date_from_name(file.stem())
                .or_else(|| date_from_name(file.name_for_slug()))
                .or_else(|| fm.path.as_deref().and_then(date_from_path));
            match from_names {
                Some(d) => at_midnight(d, tz),
                None => {
                    date_assigned = true;
                    (ctx.assigned_date)(file)
                }
            }
        }
    };
    let updated = match &fm.updated {
        Some(raw) => Some(parse_date(&raw.as_text(), tz).map_err(|r| {
            (
                key_line_any(
                    key_line,
                    &["updated", "lastmod", "last_modified_at", "modified"],
                ),
                r,
            )
        })?),
        None => None,
    };

    let url = permalink(file, &fm, &slug, published, config)
        .map_err(|r| (key_line_any(key_line, &["url", "path", "permalink"]), r))?;
    let id = match &fm.id {
        Some(id) if !id.trim().is_empty() => id.trim().to_string(),
        Some(_) => {
            return Err((
                key_line_any(key_line, &["id", "guid"]),
                "`id` is empty".into(),
            ))
        }
        None => url.to_string(),
    };

    let language = match &fm.language {
        Some(l) => Some(
            LanguageTag::parse(l.trim())
                .map_err(|r| (key_line_any(key_line, &["language", "lang"]), r))?,
        ),
        None => None,
    };

    let image = match &fm.image {
        Some(raw) => Some(resolve_image(raw, &url, file).map_err(|r| {
            (
                key_line_any(key_line, &["image", "cover", "cover_image"]),
                r,
            )
        })?),
        None => None,
    };

    let mut authors: Vec<Person> = fm
        .authors
        .clone()
        .or(fm.author.clone())
        .map(OneOrMany::into_vec)
        .unwrap_or_default()
        .into_iter()
        .map(|a| match a {
            RawAuthor::Name(name) => Person {
                name: collapse_whitespace(&name),
                email: None,
                url: None,
            },
            RawAuthor::Full { name, email, url } => Person {
                name: collapse_whitespace(&name),
                email,
                url,
            },
        })
        .filter(|p| !p.name.is_empty())
        .collect();
    if authors.is_empty() {
        authors.push(config.site.author.clone());
    }

    let tags = collect_tags(&fm);
    let body = render_body(&url);
    let title = fm
        .title
        .as_deref()
        .map(collapse_whitespace)
        .filter(|t| !t.is_empty())
        .or(body.title_fallback);
    let Some(title) = title else {
        return Err((
            None,
            "no title: add `title` to the front matter (or start the text with a `# Heading`)"
                .into(),
        ));
    };
    let summary = fm
        .summary
        .as_deref()
        .or(fm.description.as_deref())
        .map(collapse_whitespace)
        .filter(|s| !s.is_empty())
        .unwrap_or(body.summary);
    let content_html = if body.needs_html_pass {
        html::absolutize_and_clean(&body.html, &url).map_err(|r| (None, r))?
    } else {
        body.html
    };
    let draft = fm.draft == Some(true) || fm.published == Some(false) || file.in_drafts_folder();

    Ok(Article {
        source: file.rel.clone(),
        slug: xml_clean(slug),
        title: xml_clean(title),
        url,
        id: xml_clean(id),
        published,
        updated,
        summary: xml_clean(summary),
        content_html: xml_clean(content_html),
        authors: authors
            .into_iter()
            .map(|p| Person {
                name: xml_clean(p.name),
                email: p.email.map(xml_clean),
                url: p.url.map(xml_clean),
            })
            .collect(),
        tags: tags
            .into_iter()
            .map(|t| Tag {
                name: xml_clean(t.name),
                slug: t.slug,
            })
            .collect(),
        language,
        image,
        draft,
        date_assigned,
    })
}

fn key_line_any(key_line: &dyn Fn(&str) -> Option<usize>, keys: &[&str]) -> Option<usize> {
    keys.iter().find_map(|k| key_line(k))
}

/// Tags from `tags`, `categories`, `category` and every Zola taxonomy,
/// deduplicated by slug, in the order written.
fn collect_tags(fm: &FrontMatter) -> Vec<Tag> {
    let mut names: Vec<String> = Vec::new();
    let mut add_list = |v: &Option<OneOrMany<String>>| {
        if let Some(v) = v.clone() {
            match v {
                // Jekyll reads `tags: a b` as two tags.
                OneOrMany::One(s) => names.extend(s.split_whitespace().map(str::to_string)),
                OneOrMany::Many(list) => names.extend(list),
            }
        }
    };
    add_list(&fm.tags);
    add_list(&fm.categories);
    if let Some(taxonomies) = &fm.taxonomies {
        for terms in taxonomies.values() {
            add_list(&Some(terms.clone()));
        }
    }
    if let Some(c) = &fm.category {
        names.push(c.clone());
    }
    let mut seen = std::collections::BTreeSet::new();
    names
        .iter()
        .filter_map(|n| Tag::new(n))
        .filter(|t| seen.insert(t.slug.clone()))
        .collect()
}

fn validate_slug(s: &str) -> Result<(), String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("`slug` is empty".into());
    }
    if t == "."
        || t == ".."
        || t.chars().any(|c| {
            c == '/' || c == '\\' || c == '?' || c == '#' || c.is_whitespace() || c.is_control()
        })
    {
        return Err(format!(
            "slug `{s}` may not contain `/`, `\\`, `?`, `#` or spaces"
        ));
    }
    Ok(())
}

/// Builds the permalink from `url`, `path`, or the configured pattern.
fn permalink(
    file: &SourceFile,
    fm: &FrontMatter,
    slug: &str,
    published: DateTime<FixedOffset>,
    config: &Config,
) -> Result<Url, String> {
    let base = config.site.base_url.url();
    if let Some(u) = fm.url.as_deref().map(str::trim) {
        if let Ok(abs) = Url::parse(u) {
            if abs.scheme() != "http" && abs.scheme() != "https" {
                return Err(format!("url `{u}` must be an http(s) address or a path"));
            }
            return Ok(abs);
        }
        return join_site_path(base, u);
    }
    if let Some(p) = fm.path.as_deref() {
        return join_site_path(base, p);
    }
    let year = published.format("%Y").to_string();
    let month = published.format("%m").to_string();
    let day = published.format("%d").to_string();
    let vars = BTreeMap::from([
        ("year", year.as_str()),
        ("month", month.as_str()),
        ("day", day.as_str()),
        ("slug", slug),
        ("section", file.section()),
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

fn resolve_image(raw: &RawImage, article_url: &Url, file: &SourceFile) -> Result<Image, String> {
    let (src, mime, length) = match raw {
        RawImage::Src(s) => (s.as_str(), None, None),
        RawImage::Full { url, mime, length } => (url.as_str(), mime.clone(), *length),
    };
    let src = src.trim();
    if src.is_empty() {
        return Err("`image` is empty".into());
    }
    let url = article_url
        .join(src)
        .map_err(|e| format!("image `{src}` is not a valid URL or path: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "image `{src}` must be an http(s) address or a path"
        ));
    }
    let mime = match mime {
        Some(m) => m,
        None => mime_from_extension(url.path())
            .ok_or_else(|| format!("image `{src}`: unknown media type; give it as `image = {{ url = \"…\", type = \"image/…\" }}`"))?
            .to_string(),
    };
    // A relative image next to the article: its size is known.
    let length = length.unwrap_or_else(|| {
        if Url::parse(src).is_ok() || src.starts_with('/') {
            return 0;
        }
        let dir = file.abs.parent().unwrap_or(Path::new("."));
        std::fs::metadata(dir.join(src))
            .map(|m| m.len())
            .unwrap_or(0)
    });
    Ok(Image { url, mime, length })
}

fn mime_from_extension(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "pdf" => "application/pdf",
        _ => return None,
    })
}

/// 0-based line (within the front matter) where `key` is set.
fn find_key_line(front: &str, key: &str) -> Option<usize> {
    front
        .lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .map(|rest| rest.trim_start().starts_with(['=', ':']))
                .unwrap_or(false)
        })
        .map(|i| i + 1)
}

/// 1-based line of byte `pos`.
fn line_at(bytes: &[u8], pos: usize) -> usize {
    bytes[..pos.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
