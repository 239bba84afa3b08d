//! The daemon's rebuild: an incremental version of `herald build` that
//! keeps what it can between runs. A rescan stats every file but reads only
//! those whose size or modification time changed; when nothing changed and
//! no scheduled article fell due it stops there. Otherwise only the feeds
//! whose articles changed are rendered again, only files whose bytes changed
//! are written and compressed, and the served snapshot is replaced in one
//! step, with every body a request may ask for already made.
//!
//! With a store, the dates given to undated articles are shared through it
//! (the first replica to date a file wins; the others parse it again with
//! that date), and every rebuild records the first-seen time of each
//! published article for the digests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use chrono::{DateTime, Utc};
use rayon::prelude::*;
use url::Url;

use crate::base::fs::{write_if_changed, Durability};
use crate::base::metrics::Metrics;
use crate::base::panic;
use crate::base::served::{FeedFile, ServedFeeds, Snapshot};
use crate::base::FeedFormat;
use crate::config::Config;
use crate::content::{self, Article, CacheStats, ContentCache, FirstSeen, LoadReport};
use crate::digest::Published;
use crate::feeds::{self, FeedSpec};
use crate::store::seen::share_undated;
use crate::store::Store;

/// The store the engine shares dates and first-seen times through, and
/// the runtime to reach it from the blocking rebuild thread.
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub runtime: tokio::runtime::Handle,
}

pub struct Engine {
    config: Arc<Config>,
    cache: ContentCache,
    first_seen: FirstSeen,
    served: Arc<ServedFeeds>,
    metrics: Arc<Metrics>,
    /// The articles each feed (by folder) was last rendered from. Holding
    /// the `Arc`s keeps their addresses unique, so an unchanged list of
    /// addresses means an unchanged feed.
    rendered: HashMap<String, Vec<Arc<Article>>>,
    next_scheduled: Option<DateTime<Utc>>,
    built: bool,
    /// The published articles (newest first) of the last build with their
    /// first-seen times, for the digests.
    published: Arc<arc_swap::ArcSwap<Published>>,
    shared: Option<Shared>,
    /// The last first-seen update failed: the next rescan must not skip.
    observe_pending: bool,
}

/// What one rebuild did.
#[derive(Debug, Default)]
pub struct Rebuild {
    /// Nothing changed on disk and nothing fell due: no work done.
    pub skipped: bool,
    pub stats: CacheStats,
    pub report: LoadReport,
    pub published: usize,
    /// Feed files (relative paths) now served with new bytes.
    pub changed: Vec<String>,
    /// Public URLs of the feed files written to disk with new bytes: the
    /// topics to announce to WebSub hubs.
    pub changed_urls: Vec<Url>,
    pub removed: Vec<String>,
    pub elapsed: Duration,
}

