//! [`Counts`] in PostgreSQL: the same three `GROUP BY` queries as on
//! SQLite, deliveries grouped by run and state (the order of the
//! `digest_deliveries_by_state` index) and summed here.

use std::collections::HashMap;

use sqlx::Row;

use super::PgStore;
use crate::store::counts::{Counts, StoreCounts};

impl PgStore {
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
impl Counts for PgStore {
    async fn counts(&self) -> anyhow::Result<StoreCounts> {
        let subs = self.count_by("subscribers", "status", "status").await?;
        let runs = self.count_by("digest_runs", "state", "state").await?;
        let deliveries = self
            .count_by("digest_deliveries", "state", "run_id, state")
            .await?;
        Ok(StoreCounts::from_sums(&subs, &runs, &deliveries))
    }
}
