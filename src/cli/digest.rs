//! `herald digest preview|send|status|retry`: digests from the command
//! line, on the same SQLite ledger as the daemon.
//!
//! `send` and `retry` send themselves when no other process holds the send
//! lock; while the daemon runs they queue the work in the ledger and the
//! daemon sends it within `mail.queue_poll`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};

use crate::base::clock::SystemClock;
use crate::base::metrics::Metrics;
use crate::base::shutdown::Shutdown;
use crate::config::Config;
use crate::content::{self, FirstSeen};
use crate::digest::{Articles, Composer, Digests, Recipient, SendLock};
use crate::mail::Mailer;
use crate::store::{DeliveryState, Run, RunStatus, SqliteStore, Store, SubscriberEmail, Trigger};
use crate::subscribers::tokens::Signer;
use crate::templates::Templates;

#[derive(Debug, clap::Subcommand)]
pub enum DigestCommand {
    /// Write the digest one subscriber would get now (HTML, text and the
    /// whole .eml) to a folder. Sends nothing and leaves the ledger alone.
    Preview {
        #[arg(long)]
        schedule: String,
        /// An active subscriber of the schedule; default: a sample reader
        /// who follows every tag and gets the latest articles.
        #[arg(long, value_name = "EMAIL")]
        subscriber: Option<String>,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Run the schedule now (a manual run): plan one delivery per
    /// subscriber with something new and send them. Exits 1 when any
    /// delivery failed or bounced.
    Send {
        #[arg(long)]
        schedule: String,
        /// Only say who would get what.
        #[arg(long)]
        dry_run: bool,
    },
    /// Recent runs, or one run's counts by state and every delivery that
    /// did not go out, with its SMTP reply.
    Status { run: Option<i64> },
    /// Send a run's failed or uncertain deliveries again (to subscribers
    /// still active), then whatever else of it is pending.
    Retry {
        #[arg(
            long,
            conflicts_with = "uncertain",
            required_unless_present = "uncertain"
        )]
        failed: bool,
        #[arg(long)]
        uncertain: bool,
        run: i64,
    },
}

