//! `herald run`: the HTTP server, the rebuild loop, the file watcher, the
//! digest loop and WebSub notifications, started together and stopped
//! together.
//!
//! The server starts answering at once (`/readyz` says 503, and why,
//! until the first build has published); the loop builds at start and then
//! on schedule, on change, and when a future-dated article falls due.
//!
//! Shutdown has one deadline, `server.shutdown_grace` after the signal:
//! the server stops accepting and drains, the rebuild and the digest batch
//! in hand finish; shortly before the deadline whatever is still in flight
//! is abandoned (slow clients dropped, unanswered SMTP sends recorded as
//! uncertain), pooled SMTP connections are closed, the database is closed,
//! and `run` returns by the deadline.

mod digests;
pub mod engine;
pub mod limits;
pub mod preflight;
pub mod rebuild;
mod stop;
mod supervise;
pub mod websub;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::base::clock::Clock;
use crate::base::metrics::Metrics;
use crate::base::panic;
use crate::base::ready::Readiness;
use crate::base::served::ServedFeeds;
use crate::base::shutdown::{Shutdown, ShutdownSignal};
use crate::config::{Config, Secret};
use crate::daemon::digests::digest_loop;
use crate::daemon::engine::{Engine, Shared};
use crate::daemon::rebuild::{LoopSettings, Reason, Rebuilder};
use crate::daemon::stop::StopClock;
use crate::daemon::supervise::keep_running;
use crate::daemon::websub::{RetryPolicy, WebSub};
use crate::digest::{Composer, Digests};
use crate::http::{self, AppState, Edge};
use crate::mail::Mailer;
use crate::store::{self, Store};
use crate::subscribers::bounces::webhooks::sns::HttpsFetch;
use crate::subscribers::bounces::webhooks::Webhooks;
use crate::subscribers::bounces::Bounces;
use crate::subscribers::optin::Subscriptions;
use crate::subscribers::tokens::Signer;
use crate::templates::Templates;

/// What `run` is given; tests pass their own clock and shutdown.
pub struct Runtime {
    pub clock: Arc<dyn Clock>,
    pub shutdown: Shutdown,
}

