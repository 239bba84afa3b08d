//! The [`Store`] in an embedded SQLite file: WAL mode and a busy timeout so
//! that the daemon and `herald subscribers …` can use one file at once,
//! schema from the embedded migrations in `migrations/`.
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction: it takes the write
//! lock up front, so two processes writing at once wait for each other (up
//! to the busy timeout) instead of failing when a read turns into a write.
//!
//! - `subscribers`: the [`Store`](super::Store) queries, one subscriber at a time;
//! - `bulk`: many rows in one statement (import, restore);
//! - `consent`: the append-only consent log;
//! - `ledger`: the digest ledger's SQL;
//! - `counts`: rows per state, for `/metrics`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row, SqlitePool};

use super::{Consent, Status, Subscriber, SubscriberEmail};

pub use consent::ConsentEntry;

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Cheap to clone: clones share one pool of connections.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating the folder and the file when missing) and migrates
    /// the database at `path`.
    pub async fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        }
        create_private(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Consent records are evidence: a commit is on disk when it
            // returns. Imports commit thousands of rows at a time, so the
            // cost is one sync per batch.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // sqlx would log every statement, and warn about any that takes
            // over a second, which listing 100,000 subscribers does.
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        migrate(&pool)
            .await
            .with_context(|| format!("cannot migrate the database {}", path.display()))?;
        Ok(SqliteStore { pool })
    }

    /// Closes every connection (the daemon calls it on shutdown; dropping
    /// the store also works, less tidily).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Creates the database file readable by its owner only (it holds personal
/// data); SQLite gives the `-wal` and `-shm` files the same permissions.
fn create_private(path: &Path) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot create the database {}", path.display())),
    }
}

/// Runs the embedded migrations. The daemon and the command line may open
/// a new file at the same moment; the loser of that race sees a migration
/// already applied (or a table already there) and succeeds on a retry.
async fn migrate(pool: &SqlitePool) -> anyhow::Result<()> {
    let migrator = sqlx::migrate!("./migrations");
    let mut attempt = 0;
    loop {
        match migrator.run(pool).await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 3 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Times are stored as fixed-width RFC 3339 text, so that text order is
/// time order.
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn parse_time(s: String) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("bad time `{s}` in the database"))
}

pub(crate) fn parse_opt_time(s: Option<String>) -> anyhow::Result<Option<DateTime<Utc>>> {
    s.map(parse_time).transpose()
}

/// Columns of a subscriber as SQL reads them; schedules and tags come as
/// JSON arrays.
macro_rules! select_subscribers {
    ($tail:literal) => {
        concat!(
            "SELECT s.id, s.email, s.name, s.status, s.requested_at, s.requested_ip,
                    s.source, s.confirmed_at, s.consent_note, s.left_at, s.left_how,
                    s.confirmation_sent_at,
                    (SELECT json_group_array(schedule) FROM subscriber_schedules
                     WHERE subscriber_id = s.id) AS schedules,
                    (SELECT json_group_array(tag) FROM subscriber_tags
                     WHERE subscriber_id = s.id) AS tags
             FROM subscribers s ",
            $tail
        )
    };
}

fn decode(row: &SqliteRow) -> anyhow::Result<Subscriber> {
    let email: String = row.try_get("email")?;
    let status: String = row.try_get("status")?;
    let list = |col: &str| -> anyhow::Result<Vec<String>> {
        let json: String = row.try_get(col)?;
        let mut v: Vec<String> = serde_json::from_str(&json)?;
        v.sort();
        Ok(v)
    };
    Ok(Subscriber {
        id: row.try_get("id")?,
        email: SubscriberEmail::parse(&email)
            .with_context(|| format!("bad address `{email}` in the database"))?,
        name: row.try_get("name")?,
        status: Status::parse(&status)
            .with_context(|| format!("bad status `{status}` in the database"))?,
        schedules: list("schedules")?,
        tags: list("tags")?,
        consent: Consent {
            requested_at: parse_time(row.try_get("requested_at")?)?,
            requested_ip: row.try_get("requested_ip")?,
            source: row.try_get("source")?,
            confirmed_at: parse_opt_time(row.try_get("confirmed_at")?)?,
            note: row.try_get("consent_note")?,
            left_at: parse_opt_time(row.try_get("left_at")?)?,
            left_how: row.try_get("left_how")?,
        },
        confirmation_sent_at: parse_opt_time(row.try_get("confirmation_sent_at")?)?,
    })
}

async fn by_id(conn: &mut SqliteConnection, id: i64) -> anyhow::Result<Option<Subscriber>> {
    let row = sqlx::query(select_subscribers!("WHERE s.id = ?"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(decode).transpose()
}

// Declared after `select_subscribers!` so that the macro is in scope in them.
mod bulk;
mod consent;
mod counts;
mod ledger;
mod subscribers;
