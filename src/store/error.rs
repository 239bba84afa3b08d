//! What can go wrong in storage, sorted so that callers can tell the cases
//! apart: the database is unreachable or too busy (try again later), the
//! change conflicts with what is stored, the thing asked for is not there,
//! or something is broken (bad data, a bug).
//!
//! The distinction matters at the edges: a reader whose confirmation link
//! meets a database outage is told to try again later, never that the
//! link is not valid.

use std::fmt;

/// An error from a [`super::Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, refused the connection, or did not
    /// answer in time (pool exhausted, statement timeout, a lock held too
    /// long). Worth trying again later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The change conflicts with what is stored (a unique key, a schema
    /// that is newer than this binary, a copy into a database that holds
    /// data already).
    #[error("{0}")]
    Conflict(String),
    /// What was asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Anything else: bad data in the database, a failed migration, a bug.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }

    pub(crate) fn internal(msg: impl fmt::Display) -> StoreError {
        StoreError::Internal(anyhow::anyhow!("{msg}"))
    }
}

/// PostgreSQL's SQLSTATE classes and codes that mean "not now" rather than
/// "never": connection exceptions (08), insufficient resources (53),
/// operator intervention (57: statement timeout, shutdown), serialization
/// failure and deadlock (40001, 40P01), lock not available (55P03).
fn pg_unavailable(code: &str) -> bool {
    code.starts_with("08")
        || code.starts_with("53")
        || code.starts_with("57")
        || matches!(code, "40001" | "40P01" | "55P03")
}

/// SQLite's primary result codes for "not now": BUSY (5) and LOCKED (6).
fn sqlite_unavailable(code: &str) -> bool {
    let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(-1);
    matches!(primary, 5 | 6)
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        use sqlx::Error as E;
        match &e {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(e.to_string())
            }
            E::Database(db) => {
                let code = db.code().map(|c| c.to_string()).unwrap_or_default();
                let is_pg = db
                    .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                    .is_some();
                let busy = if is_pg {
                    pg_unavailable(&code)
                } else {
                    sqlite_unavailable(&code)
                };
                if busy {
                    StoreError::Unavailable(db.message().to_string())
                } else if db.is_unique_violation() {
                    StoreError::Conflict(db.message().to_string())
                } else {
                    StoreError::Internal(anyhow::Error::new(e))
                }
            }
            _ => StoreError::Internal(anyhow::Error::new(e)),
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> StoreError {
        StoreError::Internal(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_and_timeouts_are_unavailable_not_internal() {
        for code in ["08006", "57014", "57P01", "53300", "40001", "40P01"] {
            assert!(pg_unavailable(code), "{code}");
        }
        for code in ["23505", "42P01", "22P02"] {
            assert!(!pg_unavailable(code), "{code}");
        }
        assert!(sqlite_unavailable("5"));
        assert!(sqlite_unavailable("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(!sqlite_unavailable("2067")); // unique constraint
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_unavailable());
    }
}
