//! The content directory becomes a [`Catalog`]: every publishable article,
//! newest first, plus a [`LoadReport`] that names each rejected file and why.
//! One bad file never stops the others from publishing.

mod article;
mod cache;
mod dates;
mod error;
mod first_seen;
mod front_matter;
mod html;
mod markdown;
mod plain;
mod scan;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset, Utc};
use rayon::prelude::*;

pub use article::{Article, Image, Tag};
pub use cache::{CacheStats, ContentCache};
pub use error::ContentError;
pub use first_seen::{FirstSeen, FirstSeenChanges};
pub use scan::{scan, Kind, Scan, SourceFile};

use crate::config::Config;

/// The articles that are published now, newest first.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    articles: Vec<Arc<Article>>,
}

/// A tag and the articles that carry it (newest first).
#[derive(Debug, Clone)]
pub struct TagGroup {
    pub tag: Tag,
    pub articles: Vec<Arc<Article>>,
}

impl Catalog {
    /// Sorts newest first; ties (same instant) by id, so the order never
    /// depends on the file system.
    pub fn new(mut articles: Vec<Arc<Article>>) -> Catalog {
        articles.sort_by(|a, b| b.published.cmp(&a.published).then_with(|| a.id.cmp(&b.id)));
        Catalog { articles }
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
    /// Dated in the future; they publish at their time.
    pub scheduled: usize,
    /// When the next scheduled article is due.
    pub next_scheduled: Option<DateTime<Utc>>,
    /// Skipped things that are not errors (symlinks leading outside, …).
    pub warnings: Vec<String>,
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
    let scan = scan(content_dir)?;
    tracing::debug!(
        files = scan.files.len(),
        elapsed_ms = t.elapsed().as_millis() as u64,
        "scanned"
    );
    let t = std::time::Instant::now();
    let parsed = parse_all(&scan.files, config, content_dir, first_seen);
    tracing::debug!(elapsed_ms = t.elapsed().as_millis() as u64, "parsed");
    Ok(assemble(scan, parsed, now, first_seen))
}

/// A parse result; articles are shared so that unchanged ones are reused
/// across rebuilds rather than copied.
pub type Parsed = Result<Arc<Article>, ContentError>;

/// Parses every file in parallel; the result is in `files` order.
pub fn parse_all(
    files: &[SourceFile],
    config: &Config,
    content_dir: &Path,
    first_seen: &FirstSeen,
) -> Vec<Parsed> {
    let assigned = |f: &SourceFile| -> DateTime<FixedOffset> {
        first_seen.get(&f.rel).unwrap_or_else(|| {
            DateTime::<Utc>::from(f.modified)
                .with_timezone(&Utc)
                .fixed_offset()
        })
    };
    let ctx = article::ParseContext {
        config,
        content_dir,
        assigned_date: &assigned,
    };
    files
        .par_iter()
        .map(|f| article::parse_file(f, &ctx).map(Arc::new))
        .collect()
}

/// Turns parse results into the catalog: drops drafts and future articles,
/// rejects duplicates, records assigned dates.
pub fn assemble(
    scan: Scan,
    parsed: Vec<Parsed>,
    now: DateTime<Utc>,
    first_seen: &mut FirstSeen,
) -> (Catalog, LoadReport) {
    let mut report = LoadReport {
        files: scan.files.len(),
        warnings: scan.warnings,
        ..LoadReport::default()
    };
    let mut candidates: Vec<(Arc<Article>, &SourceFile)> = Vec::new();
    for (result, file) in parsed.into_iter().zip(&scan.files) {
        match result {
            Ok(a) => candidates.push((a, file)),
            Err(e) => report.rejected.push(e),
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
    (Catalog::new(published), report)
}
