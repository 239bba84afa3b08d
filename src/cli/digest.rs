//! `herald digest preview|send|status|retry`: digests from the command
//! line, on the same ledger as the daemon.
//!
//! With SQLite, `send` and `retry` send themselves when no other process
//! holds the send lock; while the daemon runs they queue the work in the
//! ledger and the daemon sends it within `mail.queue_poll`. With
//! PostgreSQL they send beside the replicas (claims never overlap).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};

use super::progress::Progress;
use crate::base::clock::SystemClock;
use crate::base::metrics::Metrics;
use crate::base::shutdown::Shutdown;
use crate::config::Config;
use crate::content;
use crate::digest::{Articles, Composer, Digests, Published, Recipient};
use crate::mail::Mailer;
use crate::store::{self, DeliveryState, Run, RunStatus, Store, SubscriberEmail, Trigger};
use crate::subscribers::tokens::Signer;
use crate::templates::Templates;

#[derive(Debug, clap::Subcommand)]
pub enum DigestCommand {
    /// Write the digest one subscriber would get now (HTML, text and the
    /// whole .eml) to a folder. Sends nothing and leaves the ledger alone.
    Preview {
        /// The `[[digest]]` schedule, by name.
        #[arg(long, value_name = "NAME")]
        schedule: String,
        /// An active subscriber of the schedule; default: a sample reader
        /// who follows every tag and gets the latest articles.
        #[arg(long, value_name = "EMAIL")]
        subscriber: Option<String>,
        /// Folder to write digest.html, digest.txt and digest.eml into
        /// (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run the schedule now (a manual run): plan one delivery per
    /// subscriber with something new and send them. Exits 1 when any
    /// delivery failed or bounced.
    Send {
        /// The `[[digest]]` schedule to run, by name.
        #[arg(long, value_name = "NAME")]
        schedule: String,
        /// Only say who would get what.
        #[arg(long)]
        dry_run: bool,
        /// A test send: mail the digest this address would get now (a
        /// sample one with the latest articles, when it is no subscriber
        /// of the schedule) to this address only, outside the ledger, to
        /// check SMTP, DKIM and rendering without mailing the list.
        #[arg(long, value_name = "EMAIL", conflicts_with = "dry_run")]
        to: Option<String>,
    },
    /// Recent runs, or one run's counts by state and every delivery that
    /// did not go out, with its SMTP reply.
    Status {
        /// A run's number (the first column of the list); without it, the
        /// recent runs and when each schedule is next due.
        run: Option<i64>,
    },
    /// Send a run's failed or uncertain deliveries again (to subscribers
    /// still active), then whatever else of it is pending.
    Retry {
        /// Deliveries that failed (the server kept refusing, or a local
        /// error) after `mail.max_attempts` tries.
        #[arg(
            long,
            conflicts_with = "uncertain",
            required_unless_present = "uncertain"
        )]
        failed: bool,
        /// Deliveries that were being sent when herald was killed: they may
        /// or may not have arrived, so sending them again may duplicate.
        #[arg(long)]
        uncertain: bool,
        /// The run's number, as `herald digest status` lists it.
        run: i64,
    },
}

pub async fn run(config: Config, cmd: DigestCommand) -> anyhow::Result<ExitCode> {
    let config = Arc::new(config);
    let store = store::open(&config).await?;
    let code = run_with(config, Arc::clone(&store), cmd).await;
    store.close().await;
    code
}

async fn run_with(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    cmd: DigestCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        DigestCommand::Status { run } => status(&config, &*store, run).await,
        DigestCommand::Preview {
            schedule,
            subscriber,
            out,
        } => {
            let composer = composer(&config, &*store).await?;
            preview(&config, &*store, &composer, &schedule, subscriber, &out).await
        }
        DigestCommand::Send {
            schedule,
            to: Some(address),
            ..
        } => {
            let composer = composer(&config, &*store).await?;
            test_send(&config, &*store, &composer, &schedule, &address).await
        }
        DigestCommand::Send {
            schedule, dry_run, ..
        } => {
            let digests = digests(&config, store).await?;
            send(&config, &digests, &schedule, dry_run).await
        }
        DigestCommand::Retry {
            failed,
            uncertain: _,
            run,
        } => {
            let state = if failed {
                DeliveryState::Failed
            } else {
                DeliveryState::Uncertain
            };
            let digests = digests(&config, store).await?;
            retry(&config, &digests, run, state).await
        }
    }
}

