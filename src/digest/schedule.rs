//! When digests run: the ticks of each `[[digest]]` cron expression, read
//! in the schedule's time zone (so `0 0 8 * * Mon` is 08:00 in Paris
//! whether or not Paris is on summer time), and the daemon's loop.
//!
//! The loop starts a run at every tick. A tick missed while herald was
//! down is caught up once at start: only the latest missed one, never one
//! from before the schedule was first armed. Ticks that pass while a long
//! send is busy are folded the same way into one run. Runs are unique per
//! (schedule, tick) in the ledger, so a tick never runs twice even when
//! two processes see it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::base::clock::Clock;
use crate::base::shutdown::ShutdownSignal;
use crate::store::Trigger;

/// Most ticks looked at when searching for the latest missed one (a
/// per-second schedule after a day of downtime is 86,400).
const MAX_TICKS_SCANNED: usize = 10_000_000;

/// One schedule as the loop needs it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub schedule: cron::Schedule,
    pub tz: Tz,
}

impl Entry {
    /// The first tick strictly after `after`.
    pub fn next_tick(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&self.tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest tick in `(after, until]`.
    pub fn latest_tick(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&after.with_timezone(&self.tz))
            .take(MAX_TICKS_SCANNED)
            .map(|t| t.with_timezone(&Utc))
            .take_while(|t| *t <= until)
            .last()
    }
}

/// What the loop drives: the real digests, or a recorder in tests.
pub trait DigestWork: Send + 'static {
    /// Plans the run of `schedule` for `tick` (nothing if it exists).
    fn start(
        &mut self,
        schedule: &str,
        tick: DateTime<Utc>,
        trigger: Trigger,
    ) -> impl Future<Output = ()> + Send;

    /// Sends what is due; returns when more will be (retries).
    fn drain(&mut self) -> impl Future<Output = Option<DateTime<Utc>>> + Send;
}

