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
//! transaction) before anything is sent; candidates are read from the
//! store in pages, so planning holds one page of them at a time. Sending
//! then claims deliveries in batches of `mail.batch_size` (`sending`,
//! leased to this process for `mail.claim_lease` and renewed while it
//! works), sends them over the SMTP pool at up to `mail.rate_limit` per
//! second, and settles the batch in one transaction while the next batch
//! is being sent (so a process holds at most two batches). Temporary
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

use std::sync::Arc;

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

pub use announce::AnnounceContext;
pub use compose::{Composed, Composer, Recipient, RunContext, WebCopy};
use lock::sender_name;
pub use lock::{SendLock, SendRight};
pub use pace::{RateLimiter, RetryPolicy};
pub use published::Published;

use crate::base::clock::Clock;
use crate::base::metrics::{EmailResult, Metrics};
use crate::base::shutdown::ShutdownSignal;
use crate::config::Config;
use crate::mail::Mailer;
use crate::store::{
    db_time, Backend, Claim, Claimed, DeliveryState, NewDelivery, NewRun, Outcome, Run, RunStatus,
    Status, Store, StoreError, Trigger,
};

/// The articles digests are made from, with their first-seen times.
pub type Articles = Arc<Published>;

/// Candidates read from the store at a time while planning.
const PLAN_PAGE: usize = 2_000;

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
    /// subscriber of it with at least one article new to them. Reads the
    /// candidates page by page.
    pub async fn plan(
        &self,
        schedule: &str,
        tick: DateTime<Utc>,
        articles: &Articles,
    ) -> anyhow::Result<Vec<NewDelivery>> {
        let digest = self
            .config
            .digest
            .iter()
            .find(|d| d.name == schedule)
            .with_context(|| format!("there is no digest schedule called `{schedule}`"))?;
        let horizon = Self::horizon(tick, articles);
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
            for c in page {
                let first = c.received_through.is_none();
                let since = c.received_through.unwrap_or(c.confirmed_at);
                let reader = select::Reader {
                    since,
                    first,
                    tags: &c.tags,
                };
                if select::select(articles, digest, horizon, reader).is_empty() {
                    continue;
                }
                planned.push(NewDelivery {
                    subscriber_id: c.id,
                    email: c.email,
                    since,
                    first,
                });
            }
        }
        Ok(planned)
    }

    /// Plans and records the run for `(schedule, tick)`; `None` when that
    /// run exists already (another replica planned it).
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
        let planned = self.plan(schedule, tick, articles).await?;
        let run = self
            .store
            .create_run(NewRun {
                schedule,
                tick,
                horizon: Self::horizon(tick, articles),
                trigger,
                now: self.clock.now(),
                deliveries: &planned,
            })
            .await?;
        match &run {
            Some(r) => tracing::info!(
                run = r.id,
                schedule,
                %tick,
                trigger = trigger.as_str(),
                recipients = planned.len(),
                "digest run planned"
            ),
            None => tracing::debug!(schedule, %tick, "digest run exists already"),
        }
        Ok(run)
    }

    /// Sends what is due in every unfinished run, oldest first. Returns
    /// when the next retry is due, if any. Call only with a [`SendRight`].
    pub async fn drain_all(
        &self,
        articles: &Articles,
        shutdown: &ShutdownSignal,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let expired = self.store.expire_leases(self.clock.now()).await?;
        if expired > 0 {
            tracing::warn!(
                "{expired} digest deliveries were in flight at a sender that stopped (its lease ran out); they are marked uncertain (see `herald digest status`, resend with `herald digest retry --uncertain RUN`)"
            );
        }
        let mut next: Option<DateTime<Utc>> = None;
        for run in self.store.unfinished_runs().await? {
            if shutdown.is_triggered() {
                break;
            }
            let d = self.drain(&run, articles, shutdown).await?;
            if let Some(t) = d.next_retry {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        }
        Ok(next)
    }

    /// Keeps this process's leases alive while it sends: renewed every
    /// third of `mail.claim_lease`.
    fn renew_leases(&self) -> AbortOnDrop {
        let store = Arc::clone(&self.store);
        let clock = Arc::clone(&self.clock);
        let sender = self.sender.clone();
        let lease = self.config.mail.claim_lease.0;
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = clock.now() + chrono::Duration::from_std(lease).unwrap_or_default();
                if let Err(e) = store.renew_leases(&sender, until).await {
                    tracing::warn!("cannot renew the leases on digest deliveries: {e}");
                }
            }
        }))
    }

    /// Sends every delivery of `run` that is due now, batch by batch, until
    /// none is left or shutdown is asked for (the batch in hand is
    /// finished first). Should the shutdown be abandoned while that batch
    /// is still being sent, the sends not yet answered are dropped and
    /// marked `uncertain`; the others are recorded as usual.
    pub async fn drain(
        &self,
        run: &Run,
        articles: &Articles,
        shutdown: &ShutdownSignal,
    ) -> anyhow::Result<Drained> {
        let ctx = Arc::new(self.content(run, articles).await?);
        let mut archived = false;
        let batch_size = self.config.mail.batch_size;
        let lease = chrono::Duration::from_std(self.config.mail.claim_lease.0).unwrap_or_default();
        let _renewing = self.renew_leases();
        // Two stages overlap: while one batch is being sent, the outcomes
        // of the previous one are written to the ledger. At most two
        // batches are therefore `sending` here at any moment.
        let mut unsettled: Option<Vec<(i64, Outcome)>> = None;
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let t = std::time::Instant::now();
            let now = self.clock.now();
            let claim = Claim {
                by: &self.sender,
                now,
                lease_until: now + lease,
                limit: batch_size,
            };
            let batch = self.store.claim(run.id, claim).await?;
            if batch.is_empty() {
                break;
            }
            let size = batch.len();
            self.reserve_rate(size).await?;
            let previous = unsettled.take();
            let sent_before = previous.as_ref().is_some_and(|o| any_sent(o));
            let (outcomes, settled) = tokio::join!(
                self.send_batch(&ctx, batch, shutdown),
                self.settle(run, previous)
            );
            settled?;
            if sent_before && !archived {
                self.publish_archive(&ctx).await;
                archived = true;
            }
            tracing::debug!(
                run = run.id,
                size,
                ms = t.elapsed().as_secs_f64() * 1e3,
                "digest batch sent"
            );
            unsettled = Some(outcomes);
        }
        let sent_last = unsettled.as_ref().is_some_and(|o| any_sent(o));
        self.settle(run, unsettled).await?;
        if sent_last && !archived {
            self.publish_archive(&ctx).await;
        }
        if shutdown.is_abandoned() {
            // Only the holder of the send lock (this process) sets
            // `sending`: what is still there was cut off just now.
            let cut = self.store.resolve_interrupted(self.clock.now()).await?;
            if cut > 0 {
                tracing::warn!(
                    run = run.id,
                    "{cut} digest deliveries were in flight when the shutdown deadline came; they are marked uncertain (see `herald digest status`, resend with `herald digest retry --uncertain {}`)",
                    run.id
                );
            }
        }
        let now = self.clock.now();
        if self.store.finish_if_done(run.id, now).await? {
            let status = self.store.run_status(run.id).await?;
            let took = (now - run.created_at).to_std().unwrap_or_default();
            self.metrics.observe_digest_run(took);
            tracing::info!(
                run = run.id,
                schedule = %run.schedule,
                sent = status.count(DeliveryState::Sent),
                failed = status.count(DeliveryState::Failed),
                bounced = status.count(DeliveryState::Bounced),
                skipped = status.count(DeliveryState::Skipped),
                uncertain = status.count(DeliveryState::Uncertain),
                seconds = took.as_secs_f64(),
                "digest run finished"
            );
            return Ok(Drained {
                done: true,
                next_retry: None,
            });
        }
        // Another sender may have finished it (replicas, or a run with
        // nobody in it): done is done, whoever marked it.
        if self.store.run(run.id).await?.is_some_and(|r| r.done) {
            return Ok(Drained {
                done: true,
                next_retry: None,
            });
        }
        Ok(Drained {
            done: false,
            next_retry: self.store.next_retry(run.id).await?,
        })
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
        ctx.archive = self.archive_slug(run).await?;
        Ok(Content::Digest(Box::new(ctx)))
    }

    /// With a rate limit and replicas sharing it, reserves this batch's
    /// slots from the shared rate before sending it.
    async fn reserve_rate(&self, count: usize) -> anyhow::Result<()> {
        let Some(interval) = self.limiter.interval() else {
            return Ok(());
        };
        if self.store.backend() != Backend::Postgres {
            return Ok(());
        }
        let now = self.clock.now();
        let start = self
            .store
            .reserve_sends(count as u32, interval, now)
            .await
            .context("reserving send slots from the shared rate")?;
        self.limiter.not_before(start, now);
        Ok(())
    }

    /// Records a batch's outcomes in the ledger (in one transaction).
    async fn settle(&self, run: &Run, outcomes: Option<Vec<(i64, Outcome)>>) -> anyhow::Result<()> {
        let Some(outcomes) = outcomes else {
            return Ok(());
        };
        // A busy database (a lock timeout, a serialization failure) is
        // worth a few more tries: giving up leaves the batch to turn
        // uncertain, sent but unrecorded.
        let settle = || async {
            self.store
                .settle(
                    run,
                    &self.sender,
                    &outcomes,
                    self.clock.now(),
                    self.config.mail.bounce_limit,
                )
                .await
        };
        let settled = settle
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(std::time::Duration::from_millis(50))
                    .with_max_times(6),
            )
            .when(|e: &StoreError| e.is_unavailable())
            .notify(|e, after| tracing::warn!("recording sent digests: {e}; again in {after:?}"))
            .await
            .context("recording sent digests in the ledger")?;
        for id in settled.newly_bounced {
            tracing::warn!(
                subscriber = id,
                "subscriber marked bounced after {} hard bounces; no more mail goes to them",
                self.config.mail.bounce_limit
            );
        }
        Ok(())
    }

    /// Sends a batch concurrently (the pool bounds the connections) and
    /// returns each delivery's outcome; when the shutdown is abandoned,
    /// only those that have one by then (the rest stay `sending`).
    async fn send_batch(
        &self,
        ctx: &Arc<Content>,
        batch: Vec<Claimed>,
        shutdown: &ShutdownSignal,
    ) -> Vec<(i64, Outcome)> {
        let mut tasks = JoinSet::new();
        let policy = RetryPolicy::from_config(&self.config);
        for claimed in batch {
            let ctx = Arc::clone(ctx);
            let composer = Arc::clone(&self.composer);
            let mailer = Arc::clone(&self.mailer);
            let limiter = Arc::clone(&self.limiter);
            let metrics = Arc::clone(&self.metrics);
            let clock = Arc::clone(&self.clock);
            tasks.spawn(async move {
                let id = claimed.subscriber_id;
                let outcome =
                    deliver(&ctx, &composer, &mailer, &limiter, &clock, &policy, claimed).await;
                metrics.count_email(email_result(&outcome));
                (id, outcome)
            });
        }
        let mut outcomes = Vec::with_capacity(tasks.len());
        loop {
            let joined = tokio::select! {
                biased;
                joined = tasks.join_next() => joined,
                () = shutdown.abandoned() => {
                    // Dropping the tasks drops their connections.
                    tasks.abort_all();
                    break;
                }
            };
            match joined {
                None => break,
                Some(Ok(pair)) => outcomes.push(pair),
                // A panic in one delivery: it stays `sending` and becomes
                // uncertain when its lease runs out, like a crash.
                Some(Err(e)) => {
                    if e.is_panic() {
                        self.metrics.panicked("digest");
                    }
                    tracing::error!("a digest delivery task failed: {e}");
                }
            }
        }
        outcomes
    }

    /// Counts by state and problems of `run`.
    pub async fn status(&self, run: i64) -> anyhow::Result<RunStatus> {
        Ok(self.store.run_status(run).await?)
    }
}

