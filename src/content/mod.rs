//! The content directory becomes a [`Catalog`]: every publishable article,
//! newest first, plus a [`LoadReport`] that names each rejected file and why.
//! One bad file never stops the others from publishing.

mod article;
mod cache;
mod dates;
mod error;
mod fields;
mod first_seen;
mod front_matter;
mod html;
mod links;
mod markdown;
mod message;
mod permalink;
mod plain;
mod scan;
mod sections;
mod template_tags;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Datelike, FixedOffset, Utc};
use rayon::prelude::*;

pub use article::{Article, Image, Tag};
pub use cache::{CacheStats, ContentCache};
pub use error::ContentError;
pub use first_seen::{FirstSeen, FirstSeenChanges};
pub use message::{render_message, Message};
pub use scan::{scan, Kind, Scan, SourceFile};
pub use sections::{normalize as normalize_section, Section};

use crate::config::Config;

/// The articles that are published now, newest first, and the sections
/// they belong to.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    articles: Vec<Arc<Article>>,
    sections: Vec<Section>,
}

/// A tag and the articles that carry it (newest first).
#[derive(Debug, Clone)]
pub struct TagGroup {
    pub tag: Tag,
    pub articles: Vec<Arc<Article>>,
}

impl Catalog {
    /// Sorts newest first; articles of the same instant by permalink in
    /// reverse byte order, as Zola's feeds list them, then by id, so the
    /// order never depends on the file system.
    pub fn new(mut articles: Vec<Arc<Article>>) -> Catalog {
        articles.sort_by(|a, b| {
            b.published
                .cmp(&a.published)
                .then_with(|| b.url.as_str().cmp(a.url.as_str()))
                .then_with(|| a.id.cmp(&b.id))
        });
        Catalog {
            articles,
            sections: Vec::new(),
        }
    }

    /// The same catalog with its sections.
    pub fn with_sections(mut self, sections: Vec<Section>) -> Catalog {
        self.sections = sections;
        self
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// Whether `article` is in one of `paths` (normalized section paths,
    /// `""` for the root); every article is when `paths` is empty.
    pub fn in_sections(&self, article: &Article, paths: &[String]) -> bool {
        paths.is_empty() || paths.contains(&article.section)
    }

    pub fn articles(&self) -> &[Arc<Article>] {
        &self.articles
    }

    pub fn len(&self) -> usize {
        self.articles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.articles.is_empty()
    }

    /// Every tag with its articles, by tag slug.
    pub fn tags(&self) -> BTreeMap<String, TagGroup> {
        let mut groups: BTreeMap<String, TagGroup> = BTreeMap::new();
        for a in &self.articles {
            for t in &a.tags {
                match groups.get_mut(&t.slug) {
                    Some(g) => g.articles.push(Arc::clone(a)),
                    None => {
                        groups.insert(
                            t.slug.clone(),
                            TagGroup {
                                tag: t.clone(),
                                articles: vec![Arc::clone(a)],
                            },
                        );
                    }
                }
            }
        }
        groups
    }
}

/// What happened to the files of one load.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Article files found.
    pub files: usize,
    pub rejected: Vec<ContentError>,
    pub drafts: usize,
    /// The drafts' files, as the user names them.
    pub draft_files: Vec<std::path::PathBuf>,
    /// Dated in the future; they publish at their time.
    pub scheduled: usize,
    /// When the next scheduled article is due.
    pub next_scheduled: Option<DateTime<Utc>>,
    /// Skipped things that are not errors (symlinks leading outside, …),
    /// and notes on published articles (a date read leniently, …).
    pub warnings: Vec<String>,
    /// Files that are not articles, each with the reason.
    pub skipped: Vec<Skipped>,
}

/// A file that is not an article, and why (`herald check --verbose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// As the user names it: the content directory joined with the path.
    pub path: std::path::PathBuf,
    pub reason: String,
}

/// Loads the configured content directory as of `now`. Undated articles
/// take their date from `first_seen`, which records new ones.
pub fn load(
    config: &Config,
    now: DateTime<Utc>,
    first_seen: &mut FirstSeen,
) -> anyhow::Result<(Catalog, LoadReport)> {
    let content_dir = config.content.dir.as_path();
    let t = std::time::Instant::now();
    let scan = scan(config)?;
    tracing::debug!(
        files = scan.files.len(),
        elapsed_ms = t.elapsed().as_millis() as u64,
        "scanned"
    );
    let t = std::time::Instant::now();
    let parsed = parse_all(
        &scan.files,
        config,
        content_dir,
        first_seen,
        &scan.sections,
        now,
    );
    tracing::debug!(elapsed_ms = t.elapsed().as_millis() as u64, "parsed");
    Ok(assemble(config, scan, parsed, now, first_seen))
}

/// A parse result; articles are shared so that unchanged ones are reused
/// across rebuilds rather than copied.
#[derive(Debug, Clone)]
pub enum Parsed {
    Article(Arc<Article>),
    /// Not an article, with the reason.
    Skipped(String),
    Rejected(ContentError),
}

impl Parsed {
    /// The article, when the file is one.
    pub fn article(&self) -> Option<&Arc<Article>> {
        match self {
            Parsed::Article(a) => Some(a),
            _ => None,
        }
    }
}

