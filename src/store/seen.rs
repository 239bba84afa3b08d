//! First-seen times: when herald first published each article, kept in
//! the store so that every restart and every replica agrees, and digests
//! carry what was *published* since a subscriber's last digest, whatever
//! date the article gives itself.
//!
//! Identity: an article is known by its id; an article with a new id whose
//! URL is known (the id changed, the permalink did not), or whose slug
//! belonged to an article that is gone now (the file moved or was renamed
//! and its URL pattern changed), keeps the known time and is not mailed
//! again. Adoption: the first time the store sees the site at all, every
//! article counts as first seen at the earlier of its own date and now, so
//! that a new install or an upgrade mails no back catalogue.
//!
//! Also the glue between [`FirstSeen`] (the dates of undated articles, in
//! memory) and the store.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use chrono::{DateTime, Utc};

use super::copy::SeenRow;
use super::{SeenArticle, SharedState, StoreResult};
use crate::content::{Article, FirstSeen};

/// Resolves each article's first-seen time against the `known` records;
/// returns the times in `articles` order and the records to add.
pub(crate) fn resolve(
    known: &[SeenRow],
    articles: &[SeenArticle],
    adopting: bool,
    now: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, Vec<SeenRow>) {
    let by_id: HashMap<&str, &SeenRow> = known.iter().map(|r| (r.article_id.as_str(), r)).collect();
    let by_url: HashMap<&str, &SeenRow> = known.iter().map(|r| (r.url.as_str(), r)).collect();
    let present: HashSet<&str> = articles.iter().map(|a| a.id.as_str()).collect();
    // Slugs of records whose article is gone: a moved file's old self.
    let mut gone_slugs: HashMap<&str, &SeenRow> = HashMap::new();
    for r in known
        .iter()
        .filter(|r| !present.contains(r.article_id.as_str()))
    {
        gone_slugs
            .entry(r.slug.as_str())
            .and_modify(|e| {
                if r.first_seen < e.first_seen {
                    *e = r
                }
            })
            .or_insert(r);
    }
    let mut added: Vec<SeenRow> = Vec::new();
    let mut added_ids: HashMap<String, DateTime<Utc>> = HashMap::new();
    let times = articles
        .iter()
        .map(|a| {
            if let Some(r) = by_id.get(a.id.as_str()) {
                return r.first_seen;
            }
            if let Some(t) = added_ids.get(&a.id) {
                return *t;
            }
            let t = by_url
                .get(a.url.as_str())
                .or_else(|| gone_slugs.get(a.slug.as_str()))
                .map(|r| r.first_seen)
                .unwrap_or_else(|| {
                    if adopting {
                        super::db_time(a.published.min(now))
                    } else {
                        super::db_time(now)
                    }
                });
            added_ids.insert(a.id.clone(), t);
            added.push(SeenRow {
                article_id: a.id.clone(),
                url: a.url.clone(),
                slug: a.slug.clone(),
                first_seen: t,
            });
            t
        })
        .collect();
    (times, added)
}

/// The articles as the first-seen record identifies them.
pub fn seen_articles(articles: &[std::sync::Arc<Article>]) -> Vec<SeenArticle> {
    articles
        .iter()
        .map(|a| SeenArticle {
            id: a.id.clone(),
            url: a.url.to_string(),
            slug: a.slug.clone(),
            published: a.published_utc(),
        })
        .collect()
}

