//! One build: load the content directory, plan the feeds, write them.
//! `herald build` and `herald check` call this.
//!
//! The dates of undated articles come from the store, so that a build
//! agrees with the daemon (and every replica); `build` records new ones
//! there before any feed shows them, `check` only reads.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::config::DatabaseLocation;
use crate::content::{self, Catalog, FirstSeen, LoadReport};
use crate::feeds::{self, WriteReport};
use crate::store::{self, Store};

/// Runs `f` on the configured store, on a thread of its own (a build is
/// synchronous code, and may be called from inside a runtime).
fn with_store<T, F, Fut>(config: &Config, f: F) -> anyhow::Result<T>
where
    T: Send,
    F: FnOnce(std::sync::Arc<dyn Store>) -> Fut + Send,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let s = store::open(config).await?;
                    let out = f(std::sync::Arc::clone(&s)).await;
                    s.close().await;
                    out
                })
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the store thread panicked")))
    })
}

/// The dates of undated articles for `herald check`: from the store when
/// there is one already (never creating it), else from the file herald
/// kept before, else none.
fn read_dates(config: &Config) -> FirstSeen {
    let exists = match config.database() {
        DatabaseLocation::Sqlite(path) => path.exists(),
        DatabaseLocation::Postgres(_) => true,
    };
    let stored = exists
        .then(|| with_store(config, |s| async move { Ok(s.undated_dates().await?) }))
        .and_then(Result::ok)
        .filter(|d| !d.is_empty());
    match stored {
        Some(dates) => FirstSeen::from_dates(dates),
        None => FirstSeen::read_legacy(&config.data_dir)
            .ok()
            .flatten()
            .unwrap_or_default(),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct BuildOptions {
    /// Write feeds and state; `false` only validates (`herald check`).
    pub write: bool,
    /// What counts as "now" for scheduled articles.
    pub now: DateTime<Utc>,
}

#[derive(Debug)]
pub struct BuildOutcome {
    pub catalog: Catalog,
    pub load: LoadReport,
    /// Number of feeds (site-wide and per tag), each in every format.
    pub feeds: usize,
    pub write: Option<WriteReport>,
    pub elapsed: Duration,
}

pub fn build(config: &Config, opts: BuildOptions) -> anyhow::Result<BuildOutcome> {
    let started = Instant::now();
    if opts.write {
        feeds::remove_leftovers(config);
    }
    let (catalog, load) = if opts.write {
        let mut first_seen = with_store(config, |s| async move {
            store::seen::load_undated(&*s, &config.data_dir).await
        })?;
        let (catalog, load) = content::load(config, opts.now, &mut first_seen)?;
        // Dates become durable (and agree with other replicas) before any
        // feed shows them.
        let differ = with_store(config, |s| {
            let fs = &mut first_seen;
            async move { Ok(store::seen::share_undated(&*s, fs).await?) }
        })?;
        if differ.is_empty() {
            (catalog, load)
        } else {
            content::load(config, opts.now, &mut first_seen)?
        }
    } else {
        // Read the record if there is one, but never write it.
        let mut first_seen = read_dates(config);
        content::load(config, opts.now, &mut first_seen)?
    };
    tracing::info!(
        files = load.files,
        published = catalog.len(),
        rejected = load.rejected.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "content loaded"
    );
    let specs = feeds::plan(config, &catalog);
    let write = if opts.write {
        let report = feeds::write_all(config, &specs, &config.feeds.dir)?;
        tracing::info!(
            written = report.written.len(),
            unchanged = report.unchanged.len(),
            removed = report.removed.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "feeds written to {}",
            config.feeds.dir.display()
        );
        Some(report)
    } else {
        // Render in memory so that `check` catches anything writing would.
        for spec in &specs {
            for format in config.formats() {
                feeds::render(spec, format, config, &mut std::io::sink())?;
            }
        }
        None
    };
    Ok(BuildOutcome {
        catalog,
        load,
        feeds: specs.len(),
        write,
        elapsed: started.elapsed(),
    })
}

impl BuildOutcome {
    /// The one-line summary printed at the end of `herald build`.
    pub fn summary(&self) -> String {
        let l = &self.load;
        let mut s = format!(
            "published {} article{}, rejected {} file{}, {} draft{}, {} scheduled",
            self.catalog.len(),
            plural(self.catalog.len()),
            l.rejected.len(),
            plural(l.rejected.len()),
            l.drafts,
            plural(l.drafts),
            l.scheduled,
        );
        if !l.skipped.is_empty() {
            // Files that are not articles (README, stubs, data): listed
            // one by one with --verbose.
            s.push_str(&format!(", {} skipped", l.skipped.len()));
        }
        match &self.write {
            Some(w) => s.push_str(&format!(
                "; wrote {} file{} ({} unchanged, {} removed)",
                w.written.len(),
                plural(w.written.len()),
                w.unchanged.len(),
                w.removed.len()
            )),
            None => s.push_str(&format!("; {} feeds valid, nothing written", self.feeds)),
        }
        s.push_str(&format!(" in {:.3} s", self.elapsed.as_secs_f64()));
        if let Some(mib) = peak_memory_mib() {
            s.push_str(&format!(", peak memory {mib} MiB"));
        }
        s
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_memory_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb.div_ceil(1024))
}
