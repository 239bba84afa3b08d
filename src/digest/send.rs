//! Sending a run: claiming, composing, sending and recording overlap.
//!
//! Three kinds of work run at once. The claimer takes batches of
//! `mail.batch_size` deliveries from the ledger and queues them; workers
//! (twice as many as SMTP connections, so a composed message waits for
//! each connection) take deliveries one by one, compose them and send
//! them; the recorder settles each batch in one transaction once all its
//! outcomes are in. A process holds at most [`BATCHES_IN_HAND`] batches
//! claimed and not yet recorded: the next batch is claimed as soon as the
//! one before last is recorded, so the queue never runs dry between
//! batches while a crash still leaves at most that many batches uncertain.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::panic::AssertUnwindSafe;

use anyhow::Context;
use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::{
    AbortOnDrop, Articles, Composer, Content, Digests, Drained, RateLimiter, Recipient, RetryPolicy,
};
use crate::base::clock::Clock;
use crate::base::metrics::{EmailResult, Metrics};
use crate::base::shutdown::ShutdownSignal;
use crate::mail::Mailer;
use crate::store::{Backend, Claim, Claimed, DeliveryState, Outcome, Run, Status, StoreError};

/// Batches one process holds claimed and not yet recorded: one being sent
/// while the one before is recorded. A SIGKILL leaves at most this many
/// batches `sending`, to become `uncertain`.
pub const BATCHES_IN_HAND: usize = 2;

/// How often a run being sent is reported in the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A delivery queued for a worker.
struct Job {
    claimed: Claimed,
    batch: Arc<Batch>,
}

/// A claimed batch collecting its outcomes; handed to the recorder, with
/// its place among the batches in hand, when the last one is in.
struct Batch {
    size: usize,
    state: Mutex<BatchState>,
}

struct BatchState {
    outcomes: Vec<(i64, Outcome)>,
    /// Deliveries that ended without an outcome (a panic): they stay
    /// `sending`, to turn uncertain like a crash's.
    lost: usize,
    done: Option<(mpsc::UnboundedSender<Finished>, OwnedSemaphorePermit)>,
}

/// A batch with every outcome in.
struct Finished {
    outcomes: Vec<(i64, Outcome)>,
    _permit: OwnedSemaphorePermit,
}

impl Batch {
    fn end(&self, outcome: Option<(i64, Outcome)>) {
        let mut state = self.state.lock().expect("batch lock");
        match outcome {
            Some(o) => state.outcomes.push(o),
            None => state.lost += 1,
        }
        if state.outcomes.len() + state.lost == self.size {
            if let Some((tx, permit)) = state.done.take() {
                let outcomes = std::mem::take(&mut state.outcomes);
                // The recorder may be gone (it failed): the batch then
                // stays `sending`.
                let _ = tx.send(Finished {
                    outcomes,
                    _permit: permit,
                });
            }
        }
    }
}

/// What a run's sending has done so far, for the progress log.
#[derive(Default)]
struct Progress {
    settled: AtomicU64,
    sent: AtomicU64,
}

/// Everything a worker needs, shared.
struct Worker {
    ctx: Arc<Content>,
    composer: Arc<Composer>,
    mailer: Arc<Mailer>,
    limiter: Arc<RateLimiter>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    /// Set when the recorder failed: queued deliveries are left unsent.
    stop: AtomicBool,
    /// Once the shutdown is abandoned, sends without an answer yet are
    /// dropped and queued deliveries left unsent: they stay `sending`.
    shutdown: ShutdownSignal,
}

impl Digests {
    /// Sends what is due in every unfinished run, oldest first. Returns
    /// when the next retry is due, if any. Call only with a
    /// [`super::SendRight`].
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

