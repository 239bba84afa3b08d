//! `herald db copy`: every table of one store into another, page by page,
//! ids kept (signed links and log entries name subscriber ids), so that a
//! list moves from SQLite to PostgreSQL (or back) with its consent log,
//! ledger and shared state.

use chrono::{DateTime, FixedOffset, Utc};

use super::{Store, StoreError, StoreResult};

/// Rows per page: small enough for flat memory, large enough that round
/// trips do not dominate.
const PAGE: usize = 2_000;

/// The parts of a store, in the order they are copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Subscribers,
    ConsentLog,
    Schedules,
    Runs,
    Deliveries,
    Cursors,
    FirstSeen,
    Undated,
    State,
    /// Provider events and reports applied (so that none applies twice).
    Feedback,
    /// Hashes of erased addresses.
    Suppressions,
    /// The messages of announcement runs.
    Announcements,
    /// The pages of the web archive.
    Archive,
}

impl Part {
    pub const ALL: [Part; 13] = [
        Part::Subscribers,
        Part::ConsentLog,
        Part::Schedules,
        Part::Runs,
        Part::Deliveries,
        Part::Cursors,
        Part::FirstSeen,
        Part::Undated,
        Part::State,
        Part::Feedback,
        Part::Suppressions,
        Part::Announcements,
        Part::Archive,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Part::Subscribers => "subscribers",
            Part::ConsentLog => "consent log",
            Part::Schedules => "digest schedules",
            Part::Runs => "digest runs",
            Part::Deliveries => "digest deliveries",
            Part::Cursors => "digest cursors",
            Part::FirstSeen => "first-seen articles",
            Part::Undated => "dates of undated articles",
            Part::State => "shared state",
            Part::Feedback => "bounce and complaint events",
            Part::Suppressions => "suppressed (erased) addresses",
            Part::Announcements => "announcements",
            Part::Archive => "archive pages",
        }
    }
}

/// A row's place in its part: integer keys first, then a text key.
pub type PageKey = (i64, i64, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberRow {
    pub id: i64,
    pub email: String,
    pub email_key: String,
    pub name: Option<String>,
    pub status: String,
    pub requested_at: DateTime<Utc>,
    pub requested_ip: Option<String>,
    pub source: String,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub consent_note: Option<String>,
    pub left_at: Option<DateTime<Utc>>,
    pub left_how: Option<String>,
    pub confirmation_sent_at: Option<DateTime<Utc>>,
    pub hard_bounces: i64,
    pub schedules: Vec<String>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub id: i64,
    pub subscriber_id: Option<i64>,
    pub email_key: String,
    pub event: String,
    pub at: DateTime<Utc>,
    pub ip: Option<String>,
    pub source: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: i64,
    pub schedule: String,
    pub tick: DateTime<Utc>,
    pub horizon: Option<DateTime<Utc>>,
    pub trigger: String,
    pub nonce: String,
    pub created_at: DateTime<Utc>,
    pub done: bool,
    pub finished_at: Option<DateTime<Utc>>,
    pub archive_slug: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub run_id: i64,
    pub subscriber_id: i64,
    pub email: String,
    pub since: DateTime<Utc>,
    pub first: bool,
    pub state: String,
    pub attempts: i64,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub reply: Option<String>,
    pub article_count: Option<i64>,
    pub updated_at: DateTime<Utc>,
    pub claimed_by: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorRow {
    pub subscriber_id: i64,
    pub schedule: String,
    pub through: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRow {
    pub article_id: String,
    pub url: String,
    pub slug: String,
    pub first_seen: DateTime<Utc>,
}

/// One page of one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rows {
    Subscribers(Vec<SubscriberRow>),
    ConsentLog(Vec<ConsentRow>),
    /// `(name, armed_at)`.
    Schedules(Vec<(String, DateTime<Utc>)>),
    Runs(Vec<RunRow>),
    Deliveries(Vec<DeliveryRow>),
    Cursors(Vec<CursorRow>),
    FirstSeen(Vec<SeenRow>),
    /// `(source path, date)`.
    Undated(Vec<(String, DateTime<FixedOffset>)>),
    /// `(key, value)`.
    State(Vec<(String, String)>),
    /// `(source, event id, when)`.
    Feedback(Vec<(String, String, DateTime<Utc>)>),
    /// `(hash, reason, when)`.
    Suppressions(Vec<(String, String, DateTime<Utc>)>),
    /// `(run id, message)`.
    Announcements(Vec<(i64, super::Announcement)>),
    Archive(Vec<super::Issue>),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::Subscribers(r) => r.len(),
            Rows::ConsentLog(r) => r.len(),
            Rows::Schedules(r) => r.len(),
            Rows::Runs(r) => r.len(),
            Rows::Deliveries(r) => r.len(),
            Rows::Cursors(r) => r.len(),
            Rows::FirstSeen(r) => r.len(),
            Rows::Undated(r) => r.len(),
            Rows::State(r) => r.len(),
            Rows::Feedback(r) => r.len(),
            Rows::Suppressions(r) => r.len(),
            Rows::Announcements(r) => r.len(),
            Rows::Archive(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The key of the last row: where the next page starts.
    pub fn last_key(&self) -> Option<PageKey> {
        let text = |s: &String| (0, 0, s.clone());
        Some(match self {
            Rows::Subscribers(r) => (r.last()?.id, 0, String::new()),
            Rows::ConsentLog(r) => (r.last()?.id, 0, String::new()),
            Rows::Schedules(r) => text(&r.last()?.0),
            Rows::Runs(r) => (r.last()?.id, 0, String::new()),
            Rows::Deliveries(r) => {
                let d = r.last()?;
                (d.run_id, d.subscriber_id, String::new())
            }
            Rows::Cursors(r) => {
                let c = r.last()?;
                (c.subscriber_id, 0, c.schedule.clone())
            }
            Rows::FirstSeen(r) => text(&r.last()?.article_id),
            Rows::Undated(r) => text(&r.last()?.0),
            Rows::State(r) => text(&r.last()?.0),
            Rows::Feedback(r) => {
                let f = r.last()?;
                (0, 0, feedback_key(&f.0, &f.1))
            }
            Rows::Suppressions(r) => text(&r.last()?.0),
            Rows::Announcements(r) => (r.last()?.0, 0, String::new()),
            Rows::Archive(r) => (r.last()?.run_id, 0, String::new()),
        })
    }
}

/// The page key of a feedback event: source and event id, in one text that
/// sorts as the pair does (a source has no control characters).
pub fn feedback_key(source: &str, event_id: &str) -> String {
    format!("{source}\u{1}{event_id}")
}

/// Copies every part of `from` into `to`, which must be empty; calls
/// `progress` after each page with the part and the rows copied of it so
/// far. Returns the rows copied per part.
pub async fn copy(
    from: &dyn Store,
    to: &dyn Store,
    mut progress: impl FnMut(Part, u64),
) -> StoreResult<Vec<(Part, u64)>> {
    if !to.is_empty().await? {
        return Err(StoreError::Conflict(format!(
            "{} holds subscribers, consent log entries or digest runs already; copy into an empty database",
            to.describe()
        )));
    }
    let mut counts = Vec::new();
    for part in Part::ALL {
        let mut after = None;
        let mut copied = 0u64;
        loop {
            let rows = from.export(part, after.clone(), PAGE).await?;
            if rows.is_empty() {
                break;
            }
            to.import_rows(&rows).await?;
            copied += rows.len() as u64;
            progress(part, copied);
            after = rows.last_key();
        }
        counts.push((part, copied));
    }
    to.finish_import().await?;
    Ok(counts)
}
