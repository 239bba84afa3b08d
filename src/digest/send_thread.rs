//! The thread digest deliveries are composed and sent on: a runtime of
//! its own ([`RuntimeThread`]), started at the first run a process sends.
//!
//! Why: on the daemon's multi-threaded runtime, the SMTP replies of eight
//! connections kept waking one worker thread after another, and each
//! wake-up may wake a second worker to steal work that is not there. With
//! the deliveries on one thread of their own (the claimer and recorder
//! stay on the caller's runtime and exchange whole batches with it),
//! herald's CPU per message fell by about a tenth (issue 15's bench,
//! 10,000 digests of 100 KB: 0.113 to 0.102 ms with the sending on one
//! thread). The HTTP server keeps its cores meanwhile.
//!
//! The thread lives as long as the process: SMTP connections opened on it
//! stay in the pool, registered with its runtime, and whoever takes them
//! from the pool later (the next run, a confirmation mail, the QUIT at
//! shutdown) needs that runtime still running.

use std::sync::OnceLock;

use tokio::runtime::Handle;

use crate::base::runtime::RuntimeThread;

/// Where deliveries are spawned: the sending thread's runtime, or, should
/// the thread not start, the caller's (logged once).
pub(super) fn handle() -> Handle {
    static THREAD: OnceLock<Option<RuntimeThread>> = OnceLock::new();
    let thread = THREAD.get_or_init(|| match RuntimeThread::start("herald-digest") {
        Ok(thread) => Some(thread),
        Err(e) => {
            tracing::warn!(
                "cannot start the digest sending thread ({e}); digests are sent on the main runtime"
            );
            None
        }
    });
    match thread {
        Some(t) => t.handle().clone(),
        None => Handle::current(),
    }
}
