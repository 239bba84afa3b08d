//! Who may send: with SQLite the one process holding an exclusive lock on
//! `<data_dir>/digest.lock`; with PostgreSQL every replica, each under its
//! own name in the ledger's `claimed_by`.

use std::fs::File;

use anyhow::Context;

use crate::config::Config;

/// The exclusive right to send, held as long as the value lives.
pub struct SendLock {
    _file: File,
}

impl SendLock {
    /// Takes `<data_dir>/digest.lock` if no other process holds it.
    pub fn try_acquire(config: &Config) -> anyhow::Result<Option<SendLock>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create the folder {}", config.data_dir.display()))?;
        let path = config.data_dir.join("digest.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(SendLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

/// The right to send digests, as the backend grants it.
pub enum SendRight {
    /// SQLite: this process holds the send lock.
    Exclusive(SendLock),
    /// PostgreSQL: every replica may send; claims are leased.
    Shared,
}

/// A name for this process in the ledger's `claimed_by`: host, process id
/// and a random part (a restarted process never takes over the leases of
/// the one before it).
pub(super) fn sender_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "herald".into());
    format!(
        "{host}:{}:{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}
