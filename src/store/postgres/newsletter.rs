//! [`Newsletter`] on PostgreSQL: announcement runs with their message, and
//! the pages of the web archive.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::plan::insert_deliveries;
use super::PgStore;
use crate::store::newsletter::{free_slug, stored_announcement, AnnouncementRow};
use crate::store::{
    db_time, stored_email, Announcement, Audience, Candidate, Issue, Ledger, NewAnnouncement,
    Newsletter, Run, StoreError, StoreResult, Trigger, ANNOUNCEMENTS,
};

pub(super) fn issue(row: &PgRow) -> StoreResult<Issue> {
    Ok(Issue {
        run_id: row.try_get("run_id")?,
        schedule: row.try_get("schedule")?,
        slug: row.try_get("slug")?,
        subject: row.try_get("subject")?,
        published_at: row.try_get("published_at")?,
        html: row.try_get("html")?,
        summary: row.try_get("summary")?,
    })
}

#[async_trait::async_trait]
impl Newsletter for PgStore {
    async fn audience_page(
        &self,
        audience: &Audience,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<Candidate>> {
        let (kind, name) = match audience {
            Audience::All => ("all", ""),
            Audience::Schedule(s) => ("schedule", s.as_str()),
            Audience::Tag(t) => ("tag", t.as_str()),
        };
        let rows = sqlx::query(
            "SELECT s.id, s.email, s.confirmed_at FROM subscribers s
             WHERE s.status = 'active' AND s.id > $1
               AND ($3 = 'all'
                    OR ($3 = 'schedule' AND EXISTS (SELECT 1 FROM subscriber_schedules x
                                                    WHERE x.subscriber_id = s.id AND x.schedule = $4))
                    OR ($3 = 'tag' AND EXISTS (SELECT 1 FROM subscriber_tags x
                                               WHERE x.subscriber_id = s.id AND x.tag = $4)))
             ORDER BY s.id LIMIT $2",
        )
        .bind(after.unwrap_or(i64::MIN))
        .bind(limit as i64)
        .bind(kind)
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let email: String = row.try_get("email")?;
                Ok(Candidate {
                    id: row.try_get("id")?,
                    email: stored_email(&email)?,
                    confirmed_at: row.try_get("confirmed_at")?,
                    tags: Vec::new(),
                    received_through: None,
                })
            })
            .collect()
    }

    async fn create_announcement(&self, new: NewAnnouncement<'_>) -> StoreResult<Run> {
        let now = db_time(new.now);
        let m = new.message;
        let mut tx = self.pool.begin().await?;
        let nonce = format!("{:016x}", rand::random::<u64>());
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO digest_runs (schedule, tick, horizon, trigger, nonce, created_at, state)
             VALUES ($1, $2, $2, $3, $4, $2, 'sending') RETURNING id",
        )
        .bind(ANNOUNCEMENTS)
        .bind(now)
        .bind(Trigger::Announcement.as_str())
        .bind(&nonce)
        .fetch_one(&mut *tx)
        .await?;
        insert_deliveries(&mut tx, id, now, new.deliveries).await?;
        sqlx::query(
            "INSERT INTO announcements (run_id, audience, subject, html, text, archive)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(m.audience.to_string())
        .bind(&m.subject)
        .bind(&m.html)
        .bind(&m.text)
        .bind(m.archive)
        .execute(&mut *tx)
        .await?;
        if new.deliveries.is_empty() {
            sqlx::query("UPDATE digest_runs SET state = 'done', finished_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.run(id)
            .await?
            .ok_or_else(|| StoreError::internal("the announcement run vanished"))
    }

    async fn announcement(&self, run: i64) -> StoreResult<Option<Announcement>> {
        let row: Option<AnnouncementRow> = sqlx::query_as(
            "SELECT audience, subject, html, text, archive FROM announcements WHERE run_id = $1",
        )
        .bind(run)
        .fetch_optional(&self.pool)
        .await?;
        row.map(stored_announcement).transpose()
    }

    async fn assign_archive_slug(&self, run: i64, date: &str) -> StoreResult<String> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, Option<String>)> = sqlx::query_as(
            "SELECT schedule, archive_slug FROM digest_runs WHERE id = $1 FOR UPDATE",
        )
        .bind(run)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((schedule, slug)) = row else {
            return Err(StoreError::NotFound(format!(
                "there is no digest run {run}"
            )));
        };
        if let Some(slug) = slug {
            return Ok(slug);
        }
        let taken: Vec<String> = sqlx::query_scalar(
            "SELECT archive_slug FROM digest_runs
             WHERE schedule = $1 AND (archive_slug = $2 OR archive_slug LIKE $2 || '-%')",
        )
        .bind(&schedule)
        .bind(date)
        .fetch_all(&mut *tx)
        .await?;
        let slug = free_slug(date, &taken);
        sqlx::query("UPDATE digest_runs SET archive_slug = $1 WHERE id = $2")
            .bind(&slug)
            .bind(run)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(slug)
    }

    async fn previous_horizon(
        &self,
        schedule: &str,
        run: i64,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(horizon, tick) FROM digest_runs WHERE schedule = $1 AND id < $2
             ORDER BY id DESC LIMIT 1",
        )
        .bind(schedule)
        .bind(run)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn publish_issue(&self, i: &Issue) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO archive_issues
                 (run_id, schedule, slug, subject, published_at, html, summary)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        )
        .bind(i.run_id)
        .bind(&i.schedule)
        .bind(&i.slug)
        .bind(&i.subject)
        .bind(db_time(i.published_at))
        .bind(&i.html)
        .bind(&i.summary)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn issue(&self, schedule: &str, slug: &str) -> StoreResult<Option<Issue>> {
        let row = sqlx::query("SELECT * FROM archive_issues WHERE schedule = $1 AND slug = $2")
            .bind(schedule)
            .bind(slug)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(issue).transpose()
    }

    async fn issues(&self, schedule: Option<&str>, limit: u32) -> StoreResult<Vec<Issue>> {
        let rows = sqlx::query(
            "SELECT run_id, schedule, slug, subject, published_at, '' AS html, summary
             FROM archive_issues WHERE $1::text IS NULL OR schedule = $1
             ORDER BY published_at DESC, run_id DESC LIMIT $2",
        )
        .bind(schedule)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(issue).collect()
    }
}