async fn composer(config: &Arc<Config>, store: &dyn Store) -> anyhow::Result<Composer> {
    let signer = Signer::for_store(config, store).await?;
    let templates = Arc::new(Templates::load(Some(&config.templates_dir))?);
    Composer::new(Arc::clone(config), templates, signer)
}

pub(super) async fn digests(
    config: &Arc<Config>,
    store: Arc<dyn Store>,
) -> anyhow::Result<Digests> {
    let mailer = Arc::new(Mailer::from_config(config).await?);
    let composer = Arc::new(composer(config, &*store).await?);
    Ok(Digests::new(
        Arc::clone(config),
        store,
        mailer,
        composer,
        Arc::new(Metrics::new()),
        Arc::new(SystemClock),
    ))
}

/// The published articles, read from the content directory as a build
/// would (no feed written), with the dates of undated articles and the
/// first-seen times of all of them from the store (recorded now for
/// articles it has never seen).
async fn articles(
    config: &Config,
    store: &dyn Store,
    now: DateTime<Utc>,
) -> anyhow::Result<Articles> {
    let mut first_seen = store::seen::load_undated(store, &config.data_dir).await?;
    let (mut catalog, mut report) = content::load(config, now, &mut first_seen)?;
    if !store::seen::share_undated(store, &mut first_seen)
        .await?
        .is_empty()
    {
        (catalog, report) = content::load(config, now, &mut first_seen)?;
    }
    for e in &report.rejected {
        eprintln!("rejected: {e}");
    }
    Ok(Arc::new(
        Published::observe(store, catalog.articles().to_vec(), now).await?,
    ))
}

/// The candidate `id` of `schedule`, read page by page.
async fn candidate(
    store: &dyn Store,
    schedule: &str,
    id: i64,
) -> anyhow::Result<Option<store::Candidate>> {
    let mut after = None;
    loop {
        let page = store.candidates_page(schedule, after, 5_000).await?;
        let Some(last) = page.last() else {
            return Ok(None);
        };
        after = Some(last.id);
        if let Some(c) = page.into_iter().find(|c| c.id == id) {
            return Ok(Some(c));
        }
    }
}

