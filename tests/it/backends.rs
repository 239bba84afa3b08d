//! The storage tests run against both backends from the same test code:
//! `both!(name)` turns `async fn name(db: TestDb)` into two tests,
//! `name::on_sqlite` (a file in a temporary folder) and `name::on_postgres`
//! (a fresh database in the private cluster of [`super::pg`]).

use std::sync::Arc;

use herald::config::DatabaseLocation;
use herald::store::{open_location, OpenOptions, Store};
use sqlx::Connection;

use super::pg;

/// A store under test, with the means to open it again and to reach its
/// tables with raw SQL.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub location: DatabaseLocation,
    _dir: Option<tempfile::TempDir>,
}

pub fn sqlite_options() -> OpenOptions {
    OpenOptions {
        password: None,
        ..pg::options()
    }
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let location = DatabaseLocation::Sqlite(dir.path().join("data/herald.sqlite3"));
        let store = open_location(&location, &sqlite_options()).await.unwrap();
        TestDb {
            store,
            location,
            _dir: Some(dir),
        }
    }

    /// `None` when PostgreSQL is missing outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let cluster = pg::cluster()?;
        let url = cluster.fresh_db().await;
        let location = DatabaseLocation::Postgres(url);
        let store = open_location(&location, &pg::options()).await.unwrap();
        Some(TestDb {
            store,
            location,
            _dir: None,
        })
    }

    pub fn options(&self) -> OpenOptions {
        match self.location {
            DatabaseLocation::Sqlite(_) => sqlite_options(),
            DatabaseLocation::Postgres(_) => pg::options(),
        }
    }

    /// A second, independent handle on the same database (another process
    /// would have one).
    pub async fn open_again(&self) -> Arc<dyn Store> {
        open_location(&self.location, &self.options())
            .await
            .unwrap()
    }

    /// Runs `sql` outside the store, as an operator's shell would.
    pub async fn exec(&self, sql: &str) -> Result<u64, String> {
        match &self.location {
            DatabaseLocation::Sqlite(path) => {
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                let r = sqlx::query(sql).execute(&mut c).await;
                c.close().await.unwrap();
                r.map(|r| r.rows_affected()).map_err(|e| e.to_string())
            }
            DatabaseLocation::Postgres(url) => {
                let mut url = url.clone();
                url.set_password(Some(pg::PASSWORD)).unwrap();
                let mut c = sqlx::PgConnection::connect(url.as_str()).await.unwrap();
                let r = sqlx::query(sql).execute(&mut c).await;
                c.close().await.unwrap();
                r.map(|r| r.rows_affected()).map_err(|e| e.to_string())
            }
        }
    }
}

/// Two tests from one `async fn name(db: TestDb)`.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$name($crate::backends::TestDb::sqlite().await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                if let Some(db) = $crate::backends::TestDb::postgres().await {
                    super::$name(db).await;
                }
            }
        }
    };
}
