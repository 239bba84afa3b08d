//! Planning a run on SQLite: the run row, and its deliveries written in the
//! same transaction, from the caller's list and from the schedule's
//! candidates read a page at a time.

use serde::Serialize;
use sqlx::{Row, SqliteConnection};

use super::{format_time, parse_opt_time, parse_time, SqliteStore};
use crate::store::ledger::{Candidate, NewDelivery, NewRun, Pick, Run, PLAN_PAGE};
use crate::store::{stored_email, Ledger, StoreResult};

/// One page of the active subscribers of `schedule` after `after`.
pub(super) async fn candidates(
    conn: &mut SqliteConnection,
    schedule: &str,
    after: Option<i64>,
    limit: usize,
) -> StoreResult<Vec<Candidate>> {
    let rows = sqlx::query(
        "SELECT s.id, s.email, s.confirmed_at, c.through,
                (SELECT json_group_array(tag) FROM subscriber_tags
                 WHERE subscriber_id = s.id) AS tags
         FROM subscriber_schedules ss
         JOIN subscribers s ON s.id = ss.subscriber_id
         LEFT JOIN digest_cursors c ON c.subscriber_id = s.id AND c.schedule = ss.schedule
         WHERE ss.schedule = ? AND ss.subscriber_id > ? AND s.status = 'active'
         ORDER BY ss.subscriber_id LIMIT ?",
    )
    .bind(schedule)
    .bind(after.unwrap_or(i64::MIN))
    .bind(limit as i64)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let email: String = row.try_get("email")?;
            let tags: String = row.try_get("tags")?;
            Ok(Candidate {
                id: row.try_get("id")?,
                email: stored_email(&email)?,
                confirmed_at: parse_time(row.try_get("confirmed_at")?)?,
                tags: serde_json::from_str(&tags)?,
                received_through: parse_opt_time(row.try_get("through")?)?,
            })
        })
        .collect()
}

/// Thousands of rows per statement, through json_each: one round trip
/// per chunk instead of one per recipient.
pub(super) async fn insert_deliveries(
    conn: &mut SqliteConnection,
    run: i64,
    at: &str,
    deliveries: &[NewDelivery],
) -> StoreResult<u64> {
    #[derive(Serialize)]
    struct Row<'a> {
        id: i64,
        email: &'a str,
        since: String,
        first: bool,
    }
    for chunk in deliveries.chunks(5000) {
        let rows: Vec<Row<'_>> = chunk
            .iter()
            .map(|d| Row {
                id: d.subscriber_id,
                email: d.email.as_str(),
                since: format_time(d.since),
                first: d.first,
            })
            .collect();
        sqlx::query(
            "INSERT INTO digest_deliveries
                (run_id, subscriber_id, email, since, first, state, updated_at)
             SELECT ?, value ->> 'id', value ->> 'email', value ->> 'since',
                    value ->> 'first', 'pending', ?
             FROM json_each(?)",
        )
        .bind(run)
        .bind(at)
        .bind(serde_json::to_string(&rows)?)
        .execute(&mut *conn)
        .await?;
    }
    Ok(deliveries.len() as u64)
}

impl SqliteStore {
    /// A run with `new.deliveries` and, given `pick`, those it picks among
    /// the schedule's candidates, read a page at a time in the same
    /// transaction (a long list costs time under the write lock, never
    /// memory).
    pub(super) async fn write_run(
        &self,
        new: NewRun<'_>,
        pick: Option<Pick<'_>>,
    ) -> StoreResult<Option<(Run, u64)>> {
        let NewRun {
            schedule,
            tick,
            horizon,
            trigger,
            now,
            deliveries,
        } = new;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let nonce = format!("{:016x}", rand::random::<u64>());
        let inserted = sqlx::query(
            "INSERT INTO digest_runs (schedule, tick, horizon, trigger, nonce, created_at, state)
             VALUES (?, ?, ?, ?, ?, ?, 'sending')
             ON CONFLICT (schedule, tick) DO NOTHING",
        )
        .bind(schedule)
        .bind(format_time(tick))
        .bind(format_time(horizon))
        .bind(trigger.as_str())
        .bind(&nonce)
        .bind(format_time(now))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        let id = inserted.last_insert_rowid();
        let at = format_time(now);
        let mut count = insert_deliveries(&mut tx, id, &at, deliveries).await?;
        if let Some(pick) = pick {
            let mut after = None;
            loop {
                let page = candidates(&mut tx, schedule, after, PLAN_PAGE).await?;
                let Some(last) = page.last() else {
                    break;
                };
                after = Some(last.id);
                let picked: Vec<NewDelivery> = page.into_iter().filter_map(pick).collect();
                count += insert_deliveries(&mut tx, id, &at, &picked).await?;
            }
        }
        if count == 0 {
            // Nobody had anything new: the run is done as it starts.
            sqlx::query("UPDATE digest_runs SET state = 'done', finished_at = ? WHERE id = ?")
                .bind(&at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(self.run(id).await?.map(|run| (run, count)))
    }
}
