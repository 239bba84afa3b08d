//! [`Deliverability`] on PostgreSQL: late bounces and complaints applied
//! in one transaction each (the subscriber row locked while it changes),
//! erasure, and the expiry of client IPs.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{insert_log, LogRow, PgStore};
use crate::store::feedback::{decide, message_id_matches};
use crate::store::{
    db_time, stored_status, suppression_hash, Deliverability, Feedback, FeedbackKind,
    FeedbackOutcome, FeedbackTarget, StoreResult, SubscriberEmail,
};

/// Counts a hard bounce.
const UPDATE_BOUNCES: &str = "UPDATE subscribers SET hard_bounces = $1 WHERE id = $2";

/// The subscriber (and the delivery, with its state) a report is about,
/// or `None` when nothing matches.
async fn resolve(
    conn: &mut PgConnection,
    f: &Feedback,
) -> StoreResult<Option<(i64, Option<(i64, String)>)>> {
    match &f.target {
        FeedbackTarget::Delivery {
            run,
            subscriber,
            nonce,
        } => {
            let row: Option<(String, String, String)> = sqlx::query_as(
                "SELECT d.email, d.state, r.nonce FROM digest_deliveries d
                 JOIN digest_runs r ON r.id = d.run_id
                 WHERE d.run_id = $1 AND d.subscriber_id = $2 FOR UPDATE OF d",
            )
            .bind(run)
            .bind(subscriber)
            .fetch_optional(&mut *conn)
            .await?;
            let Some((email, state, run_nonce)) = row else {
                return Ok(None);
            };
            if let Some(nonce) = nonce {
                if !message_id_matches(f, nonce, &run_nonce, &email) {
                    return Ok(None);
                }
            }
            Ok(Some((*subscriber, Some((*run, state)))))
        }
        FeedbackTarget::Address(email) => {
            let id: Option<i64> =
                sqlx::query_scalar("SELECT id FROM subscribers WHERE email_key = $1")
                    .bind(email.key())
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(id.map(|id| (id, None)))
        }
    }
}

#[async_trait::async_trait]
impl Deliverability for PgStore {
    async fn record_feedback(
        &self,
        f: &Feedback,
        bounce_limit: u32,
    ) -> StoreResult<FeedbackOutcome> {
        let at = db_time(f.at);
        let mut tx = self.pool.begin().await?;
        if let Some(event) = &f.event_id {
            let fresh = sqlx::query(
                "INSERT INTO feedback_events (source, event_id, at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .bind(&f.source)
            .bind(event)
            .bind(at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                return Ok(FeedbackOutcome::Duplicate);
            }
        }
        // Unmatched: rolled back, event id included, so that the same
        // event can still apply once it can be matched.
        let Some((id, delivery)) = resolve(&mut tx, f).await? else {
            return Ok(FeedbackOutcome::Unmatched);
        };
        let row: Option<(String, String, i32)> = sqlx::query_as(
            "SELECT email_key, status, hard_bounces FROM subscribers WHERE id = $1 FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((key, status, bounces)) = row else {
            return Ok(FeedbackOutcome::Unmatched);
        };
        let status = stored_status(&status)?;
        let decision = decide(f, status, i64::from(bounces), bounce_limit);
        if f.kind == FeedbackKind::HardBounce {
            if let Some((run, state)) = &delivery {
                if state == "bounced" {
                    // A DSN and a webhook about one message: counted once.
                    tx.commit().await?;
                    return Ok(FeedbackOutcome::Applied {
                        subscriber_id: id,
                        status,
                        changed: false,
                    });
                }
                sqlx::query(
                    "UPDATE digest_deliveries SET state = 'bounced', reply = $1,
                         updated_at = $2, next_attempt_at = NULL
                     WHERE run_id = $3 AND subscriber_id = $4 AND state <> 'sending'",
                )
                .bind(format!("late bounce ({}): {}", f.source, f.detail))
                .bind(at)
                .bind(run)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(UPDATE_BOUNCES)
                .bind(decision.bounces as i32)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some((new, how)) = decision.moves_to {
            sqlx::query(
                "UPDATE subscribers SET status = $1, left_at = coalesce(left_at, $2), left_how = $3
                 WHERE id = $4",
            )
            .bind(new.as_str())
            .bind(at)
            .bind(how)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        let entry = LogRow {
            id: Some(id),
            key: &key,
            event: decision.event,
            at,
            ip: None,
            source: Some(&f.source),
            note: Some(decision.note),
        };
        insert_log(&mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(FeedbackOutcome::Applied {
            subscriber_id: id,
            status: decision.moves_to.map_or(status, |(s, _)| s),
            changed: decision.moves_to.is_some(),
        })
    }

    async fn forget(&self, email: &SubscriberEmail, at: DateTime<Utc>) -> StoreResult<bool> {
        let key = email.key();
        let hash = suppression_hash(email);
        let erased = format!("erased:{hash}");
        let at = db_time(at);
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO suppressions (email_hash, reason, at) VALUES ($1, 'erasure', $2)
             ON CONFLICT DO NOTHING",
        )
        .bind(&hash)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM subscribers WHERE email_key = $1 FOR UPDATE")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = id {
            // Leaving first (the schema's rules on status and times),
            // then the row goes: the delete trigger lets an erasure
            // through. `$1` is the time, `$2` the subscriber.
            for (sql, timed) in [
                (
                    "UPDATE digest_deliveries SET state = 'skipped', reply = 'erased on request',
                         updated_at = $1 WHERE subscriber_id = $2 AND state = 'pending'",
                    true,
                ),
                (
                    "UPDATE digest_deliveries SET email = 'erased' WHERE subscriber_id = $1",
                    false,
                ),
                ("DELETE FROM digest_cursors WHERE subscriber_id = $1", false),
                (
                    "UPDATE subscribers SET
                         status = CASE WHEN status IN ('pending', 'active') THEN 'unsubscribed'
                                       ELSE status END,
                         left_at = coalesce(left_at, $1), left_how = 'erasure'
                     WHERE id = $2",
                    true,
                ),
                ("DELETE FROM subscribers WHERE id = $1", false),
            ] {
                let q = sqlx::query(sql);
                let q = if timed { q.bind(at) } else { q };
                q.bind(id).execute(&mut *tx).await?;
            }
        }
        let logged = sqlx::query(
            "UPDATE consent_log SET email_key = $1, ip = NULL, note = NULL WHERE email_key = $2",
        )
        .bind(&erased)
        .bind(&key)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let entry = LogRow {
            id,
            key: &erased,
            event: "erasure",
            at,
            ip: None,
            source: Some("operator"),
            note: None,
        };
        insert_log(&mut tx, &[entry]).await?;
        tx.commit().await?;
        Ok(id.is_some() || logged > 0)
    }

    async fn expire_ips(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let before = db_time(before);
        let mut tx = self.pool.begin().await?;
        let logged =
            sqlx::query("UPDATE consent_log SET ip = NULL WHERE ip IS NOT NULL AND at < $1")
                .bind(before)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let current = sqlx::query(
            "UPDATE subscribers SET requested_ip = NULL
             WHERE requested_ip IS NOT NULL AND requested_at < $1",
        )
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(logged + current)
    }
}
