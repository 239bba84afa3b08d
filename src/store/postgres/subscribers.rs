//! The [`Subscribers`] queries on PostgreSQL: each write one transaction
//! with its consent-log entries; the subscriber row is locked (`FOR
//! UPDATE`) while it changes, so two replicas handling the same address at
//! once take turns.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::{by_id, decode, insert_log, insert_pairs, LogRow, PgStore, SELECT_SUBSCRIBERS};
use crate::store::{
    db_time, suppression_hash, ConsentEntry, ImportCounts, ListFilter, NewSubscription, Status,
    StoreError, StoreResult, SubscribeOutcome, Subscriber, SubscriberEmail, Subscribers,
};

/// A subscriber row about to be inserted, with what goes with it.
pub(super) struct NewRow<'a> {
    pub key: String,
    /// [`suppression_hash`]: an erased address is not inserted again.
    pub hash: String,
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub status: Status,
    pub requested_at: DateTime<Utc>,
    pub requested_ip: Option<&'a str>,
    pub source: &'a str,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub consent_note: Option<&'a str>,
    pub left_at: Option<DateTime<Utc>>,
    pub left_how: Option<&'a str>,
    pub schedules: &'a [String],
    pub tags: &'a [String],
    /// `(event, note)` entries for the consent log, at `log_at`.
    pub log: Vec<(&'static str, Option<String>)>,
    pub log_at: DateTime<Utc>,
}

/// A subscription request as a row: pending, or active at once with a
/// consent note; logged as a request (and a confirmation).
pub(super) fn request_row(req: &NewSubscription) -> NewRow<'_> {
    let at = db_time(req.at);
    let mut log = vec![("subscribe", None)];
    if let Some(note) = &req.confirmed_note {
        log.push(("confirm", Some(note.clone())));
    }
    let confirmed = req.confirmed_note.is_some();
    NewRow {
        key: req.email.key(),
        hash: suppression_hash(&req.email),
        email: req.email.as_str(),
        name: req.name.as_deref(),
        status: if confirmed {
            Status::Active
        } else {
            Status::Pending
        },
        requested_at: at,
        requested_ip: req.ip.as_deref(),
        source: &req.source,
        confirmed_at: confirmed.then_some(at),
        consent_note: req.confirmed_note.as_deref(),
        left_at: None,
        left_how: None,
        schedules: &req.schedules,
        tags: &req.tags,
        log,
        log_at: at,
    }
}

