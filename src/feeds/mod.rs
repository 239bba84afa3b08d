//! Catalog -> feed files. [`plan`] decides which feeds exist (site-wide,
//! one per section that wants them, one per tag) and what each holds; `rss`, `atom` and `json` turn one
//! [`FeedSpec`] into bytes; [`write_all`] writes every file atomically and
//! leaves files whose bytes did not change untouched.

mod atom;
mod chunked;
mod json;
mod rss;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use rayon::prelude::*;
use url::Url;

use crate::base::fs::{write_if_changed_with, Durability};
use crate::base::FeedFormat;
use crate::config::{Config, SectionFeeds};
use crate::content::{Article, Catalog, Tag};

pub const GENERATOR: &str = "herald";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// One feed, independent of its format.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// Folder under the output directory: `""`, `<section>/` or
    /// `tags/<slug>/`.
    pub dir: String,
    /// File name of each format (`feeds.file_names`).
    pub names: crate::config::FileNames,
    pub title: String,
    pub description: String,
    pub tag: Option<Tag>,
    /// Newest first, already cut to the limit.
    pub articles: Vec<Arc<Article>>,
    /// Newest change among `articles`; the Unix epoch for an empty feed
    /// (never the clock, so an unchanged site gives unchanged bytes).
    pub updated: DateTime<FixedOffset>,
}

impl FeedSpec {
    /// Path of the file relative to the output directory.
    pub fn rel_path(&self, format: FeedFormat) -> String {
        format!("{}{}", self.dir, self.names.get(format))
    }

    /// The address the file is served at: its `rel=self` link.
    pub fn self_url(&self, config: &Config, format: FeedFormat) -> Url {
        config
            .feeds_base_url()
            .join(&self.rel_path(format))
            .expect("section paths, tag slugs and file names are valid URL paths")
    }
}

/// Every feed the catalog calls for.
pub fn plan(config: &Config, catalog: &Catalog) -> Vec<FeedSpec> {
    let site = &config.site;
    let names = &config.feeds.file_names;
    let site_sections: Vec<String> = config
        .feeds
        .site_sections
        .iter()
        .map(|s| crate::content::normalize_section(s))
        .collect();
    let site_articles: Vec<Arc<Article>> = catalog
        .articles()
        .iter()
        .filter(|a| catalog.in_sections(a, &site_sections))
        .cloned()
        .collect();
    let mut specs = vec![spec(
        String::new(),
        names,
        site.title.clone(),
        site.description.clone(),
        None,
        &site_articles,
        config.feeds.limit,
    )];
    for section in catalog.sections() {
        let wanted = match config.feeds.section_feeds {
            SectionFeeds::All => true,
            SectionFeeds::Declared => section.wants_feeds,
            SectionFeeds::None => false,
        };
        // The root section's feed is the site-wide one.
        if !wanted || section.path.is_empty() {
            continue;
        }
        let only = [section.path.clone()];
        let articles: Vec<Arc<Article>> = catalog
            .articles()
            .iter()
            .filter(|a| catalog.in_sections(a, &only))
            .cloned()
            .collect();
        let title = section
            .title
            .clone()
            .unwrap_or_else(|| format!("{} – {}", site.title, section.path));
        let description = section
            .description
            .clone()
            .unwrap_or_else(|| site.description.clone());
        specs.push(spec(
            format!("{}/", section.path),
            names,
            title,
            description,
            None,
            &articles,
            config.feeds.section_limit,
        ));
    }
    if config.feeds.tag_feeds {
        for (slug, group) in catalog.tags() {
            let description = format!("Articles tagged “{}” on {}", group.tag.name, site.title);
            specs.push(spec(
                format!("tags/{slug}/"),
                names,
                format!("{} – {}", site.title, group.tag.name),
                description,
                Some(group.tag),
                &group.articles,
                config.feeds.tag_limit,
            ));
        }
    }
    specs
}

