//! The newsletter around the digest: announcements (one-off messages sent
//! through the ledger like a digest run, their content kept in the store
//! so that any process can send or resend them) and the web archive (one
//! page per run that sent anything, without any subscriber's links).
//!
//! The SQL is in `sqlite/newsletter.rs` and `postgres/newsletter.rs`.

use std::fmt;

use chrono::{DateTime, Utc};

use super::ledger::{Candidate, NewDelivery, Run};
use super::StoreResult;

pub use crate::config::ANNOUNCEMENTS;

/// Who an announcement goes to: active subscribers, all of them or those
/// of one schedule or one tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    All,
    Schedule(String),
    Tag(String),
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Audience::All => f.write_str("all"),
            Audience::Schedule(s) => write!(f, "schedule:{s}"),
            Audience::Tag(t) => write!(f, "tag:{t}"),
        }
    }
}

impl Audience {
    /// `all`, `schedule:NAME` or `tag:NAME` (as [`fmt::Display`] writes it).
    pub fn parse(s: &str) -> Option<Audience> {
        match s.split_once(':') {
            None if s == "all" => Some(Audience::All),
            Some(("schedule", n)) if !n.is_empty() => Some(Audience::Schedule(n.to_string())),
            Some(("tag", t)) if !t.is_empty() => Some(Audience::Tag(t.to_string())),
            _ => None,
        }
    }
}

/// An announcement's message, as every recipient gets it (only the
/// links that manage their subscription differ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub audience: Audience,
    pub subject: String,
    /// The body as HTML (from the Markdown file, links absolute).
    pub html: String,
    /// The body as plain text.
    pub text: String,
    /// Whether it is published in the web archive.
    pub archive: bool,
}

/// An announcements row as both databases return it: `(audience,
/// subject, html, text, archive)`.
pub(super) type AnnouncementRow = (String, String, String, String, bool);

/// The announcement of a row of the `announcements` table.
pub(super) fn stored_announcement(row: AnnouncementRow) -> StoreResult<Announcement> {
    let (audience, subject, html, text, archive) = row;
    Ok(Announcement {
        audience: Audience::parse(&audience).ok_or_else(|| {
            super::StoreError::internal(format!("bad audience `{audience}` in the database"))
        })?,
        subject,
        html,
        text,
        archive,
    })
}

/// An announcement run to create, with its recipients.
#[derive(Debug, Clone)]
pub struct NewAnnouncement<'a> {
    pub message: &'a Announcement,
    pub now: DateTime<Utc>,
    pub deliveries: &'a [NewDelivery],
}

/// One page of the web archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub run_id: i64,
    /// A `[[digest]]` schedule, or [`ANNOUNCEMENTS`].
    pub schedule: String,
    /// `YYYY-MM-DD`, with `-2`, `-3`… for a second run on one day.
    pub slug: String,
    pub subject: String,
    pub published_at: DateTime<Utc>,
    /// The whole page.
    pub html: String,
    /// One line per article (or the announcement's first lines), for the
    /// archive's feed and index.
    pub summary: String,
}

#[async_trait::async_trait]
pub trait Newsletter: Send + Sync {
    /// One page of the active subscribers in `audience`, by id, after
    /// `after`.
    async fn audience_page(
        &self,
        audience: &Audience,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<Vec<Candidate>>;

    /// Creates an announcement run (schedule [`ANNOUNCEMENTS`], trigger
    /// `announcement`) with its message and all its deliveries in one
    /// transaction.
    async fn create_announcement(&self, new: NewAnnouncement<'_>) -> StoreResult<Run>;

    /// The message of announcement run `run`.
    async fn announcement(&self, run: i64) -> StoreResult<Option<Announcement>>;

    /// The archive slug of `run`, given now (`date`, or `date-N` when the
    /// schedule has a page for that date already) unless it has one.
    async fn assign_archive_slug(&self, run: i64, date: &str) -> StoreResult<String>;

    /// The horizon of the run of `schedule` before `run`, if any: what the
    /// archive page of `run` starts after.
    async fn previous_horizon(
        &self,
        schedule: &str,
        run: i64,
    ) -> StoreResult<Option<DateTime<Utc>>>;

    /// Publishes a page unless one is published for its run; `false` when
    /// one was.
    async fn publish_issue(&self, issue: &Issue) -> StoreResult<bool>;

    /// The page at `/archive/<schedule>/<slug>/`.
    async fn issue(&self, schedule: &str, slug: &str) -> StoreResult<Option<Issue>>;

    /// The newest pages (of one schedule, or all), newest first, without
    /// their HTML.
    async fn issues(&self, schedule: Option<&str>, limit: u32) -> StoreResult<Vec<Issue>>;
}

/// `date`, or `date-2`, `date-3`… : the first not in `taken`.
pub(super) fn free_slug(date: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == date) {
        return date.to_string();
    }
    (2..)
        .map(|n| format!("{date}-{n}"))
        .find(|s| !taken.contains(s))
        .expect("some number is free")
}
