//! [`SharedState`] on PostgreSQL: what every replica must agree on. Each
//! value is written once by whichever replica comes first (`ON CONFLICT
//! DO NOTHING`) and read back, so all replicas end up with the first one.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, FixedOffset, Utc};
use sqlx::Row;

use super::PgStore;
use crate::store::copy::SeenRow;
use crate::store::seen::resolve;
use crate::store::{db_time, SeenArticle, SharedState, StoreError, StoreResult};

#[async_trait::async_trait]
impl SharedState for PgStore {
    async fn shared_secret(&self, candidate: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query(
            "INSERT INTO herald_state (key, value) VALUES ('signing_secret', $1)
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(STANDARD.encode(candidate))
        .execute(&self.pool)
        .await?;
        let stored: String =
            sqlx::query_scalar("SELECT value FROM herald_state WHERE key = 'signing_secret'")
                .fetch_one(&self.pool)
                .await?;
        let secret = STANDARD.decode(stored).map_err(|e| {
            StoreError::internal(format!("the stored signing secret is damaged: {e}"))
        })?;
        Ok(Some(secret))
    }

    async fn undated_dates(&self) -> StoreResult<Vec<(String, DateTime<FixedOffset>)>> {
        let rows: Vec<(String, DateTime<Utc>)> =
            sqlx::query_as("SELECT source, assigned FROM undated_articles ORDER BY source")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| (k, v.fixed_offset()))
            .collect())
    }

    async fn share_undated(
        &self,
        recorded: &[(String, DateTime<FixedOffset>)],
        forgotten: &[String],
    ) -> StoreResult<Vec<(String, DateTime<FixedOffset>)>> {
        let mut tx = self.pool.begin().await?;
        if !forgotten.is_empty() {
            sqlx::query("DELETE FROM undated_articles WHERE source = ANY($1)")
                .bind(forgotten)
                .execute(&mut *tx)
                .await?;
        }
        let mut kept = Vec::new();
        if !recorded.is_empty() {
            let keys: Vec<&str> = recorded.iter().map(|(k, _)| k.as_str()).collect();
            let dates: Vec<DateTime<Utc>> =
                recorded.iter().map(|(_, d)| db_time(d.to_utc())).collect();
            sqlx::query(
                "INSERT INTO undated_articles (source, assigned)
                 SELECT * FROM unnest($1::text[], $2::timestamptz[])
                 ON CONFLICT (source) DO NOTHING",
            )
            .bind(&keys)
            .bind(&dates)
            .execute(&mut *tx)
            .await?;
            let rows: Vec<(String, DateTime<Utc>)> = sqlx::query_as(
                "SELECT source, assigned FROM undated_articles WHERE source = ANY($1)",
            )
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?;
            kept = rows
                .into_iter()
                .map(|(k, v)| (k, v.fixed_offset()))
                .collect();
        }
        tx.commit().await?;
        Ok(kept)
    }

    /// Replicas observing at once take turns (a transaction-scoped
    /// advisory lock), so an article gets one time, the first observer's.
    async fn first_seen(
        &self,
        articles: &[SeenArticle],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('herald first-seen'))")
            .execute(&mut *tx)
            .await?;
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
                    first_seen: r.try_get("first_seen")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let (times, added) = resolve(&known, articles, adopted.is_none(), now);
        if adopted.is_none() {
            sqlx::query(
                "INSERT INTO herald_state (key, value) VALUES ('first_seen_adopted_at', $1)",
            )
            .bind(db_time(now).to_rfc3339())
            .execute(&mut *tx)
            .await?;
        }
        if !added.is_empty() {
            let ids: Vec<&str> = added.iter().map(|r| r.article_id.as_str()).collect();
            let urls: Vec<&str> = added.iter().map(|r| r.url.as_str()).collect();
            let slugs: Vec<&str> = added.iter().map(|r| r.slug.as_str()).collect();
            let times: Vec<DateTime<Utc>> = added.iter().map(|r| r.first_seen).collect();
            sqlx::query(
                "INSERT INTO articles_seen (article_id, url, slug, first_seen)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                 ON CONFLICT (article_id) DO NOTHING",
            )
            .bind(ids)
            .bind(urls)
            .bind(slugs)
            .bind(times)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(times)
    }
}
