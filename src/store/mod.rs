//! Where subscribers and the digest ledger live. Callers use the
//! [`Store`] trait only, so that a PostgreSQL implementation can follow the
//! SQLite one without touching them.
//!
//! Nothing about a subscriber is deleted silently: unsubscribing and
//! removal keep the record and say when and how the person left; purging
//! unconfirmed sign-ups keeps their attempt in the consent log.

pub mod counts;
mod ledger;
mod sqlite;

use chrono::{DateTime, Utc};

pub use crate::base::{EmailError, SubscriberEmail};
pub use counts::{Counts, StoreCounts};
pub use ledger::{
    Candidate, Claimed, DeliveryState, NewDelivery, Outcome, Problem, Run, RunStatus, Settled,
    Trigger,
};
pub use sqlite::{ConsentEntry, SqliteStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Asked to subscribe, has not confirmed yet.
    Pending,
    Active,
    Unsubscribed,
    /// Mail to the address bounced permanently; no more mail is sent.
    Bounced,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "active" => Status::Active,
            "unsubscribed" => Status::Unsubscribed,
            "bounced" => Status::Bounced,
            _ => return None,
        })
    }
}

/// When and how a person gave and withdrew consent (GDPR Art. 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub requested_at: DateTime<Utc>,
    /// Client IP of the request, where it came over HTTP.
    pub requested_ip: Option<String>,
    /// How they asked: `web-form`, `cli`, `import`.
    pub source: String,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// For imports and CLI additions of already-confirmed people: the
    /// operator's note on where the consent was given.
    pub note: Option<String>,
    pub left_at: Option<DateTime<Utc>>,
    /// `one-click`, `unsubscribe-page`, `operator`, `bounce`.
    pub left_how: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: i64,
    pub email: SubscriberEmail,
    pub name: Option<String>,
    pub status: Status,
    /// Names of the `[[digest]]` schedules they receive.
    pub schedules: Vec<String>,
    /// Tag slugs they filter on; empty means every article.
    pub tags: Vec<String>,
    pub consent: Consent,
    /// Last time a confirmation email was sent (for throttling re-sends).
    pub confirmation_sent_at: Option<DateTime<Utc>>,
}

/// A request to subscribe (web form, CLI or import row).
#[derive(Debug, Clone)]
pub struct NewSubscription {
    pub email: SubscriberEmail,
    pub name: Option<String>,
    pub schedules: Vec<String>,
    pub tags: Vec<String>,
    pub at: DateTime<Utc>,
    pub ip: Option<String>,
    pub source: String,
    /// Already confirmed elsewhere (CLI `--confirmed`, import flag), with
    /// the operator's note on how.
    pub confirmed_note: Option<String>,
}

/// What [`Store::subscribe`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeOutcome {
    /// New pending subscriber (or a former one asking again): send a
    /// confirmation.
    Pending(Subscriber),
    /// Already active: nothing to do (the web form answers the same).
    AlreadyActive(Subscriber),
    /// Stored as active directly (`confirmed_note` was given).
    Active(Subscriber),
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
}

#[async_trait::async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records a subscription request with its consent data. An address
    /// already pending gets its request updated; one that had left or
    /// bounced becomes pending again (a new consent), keeping the history.
    async fn subscribe(&self, req: NewSubscription) -> anyhow::Result<SubscribeOutcome>;

    /// Notes that a confirmation email went out now.
    async fn confirmation_sent(&self, id: i64, at: DateTime<Utc>) -> anyhow::Result<()>;

    /// Pending -> active. Returns the subscriber, or `None` when there is no
    /// such subscriber or they are not pending (already active is `Some`).
    async fn confirm(&self, id: i64, at: DateTime<Utc>) -> anyhow::Result<Option<Subscriber>>;

    /// Active or pending -> unsubscribed, recording when and how. Returns
    /// `false` when there is no such subscriber; leaving twice is fine.
    async fn unsubscribe(&self, id: i64, at: DateTime<Utc>, how: &str) -> anyhow::Result<bool>;

    async fn set_preferences(
        &self,
        id: i64,
        schedules: &[String],
        tags: &[String],
    ) -> anyhow::Result<bool>;

    async fn get(&self, id: i64) -> anyhow::Result<Option<Subscriber>>;

    async fn find(&self, email: &SubscriberEmail) -> anyhow::Result<Option<Subscriber>>;

    /// Ordered by id.
    async fn list(&self, filter: &ListFilter) -> anyhow::Result<Vec<Subscriber>>;

    /// Removes pending sign-ups requested before `before`, keeping each
    /// attempt in the consent log. Returns how many.
    async fn purge_pending(&self, before: DateTime<Utc>) -> anyhow::Result<u64>;

    /// Adds many subscriptions in one transaction (for CSV import): all of
    /// them or, on error, none.
    async fn import(&self, rows: Vec<NewSubscription>) -> anyhow::Result<ImportCounts>;
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportCounts {
    pub added: u64,
    /// Addresses already present: left as they are.
    pub existing: u64,
}
