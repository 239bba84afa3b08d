//! The append-only consent log: who asked, confirmed or left, when, from
//! where and how. Entries are written in the transaction of the change
//! they record.

use serde::Serialize;
use sqlx::{Row, SqliteConnection};

use super::{parse_time, SqliteStore};
use crate::store::{ConsentEntry, StoreResult, SubscriberEmail};

/// A consent-log entry as it is written.
#[derive(Serialize)]
pub(super) struct LogRow<'a> {
    pub(super) id: Option<i64>,
    pub(super) key: &'a str,
    pub(super) event: &'a str,
    pub(super) at: &'a str,
    pub(super) ip: Option<&'a str>,
    pub(super) source: Option<&'a str>,
    pub(super) note: Option<&'a str>,
}

pub(super) async fn insert_log(
    conn: &mut SqliteConnection,
    entries: &[LogRow<'_>],
) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO consent_log (subscriber_id, email_key, event, at, ip, source, note)
         SELECT value ->> 'id', value ->> 'key', value ->> 'event', value ->> 'at',
                value ->> 'ip', value ->> 'source', value ->> 'note'
         FROM json_each(?) ORDER BY key",
    )
    .bind(serde_json::to_string(entries)?)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes one consent-log entry about an existing subscriber.
pub(super) async fn log(conn: &mut SqliteConnection, entry: LogRow<'_>) -> StoreResult<()> {
    insert_log(conn, &[entry]).await
}

impl SqliteStore {
    /// The consent history of an address, oldest first, including sign-ups
    /// that were purged.
    pub(super) async fn consent_history(
        &self,
        email: &SubscriberEmail,
    ) -> StoreResult<Vec<ConsentEntry>> {
        let rows = sqlx::query(
            "SELECT at, event, subscriber_id, email_key, ip, source, note
             FROM consent_log WHERE email_key = ? ORDER BY id",
        )
        .bind(email.key())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentEntry {
                    at: parse_time(r.try_get("at")?)?,
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
