//! When to rebuild: once at start, on every tick of the rescan cron
//! schedule, when a future-dated article falls due, and shortly after files
//! in the content directory change (debounced: a burst of changes is one
//! rebuild). Also the file watcher that reports those changes.
//!
//! Time comes from a [`Clock`] so that tests run the loop on tokio's paused
//! clock instead of sleeping. A rebuild that panics is caught here, logged,
//! counted as a failed rebuild and a panic, and the loop goes on: the next
//! change or tick rebuilds again.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt;
use tokio::sync::mpsc;

use crate::base::clock::Clock;
use crate::base::metrics::Metrics;
use crate::base::panic;
use crate::base::shutdown::ShutdownSignal;

/// Why a rebuild runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Start,
    Schedule,
    /// A future-dated article fell due.
    Due,
    FileChange,
}

/// What the loop drives: the real engine, or a recorder in tests. Returns
/// when the next future-dated article falls due, if any.
pub trait Rebuilder: Send + 'static {
    fn rebuild(
        &mut self,
        now: DateTime<Utc>,
        reason: Reason,
    ) -> impl Future<Output = Option<DateTime<Utc>>> + Send;
}

pub struct LoopSettings {
    pub schedule: cron::Schedule,
    pub debounce: Duration,
    /// Where a panicking rebuild is counted.
    pub metrics: Arc<Metrics>,
}

/// Runs until `shutdown`. A rebuild in progress when shutdown comes is
/// finished first; the loop never starts a new one after it.
pub async fn run_loop<R: Rebuilder>(
    mut rebuilder: R,
    clock: Arc<dyn Clock>,
    settings: LoopSettings,
    mut changes: mpsc::Receiver<()>,
    mut shutdown: ShutdownSignal,
) {
    let mut due = guarded(
        &mut rebuilder,
        clock.now(),
        Reason::Start,
        &settings.metrics,
    )
    .await;
    let mut watching = true;
    loop {
        let now = clock.now();
        let next_tick = settings.schedule.after(&now).next();
        let (wake_at, reason) = match (next_tick, due) {
            (Some(t), Some(d)) if d < t => (Some(d), Reason::Due),
            (Some(t), _) => (Some(t), Reason::Schedule),
            (None, Some(d)) => (Some(d), Reason::Due),
            (None, None) => (None, Reason::Schedule),
        };
        let sleep_for = wake_at
            .map(|w| (w - now).to_std().unwrap_or(Duration::ZERO))
            // A schedule with no future ticks: only changes wake us.
            .unwrap_or(Duration::from_secs(365 * 24 * 3600));
        let reason = tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(sleep_for) => reason,
            change = changes.recv(), if watching => {
                if change.is_none() {
                    // The watcher is gone (or never started); carry on with
                    // the schedule alone. A closed channel answers at once,
                    // so it must not be polled again: that would spin.
                    watching = false;
                    continue;
                }
                // Wait until the changes stop for `debounce`.
                loop {
                    tokio::select! {
                        biased;
                        _ = shutdown.wait() => break,
                        more = changes.recv() => if more.is_none() { break },
                        _ = tokio::time::sleep(settings.debounce) => break,
                    }
                }
                if shutdown.is_triggered() {
                    break;
                }
                Reason::FileChange
            }
        };
        due = guarded(&mut rebuilder, clock.now(), reason, &settings.metrics).await;
    }
}

/// One rebuild, with a panic caught: it counts as a failed rebuild, and no
/// article is then known to be due (the schedule and changes still wake
/// the loop).
async fn guarded<R: Rebuilder>(
    rebuilder: &mut R,
    now: DateTime<Utc>,
    reason: Reason,
    metrics: &Metrics,
) -> Option<DateTime<Utc>> {
    match AssertUnwindSafe(rebuilder.rebuild(now, reason))
        .catch_unwind()
        .await
    {
        Ok(due) => due,
        Err(panic) => {
            metrics.panicked("rebuild");
            metrics.rebuild_failed();
            tracing::error!(
                ?reason,
                "the rebuild panicked; still serving the last good feeds: {}",
                panic::message(&*panic)
            );
            None
        }
    }
}

