//! [`SharedState`] on SQLite: one machine, so the signing secret stays in
//! the data directory; first-seen times, undated dates and the send rate
//! are tables like PostgreSQL's (so `herald db copy` moves them).

use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{format_time, parse_time, SqliteStore};
use crate::store::copy::SeenRow;
use crate::store::seen::resolve;
use crate::store::{SeenArticle, SharedState, StoreResult};

#[async_trait::async_trait]
impl SharedState for SqliteStore {
    async fn shared_secret(&self, _candidate: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        Ok(None)
    }

    async fn undated_dates(&self) -> StoreResult<Vec<(String, DateTime<FixedOffset>)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT source, assigned FROM undated_articles ORDER BY source")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(k, v)| Ok((k, parse_time(v)?.fixed_offset())))
            .collect()
    }

    async fn share_undated(
        &self,
        recorded: &[(String, DateTime<FixedOffset>)],
        forgotten: &[String],
    ) -> StoreResult<Vec<(String, DateTime<FixedOffset>)>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !forgotten.is_empty() {
            sqlx::query(
                "DELETE FROM undated_articles WHERE source IN (SELECT value FROM json_each(?))",
            )
            .bind(serde_json::to_string(forgotten)?)
            .execute(&mut *tx)
            .await?;
        }
        let mut kept = Vec::with_capacity(recorded.len());
        if !recorded.is_empty() {
            let rows: Vec<(&str, String)> = recorded
                .iter()
                .map(|(k, v)| (k.as_str(), format_time(v.to_utc())))
                .collect();
            let json = serde_json::to_string(&rows)?;
            sqlx::query(
                "INSERT INTO undated_articles (source, assigned)
                 SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true
                 ON CONFLICT (source) DO NOTHING",
            )
            .bind(&json)
            .execute(&mut *tx)
            .await?;
            let stored: Vec<(String, String)> = sqlx::query_as(
                "SELECT source, assigned FROM undated_articles
                 WHERE source IN (SELECT value ->> 0 FROM json_each(?))",
            )
            .bind(&json)
            .fetch_all(&mut *tx)
            .await?;
            for (k, v) in stored {
                kept.push((k, parse_time(v)?.fixed_offset()));
            }
        }
        tx.commit().await?;
        Ok(kept)
    }

    async fn first_seen(
        &self,
        articles: &[SeenArticle],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let adopted: Option<String> = sqlx::query_scalar(
            "SELECT value FROM herald_state WHERE key = 'first_seen_adopted_at'",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let rows = sqlx::query("SELECT article_id, url, slug, first_seen FROM articles_seen")
            .fetch_all(&mut *tx)
            .await?;
        let known = rows
            .iter()
            .map(|r| {
                Ok(SeenRow {
                    article_id: r.try_get("article_id")?,
                    url: r.try_get("url")?,
                    slug: r.try_get("slug")?,
                    first_seen: parse_time(r.try_get("first_seen")?)?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let (times, added) = resolve(&known, articles, adopted.is_none(), now);
        if adopted.is_none() {
            sqlx::query(
                "INSERT INTO herald_state (key, value) VALUES ('first_seen_adopted_at', ?)",
            )
            .bind(format_time(now))
            .execute(&mut *tx)
            .await?;
        }
        if !added.is_empty() {
            #[derive(Serialize)]
            struct Row<'a>(&'a str, &'a str, &'a str, String);
            let rows: Vec<Row> = added
                .iter()
                .map(|r| Row(&r.article_id, &r.url, &r.slug, format_time(r.first_seen)))
                .collect();
            sqlx::query(
                "INSERT INTO articles_seen (article_id, url, slug, first_seen)
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 FROM json_each(?)
                 WHERE true ON CONFLICT (article_id) DO NOTHING",
            )
            .bind(serde_json::to_string(&rows)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(times)
    }
}
