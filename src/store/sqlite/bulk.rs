//! Many subscriber rows in one statement: rows go to SQLite as one JSON
//! array (`json_each`), for import and restore (per-statement overhead,
//! not SQLite, dominates row by row).

use std::collections::HashMap;

use chrono::Utc;
use serde::Serialize;
use sqlx::SqliteConnection;

use super::consent::{insert_log, LogRow};
use super::{format_time, SqliteStore};
use crate::store::{
    suppression_hash, ImportCounts, NewSubscription, Status, StoreResult, Subscriber,
    SubscriberEmail,
};

impl SqliteStore {
    /// Puts back subscribers as an export described them: status, consent
    /// and all (the `id` and `confirmation_sent_at` fields are ignored). In
    /// one transaction; addresses already present are left as they are.
    /// Each restored row gets a `restore` entry in the consent log.
    pub(super) async fn restore_rows(&self, rows: Vec<Subscriber>) -> StoreResult<ImportCounts> {
        let now = format_time(Utc::now());
        let mut new = Vec::with_capacity(rows.len());
        for s in &rows {
            let c = &s.consent;
            let note = crate::store::restore_note(s)?;
            new.push(NewRow {
                email: s.email.as_str(),
                key: s.email.key(),
                hash: suppression_hash(&s.email),
                name: s.name.as_deref(),
                status: s.status.as_str(),
                requested_at: format_time(c.requested_at),
                requested_ip: c.requested_ip.as_deref(),
                source: &c.source,
                confirmed_at: c.confirmed_at.map(format_time),
                consent_note: c.note.as_deref(),
                left_at: c.left_at.map(format_time),
                left_how: c.left_how.as_deref(),
                schedules: &s.schedules,
                tags: &s.tags,
                log: vec![Logged {
                    event: "restore",
                    at: now.clone(),
                    ip: c.requested_ip.as_deref(),
                    source: Some(&c.source),
                    note: Some(note),
                }],
            });
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let ids = insert_rows(&mut tx, &new).await?;
        tx.commit().await?;
        Ok(counts(&ids))
    }
}

pub(super) fn counts(ids: &[Option<i64>]) -> ImportCounts {
    let added = ids.iter().flatten().count() as u64;
    ImportCounts {
        added,
        existing: ids.len() as u64 - added,
    }
}

/// A subscriber row about to be inserted, with its schedules, tags and
/// consent-log entries. Serialized to JSON, many rows go to SQLite in one
/// statement (per-statement overhead, not SQLite, dominates row by row).
#[derive(Serialize)]
pub(super) struct NewRow<'a> {
    pub(super) email: &'a str,
    pub(super) key: String,
    /// [`crate::store::suppression_hash`]: an erased address is not
    /// inserted again.
    pub(super) hash: String,
    pub(super) name: Option<&'a str>,
    pub(super) status: &'static str,
    pub(super) requested_at: String,
    pub(super) requested_ip: Option<&'a str>,
    pub(super) source: &'a str,
    pub(super) confirmed_at: Option<String>,
    pub(super) consent_note: Option<&'a str>,
    pub(super) left_at: Option<String>,
    pub(super) left_how: Option<&'a str>,
    #[serde(skip)]
    pub(super) schedules: &'a [String],
    #[serde(skip)]
    pub(super) tags: &'a [String],
    #[serde(skip)]
    pub(super) log: Vec<Logged<'a>>,
}

/// A consent-log entry for a row not inserted yet (its id is unknown).
pub(super) struct Logged<'a> {
    pub(super) event: &'static str,
    pub(super) at: String,
    pub(super) ip: Option<&'a str>,
    pub(super) source: Option<&'a str>,
    pub(super) note: Option<String>,
}

/// A subscription request as a row: pending, or active at once when it
/// comes with a consent note; logged as a request (and a confirmation).
pub(super) fn request_row<'a>(req: &'a NewSubscription, at: &str) -> NewRow<'a> {
    let confirmed = req.confirmed_note.is_some();
    let mut log = vec![Logged {
        event: "subscribe",
        at: at.to_string(),
        ip: req.ip.as_deref(),
        source: Some(&req.source),
        note: None,
    }];
    if let Some(note) = &req.confirmed_note {
        log.push(Logged {
            event: "confirm",
            at: at.to_string(),
            ip: req.ip.as_deref(),
            source: Some(&req.source),
            note: Some(note.clone()),
        });
    }
    NewRow {
        email: req.email.as_str(),
        key: req.email.key(),
        hash: suppression_hash(&req.email),
        name: req.name.as_deref(),
        status: if confirmed {
            Status::Active.as_str()
        } else {
            Status::Pending.as_str()
        },
        requested_at: at.to_string(),
        requested_ip: req.ip.as_deref(),
        source: &req.source,
        confirmed_at: confirmed.then(|| at.to_string()),
        consent_note: req.confirmed_note.as_deref(),
        left_at: None,
        left_how: None,
        schedules: &req.schedules,
        tags: &req.tags,
        log,
    }
}

