//! The digest ledger's SQL on PostgreSQL. Replicas share the work: exactly
//! one of them creates each `(schedule, tick)` run (the UNIQUE key: a
//! second INSERT waits for the first to commit, then does nothing), and
//! they claim deliveries in batches with `FOR UPDATE SKIP LOCKED`, so two
//! claims never take the same row and never wait for each other. Each
//! claim carries a lease; a replica renews its leases while it sends, and
//! rows whose lease ran out while `sending` become `uncertain`.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::plan::candidates;
use super::{insert_log, LogRow, PgStore};
use crate::store::ledger::*;
use crate::store::{db_time, stored_email, Claim, Ledger, Status, StoreError, StoreResult};

const RUN_COLUMNS: &str =
    "id, schedule, tick, horizon, trigger, nonce, created_at, state, finished_at FROM digest_runs";

fn decode_run(row: &PgRow) -> StoreResult<Run> {
    let tick: DateTime<Utc> = row.try_get("tick")?;
    Ok(Run {
        id: row.try_get("id")?,
        schedule: row.try_get("schedule")?,
        tick,
        horizon: row
            .try_get::<Option<DateTime<Utc>>, _>("horizon")?
            .unwrap_or(tick),
        trigger: row.try_get("trigger")?,
        nonce: row.try_get("nonce")?,
        created_at: row.try_get("created_at")?,
        done: row.try_get::<String, _>("state")? == "done",
        finished_at: row.try_get("finished_at")?,
    })
}

