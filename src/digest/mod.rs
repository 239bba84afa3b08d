//! Digest emails: runs of a `[[digest]]` schedule, planned into the ledger
//! and sent from it.
//!
//! - [`select`]: which articles one subscriber gets.
//! - [`compose`]: the email (templates, list headers, DKIM).
//! - [`schedule`]: ticks in a time zone, catch-up after downtime, the
//!   daemon's loop.
//!
//! A run is planned whole (one delivery row per recipient, in one
//! transaction) before anything is sent; sending then takes deliveries in
//! batches of `mail.batch_size`, marks them `sending`, sends them over the
//! SMTP pool at up to `mail.rate_limit` per second, and settles the batch in
//! one transaction while the next batch is being sent (so at most two
//! batches are `sending`). Temporary failures go back to `pending` with an
//! exponential, jittered delay until `mail.max_attempts`; a 5xx for the
//! recipient is a hard bounce and is not retried.
//!
//! Only one process sends at a time: the sender holds an exclusive lock on
//! `<data_dir>/digest.lock`. Whoever takes the lock first marks deliveries
//! left in `sending` by a dead process `uncertain`, since only a lock
//! holder ever sets `sending`.

pub mod compose;
pub mod schedule;
pub mod select;

use std::fs::File;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::task::JoinSet;

pub use compose::{Composed, Composer, Recipient, RunContext};

use crate::base::clock::Clock;
use crate::base::metrics::{EmailResult, Metrics};
use crate::base::shutdown::ShutdownSignal;
use crate::config::Config;
use crate::content::Article;
use crate::mail::Mailer;
use crate::store::{
    Claimed, DeliveryState, NewDelivery, Outcome, Run, RunStatus, SqliteStore, Status, Trigger,
};

/// The articles digests are made from, newest first.
pub type Articles = Arc<Vec<Arc<Article>>>;

/// Plans and sends digest runs.
pub struct Digests {
    config: Arc<Config>,
    store: SqliteStore,
    mailer: Arc<Mailer>,
    composer: Arc<Composer>,
    metrics: Arc<Metrics>,
    limiter: Arc<RateLimiter>,
    clock: Arc<dyn Clock>,
}

/// How far one call to [`Digests::drain`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub done: bool,
    /// When deliveries waiting for a retry are due.
    pub next_retry: Option<DateTime<Utc>>,
}

/// The exclusive right to send, held as long as the value lives.
pub struct SendLock {
    _file: File,
}

impl SendLock {
    /// Takes `<data_dir>/digest.lock` if no other process holds it.
    pub fn try_acquire(config: &Config) -> anyhow::Result<Option<SendLock>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the folder {}", config.data_dir.display()))?;
        let path = config.data_dir.join("digest.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SendLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

impl Digests {
    pub fn new(
        config: Arc<Config>,
        store: SqliteStore,
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
        }
    }

    pub fn store(&self) -> &SqliteStore {
        &self.store
    }

    pub fn composer(&self) -> &Composer {
        &self.composer
    }

    /// Who would get the digest of `schedule` for `tick`: every active
    /// subscriber of it with at least one article new to them.
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
        let candidates = self.store.digest_candidates(schedule).await?;
        let mut planned = Vec::new();
        for c in candidates {
            let first = c.received_through.is_none();
            let since = c.received_through.unwrap_or(c.confirmed_at);
            let reader = select::Reader {
                since,
                first,
                tags: &c.tags,
            };
            if select::select(articles, digest, tick, reader).is_empty() {
                continue;
            }
            planned.push(NewDelivery {
                subscriber_id: c.id,
                email: c.email,
                since,
                first,
            });
        }
        Ok(planned)
    }