/// The schema's limits on schedule and tag names, checked before anything
/// is written (PostgreSQL would burn ids on a refused batch).
fn check_names(rows: &[NewRow<'_>]) -> StoreResult<()> {
    for r in rows {
        for name in r.schedules.iter().chain(r.tags) {
            if name.is_empty() || name.chars().count() > 100 {
                return Err(StoreError::Conflict(format!(
                    "{}: schedule and tag names must be 1 to 100 characters",
                    r.email
                )));
            }
        }
    }
    Ok(())
}

/// Inserts the rows whose address is not present yet, in address order
/// (of two rows with one address the first wins), with schedules, tags
/// and log entries. Returns each row's new id, `None` where present.
pub(super) async fn insert_rows(
    conn: &mut PgConnection,
    rows: &[NewRow<'_>],
) -> StoreResult<Vec<Option<i64>>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    check_names(rows)?;
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<&NewRow> = rows.iter().filter(|r| seen.insert(r.key.clone())).collect();
    let col = |f: &dyn Fn(&NewRow) -> Option<String>| -> Vec<Option<String>> {
        firsts.iter().map(|r| f(r)).collect()
    };
    let times = |f: &dyn Fn(&NewRow) -> Option<DateTime<Utc>>| -> Vec<Option<DateTime<Utc>>> {
        firsts.iter().map(|r| f(r)).collect()
    };
    let inserted: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO subscribers (email_key, email, name, status, requested_at, requested_ip,
                                  source, confirmed_at, consent_note, left_at, left_how)
         SELECT r.k, r.e, r.n, r.st, r.ra, r.ip, r.so, r.ca, r.cn, r.la, r.lh
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                     $5::timestamptz[], $6::text[], $7::text[], $8::timestamptz[],
                     $9::text[], $10::timestamptz[], $11::text[], $12::text[])
              AS r(k, e, n, st, ra, ip, so, ca, cn, la, lh, h)
         WHERE NOT EXISTS (SELECT 1 FROM subscribers WHERE email_key = r.k)
           AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = r.h)
         ORDER BY r.k
         ON CONFLICT (email_key) DO NOTHING
         RETURNING id, email_key",
    )
    .bind(col(&|r| Some(r.key.clone())))
    .bind(col(&|r| Some(r.email.to_string())))
    .bind(col(&|r| r.name.map(str::to_string)))
    .bind(col(&|r| Some(r.status.as_str().to_string())))
    .bind(times(&|r| Some(r.requested_at)))
    .bind(col(&|r| r.requested_ip.map(str::to_string)))
    .bind(col(&|r| Some(r.source.to_string())))
    .bind(times(&|r| r.confirmed_at))
    .bind(col(&|r| r.consent_note.map(str::to_string)))
    .bind(times(&|r| r.left_at))
    .bind(col(&|r| r.left_how.map(str::to_string)))
    .bind(col(&|r| Some(r.hash.clone())))
    .fetch_all(&mut *conn)
    .await?;
    let mut new: std::collections::HashMap<String, i64> =
        inserted.into_iter().map(|(id, k)| (k, id)).collect();
    let ids: Vec<Option<i64>> = rows.iter().map(|r| new.remove(&r.key)).collect();
    let mut schedules = Vec::new();
    let mut tags = Vec::new();
    let mut log = Vec::new();
    for (r, id) in rows.iter().zip(&ids) {
        let Some(id) = *id else { continue };
        schedules.extend(r.schedules.iter().map(|s| (id, s)));
        tags.extend(r.tags.iter().map(|t| (id, t)));
        log.extend(r.log.iter().map(|(event, note)| LogRow {
            id: Some(id),
            key: &r.key,
            event,
            at: r.log_at,
            ip: r.requested_ip,
            source: Some(r.source),
            note: note.clone(),
        }));
    }
    insert_pairs(conn, "subscriber_schedules", "schedule", &schedules).await?;
    insert_pairs(conn, "subscriber_tags", "tag", &tags).await?;
    insert_log(conn, &log).await?;
    Ok(ids)
}

/// Whether `email` was erased on request (and may not come back).
pub(super) async fn suppressed(
    conn: &mut PgConnection,
    email: &SubscriberEmail,
) -> StoreResult<bool> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM suppressions WHERE email_hash = $1")
        .bind(suppression_hash(email))
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

pub(super) fn counts(ids: &[Option<i64>]) -> ImportCounts {
    let added = ids.iter().flatten().count() as u64;
    ImportCounts {
        added,
        existing: ids.len() as u64 - added,
    }
}