#[async_trait::async_trait]
impl Ledger for PgStore {
    async fn arm_schedule(&self, schedule: &str, now: DateTime<Utc>) -> StoreResult<DateTime<Utc>> {
        sqlx::query(
            "INSERT INTO digest_schedules (name, armed_at) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(schedule)
        .bind(db_time(now))
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT armed_at FROM digest_schedules WHERE name = $1")
                .bind(schedule)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn last_scheduled_tick(&self, schedule: &str) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(sqlx::query_scalar(
            "SELECT max(tick) FROM digest_runs WHERE schedule = $1 AND trigger <> 'manual'",
        )
        .bind(schedule)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn candidates_page(
        &self,
        schedule: &str,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<Candidate>> {
        let mut conn = self.pool.acquire().await?;
        candidates(&mut conn, schedule, after, limit).await
    }

    async fn run_exists(&self, schedule: &str, tick: DateTime<Utc>) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM digest_runs WHERE schedule = $1 AND tick = $2")
                .bind(schedule)
                .bind(db_time(tick))
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.is_some())
    }

    async fn create_run(&self, new: NewRun<'_>) -> StoreResult<Option<Run>> {
        Ok(self.write_run(new, None).await?.map(|(run, _)| run))
    }

    async fn plan_run(&self, new: NewRun<'_>, pick: Pick<'_>) -> StoreResult<Option<(Run, u64)>> {
        self.write_run(new, Some(pick)).await
    }

    async fn run(&self, id: i64) -> StoreResult<Option<Run>> {
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode_run).transpose()
    }

    async fn runs(&self, limit: u32) -> StoreResult<Vec<Run>> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} ORDER BY id DESC LIMIT $1"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode_run).collect()
    }

    async fn unfinished_runs(&self) -> StoreResult<Vec<Run>> {
        let rows = sqlx::query(&format!(
            "SELECT {RUN_COLUMNS} WHERE state = 'sending' ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_run).collect()
    }

    async fn resolve_interrupted(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE digest_deliveries
             SET state = 'uncertain', updated_at = $1,
                 reply = 'in flight when herald stopped; it may or may not have been delivered'
             WHERE state = 'sending'",
        )
        .bind(db_time(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Rows locked right now are being settled or renewed by a live
    /// replica: skipped, never waited for (waiting on rows locked in
    /// another order is how two replicas deadlock).
    async fn expire_leases(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE digest_deliveries d
             SET state = 'uncertain', updated_at = $1,
                 reply = 'in flight when its sender stopped (lease of ' || d.claimed_by ||
                         ' expired); it may or may not have been delivered'
             FROM (SELECT run_id, subscriber_id FROM digest_deliveries
                   WHERE state = 'sending' AND lease_until < $1
                   FOR UPDATE SKIP LOCKED) e
             WHERE d.run_id = e.run_id AND d.subscriber_id = e.subscriber_id",
        )
        .bind(db_time(now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn claim(&self, run: i64, claim: Claim<'_>) -> StoreResult<Vec<Claimed>> {
        let now = db_time(claim.now);
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "WITH picked AS (
                 SELECT subscriber_id FROM digest_deliveries
                 WHERE run_id = $1 AND state = 'pending'
                   AND (next_attempt_at IS NULL OR next_attempt_at <= $2)
                 ORDER BY subscriber_id LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             UPDATE digest_deliveries d
             SET state = 'sending', attempts = d.attempts + 1, updated_at = $2,
                 claimed_by = $4, lease_until = $5
             FROM picked
             WHERE d.run_id = $1 AND d.subscriber_id = picked.subscriber_id
             RETURNING d.subscriber_id, d.email, d.since, d.first, d.attempts,
                 (SELECT s.status FROM subscribers s WHERE s.id = d.subscriber_id) AS status,
                 ARRAY(SELECT tag FROM subscriber_tags t WHERE t.subscriber_id = d.subscriber_id
                       ORDER BY tag) AS tags",
        )
        .bind(run)
        .bind(now)
        .bind(claim.limit as i64)
        .bind(claim.by)
        .bind(db_time(claim.lease_until))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut claimed = rows
            .iter()
            .map(|row| {
                let email: String = row.try_get("email")?;
                let status: Option<String> = row.try_get("status")?;
                Ok(Claimed {
                    subscriber_id: row.try_get("subscriber_id")?,
                    email: stored_email(&email)?,
                    since: row.try_get("since")?,
                    first: row.try_get("first")?,
                    attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
                    status: status.as_deref().and_then(Status::parse),
                    tags: row.try_get("tags")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        claimed.sort_by_key(|c| c.subscriber_id);
        Ok(claimed)
    }

    async fn renew_leases(&self, by: &str, until: DateTime<Utc>) -> StoreResult<u64> {
        // Rows being settled at this moment are skipped: their lease no
        // longer matters, and waiting for them could deadlock.
        let done = sqlx::query(
            "UPDATE digest_deliveries d SET lease_until = $1
             FROM (SELECT run_id, subscriber_id FROM digest_deliveries
                   WHERE claimed_by = $2 AND state = 'sending'
                   FOR UPDATE SKIP LOCKED) r
             WHERE d.run_id = r.run_id AND d.subscriber_id = r.subscriber_id",
        )
        .bind(db_time(until))
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn settle(
        &self,
        run: &Run,
        by: &str,
        outcomes: &[(i64, Outcome)],
        now: DateTime<Utc>,
        bounce_limit: u32,
    ) -> StoreResult<Settled> {
        let now = db_time(now);
        let mut ids = Vec::with_capacity(outcomes.len());
        let mut states = Vec::with_capacity(outcomes.len());
        let mut replies: Vec<Option<&str>> = Vec::with_capacity(outcomes.len());
        let mut nexts: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(outcomes.len());
        let mut counts: Vec<Option<i32>> = Vec::with_capacity(outcomes.len());
        for (id, outcome) in outcomes {
            let (state, reply, next, count) = match outcome {
                Outcome::Sent { article_count } => {
                    ("sent", None, None, Some(*article_count as i32))
                }
                Outcome::Retry { reply, at } => {
                    ("pending", Some(reply.as_str()), Some(db_time(*at)), None)
                }
                Outcome::Failed { reply } => ("failed", Some(reply.as_str()), None, None),
                Outcome::Bounced { reply } => ("bounced", Some(reply.as_str()), None, None),
                Outcome::Skipped { reason } => ("skipped", Some(reason.as_str()), None, None),
            };
            ids.push(*id);
            states.push(state);
            replies.push(reply);
            nexts.push(next);
            counts.push(count);
        }
        let mut tx = self.pool.begin().await?;
        // Only rows this replica still holds: an operator's requeue in the
        // meantime wins. A row whose lease ran out (`uncertain`) takes the
        // outcome its sender knows.
        let updated: Vec<i64> = sqlx::query_scalar(
            "UPDATE digest_deliveries d
             SET state = u.state, reply = u.reply, next_attempt_at = u.next,
                 article_count = u.count, updated_at = $3, lease_until = NULL
             FROM unnest($4::bigint[], $5::text[], $6::text[], $7::timestamptz[], $8::int[])
                  AS u(id, state, reply, next, count)
             WHERE d.run_id = $1 AND d.subscriber_id = u.id AND d.claimed_by = $2
               AND d.state IN ('sending', 'uncertain')
             RETURNING d.subscriber_id",
        )
        .bind(run.id)
        .bind(by)
        .bind(now)
        .bind(&ids)
        .bind(&states)
        .bind(&replies)
        .bind(&nexts)
        .bind(&counts)
        .fetch_all(&mut *tx)
        .await?;
        let updated: std::collections::HashSet<i64> = updated.into_iter().collect();
        let sent: Vec<i64> = outcomes
            .iter()
            .filter(|(id, o)| matches!(o, Outcome::Sent { .. }) && updated.contains(id))
            .map(|(id, _)| *id)
            .collect();
        // An announcement is no digest: what a subscriber has received of
        // a schedule stays as it was.
        if !sent.is_empty() && !run.is_announcement() {
            sqlx::query(
                "INSERT INTO digest_cursors (subscriber_id, schedule, through)
                 SELECT id, $1, $2 FROM unnest($3::bigint[]) AS id
                 ON CONFLICT (subscriber_id, schedule)
                 DO UPDATE SET through = GREATEST(digest_cursors.through, EXCLUDED.through)",
            )
            .bind(&run.schedule)
            .bind(db_time(run.horizon))
            .bind(&sent)
            .execute(&mut *tx)
            .await?;
        }
        let mut settled = Settled::default();
        for (id, outcome) in outcomes {
            let Outcome::Bounced { reply } = outcome else {
                continue;
            };
            if !updated.contains(id) {
                continue;
            }
            let row: Option<(i32, String, String)> = sqlx::query_as(
                "UPDATE subscribers SET hard_bounces = hard_bounces + 1 WHERE id = $1
                 RETURNING hard_bounces, status, email_key",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((count, status, key)) = row else {
                continue;
            };
            if count as i64 >= i64::from(bounce_limit) && status == "active" {
                sqlx::query(
                    "UPDATE subscribers SET status = 'bounced', left_at = $1, left_how = 'bounce'
                     WHERE id = $2",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                let entry = LogRow {
                    id: Some(*id),
                    key: &key,
                    event: "bounce",
                    at: now,
                    ip: None,
                    source: Some("bounce"),
                    note: Some(format!("{count} hard bounces; last: {reply}")),
                };
                insert_log(&mut tx, &[entry]).await?;
                settled.newly_bounced.push(*id);
            }
        }
        tx.commit().await?;
        Ok(settled)
    }

    async fn next_retry(&self, run: i64) -> StoreResult<Option<DateTime<Utc>>> {
        let (any_now, earliest): (Option<bool>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT bool_or(next_attempt_at IS NULL), min(next_attempt_at)
             FROM digest_deliveries WHERE run_id = $1 AND state = 'pending'",
        )
        .bind(run)
        .fetch_one(&self.pool)
        .await?;
        Ok(match any_now {
            None => None,
            // Pending without a retry time: due now.
            Some(true) => Some(DateTime::<Utc>::MIN_UTC),
            Some(false) => earliest,
        })
    }

    async fn finish_if_done(&self, run: i64, now: DateTime<Utc>) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE digest_runs SET state = 'done', finished_at = $1
             WHERE id = $2 AND state = 'sending' AND NOT EXISTS (
                 SELECT 1 FROM digest_deliveries
                 WHERE run_id = digest_runs.id AND state IN ('pending', 'sending'))",
        )
        .bind(db_time(now))
        .bind(run)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn run_status(&self, run: i64) -> StoreResult<RunStatus> {
        let mut status = RunStatus::default();
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT state, count(*) FROM digest_deliveries WHERE run_id = $1 GROUP BY state",
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
             WHERE run_id = $1 AND (state IN ('failed', 'bounced', 'uncertain')
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
                state: DeliveryState::parse(&state).ok_or_else(|| {
                    StoreError::internal(format!("unknown delivery state {state}"))
                })?,
                attempts: row.try_get::<i32, _>("attempts")?.max(0) as u32,
                reply: row.try_get("reply")?,
            });
        }
        Ok(status)
    }

    async fn requeue(
        &self,
        run: i64,
        state: DeliveryState,
        now: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM digest_runs WHERE id = $1 FOR UPDATE")
                .bind(run)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound(format!(
                "there is no digest run {run}"
            )));
        }
        // Only subscribers still active get mail again.
        let n = sqlx::query(
            "UPDATE digest_deliveries
             SET state = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = $1,
                 claimed_by = NULL, lease_until = NULL
             WHERE run_id = $2 AND state = $3
               AND subscriber_id IN (SELECT id FROM subscribers WHERE status = 'active')",
        )
        .bind(db_time(now))
        .bind(run)
        .bind(state.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query(
                "UPDATE digest_runs SET state = 'sending', finished_at = NULL WHERE id = $1",
            )
            .bind(run)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// One row holds the next free slot of the site's rate; a replica
    /// reserves a whole batch's slots in one locked update, so N replicas
    /// together never exceed `mail.rate_limit`.
    async fn reserve_sends(
        &self,
        count: u32,
        interval: std::time::Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<DateTime<Utc>> {
        let now = db_time(now);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO herald_state (key, value) VALUES ('send_slot', '') ON CONFLICT DO NOTHING",
        )
        .execute(&mut *tx)
        .await?;
        let next: String =
            sqlx::query_scalar("SELECT value FROM herald_state WHERE key = 'send_slot' FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        let next = DateTime::parse_from_rfc3339(&next)
            .map(|t| t.to_utc().max(now))
            .unwrap_or(now);
        let span = chrono::Duration::from_std(interval * count).unwrap_or(chrono::Duration::MAX);
        sqlx::query("UPDATE herald_state SET value = $1 WHERE key = 'send_slot'")
            .bind((next + span).to_rfc3339())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(next)
    }
}