/// Runs the daemon on `listener` until `runtime.shutdown` is triggered,
/// and returns within `server.shutdown_grace` of that.
pub async fn run(
    mut config: Config,
    listener: TcpListener,
    runtime: Runtime,
) -> anyhow::Result<()> {
    let open_files = limits::raise_open_files();
    let max_connections = config.server.max_connections.resolve(open_files.now);
    read_metrics_token(&mut config)?;
    let metrics_listener = match config.server.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (server.metrics_listen)"))?,
        ),
        None => None,
    };
    let config = Arc::new(config);
    let served = Arc::new(ServedFeeds::new());
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(Readiness::new());
    let shutdown = runtime.shutdown;
    crate::feeds::remove_leftovers(&config);
    // The checks `herald check` makes too, before anything is created.
    let checked = preflight::preflight(&config)?;
    for w in &checked.warnings {
        tracing::warn!("{w}");
    }
    let store = store::open(&config).await?;
    let stop = StopClock::start(
        &shutdown,
        config.server.shutdown_grace.0,
        Arc::clone(&ready),
    );

    let (subscriptions, digests) = open_subscriptions(
        Arc::clone(&config),
        Arc::clone(&store),
        checked.templates,
        Arc::clone(&metrics),
        Arc::clone(&runtime.clock),
    )
    .await?;
    let subscriptions = Arc::new(subscriptions);
    let purge = tokio::spawn(keep_running(
        "purge",
        Arc::clone(&metrics),
        shutdown.signal(),
        {
            let subs = Arc::clone(&subscriptions);
            let store = Arc::clone(&store);
            let retention = config.subscribers.ip_retention.0;
            let signal = shutdown.signal();
            move || {
                purge_loop(
                    Arc::clone(&subs),
                    Arc::clone(&store),
                    retention,
                    signal.clone(),
                )
            }
        },
    ));
    let bounces = Arc::new(Bounces::new(
        Arc::clone(&config),
        Arc::clone(&store),
        Signer::for_store(&config, &*store).await?,
    ));
    let webhooks = Webhooks::new(&config, Arc::clone(&bounces), Box::new(HttpsFetch::new()?))?;
    let webhooks = webhooks.any().then(|| Arc::new(webhooks));
    let maildir = config.bounces.maildir.clone().map(|dir| {
        tokio::spawn(keep_running(
            "maildir",
            Arc::clone(&metrics),
            shutdown.signal(),
            {
                let bounces = Arc::clone(&bounces);
                let signal = shutdown.signal();
                move || {
                    crate::subscribers::bounces::maildir::watch(
                        Arc::clone(&bounces),
                        dir.clone(),
                        signal.clone(),
                    )
                }
            },
        ))
    });

    let first_seen = store::seen::load_undated(&*store, &config.data_dir).await?;
    let engine = Engine::new(
        Arc::clone(&config),
        Arc::clone(&served),
        Arc::clone(&metrics),
    )?
    .with_store(
        Shared {
            store: Arc::clone(&store),
            runtime: tokio::runtime::Handle::current(),
        },
        first_seen,
    );
    let hubs = config.websub.hubs.iter().map(|h| h.0.clone()).collect();
    let mut websub = WebSub::new(
        hubs,
        Arc::clone(&metrics),
        shutdown.signal(),
        RetryPolicy::default(),
    );
    if let Some(path) = &config.websub.ca_file {
        websub = websub.with_ca_file(path)?;
    }

    let (changes_tx, changes_rx) = mpsc::channel(1);
    let _watcher = if config.rescan.watch {
        match rebuild::watch(&config.content.dir, changes_tx) {
            Ok(w) => {
                tracing::info!("watching {} for changes", config.content.dir.display());
                Some(w)
            }
            Err(e) => {
                tracing::warn!(
                    "cannot watch {} ({e}); relying on the rescan schedule `{}`",
                    config.content.dir.display(),
                    config.rescan.schedule.expression
                );
                None
            }
        }
    } else {
        None
    };

    let digest_task = (!config.digest.is_empty()).then(|| {
        let (config, digests, ready) = (
            Arc::clone(&config),
            Arc::clone(&digests),
            Arc::clone(&ready),
        );
        let (articles, clock, signal) = (
            engine.published(),
            Arc::clone(&runtime.clock),
            shutdown.signal(),
        );
        tokio::spawn(keep_running(
            "digest",
            Arc::clone(&metrics),
            shutdown.signal(),
            move || {
                digest_loop(
                    Arc::clone(&config),
                    Arc::clone(&digests),
                    Arc::clone(&articles),
                    Arc::clone(&ready),
                    Arc::clone(&clock),
                    signal.clone(),
                )
            },
        ))
    });

    let rebuilder = EngineRebuilder {
        engine: Arc::new(Mutex::new(engine)),
        content_dir: config.content.dir.clone(),
        ready: Arc::clone(&ready),
        metrics: Arc::clone(&metrics),
        websub,
    };
    let settings = LoopSettings {
        schedule: config.rescan.schedule.schedule.clone(),
        debounce: config.rescan.debounce.0,
        metrics: Arc::clone(&metrics),
    };
    let rebuild_loop = tokio::spawn(rebuild::run_loop(
        rebuilder,
        runtime.clock,
        settings,
        changes_rx,
        shutdown.signal(),
    ));

    let state = AppState {
        config: Arc::clone(&config),
        served,
        metrics: Arc::clone(&metrics),
        ready,
        templates: Arc::clone(subscriptions.templates()),
        subscriptions: Some(Arc::clone(&subscriptions)),
        store: Some(Arc::clone(&store)),
        webhooks,
        counts: Some(Arc::clone(&store) as Arc<dyn crate::store::Counts>),
    };
    tracing::info!(
        "serving feeds on http://{} (feeds at {}); up to {max_connections} connections",
        listener.local_addr()?,
        config.feeds_base_url()
    );
    let edge = Edge::from_config(&config, max_connections);
    let main = http::server::run(
        listener,
        http::app(state.clone()),
        edge.clone(),
        Arc::clone(&metrics),
        shutdown.signal(),
    );
    let side = async {
        match metrics_listener {
            Some(l) => {
                tracing::info!("serving /metrics on http://{}", l.local_addr()?);
                let router = http::metrics_router(state);
                // Scraped now and then: served on the main runtime.
                let edge = http::server::Edge { threads: 0, ..edge };
                http::server::run(l, router, edge, Arc::clone(&metrics), shutdown.signal()).await
            }
            None => Ok(()),
        }
    };
    let (served, side) = tokio::join!(main, side);
    tracing::info!("HTTP server stopped");

    purge.abort();
    if let Some(task) = maildir {
        task.abort();
    }
    let signal = shutdown.signal();
    // The rebuild in progress may finish until the shutdown is abandoned;
    // its thread is then left to the runtime's end.
    tokio::select! {
        joined = rebuild_loop => if let Err(e) = joined {
            tracing::error!("rebuild loop failed: {e}");
        },
        () = signal.abandoned() => {
            tracing::warn!("a rebuild was still running when the shutdown deadline neared; its files are written atomically, nothing is half-published");
        }
    }
    let deadline = stop.deadline();
    // The batch of digests being sent is finished and recorded, or, past
    // the abandon point, its unanswered sends are recorded as uncertain;
    // what was never taken stays pending for the next start.
    if let Some(task) = digest_task {
        let margin = Duration::from_millis(100);
        if tokio::time::timeout_at(deadline - margin, task)
            .await
            .is_err()
        {
            tracing::warn!("digests could not be recorded before the shutdown deadline; those in flight will show as uncertain at the next start");
        }
    }
    subscriptions.mailer().shutdown_by(deadline).await;
    // Closing the last connection checkpoints the WAL into the database
    // file, so a copy of herald.sqlite3 alone is complete after a stop.
    if tokio::time::timeout_at(deadline, store.close())
        .await
        .is_err()
    {
        tracing::warn!("the database was still busy at the shutdown deadline");
    }
    served.context("HTTP server failed")?;
    side.context("metrics server failed")
}