/// Replaces a subscriber's schedules and tags.
async fn set_lists(
    conn: &mut PgConnection,
    id: i64,
    schedules: &[String],
    tags: &[String],
) -> StoreResult<()> {
    for table in ["subscriber_schedules", "subscriber_tags"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE subscriber_id = $1"))
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    let schedules: Vec<(i64, &String)> = schedules.iter().map(|s| (id, s)).collect();
    let tags: Vec<(i64, &String)> = tags.iter().map(|t| (id, t)).collect();
    insert_pairs(conn, "subscriber_schedules", "schedule", &schedules).await?;
    insert_pairs(conn, "subscriber_tags", "tag", &tags).await
}

fn entry<'a>(id: i64, key: &'a str, event: &'a str, at: DateTime<Utc>) -> LogRow<'a> {
    LogRow {
        id: Some(id),
        key,
        event,
        at,
        ip: None,
        source: None,
        note: None,
    }
}

impl PgStore {
    async fn subscribe_once(&self, req: &NewSubscription) -> StoreResult<SubscribeOutcome> {
        let key = req.email.key();
        let mut tx = self.pool.begin().await?;
        let existing: Option<(i64, String)> =
            sqlx::query_as("SELECT id, status FROM subscribers WHERE email_key = $1 FOR UPDATE")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
        let row = request_row(req);
        let id = match existing {
            None => match insert_rows(&mut tx, std::slice::from_ref(&row)).await?[0] {
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
                let mut e = entry(id, &key, "subscribe", row.log_at);
                e.ip = req.ip.as_deref();
                e.source = Some(&req.source);
                e.note = Some(if complained {
                    "refused: the address reported a message as spam; nothing changed".into()
                } else {
                    "already active; nothing changed".into()
                });
                insert_log(&mut tx, &[e]).await?;
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
                check_names(std::slice::from_ref(&row))?;
                sqlx::query(
                    "UPDATE subscribers SET email = $1, name = COALESCE($2, name), status = $3,
                        requested_at = $4, requested_ip = $5, source = $6, confirmed_at = $7,
                        consent_note = $8, left_at = NULL, left_how = NULL,
                        confirmation_sent_at = CASE WHEN $9 THEN confirmation_sent_at END
                     WHERE id = $10",
                )
                .bind(row.email)
                .bind(row.name)
                .bind(row.status.as_str())
                .bind(row.requested_at)
                .bind(row.requested_ip)
                .bind(row.source)
                .bind(row.confirmed_at)
                .bind(row.consent_note)
                .bind(status == Status::Pending.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                set_lists(&mut tx, id, &req.schedules, &req.tags).await?;
                let entries: Vec<LogRow> = row
                    .log
                    .iter()
                    .map(|(event, note)| LogRow {
                        id: Some(id),
                        key: &key,
                        event,
                        at: row.log_at,
                        ip: row.requested_ip,
                        source: Some(row.source),
                        note: note.clone(),
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
}

#[async_trait::async_trait]
impl Subscribers for PgStore {
    /// Two replicas inserting one new address at once: the loser sees a
    /// conflict and tries again, now finding the row.
    async fn subscribe(&self, req: NewSubscription) -> StoreResult<SubscribeOutcome> {
        match self.subscribe_once(&req).await {
            Err(StoreError::Conflict(_)) => self.subscribe_once(&req).await,
            other => other,
        }
    }

    async fn confirmation_sent(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        sqlx::query("UPDATE subscribers SET confirmation_sent_at = $1 WHERE id = $2")
            .bind(db_time(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn confirm(&self, id: i64, at: DateTime<Utc>) -> StoreResult<Option<Subscriber>> {
        let at = db_time(at);
        let mut tx = self.pool.begin().await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM subscribers WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        match status.as_deref() {
            None | Some("unsubscribed") | Some("bounced") | Some("complained") => return Ok(None),
            Some("active") => return by_id(&mut tx, id).await,
            _ => {}
        }
        let key: String = sqlx::query_scalar(
            "UPDATE subscribers SET status = 'active', confirmed_at = $1, hard_bounces = 0
             WHERE id = $2 RETURNING email_key",
        )
        .bind(at)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let mut e = entry(id, &key, "confirm", at);
        e.source = Some("confirmation-link");
        insert_log(&mut tx, &[e]).await?;
        let s = by_id(&mut tx, id).await?;
        tx.commit().await?;
        Ok(s)
    }

    async fn unsubscribe(&self, id: i64, at: DateTime<Utc>, how: &str) -> StoreResult<bool> {
        let at = db_time(at);
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT email_key, status FROM subscribers WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((key, status)) = row else {
            return Ok(false);
        };
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
                "UPDATE subscribers SET status = $1, left_at = $2, left_how = $3 WHERE id = $4",
            )
            .bind(new_status.as_str())
            .bind(at)
            .bind(how)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            format!("was {status}")
        } else {
            format!("already {status}; nothing changed")
        };
        let mut e = entry(id, &key, event, at);
        e.source = Some(how);
        e.note = Some(note);
        insert_log(&mut tx, &[e]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn set_preferences(
        &self,
        id: i64,
        schedules: &[String],
        tags: &[String],
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM subscribers WHERE id = $1 FOR UPDATE")
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
        let row = sqlx::query(&format!("{SELECT_SUBSCRIBERS} WHERE s.email_key = $1"))
            .bind(email.key())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> StoreResult<Vec<Subscriber>> {
        let rows = sqlx::query(&format!(
            "{SELECT_SUBSCRIBERS} WHERE $1::text IS NULL OR s.status = $1 ORDER BY s.id"
        ))
        .bind(filter.status.map(|s| s.as_str()))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    async fn purge_pending(&self, before: DateTime<Utc>) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO consent_log (subscriber_id, email_key, event, at, ip, source, note)
             SELECT id, email_key, 'purge', $1, requested_ip, source,
                    'never confirmed; requested ' ||
                    to_char(requested_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')
             FROM subscribers
             WHERE status = 'pending'
               AND greatest(requested_at, coalesce(confirmation_sent_at, requested_at)) < $2
             ORDER BY id",
        )
        .bind(db_time(Utc::now()))
        .bind(db_time(before))
        .execute(&mut *tx)
        .await?;
        // As on SQLite: the clock runs from the later of the request and
        // the last confirmation email (`confirm-again` gives a new link its
        // full time).
        let done = sqlx::query(
            "DELETE FROM subscribers
             WHERE status = 'pending'
               AND greatest(requested_at, coalesce(confirmation_sent_at, requested_at)) < $1",
        )
        .bind(db_time(before))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn import(&self, rows: Vec<NewSubscription>) -> StoreResult<ImportCounts> {
        let new: Vec<NewRow> = rows.iter().map(request_row).collect();
        let mut tx = self.pool.begin().await?;
        let ids = insert_rows(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(counts(&ids))
    }

    async fn restore(&self, rows: Vec<Subscriber>) -> StoreResult<ImportCounts> {
        let now = db_time(Utc::now());
        let mut new = Vec::with_capacity(rows.len());
        for s in &rows {
            let c = &s.consent;
            let note = super::super::restore_note(s)?;
            new.push(NewRow {
                key: s.email.key(),
                hash: suppression_hash(&s.email),
                email: s.email.as_str(),
                name: s.name.as_deref(),
                status: s.status,
                requested_at: db_time(c.requested_at),
                requested_ip: c.requested_ip.as_deref(),
                source: &c.source,
                confirmed_at: c.confirmed_at.map(db_time),
                consent_note: c.note.as_deref(),
                left_at: c.left_at.map(db_time),
                left_how: c.left_how.as_deref(),
                schedules: &s.schedules,
                tags: &s.tags,
                log: vec![("restore", Some(note))],
                log_at: now,
            });
        }
        let mut tx = self.pool.begin().await?;
        let ids = insert_rows(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(counts(&ids))
    }

    async fn consent_log(&self, email: &SubscriberEmail) -> StoreResult<Vec<ConsentEntry>> {
        let rows = sqlx::query(
            "SELECT at, event, subscriber_id, email_key, ip, source, note
             FROM consent_log WHERE email_key = $1 ORDER BY id",
        )
        .bind(email.key())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentEntry {
                    at: r.try_get("at")?,
                    event: r.try_get("event")?,
                    subscriber_id: r.try_get("subscriber_id")?,
                    email_key: r.try_get("email_key")?,
                    ip: r.try_get("ip")?,
                    source: r.try_get("source")?,
                    note: r.try_get("note")?,
                })
            })
            .collect()
    }
}
