//! One source file becomes one [`Article`]: fields from front matter with
//! their fallbacks (dates from file names and paths, titles from headings,
//! summaries from the body), a permalink, and HTML whose links are absolute.

use std::path::Path;

use chrono::{DateTime, FixedOffset, Utc};
use url::Url;

use super::dates::{at_midnight, date_from_name, date_from_path, parse_date, strip_date_prefix};
use super::error::ContentError;
use super::fields::{self, Fields, RawImage};
use super::front_matter::{self, Format, Table};
use super::permalink::permalink;
use super::scan::{Kind, SourceFile};
use super::template_tags::{self, Dialect, TagContext};
use super::{html, markdown, plain};
use crate::base::text::{collapse_whitespace, slugify, xml_clean};
use crate::config::{Config, LanguageTag, Person, Undated};

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
    /// The section it belongs to: a folder, `""` for the root.
    pub section: String,
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
    /// Things worth telling the author that did not stop publication
    /// (a date read leniently, template tags removed).
    pub notes: Vec<String>,
    /// The HTML holds markers for links to other articles, resolved once
    /// every URL is known (`super::links`).
    pub has_refs: bool,
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
    /// The site's sections, so that each article knows its own.
    pub sections: &'a [super::Section],
}

/// What one file turned out to be, when it is not broken.
#[derive(Debug)]
pub enum FileOutcome {
    Article(Box<Article>),
    /// Not an article (a redirect stub, a template page, a data dump, …):
    /// the reason, for `herald check --verbose`.
    Skipped(String),
}

