//! Opening the store `subscribers.database` names, with the settings of
//! `[subscribers]`: pool size, timeouts, the PostgreSQL password (from the
//! environment or a file only), and whether to migrate at start.
//!
//! Migrations are embedded per backend (`migrations/sqlite`,
//! `migrations/postgres`). A database whose schema has a migration this
//! binary does not know was migrated by a newer herald: it is refused at
//! open, naming both versions, rather than written to by code that does
//! not know its columns.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::migrate::{Migrate, Migrator};

use super::{PgStore, SqliteStore, Store, StoreError};
use crate::config::{Config, DatabaseLocation};

pub(super) static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
pub(super) static PG_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How to open a store.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub pool_size: u32,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
    /// Apply pending migrations; otherwise refuse a schema that is behind.
    pub migrate: bool,
    pub password: Option<String>,
}

impl OpenOptions {
    /// The settings of `config`'s `[subscribers]` section.
    pub fn from_config(config: &Config) -> anyhow::Result<OpenOptions> {
        let s = &config.subscribers;
        let password = match (&s.database_password, &s.database_password_file) {
            (Some(p), _) => Some(p.expose().to_string()),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| {
                        format!(
                            "cannot read subscribers.database_password_file {}",
                            path.display()
                        )
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
            ),
            (None, None) => None,
        };
        Ok(OpenOptions {
            pool_size: s.database_pool_size,
            statement_timeout: s.database_statement_timeout.0,
            connect_timeout: s.database_connect_timeout.0,
            migrate: s.database_migrate,
            password,
        })
    }
}

/// Opens the configured store.
pub async fn open(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    open_location(&config.database(), &OpenOptions::from_config(config)?).await
}

/// Opens the store at `location`. Errors name the database (host and port
/// for PostgreSQL) and the cause.
pub async fn open_location(
    location: &DatabaseLocation,
    options: &OpenOptions,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match location {
        DatabaseLocation::Sqlite(path) => Arc::new(SqliteStore::open_with(path, options).await?),
        DatabaseLocation::Postgres(url) => Arc::new(PgStore::open(url, options).await?),
    })
}

/// Applies the pending migrations of `migrator`, or (with `migrate`
/// false) checks that none is pending. Either way refuses a schema that a
/// newer herald migrated. `what` names the database in errors.
pub(super) async fn migrate_or_check<DB>(
    migrator: &Migrator,
    pool: &sqlx::Pool<DB>,
    migrate: bool,
    what: &str,
) -> anyhow::Result<()>
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Connection: Migrate,
    for<'a> &'a mut <DB as sqlx::Database>::Connection: sqlx::Executor<'a, Database = DB>,
{
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let mut conn = pool.acquire().await.map_err(StoreError::from)?;
    conn.ensure_migrations_table()
        .await
        .with_context(|| format!("cannot read the schema version of {what}"))?;
    let applied = conn.list_applied_migrations().await?;
    drop(conn);
    let newest = applied.iter().map(|m| m.version).max().unwrap_or(0);
    if newest > known {
        return Err(StoreError::Conflict(format!(
            "the schema of {what} is at version {newest}, newer than this herald knows ({known}): \
             a newer herald migrated it; run that version (or newer) instead"
        ))
        .into());
    }
    if migrate {
        return migrator
            .run(pool)
            .await
            .with_context(|| format!("cannot migrate {what}"));
    }
    if newest < known {
        anyhow::bail!(
            "the schema of {what} is at version {newest}, this herald needs {known}: run \
             `herald db migrate` (subscribers.database_migrate is false)"
        );
    }
    Ok(())
}

/// The newest migration this binary knows for `backend`.
pub fn schema_version(backend: super::Backend) -> i64 {
    let migrator = match backend {
        super::Backend::Sqlite => &SQLITE_MIGRATIONS,
        super::Backend::Postgres => &PG_MIGRATIONS,
    };
    migrator.iter().map(|m| m.version).max().unwrap_or(0)
}