fn spec(
    dir: String,
    names: &crate::config::FileNames,
    title: String,
    description: String,
    tag: Option<Tag>,
    all: &[Arc<Article>],
    limit: usize,
) -> FeedSpec {
    let take = if limit == 0 {
        all.len()
    } else {
        limit.min(all.len())
    };
    let articles = all[..take].to_vec();
    let updated = articles
        .iter()
        .map(|a| a.last_modified())
        .max()
        .unwrap_or_else(epoch);
    FeedSpec {
        dir,
        names: names.clone(),
        title,
        description,
        tag,
        articles,
        updated,
    }
}

fn epoch() -> DateTime<FixedOffset> {
    DateTime::UNIX_EPOCH.fixed_offset()
}

/// Renders one feed in one format.
pub fn render(
    spec: &FeedSpec,
    format: FeedFormat,
    config: &Config,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        FeedFormat::Rss => rss::render(spec, config, out),
        FeedFormat::Atom => atom::render(spec, config, out),
        FeedFormat::Json => json::render(spec, config, out),
    }
}

/// Renders one feed into memory.
pub fn render_to_vec(
    spec: &FeedSpec,
    format: FeedFormat,
    config: &Config,
) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    render(spec, format, config, &mut buf)?;
    Ok(buf)
}

/// What [`write_all`] did, by path relative to the output directory.
#[derive(Debug, Default, Clone)]
pub struct WriteReport {
    pub written: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
}

/// Writes every planned feed under `out_dir` and removes feed files herald
/// wrote earlier for tags that no longer exist.
pub fn write_all(
    config: &Config,
    specs: &[FeedSpec],
    out_dir: &Path,
) -> anyhow::Result<WriteReport> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create output directory {}", out_dir.display()))?;
    let formats = config.formats();
    let jobs: Vec<(&FeedSpec, FeedFormat)> = specs
        .iter()
        .flat_map(|s| formats.iter().map(move |&f| (s, f)))
        .collect();
    // Every feed renders in bounded memory (see `chunked`), so all of them
    // can go in parallel.
    let results: Vec<(String, bool)> = jobs
        .par_iter()
        .map(|&(s, f)| write_one(config, s, f, out_dir))
        .collect::<anyhow::Result<_>>()?;

    let mut report = WriteReport::default();
    for (rel, wrote) in results {
        if wrote {
            report.written.push(rel);
        } else {
            report.unchanged.push(rel);
        }
    }
    let keep: std::collections::HashSet<String> = report
        .written
        .iter()
        .chain(&report.unchanged)
        .cloned()
        .collect();
    report.removed = remove_stale(config, out_dir, &keep)?;
    report.written.sort();
    report.unchanged.sort();
    Ok(report)
}

/// Removes what writes killed midway left behind (`.herald-tmp-*` files)
/// in the folders herald writes: the feeds and `data_dir` (whose outbox,
/// first-seen record and exports are written the same way). Called before
/// `herald build` writes and when the daemon starts.
pub fn remove_leftovers(config: &Config) {
    for dir in [&config.feeds.dir, &config.data_dir] {
        let removed = crate::base::fs::remove_stale_temporaries(dir);
        if removed.files > 0 {
            tracing::info!(
                "removed {} temporary files ({:.1} MB) left in {} by writes that were interrupted",
                removed.files,
                removed.bytes as f64 / 1e6,
                dir.display()
            );
        }
    }
}

fn write_one(
    config: &Config,
    spec: &FeedSpec,
    format: FeedFormat,
    out_dir: &Path,
) -> anyhow::Result<(String, bool)> {
    let rel = spec.rel_path(format);
    let path = out_dir.join(&rel);
    let t = std::time::Instant::now();
    let wrote = write_if_changed_with(&path, Durability::Derived, |w| {
        render(spec, format, config, w)
    })
    .with_context(|| format!("cannot write feed {}", path.display()))?;
    tracing::debug!(feed = %rel, wrote, elapsed_ms = t.elapsed().as_millis() as u64, "feed");
    Ok((rel, wrote))
}