impl Engine {
    pub fn new(
        config: Arc<Config>,
        served: Arc<ServedFeeds>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Engine> {
        Ok(Engine {
            config,
            cache: ContentCache::new(),
            first_seen: FirstSeen::in_memory(),
            served,
            metrics,
            rendered: HashMap::new(),
            next_scheduled: None,
            built: false,
            published: Arc::default(),
            shared: None,
            observe_pending: false,
        })
    }

    /// Keeps dates and first-seen times in `shared.store`, starting from
    /// `first_seen` (the dates it holds).
    pub fn with_store(mut self, shared: Shared, first_seen: FirstSeen) -> Engine {
        self.shared = Some(shared);
        self.first_seen = first_seen;
        self
    }

    /// The articles of the last successful build, newest first, with their
    /// first-seen times; updated in place by every rebuild.
    pub fn published(&self) -> Arc<arc_swap::ArcSwap<Published>> {
        Arc::clone(&self.published)
    }

    /// When the next article dated in the future is due.
    pub fn next_scheduled(&self) -> Option<DateTime<Utc>> {
        self.next_scheduled
    }

    /// Rescans and republishes what changed. On error (the content
    /// directory is gone, the disk is full) nothing is published and the
    /// last good feeds stay in service.
    pub fn rebuild(&mut self, now: DateTime<Utc>) -> anyhow::Result<Rebuild> {
        let started = Instant::now();
        let result = self.rebuild_inner(now, started);
        let m = &self.metrics;
        match &result {
            Ok(r) if r.skipped => {}
            Ok(r) => m.rebuild_published(
                r.elapsed,
                r.published,
                r.report.rejected.len(),
                r.changed.len(),
            ),
            Err(_) => m.rebuild_failed(),
        }
        if result.is_ok() {
            m.build_succeeded_at(Utc::now().timestamp());
        }
        result
    }

    /// After a rebuild panicked half-way: forget what was kept between
    /// runs (it may be half updated), so that the next rebuild starts
    /// afresh. The served snapshot stays as it is.
    pub fn recover_from_panic(&mut self) {
        self.cache = ContentCache::new();
        self.rendered.clear();
        self.built = false;
    }

    fn rebuild_inner(&mut self, now: DateTime<Utc>, started: Instant) -> anyhow::Result<Rebuild> {
        let config = Arc::clone(&self.config);
        let scan = content::scan(&config)?;
        let (parsed, stats) = self.cache.parse(
            &scan.files,
            &config,
            &config.content.dir,
            &self.first_seen,
            &scan.sections,
            now,
        );
        let due = self.next_scheduled.is_some_and(|t| t <= now);
        if self.built && !stats.changed() && !due && !self.observe_pending {
            // Unchanged: the articles are as of now.
            let p = self.published.load_full();
            self.published.store(Arc::new(p.with_as_of(now)));
            return Ok(Rebuild {
                skipped: true,
                stats,
                elapsed: started.elapsed(),
                ..Rebuild::default()
            });
        }

        let (mut catalog, mut report) =
            content::assemble(&config, scan, parsed, now, &mut self.first_seen);
        if let Some(again) = self.share_dates()? {
            let scan = content::scan(&config)?;
            let (parsed, _) = self.cache.parse(
                &scan.files,
                &config,
                &config.content.dir,
                &self.first_seen,
                &scan.sections,
                now,
            );
            (catalog, report) = content::assemble(&config, scan, parsed, now, &mut self.first_seen);
            tracing::debug!(
                files = again,
                "parsed again with the dates another replica gave"
            );
        }
        self.next_scheduled = report.next_scheduled;
        self.observe(catalog.articles().to_vec(), now);
        let specs = feeds::plan(&config, &catalog);
        let formats = config.formats();

        // Render only feeds whose articles changed since they were last
        // rendered; carry the others over as they are.
        let old = self.served.snapshot();
        let todo: Vec<(&FeedSpec, FeedFormat)> = specs
            .iter()
            .filter(|s| {
                !self
                    .rendered
                    .get(&s.dir)
                    .is_some_and(|prev| same_articles(prev, &s.articles))
            })
            .flat_map(|s| formats.iter().map(move |&f| (s, f)))
            .collect();
        let fresh: Vec<(String, FeedFormat, Vec<u8>, SystemTime, &str)> = todo
            .par_iter()
            .map(|&(s, f)| {
                let bytes = guarded(&s.rel_path(f), || feeds::render_to_vec(s, f, &config))?;
                Ok((
                    s.rel_path(f),
                    f,
                    bytes,
                    SystemTime::from(s.updated),
                    s.title.as_str(),
                ))
            })
            .collect::<anyhow::Result<_>>()?;

        let mut files: BTreeMap<String, Arc<FeedFile>> = BTreeMap::new();
        for s in &specs {
            for &f in &formats {
                let rel = s.rel_path(f);
                if let Some(file) = old.files.get(&rel) {
                    files.insert(rel, Arc::clone(file));
                }
            }
        }
        let out_dir = &config.feeds.dir;
        let written: Vec<(String, Option<Arc<FeedFile>>, bool)> = fresh
            .into_par_iter()
            .map(|(rel, format, bytes, updated, title)| {
                // The disk copy is compared too: a first build after a
                // restart finds the files of the last run already there.
                let wrote = write_if_changed(&out_dir.join(&rel), &bytes, Durability::Derived)
                    .with_context(|| {
                        format!("cannot write feed {}", out_dir.join(&rel).display())
                    })?;
                let same_as_served = old.files.get(&rel).is_some_and(|f| f.body[..] == bytes[..]);
                // Compressed here, on the rebuild's threads, before the
                // snapshot that holds it goes live.
                let file = (wrote || !same_as_served).then(|| {
                    Arc::new(FeedFile::new(rel.clone(), format, bytes, updated).with_title(title))
                });
                Ok((rel, file, wrote))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut changed = Vec::new();
        let mut changed_urls = Vec::new();
        for (rel, file, wrote) in written {
            // Hubs hear only of bytes that are new on disk, not of a
            // restart loading what the last run wrote.
            if wrote {
                changed_urls.extend(config.feeds_base_url().join(&rel).ok());
            }
            if let Some(file) = file {
                changed.push(rel.clone());
                files.insert(rel, file);
            }
        }
        changed.sort();
        changed_urls.sort();

        let keep: HashSet<String> = files.keys().cloned().collect();
        let removed = feeds::remove_stale(&config, out_dir, &keep)?;
        let published = catalog.len();
        self.served.publish(Snapshot { files });
        self.rendered = specs.into_iter().map(|s| (s.dir, s.articles)).collect();
        self.built = true;
        Ok(Rebuild {
            skipped: false,
            stats,
            report,
            published,
            changed,
            changed_urls,
            removed,
            elapsed: started.elapsed(),
        })
    }
}

impl Engine {
    /// Offers new dates of undated articles to the store. `Some(n)` when
    /// another replica dated `n` of these files first: they are parsed
    /// again. Without the database this replica's dates serve meanwhile.
    fn share_dates(&mut self) -> anyhow::Result<Option<usize>> {
        let Some(shared) = &self.shared else {
            return Ok(None);
        };
        match shared
            .runtime
            .block_on(share_undated(&*shared.store, &mut self.first_seen))
        {
            Ok(differ) if differ.is_empty() => Ok(None),
            Ok(differ) => {
                self.cache.forget(&differ);
                Ok(Some(differ.len()))
            }
            Err(e) => {
                tracing::warn!("cannot share the dates of undated articles ({e}); using this replica's until the database answers");
                Ok(None)
            }
        }
    }

    /// Records the first-seen times of the published articles and hands
    /// them to the digests. Without the database the digests keep the
    /// last list, and the next rescan tries again.
    fn observe(&mut self, articles: Vec<Arc<Article>>, now: DateTime<Utc>) {
        let Some(shared) = &self.shared else {
            self.published
                .store(Arc::new(Published::dated(articles, now)));
            return;
        };
        match shared
            .runtime
            .block_on(Published::observe(&*shared.store, articles, now))
        {
            Ok(p) => {
                self.published.store(Arc::new(p));
                self.observe_pending = false;
            }
            Err(e) => {
                tracing::warn!("cannot record when articles were first published ({e}); digests wait for the database");
                self.observe_pending = true;
            }
        }
    }
}

/// Renders one feed file; a panic in the renderer becomes an error that
/// names the file, and fails this rebuild only.
fn guarded(rel: &str, render: impl FnOnce() -> anyhow::Result<Vec<u8>>) -> anyhow::Result<Vec<u8>> {
    std::panic::catch_unwind(AssertUnwindSafe(render)).unwrap_or_else(|p| {
        Err(anyhow::anyhow!(
            "rendering {rel} panicked: {}",
            panic::message(&*p)
        ))
    })
}

fn same_articles(a: &[Arc<Article>], b: &[Arc<Article>]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Arc::ptr_eq(x, y))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Engine, Arc<ServedFeeds>) {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        std::fs::create_dir_all(&content).unwrap();
        let text = format!(
            "data_dir = {:?}\n[site]\ntitle = \"T\"\nbase_url = \"https://e.org/\"\nauthor = {{ name = \"A\" }}\n[content]\ndir = {:?}\n[feeds]\ndir = {:?}\n",
            dir.path().join("data").display().to_string(),
            content.display().to_string(),
            dir.path().join("feeds").display().to_string(),
        );
        let config = Arc::new(Config::parse(&text).unwrap());
        let served = Arc::new(ServedFeeds::new());
        let engine = Engine::new(config, Arc::clone(&served), Arc::new(Metrics::new())).unwrap();
        (dir, engine, served)
    }

    fn write(dir: &tempfile::TempDir, name: &str, title: &str, date: &str, tags: &str) {
        let text =
            format!("+++\ntitle = \"{title}\"\ndate = {date}\ntags = [{tags}]\n+++\nBody.\n");
        std::fs::write(dir.path().join("content").join(name), text).unwrap();
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    #[test]
    fn a_renderer_that_panics_fails_the_rebuild_naming_the_feed() {
        let err = guarded("tags/x/rss.xml", || {
            panic!("date cannot be represented by RFC 2822")
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "rendering tags/x/rss.xml panicked: date cannot be represented by RFC 2822"
        );
        assert_eq!(
            guarded("atom.xml", || Ok(b"<feed/>".to_vec())).unwrap(),
            b"<feed/>"
        );
    }

    #[test]
    fn after_a_panic_the_next_rebuild_starts_afresh_and_publishes() {
        let (dir, mut engine, served) = setup();
        write(&dir, "a.md", "A", "2024-01-01T00:00:00Z", "");
        engine.rebuild(at("2025-01-01T00:00:00Z")).unwrap();
        assert!(engine.rebuild(at("2025-01-01T00:00:00Z")).unwrap().skipped);
        engine.recover_from_panic();
        let r = engine.rebuild(at("2025-01-01T00:00:00Z")).unwrap();
        assert!(!r.skipped, "everything is read again");
        assert_eq!(r.published, 1);
        assert!(served.get("atom.xml").is_some());
    }

    #[test]
    fn a_future_article_is_published_when_its_time_comes_without_a_file_change() {
        let (dir, mut engine, served) = setup();
        write(&dir, "now.md", "Now", "2030-01-01T00:00:00Z", "");
        write(&dir, "later.md", "Later", "2030-01-01T12:00:00Z", "");
        let r = engine.rebuild(at("2030-01-01T06:00:00Z")).unwrap();
        assert_eq!((r.published, r.report.scheduled), (1, 1));
        assert_eq!(engine.next_scheduled(), Some(at("2030-01-01T12:00:00Z")));
        let before = served.get("atom.xml").unwrap();
        assert!(!String::from_utf8_lossy(&before.body).contains("Later"));

        // Nothing on disk changed, and nothing is due yet: no work.
        assert!(engine.rebuild(at("2030-01-01T11:59:59Z")).unwrap().skipped);

        let r = engine.rebuild(at("2030-01-01T12:00:00Z")).unwrap();
        assert!(!r.skipped, "the due article forces a rebuild");
        assert_eq!(r.published, 2);
        assert_eq!(engine.next_scheduled(), None);
        assert!(String::from_utf8_lossy(&served.get("atom.xml").unwrap().body).contains("Later"));
    }

    #[test]
    fn one_changed_article_rerenders_only_the_feeds_it_is_in() {
        let (dir, mut engine, served) = setup();
        write(&dir, "a.md", "A", "2024-01-01T00:00:00Z", "\"x\"");
        write(&dir, "b.md", "B", "2024-01-02T00:00:00Z", "\"y\"");
        engine.rebuild(at("2025-01-01T00:00:00Z")).unwrap();
        let y_before = served.get("tags/y/atom.xml").unwrap();

        write(&dir, "a.md", "A, edited", "2024-01-01T00:00:00Z", "\"x\"");
        let r = engine.rebuild(at("2025-01-01T00:00:00Z")).unwrap();
        assert_eq!(r.stats.parsed, 1);
        assert_eq!(
            r.changed,
            [
                "atom.xml",
                "feed.json",
                "rss.xml",
                "tags/x/atom.xml",
                "tags/x/feed.json",
                "tags/x/rss.xml"
            ]
        );
        assert!(
            Arc::ptr_eq(&y_before, &served.get("tags/y/atom.xml").unwrap()),
            "tag y untouched"
        );
        assert_eq!(r.changed_urls.len(), 6);
        assert_eq!(served.get("tags/x/rss.xml").unwrap().title, "T – x");
    }
}
