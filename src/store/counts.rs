//! How many subscribers, digest runs and deliveries are in each state, for
//! `/metrics`. A trait of its own (every [`super::Store`] has it), so that
//! the HTTP layer asks for nothing else; the queries are in
//! `sqlite/counts.rs` and `postgres/counts.rs`.

use std::collections::HashMap;

use super::{DeliveryState, Status};

/// Every state with its count, zeros included, so that a gauge falls back
/// to 0 when its last row moves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreCounts {
    pub subscribers: Vec<(Status, u64)>,
    /// `sending` or `done` (the column `digest_runs.state`).
    pub runs: Vec<(&'static str, u64)>,
    pub deliveries: Vec<(DeliveryState, u64)>,
}

/// The run states of the ledger.
pub const RUN_STATES: [&str; 2] = ["sending", "done"];

impl StoreCounts {
    /// Every state from rows counted per state name (a state with no rows
    /// is 0).
    pub fn from_sums(
        subscribers: &HashMap<String, u64>,
        runs: &HashMap<String, u64>,
        deliveries: &HashMap<String, u64>,
    ) -> StoreCounts {
        let n = |m: &HashMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
        StoreCounts {
            subscribers: Status::ALL
                .map(|s| (s, n(subscribers, s.as_str())))
                .to_vec(),
            runs: RUN_STATES.map(|s| (s, n(runs, s))).to_vec(),
            deliveries: DeliveryState::ALL
                .map(|s| (s, n(deliveries, s.as_str())))
                .to_vec(),
        }
    }
}

#[async_trait::async_trait]
pub trait Counts: Send + Sync + 'static {
    async fn counts(&self) -> anyhow::Result<StoreCounts>;
}
