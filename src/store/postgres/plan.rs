//! Planning a run on PostgreSQL: the run row, and its deliveries written in the
//! same transaction, from the caller's list and from the schedule's
//! candidates read a page at a time.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::PgStore;
use crate::store::ledger::{Candidate, NewDelivery, NewRun, Pick, Run, PLAN_PAGE};
use crate::store::{db_time, stored_email, Ledger, StoreResult};

/// Rows per `unnest` insert.
const CHUNK: usize = 10_000;

/// One page of the active subscribers of `schedule` after `after`.
pub(super) async fn candidates(
    conn: &mut PgConnection,
    schedule: &str,
    after: Option<i64>,
    limit: usize,
) -> StoreResult<Vec<Candidate>> {
    let rows = sqlx::query(
        "SELECT s.id, s.email, s.confirmed_at, c.through,
                ARRAY(SELECT tag FROM subscriber_tags WHERE subscriber_id = s.id
                      ORDER BY tag) AS tags
         FROM subscriber_schedules ss
         JOIN subscribers s ON s.id = ss.subscriber_id
         LEFT JOIN digest_cursors c ON c.subscriber_id = s.id AND c.schedule = ss.schedule
         WHERE ss.schedule = $1 AND ss.subscriber_id > $2 AND s.status = 'active'
         ORDER BY ss.subscriber_id LIMIT $3",
    )
    .bind(schedule)
    .bind(after.unwrap_or(i64::MIN))
    .bind(limit as i64)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let email: String = row.try_get("email")?;
            Ok(Candidate {
                id: row.try_get("id")?,
                email: stored_email(&email)?,
                confirmed_at: row.try_get("confirmed_at")?,
                tags: row.try_get("tags")?,
                received_through: row.try_get("through")?,
            })
        })
        .collect()
}

/// Deliveries in chunks of [`CHUNK`], one `unnest` statement each.
pub(super) async fn insert_deliveries(
    conn: &mut PgConnection,
    run: i64,
    now: DateTime<Utc>,
    deliveries: &[NewDelivery],
) -> StoreResult<u64> {
    for chunk in deliveries.chunks(CHUNK) {
        let ids: Vec<i64> = chunk.iter().map(|d| d.subscriber_id).collect();
        let emails: Vec<&str> = chunk.iter().map(|d| d.email.as_str()).collect();
        let since: Vec<DateTime<Utc>> = chunk.iter().map(|d| db_time(d.since)).collect();
        let first: Vec<bool> = chunk.iter().map(|d| d.first).collect();
        sqlx::query(
            "INSERT INTO digest_deliveries
                (run_id, subscriber_id, email, since, first, state, updated_at)
             SELECT $1, d.*, 'pending', $2
             FROM unnest($3::bigint[], $4::text[], $5::timestamptz[], $6::boolean[]) AS d",
        )
        .bind(run)
        .bind(now)
        .bind(ids)
        .bind(emails)
        .bind(since)
        .bind(first)
        .execute(&mut *conn)
        .await?;
    }
    Ok(deliveries.len() as u64)
}

impl PgStore {
    /// A run with `new.deliveries` and, given `pick`, those it picks among
    /// the schedule's candidates, read a page at a time in the same
    /// transaction. Another replica planning the same tick waits on the
    /// run's UNIQUE key until this commits, then does nothing.
    pub(super) async fn write_run(
        &self,
        new: NewRun<'_>,
        pick: Option<Pick<'_>>,
    ) -> StoreResult<Option<(Run, u64)>> {
        let now = db_time(new.now);
        let mut tx = self.pool.begin().await?;
        let nonce = format!("{:016x}", rand::random::<u64>());
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO digest_runs (schedule, tick, horizon, trigger, nonce, created_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, 'sending')
             ON CONFLICT (schedule, tick) DO NOTHING RETURNING id",
        )
        .bind(new.schedule)
        .bind(db_time(new.tick))
        .bind(db_time(new.horizon))
        .bind(new.trigger.as_str())
        .bind(&nonce)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        let mut count = insert_deliveries(&mut tx, id, now, new.deliveries).await?;
        if let Some(pick) = pick {
            let mut after = None;
            loop {
                let page = candidates(&mut tx, new.schedule, after, PLAN_PAGE).await?;
                let Some(last) = page.last() else {
                    break;
                };
                after = Some(last.id);
                let picked: Vec<NewDelivery> = page.into_iter().filter_map(pick).collect();
                count += insert_deliveries(&mut tx, id, now, &picked).await?;
            }
        }
        if count == 0 {
            // Nobody had anything new: the run is done as it starts.
            sqlx::query("UPDATE digest_runs SET state = 'done', finished_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(self.run(id).await?.map(|run| (run, count)))
    }
}
