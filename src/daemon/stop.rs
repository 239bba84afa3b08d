//! The shutdown's one deadline: `server.shutdown_grace` after the signal.
//! At the signal `/readyz` turns 503; a reserve before the deadline the
//! shutdown is abandoned (work in flight given up and recorded), so that
//! recording it and closing connections still fit before the deadline.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::base::ready::{Readiness, ReadyState};
use crate::base::shutdown::Shutdown;

/// When the stop began and when it must be over. On the signal: not ready
/// any more; at `grace - reserve`: abandon what is in flight, leaving the
/// reserve for recording it and closing connections.
pub(super) struct StopClock {
    deadline: Arc<OnceLock<Instant>>,
    grace: Duration,
}

impl StopClock {
    pub(super) fn start(shutdown: &Shutdown, grace: Duration, ready: Arc<Readiness>) -> StopClock {
        let deadline = Arc::new(OnceLock::new());
        let (shutdown, set) = (shutdown.clone(), Arc::clone(&deadline));
        tokio::spawn(async move {
            let mut signal = shutdown.signal();
            signal.wait().await;
            let at = *set.get_or_init(|| Instant::now() + grace);
            ready.set(ReadyState::Stopping);
            tracing::info!(grace_ms = grace.as_millis() as u64, "stopping");
            tokio::select! {
                () = tokio::time::sleep_until(at.checked_sub(reserve(grace)).unwrap_or(at)) => shutdown.abandon(),
                () = signal.abandoned() => {}
            }
        });
        StopClock { deadline, grace }
    }

    /// The shutdown deadline (from now, should the signal not have been
    /// seen yet).
    pub(super) fn deadline(&self) -> Instant {
        *self.deadline.get_or_init(|| Instant::now() + self.grace)
    }
}

/// Time kept back from the grace period for recording what was abandoned
/// and closing connections: a quarter of it, at most a second (settling a
/// batch and closing SQLite take milliseconds; QUIT waits on the server).
fn reserve(grace: Duration) -> Duration {
    (grace / 4).min(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_a_quarter_of_the_grace_and_at_most_a_second() {
        assert_eq!(reserve(Duration::from_secs(8)), Duration::from_secs(1));
        assert_eq!(reserve(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(reserve(Duration::ZERO), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn the_shutdown_is_abandoned_a_reserve_before_the_deadline() {
        let shutdown = Shutdown::new();
        let ready = Arc::new(Readiness::ready());
        let clock = StopClock::start(&shutdown, Duration::from_secs(8), Arc::clone(&ready));
        let signal = shutdown.signal();
        tokio::task::yield_now().await;
        let start = Instant::now();
        shutdown.trigger();
        signal.abandoned().await;
        assert_eq!(start.elapsed(), Duration::from_secs(7));
        assert_eq!(clock.deadline() - start, Duration::from_secs(8));
        assert_eq!(*ready.get(), ReadyState::Stopping);
    }
}
