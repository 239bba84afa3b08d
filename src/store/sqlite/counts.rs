//! [`Counts`] in SQLite: three `GROUP BY` queries, each answered from an
//! index (`subscribers_status`, `digest_runs_unfinished`,
//! `digest_deliveries_by_state`) without reading the rows themselves.

use std::collections::HashMap;

use sqlx::Row;

use super::SqliteStore;
use crate::store::counts::{Counts, StoreCounts, RUN_STATES};
use crate::store::{DeliveryState, Status};

const STATUSES: [Status; 4] = [
    Status::Pending,
    Status::Active,
    Status::Unsubscribed,
    Status::Bounced,
];

impl SqliteStore {
    /// Rows per value of `column` in `table` (both fixed names of ours).
    async fn count_by(&self, table: &str, column: &str) -> anyhow::Result<HashMap<String, u64>> {
        let sql = format!("SELECT {column} AS k, COUNT(*) AS n FROM {table} GROUP BY {column}");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("k")?, r.try_get::<i64, _>("n")?.max(0) as u64)))
            .collect()
    }
}

#[async_trait::async_trait]
impl Counts for SqliteStore {
    async fn counts(&self) -> anyhow::Result<StoreCounts> {
        let subs = self.count_by("subscribers", "status").await?;
        let runs = self.count_by("digest_runs", "state").await?;
        let deliveries = self.count_by("digest_deliveries", "state").await?;
        let n = |m: &HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        Ok(StoreCounts {
            subscribers: STATUSES.map(|s| (s, n(&subs, s.as_str()))).to_vec(),
            runs: RUN_STATES.map(|s| (s, n(&runs, s))).to_vec(),
            deliveries: DeliveryState::ALL
                .map(|s| (s, n(&deliveries, s.as_str())))
                .to_vec(),
        })
    }
}
