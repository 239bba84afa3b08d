//! The storage seam: what herald asks of a database, in four traits, and
//! [`Store`], all of them together. The digest engine, the daemon, the
//! command line and double opt-in hold an `Arc<dyn Store>` and never a
//! concrete backend; SQLite (`sqlite/`) and PostgreSQL (`postgres/`) both
//! implement every method, and the storage tests run against both.
//!
//! - [`Subscribers`]: subscribers and the append-only consent log;
//! - [`Ledger`]: digest runs, deliveries, claims with leases, cursors;
//! - [`SharedState`]: the small state replicas must agree on (signing
//!   secret, dates of undated articles, first-seen times, the shared send
//!   rate);
//! - [`Transfer`]: whole tables out and in, for `herald db copy`;
//! - [`super::Deliverability`]: late bounces and complaints, erasure, the
//!   expiry of client IPs;
//! - [`super::Newsletter`]: announcements and the web archive.

use chrono::{DateTime, FixedOffset, Utc};

use super::copy::{PageKey, Part, Rows};
use super::ledger::{Candidate, Claimed, NewRun, Outcome, Pick, Run, RunStatus, Settled};
use super::{
    ConsentEntry, DeliveryState, ImportCounts, ListFilter, NewSubscription, StoreResult,
    SubscribeOutcome, Subscriber, SubscriberEmail,
};

/// Which database is behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One file on one machine: one process sends at a time (the send
    /// lock in the data directory), state may live beside the file.
    Sqlite,
    /// Shared by any number of replicas: claims with leases, shared state
    /// in the database.
    Postgres,
}

#[async_trait::async_trait]
pub trait Subscribers: Send + Sync {
    /// Records a subscription request with its consent data. An address
    /// already pending gets its request updated; one that had left or
    /// bounced becomes pending again (a new consent), keeping the history.
    async fn subscribe(&self, req: NewSubscription) -> StoreResult<SubscribeOutcome>;

    /// Notes that a confirmation email went out at `at`.
    async fn confirmation_sent(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()>;

    /// Pending -> active. `None` when there is no such subscriber or they
    /// have left (already active is `Some`, unchanged).
    async fn confirm(&self, id: i64, at: DateTime<Utc>) -> StoreResult<Option<Subscriber>>;

    /// Active or pending -> unsubscribed (`how = "bounce"`: bounced),
    /// recording when and how. `false` when there is no such subscriber;
    /// leaving twice is fine (logged, nothing changes).
    async fn unsubscribe(&self, id: i64, at: DateTime<Utc>, how: &str) -> StoreResult<bool>;

    /// Replaces schedules and tags; `false` when there is no such subscriber.
    async fn set_preferences(
        &self,
        id: i64,
        schedules: &[String],
        tags: &[String],
    ) -> StoreResult<bool>;

    async fn get(&self, id: i64) -> StoreResult<Option<Subscriber>>;

    async fn find(&self, email: &SubscriberEmail) -> StoreResult<Option<Subscriber>>;

    /// Ordered by id.
    async fn list(&self, filter: &ListFilter) -> StoreResult<Vec<Subscriber>>;

    /// Removes pending sign-ups requested, and last sent a confirmation,
    /// before `before`, keeping each attempt in the consent log. Returns
    /// how many.
    async fn purge_pending(&self, before: DateTime<Utc>) -> StoreResult<u64>;

    /// Adds many subscriptions in one transaction (CSV import): all of
    /// them or, on error, none. Addresses present already are left alone.
    async fn import(&self, rows: Vec<NewSubscription>) -> StoreResult<ImportCounts>;

    /// Puts back subscribers as an export described them (status and
    /// consent times), in one transaction, each with a `restore` entry in
    /// the consent log. Addresses present already are left alone.
    async fn restore(&self, rows: Vec<Subscriber>) -> StoreResult<ImportCounts>;

    /// The consent history of an address, oldest first, purged sign-ups
    /// included.
    async fn consent_log(&self, email: &SubscriberEmail) -> StoreResult<Vec<ConsentEntry>>;
}

/// A claim on deliveries: who takes them and until when.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// The replica (process) taking them; written to `claimed_by`.
    pub by: &'a str,
    pub now: DateTime<Utc>,
    /// Past this, a delivery still `sending` counts as abandoned.
    pub lease_until: DateTime<Utc>,
    pub limit: usize,
}

#[async_trait::async_trait]
pub trait Ledger: Send + Sync {
    /// Records that `schedule` runs from `now` on, unless it already did;
    /// returns the first such time (shared by every replica).
    async fn arm_schedule(&self, schedule: &str, now: DateTime<Utc>) -> StoreResult<DateTime<Utc>>;

    /// The latest tick a scheduled (or caught-up) run exists for.
    async fn last_scheduled_tick(&self, schedule: &str) -> StoreResult<Option<DateTime<Utc>>>;

