//! One build: load the content directory, plan the feeds, write them.
//! `herald build` and `herald check` call this; the daemon will too.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::content::{self, Catalog, FirstSeen, LoadReport};
use crate::feeds::{self, WriteReport};

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
    let mut first_seen = if opts.write {
        FirstSeen::open(&config.data_dir)?
    } else {
        // Read the record if there is one, but never write it.
        FirstSeen::open(&config.data_dir).unwrap_or_else(|_| FirstSeen::in_memory())
    };
    let (catalog, load) = content::load(config, opts.now, &mut first_seen)?;
    tracing::info!(
        files = load.files,
        published = catalog.len(),
        rejected = load.rejected.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "content loaded"
    );
    let specs = feeds::plan(config, &catalog);
    let write = if opts.write {
        // Dates become durable before any feed shows them.
        first_seen.save()?;
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