/// Runs until `shutdown`. `since` gives, per schedule, the point catch-up
/// may reach back to: the later of its last run's tick and the time it
/// was first armed. `poll` bounds how long queued work (from
/// `herald digest send` on the command line) waits.
pub async fn run_loop<W: DigestWork>(
    mut work: W,
    clock: Arc<dyn Clock>,
    entries: Vec<Entry>,
    since: HashMap<String, DateTime<Utc>>,
    poll: Duration,
    mut shutdown: ShutdownSignal,
) {
    let start = clock.now();
    let mut seen: HashMap<String, DateTime<Utc>> = HashMap::new();
    for e in &entries {
        let from = since.get(&e.name).copied().unwrap_or(start);
        if let Some(tick) = e.latest_tick(from, start) {
            tracing::info!(schedule = %e.name, %tick, "catching up on a digest missed while herald was down");
            work.start(&e.name, tick, Trigger::CatchUp).await;
        }
        seen.insert(e.name.clone(), start);
    }
    let mut retry = work.drain().await;
    loop {
        let now = clock.now();
        let mut wake = now + chrono::Duration::from_std(poll).unwrap_or(chrono::Duration::MAX);
        for e in &entries {
            if let Some(t) = e.next_tick(seen[&e.name]) {
                wake = wake.min(t);
            }
        }
        if let Some(r) = retry {
            wake = wake.min(r.max(now));
        }
        let sleep_for = (wake - now).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            biased;
            _ = shutdown.wait() => break,
            _ = tokio::time::sleep(sleep_for) => {}
        }
        let now = clock.now();
        for e in &entries {
            let last = seen[&e.name];
            if let Some(tick) = e.latest_tick(last, now) {
                work.start(&e.name, tick, Trigger::Schedule).await;
            }
            seen.insert(e.name.clone(), now.max(last));
        }
        if shutdown.is_triggered() {
            break;
        }
        retry = work.drain().await;
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::sync::Mutex;

    use super::*;
    use crate::base::clock::TokioClock;
    use crate::base::shutdown::Shutdown;

    type Started = Vec<(String, DateTime<Utc>, Trigger)>;

    #[derive(Clone, Default)]
    struct Recorder {
        started: Arc<Mutex<Started>>,
        drains: Arc<Mutex<u32>>,
    }

    impl DigestWork for Recorder {
        async fn start(&mut self, schedule: &str, tick: DateTime<Utc>, trigger: Trigger) {
            let mut started = self.started.lock().unwrap();
            // The ledger's uniqueness, as the real store enforces it.
            if !started.iter().any(|(s, t, _)| s == schedule && *t == tick) {
                started.push((schedule.to_string(), tick, trigger));
            }
        }

        async fn drain(&mut self) -> Option<DateTime<Utc>> {
            *self.drains.lock().unwrap() += 1;
            None
        }
    }

    fn entry(name: &str, expr: &str, tz: &str) -> Entry {
        Entry {
            name: name.into(),
            schedule: cron::Schedule::from_str(expr).unwrap(),
            tz: tz.parse().unwrap(),
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    async fn run_for(
        entries: Vec<Entry>,
        since: HashMap<String, DateTime<Utc>>,
        start: DateTime<Utc>,
        run: Duration,
    ) -> Started {
        let recorder = Recorder::default();
        let shutdown = Shutdown::new();
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(start));
        let task = tokio::spawn(run_loop(
            recorder.clone(),
            clock,
            entries,
            since,
            Duration::from_secs(5),
            shutdown.signal(),
        ));
        tokio::time::sleep(run).await;
        shutdown.trigger();
        task.await.unwrap();
        let started = recorder.started.lock().unwrap().clone();
        started
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_start_runs_on_their_instants() {
        let started = run_for(
            vec![entry("hourly", "0 0 * * * *", "UTC")],
            HashMap::new(),
            t("2026-11-30T07:59:30Z"),
            Duration::from_secs(2 * 3600 + 60),
        )
        .await;
        assert_eq!(
            started,
            vec![
                (
                    "hourly".into(),
                    t("2026-11-30T08:00:00Z"),
                    Trigger::Schedule
                ),
                (
                    "hourly".into(),
                    t("2026-11-30T09:00:00Z"),
                    Trigger::Schedule
                ),
                (
                    "hourly".into(),
                    t("2026-11-30T10:00:00Z"),
                    Trigger::Schedule
                ),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn time_zones_move_the_ticks_with_summer_time() {
        // 08:00 in Paris is 07:00 UTC in winter and 06:00 UTC in summer.
        let e = entry("morning", "0 0 8 * * *", "Europe/Paris");
        assert_eq!(
            e.next_tick(t("2026-11-30T00:00:00Z")),
            Some(t("2026-11-30T07:00:00Z"))
        );
        assert_eq!(
            e.next_tick(t("2026-07-01T00:00:00Z")),
            Some(t("2026-07-01T06:00:00Z"))
        );
        let started = run_for(
            vec![e, entry("utc", "0 0 8 * * *", "UTC")],
            HashMap::new(),
            t("2026-11-30T06:00:00Z"),
            Duration::from_secs(3 * 3600),
        )
        .await;
        assert_eq!(
            started,
            vec![
                (
                    "morning".into(),
                    t("2026-11-30T07:00:00Z"),
                    Trigger::Schedule
                ),
                ("utc".into(), t("2026-11-30T08:00:00Z"), Trigger::Schedule),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_latest_missed_tick_is_caught_up_once() {
        // Down from Monday 08:00 to Thursday 12:00: three daily ticks missed.
        let since = HashMap::from([("daily".to_string(), t("2026-11-30T08:00:00Z"))]);
        let started = run_for(
            vec![entry("daily", "0 0 8 * * *", "UTC")],
            since,
            t("2026-12-03T12:00:00Z"),
            Duration::from_secs(3600),
        )
        .await;
        assert_eq!(
            started,
            vec![("daily".into(), t("2026-12-03T08:00:00Z"), Trigger::CatchUp)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_caught_up_without_a_missed_tick_or_before_arming() {
        // Armed now: there is nothing to catch up on.
        let started = run_for(
            vec![entry("daily", "0 0 8 * * *", "UTC")],
            HashMap::new(),
            t("2026-12-03T12:00:00Z"),
            Duration::from_secs(60),
        )
        .await;
        assert!(started.is_empty(), "{started:?}");
        // The last run was at the latest tick already.
        let since = HashMap::from([("daily".to_string(), t("2026-12-03T08:00:00Z"))]);
        let started = run_for(
            vec![entry("daily", "0 0 8 * * *", "UTC")],
            since,
            t("2026-12-03T12:00:00Z"),
            Duration::from_secs(60),
        )
        .await;
        assert!(started.is_empty(), "{started:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_tick_is_never_started_twice() {
        // Restarting right after a tick was run: the since-point is that
        // tick, so it is not caught up again.
        let since = HashMap::from([("m".to_string(), t("2026-11-30T08:00:00Z"))]);
        let started = run_for(
            vec![entry("m", "0 * * * * *", "UTC")],
            since,
            t("2026-11-30T08:00:30Z"),
            Duration::from_secs(160),
        )
        .await;
        let ticks: Vec<_> = started.iter().map(|(_, t, _)| *t).collect();
        assert_eq!(
            ticks,
            vec![
                t("2026-11-30T08:01:00Z"),
                t("2026-11-30T08:02:00Z"),
                t("2026-11-30T08:03:00Z")
            ]
        );
    }

    #[test]
    fn latest_tick_looks_only_inside_the_window() {
        let e = entry("d", "0 0 8 * * *", "UTC");
        assert_eq!(
            e.latest_tick(t("2026-11-30T08:00:00Z"), t("2026-11-30T08:00:00Z")),
            None
        );
        assert_eq!(
            e.latest_tick(t("2026-11-30T07:59:59Z"), t("2026-11-30T08:00:00Z")),
            Some(t("2026-11-30T08:00:00Z"))
        );
    }
}
