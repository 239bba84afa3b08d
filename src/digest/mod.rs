//! Digest emails: runs of a `[[digest]]` schedule, planned into the ledger
//! and sent from it.
//!
//! - [`select`]: which articles one subscriber gets.
//! - [`published`]: the articles with the time herald first published each.
//! - [`compose`]: the email (templates, list headers, DKIM).
//! - [`schedule`]: ticks in a time zone, catch-up after downtime, the
//!   daemon's loop.
//! - [`pace`]: retry backoff and the (shared) send rate.
//! - [`announce`]: one-off announcements, sent as runs of the ledger.
//! - `archive`: each run's page in the web archive.
//!
//! A run is planned whole (one delivery row per recipient, in one
//! transaction) before anything is sent; candidates are read and
//! deliveries written a page at a time inside that transaction, so
//! planning holds one page at a time. Sending ([`send`]) then claims
//! deliveries in batches of `mail.batch_size` (`sending`, leased to this
//! process for `mail.claim_lease` and renewed while it works), composes
//! each ([`variant`]: one render per distinct digest of the run), sends
//! them over the SMTP pool at up to `mail.rate_limit` per second, and
//! settles each batch in one transaction while the next is being sent (a
//! process holds at most [`BATCHES_IN_HAND`] batches). Temporary
//! failures go back to `pending` with an exponential, jittered delay until
//! `mail.max_attempts`; a 5xx for the recipient is a hard bounce.
//!
//! Who may send: with SQLite one process at a time, the holder of an
//! exclusive lock on `<data_dir>/digest.lock`, which marks deliveries left
//! `sending` by a dead process `uncertain` as it takes the lock. With
//! PostgreSQL every replica sends: claims skip rows another replica holds,
//! and only rows whose lease ran out while `sending` become `uncertain`.

pub mod announce;
mod archive;
pub mod compose;
mod lock;
pub mod pace;
pub mod published;
pub mod schedule;
pub mod select;
mod send;
mod send_thread;
mod variant;

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};

pub use announce::AnnounceContext;
pub use compose::{Composed, Composer, Recipient, RunContext, WebCopy};
use lock::sender_name;
pub use lock::{SendLock, SendRight};
pub use pace::{RateLimiter, RetryPolicy};
pub use published::Published;
pub use send::BATCHES_IN_HAND;
pub use variant::Prepared;

use crate::base::clock::Clock;
use crate::base::metrics::Metrics;
use crate::config::Config;
use crate::config::DigestConfig;
use crate::mail::Mailer;
use crate::store::{
    db_time, Backend, Candidate, NewDelivery, NewRun, Run, RunStatus, Store, Trigger, PLAN_PAGE,
};

/// The articles digests are made from, with their first-seen times.
pub type Articles = Arc<Published>;

/// Plans and sends digest runs.
pub struct Digests {
    config: Arc<Config>,
    store: Arc<dyn Store>,
    mailer: Arc<Mailer>,
    composer: Arc<Composer>,
    metrics: Arc<Metrics>,
    limiter: Arc<RateLimiter>,
    clock: Arc<dyn Clock>,
    /// This process, as `claimed_by` names it in the ledger.
    sender: String,
}

/// What a run sends.
pub enum Content {
    Digest(Box<RunContext>),
    Announcement(Box<AnnounceContext>),
}

