//! The digest ledger (`migrations/0002_digest_ledger.sql`): runs, one
//! delivery row per recipient, and what each subscriber has received.
//!
//! A run and all its deliveries are written in one transaction, so a run
//! either exists with every recipient or not at all; a planned run reads
//! its schedule's candidates page by page inside that transaction
//! ([`Pick`], [`PLAN_PAGE`]), so planning holds one page at a time. Deliveries are taken
//! (`pending` -> `sending`, leased to the taking replica) and settled in
//! batches, each batch one transaction; a crash can therefore leave at most
//! the batches in hand in `sending`, which become `uncertain` when their
//! lease runs out (or at once, for the holder of the SQLite send lock).
//!
//! These are the ledger's domain types; the SQL is in `sqlite/ledger.rs`
//! and `postgres/ledger.rs`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Status, SubscriberEmail};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Sending,
    Sent,
    Failed,
    Bounced,
    Uncertain,
    Skipped,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 7] = [
        DeliveryState::Pending,
        DeliveryState::Sending,
        DeliveryState::Sent,
        DeliveryState::Failed,
        DeliveryState::Bounced,
        DeliveryState::Uncertain,
        DeliveryState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Bounced => "bounced",
            DeliveryState::Uncertain => "uncertain",
            DeliveryState::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryState> {
        DeliveryState::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A tick of the schedule, on time.
    Schedule,
    /// The latest tick missed while herald was down, run at start.
    CatchUp,
    /// `herald digest send`.
    Manual,
    /// `herald announce`: a one-off message, schedule `announcements`.
    Announcement,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch-up",
            Trigger::Manual => "manual",
            Trigger::Announcement => "announcement",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub id: i64,
    pub schedule: String,
    pub tick: DateTime<Utc>,
    /// Articles first seen up to this time are in the run: the earlier of
    /// the tick and the moment the planner's articles were read (an
    /// article seen later waits for the next run instead of being skipped).
    pub horizon: DateTime<Utc>,
    pub trigger: String,
    pub nonce: String,
    pub created_at: DateTime<Utc>,
    /// `false` while deliveries are pending or being sent.
    pub done: bool,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Run {
    /// An announcement rather than a digest: no cursors move, the message
    /// is in the store.
    pub fn is_announcement(&self) -> bool {
        self.trigger == Trigger::Announcement.as_str()
    }
}

/// An active subscriber of a schedule, as a run needs them.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: i64,
    pub email: SubscriberEmail,
    pub confirmed_at: DateTime<Utc>,
    /// Tag slugs they filter on; empty means all.
    pub tags: Vec<String>,
    /// Articles first seen up to this time were in an earlier digest.
    pub received_through: Option<DateTime<Utc>>,
}

/// A run to create, with every delivery in it.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub schedule: &'a str,
    pub tick: DateTime<Utc>,
    pub horizon: DateTime<Utc>,
    pub trigger: Trigger,
    pub now: DateTime<Utc>,
    pub deliveries: &'a [NewDelivery],
}

/// Chooses a planned run's deliveries among its schedule's candidates:
/// `None` for a candidate with nothing to receive.
pub type Pick<'a> = &'a (dyn Fn(Candidate) -> Option<NewDelivery> + Send + Sync);

/// Candidates read at a time while a run is planned: memory holds one page
/// of them and of their deliveries, however long the list.
pub const PLAN_PAGE: usize = 2_000;

/// One delivery to write with a new run.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub subscriber_id: i64,
    pub email: SubscriberEmail,
    pub since: DateTime<Utc>,
    pub first: bool,
}

/// A delivery taken for sending, with its subscriber as they are now.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub subscriber_id: i64,
    pub email: SubscriberEmail,
    pub since: DateTime<Utc>,
    pub first: bool,
    /// Including this one.
    pub attempts: u32,
    /// `None` when the subscriber row is gone.
    pub status: Option<Status>,
    pub tags: Vec<String>,
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Sent {
        article_count: usize,
    },
    /// A temporary failure: back to `pending` until `at`.
    Retry {
        reply: String,
        at: DateTime<Utc>,
    },
    /// Temporary failures until the attempts ran out, or a local error.
    Failed {
        reply: String,
    },
    /// A permanent (5xx) reply for the recipient.
    Bounced {
        reply: String,
    },
    /// Not sent, and never will be: unsubscribed meanwhile, nothing new.
    Skipped {
        reason: String,
    },
}

/// A delivery that did not go out, for `herald digest status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub subscriber_id: i64,
    pub email: String,
    pub state: DeliveryState,
    pub attempts: u32,
    pub reply: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStatus {
    pub counts: BTreeMap<DeliveryState, u64>,
    /// Failed, bounced and uncertain deliveries, and pending ones waiting
    /// for a retry, with their last reply.
    pub problems: Vec<Problem>,
}

impl RunStatus {
    pub fn count(&self, state: DeliveryState) -> u64 {
        self.counts.get(&state).copied().unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// What settling a batch changed besides the deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Subscribers who reached `mail.bounce_limit` and are now `bounced`.
    pub newly_bounced: Vec<i64>,
}
