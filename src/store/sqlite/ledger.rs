//! The digest ledger's SQL on SQLite: runs, deliveries, claims and
//! settlements (the types are in [`crate::store::ledger`]).

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::{format_time, parse_opt_time, parse_time, SqliteStore};
use crate::store::ledger::*;
use crate::store::{Status, SubscriberEmail};

const RUN_COLUMNS: &str =
    "id, schedule, tick, trigger, nonce, created_at, state, finished_at FROM digest_runs";

fn decode_run(row: &sqlx::sqlite::SqliteRow) -> anyhow::Result<Run> {
    Ok(Run {
        id: row.try_get("id")?,
        schedule: row.try_get("schedule")?,
        tick: parse_time(row.try_get("tick")?)?,
        trigger: row.try_get("trigger")?,
        nonce: row.try_get("nonce")?,
        created_at: parse_time(row.try_get("created_at")?)?,
        done: row.try_get::<String, _>("state")? == "done",
        finished_at: parse_opt_time(row.try_get("finished_at")?)?,
    })
}

fn parse_email(s: &str) -> anyhow::Result<SubscriberEmail> {
    SubscriberEmail::parse(s).with_context(|| format!("bad address `{s}` in the ledger"))
}

impl SqliteStore {
    /// Records that a daemon runs `schedule` from `now` on, unless it already
    /// did; returns the first such time.
    pub async fn arm_schedule(
        &self,
        schedule: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<DateTime<Utc>> {
        sqlx::query("INSERT OR IGNORE INTO digest_schedules (name, armed_at) VALUES (?, ?)")
            .bind(schedule)
            .bind(format_time(now))
            .execute(&self.pool)
            .await?;
        let armed: String =
            sqlx::query_scalar("SELECT armed_at FROM digest_schedules WHERE name = ?")
                .bind(schedule)
                .fetch_one(&self.pool)
                .await?;
        parse_time(armed)
    }

    /// The latest tick a scheduled (or caught-up) run exists for.
    pub async fn last_scheduled_tick(
        &self,
        schedule: &str,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let tick: Option<String> = sqlx::query_scalar(
            "SELECT max(tick) FROM digest_runs WHERE schedule = ? AND trigger <> 'manual'",
        )
        .bind(schedule)
        .fetch_one(&self.pool)
        .await?;
        parse_opt_time(tick)
    }

    /// Active subscribers of `schedule`, by id, with their tag filters and
    /// what they have received of it.
    pub async fn digest_candidates(&self, schedule: &str) -> anyhow::Result<Vec<Candidate>> {
        let rows = sqlx::query(
            "SELECT s.id, s.email, s.confirmed_at, c.through,
                    (SELECT json_group_array(tag) FROM subscriber_tags
                     WHERE subscriber_id = s.id) AS tags
             FROM subscriber_schedules ss
             JOIN subscribers s ON s.id = ss.subscriber_id
             LEFT JOIN digest_cursors c ON c.subscriber_id = s.id AND c.schedule = ss.schedule
             WHERE ss.schedule = ? AND s.status = 'active'
             ORDER BY s.id",
        )
        .bind(schedule)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let email: String = row.try_get("email")?;
                let tags: String = row.try_get("tags")?;
                Ok(Candidate {
                    id: row.try_get("id")?,
                    email: parse_email(&email)?,
                    confirmed_at: parse_time(row.try_get("confirmed_at")?)?,
                    tags: serde_json::from_str(&tags)?,
                    received_through: parse_opt_time(row.try_get("through")?)?,
                })
            })
            .collect()
    }

    /// Creates the run for `(schedule, tick)` with all its deliveries, in
    /// one transaction. `None` when that run already exists (a tick never
    /// runs twice).
    pub async fn create_run(
        &self,
        schedule: &str,
        tick: DateTime<Utc>,
        trigger: Trigger,
        now: DateTime<Utc>,
        deliveries: &[NewDelivery],
    ) -> anyhow::Result<Option<Run>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let nonce = format!("{:016x}", rand::random::<u64>());
        let inserted = sqlx::query(
            "INSERT INTO digest_runs (schedule, tick, trigger, nonce, created_at, state)
             VALUES (?, ?, ?, ?, ?, 'sending')
             ON CONFLICT (schedule, tick) DO NOTHING",
        )
        .bind(schedule)
        .bind(format_time(tick))
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
        #[derive(Serialize)]
        struct Row<'a> {
            id: i64,
            email: &'a str,
            since: String,
            first: bool,
        }
        // Thousands of rows per statement, through json_each: one round
        // trip per chunk instead of one per recipient.
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
            .bind(id)
            .bind(&at)
            .bind(serde_json::to_string(&rows)?)
            .execute(&mut *tx)
            .await?;
        }
        if deliveries.is_empty() {
            // Nobody had anything new: the run is done as it starts.
            sqlx::query("UPDATE digest_runs SET state = 'done', finished_at = ? WHERE id = ?")
                .bind(&at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.run(id).await
    }

    pub async fn run(&self, id: i64) -> anyhow::Result<Option<Run>> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode_run).transpose()
    }

    /// The newest runs first.
    pub async fn runs(&self, limit: u32) -> anyhow::Result<Vec<Run>> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} ORDER BY id DESC LIMIT ?"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_run).collect()
    }

    /// Runs with deliveries still to send, oldest first.
    pub async fn unfinished_runs(&self) -> anyhow::Result<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} WHERE state = 'sending' ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_run).collect()
    }

    /// At start, before anything is sent: deliveries still `sending` were
    /// in flight when the last process died. Whether the server accepted
    /// them is unknown, so they become `uncertain` and are not sent again
    /// unless an operator says so (`herald digest retry --uncertain`).
    /// Returns how many.
    pub async fn resolve_interrupted(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let done = sqlx::query(
            "UPDATE digest_deliveries
             SET state = 'uncertain', updated_at = ?,
                 reply = 'in flight when herald stopped; it may or may not have been delivered'
             WHERE state = 'sending'",
        )
        .bind(format_time(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Takes up to `limit` pending deliveries of `run` that are due, marking
    /// them `sending` (attempts + 1), with each subscriber as they are now.
    pub async fn claim(
        &self,
        run: i64,
        now: DateTime<Utc>,
        limit: usize,
    ) -> anyhow::Result<Vec<Claimed>> {
        let at = format_time(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(
            "UPDATE digest_deliveries
             SET state = 'sending', attempts = attempts + 1, updated_at = ?1
             WHERE run_id = ?2 AND subscriber_id IN (
                 SELECT subscriber_id FROM digest_deliveries
                 WHERE run_id = ?2 AND state = 'pending'
                   AND (next_attempt_at IS NULL OR next_attempt_at <= ?1)
                 ORDER BY subscriber_id LIMIT ?3)
             RETURNING subscriber_id, email, since, first, attempts",
        )
        .bind(&at)
        .bind(run)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        let ids: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get("subscriber_id"))
            .collect::<Result<_, _>>()?;
        let current = sqlx::query(
            "SELECT s.id, s.status,
                    (SELECT json_group_array(tag) FROM subscriber_tags
                     WHERE subscriber_id = s.id) AS tags
             FROM subscribers s WHERE s.id IN (SELECT value FROM json_each(?))",
        )
        .bind(serde_json::to_string(&ids)?)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut now_known = std::collections::HashMap::new();
        for row in &current {
            let id: i64 = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let tags: String = row.try_get("tags")?;
            let tags: Vec<String> = serde_json::from_str(&tags)?;
            now_known.insert(id, (Status::parse(&status), tags));
        }
        let mut claimed: Vec<Claimed> = rows
            .iter()
            .map(|row| {
                let id: i64 = row.try_get("subscriber_id")?;
                let email: String = row.try_get("email")?;
                let (status, tags) = now_known.remove(&id).unwrap_or((None, Vec::new()));
                Ok(Claimed {
                    subscriber_id: id,
                    email: parse_email(&email)?,
                    since: parse_time(row.try_get("since")?)?,
                    first: row.try_get::<i64, _>("first")? != 0,
                    attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
                    status,
                    tags,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        claimed.sort_by_key(|c| c.subscriber_id);
        Ok(claimed)
    }

    /// Writes the outcomes of a batch of `run` in one transaction: delivery
    /// states, what each recipient has now received, hard-bounce counts
    /// (a subscriber reaching `bounce_limit` becomes `bounced`, logged in
    /// the consent log).
    pub async fn settle(
        &self,
        run: &Run,
        outcomes: &[(i64, Outcome)],
        now: DateTime<Utc>,
        bounce_limit: u32,
    ) -> anyhow::Result<Settled> {
        let at = format_time(now);
        let tick = format_time(run.tick);
        let mut settled = Settled::default();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (id, outcome) in outcomes {
            let (state, reply, next, count) = match outcome {
                Outcome::Sent { article_count } => {
                    ("sent", None, None, Some(*article_count as i64))
                }
                Outcome::Retry { reply, at } => (
                    "pending",
                    Some(reply.as_str()),
                    Some(format_time(*at)),
                    None,
                ),
                Outcome::Failed { reply } => ("failed", Some(reply.as_str()), None, None),
                Outcome::Bounced { reply } => ("bounced", Some(reply.as_str()), None, None),
                Outcome::Skipped { reason } => ("skipped", Some(reason.as_str()), None, None),
            };
            sqlx::query(
                "UPDATE digest_deliveries
                 SET state = ?, reply = ?, next_attempt_at = ?, article_count = ?, updated_at = ?
                 WHERE run_id = ? AND subscriber_id = ?",
            )
            .bind(state)
            .bind(reply)
            .bind(next)
            .bind(count)
            .bind(&at)
            .bind(run.id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            match outcome {
                Outcome::Sent { .. } => {
                    sqlx::query(
                        "INSERT INTO digest_cursors (subscriber_id, schedule, through)
                         VALUES (?1, ?2, ?3)
                         ON CONFLICT (subscriber_id, schedule)
                         DO UPDATE SET through = max(through, ?3)",
                    )
                    .bind(id)
                    .bind(&run.schedule)
                    .bind(&tick)
                    .execute(&mut *tx)
                    .await?;
                }
                Outcome::Bounced { reply } => {
                    let row: Option<(i64, String, String)> = sqlx::query_as(
                        "UPDATE subscribers SET hard_bounces = hard_bounces + 1 WHERE id = ?
                         RETURNING hard_bounces, status, email_key",
                    )
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((count, status, key)) = row {
                        if count >= i64::from(bounce_limit) && status == "active" {
                            sqlx::query(
                                "UPDATE subscribers SET status = 'bounced', left_at = ?,
                                 left_how = 'bounce' WHERE id = ?",
                            )
                            .bind(&at)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                            sqlx::query(
                                "INSERT INTO consent_log (subscriber_id, email_key, event, at, source, note)
                                 VALUES (?, ?, 'bounce', ?, 'bounce', ?)",
                            )
                            .bind(id)
                            .bind(&key)
                            .bind(&at)
                            .bind(format!("{count} hard bounces; last: {reply}"))
                            .execute(&mut *tx)
                            .await?;
                            settled.newly_bounced.push(*id);
                        }
                    }
                }
                _ => {}
            }
        }
        tx.commit().await?;
        Ok(settled)
    }

    /// When the earliest delivery of `run` waiting for a retry is due.
    pub async fn next_retry(&self, run: i64) -> anyhow::Result<Option<DateTime<Utc>>> {
        let at: Option<String> = sqlx::query_scalar(
            "SELECT min(coalesce(next_attempt_at, '')) FROM digest_deliveries
             WHERE run_id = ? AND state = 'pending'",
        )
        .bind(run)
        .fetch_one(&self.pool)
        .await?;
        match at {
            None => Ok(None),
            // Pending without a retry time: due now.
            Some(s) if s.is_empty() => Ok(Some(DateTime::<Utc>::MIN_UTC)),
            Some(s) => parse_time(s).map(Some),
        }
    }

    /// Marks `run` done when nothing in it is pending or being sent.
    pub async fn finish_if_done(&self, run: i64, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let done = sqlx::query(
            "UPDATE digest_runs SET state = 'done', finished_at = ?
             WHERE id = ? AND state = 'sending' AND NOT EXISTS (
                 SELECT 1 FROM digest_deliveries
                 WHERE run_id = digest_runs.id AND state IN ('pending', 'sending'))",
        )
        .bind(format_time(now))
        .bind(run)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts by state, and every delivery that has not gone out.
    pub async fn run_status(&self, run: i64) -> anyhow::Result<RunStatus> {
        let mut status = RunStatus::default();
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, count(*) FROM digest_deliveries WHERE run_id = ? GROUP BY state",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        for (state, n) in counts {
            if let Some(s) = DeliveryState::parse(&state) {
                status.counts.insert(s, n as u64);
            }
        }
        let rows = sqlx::query(
            "SELECT subscriber_id, email, state, attempts, reply FROM digest_deliveries
             WHERE run_id = ? AND (state IN ('failed', 'bounced', 'uncertain')
                                   OR (state = 'pending' AND reply IS NOT NULL))
             ORDER BY subscriber_id",
        )
        .bind(run)
        .fetch_all(&self.pool)
        .await?;
        for row in &rows {
            let state: String = row.try_get("state")?;
            status.problems.push(Problem {
                subscriber_id: row.try_get("subscriber_id")?,
                email: row.try_get("email")?,
                state: DeliveryState::parse(&state).context("unknown delivery state")?,
                attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
                reply: row.try_get("reply")?,
            });
        }
        Ok(status)
    }

    /// Puts the deliveries of `run` in `state` (failed or uncertain) back
    /// to pending with fresh attempts, and reopens the run. Returns how many.
    pub async fn requeue(
        &self,
        run: i64,
        state: DeliveryState,
        now: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        let at = format_time(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // Only subscribers still active get mail again.
        let n = sqlx::query(
            "UPDATE digest_deliveries
             SET state = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = ?
             WHERE run_id = ? AND state = ?
               AND subscriber_id IN (SELECT id FROM subscribers WHERE status = 'active')",
        )
        .bind(&at)
        .bind(run)
        .bind(state.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query(
                "UPDATE digest_runs SET state = 'sending', finished_at = NULL WHERE id = ?",
            )
            .bind(run)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }
}