/// Feed files (by herald's own names, configured and default) that are
/// not in `keep`, in the folders herald writes: the output root, `tags/*/`
/// and the folders of the feeds it keeps. So feeds of tags that no longer
/// exist go, and files left under old `file_names`; other files in the
/// output directory (another generator's `index.xml`) are never touched.
/// Tag folders emptied by this are removed too.
pub fn remove_stale(
    config: &Config,
    out_dir: &Path,
    keep: &std::collections::HashSet<String>,
) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<&str> = FeedFormat::ALL.iter().map(|f| f.file_name()).collect();
    names.extend(FeedFormat::ALL.iter().map(|&f| config.feed_file_name(f)));
    let mut dirs: std::collections::BTreeSet<String> = keep
        .iter()
        .map(|rel| {
            rel.rsplit_once('/')
                .map(|(d, _)| format!("{d}/"))
                .unwrap_or_default()
        })
        .collect();
    dirs.insert(String::new());
    if let Ok(entries) = std::fs::read_dir(out_dir.join("tags")) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                dirs.insert(format!("tags/{}/", e.file_name().to_string_lossy()));
            }
        }
    }
    let mut removed = Vec::new();
    for dir in dirs {
        for name in &names {
            let rel = format!("{dir}{name}");
            let path = out_dir.join(&rel);
            if !keep.contains(&rel) && path.is_file() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove stale feed {}", path.display()))?;
                removed.push(rel);
            }
        }
        if dir.starts_with("tags/") {
            // Only succeeds when empty, which is what we want.
            let _ = std::fs::remove_dir(out_dir.join(&dir));
        }
    }
    removed.sort();
    removed.dedup();
    Ok(removed)
}

/// RFC 3339 with seconds, as Atom and JSON Feed want.
pub(crate) fn rfc3339(d: &DateTime<FixedOffset>) -> String {
    d.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Person;
    use crate::content::{Image, Tag};

    /// A feed of `n` articles whose content is hard on writers: CDATA
    /// terminators, item and entry tags inside HTML, non-ASCII text,
    /// several authors, images.
    pub fn sample_spec(n: usize) -> (FeedSpec, Config) {
        let config = Config::parse(
            r#"
[site]
title = "Chunks & <Frames>"
base_url = "https://example.org/"
author = { name = "Site", email = "site@example.org" }
"#,
        )
        .unwrap();
        let base = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00+01:00").unwrap();
        let articles: Vec<Arc<Article>> = (0..n)
            .map(|i| {
                let url = Url::parse(&format!("https://example.org/p/{i}/")).unwrap();
                Arc::new(Article {
                    section: String::new(),
                    source: format!("p/{i}.md"),
                    slug: i.to_string(),
                    title: format!("Post {i}: <item> & ]]> “quotes”"),
                    id: url.to_string(),
                    url: url.clone(),
                    published: base - chrono::Duration::hours(i as i64),
                    updated: (i % 3 == 0).then(|| base + chrono::Duration::minutes(i as i64)),
                    summary: format!("Summary {i} </entry> é"),
                    content_html: format!("<p>Body {i} <code>]]&gt;</code> ]]> <item>x</item> </channel> <entry></entry></p>"),
                    authors: vec![
                        Person { name: "Ann".into(), email: Some("ann@example.org".into()), url: None },
                        Person { name: "Bo".into(), email: None, url: Some("https://bo.example/".into()) },
                    ],
                    tags: vec![Tag::new("Rust").unwrap(), Tag::new("Feeds & Co").unwrap()],
                    language: None,
                    image: (i % 2 == 0).then(|| Image {
                        url: url.join("cover.png").unwrap(),
                        mime: "image/png".into(),
                        length: 1234,
                    }),
                    draft: false,
                    date_assigned: false,
                    notes: Vec::new(),
                    has_refs: false,
                })
            })
            .collect();
        let spec = FeedSpec {
            dir: String::new(),
            names: Default::default(),
            title: config.site.title.clone(),
            description: String::new(),
            tag: None,
            updated: articles
                .iter()
                .map(|a| a.last_modified())
                .max()
                .unwrap_or_else(epoch),
            articles,
        };
        (spec, config)
    }
}
