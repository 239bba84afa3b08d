//! The daemon's digests: the loop that plans each schedule's runs from
//! the articles of the last build and sends them while this process has
//! the right to.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::base::clock::Clock;
use crate::base::ready::Readiness;
use crate::base::shutdown::ShutdownSignal;
use crate::config::Config;
use crate::digest::schedule::{DigestWork, Entry};
use crate::digest::{self, Digests, Published, SendRight};
use crate::store::Trigger;

/// The digest loop's view of the daemon: plans runs from the articles of
/// the last build, and sends only with the right to (with SQLite, a
/// `herald digest send` on the command line may hold the lock a while).
struct DaemonDigests {
    digests: Arc<Digests>,
    articles: Arc<arc_swap::ArcSwap<Published>>,
    right: Option<SendRight>,
    shutdown: ShutdownSignal,
}

impl DigestWork for DaemonDigests {
    async fn start(&mut self, schedule: &str, tick: DateTime<Utc>, trigger: Trigger) {
        let articles = self.articles.load_full();
        if articles.as_of == DateTime::<Utc>::default() {
            // No first-seen times yet (the database did not answer): a run
            // planned now would carry nothing and use up the tick.
            tracing::warn!(schedule, %tick, "not planning the digest: the first-seen times of the articles are not known yet");
            return;
        }
        if let Err(e) = self
            .digests
            .start_run(schedule, tick, trigger, &articles)
            .await
        {
            tracing::error!(schedule, %tick, "cannot plan the digest run: {e:#}");
        }
        let config = self.digests.composer().config();
        if let Some(d) = config.digest.iter().find(|d| d.name == schedule) {
            tracing::info!("{}", d.describe_next(&config.site, tick.max(Utc::now())));
        }
    }

    async fn drain(&mut self) -> Option<DateTime<Utc>> {
        if self.right.is_none() {
            match self.digests.acquire().await {
                Ok(Some(right)) => self.right = Some(right),
                Ok(None) => {
                    tracing::debug!("another herald process is sending digests; waiting");
                    return None;
                }
                Err(e) => {
                    tracing::error!("{e:#}");
                    return None;
                }
            }
        }
        let articles = self.articles.load_full();
        match self.digests.drain_all(&articles, &self.shutdown).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!("sending digests: {e:#}");
                // Try again at the next poll.
                None
            }
        }
    }
}

/// Starts the digest loop once the first build has published (digests are
/// made from its articles). Catch-up reaches back to the later of each
/// schedule's last run and the time it was first armed.
pub(super) async fn digest_loop(
    config: Arc<Config>,
    digests: Arc<Digests>,
    articles: Arc<arc_swap::ArcSwap<Published>>,
    ready: Arc<Readiness>,
    clock: Arc<dyn Clock>,
    mut shutdown: ShutdownSignal,
) {
    while !ready.is_ready() {
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    let now = clock.now();
    let mut entries = Vec::new();
    let mut since = HashMap::new();
    for d in &config.digest {
        let store = digests.store();
        let from = async {
            let armed = store.arm_schedule(&d.name, now).await?;
            let last = store.last_scheduled_tick(&d.name).await?;
            anyhow::Ok(last.map_or(armed, |l| l.max(armed)))
        };
        match from.await {
            Ok(t) => {
                since.insert(d.name.clone(), t);
            }
            Err(e) => tracing::error!(schedule = %d.name, "cannot read the digest ledger: {e:#}"),
        }
        tracing::info!("{}", d.describe_next(&config.site, now));
        entries.push(Entry {
            name: d.name.clone(),
            schedule: d.schedule.schedule.clone(),
            tz: d.tz(&config.site),
        });
    }
    let work = DaemonDigests {
        digests,
        articles,
        right: None,
        shutdown: shutdown.clone(),
    };
    digest::schedule::run_loop(
        work,
        clock,
        entries,
        since,
        config.mail.queue_poll.0,
        shutdown,
    )
    .await;
}
