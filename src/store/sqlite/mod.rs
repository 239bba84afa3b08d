//! The [`Store`](super::Store) in an embedded SQLite file: WAL mode and a
//! busy timeout so that the daemon and `herald subscribers …` can use one
//! file at once, schema from the embedded migrations in
//! `migrations/sqlite/`.
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction: it takes the write
//! lock up front, so two processes writing at once wait for each other (up
//! to the busy timeout) instead of failing when a read turns into a write.
//!
//! - `subscribers`: the [`Subscribers`](super::Subscribers) queries, one
//!   subscriber at a time;
//! - `bulk`: many rows in one statement (import, restore);
//! - `consent`: the append-only consent log;
//! - `ledger`: the digest ledger's SQL;
//! - `state`: first-seen times, undated dates, the shared send rate;
//! - `transfer`: whole tables out and in for `herald db copy`;
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

use super::open::{migrate_or_check, OpenOptions, SQLITE_MIGRATIONS};
use super::{Backend, Consent, Store, StoreResult, Subscriber};

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Cheap to clone: clones share one pool of connections.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    path: std::path::PathBuf,
}

impl SqliteStore {
    /// Opens (creating the folder and the file when missing) and migrates
    /// the database at `path`, with default settings.
    pub async fn open(path: &Path) -> anyhow::Result<SqliteStore> {
        let options = OpenOptions {
            pool_size: 4,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            migrate: true,
            password: None,
        };
        SqliteStore::open_with(path, &options).await
    }

    /// Opens the database at `path` as `options` say.
    pub async fn open_with(path: &Path, settings: &OpenOptions) -> anyhow::Result<SqliteStore> {
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
            .max_connections(settings.pool_size)
            .acquire_timeout(settings.connect_timeout)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the database {}", path.display()))?;
        migrate(&pool, settings.migrate, path).await?;
        Ok(SqliteStore {
            pool,
            path: path.to_path_buf(),
        })
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    /// Closing the last connection checkpoints the WAL into the database
    /// file, so a copy of the file alone is complete after a stop.
    async fn close(&self) {
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
async fn migrate(pool: &SqlitePool, migrate: bool, path: &Path) -> anyhow::Result<()> {
    let what = format!("the database {}", path.display());
    let mut attempt = 0;
    loop {
        match migrate_or_check(&SQLITE_MIGRATIONS, pool, migrate, &what).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 3 && e.downcast_ref::<super::StoreError>().is_none() => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Times are stored as fixed-width RFC 3339 text, so that text order is
/// time order; cut to microseconds like PostgreSQL's (see
/// [`super::db_time`]).
pub(crate) fn format_time(t: DateTime<Utc>) -> String {
    super::db_time(t).to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(crate) fn parse_time(s: String) -> StoreResult<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("bad time `{s}` in the database"))?)
}

pub(crate) fn parse_opt_time(s: Option<String>) -> StoreResult<Option<DateTime<Utc>>> {
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

fn decode(row: &SqliteRow) -> StoreResult<Subscriber> {
    let email: String = row.try_get("email")?;
    let status: String = row.try_get("status")?;
    let list = |col: &str| -> StoreResult<Vec<String>> {
        let json: String = row.try_get(col)?;
        let mut v: Vec<String> = serde_json::from_str(&json)?;
        v.sort();
        Ok(v)
    };
    Ok(Subscriber {
        id: row.try_get("id")?,
        email: super::stored_email(&email)?,
        name: row.try_get("name")?,
        status: super::stored_status(&status)?,
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

async fn by_id(conn: &mut SqliteConnection, id: i64) -> StoreResult<Option<Subscriber>> {
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
mod feedback;
mod ledger;
mod newsletter;
mod plan;
mod state;
mod subscribers;
mod transfer;