pub async fn run(config: Config, cmd: DigestCommand) -> anyhow::Result<ExitCode> {
    let config = Arc::new(config);
    let store = SqliteStore::open(&config.database_path()).await?;
    match cmd {
        DigestCommand::Status { run } => status(&store, run).await,
        DigestCommand::Preview {
            schedule,
            subscriber,
            out,
        } => {
            let composer = composer(&config)?;
            preview(&config, &store, &composer, &schedule, subscriber, &out).await
        }
        DigestCommand::Send { schedule, dry_run } => {
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

fn composer(config: &Arc<Config>) -> anyhow::Result<Composer> {
    let signer = Signer::from_config(config)?;
    let templates = Arc::new(Templates::load(Some(&config.templates_dir))?);
    Composer::new(Arc::clone(config), templates, signer)
}

async fn digests(config: &Arc<Config>, store: SqliteStore) -> anyhow::Result<Digests> {
    let mailer = Arc::new(Mailer::from_config(config).await?);
    Ok(Digests::new(
        Arc::clone(config),
        store,
        mailer,
        Arc::new(composer(config)?),
        Arc::new(Metrics::new()),
        Arc::new(SystemClock),
    ))
}

/// The published articles, read from the content directory as a build
/// would (without writing anything).
fn articles(config: &Config, now: DateTime<Utc>) -> anyhow::Result<Articles> {
    let mut first_seen =
        FirstSeen::open(&config.data_dir).unwrap_or_else(|_| FirstSeen::in_memory());
    let (catalog, report) = content::load(config, now, &mut first_seen)?;
    for e in &report.rejected {
        eprintln!("rejected: {e}");
    }
    Ok(Arc::new(catalog.articles().to_vec()))
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

async fn preview(
    config: &Config,
    store: &SqliteStore,
    composer: &Composer,
    schedule: &str,
    subscriber: Option<String>,
    out: &Path,
) -> anyhow::Result<ExitCode> {
    schedule_exists(config, schedule)?;
    let now = Utc::now();
    let articles = articles(config, now)?;
    let (id, email, since, first, tags) = match subscriber {
        Some(address) => {
            let email = SubscriberEmail::parse(&address)?;
            let sub = store
                .find(&email)
                .await?
                .with_context(|| format!("{address} is not a subscriber"))?;
            let c = store
                .digest_candidates(schedule)
                .await?
                .into_iter()
                .find(|c| c.id == sub.id)
                .with_context(|| {
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
            SubscriberEmail::parse("reader@example.com")?,
            DateTime::<Utc>::MIN_UTC,
            false,
            Vec::new(),
        ),
    };
    let run = Run {
        id: 0,
        schedule: schedule.to_string(),
        tick: now,
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
    let Some(composed) = composer.compose(&ctx, to, now)? else {
        eprintln!(
            "nothing new for {}: no digest would be sent to them now",
            email.as_str()
        );
        return Ok(ExitCode::from(1));
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    for (name, bytes) in [
        ("digest.html", composed.html.into_bytes()),
        ("digest.txt", composed.text.into_bytes()),
        ("digest.eml", composed.message.formatted()),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "{} articles for {}; wrote digest.html, digest.txt and digest.eml to {}",
        composed.article_count,
        email.as_str(),
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn send(
    config: &Config,
    digests: &Digests,
    schedule: &str,
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    schedule_exists(config, schedule)?;
    let now = Utc::now();
    let articles = articles(config, now)?;
    if dry_run {
        let planned = digests.plan(schedule, now, &articles).await?;
        println!(
            "dry run: {} subscribers of `{schedule}` have something new and would get a digest; nothing was sent or recorded",
            planned.len()
        );
        for d in planned.iter().take(20) {
            println!("  {}", d.email.as_str());
        }
        if planned.len() > 20 {
            println!("  … and {} more", planned.len() - 20);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(run) = digests
        .start_run(schedule, now, Trigger::Manual, &articles)
        .await?
    else {
        bail!("a run of `{schedule}` for {now} exists already");
    };
    println!("run {}: planned for `{schedule}`", run.id);
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
    println!("run {run_id}: {n} {state} deliveries queued again");
    let articles = articles(config, Utc::now())?;
    send_now_or_queue(digests, &run, &articles).await
}

/// Sends `run` to the end (waiting out retries) when this process can take
/// the send lock; otherwise leaves it to the daemon that holds it.
async fn send_now_or_queue(
    digests: &Digests,
    run: &Run,
    articles: &Articles,
) -> anyhow::Result<ExitCode> {
    let Some(_lock) = SendLock::try_acquire(digests.composer().config())? else {
        println!(
            "run {}: queued; the running herald daemon sends it (check with `herald digest status {}`)",
            run.id, run.id
        );
        return Ok(ExitCode::SUCCESS);
    };
    let interrupted = digests.store().resolve_interrupted(Utc::now()).await?;
    if interrupted > 0 {
        eprintln!("warning: {interrupted} deliveries were in flight when a sender stopped; marked uncertain");
    }
    let shutdown = Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        match crate::base::shutdown::os_signal().await {
            Ok(()) => trigger.trigger(),
            Err(e) => tracing::warn!("cannot handle SIGTERM and SIGINT: {e}"),
        }
    });
    let mut signal = shutdown.signal();
    loop {
        let drained = digests.drain(run, articles, &signal).await?;
        if drained.done || signal.is_triggered() {
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
    let run = digests
        .store()
        .run(run.id)
        .await?
        .unwrap_or_else(|| run.clone());
    print_status(&run, &status);
    let bad = status.count(DeliveryState::Failed) + status.count(DeliveryState::Bounced);
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn status(store: &SqliteStore, run: Option<i64>) -> anyhow::Result<ExitCode> {
    match run {
        Some(id) => {
            let run = store
                .run(id)
                .await?
                .with_context(|| format!("there is no digest run {id}"))?;
            let status = store.run_status(id).await?;
            print_status(&run, &status);
        }
        None => {
            let runs = store.runs(20).await?;
            if runs.is_empty() {
                println!("no digest runs yet");
            }
            println!(
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
            );
            for r in runs {
                let s = store.run_status(r.id).await?;
                println!(
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
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(run: &Run, status: &RunStatus) {
    println!(
        "run {} of `{}` for {} ({}): {}",
        run.id,
        run.schedule,
        run.tick.format("%Y-%m-%dT%H:%M:%SZ"),
        run.trigger,
        if run.done { "done" } else { "sending" }
    );
    println!("  recipients: {}", status.total());
    for state in DeliveryState::ALL {
        let n = status.count(state);
        if n > 0 {
            println!("  {state}: {n}");
        }
    }
    for p in &status.problems {
        println!(
            "  {} {} (attempts {}): {}",
            p.state,
            p.email,
            p.attempts,
            p.reply.as_deref().unwrap_or("-")
        );
    }
}
