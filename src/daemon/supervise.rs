//! Background loops that survive their own panics: caught, logged,
//! counted in `herald_panics_total{task}`, and started again.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use crate::base::metrics::Metrics;
use crate::base::panic;
use crate::base::shutdown::ShutdownSignal;

/// Runs the loop `make` returns; should it panic, the panic is logged and
/// counted, and after a pause the loop starts again, until shutdown.
pub(super) async fn keep_running<F, Fut>(
    task: &'static str,
    metrics: Arc<Metrics>,
    mut shutdown: ShutdownSignal,
    mut make: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        match AssertUnwindSafe(make()).catch_unwind().await {
            Ok(()) => return,
            Err(p) => {
                metrics.panicked(task);
                tracing::error!(
                    task,
                    "a background task panicked; restarting it: {}",
                    panic::message(&*p)
                );
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::shutdown::Shutdown;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_background_loop_that_panics_is_counted_and_started_again() {
        let metrics = Arc::new(Metrics::new());
        let shutdown = Shutdown::new();
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        keep_running(
            "purge",
            Arc::clone(&metrics),
            shutdown.signal(),
            move || {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        panic!("first run fails");
                    }
                }
            },
        )
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 2, "run again after the panic");
        assert_eq!(metrics.panics("purge"), 1);
    }
}