async fn deliver(
    ctx: &Content,
    composer: &Composer,
    mailer: &Mailer,
    limiter: &RateLimiter,
    clock: &Arc<dyn Clock>,
    policy: &RetryPolicy,
    c: Claimed,
) -> Outcome {
    if c.status != Some(Status::Active) {
        let now = c.status.map_or("removed", |s| s.as_str());
        return Outcome::Skipped {
            reason: format!("the subscriber is {now}"),
        };
    }
    let to = Recipient {
        id: c.subscriber_id,
        email: &c.email,
        since: c.since,
        first: c.first,
        tags: &c.tags,
    };
    let composed = match ctx {
        Content::Digest(ctx) => composer.compose(ctx, to, clock.now()),
        Content::Announcement(ctx) => composer
            .compose_announcement(ctx, to, clock.now())
            .map(Some),
    };
    let composed = match composed {
        Ok(Some(composed)) => composed,
        Ok(None) => {
            return Outcome::Skipped {
                reason: "nothing new for this subscriber".into(),
            }
        }
        Err(e) => {
            return Outcome::Failed {
                reply: format!("cannot compose the digest: {e:#}"),
            }
        }
    };
    limiter.wait().await;
    match mailer.send(&composed.message).await {
        Ok(()) => Outcome::Sent {
            article_count: composed.article_count,
        },
        Err(e) if e.is_permanent() => Outcome::Bounced {
            reply: e.reply().to_string(),
        },
        // Temporary failures and local trouble (the outbox cannot be
        // written, TLS set-up) are retried: nothing is dropped.
        Err(e) if c.attempts < policy.max_attempts => Outcome::Retry {
            reply: e.reply().to_string(),
            at: clock.now() + policy.delay(c.attempts),
        },
        Err(e) => Outcome::Failed {
            reply: format!("{} (after {} attempts)", e.reply(), c.attempts),
        },
    }
}

/// Whether a batch's outcomes include a message sent.
fn any_sent(outcomes: &[(i64, Outcome)]) -> bool {
    outcomes
        .iter()
        .any(|(_, o)| matches!(o, Outcome::Sent { .. }))
}

/// The `/metrics` label of a delivery attempt's outcome.
fn email_result(outcome: &Outcome) -> EmailResult {
    match outcome {
        Outcome::Sent { .. } => EmailResult::Sent,
        Outcome::Retry { .. } => EmailResult::Retried,
        Outcome::Failed { .. } => EmailResult::Failed,
        Outcome::Bounced { .. } => EmailResult::Bounced,
        Outcome::Skipped { .. } => EmailResult::Skipped,
    }
}