/// The dates of undated articles as the store has them. The first time,
/// the dates herald kept in `data_dir/first-seen.json` before are moved
/// into the store (the file is left, renamed `first-seen.json.imported`).
pub async fn load_undated(store: &dyn SharedState, data_dir: &Path) -> anyhow::Result<FirstSeen> {
    let stored = store.undated_dates().await?;
    if stored.is_empty() {
        if let Some(mut legacy) = FirstSeen::read_legacy(data_dir)? {
            let recorded: Vec<_> = legacy.dates().map(|(k, v)| (k.to_string(), v)).collect();
            let kept = store.share_undated(&recorded, &[]).await?;
            for (rel, date) in kept {
                legacy.set(&rel, date);
            }
            let path = data_dir.join("first-seen.json");
            if let Err(e) = std::fs::rename(&path, data_dir.join("first-seen.json.imported")) {
                tracing::warn!("cannot rename {} after importing it: {e}", path.display());
            }
            tracing::info!(
                "moved the dates of {} undated articles from {} into the database",
                recorded.len(),
                path.display()
            );
            return Ok(legacy);
        }
    }
    Ok(FirstSeen::from_dates(stored))
}

/// Offers what changed in `first_seen` to the store and takes back what it
/// keeps (another replica may have dated a file first). Returns the paths
/// whose date changed here: their articles must be parsed again.
pub async fn share_undated(
    store: &dyn SharedState,
    first_seen: &mut FirstSeen,
) -> StoreResult<Vec<String>> {
    let changes = first_seen.take_changes();
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let kept = match store
        .share_undated(&changes.recorded, &changes.forgotten)
        .await
    {
        Ok(kept) => kept,
        Err(e) => {
            first_seen.restore_changes(changes);
            return Err(e);
        }
    };
    let mut differ = Vec::new();
    for (rel, date) in kept {
        if first_seen.get(&rel) != Some(date) {
            differ.push(rel.clone());
        }
        first_seen.set(&rel, date);
    }
    Ok(differ)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn art(id: &str, url: &str, slug: &str, date: &str) -> SeenArticle {
        SeenArticle {
            id: id.into(),
            url: url.into(),
            slug: slug.into(),
            published: t(date),
        }
    }

    fn row(id: &str, url: &str, slug: &str, seen: &str) -> SeenRow {
        SeenRow {
            article_id: id.into(),
            url: url.into(),
            slug: slug.into(),
            first_seen: t(seen),
        }
    }

    #[test]
    fn adoption_backfills_with_the_earlier_of_date_and_now() {
        let now = t("2026-03-10T00:00:00Z");
        let (times, added) = resolve(
            &[],
            &[art("a", "u/a", "a", "2026-01-01T00:00:00Z")],
            true,
            now,
        );
        assert_eq!(times, [t("2026-01-01T00:00:00Z")]);
        assert_eq!(added.len(), 1);
        let (times, _) = resolve(
            &[],
            &[art("b", "u/b", "b", "2026-01-01T00:00:00Z")],
            false,
            now,
        );
        assert_eq!(times, [now], "after adoption a new article is new now");
    }

    #[test]
    fn a_moved_article_keeps_its_time_by_url_or_by_the_slug_of_a_vanished_one() {
        let now = t("2026-03-10T00:00:00Z");
        let known = [
            row("old-id", "u/x", "x", "2026-02-01T00:00:00Z"),
            row("y-id", "u/y", "y", "2026-02-02T00:00:00Z"),
            row("z-id", "u/z", "z", "2026-02-03T00:00:00Z"),
        ];
        let arts = [
            // Same URL, new id.
            art("new-id", "u/x", "x", "2026-01-01T00:00:00Z"),
            // y-id is gone; its slug comes back under a new URL.
            art("y-moved", "u/2026/y", "y", "2026-01-01T00:00:00Z"),
            // z is still there: a new article with its slug is new.
            art("z-id", "u/z", "z", "2026-01-01T00:00:00Z"),
            art("z-twin", "u/other/z", "z", "2026-01-01T00:00:00Z"),
        ];
        let (times, added) = resolve(&known, &arts, false, now);
        assert_eq!(
            times,
            [
                t("2026-02-01T00:00:00Z"),
                t("2026-02-02T00:00:00Z"),
                t("2026-02-03T00:00:00Z"),
                now
            ]
        );
        assert_eq!(added.len(), 3);
    }
}
