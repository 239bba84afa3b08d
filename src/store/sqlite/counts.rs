//! [`Counts`] in SQLite: three `GROUP BY` queries, each a scan of an index
//! (`subscribers_status`, `digest_runs_unfinished`,
//! `digest_deliveries_claim`) that never reads the rows themselves.
//!
//! Deliveries are grouped by run and state, the order of their index, and
//! summed here: grouped by state alone SQLite sorts the whole ledger in a
//! temporary B-tree first. Measured on 1,000,000 deliveries in 100 runs
//! (on a loaded machine): 564 ms by state, 157 ms by run and state.

use std::collections::HashMap;

use sqlx::Row;

use super::SqliteStore;
use crate::store::counts::{Counts, StoreCounts};

impl SqliteStore {
    /// Rows per value of `column` in `table`, counted in groups of
    /// `groups` (all three fixed names of ours) and summed.
    async fn count_by(
        &self,
        table: &str,
        column: &str,
        groups: &str,
    ) -> anyhow::Result<HashMap<String, u64>> {
        let sql = format!("SELECT {column} AS k, COUNT(*) AS n FROM {table} GROUP BY {groups}");
        let mut sums = HashMap::new();
        for r in sqlx::query(&sql).fetch_all(&self.pool).await? {
            let n = r.try_get::<i64, _>("n")?.max(0) as u64;
            *sums.entry(r.try_get("k")?).or_insert(0) += n;
        }
        Ok(sums)
    }
}

#[async_trait::async_trait]
impl Counts for SqliteStore {
    async fn counts(&self) -> anyhow::Result<StoreCounts> {
        let subs = self.count_by("subscribers", "status", "status").await?;
        let runs = self.count_by("digest_runs", "state", "state").await?;
        let deliveries = self
            .count_by("digest_deliveries", "state", "run_id, state")
            .await?;
        Ok(StoreCounts::from_sums(&subs, &runs, &deliveries))
    }
}
