//! `herald run`: the HTTP server, the rebuild loop, the file watcher and
//! WebSub notifications, started together and stopped together.
//!
//! The server starts answering at once (`/readyz` says 503 until the first
//! build has published); the loop builds at start and then on schedule, on
//! change, and when a future-dated article falls due. On shutdown the
//! server stops accepting, requests in flight and a running rebuild finish
//! within the grace period, and `run` returns.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::engine::Engine;
use crate::http::{self, AppState};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::publish::FeedStore;
use crate::schedule::{self, Clock, LoopSettings, Reason, Rebuilder};
use crate::shutdown::{Shutdown, ShutdownSignal};
use crate::store::SqliteStore;
use crate::subscriptions::Subscriptions;
use crate::templates::Templates;
use crate::tokens::Signer;
use crate::websub::{RetryPolicy, WebSub};

/// What `run` is given; tests pass their own clock and shutdown.
pub struct Runtime {
    pub clock: Arc<dyn Clock>,
    pub shutdown: Shutdown,
}

/// Runs the daemon on `listener` until `runtime.shutdown` is triggered.
pub async fn run(config: Config, listener: TcpListener, runtime: Runtime) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let store = Arc::new(FeedStore::new());
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let shutdown = runtime.shutdown;
    let grace = config.server.shutdown_grace.0;
    let subscriptions = Arc::new(open_subscriptions(Arc::clone(&config)).await?);
    let purge = tokio::spawn(purge_loop(Arc::clone(&subscriptions), shutdown.signal()));

    let engine = Engine::new(
        Arc::clone(&config),
        Arc::clone(&store),
        Arc::clone(&metrics),
    )?;
    let hubs = config.websub.hubs.iter().map(|h| h.0.clone()).collect();
    let websub = WebSub::new(
        hubs,
        Arc::clone(&metrics),
        shutdown.signal(),
        RetryPolicy::default(),
    );

    let (changes_tx, changes_rx) = mpsc::channel(1);
    let _watcher = if config.rescan.watch {
        match schedule::watch(&config.content.dir, changes_tx) {
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

    let rebuilder = EngineRebuilder {
        engine: Arc::new(Mutex::new(engine)),
        ready: Arc::clone(&ready),
        websub,
    };
    let settings = LoopSettings {
        schedule: config.rescan.schedule.schedule.clone(),
        debounce: config.rescan.debounce.0,
    };
    let rebuild_loop = tokio::spawn(schedule::run_loop(
        rebuilder,
        runtime.clock,
        settings,
        changes_rx,
        shutdown.signal(),
    ));

    let state = AppState {
        config: Arc::clone(&config),
        store,
        metrics,
        ready,
        subscriptions: Some(subscriptions),
    };
    tracing::info!(
        "serving feeds on http://{} (feeds at {})",
        listener.local_addr()?,
        config.feeds_base_url()
    );
    let served = http::serve(listener, http::router(state), shutdown.signal(), grace).await;

    purge.abort();
    // The server has stopped; let a rebuild in progress finish.
    match tokio::time::timeout(grace, rebuild_loop).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!("rebuild loop failed: {e}"),
        Err(_) => tracing::warn!("a rebuild was still running after the {grace:?} grace period"),
    }
    served
}

/// The subscriber store, mail transport, signing secret and templates. A
/// broken template or an unreadable secret stops herald here, at start.
async fn open_subscriptions(config: Arc<Config>) -> anyhow::Result<Subscriptions> {
    let db = config.database_path();
    let store = SqliteStore::open(&db).await?;
    let mailer = Mailer::from_config(&config).await?;
    tracing::info!(
        "subscribers in {}; mail via {}",
        db.display(),
        mailer.describe()
    );
    let signer = Signer::from_config(&config)?;
    let templates = Templates::load(Some(&config.templates_dir))?;
    Ok(Subscriptions::new(
        config,
        Arc::new(store),
        Arc::new(mailer),
        signer,
        Arc::new(templates),
    ))
}

/// Hourly: remove pending sign-ups that were never confirmed.
async fn purge_loop(subs: Arc<Subscriptions>, mut shutdown: ShutdownSignal) {
    loop {
        match subs.purge(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("removed {n} unconfirmed sign-ups (kept in the consent log)"),
            Err(e) => tracing::warn!("purging unconfirmed sign-ups: {e:#}"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}

/// The loop's view of the engine: rebuilds on a blocking thread, flips
/// readiness after the first successful publish, tells WebSub hubs.
struct EngineRebuilder {
    engine: Arc<Mutex<Engine>>,
    ready: Arc<AtomicBool>,
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
                tracing::error!("rebuild panicked: {e}");
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
                self.ready.store(true, Ordering::Release);
                if self.websub.is_enabled() && !r.changed_urls.is_empty() {
                    self.websub.notify(r.changed_urls);
                }
            }
            Err(e) => {
                tracing::error!(
                    ?reason,
                    "rebuild failed, still serving the last good feeds: {e:#}"
                );
            }
        }
        next
    }
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