/// Parses every file in parallel; the result is in `files` order.
pub fn parse_all(
    files: &[SourceFile],
    config: &Config,
    content_dir: &Path,
    first_seen: &FirstSeen,
    sections: &[Section],
    now: DateTime<Utc>,
) -> Vec<Parsed> {
    let assigned = |f: &SourceFile| -> DateTime<FixedOffset> {
        first_seen
            .get(&f.rel)
            .unwrap_or_else(|| modified_date(f.modified, now).fixed_offset())
    };
    let ctx = article::ParseContext {
        config,
        content_dir,
        assigned_date: &assigned,
        sections,
    };
    files
        .par_iter()
        .map(|f| match article::parse_file(f, &ctx) {
            Ok(article::FileOutcome::Article(a)) => Parsed::Article(Arc::new(*a)),
            Ok(article::FileOutcome::Skipped(reason)) => Parsed::Skipped(reason),
            Err(e) => Parsed::Rejected(e),
        })
        .collect()
}

/// A file's modification time as a date, never later than `now`: a file
/// from a machine whose clock is ahead (or set to 30000) was first seen
/// now, not in the future.
fn modified_date(t: std::time::SystemTime, now: DateTime<Utc>) -> DateTime<Utc> {
    let since = t.duration_since(std::time::UNIX_EPOCH).ok();
    since
        .and_then(|d| DateTime::<Utc>::from_timestamp(d.as_secs() as i64, d.subsec_nanos()))
        .filter(|d| d.fixed_offset().year() < 9999)
        .map_or(now, |d| d.min(now))
}

/// Turns parse results into the catalog: drops drafts and future articles,
/// rejects duplicates, records assigned dates.
pub fn assemble(
    config: &Config,
    mut scan: Scan,
    parsed: Vec<Parsed>,
    now: DateTime<Utc>,
    first_seen: &mut FirstSeen,
) -> (Catalog, LoadReport) {
    let mut report = LoadReport {
        files: scan.files.len(),
        warnings: std::mem::take(&mut scan.warnings),
        skipped: std::mem::take(&mut scan.skipped),
        ..LoadReport::default()
    };
    let mut candidates: Vec<(Arc<Article>, &SourceFile)> = Vec::new();
    for (result, file) in parsed.into_iter().zip(&scan.files) {
        match result {
            Parsed::Article(a) => {
                report.warnings.extend(
                    a.notes
                        .iter()
                        .map(|n| format!("{}: {n}", file.abs.display())),
                );
                candidates.push((a, file));
            }
            Parsed::Skipped(reason) => report.skipped.push(Skipped {
                path: file.abs.clone(),
                reason,
            }),
            Parsed::Rejected(e) => report.rejected.push(e),
        }
    }

    // Remember assigned dates (drafts too, so a draft keeps its date when
    // it is published). Forget files that are gone or now carry a date of
    // their own; a file rejected for the moment keeps its record.
    if !first_seen.is_empty() || candidates.iter().any(|(a, _)| a.date_assigned) {
        let dated_now: std::collections::HashSet<&str> = candidates
            .iter()
            .filter(|(a, _)| !a.date_assigned)
            .map(|(a, _)| a.source.as_str())
            .collect();
        let present: std::collections::HashSet<&str> =
            scan.files.iter().map(|f| f.rel.as_str()).collect();
        first_seen.retain(|rel| present.contains(rel) && !dated_now.contains(rel));
        for (a, _) in &candidates {
            if a.date_assigned {
                first_seen.record(&a.source, a.published);
            }
        }
    }

    links::resolve(
        &mut candidates,
        config.site.base_url.url(),
        &mut report.warnings,
    );

    // Oldest first, so the article that had a URL first keeps it.
    candidates.sort_by(|(a, fa), (b, fb)| {
        a.published
            .cmp(&b.published)
            .then_with(|| fa.rel.cmp(&fb.rel))
    });
    // Keys borrow from the articles: no allocation per article.
    let mut by_url: HashMap<&str, &SourceFile> = HashMap::with_capacity(candidates.len());
    let mut by_id: HashMap<&str, &SourceFile> = HashMap::with_capacity(candidates.len());
    let mut published = Vec::with_capacity(candidates.len());
    for (a, file) in &candidates {
        if a.draft {
            report.drafts += 1;
            report.draft_files.push(file.abs.clone());
            continue;
        }
        let when = a.published_utc();
        if when > now {
            report.scheduled += 1;
            report.next_scheduled = Some(report.next_scheduled.map_or(when, |n| n.min(when)));
            continue;
        }
        if let Some(first) = by_url.get(a.url.as_str()) {
            report.rejected.push(ContentError::new(
                file.abs.clone(),
                format!(
                    "duplicate slug: URL {} is already taken by {}",
                    a.url,
                    first.abs.display()
                ),
            ));
            continue;
        }
        if let Some(first) = by_id.get(a.id.as_str()) {
            report.rejected.push(ContentError::new(
                file.abs.clone(),
                format!(
                    "duplicate id `{}`: already used by {}",
                    a.id,
                    first.abs.display()
                ),
            ));
            continue;
        }
        by_url.insert(a.url.as_str(), file);
        by_id.insert(a.id.as_str(), file);
        published.push(Arc::clone(a));
    }
    report.rejected.sort_by(|a, b| a.path.cmp(&b.path));
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    let found = std::mem::take(&mut scan.sections);
    (Catalog::new(published).with_sections(found), report)
}
