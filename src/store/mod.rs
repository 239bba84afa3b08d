//! Where subscribers, the consent log, the digest ledger and the state
//! replicas share live. Callers hold an `Arc<dyn Store>` ([`open`] picks
//! the backend from `subscribers.database`) and see [`StoreError`]s, never
//! a concrete pool: `sqlite/` and `postgres/` implement the traits of
//! [`api`] side by side.
//!
//! Nothing about a subscriber is deleted silently: unsubscribing and
//! removal keep the record and say when and how the person left; purging
//! unconfirmed sign-ups keeps their attempt in the consent log.

mod api;
pub mod copy;
pub mod counts;
mod error;
mod feedback;
mod ledger;
mod newsletter;
mod open;
mod postgres;
pub mod seen;
mod sqlite;

use chrono::{DateTime, SubsecRound, Utc};

pub use crate::base::{EmailError, SubscriberEmail};
pub use api::{Backend, Claim, Ledger, SeenArticle, SharedState, Store, Subscribers, Transfer};
pub use counts::{Counts, StoreCounts};
pub use error::{StoreError, StoreResult};
pub use feedback::{
    suppression_hash, Deliverability, Feedback, FeedbackKind, FeedbackOutcome, FeedbackTarget,
};
pub use ledger::{
    Candidate, Claimed, DeliveryState, NewDelivery, NewRun, Outcome, Pick, Problem, Run, RunStatus,
    Settled, Trigger, PLAN_PAGE,
};
pub use newsletter::{Announcement, Audience, Issue, NewAnnouncement, Newsletter, ANNOUNCEMENTS};
pub use open::{open, open_location, schema_version, OpenOptions};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// A time as both databases keep it: PostgreSQL stores microseconds, so
/// every time that goes in is cut to them first, and what comes back
/// compares equal to what went in.
pub fn db_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// An address read back from the database.
pub(crate) fn stored_email(s: &str) -> StoreResult<SubscriberEmail> {
    SubscriberEmail::parse(s)
        .map_err(|e| StoreError::internal(format!("bad address `{s}` in the database: {e}")))
}

pub(crate) fn stored_status(s: &str) -> StoreResult<Status> {
    Status::parse(s)
        .ok_or_else(|| StoreError::internal(format!("bad status `{s}` in the database")))
}

/// Checks that a restored subscriber's status agrees with its consent
/// times, and says in the consent log where it came from.
pub(crate) fn restore_note(s: &Subscriber) -> StoreResult<String> {
    let c = &s.consent;
    let left = s.status.has_left();
    if (s.status == Status::Active && c.confirmed_at.is_none())
        || (s.status == Status::Pending && c.confirmed_at.is_some())
        || left != c.left_at.is_some()
    {
        return Err(StoreError::Conflict(format!(
            "{}: status {} does not agree with its consent times",
            s.email,
            s.status.as_str()
        )));
    }
    let time = |t: DateTime<Utc>| db_time(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut note = format!(
        "restored from an export: {}, requested {}",
        s.status.as_str(),
        time(c.requested_at)
    );
    if let Some(t) = c.confirmed_at {
        note.push_str(&format!(", confirmed {}", time(t)));
    }
    if let Some(t) = c.left_at {
        let how = c.left_how.as_deref().unwrap_or("?");
        note.push_str(&format!(", left {} ({how})", time(t)));
    }
    Ok(note)
}

/// One entry of the append-only consent log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentEntry {
    pub at: DateTime<Utc>,
    /// `subscribe`, `confirm`, `unsubscribe`, `bounce`, `operator-removal`,
    /// `purge`, `restore`, `complaint` or `erasure`.
    pub event: String,
    /// The subscriber row it was about (purged rows no longer exist; their
    /// ids are never reused).
    pub subscriber_id: Option<i64>,
    /// The address lower-cased.
    pub email_key: String,
    pub ip: Option<String>,
    pub source: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Asked to subscribe, has not confirmed yet.
    Pending,
    Active,
    Unsubscribed,
    /// Mail to the address bounced permanently; no more mail is sent.
    Bounced,
    /// The reader reported a message as spam: never mailed again, and the
    /// address cannot sign up or be imported again.
    Complained,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
            Status::Complained => "complained",
        }
    }

    /// Every status, in the order lists name them.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Active,
        Status::Unsubscribed,
        Status::Bounced,
        Status::Complained,
    ];

    /// Left the list: the record has `left_at` and `left_how`.
    pub fn has_left(self) -> bool {
        !matches!(self, Status::Pending | Status::Active)
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "active" => Status::Active,
            "unsubscribed" => Status::Unsubscribed,
            "bounced" => Status::Bounced,
            "complained" => Status::Complained,
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
    /// `one-click`, `unsubscribe-page`, `operator`, `bounce`, `complaint`.
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
    /// The address complained or was erased: nothing stored, nothing to
    /// send (the web form answers the same as for any other address).
    Suppressed,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportCounts {
    pub added: u64,
    /// Addresses already present: left as they are.
    pub existing: u64,
}