fn schedule_exists(config: &Config, schedule: &str) -> anyhow::Result<()> {
    if !config.digest.iter().any(|d| d.name == schedule) {
        let known: Vec<&str> = config.digest.iter().map(|d| d.name.as_str()).collect();
        bail!(
            "there is no digest schedule called `{schedule}` (the config has: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        );
    }
    Ok(())
}

/// The digest `subscriber` would get now, or a sample reader's (every
/// tag, the latest articles) addressed to `sample_to`.
async fn compose_now(
    config: &Config,
    store: &dyn Store,
    composer: &Composer,
    schedule: &str,
    subscriber: Option<&str>,
    sample_to: &str,
) -> anyhow::Result<Option<(crate::digest::Composed, SubscriberEmail)>> {
    schedule_exists(config, schedule)?;
    let now = Utc::now();
    let articles = articles(config, store, now).await?;
    let (id, email, since, first, tags) = match subscriber {
        Some(address) => {
            let email = SubscriberEmail::parse(address)?;
            let sub = store
                .find(&email)
                .await?
                .with_context(|| format!("{address} is not a subscriber"))?;
            let c = candidate(store, schedule, sub.id).await?.with_context(|| {
                format!(
                    "{address} does not receive `{schedule}` (status {}, schedules: {})",
                    sub.status.as_str(),
                    sub.schedules.join(", ")
                )
            })?;
            let first = c.received_through.is_none();
            (
                c.id,
                c.email,
                c.received_through.unwrap_or(c.confirmed_at),
                first,
                c.tags,
            )
        }
        None => (
            0,
            SubscriberEmail::parse(sample_to)?,
            DateTime::<Utc>::MIN_UTC,
            false,
            Vec::new(),
        ),
    };
    let run = Run {
        id: 0,
        schedule: schedule.to_string(),
        tick: now,
        horizon: now,
        trigger: "preview".into(),
        nonce: "preview".into(),
        created_at: now,
        done: false,
        finished_at: None,
    };
    let ctx = composer.context(run, articles)?;
    let to = Recipient {
        id,
        email: &email,
        since,
        first,
        tags: &tags,
    };
    Ok(composer.compose(&ctx, to, now)?.map(|c| (c, email)))
}

async fn preview(
    config: &Config,
    store: &dyn Store,
    composer: &Composer,
    schedule: &str,
    subscriber: Option<String>,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    let composed = compose_now(
        config,
        store,
        composer,
        schedule,
        subscriber.as_deref(),
        "reader@example.com",
    )
    .await?;
    let Some((composed, email)) = composed else {
        eprintln!(
            "nothing new for {}: no digest would be sent to them now",
            subscriber.unwrap_or_default()
        );
        return Ok(ExitCode::from(1));
    };
    // The message exactly as it would be sent (signed, if DKIM is set).
    let eml = composer
        .wire(&composed.message, chrono::Utc::now())
        .to_bytes();
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, bytes) in [
        ("digest.html", composed.html.into_bytes()),
        ("digest.txt", composed.text.into_bytes()),
        ("digest.eml", eml),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    outln!(
        "{} articles for {}; wrote digest.html, digest.txt and digest.eml to {}",
        composed.article_count,
        email.as_str(),
        out.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `herald digest send --to ADDRESS`: one message, through the configured
/// transport, recorded nowhere.
async fn test_send(
    config: &Config,
    store: &dyn Store,
    composer: &Composer,
    schedule: &str,
    address: &str,
) -> anyhow::Result<ExitCode> {
    let email = SubscriberEmail::parse(address).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
    let known = match store.find(&email).await? {
        Some(s) => candidate(store, schedule, s.id).await?.is_some(),
        None => false,
    };
    let subscriber = known.then_some(address);
    let Some((composed, email)) =
        compose_now(config, store, composer, schedule, subscriber, address).await?
    else {
        eprintln!("nothing new for {address}: no digest would be sent to them now");
        return Ok(ExitCode::from(1));
    };
    let mailer = Mailer::from_config(config).await?;
    // Signed like the run's messages, so that DKIM is checked too.
    let sent = mailer
        .send_wire(&composer.wire(&composed.message, chrono::Utc::now()))
        .await;
    mailer.shutdown().await;
    match sent {
        Ok(()) => {
            outln!(
                "test digest of `{schedule}` ({} articles, {}) sent to {} via {}; nothing recorded",
                composed.article_count,
                if known {
                    "as this subscriber gets it"
                } else {
                    "a sample reader's"
                },
                email.as_str(),
                mailer.describe()
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("test send to {address} failed: {}", e.reply());
            Ok(ExitCode::from(1))
        }
    }
}

async fn send(
    config: &Config,
    digests: &Digests,
    schedule: &str,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    schedule_exists(config, schedule)?;
    let now = store::db_time(Utc::now());
    let articles = articles(config, &**digests.store(), now).await?;
    if dry_run {
        let planned = digests.plan(schedule, now, &articles).await?;
        outln!(
            "dry run: {} subscribers of `{schedule}` have something new and would get a digest; nothing was sent or recorded",
            planned.len()
        )?;
        for d in planned.iter().take(20) {
            outln!("  {}", d.email.as_str())?;
        }
        if planned.len() > 20 {
            outln!("  … and {} more", planned.len() - 20)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(run) = digests
        .start_run(schedule, now, Trigger::Manual, &articles)
        .await?
    else {
        bail!("a run of `{schedule}` for {now} exists already");
    };
    outln!("run {}: planned for `{schedule}`", run.id)?;
    send_now_or_queue(digests, &run, &articles).await
}

async fn retry(
    config: &Config,
    digests: &Digests,
    run_id: i64,
    state: DeliveryState,
) -> anyhow::Result<ExitCode> {
    let run = digests
        .store()
        .run(run_id)
        .await?
        .with_context(|| format!("there is no digest run {run_id}"))?;
    let n = digests.store().requeue(run_id, state, Utc::now()).await?;
    outln!("run {run_id}: {n} {state} deliveries queued again")?;
    let articles = articles(config, &**digests.store(), Utc::now()).await?;
    send_now_or_queue(digests, &run, &articles).await
}

/// Sends `run` to the end (waiting out retries) when this process may send
/// (PostgreSQL: always; SQLite: when it can take the send lock); otherwise
/// leaves it to the daemon that holds the lock.
pub(super) async fn send_now_or_queue(
    digests: &Digests,
    run: &Run,
    articles: &Articles,
) -> anyhow::Result<ExitCode> {
    let Some(_right) = digests.acquire().await? else {
        outln!(
            "run {}: queued; the running herald daemon sends it (check with `herald digest status {}`)",
            run.id, run.id
        )?;
        return Ok(ExitCode::SUCCESS);
    };
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        match crate::base::shutdown::os_signal().await {
            Ok(()) => trigger.trigger(),
            Err(e) => tracing::warn!("cannot handle SIGTERM and SIGINT: {e}"),
        }
    });
    let mut signal = shutdown.signal();
    // Progress read from the ledger beside the sending, every few seconds.
    let total = digests.status(run.id).await?.total();
    let progress = (total > 0).then(|| {
        let progress = Arc::new(Progress::start("sending", total));
        let (p, store, id) = (Arc::clone(&progress), digests.store().clone(), run.id);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(p.every()).await;
                if let Ok(status) = store.run_status(id).await {
                    p.update(settled(&status));
                }
            }
        });
        (progress, task)
    });
    loop {
        let drained = digests.drain(run, articles, &signal).await?;
        if drained.done || signal.is_triggered() {
            break;
        }
        // A run that was done before this loop started (planned with no
        // recipients, or a retry that requeued nothing) is not finished
        // by this drain: only the ledger knows it is over.
        if digests.store().run(run.id).await?.is_none_or(|r| r.done) {
            break;
        }
        let wait = drained
            .next_retry
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(1));
        eprintln!("waiting {:.1}s for retries", wait.as_secs_f64());
        tokio::select! {
            _ = signal.wait() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    let status = digests.status(run.id).await?;
    if let Some((progress, task)) = progress {
        task.abort();
        progress.finish(settled(&status));
    }
    let run = digests
        .store()
        .run(run.id)
        .await?
        .unwrap_or_else(|| run.clone());
    print_status(&run, &status)?;
    let bad = status.count(DeliveryState::Failed) + status.count(DeliveryState::Bounced);
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Deliveries of a run that are no longer waiting to be sent.
fn settled(status: &RunStatus) -> u64 {
    status.total() - status.count(DeliveryState::Pending) - status.count(DeliveryState::Sending)
}

async fn status(config: &Config, store: &dyn Store, run: Option<i64>) -> anyhow::Result<ExitCode> {
    match run {
        Some(id) => {
            let run = store
                .run(id)
                .await?
                .with_context(|| format!("there is no digest run {id}"))?;
            let status = store.run_status(id).await?;
            print_status(&run, &status)?;
        }
        None => {
            let now = Utc::now();
            for d in &config.digest {
                outln!("{}", d.describe_next(&config.site, now))?;
            }
            let runs = store.runs(20).await?;
            if runs.is_empty() {
                outln!("no digest runs yet")?;
            }
            outln!(
                "{:>5}  {:<12} {:<20} {:<9} {:<8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
                "run",
                "schedule",
                "tick",
                "trigger",
                "state",
                "total",
                "sent",
                "pending",
                "failed",
                "bounced",
                "uncertain"
            )?;
            for r in runs {
                let s = store.run_status(r.id).await?;
                outln!(
                    "{:>5}  {:<12} {:<20} {:<9} {:<8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
                    r.id,
                    r.schedule,
                    r.tick.format("%Y-%m-%dT%H:%M:%SZ"),
                    r.trigger,
                    if r.done { "done" } else { "sending" },
                    s.total(),
                    s.count(DeliveryState::Sent),
                    s.count(DeliveryState::Pending) + s.count(DeliveryState::Sending),
                    s.count(DeliveryState::Failed),
                    s.count(DeliveryState::Bounced),
                    s.count(DeliveryState::Uncertain),
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(run: &Run, status: &RunStatus) -> std::io::Result<()> {
    outln!(
        "run {} of `{}` for {} ({}): {}",
        run.id,
        run.schedule,
        run.tick.format("%Y-%m-%dT%H:%M:%SZ"),
        run.trigger,
        if run.done { "done" } else { "sending" }
    )?;
    outln!("  recipients: {}", status.total())?;
    for state in DeliveryState::ALL {
        let n = status.count(state);
        if n > 0 {
            outln!("  {state}: {n}")?;
        }
    }
    for p in &status.problems {
        outln!(
            "  {} {} (attempts {}): {}",
            p.state,
            p.email,
            p.attempts,
            p.reply.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}