    /// Plans and records the run for `(schedule, tick)`; `None` when that
    /// run exists already.
    pub async fn start_run(
        &self,
        schedule: &str,
        tick: DateTime<Utc>,
        trigger: Trigger,
        articles: &Articles,
    ) -> anyhow::Result<Option<Run>> {
        let planned = self.plan(schedule, tick, articles).await?;
        let run = self
            .store
            .create_run(schedule, tick, trigger, self.clock.now(), &planned)
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
    /// when the next retry is due, if any. Call only while holding the
    /// [`SendLock`].
    pub async fn drain_all(
        &self,
        articles: &Articles,
        shutdown: &ShutdownSignal,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
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
        let ctx = Arc::new(self.composer.context(run.clone(), Arc::clone(articles))?);
        let batch_size = self.config.mail.batch_size;
        // Two stages overlap: while one batch is being sent, the outcomes
        // of the previous one are written to the ledger. At most two
        // batches are therefore `sending` at any moment.
        let mut unsettled: Option<Vec<(i64, Outcome)>> = None;
        loop {
            if shutdown.is_triggered() {
                break;
            }
            let t = std::time::Instant::now();
            let batch = self
                .store
                .claim(run.id, self.clock.now(), batch_size)
                .await?;
            if batch.is_empty() {
                break;
            }
            let size = batch.len();
            let previous = unsettled.take();
            let (outcomes, settled) = tokio::join!(
                self.send_batch(&ctx, batch, shutdown),
                self.settle(run, previous)
            );
            settled?;
            tracing::debug!(
                run = run.id,
                size,
                ms = t.elapsed().as_secs_f64() * 1e3,
                "digest batch sent"
            );
            unsettled = Some(outcomes);
        }
        self.settle(run, unsettled).await?;
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
        Ok(Drained {
            done: false,
            next_retry: self.store.next_retry(run.id).await?,
        })
    }

    /// Records a batch's outcomes in the ledger (in one transaction).
    async fn settle(&self, run: &Run, outcomes: Option<Vec<(i64, Outcome)>>) -> anyhow::Result<()> {
        let Some(outcomes) = outcomes else {
            return Ok(());
        };
        let settled = self
            .store
            .settle(
                run,
                &outcomes,
                self.clock.now(),
                self.config.mail.bounce_limit,
            )
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
        ctx: &Arc<RunContext>,
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
                // uncertain at the next start, like a crash.
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
        self.store.run_status(run).await
    }
}

async fn deliver(
    ctx: &RunContext,
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
    let composed = match composer.compose(ctx, to, clock.now()) {
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

/// Exponential backoff with jitter between attempts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &Config) -> RetryPolicy {
        RetryPolicy {
            max_attempts: config.mail.max_attempts,
            base: config.mail.retry_base.0,
            max: config.mail.retry_max.0,
        }
    }

    /// The wait after attempt `attempt` (1-based) failed: `base * 2^(n-1)`
    /// capped at `max`, then a random point in its upper half, so that
    /// retries of one failed batch do not arrive together.
    pub fn delay(&self, attempt: u32) -> chrono::Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let jittered = exp.mul_f64(rand::thread_rng().gen_range(0.5..=1.0));
        chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::MAX)
    }
}

/// At most `rate` sends per second, spread evenly (no bursts).
pub struct RateLimiter {
    interval: Option<Duration>,
    next: Mutex<Option<tokio::time::Instant>>,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> RateLimiter {
        let interval = (per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / per_second));
        RateLimiter {
            interval,
            next: Mutex::new(None),
        }
    }

    pub async fn wait(&self) {
        let Some(interval) = self.interval else {
            return;
        };
        let slot = {
            let mut next = self.next.lock().expect("rate limiter lock");
            let now = tokio::time::Instant::now();
            let slot = next.map_or(now, |n| n.max(now));
            *next = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        for _ in 0..50 {
            let d1 = p.delay(1).num_milliseconds();
            assert!((5_000..=10_000).contains(&d1), "{d1}");
            let d3 = p.delay(3).num_milliseconds();
            assert!((20_000..=40_000).contains(&d3), "{d3}");
            let d9 = p.delay(9).num_milliseconds();
            assert!((30_000..=60_000).contains(&d9), "{d9}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_limiter_spaces_sends_evenly() {
        let limiter = RateLimiter::new(10.0);
        let start = tokio::time::Instant::now();
        for _ in 0..21 {
            limiter.wait().await;
        }
        // 21 sends at 10 per second: the last one 2 s after the first.
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let unlimited = RateLimiter::new(0.0);
        let start = tokio::time::Instant::now();
        for _ in 0..1000 {
            unlimited.wait().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
