//! `herald db migrate|copy`: the database as an operator handles it.
//! `migrate` applies the schema this herald needs (herald does that at
//! start too, unless `subscribers.database_migrate = false`); `copy` moves
//! a whole store, consent log and ledger included, into another, ids kept,
//! so that a list grown on SQLite can move to PostgreSQL (or back).

use std::process::ExitCode;

use anyhow::Context;

use crate::config::{Config, DatabaseLocation};
use crate::store::{self, copy, schema_version, Backend, OpenOptions, Store};

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Apply the pending migrations of the configured database
    /// (`subscribers.database`) and say which schema version it is at.
    Migrate,
    /// Copy every subscriber, the consent log, the digest ledger and the
    /// shared state from one database into another, which must be empty
    /// (migrated first). A secret generated in the data directory of an
    /// SQLite setup moves into a PostgreSQL target, so old links keep
    /// working.
    Copy {
        /// The source: `sqlite:PATH` (or a plain path) or `postgres://…`.
        #[arg(long, value_name = "DATABASE")]
        from: DatabaseLocation,
        /// The target, as for --from. The PostgreSQL password comes from
        /// HERALD_SUBSCRIBERS__DATABASE_PASSWORD, the password file, or
        /// PGPASSWORD.
        #[arg(long, value_name = "DATABASE")]
        to: DatabaseLocation,
    },
}

pub async fn run(config: &Config, cmd: DbCommand) -> anyhow::Result<ExitCode> {
    let mut options = OpenOptions::from_config(config)?;
    match cmd {
        DbCommand::Migrate => {
            options.migrate = true;
            let store = store::open_location(&config.database(), &options).await?;
            println!(
                "{}: schema at version {}",
                store.describe(),
                schema_version(store.backend())
            );
            store.close().await;
        }
        DbCommand::Copy { from, to } => {
            options.migrate = true;
            let source = store::open_location(&from, &options)
                .await
                .with_context(|| format!("opening the source {from}"))?;
            let target = store::open_location(&to, &options)
                .await
                .with_context(|| format!("opening the target {to}"))?;
            let counts = copy::copy(&*source, &*target, |part, n| {
                if n % 50_000 == 0 {
                    eprintln!("{}: {n} rows", part.name());
                }
            })
            .await?;
            for (part, n) in &counts {
                println!("{}: {n}", part.name());
            }
            move_secret(config, &*source, &*target).await?;
            println!("copied {} into {}", source.describe(), target.describe());
            source.close().await;
            target.close().await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An SQLite setup keeps a generated signing secret in its data directory;
/// a PostgreSQL target keeps it in the database for every replica.
async fn move_secret(
    config: &Config,
    source: &dyn Store,
    target: &dyn Store,
) -> anyhow::Result<()> {
    if source.backend() != Backend::Sqlite || target.backend() != Backend::Postgres {
        return Ok(());
    }
    let path = config.data_dir.join("signing-secret");
    let Ok(secret) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let stored = target
        .shared_secret(secret.trim().as_bytes())
        .await?
        .unwrap_or_default();
    if stored == secret.trim().as_bytes() {
        println!(
            "the signing secret of {} is now in the database; delete the file before starting herald on PostgreSQL",
            path.display()
        );
    } else {
        eprintln!(
            "warning: the target has a signing secret already; links signed with {} will not verify",
            path.display()
        );
    }
    Ok(())
}