/// Reads and parses one file.
pub fn parse_file(file: &SourceFile, ctx: &ParseContext<'_>) -> Result<FileOutcome, ContentError> {
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
type Outcome = Result<FileOutcome, Failure>;

/// An article's body, rendered once its URL is known.
struct Body {
    html: String,
    summary: String,
    /// Title to use when the front matter has none.
    title_fallback: Option<String>,
    /// Raw HTML inside: run the HTML pass over the result.
    needs_html_pass: bool,
}

fn from_markdown(file: &SourceFile, text: &str, ctx: &ParseContext<'_>) -> Outcome {
    let split = front_matter::split(text).map_err(|e| (e.line, e.reason))?;
    let table = match split.format {
        Some(format) => {
            front_matter::parse(format, split.front, 2).map_err(|e| (e.line, e.reason))?
        }
        None => Table::default(),
    };
    let fm = fields::read(&table, &ctx.config.content.fields).map_err(|e| {
        let format = if split.format == Some(Format::Toml) {
            "TOML"
        } else {
            "YAML"
        };
        (
            e.line,
            format!("{} (invalid {format} front matter)", e.reason),
        )
    })?;
    if let Some(reason) = &fm.not_article {
        return Ok(FileOutcome::Skipped(reason.clone()));
    }
    let dated = fm.date.is_some() || name_or_path_date(file, &fm).is_some();
    if fm.aliases_only && !dated {
        return Ok(FileOutcome::Skipped(
            "alias stub (`aliases` and no title or date)".into(),
        ));
    }
    if fm.template && !dated {
        return Ok(FileOutcome::Skipped(
            "template page (`template` set and no date)".into(),
        ));
    }
    let config = ctx.config;
    let dialect = Dialect::of(
        config.content.template_tags,
        split.format == Some(Format::Yaml),
        split.format == Some(Format::Toml),
    );
    let page = |k: &str| table.get(k).and_then(|n| n.value.scalar_text());
    let expanded = template_tags::expand(
        split.body,
        dialect,
        &TagContext {
            site: config.site.base_url.url(),
            variables: &config.content.variables,
            page: &page,
        },
    );
    let note = expanded.note();
    let outcome = assemble(file, fm, ctx, |url| {
        let r = markdown::render(&expanded.text, url);
        Body {
            html: r.html,
            summary: r.summary,
            title_fallback: r.first_heading,
            needs_html_pass: r.has_raw_html,
        }
    })?;
    Ok(match outcome {
        FileOutcome::Article(mut a) => {
            a.notes.extend(note);
            a.has_refs = expanded.has_refs;
            FileOutcome::Article(a)
        }
        skipped => skipped,
    })
}

fn from_plain(file: &SourceFile, text: &str, ctx: &ParseContext<'_>) -> Outcome {
    let p = match plain::parse(text) {
        Ok(p) => p,
        Err(plain::NotArticle::Empty) => {
            return Err((
                None,
                "empty file: a text article needs its title on the first line".into(),
            ))
        }
        Err(plain::NotArticle::Other(reason)) => return Ok(FileOutcome::Skipped(reason)),
    };
    assemble(file, Fields::default(), ctx, |_| Body {
        html: p.html,
        summary: p.summary,
        title_fallback: Some(p.title),
        needs_html_pass: false,
    })
}

/// A date from the file or folder name, or from a `YYYY/MM/DD` path.
fn name_or_path_date(file: &SourceFile, fm: &Fields) -> Option<chrono::NaiveDate> {
    date_from_name(file.stem())
        .or_else(|| date_from_name(file.name_for_slug()))
        .or_else(|| fm.path.as_ref().and_then(|p| date_from_path(&p.value)))
}

fn assemble(
    file: &SourceFile,
    fm: Fields,
    ctx: &ParseContext<'_>,
    render_body: impl FnOnce(&Url) -> Body,
) -> Outcome {
    let config = ctx.config;
    let tz = config.site.timezone.0;
    let mut notes = Vec::new();

    // Slug: explicit, else the last segment of an explicit path, else the
    // file (or bundle folder) name without its date prefix.
    let slug = match &fm.slug {
        Some(s) => {
            validate_slug(&s.value).map_err(|r| (s.line, r))?;
            s.value.trim().to_string()
        }
        None => {
            let from_path = fm
                .path
                .as_ref()
                .and_then(|p| p.value.trim_matches('/').rsplit('/').next())
                .filter(|s| !s.is_empty());
            let raw = from_path.unwrap_or_else(|| strip_date_prefix(file.name_for_slug()));
            raw.split_whitespace().collect::<Vec<_>>().join("-")
        }
    };

    // Date: front matter, file or folder name, front-matter path, else the
    // date herald assigned when it first saw the file.
    let mut date_assigned = false;
    let published = match &fm.date {
        Some(raw) => {
            let read = parse_date(&raw.value, tz).map_err(|r| (raw.line, r))?;
            notes.extend(read.note);
            read.at
        }
        None => match name_or_path_date(file, &fm) {
            Some(d) => at_midnight(d, tz),
            None if config.content.undated == Undated::Skip => {
                return Ok(FileOutcome::Skipped(
                    "no date (content.undated = \"skip\")".into(),
                ))
            }
            None => {
                date_assigned = true;
                (ctx.assigned_date)(file)
            }
        },
    };
    let updated = match &fm.updated {
        Some(raw) => {
            let read = parse_date(&raw.value, tz).map_err(|r| (raw.line, r))?;
            notes.extend(read.note);
            Some(read.at)
        }
        None => None,
    };

    let url = permalink(file, &fm, &slug, published, config).map_err(|r| {
        let line = [&fm.url, &fm.path]
            .iter()
            .find_map(|t| t.as_ref().map(|t| t.line));
        (line.flatten(), r)
    })?;
    let id = match &fm.id {
        Some(id) if !id.value.trim().is_empty() => id.value.trim().to_string(),
        Some(id) => return Err((id.line, "`id` is empty".into())),
        None => url.to_string(),
    };

    let language = match &fm.language {
        Some(l) => Some(LanguageTag::parse(l.value.trim()).map_err(|r| (l.line, r))?),
        None => None,
    };

    let image = match &fm.image {
        Some((raw, line)) => Some(resolve_image(raw, &url, file).map_err(|r| (*line, r))?),
        None => None,
    };

    let mut authors: Vec<Person> = fm
        .authors
        .iter()
        .map(|a| Person {
            name: collapse_whitespace(&a.name),
            email: a.email.clone(),
            url: a.url.clone(),
        })
        .filter(|p| !p.name.is_empty())
        .collect();
    if authors.is_empty() {
        authors.push(config.site.author.clone());
    }

    let tags = collect_tags(&fm.tags);
    let body = render_body(&url);
    let title = fm
        .title
        .as_ref()
        .map(|t| collapse_whitespace(&t.value))
        .filter(|t| !t.is_empty())
        .or(body.title_fallback);
    let Some(title) = title else {
        return Err((
            None,
            "no title: add `title` to the front matter (or start the text with a `# Heading`)"
                .into(),
        ));
    };
    let content_html = if body.needs_html_pass {
        html::absolutize_and_clean(&body.html, &url).map_err(|r| (None, r))?
    } else {
        body.html
    };
    // A feed entry always has a description: an article with no text of
    // its own is summed up by its title.
    let summary = fm
        .summary
        .as_ref()
        .map(|s| collapse_whitespace(&s.value))
        .filter(|s| !s.is_empty())
        .or(Some(body.summary).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| title.clone());
    let draft = fm.draft || fm.unpublished || file.in_drafts_folder();

    Ok(FileOutcome::Article(Box::new(Article {
        source: file.rel.clone(),
        section: super::sections::section_of(ctx.sections, &file.rel).to_string(),
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
        notes,
        has_refs: false,
    })))
}

/// Tags deduplicated by slug, in the order written.
fn collect_tags(names: &[String]) -> Vec<Tag> {
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

fn resolve_image(raw: &RawImage, article_url: &Url, file: &SourceFile) -> Result<Image, String> {
    let (mime, length) = (raw.mime.clone(), raw.length);
    let src = raw.src.trim();
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

/// 1-based line of byte `pos`.
fn line_at(bytes: &[u8], pos: usize) -> usize {
    bytes[..pos.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