/// Inserts the rows whose address is not present yet, in order (of two
/// rows with one address the first wins), with their schedules, tags and
/// log entries. Returns each row's new id, `None` where it was present.
pub(super) async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &[NewRow<'_>],
) -> StoreResult<Vec<Option<i64>>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // Present addresses are skipped before SQLite allocates them an id
    // (AUTOINCREMENT would burn one per conflict); ON CONFLICT catches an
    // address given twice in `rows`.
    let inserted: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO subscribers (email, email_key, name, status, requested_at, requested_ip,
                                  source, confirmed_at, consent_note, left_at, left_how)
         SELECT value ->> 'email', value ->> 'key', value ->> 'name', value ->> 'status',
                value ->> 'requested_at', value ->> 'requested_ip', value ->> 'source',
                value ->> 'confirmed_at', value ->> 'consent_note', value ->> 'left_at',
                value ->> 'left_how'
         FROM json_each(?)
         WHERE NOT EXISTS (SELECT 1 FROM subscribers WHERE email_key = value ->> 'key')
           AND NOT EXISTS (SELECT 1 FROM suppressions WHERE email_hash = value ->> 'hash')
         ORDER BY key
         ON CONFLICT (email_key) DO NOTHING
         RETURNING id, email_key",
    )
    .bind(serde_json::to_string(rows)?)
    .fetch_all(&mut *conn)
    .await?;
    let mut new: HashMap<String, i64> = inserted.into_iter().map(|(id, k)| (k, id)).collect();
    let ids: Vec<Option<i64>> = rows.iter().map(|r| new.remove(&r.key)).collect();

    let mut schedules = Vec::new();
    let mut tags = Vec::new();
    let mut log = Vec::new();
    for (r, id) in rows.iter().zip(&ids) {
        let Some(id) = *id else { continue };
        schedules.extend(r.schedules.iter().map(|s| (id, s)));
        tags.extend(r.tags.iter().map(|t| (id, t)));
        log.extend(r.log.iter().map(|e| LogRow {
            id: Some(id),
            key: &r.key,
            event: e.event,
            at: &e.at,
            ip: e.ip,
            source: e.source,
            note: e.note.as_deref(),
        }));
    }
    insert_pairs(conn, "subscriber_schedules", "schedule", &schedules).await?;
    insert_pairs(conn, "subscriber_tags", "tag", &tags).await?;
    insert_log(conn, &log).await?;
    Ok(ids)
}

/// Whether `email` was erased on request (and may not come back).
pub(super) async fn suppressed(
    conn: &mut SqliteConnection,
    email: &SubscriberEmail,
) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM suppressions WHERE email_hash = ?")
        .bind(suppression_hash(email))
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

/// Adds `(subscriber id, value)` pairs to the schedules or tags table.
/// Duplicates are skipped; a value the schema refuses (an empty name) is
/// an error.
pub(super) async fn insert_pairs(
    conn: &mut SqliteConnection,
    table: &'static str,
    column: &'static str,
    pairs: &[(i64, &String)],
) -> StoreResult<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO {table} (subscriber_id, {column})
         SELECT value ->> 0, value ->> 1 FROM json_each(?) WHERE true
         ON CONFLICT DO NOTHING"
    );
    sqlx::query(&sql)
        .bind(serde_json::to_string(pairs)?)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces a subscriber's schedules and tags.
pub(super) async fn set_lists(
    conn: &mut SqliteConnection,
    id: i64,
    schedules: &[String],
    tags: &[String],
) -> StoreResult<()> {
    for table in ["subscriber_schedules", "subscriber_tags"] {
        sqlx::query(&format!("DELETE FROM {table} WHERE subscriber_id = ?"))
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    let schedules: Vec<(i64, &String)> = schedules.iter().map(|s| (id, s)).collect();
    let tags: Vec<(i64, &String)> = tags.iter().map(|t| (id, t)).collect();
    insert_pairs(conn, "subscriber_schedules", "schedule", &schedules).await?;
    insert_pairs(conn, "subscriber_tags", "tag", &tags).await
}