/// Watches `dir` recursively and sends a unit on every change. The
/// returned watcher must be kept alive. Fails where the platform or file
/// system cannot watch (network volumes, exhausted inotify watches); the
/// scheduled rescan covers those.
pub fn watch(dir: &Path, tx: mpsc::Sender<()>) -> anyhow::Result<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                // A full channel already holds a pending change: nothing lost.
                let _ = tx.try_send(());
            }
            Err(e) => tracing::warn!("file watcher: {e}"),
        })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::clock::TokioClock;
    use std::str::FromStr;
    use std::sync::Mutex;

    use crate::base::shutdown::Shutdown;

    type Calls = Arc<Mutex<Vec<(DateTime<Utc>, Reason)>>>;

    /// Records each rebuild's time and reason; can announce a due article.
    #[derive(Clone, Default)]
    struct Recorder {
        calls: Calls,
        due_once: Arc<Mutex<Option<DateTime<Utc>>>>,
    }

    impl Rebuilder for Recorder {
        async fn rebuild(&mut self, now: DateTime<Utc>, reason: Reason) -> Option<DateTime<Utc>> {
            self.calls.lock().unwrap().push((now, reason));
            self.due_once.lock().unwrap().take()
        }
    }

    fn start() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:03Z")
            .unwrap()
            .to_utc()
    }

    fn settings(expr: &str) -> LoopSettings {
        LoopSettings {
            schedule: cron::Schedule::from_str(expr).unwrap(),
            debounce: Duration::from_millis(300),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Lets spawned tasks run without moving the clock.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_follow_the_cron_schedule_on_the_paused_clock() {
        let rec = Recorder::default();
        let shutdown = Shutdown::new();
        let (_tx, rx) = mpsc::channel(8);
        let clock = Arc::new(TokioClock::starting_at(start()));
        let task = tokio::spawn(run_loop(
            rec.clone(),
            clock,
            settings("*/10 * * * * *"),
            rx,
            shutdown.signal(),
        ));
        // Sleeping on the paused clock lets tokio advance it timer by timer,
        // so every tick happens at its own instant.
        tokio::time::sleep(Duration::from_secs(35)).await;
        shutdown.trigger();
        task.await.unwrap();
        let calls = rec.calls.lock().unwrap().clone();
        let times: Vec<String> = calls
            .iter()
            .map(|(t, _)| t.format("%H:%M:%S").to_string())
            .collect();
        assert_eq!(times, ["00:00:03", "00:00:10", "00:00:20", "00:00:30"]);
        assert_eq!(calls[0].1, Reason::Start);
        assert!(calls[1..].iter().all(|(_, r)| *r == Reason::Schedule));
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_article_is_published_at_its_time_between_ticks() {
        let rec = Recorder::default();
        *rec.due_once.lock().unwrap() = Some(start() + chrono::Duration::seconds(100));
        let shutdown = Shutdown::new();
        let (_tx, rx) = mpsc::channel(8);
        let clock = Arc::new(TokioClock::starting_at(start()));
        let task = tokio::spawn(run_loop(
            rec.clone(),
            clock,
            settings("0 0 * * * *"),
            rx,
            shutdown.signal(),
        ));
        tokio::time::sleep(Duration::from_secs(120)).await;
        shutdown.trigger();
        task.await.unwrap();
        let calls = rec.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(
            calls[1],
            (start() + chrono::Duration::seconds(100), Reason::Due)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_changes_is_one_rebuild_after_the_quiet_period() {
        let rec = Recorder::default();
        let shutdown = Shutdown::new();
        let (tx, rx) = mpsc::channel(8);
        let clock = Arc::new(TokioClock::starting_at(start()));
        let task = tokio::spawn(run_loop(
            rec.clone(),
            clock,
            settings("0 0 * * * *"),
            rx,
            shutdown.signal(),
        ));
        settle().await;
        for _ in 0..5 {
            tx.send(()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            rec.calls.lock().unwrap().len(),
            1,
            "no rebuild while changes keep coming"
        );
        tokio::time::sleep(Duration::from_millis(301)).await;
        shutdown.trigger();
        task.await.unwrap();
        let calls = rec.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[1].1, Reason::FileChange);
        assert_eq!(
            calls[1].0,
            start() + chrono::Duration::milliseconds(400 + 300)
        );
    }

    /// Panics on its first rebuild, as a bad article once made the real
    /// one do; records the later ones.
    struct PanicsFirst {
        calls: Calls,
    }

    impl Rebuilder for PanicsFirst {
        async fn rebuild(&mut self, now: DateTime<Utc>, reason: Reason) -> Option<DateTime<Utc>> {
            let first = {
                let mut calls = self.calls.lock().unwrap();
                calls.push((now, reason));
                calls.len() == 1
            };
            if first {
                panic!("date cannot be represented");
            }
            None
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_rebuild_is_counted_and_the_next_one_still_runs() {
        let calls = Calls::default();
        let shutdown = Shutdown::new();
        let (tx, rx) = mpsc::channel(8);
        let clock = Arc::new(TokioClock::starting_at(start()));
        let s = settings("0 0 * * * *");
        let metrics = Arc::clone(&s.metrics);
        let task = tokio::spawn(run_loop(
            PanicsFirst {
                calls: Arc::clone(&calls),
            },
            clock,
            s,
            rx,
            shutdown.signal(),
        ));
        settle().await;
        assert_eq!(metrics.panics("rebuild"), 1);
        assert_eq!(metrics.rebuild_failures(), 1);
        tx.send(()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        shutdown.trigger();
        task.await.expect("the loop survives the panic");
        let calls = calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[1].1, Reason::FileChange);
        assert_eq!(metrics.panics("rebuild"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_loop_without_another_rebuild() {
        let rec = Recorder::default();
        let shutdown = Shutdown::new();
        let (_tx, rx) = mpsc::channel(8);
        let clock = Arc::new(TokioClock::starting_at(start()));
        let task = tokio::spawn(run_loop(
            rec.clone(),
            clock,
            settings("* * * * * *"),
            rx,
            shutdown.signal(),
        ));
        settle().await;
        shutdown.trigger();
        task.await.unwrap();
        assert_eq!(rec.calls.lock().unwrap().len(), 1);
    }
}
