//! One shutdown fanned out to every task, in two steps:
//!
//! 1. **stop** ([`Shutdown::trigger`], on SIGTERM or SIGINT, or by a test):
//!    start nothing new. The HTTP server stops accepting, the rebuild and
//!    digest loops finish what they hold, WebSub stops retrying.
//! 2. **abandon** ([`Shutdown::abandon`], when the shutdown deadline is
//!    near): drop what is still in flight (slow clients, a send to a
//!    stalled SMTP server) and only record what could not be finished.
//!
//! Both are `tokio_util` cancellation tokens; every holder of a
//! [`ShutdownSignal`] sees them.

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct Shutdown {
    stop: CancellationToken,
    abandon: CancellationToken,
}

#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    stop: CancellationToken,
    abandon: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            stop: CancellationToken::new(),
            abandon: CancellationToken::new(),
        }
    }

    /// Step 1: stop starting work.
    pub fn trigger(&self) {
        self.stop.cancel();
    }

    /// Step 2: give up on work in flight (implies step 1).
    pub fn abandon(&self) {
        self.stop.cancel();
        self.abandon.cancel();
    }

    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal {
            stop: self.stop.clone(),
            abandon: self.abandon.clone(),
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl ShutdownSignal {
    /// Resolves once shutdown has been triggered (at once if it already was).
    pub async fn wait(&mut self) {
        self.stop.cancelled().await;
    }

    pub fn is_triggered(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Resolves once work in flight is to be given up.
    pub async fn abandoned(&self) {
        self.abandon.cancelled().await;
    }

    pub fn is_abandoned(&self) -> bool {
        self.abandon.is_cancelled()
    }
}

/// Resolves on SIGTERM or SIGINT; `Err` when the handlers cannot be
/// installed (then only the other ways of stopping work).
pub async fn os_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_signal_sees_the_trigger() {
        let s = Shutdown::new();
        let mut a = s.signal();
        let mut b = s.signal();
        assert!(!a.is_triggered());
        s.trigger();
        a.wait().await;
        b.wait().await;
        let mut late = s.signal();
        late.wait().await;
        assert!(late.is_triggered());
        assert!(!late.is_abandoned(), "stopping is not abandoning");
    }

    #[tokio::test]
    async fn abandoning_also_stops() {
        let s = Shutdown::new();
        let mut a = s.signal();
        s.abandon();
        a.wait().await;
        a.abandoned().await;
        assert!(a.is_triggered() && a.is_abandoned());
    }
}
