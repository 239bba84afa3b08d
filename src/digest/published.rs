//! The articles digests are made from, with the time herald first
//! published each one (its first-seen time, from the store) and the moment
//! the list was read. A digest carries what was first seen since the
//! subscriber's last digest, never the articles' own dates, so an article
//! dated this morning but published after this morning's digest is in the
//! next one.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::content::Article;
use crate::store::seen::seen_articles;
use crate::store::{db_time, SharedState, StoreResult};

/// The published articles, newest first (as a catalog is).
#[derive(Debug, Clone, Default)]
pub struct Published {
    pub articles: Vec<Arc<Article>>,
    /// When herald first published `articles[i]`.
    pub first_seen: Vec<DateTime<Utc>>,
    /// Indices of `articles`, latest first-seen first.
    by_first_seen: Vec<usize>,
    /// When the list was read: everything first seen by then is in it.
    pub as_of: DateTime<Utc>,
}

impl Published {
    pub fn new(
        articles: Vec<Arc<Article>>,
        first_seen: Vec<DateTime<Utc>>,
        as_of: DateTime<Utc>,
    ) -> Published {
        assert_eq!(articles.len(), first_seen.len(), "one time per article");
        let mut by_first_seen: Vec<usize> = (0..articles.len()).collect();
        by_first_seen.sort_by(|&a, &b| first_seen[b].cmp(&first_seen[a]).then(a.cmp(&b)));
        Published {
            articles,
            first_seen,
            by_first_seen,
            as_of: db_time(as_of),
        }
    }

    /// `articles` with the store's first-seen times, recorded now for the
    /// articles it has never seen.
    pub async fn observe(
        store: &dyn SharedState,
        articles: Vec<Arc<Article>>,
        now: DateTime<Utc>,
    ) -> StoreResult<Published> {
        let times = store.first_seen(&seen_articles(&articles), now).await?;
        Ok(Published::new(articles, times, now))
    }

    /// `articles` taken as first seen at their own dates (previews, tests
    /// and benchmarks without a store).
    pub fn dated(articles: Vec<Arc<Article>>, as_of: DateTime<Utc>) -> Published {
        let times = articles
            .iter()
            .map(|a| db_time(a.published_utc()))
            .collect();
        Published::new(articles, times, as_of)
    }

    /// The same articles, read again at `as_of` and found unchanged.
    pub fn with_as_of(&self, as_of: DateTime<Utc>) -> Published {
        Published {
            as_of: db_time(as_of),
            ..self.clone()
        }
    }

    pub fn len(&self) -> usize {
        self.articles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.articles.is_empty()
    }

    /// Indices, latest first-seen first.
    pub fn by_first_seen(&self) -> &[usize] {
        &self.by_first_seen
    }
}
