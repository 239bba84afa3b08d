//! The ground floor: small pieces that several groups share and that
//! import nothing of herald's above them (check: `scripts/check-layers.py`).
//!
//! - [`text`]: escaping, slugs, HTML to plain text; depends on nothing.
//! - [`clock`]: wall-clock time behind a trait, paused in tests.
//! - [`shutdown`]: one stop signal for every task, and the later one that
//!   gives up on work in flight.
//! - [`ready`]: what `/readyz` says, and why.
//! - [`served`]: the feed files being served, swapped whole on a publish.
//! - [`email`]: [`SubscriberEmail`], an address parsed at the edge.
//! - [`metrics`]: the counters behind `/metrics`.
//! - [`fs`]: atomic writes.
//! - [`panic`]: caught panics as log lines.
//! - [`runtime`]: single-threaded runtimes on threads of their own.

pub mod clock;
pub mod email;
pub mod fs;
pub mod metrics;
pub mod panic;
pub mod ready;
pub mod runtime;
pub mod served;
pub mod shutdown;
pub mod text;

pub use clock::{Clock, SystemClock, TokioClock};
pub use email::{EmailError, SubscriberEmail};
pub use metrics::Metrics;
pub use ready::{Readiness, ReadyState};
pub use served::{FeedFile, FeedFormat, ServedFeeds, Snapshot};
pub use shutdown::{Shutdown, ShutdownSignal};