    /// Sends every delivery of `run` that is due now until none is left or
    /// shutdown is asked for (the batches in hand are finished first).
    /// Should the shutdown be abandoned while they are still being sent,
    /// the sends not yet answered are dropped and marked `uncertain`; the
    /// others are recorded as usual.
    pub async fn drain(
        &self,
        run: &Run,
        articles: &Articles,
        shutdown: &ShutdownSignal,
    ) -> anyhow::Result<Drained> {
        let worker = Arc::new(Worker {
            ctx: Arc::new(self.content(run, articles).await?),
            composer: Arc::clone(&self.composer),
            mailer: Arc::clone(&self.mailer),
            limiter: Arc::clone(&self.limiter),
            metrics: Arc::clone(&self.metrics),
            clock: Arc::clone(&self.clock),
            policy: RetryPolicy::from_config(&self.config),
            stop: AtomicBool::new(false),
            shutdown: shutdown.clone(),
        });
        let _renewing = self.renew_leases();
        let batch_size = self.config.mail.batch_size.max(1);
        let permits = Arc::new(Semaphore::new(BATCHES_IN_HAND));
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>(batch_size * BATCHES_IN_HAND);
        let jobs_rx = Arc::new(tokio::sync::Mutex::new(jobs_rx));
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Finished>();
        let progress = Arc::new(Progress::default());

        let mut workers = JoinSet::new();
        let thread = super::send_thread::handle();
        for _ in 0..self.mailer.connections() * 2 {
            let worker = Arc::clone(&worker);
            let jobs = Arc::clone(&jobs_rx);
            let progress = Arc::clone(&progress);
            workers.spawn_on(async move { work(worker, jobs, progress).await }, &thread);
        }
        let _reporting = self.report_progress(run, &progress);
        let claimer = self.claim_batches(run, shutdown, &permits, jobs_tx, done_tx);
        let recorder = self.record(run, done_rx, &permits, &worker, &progress);
        let (claimed, recorded) = tokio::join!(claimer, recorder);
        while let Some(joined) = workers.join_next().await {
            if let Err(e) = joined {
                tracing::error!("a digest worker failed: {e}");
            }
        }
        recorded?;
        claimed?;
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
        self.finish(run).await
    }

    /// Claims batches while there are any and queues their deliveries,
    /// keeping at most [`BATCHES_IN_HAND`] unrecorded.
    async fn claim_batches(
        &self,
        run: &Run,
        shutdown: &ShutdownSignal,
        permits: &Arc<Semaphore>,
        jobs: mpsc::Sender<Job>,
        done: mpsc::UnboundedSender<Finished>,
    ) -> anyhow::Result<()> {
        let lease = chrono::Duration::from_std(self.config.mail.claim_lease.0).unwrap_or_default();
        let mut started = false;
        loop {
            if shutdown.is_triggered() {
                return Ok(());
            }
            // Closed when the recorder failed.
            let Ok(permit) = Arc::clone(permits).acquire_owned().await else {
                return Ok(());
            };
            let now = self.clock.now();
            let claim = Claim {
                by: &self.sender,
                now,
                lease_until: now + lease,
                limit: self.config.mail.batch_size.max(1),
            };
            let batch = self.store.claim(run.id, claim).await?;
            if batch.is_empty() {
                return Ok(());
            }
            if !started {
                started = true;
                let status = self.store.run_status(run.id).await?;
                let open =
                    status.count(DeliveryState::Pending) + status.count(DeliveryState::Sending);
                self.metrics
                    .digest_run_started(status.total(), status.total() - open);
                tracing::info!(
                    run = run.id,
                    schedule = %run.schedule,
                    deliveries = status.total(),
                    to_send = open,
                    "digest run sending"
                );
            }
            self.reserve_rate(batch.len()).await?;
            let shared = Arc::new(Batch {
                size: batch.len(),
                state: Mutex::new(BatchState {
                    outcomes: Vec::with_capacity(batch.len()),
                    lost: 0,
                    done: Some((done.clone(), permit)),
                }),
            });
            for claimed in batch {
                let job = Job {
                    claimed,
                    batch: Arc::clone(&shared),
                };
                if jobs.send(job).await.is_err() {
                    anyhow::bail!("the digest workers stopped");
                }
            }
        }
    }

    /// Settles each batch as its last outcome comes in; publishes the
    /// run's archive page once a recorded batch has sent something.
    async fn record(
        &self,
        run: &Run,
        mut done: mpsc::UnboundedReceiver<Finished>,
        permits: &Semaphore,
        worker: &Worker,
        progress: &Progress,
    ) -> anyhow::Result<()> {
        let mut archived = false;
        while let Some(finished) = done.recv().await {
            let count = finished.outcomes.len() as u64;
            let sent = finished
                .outcomes
                .iter()
                .any(|(_, o)| matches!(o, Outcome::Sent { .. }));
            if let Err(e) = self.settle(run, finished.outcomes).await {
                // Nothing more is claimed or sent: what is in hand stays
                // `sending`, as after a crash.
                worker.stop.store(true, Relaxed);
                permits.close();
                return Err(e);
            }
            if sent && !archived {
                archived = true;
                self.publish_archive(&worker.ctx).await;
            }
            progress.settled.fetch_add(count, Relaxed);
            self.metrics.digest_batch_settled(count);
        }
        Ok(())
    }