/// `server.metrics_token_file` read into `server.metrics_token`.
fn read_metrics_token(config: &mut Config) -> anyhow::Result<()> {
    let server = &mut config.server;
    let Some(path) = &server.metrics_token_file else {
        return Ok(());
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "config key `server.metrics_token_file`: cannot read {}",
            path.display()
        )
    })?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!(
            "config key `server.metrics_token_file`: {} is empty",
            path.display()
        );
    }
    server.metrics_token = Some(Secret::new(token));
    Ok(())
}

/// The mail transport, signing secret and templates, and the digests made
/// with them. A broken template, subject or DKIM key, or an unreadable
/// secret, stops herald at start ([`preflight::preflight`], and here for
/// what needs the store).
async fn open_subscriptions(
    config: Arc<Config>,
    store: Arc<dyn Store>,
    templates: Arc<Templates>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<(Subscriptions, Arc<Digests>)> {
    let mailer = Arc::new(Mailer::from_config(&config).await?);
    tracing::info!(
        "subscribers in {}; mail via {}",
        store.describe(),
        mailer.describe()
    );
    let signer = Signer::for_store(&config, &*store).await?;
    let composer = Arc::new(Composer::new(
        Arc::clone(&config),
        Arc::clone(&templates),
        signer.clone(),
    )?);
    let digests = Arc::new(Digests::new(
        Arc::clone(&config),
        Arc::clone(&store),
        Arc::clone(&mailer),
        composer,
        metrics,
        clock,
    ));
    let subscriptions = Subscriptions::new(config, store, mailer, signer, templates);
    Ok((subscriptions, digests))
}

/// Hourly: remove pending sign-ups that were never confirmed, and clear
/// client IPs older than `subscribers.ip_retention`.
async fn purge_loop(
    subs: Arc<Subscriptions>,
    store: Arc<dyn Store>,
    ip_retention: Duration,
    mut shutdown: ShutdownSignal,
) {
    loop {
        match subs.purge(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} unconfirmed sign-ups (kept in the consent log)"),
            Err(e) => tracing::warn!("purging unconfirmed sign-ups: {e:#}"),
        }
        let before = Utc::now() - chrono::Duration::from_std(ip_retention).unwrap_or_default();
        match store.expire_ips(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "cleared the client IP of {n} consent records older than subscribers.ip_retention"
            ),
            Err(e) => tracing::warn!("clearing old client IPs: {e}"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// The loop's view of the engine: rebuilds on a blocking thread, keeps
/// readiness current, tells WebSub hubs.
struct EngineRebuilder {
    engine: Arc<Mutex<Engine>>,
    /// `content.dir`, looked at when a rebuild fails.
    content_dir: std::path::PathBuf,
    ready: Arc<Readiness>,
    metrics: Arc<Metrics>,
    websub: WebSub,
}

impl Rebuilder for EngineRebuilder {
    async fn rebuild(&mut self, now: DateTime<Utc>, reason: Reason) -> Option<DateTime<Utc>> {
        let engine = Arc::clone(&self.engine);
        let outcome = tokio::task::spawn_blocking(move || {
            let mut engine = engine.lock().unwrap_or_else(|p| p.into_inner());
            let result = engine.rebuild(now);
            (result, engine.next_scheduled())
        })
        .await;
        let (result, next) = match outcome {
            Ok(pair) => pair,
            Err(e) => {
                let why = match e.try_into_panic() {
                    Ok(p) => format!("the rebuild panicked: {}", panic::message(&*p)),
                    Err(e) => format!("the rebuild was cancelled: {e}"),
                };
                self.metrics.panicked("rebuild");
                self.metrics.rebuild_failed();
                {
                    let mut engine = self.engine.lock().unwrap_or_else(|p| p.into_inner());
                    engine.recover_from_panic();
                }
                self.engine.clear_poison();
                tracing::error!(?reason, "{why}; still serving the last good feeds");
                self.ready.build_failed(why);
                return None;
            }
        };
        match result {
            Ok(r) if r.skipped => {
                tracing::debug!(
                    ?reason,
                    elapsed_ms = ms(r.elapsed),
                    "rescan: nothing changed"
                );
                self.ready.build_succeeded();
            }
            Ok(r) => {
                for e in &r.report.rejected {
                    tracing::warn!("rejected: {e}");
                }
                for w in &r.report.warnings {
                    tracing::warn!("{w}");
                }
                tracing::info!(
                    ?reason,
                    published = r.published,
                    rejected = r.report.rejected.len(),
                    parsed = r.stats.parsed,
                    reused = r.stats.reused,
                    feeds_changed = r.changed.len(),
                    feeds_removed = r.removed.len(),
                    elapsed_ms = ms(r.elapsed),
                    "rebuilt"
                );
                self.ready.build_succeeded();
                if self.websub.is_enabled() && !r.changed_urls.is_empty() {
                    self.websub.notify(r.changed_urls);
                }
            }
            Err(e) => {
                tracing::error!(
                    ?reason,
                    "rebuild failed, still serving the last good feeds: {e:#}"
                );
                match content_unreadable(&self.content_dir) {
                    Some(why) => self.ready.content_unavailable(why),
                    None => self.ready.build_failed(format!("{e:#}")),
                }
            }
        }
        next
    }
}

/// Why the content directory cannot be read, if it cannot: readiness
/// then tells the truth (an unmounted volume is not a passing glitch).
fn content_unreadable(dir: &std::path::Path) -> Option<String> {
    match std::fs::read_dir(dir) {
        Ok(_) => None,
        Err(e) => Some(format!("{}: {e}", dir.display())),
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
