//! The [`Store`](super::Store) in PostgreSQL, shared by any number of
//! herald replicas: `timestamptz` and `boolean` columns, ids from identity
//! columns (`RETURNING`), bulk writes through `unnest` of arrays, a pool
//! sized in config, and a statement timeout on every connection so that a
//! stuck query turns into "unavailable" instead of a hung request.
//!
//! - `subscribers`: the [`Subscribers`](super::Subscribers) queries;
//! - `ledger`: runs, deliveries, claims (`FOR UPDATE SKIP LOCKED`) with
//!   leases;
//! - `state`: the signing secret, first-seen times, undated dates, the
//!   shared send rate;
//! - `transfer`: whole tables out and in for `herald db copy`;
//! - `counts`: rows per state, for `/metrics`.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, PgConnection, Row};
use url::Url;

use super::open::{migrate_or_check, OpenOptions, PG_MIGRATIONS};
use super::{Backend, Consent, Store, StoreResult, Subscriber};

/// Cheap to clone: clones share one pool of connections.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(super) pool: PgPool,
    /// `user@host:port/database`, for logs and errors.
    name: String,
}

impl PgStore {
    /// Connects (waiting at most `connect_timeout`) and migrates or checks
    /// the schema. Errors name the server and the cause.
    pub async fn open(url: &Url, settings: &OpenOptions) -> anyhow::Result<PgStore> {
        let mut options = PgConnectOptions::from_str(url.as_str())
            .with_context(|| format!("subscribers.database: cannot use the URL {url}"))?;
        if let Some(password) = &settings.password {
            options = options.password(password);
        }
        let timeout_ms = settings.statement_timeout.as_millis().max(1).to_string();
        options = options
            .application_name("herald")
            .options([("statement_timeout", timeout_ms.as_str())])
            .disable_statement_logging();
        let name = format!(
            "{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or("")
        );
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .acquire_timeout(settings.connect_timeout)
            .connect_with(options)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot connect to PostgreSQL at {name}: {}",
                    connect_cause(&e)
                )
            })?;
        let what = format!("the PostgreSQL database {name}");
        // Replicas starting together on a new database race to create the
        // migrations table; the loser finds it there on a second try.
        let mut attempt = 0;
        loop {
            match migrate_or_check(&PG_MIGRATIONS, &pool, settings.migrate, &what).await {
                Ok(()) => break,
                Err(e) if attempt < 3 && e.downcast_ref::<super::StoreError>().is_none() => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(PgStore { pool, name })
    }
}

/// The reason a connection failed, in words an operator can act on.
fn connect_cause(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::PoolTimedOut => {
            "no answer within subscribers.database_connect_timeout (is the server up and reachable?)"
                .into()
        }
        sqlx::Error::Io(io) => format!("{io}"),
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

#[async_trait::async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn describe(&self) -> String {
        format!("PostgreSQL {}", self.name)
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// Columns of a subscriber as SQL reads them; schedules and tags as
/// sorted arrays.
const SELECT_SUBSCRIBERS: &str = "SELECT s.id, s.email, s.name, s.status, s.requested_at,
        s.requested_ip, s.source, s.confirmed_at, s.consent_note, s.left_at, s.left_how,
        s.confirmation_sent_at,
        ARRAY(SELECT schedule FROM subscriber_schedules WHERE subscriber_id = s.id
              ORDER BY schedule) AS schedules,
        ARRAY(SELECT tag FROM subscriber_tags WHERE subscriber_id = s.id ORDER BY tag) AS tags
     FROM subscribers s ";

fn decode(row: &PgRow) -> StoreResult<Subscriber> {
    let email: String = row.try_get("email")?;
    let status: String = row.try_get("status")?;
    Ok(Subscriber {
        id: row.try_get("id")?,
        email: super::stored_email(&email)?,
        name: row.try_get("name")?,
        status: super::stored_status(&status)?,
        schedules: row.try_get("schedules")?,
        tags: row.try_get("tags")?,
        consent: Consent {
            requested_at: row.try_get("requested_at")?,
            requested_ip: row.try_get("requested_ip")?,
            source: row.try_get("source")?,
            confirmed_at: row.try_get("confirmed_at")?,
            note: row.try_get("consent_note")?,
            left_at: row.try_get("left_at")?,
            left_how: row.try_get("left_how")?,
        },
        confirmation_sent_at: row.try_get("confirmation_sent_at")?,
    })
}

async fn by_id(conn: &mut PgConnection, id: i64) -> StoreResult<Option<Subscriber>> {
    let row = sqlx::query(&format!("{SELECT_SUBSCRIBERS} WHERE s.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// A consent-log entry as it is written.
pub(super) struct LogRow<'a> {
    pub id: Option<i64>,
    pub key: &'a str,
    pub event: &'a str,
    pub at: chrono::DateTime<chrono::Utc>,
    pub ip: Option<&'a str>,
    pub source: Option<&'a str>,
    pub note: Option<String>,
}

/// Appends entries to the consent log in one statement.
pub(super) async fn insert_log(conn: &mut PgConnection, entries: &[LogRow<'_>]) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let ids: Vec<Option<i64>> = entries.iter().map(|e| e.id).collect();
    let keys: Vec<&str> = entries.iter().map(|e| e.key).collect();
    let events: Vec<&str> = entries.iter().map(|e| e.event).collect();
    let ats: Vec<chrono::DateTime<chrono::Utc>> =
        entries.iter().map(|e| super::db_time(e.at)).collect();
    let ips: Vec<Option<&str>> = entries.iter().map(|e| e.ip).collect();
    let sources: Vec<Option<&str>> = entries.iter().map(|e| e.source).collect();
    let notes: Vec<Option<&str>> = entries.iter().map(|e| e.note.as_deref()).collect();
    sqlx::query(
        "INSERT INTO consent_log (subscriber_id, email_key, event, at, ip, source, note)
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::timestamptz[],
                              $5::text[], $6::text[], $7::text[])",
    )
    .bind(ids)
    .bind(keys)
    .bind(events)
    .bind(ats)
    .bind(ips)
    .bind(sources)
    .bind(notes)
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds `(subscriber id, value)` pairs to the schedules or tags table.
pub(super) async fn insert_pairs(
    conn: &mut PgConnection,
    table: &'static str,
    column: &'static str,
    pairs: &[(i64, &String)],
) -> StoreResult<()> {
    if pairs.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = pairs.iter().map(|p| p.0).collect();
    let values: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
    sqlx::query(&format!(
        "INSERT INTO {table} (subscriber_id, {column})
         SELECT * FROM unnest($1::bigint[], $2::text[]) ON CONFLICT DO NOTHING"
    ))
    .bind(ids)
    .bind(values)
    .execute(conn)
    .await?;
    Ok(())
}

mod counts;
mod feedback;
mod ledger;
mod newsletter;
mod plan;
mod state;
mod subscribers;
mod transfer;