    /// Logs the run's progress every [`PROGRESS_EVERY`] while it sends.
    fn report_progress(&self, run: &Run, progress: &Arc<Progress>) -> AbortOnDrop {
        let progress = Arc::clone(progress);
        let metrics = Arc::clone(&self.metrics);
        let run_id = run.id;
        AbortOnDrop(tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(PROGRESS_EVERY).await;
                let sent = progress.sent.load(Relaxed);
                let rate = (sent - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), sent);
                let (total, settled) = metrics.digest_progress();
                tracing::info!(
                    run = run_id,
                    sent,
                    settled,
                    total,
                    per_second = rate.round(),
                    "digest run: {settled} of {total} deliveries done, {} per second",
                    rate.round()
                );
            }
        }))
    }

    /// Marks the run done when nothing is left; when not, says when the
    /// next retry is due.
    async fn finish(&self, run: &Run) -> anyhow::Result<Drained> {
        let now = self.clock.now();
        if self.store.finish_if_done(run.id, now).await? {
            let status = self.store.run_status(run.id).await?;
            let took = (now - run.created_at).to_std().unwrap_or_default();
            self.metrics.observe_digest_run(took);
            self.metrics.digest_run_started(0, 0);
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
    async fn settle(&self, run: &Run, outcomes: Vec<(i64, Outcome)>) -> anyhow::Result<()> {
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
                    .with_min_delay(Duration::from_millis(50))
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
}

/// A worker: takes queued deliveries one at a time until the queue is
/// closed and empty.
async fn work(
    w: Arc<Worker>,
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    progress: Arc<Progress>,
) {
    loop {
        let Some(job) = jobs.lock().await.recv().await else {
            return;
        };
        if w.stop.load(Relaxed) || w.shutdown.is_abandoned() {
            job.batch.end(None);
            continue;
        }
        let id = job.claimed.subscriber_id;
        // A panic in one delivery loses that one only: it stays `sending`
        // and turns uncertain, like a crash's. (Caught here rather than
        // by a task per delivery: a spawn and a wake-up per message.)
        let delivered = AssertUnwindSafe(deliver(&w, job.claimed)).catch_unwind();
        let delivered = tokio::select! {
            biased;
            delivered = delivered => delivered,
            // The send is dropped with its connection: the delivery stays
            // `sending`, to be marked uncertain.
            () = w.shutdown.abandoned() => {
                job.batch.end(None);
                continue;
            }
        };
        match delivered {
            Ok(outcome) => {
                let result = email_result(&outcome);
                w.metrics.count_email(result);
                if result == EmailResult::Sent {
                    progress.sent.fetch_add(1, Relaxed);
                }
                job.batch.end(Some((id, outcome)));
            }
            Err(_) => {
                w.metrics.panicked("digest");
                tracing::error!(subscriber = id, "a digest delivery panicked");
                job.batch.end(None);
            }
        }
    }
}

async fn deliver(w: &Worker, c: Claimed) -> Outcome {
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
    let now = w.clock.now();
    let prepared = match &*w.ctx {
        Content::Digest(ctx) => w.composer.prepare(ctx, to, now),
        // Announcements are rare and once per address: built whole.
        Content::Announcement(ctx) => w.composer.compose_announcement(ctx, to, now).map(|c| {
            Some(super::Prepared {
                wire: w.composer.wire(&c.message, now),
                article_count: 0,
            })
        }),
    };
    let prepared = match prepared {
        Ok(Some(prepared)) => prepared,
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
    w.limiter.wait().await;
    match w.mailer.send_wire(&prepared.wire).await {
        Ok(()) => {
            w.metrics
                .digest_bytes_sent(prepared.wire.text().len() as u64);
            Outcome::Sent {
                article_count: prepared.article_count,
            }
        }
        Err(e) if e.is_permanent() => Outcome::Bounced {
            reply: e.reply().to_string(),
        },
        // Temporary failures and local trouble (the outbox cannot be
        // written, TLS set-up) are retried: nothing is dropped.
        Err(e) if c.attempts < w.policy.max_attempts => Outcome::Retry {
            reply: e.reply().to_string(),
            at: w.clock.now() + w.policy.delay(c.attempts),
        },
        Err(e) => Outcome::Failed {
            reply: format!("{} (after {} attempts)", e.reply(), c.attempts),
        },
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