/// How far one call to [`Digests::drain`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub done: bool,
    /// When deliveries waiting for a retry are due.
    pub next_retry: Option<DateTime<Utc>>,
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Digests {
    pub fn new(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        mailer: Arc<Mailer>,
        composer: Arc<Composer>,
        metrics: Arc<Metrics>,
        clock: Arc<dyn Clock>,
    ) -> Digests {
        let limiter = Arc::new(RateLimiter::new(config.mail.rate_limit));
        Digests {
            config,
            store,
            mailer,
            composer,
            metrics,
            limiter,
            clock,
            sender: sender_name(),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn composer(&self) -> &Composer {
        &self.composer
    }

    /// This process's name in `claimed_by`.
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// Takes the right to send if it can be had now. With SQLite that is
    /// the send lock, and taking it marks what a dead sender left in
    /// `sending` uncertain (only a lock holder ever sets `sending`).
    pub async fn acquire(&self) -> anyhow::Result<Option<SendRight>> {
        if self.store.backend() == Backend::Postgres {
            return Ok(Some(SendRight::Shared));
        }
        let Some(lock) = SendLock::try_acquire(&self.config)? else {
            return Ok(None);
        };
        let n = self
            .store
            .resolve_interrupted(self.clock.now())
            .await
            .context("cannot check the digest ledger")?;
        if n > 0 {
            tracing::warn!(
                "{n} digest deliveries were in flight when herald last stopped; they are marked uncertain (see `herald digest status`, resend with `herald digest retry --uncertain RUN`)"
            );
        }
        Ok(Some(SendRight::Exclusive(lock)))
    }

    /// The run's horizon: articles first seen by then are in it. The
    /// earlier of the tick and the moment `articles` was read, so that an
    /// article another process saw after that waits for the next run
    /// instead of falling between two.
    fn horizon(tick: DateTime<Utc>, articles: &Published) -> DateTime<Utc> {
        db_time(tick.min(articles.as_of))
    }

    /// Who would get the digest of `schedule` for `tick`: every active
    /// subscriber of it with at least one article new to them. For
    /// `--dry-run`: the list is held whole (planning a run never does).
    pub async fn plan(
        &self,
        schedule: &str,
        tick: DateTime<Utc>,
        articles: &Articles,
    ) -> anyhow::Result<Vec<NewDelivery>> {
        let digest = self.digest_config(schedule)?;
        let horizon = Self::horizon(tick, articles);
        let pick = |c: Candidate| pick(articles, digest, horizon, c);
        let mut planned = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .candidates_page(schedule, after, PLAN_PAGE)
                .await?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id);
            planned.extend(page.into_iter().filter_map(pick));
        }
        Ok(planned)
    }

    fn digest_config(&self, schedule: &str) -> anyhow::Result<&DigestConfig> {
        self.config
            .digest
            .iter()
            .find(|d| d.name == schedule)
            .with_context(|| format!("there is no digest schedule called `{schedule}`"))
    }

    /// Plans and records the run for `(schedule, tick)`; `None` when that
    /// run exists already (another replica planned it). The candidates are
    /// read and the deliveries written a page at a time, in the run's one
    /// transaction: memory does not grow with the list.
    pub async fn start_run(
        &self,
        schedule: &str,
        tick: DateTime<Utc>,
        trigger: Trigger,
        articles: &Articles,
    ) -> anyhow::Result<Option<Run>> {
        let tick = db_time(tick);
        if self.store.run_exists(schedule, tick).await? {
            tracing::debug!(schedule, %tick, "digest run exists already");
            return Ok(None);
        }
        let digest = self.digest_config(schedule)?;
        let horizon = Self::horizon(tick, articles);
        let started = std::time::Instant::now();
        let new = NewRun {
            schedule,
            tick,
            horizon,
            trigger,
            now: self.clock.now(),
            deliveries: &[],
        };
        let planned = self
            .store
            .plan_run(new, &|c| pick(articles, digest, horizon, c))
            .await?;
        match &planned {
            Some((r, recipients)) => tracing::info!(
                run = r.id,
                schedule,
                %tick,
                trigger = trigger.as_str(),
                recipients,
                seconds = started.elapsed().as_secs_f64(),
                "digest run planned"
            ),
            None => tracing::debug!(schedule, %tick, "digest run exists already"),
        }
        Ok(planned.map(|(run, _)| run))
    }

    /// What `run` sends: a digest of `articles`, or an announcement's
    /// message from the store; with its archive slug.
    async fn content(&self, run: &Run, articles: &Articles) -> anyhow::Result<Content> {
        if run.is_announcement() {
            let message = self
                .store
                .announcement(run.id)
                .await?
                .with_context(|| format!("run {} has no announcement in the store", run.id))?;
            let archived = message.archive;
            let mut ctx = self.composer.announcement_context(run.clone(), message);
            if archived {
                let date = run
                    .tick
                    .with_timezone(&self.config.site.timezone.0)
                    .format("%Y-%m-%d")
                    .to_string();
                ctx.archive = Some(self.store.assign_archive_slug(run.id, &date).await?);
            }
            return Ok(Content::Announcement(Box::new(ctx)));
        }
        let mut ctx = self.composer.context(run.clone(), Arc::clone(articles))?;
        let slug = self.archive_slug(run).await?;
        self.composer.set_archive(&mut ctx, slug);
        Ok(Content::Digest(Box::new(ctx)))
    }

    /// Counts by state and problems of `run`.
    pub async fn status(&self, run: i64) -> anyhow::Result<RunStatus> {
        Ok(self.store.run_status(run).await?)
    }
}

/// A candidate's delivery if they have something new.
fn pick(
    articles: &Published,
    digest: &DigestConfig,
    horizon: DateTime<Utc>,
    c: Candidate,
) -> Option<NewDelivery> {
    let first = c.received_through.is_none();
    let since = c.received_through.unwrap_or(c.confirmed_at);
    let reader = select::Reader {
        since,
        first,
        tags: &c.tags,
    };
    if select::select(articles, digest, horizon, reader).is_empty() {
        return None;
    }
    Some(NewDelivery {
        subscriber_id: c.id,
        email: c.email,
        since,
        first,
    })
}
