//! Whether the daemon is ready to take traffic, and why not: what
//! `/readyz` says. Set by the rebuild loop and by shutdown, read by every
//! probe; a swap of one small value, never a lock.

use std::sync::Arc;

use arc_swap::ArcSwap;

/// The state `/readyz` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyState {
    /// Started; the first build has not finished yet.
    Starting,
    /// No build has succeeded yet; the reason of the last failure (the
    /// content directory is missing or unreadable, a feed cannot be
    /// written).
    Failed(String),
    /// Serving the feeds of the last build.
    Ready,
    /// Serving the last good feeds, but the last rebuild failed: why.
    Stale(String),
    /// Serving the last good feeds, but the content directory is missing
    /// or unreadable (an unmounted volume): not ready, so that an
    /// orchestrator sends readers to a replica that has its content.
    NoContent(String),
    /// Shutting down: load balancers should send nothing more.
    Stopping,
}

impl ReadyState {
    pub fn is_ready(&self) -> bool {
        matches!(self, ReadyState::Ready | ReadyState::Stale(_))
    }

    /// One line for `/readyz` and `herald healthcheck --ready`.
    pub fn describe(&self) -> String {
        match self {
            ReadyState::Starting => "not ready: the first build has not finished".into(),
            ReadyState::Failed(why) => format!("not ready: no build has succeeded yet: {why}"),
            ReadyState::Ready => "ready".into(),
            ReadyState::Stale(why) => {
                format!("ready: serving the last good feeds; the last rebuild failed: {why}")
            }
            ReadyState::NoContent(why) => {
                format!("not ready: the content directory cannot be read ({why}); still serving the last good feeds")
            }
            ReadyState::Stopping => "not ready: shutting down".into(),
        }
    }
}

#[derive(Debug)]
pub struct Readiness {
    state: ArcSwap<ReadyState>,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness::new()
    }
}

impl Readiness {
    pub fn new() -> Readiness {
        Readiness {
            state: ArcSwap::from_pointee(ReadyState::Starting),
        }
    }

    /// Already ready, for tests and tools that serve a finished build.
    pub fn ready() -> Readiness {
        let r = Readiness::new();
        r.set(ReadyState::Ready);
        r
    }

    pub fn get(&self) -> Arc<ReadyState> {
        self.state.load_full()
    }

    pub fn is_ready(&self) -> bool {
        self.state.load().is_ready()
    }

    /// Replaces the state, except that nothing follows `Stopping`.
    pub fn set(&self, next: ReadyState) {
        self.state.rcu(|now| {
            if **now == ReadyState::Stopping {
                Arc::clone(now)
            } else {
                Arc::new(next.clone())
            }
        });
    }

    /// A rebuild succeeded.
    pub fn build_succeeded(&self) {
        self.set(ReadyState::Ready);
    }

    /// The content directory cannot be read: not ready, whether or not an
    /// earlier build succeeded (its feeds are still served to whoever
    /// asks).
    pub fn content_unavailable(&self, why: String) {
        self.state.rcu(|now| {
            Arc::new(match &**now {
                ReadyState::Stopping => ReadyState::Stopping,
                ReadyState::Starting | ReadyState::Failed(_) => ReadyState::Failed(why.clone()),
                _ => ReadyState::NoContent(why.clone()),
            })
        });
    }

    /// A rebuild failed for `why`: not ready before the first success,
    /// serving stale feeds after it.
    pub fn build_failed(&self, why: String) {
        self.state.rcu(|now| {
            Arc::new(match &**now {
                ReadyState::Stopping => ReadyState::Stopping,
                ReadyState::Ready | ReadyState::Stale(_) | ReadyState::NoContent(_) => {
                    ReadyState::Stale(why.clone())
                }
                ReadyState::Starting | ReadyState::Failed(_) => ReadyState::Failed(why.clone()),
            })
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_before_the_first_build_are_not_ready_after_it_stale() {
        let r = Readiness::new();
        assert!(!r.is_ready());
        r.build_failed("content directory `c` is missing".into());
        assert!(!r.is_ready());
        assert!(r.get().describe().contains("is missing"));
        r.build_succeeded();
        assert!(r.is_ready());
        r.build_failed("disk full".into());
        assert!(r.is_ready());
        assert!(r.get().describe().contains("disk full"));
        r.set(ReadyState::Stopping);
        r.build_succeeded();
        assert_eq!(*r.get(), ReadyState::Stopping);
    }

    #[test]
    fn missing_content_is_not_ready_even_after_a_good_build() {
        let r = Readiness::new();
        r.build_succeeded();
        r.content_unavailable("`content` does not exist".into());
        assert!(!r.is_ready());
        let said = r.get().describe();
        assert!(
            said.contains("does not exist") && said.contains("last good feeds"),
            "{said}"
        );
        r.build_succeeded();
        assert!(r.is_ready());
    }
}