    /// One page of the active subscribers of `schedule`, by id, after
    /// `after` (keyset paging: memory stays flat however long the list).
    async fn candidates_page(
        &self,
        schedule: &str,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<Candidate>>;

    /// Whether a run exists for `(schedule, tick)`.
    async fn run_exists(&self, schedule: &str, tick: DateTime<Utc>) -> StoreResult<bool>;

    /// Creates the run with all its deliveries in one transaction. `None`
    /// when a run for that `(schedule, tick)` exists (whoever made it: of
    /// several replicas exactly one plans each tick).
    async fn create_run(&self, new: NewRun<'_>) -> StoreResult<Option<Run>>;

    /// Creates the run as [`Ledger::create_run`] does, with deliveries
    /// chosen by `pick` among the active subscribers of `new.schedule`,
    /// read page by page inside the run's transaction (memory stays flat
    /// however long the list). Returns the run and how many deliveries it
    /// has; `None` when the run exists already.
    async fn plan_run(&self, new: NewRun<'_>, pick: Pick<'_>) -> StoreResult<Option<(Run, u64)>>;

    async fn run(&self, id: i64) -> StoreResult<Option<Run>>;

    /// The newest runs first.
    async fn runs(&self, limit: u32) -> StoreResult<Vec<Run>>;

    /// Runs with deliveries still to send, oldest first.
    async fn unfinished_runs(&self) -> StoreResult<Vec<Run>>;

    /// Every delivery still `sending` becomes `uncertain`. Only for a
    /// sender that knows nobody else sends (it holds the SQLite send lock).
    async fn resolve_interrupted(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Deliveries whose lease expired while `sending` (their replica died
    /// or stalled) become `uncertain`. Returns how many.
    async fn expire_leases(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    /// Takes up to `claim.limit` due pending deliveries of `run` (`sending`,
    /// attempts + 1, leased to `claim.by`), skipping rows another replica
    /// is taking at the same moment; with each subscriber as they are now.
    async fn claim(&self, run: i64, claim: Claim<'_>) -> StoreResult<Vec<Claimed>>;

    /// Extends the lease of every delivery `by` still has `sending`.
    async fn renew_leases(&self, by: &str, until: DateTime<Utc>) -> StoreResult<u64>;

    /// Records a batch's outcomes in one transaction: delivery states
    /// (only rows still claimed by `by`), cursors, hard bounces.
    async fn settle(
        &self,
        run: &Run,
        by: &str,
        outcomes: &[(i64, Outcome)],
        now: DateTime<Utc>,
        bounce_limit: u32,
    ) -> StoreResult<Settled>;

    /// When the earliest delivery of `run` waiting for a retry is due.
    async fn next_retry(&self, run: i64) -> StoreResult<Option<DateTime<Utc>>>;

    /// Marks `run` done when nothing in it is pending or being sent.
    async fn finish_if_done(&self, run: i64, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Counts by state and every delivery that has not gone out.
    async fn run_status(&self, run: i64) -> StoreResult<RunStatus>;

    /// Puts the deliveries of `run` in `state` (failed or uncertain) back
    /// to pending with fresh attempts (subscribers still active only) and
    /// reopens the run. [`super::StoreError::NotFound`] for an unknown run.
    async fn requeue(&self, run: i64, state: DeliveryState, now: DateTime<Utc>)
        -> StoreResult<u64>;

    /// Reserves `count` send slots `interval` apart from the one rate all
    /// replicas share; returns when the first slot is.
    async fn reserve_sends(
        &self,
        count: u32,
        interval: std::time::Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<DateTime<Utc>>;
}

/// An article as the first-seen record identifies it.
#[derive(Debug, Clone)]
pub struct SeenArticle {
    /// The article's id (front matter `id`, else its permalink).
    pub id: String,
    pub url: String,
    pub slug: String,
    /// Its own date.
    pub published: DateTime<Utc>,
}

#[async_trait::async_trait]
pub trait SharedState: Send + Sync {
    /// Stores `candidate` as the signing secret unless one is stored, and
    /// returns the stored one. `None` from a backend that is not shared
    /// between machines (SQLite: the secret stays in the data directory).
    async fn shared_secret(&self, candidate: &[u8]) -> StoreResult<Option<Vec<u8>>>;

    /// The dates herald gave undated articles, by source path.
    async fn undated_dates(&self) -> StoreResult<Vec<(String, DateTime<FixedOffset>)>>;

    /// Records dates for undated articles unless a replica recorded one
    /// first, and forgets others; returns the stored date of each recorded
    /// path (the first writer's).
    async fn share_undated(
        &self,
        recorded: &[(String, DateTime<FixedOffset>)],
        forgotten: &[String],
    ) -> StoreResult<Vec<(String, DateTime<FixedOffset>)>>;

    /// When herald first published each article, in order: recorded now
    /// for articles never seen (an article whose id, URL or, if it
    /// vanished, slug matches a known one keeps that one's time). The
    /// first call on a site backfills each article with the earlier of its
    /// own date and `now`, so that adopting a site mails no back catalogue.
    async fn first_seen(
        &self,
        articles: &[SeenArticle],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<DateTime<Utc>>>;
}

#[async_trait::async_trait]
pub trait Transfer: Send + Sync {
    /// Whether the database holds no subscribers, consent log or runs.
    async fn is_empty(&self) -> StoreResult<bool>;

    /// Up to `limit` rows of `part` after `after` (the key of the last row
    /// of the previous page; `None` for the first page), in key order.
    async fn export(&self, part: Part, after: Option<PageKey>, limit: usize) -> StoreResult<Rows>;

    /// Writes rows exported from another store, keeping their ids.
    async fn import_rows(&self, rows: &Rows) -> StoreResult<()>;

    /// After the last import: id sequences moved past the copied ids.
    async fn finish_import(&self) -> StoreResult<()>;
}

/// Everything herald keeps, behind one handle.
#[async_trait::async_trait]
pub trait Store:
    Subscribers
    + Ledger
    + SharedState
    + Transfer
    + super::Counts
    + super::Deliverability
    + super::Newsletter
{
    fn backend(&self) -> Backend;

    /// Where the data is, for logs (`SQLite data/herald.sqlite3`,
    /// `PostgreSQL herald@db:5432/herald`); never a password.
    fn describe(&self) -> String;

    /// Closes every connection (on shutdown; dropping also works).
    async fn close(&self);
}
