//! How many subscribers, digest runs and deliveries are in each state, for
//! `/metrics`. A trait of its own, apart from [`super::Store`], so that the
//! HTTP layer asks any storage for it and the SQLite queries stay in one
//! small file (`sqlite/counts.rs`).

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

#[async_trait::async_trait]
pub trait Counts: Send + Sync + 'static {
    async fn counts(&self) -> anyhow::Result<StoreCounts>;
}
