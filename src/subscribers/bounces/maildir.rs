//! A Maildir folder of bounce reports (`bounces.maildir`): the MTA
//! delivers DSNs and abuse reports into `new/`; each is applied and then
//! moved to `cur/` (flag `S`, seen), so a restart never applies one twice
//! and the operator keeps the evidence. A report that cannot be applied
//! because the database is unavailable stays in `new/` for the next pass.
//! Replicas watching one shared folder race on the rename; the loser
//! finds the file gone and moves on (the store would not count it twice
//! anyway: reports are applied once by their Message-ID).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{Applied, Bounces, IngestError};
use crate::base::shutdown::ShutdownSignal;
use crate::mail::reports::MAX_REPORT;

/// How often the folder is read even without a notification (network
/// file systems do not send them).
const RESCAN: Duration = Duration::from_secs(60);

/// Applies every message in `dir/new/`; returns the totals.
pub async fn process(bounces: &Bounces, dir: &Path) -> anyhow::Result<Applied> {
    let new = dir.join("new");
    let cur = dir.join("cur");
    let mut names: Vec<PathBuf> = match std::fs::read_dir(&new) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect(),
        Err(e) => anyhow::bail!("cannot read the Maildir {}: {e}", new.display()),
    };
    names.sort();
    let mut total = Applied::default();
    for path in names {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        // Hidden and temporary names are not messages (Maildir writers
        // use tmp/, but be safe).
        if name.starts_with('.') {
            continue;
        }
        let raw = match std::fs::metadata(&path) {
            Ok(m) if m.len() as usize > MAX_REPORT => Vec::new(),
            Ok(_) => match std::fs::read(&path) {
                Ok(bytes) => bytes,
                Err(_) => continue,
            },
            Err(_) => continue,
        };
        match bounces.ingest(&raw, None).await {
            Ok(applied) => {
                total.applied += applied.applied;
                total.changed += applied.changed;
                total.duplicates += applied.duplicates;
                total.unmatched += applied.unmatched;
                total.ignored += applied.ignored;
            }
            Err(IngestError::NotAReport(e)) => {
                total.ignored += 1;
                tracing::info!("bounce Maildir: {name}: {e}; moved to cur/ unread");
            }
            Err(e) => {
                tracing::warn!("bounce Maildir: {name}: {e}; left for the next pass");
                return Ok(total);
            }
        }
        let done = cur.join(format!("{}:2,S", name.split(":2,").next().unwrap_or(&name)));
        if let Err(e) = std::fs::rename(&path, &done) {
            if e.kind() != std::io::ErrorKind::NotFound {
                anyhow::bail!("cannot move {} to {}: {e}", path.display(), done.display());
            }
        }
    }
    Ok(total)
}

/// `herald run`'s loop: reads the folder at start, on every change in
/// `new/` and every minute, until shutdown.
pub async fn watch(bounces: Arc<Bounces>, dir: PathBuf, mut shutdown: ShutdownSignal) {
    for sub in ["new", "cur", "tmp"] {
        if let Err(e) = std::fs::create_dir_all(dir.join(sub)) {
            tracing::error!("bounces.maildir {}: {e}", dir.display());
            return;
        }
    }
    let (tx, mut rx) = mpsc::channel(1);
    let watcher = notify::recommended_watcher(move |_event| {
        let _ = tx.try_send(());
    })
    .and_then(|mut w| {
        w.watch(&dir.join("new"), RecursiveMode::NonRecursive)
            .map(|()| w)
    });
    let _watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(
                "cannot watch {} ({e}); reading it every {}s",
                dir.display(),
                RESCAN.as_secs()
            );
            None
        }
    };
    tracing::info!("reading bounce reports from the Maildir {}", dir.display());
    loop {
        match process(&bounces, &dir).await {
            Ok(a) if a == Applied::default() => {}
            Ok(a) => tracing::info!("bounce Maildir: {a}"),
            Err(e) => tracing::warn!("bounce Maildir: {e:#}"),
        }
        tokio::select! {
            _ = shutdown.wait() => return,
            _ = rx.recv() => {
                // A burst of deliveries is one pass.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ = tokio::time::sleep(RESCAN) => {}
        }
    }
}
