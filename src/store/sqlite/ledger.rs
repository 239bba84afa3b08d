//! The digest ledger's SQL on SQLite: runs, deliveries, claims and
//! settlements (the types are in [`crate::store::ledger`]).

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::plan::candidates;
use super::{format_time, parse_opt_time, parse_time, SqliteStore};
use crate::store::ledger::*;
use crate::store::{stored_email, Claim, Ledger, Status, StoreError, StoreResult};

const RUN_COLUMNS: &str =
    "id, schedule, tick, horizon, trigger, nonce, created_at, state, finished_at FROM digest_runs";

fn decode_run(row: &sqlx::sqlite::SqliteRow) -> StoreResult<Run> {
    let tick = parse_time(row.try_get("tick")?)?;
    Ok(Run {
        id: row.try_get("id")?,
        schedule: row.try_get("schedule")?,
        tick,
        horizon: parse_opt_time(row.try_get("horizon")?)?.unwrap_or(tick),
        trigger: row.try_get("trigger")?,
        nonce: row.try_get("nonce")?,
        created_at: parse_time(row.try_get("created_at")?)?,
        done: row.try_get::<String, _>("state")? == "done",
        finished_at: parse_opt_time(row.try_get("finished_at")?)?,
    })
}

#[async_trait::async_trait]
impl Ledger for SqliteStore {
    async fn arm_schedule(&self, schedule: &str, now: DateTime<Utc>) -> StoreResult<DateTime<Utc>> {
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

    async fn last_scheduled_tick(&self, schedule: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let tick: Option<String> = sqlx::query_scalar(
            "SELECT max(tick) FROM digest_runs WHERE schedule = ? AND trigger <> 'manual'",
        )
        .bind(schedule)
        .fetch_one(&self.pool)
        .await?;
        parse_opt_time(tick)
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
            sqlx::query_scalar("SELECT id FROM digest_runs WHERE schedule = ? AND tick = ?")
                .bind(schedule)
                .bind(format_time(tick))
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
        let row = sqlx::query(&format!("SELECT {RUN_COLUMNS} WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode_run).transpose()
    }

    async fn runs(&self, limit: u32) -> StoreResult<Vec<Run>> {
        let rows = sqlx::query(&format!("SELECT {RUN_COLUMNS} ORDER BY id DESC LIMIT ?"))
            .bind(limit)
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

    /// Deliveries still `sending` when the send lock is taken were in
    /// flight when the last process died. Whether the server accepted them
    /// is unknown, so they become `uncertain` and are not sent again unless
    /// an operator says so (`herald digest retry --uncertain`).
    async fn resolve_interrupted(&self, now: DateTime<Utc>) -> StoreResult<u64> {
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

    async fn expire_leases(&self, now: DateTime<Utc>) -> StoreResult<u64> {
        let at = format_time(now);
        let done = sqlx::query(
            "UPDATE digest_deliveries
             SET state = 'uncertain', updated_at = ?1,
                 reply = 'in flight when its sender stopped (lease of ' || claimed_by ||
                         ' expired); it may or may not have been delivered'
             WHERE state = 'sending' AND lease_until < ?1",
        )
        .bind(&at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// `BEGIN IMMEDIATE` makes claims one at a time: no two senders can
    /// take the same row.
    async fn claim(&self, run: i64, claim: Claim<'_>) -> StoreResult<Vec<Claimed>> {
        let at = format_time(claim.now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows = sqlx::query(
            "UPDATE digest_deliveries
             SET state = 'sending', attempts = attempts + 1, updated_at = ?1,
                 claimed_by = ?4, lease_until = ?5
             WHERE run_id = ?2 AND subscriber_id IN (
                 SELECT subscriber_id FROM digest_deliveries
                 WHERE run_id = ?2 AND state = 'pending'
                   AND (next_attempt_at IS NULL OR next_attempt_at <= ?1)
                 ORDER BY subscriber_id LIMIT ?3)
             RETURNING subscriber_id, email, since, first, attempts",
        )
        .bind(&at)
        .bind(run)
        .bind(claim.limit as i64)
        .bind(claim.by)
        .bind(format_time(claim.lease_until))
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
                    email: stored_email(&email)?,
                    since: parse_time(row.try_get("since")?)?,
                    first: row.try_get::<i64, _>("first")? != 0,
                    attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
                    status,
                    tags,
                })
            })
            .collect::<StoreResult<_>>()?;
        claimed.sort_by_key(|c| c.subscriber_id);
        Ok(claimed)
    }

    async fn renew_leases(&self, by: &str, until: DateTime<Utc>) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE digest_deliveries SET lease_until = ?
             WHERE claimed_by = ? AND state = 'sending'",
        )
        .bind(format_time(until))
        .bind(by)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    /// Hard-bounce counts too: a subscriber reaching `bounce_limit` becomes
    /// `bounced`, logged in the consent log. A row whose lease ran out
    /// (now `uncertain`) still takes the outcome its sender knows.
    async fn settle(
        &self,
        run: &Run,
        by: &str,
        outcomes: &[(i64, Outcome)],
        now: DateTime<Utc>,
        bounce_limit: u32,
    ) -> StoreResult<Settled> {
        let at = format_time(now);
        let tick = format_time(run.horizon);
        let mut settled = Settled::default();
        // Outcomes that write the same values, with their subscribers:
        // nearly a whole batch is one group (sent, with as many articles).
        type Values<'a> = (&'static str, Option<&'a str>, Option<String>, Option<i64>);
        let mut groups: std::collections::BTreeMap<Values<'_>, Vec<i64>> = Default::default();
        for (id, outcome) in outcomes {
            let values = match outcome {
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
            groups.entry(values).or_default().push(*id);
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // A statement per group, not per delivery: each statement is a
        // round trip to sqlx's SQLite thread, and two per delivery took
        // most of the recorder's time. `IN (json_each)` looks each row up
        // by its key. Only rows still claimed by `by`: an operator's
        // requeue in the meantime wins.
        let mut updated = Vec::with_capacity(outcomes.len());
        for ((state, reply, next, count), ids) in &groups {
            let rows: Vec<i64> = sqlx::query_scalar(
                "UPDATE digest_deliveries
                 SET state = ?1, reply = ?2, next_attempt_at = ?3, article_count = ?4,
                     updated_at = ?5, lease_until = NULL
                 WHERE run_id = ?6 AND claimed_by = ?7 AND state IN ('sending', 'uncertain')
                   AND subscriber_id IN (SELECT value FROM json_each(?8))
                 RETURNING subscriber_id",
            )
            .bind(state)
            .bind(reply)
            .bind(next)
            .bind(count)
            .bind(&at)
            .bind(run.id)
            .bind(by)
            .bind(serde_json::to_string(ids)?)
            .fetch_all(&mut *tx)
            .await?;
            updated.extend(rows);
        }
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
                 SELECT value, ?1, ?2 FROM json_each(?3) WHERE true
                 ON CONFLICT (subscriber_id, schedule)
                 DO UPDATE SET through = max(through, excluded.through)",
            )
            .bind(&run.schedule)
            .bind(&tick)
            .bind(serde_json::to_string(&sent)?)
            .execute(&mut *tx)
            .await?;
        }
        for (id, outcome) in outcomes {
            let Outcome::Bounced { reply } = outcome else {
                continue;
            };
            if !updated.contains(id) {
                continue;
            }
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
        tx.commit().await?;
        Ok(settled)
    }

    async fn next_retry(&self, run: i64) -> StoreResult<Option<DateTime<Utc>>> {
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

    async fn finish_if_done(&self, run: i64, now: DateTime<Utc>) -> StoreResult<bool> {
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

    async fn run_status(&self, run: i64) -> StoreResult<RunStatus> {
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
                state: DeliveryState::parse(&state).ok_or_else(|| {
                    StoreError::internal(format!("unknown delivery state {state}"))
                })?,
                attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
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
        let at = format_time(now);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM digest_runs WHERE id = ?")
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
             SET state = 'pending', attempts = 0, next_attempt_at = NULL, updated_at = ?,
                 claimed_by = NULL, lease_until = NULL
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

    async fn reserve_sends(
        &self,
        count: u32,
        interval: std::time::Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<DateTime<Utc>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let next: Option<String> =
            sqlx::query_scalar("SELECT value FROM herald_state WHERE key = 'send_slot'")
                .fetch_optional(&mut *tx)
                .await?;
        let next = parse_opt_time(next)?.map_or(now, |n| n.max(now));
        let span = chrono::Duration::from_std(interval * count).unwrap_or(chrono::Duration::MAX);
        sqlx::query(
            "INSERT INTO herald_state (key, value) VALUES ('send_slot', ?1)
             ON CONFLICT (key) DO UPDATE SET value = ?1",
        )
        .bind(format_time(next + span))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(next)
    }
}
