//! The [`Subscribers`] queries on SQLite: one subscriber at a time, each
//! write in one `BEGIN IMMEDIATE` transaction with its consent-log entry.

use chrono::{DateTime, Utc};

use super::bulk::{counts, insert_rows, request_row, set_lists, suppressed, NewRow};
use super::consent::{insert_log, log, LogRow};
use super::{by_id, decode, format_time, SqliteStore};
use crate::store::{
    ConsentEntry, ImportCounts, ListFilter, NewSubscription, Status, StoreError, StoreResult,
    SubscribeOutcome, Subscriber, SubscriberEmail, Subscribers,
};

#[async_trait::async_trait]
impl Subscribers for SqliteStore {
    async fn subscribe(&self, req: NewSubscription) -> StoreResult<SubscribeOutcome> {
        let at = format_time(req.at);
        let key = req.email.key();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<(i64, String)> =
            sqlx::query_as("SELECT id, status FROM subscribers WHERE email_key = ?")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
        let id = match existing {
            None => match insert_rows(&mut tx, &[request_row(&req, &at)]).await?[0] {
                Some(id) => id,
                // Erased on request: nothing of the address is written.
                None if suppressed(&mut tx, &req.email).await? => {
                    return Ok(SubscribeOutcome::Suppressed)
                }
                None => {
                    return Err(StoreError::Conflict(
                        "the address appeared during the transaction".into(),
                    ))
                }
            },
            // A complainer, or someone already active: the request is
            // logged and changes nothing.
            Some((id, status))
                if status == Status::Complained.as_str() || status == Status::Active.as_str() =>
            {
                let complained = status == Status::Complained.as_str();
                let entry = LogRow {
                    id: Some(id),
                    key: &key,
                    event: "subscribe",
                    at: &at,
                    ip: req.ip.as_deref(),
                    source: Some(&req.source),
                    note: Some(if complained {
                        "refused: the address reported a message as spam; nothing changed"
                    } else {
                        "already active; nothing changed"
                    }),
                };
                log(&mut tx, entry).await?;
                let s = by_id(&mut tx, id)
                    .await?
                    .ok_or_else(|| StoreError::internal("subscriber vanished"))?;
                tx.commit().await?;
                return Ok(if complained {
                    SubscribeOutcome::Suppressed
                } else {
                    SubscribeOutcome::AlreadyActive(s)
                });
            }
            Some((id, status)) => {
                // Pending: the request is renewed. Left or bounced: a new
                // consent starts; the old one stays in the log.
                let r = request_row(&req, &at);
                sqlx::query(
                    "UPDATE subscribers SET email = ?, name = COALESCE(?, name), status = ?,
                        requested_at = ?, requested_ip = ?, source = ?, confirmed_at = ?,
                        consent_note = ?, left_at = NULL, left_how = NULL,
                        confirmation_sent_at = CASE WHEN ? THEN confirmation_sent_at END
                     WHERE id = ?",
                )
                .bind(r.email)
                .bind(r.name)
                .bind(r.status)
                .bind(&r.requested_at)
                .bind(r.requested_ip)
                .bind(r.source)
                .bind(&r.confirmed_at)
                .bind(r.consent_note)
                .bind(status == Status::Pending.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                set_lists(&mut tx, id, &req.schedules, &req.tags).await?;
                let entries: Vec<LogRow> = r
                    .log
                    .iter()
                    .map(|e| LogRow {
                        id: Some(id),
                        key: &key,
                        event: e.event,
                        at: &e.at,
                        ip: e.ip,
                        source: e.source,
                        note: e.note.as_deref(),
                    })
                    .collect();
                insert_log(&mut tx, &entries).await?;
                id
            }
        };
        let s = by_id(&mut tx, id)
            .await?
            .ok_or_else(|| StoreError::internal("subscriber vanished"))?;
        tx.commit().await?;
        Ok(if s.status == Status::Active {
            SubscribeOutcome::Active(s)
        } else {
            SubscribeOutcome::Pending(s)
        })
    }

    async fn confirmation_sent(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE subscribers SET confirmation_sent_at = ? WHERE id = ?")
            .bind(format_time(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn confirm(&self, id: i64, at: DateTime<Utc>) -> StoreResult<Option<Subscriber>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let Some(s) = by_id(&mut tx, id).await? else {
            return Ok(None);
        };
        match s.status {
            Status::Active => return Ok(Some(s)),
            Status::Unsubscribed | Status::Bounced | Status::Complained => return Ok(None),
            Status::Pending => {}
        }
        let at = format_time(at);
        sqlx::query("UPDATE subscribers SET status = 'active', confirmed_at = ?, hard_bounces = 0 WHERE id = ?")
            .bind(&at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let key = s.email.key();
        let entry = LogRow {
            id: Some(id),
            key: &key,
            event: "confirm",
            at: &at,
            ip: None,
            source: Some("confirmation-link"),
            note: None,
        };
        log(&mut tx, entry).await?;
        let s = by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(s)
    }

    /// `how = "bounce"` marks the address bounced; anything else
    /// unsubscribed. Someone who already left stays as they are (the
    /// attempt is logged).
    async fn unsubscribe(&self, id: i64, at: DateTime<Utc>, how: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT email_key, status FROM subscribers WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((key, status)) = row else {
            return Ok(false);
        };
        let at = format_time(at);
        let event = match how {
            "bounce" => "bounce",
            "operator" => "operator-removal",
            _ => "unsubscribe",
        };
        let note = if status == Status::Pending.as_str() || status == Status::Active.as_str() {
            let new_status = if how == "bounce" {
                Status::Bounced
            } else {
                Status::Unsubscribed
            };
            sqlx::query(
                "UPDATE subscribers SET status = ?, left_at = ?, left_how = ? WHERE id = ?",
            )
            .bind(new_status.as_str())
            .bind(&at)
            .bind(how)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            format!("was {status}")
        } else {
            format!("already {status}; nothing changed")
        };
        let entry = LogRow {
            id: Some(id),
            key: &key,
            event,
            at: &at,
            ip: None,
            source: Some(how),
            note: Some(&note),
        };
        log(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_preferences(
        &self,
        id: i64,
        schedules: &[String],
        tags: &[String],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM subscribers WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Ok(false);
        }
        set_lists(&mut tx, id, schedules, tags).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get(&self, id: i64) -> StoreResult<Option<Subscriber>> {
        let mut conn = self.pool.acquire().await?;
        by_id(&mut conn, id).await
    }

    async fn find(&self, email: &SubscriberEmail) -> StoreResult<Option<Subscriber>> {
        let row = sqlx::query(select_subscribers!("WHERE s.email_key = ?"))
            .bind(email.key())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> StoreResult<Vec<Subscriber>> {
        let rows = match filter.status {
            Some(status) => {
                sqlx::query(select_subscribers!("WHERE s.status = ? ORDER BY s.id"))
                    .bind(status.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(select_subscribers!("ORDER BY s.id"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(decode).collect()
    }

    async fn purge_pending(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        // A confirmation mailed again (`herald subscribers confirm-again`)
        // gives its link time to be used: the clock runs from the later of
        // the request and the last confirmation email. Times are
        // fixed-width text, so max() compares them as times.
        const PURGE_FROM: &str = "max(requested_at, coalesce(confirmation_sent_at, ''))";
        let before = format_time(before);
        let now = format_time(Utc::now());
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(&format!(
            "INSERT INTO consent_log (subscriber_id, email_key, event, at, ip, source, note)
             SELECT id, email_key, 'purge', ?, requested_ip, source,
                    'never confirmed; requested ' || requested_at
             FROM subscribers WHERE status = 'pending' AND {PURGE_FROM} < ?
             ORDER BY id",
        ))
        .bind(&now)
        .bind(&before)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query(&format!(
            "DELETE FROM subscribers WHERE status = 'pending' AND {PURGE_FROM} < ?"
        ))
        .bind(&before)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn import(&self, rows: Vec<NewSubscription>) -> StoreResult<ImportCounts> {
        let times: Vec<String> = rows.iter().map(|r| format_time(r.at)).collect();
        let new: Vec<NewRow> = rows
            .iter()
            .zip(&times)
            .map(|(r, at)| request_row(r, at))
            .collect();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let ids = insert_rows(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(counts(&ids))
    }

    async fn restore(&self, rows: Vec<Subscriber>) -> StoreResult<ImportCounts> {
        self.restore_rows(rows).await
    }

    async fn consent_log(&self, email: &SubscriberEmail) -> StoreResult<Vec<ConsentEntry>> {
        self.consent_history(email).await
    }
}
