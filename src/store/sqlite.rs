//! The [`Store`] in an embedded SQLite file: WAL mode and a busy timeout so
//! that the daemon and `herald subscribers …` can use one file at once,
//! schema from the embedded migrations in `migrations/`.
//!
//! Every write runs in a `BEGIN IMMEDIATE` transaction: it takes the write
//! lock up front, so two processes writing at once wait for each other (up
//! to the busy timeout) instead of failing when a read turns into a write.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row, SqlitePool};

use super::{
    Consent, ImportCounts, ListFilter, NewSubscription, Status, Store, SubscribeOutcome,
    Subscriber, SubscriberEmail,
};

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Cheap to clone: clones share one pool of connections.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
}

/// One entry of the append-only consent log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEntry {
    pub at: DateTime<Utc>,
    /// `subscribe`, `confirm`, `unsubscribe`, `bounce`, `operator-removal`,
    /// `purge` or `restore`.
    pub event: String,
    /// The subscriber row it was about (purged rows no longer exist; their
    /// ids are never reused).
    pub subscriber_id: Option<i64>,
    /// The address lower-cased.
    pub email_key: String,
    pub ip: Option<String>,
    pub source: Option<String>,
    pub note: Option<String>,
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

    /// The consent history of an address, oldest first, including sign-ups
    /// that were purged.
    pub async fn consent_log(&self, email: &SubscriberEmail) -> anyhow::Result<Vec<ConsentEntry>> {
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

    /// Puts back subscribers as an export described them: status, consent
    /// and all (the `id` and `confirmation_sent_at` fields are ignored). In
    /// one transaction; addresses already present are left as they are.
    /// Each restored row gets a `restore` entry in the consent log.
    pub async fn restore(&self, rows: Vec<Subscriber>) -> anyhow::Result<ImportCounts> {
        let now = format_time(Utc::now());
        let mut new = Vec::with_capacity(rows.len());
        for s in &rows {
            let c = &s.consent;
            let left = matches!(s.status, Status::Unsubscribed | Status::Bounced);
            if (s.status == Status::Active && c.confirmed_at.is_none())
                || (s.status == Status::Pending && c.confirmed_at.is_some())
                || left != c.left_at.is_some()
            {
                bail!(
                    "{}: status {} does not agree with its consent times",
                    s.email,
                    s.status.as_str()
                );
            }
            let mut note = format!(
                "restored from an export: {}, requested {}",
                s.status.as_str(),
                format_time(c.requested_at)
            );
            if let Some(t) = c.confirmed_at {
                note.push_str(&format!(", confirmed {}", format_time(t)));
            }
            if let Some(t) = c.left_at {
                let how = c.left_how.as_deref().unwrap_or("?");
                note.push_str(&format!(", left {} ({how})", format_time(t)));
            }
            new.push(NewRow {
                email: s.email.as_str(),
                key: s.email.key(),
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

fn counts(ids: &[Option<i64>]) -> ImportCounts {
    let added = ids.iter().flatten().count() as u64;
    ImportCounts {
        added,
        existing: ids.len() as u64 - added,
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
pub(super) fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

pub(super) fn parse_time(s: String) -> anyhow::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s)
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("bad time `{s}` in the database"))
}

pub(super) fn parse_opt_time(s: Option<String>) -> anyhow::Result<Option<DateTime<Utc>>> {
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

/// A subscriber row about to be inserted, with its schedules, tags and
/// consent-log entries. Serialized to JSON, many rows go to SQLite in one
/// statement (per-statement overhead, not SQLite, dominates row by row).
#[derive(Serialize)]
struct NewRow<'a> {
    email: &'a str,
    key: String,
    name: Option<&'a str>,
    status: &'static str,
    requested_at: String,
    requested_ip: Option<&'a str>,
    source: &'a str,
    confirmed_at: Option<String>,
    consent_note: Option<&'a str>,
    left_at: Option<String>,
    left_how: Option<&'a str>,
    #[serde(skip)]
    schedules: &'a [String],
    #[serde(skip)]
    tags: &'a [String],
    #[serde(skip)]
    log: Vec<Logged<'a>>,
}

/// A consent-log entry for a row not inserted yet (its id is unknown).
struct Logged<'a> {
    event: &'static str,
    at: String,
    ip: Option<&'a str>,
    source: Option<&'a str>,
    note: Option<String>,
}

/// A consent-log entry as it is written.
#[derive(Serialize)]
struct LogRow<'a> {
    id: Option<i64>,
    key: &'a str,
    event: &'a str,
    at: &'a str,
    ip: Option<&'a str>,
    source: Option<&'a str>,
    note: Option<&'a str>,
}

/// A subscription request as a row: pending, or active at once when it
/// comes with a consent note; logged as a request (and a confirmation).
fn request_row<'a>(req: &'a NewSubscription, at: &str) -> NewRow<'a> {
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
async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &[NewRow<'_>],
) -> anyhow::Result<Vec<Option<i64>>> {
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

/// Adds `(subscriber id, value)` pairs to the schedules or tags table.
/// Duplicates are skipped; a value the schema refuses (an empty name) is
/// an error.
async fn insert_pairs(
    conn: &mut SqliteConnection,
    table: &'static str,
    column: &'static str,
    pairs: &[(i64, &String)],
) -> anyhow::Result<()> {
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
async fn set_lists(
    conn: &mut SqliteConnection,
    id: i64,
    schedules: &[String],
    tags: &[String],
) -> anyhow::Result<()> {
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

async fn insert_log(conn: &mut SqliteConnection, entries: &[LogRow<'_>]) -> anyhow::Result<()> {
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
async fn log(conn: &mut SqliteConnection, entry: LogRow<'_>) -> anyhow::Result<()> {
    insert_log(conn, &[entry]).await
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn subscribe(&self, req: NewSubscription) -> anyhow::Result<SubscribeOutcome> {
        let at = format_time(req.at);
        let key = req.email.key();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<(i64, String)> =
            sqlx::query_as("SELECT id, status FROM subscribers WHERE email_key = ?")
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await?;
        let id = match existing {
            None => insert_rows(&mut tx, &[request_row(&req, &at)]).await?[0]
                .context("the address appeared during the transaction")?,
            Some((id, status)) if status == Status::Active.as_str() => {
                let entry = LogRow {
                    id: Some(id),
                    key: &key,
                    event: "subscribe",
                    at: &at,
                    ip: req.ip.as_deref(),
                    source: Some(&req.source),
                    note: Some("already active; nothing changed"),
                };
                log(&mut tx, entry).await?;
                let s = by_id(&mut tx, id).await?.context("subscriber vanished")?;
                tx.commit().await?;
                return Ok(SubscribeOutcome::AlreadyActive(s));
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
        let s = by_id(&mut tx, id).await?.context("subscriber vanished")?;
        tx.commit().await?;
        Ok(if s.status == Status::Active {
            SubscribeOutcome::Active(s)
        } else {
            SubscribeOutcome::Pending(s)
        })
    }

    async fn confirmation_sent(&self, id: i64, at: DateTime<Utc>) -> anyhow::Result<()> {
        sqlx::query("UPDATE subscribers SET confirmation_sent_at = ? WHERE id = ?")
            .bind(format_time(at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn confirm(&self, id: i64, at: DateTime<Utc>) -> anyhow::Result<Option<Subscriber>> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let Some(s) = by_id(&mut tx, id).await? else {
            return Ok(None);
        };
        match s.status {
            Status::Active => return Ok(Some(s)),
            Status::Unsubscribed | Status::Bounced => return Ok(None),
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
    async fn unsubscribe(&self, id: i64, at: DateTime<Utc>, how: &str) -> anyhow::Result<bool> {
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
    ) -> anyhow::Result<bool> {
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

    async fn get(&self, id: i64) -> anyhow::Result<Option<Subscriber>> {
        let mut conn = self.pool.acquire().await?;
        by_id(&mut conn, id).await
    }

    async fn find(&self, email: &SubscriberEmail) -> anyhow::Result<Option<Subscriber>> {
        let row = sqlx::query(select_subscribers!("WHERE s.email_key = ?"))
            .bind(email.key())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn list(&self, filter: &ListFilter) -> anyhow::Result<Vec<Subscriber>> {
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

    async fn purge_pending(&self, before: DateTime<Utc>) -> anyhow::Result<u64> {
        let before = format_time(before);
        let now = format_time(Utc::now());
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO consent_log (subscriber_id, email_key, event, at, ip, source, note)
             SELECT id, email_key, 'purge', ?, requested_ip, source,
                    'never confirmed; requested ' || requested_at
             FROM subscribers WHERE status = 'pending' AND requested_at < ?
             ORDER BY id",
        )
        .bind(&now)
        .bind(&before)
        .execute(&mut *tx)
        .await?;
        let done =
            sqlx::query("DELETE FROM subscribers WHERE status = 'pending' AND requested_at < ?")
                .bind(&before)
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn import(&self, rows: Vec<NewSubscription>) -> anyhow::Result<ImportCounts> {
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
}
