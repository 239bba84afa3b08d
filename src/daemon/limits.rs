//! The open-file limit: every connection is a file descriptor, and the
//! soft limit (often 1024) is what runs out first under many clients, not
//! memory. herald raises its soft limit to the hard one at start, as
//! nginx's `worker_rlimit_nofile` would, and sizes its connection cap from
//! what it got.

/// Soft limits are raised no higher than this: Linux refuses more than
/// `fs.nr_open` (1048576 by default), even under an infinite hard limit.
const CEILING: u64 = 1 << 20;

/// The soft open-file limit before and after raising it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and says so in the
/// log. Where the limit cannot be read or raised, the log says that and
/// the limit in force is used.
pub fn raise_open_files() -> OpenFiles {
    let (before, hard) = match rlimit::Resource::NOFILE.get() {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!("cannot read the open-file limit ({e}); assuming 1024");
            return OpenFiles {
                before: 1024,
                now: 1024,
                hard: 1024,
            };
        }
    };
    let now = match rlimit::increase_nofile_limit(CEILING) {
        Ok(now) => now.max(before),
        Err(e) => {
            tracing::warn!(
                "cannot raise the open-file limit from {before} (hard limit {hard}): {e}"
            );
            before
        }
    };
    if now > before {
        tracing::info!("raised the open-file limit from {before} to {now} (hard limit {hard})");
    } else {
        tracing::info!("open-file limit {now} (hard limit {hard})");
    }
    OpenFiles { before, now, hard }
}
