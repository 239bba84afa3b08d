//! Dates herald gave to articles that carry none. An undated article is
//! dated by its file's modification time the first time herald sees it, and
//! keeps that date afterwards (stored in `data_dir/first-seen.json`), so that
//! touching or editing the file neither reorders the feed nor changes its
//! bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, FixedOffset};

use crate::base::fs::{write_if_changed, Durability};

#[derive(Debug, Default, Clone)]
pub struct FirstSeen {
    path: Option<PathBuf>,
    dates: BTreeMap<String, DateTime<FixedOffset>>,
    dirty: bool,
}

impl FirstSeen {
    /// A record kept only in memory (for `herald check` and tests).
    pub fn in_memory() -> FirstSeen {
        FirstSeen::default()
    }

    /// Reads the record under `data_dir`; a missing file is an empty record.
    pub fn open(data_dir: &Path) -> anyhow::Result<FirstSeen> {
        let path = data_dir.join("first-seen.json");
        let dates = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is damaged; delete it to start afresh", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(FirstSeen {
            path: Some(path),
            dates,
            dirty: false,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    pub fn get(&self, rel: &str) -> Option<DateTime<FixedOffset>> {
        self.dates.get(rel).copied()
    }

    pub fn record(&mut self, rel: &str, date: DateTime<FixedOffset>) {
        if self.dates.get(rel) != Some(&date) {
            self.dates.insert(rel.to_string(), date);
            self.dirty = true;
        }
    }

    /// Forgets files that are no longer undated articles.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let before = self.dates.len();
        self.dates.retain(|k, _| keep(k));
        self.dirty |= self.dates.len() != before;
    }

    /// Writes the record if it changed (atomically).
    pub fn save(&mut self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let mut bytes = serde_json::to_vec_pretty(&self.dates)?;
        bytes.push(b'\n');
        write_if_changed(path, &bytes, Durability::Synced)?;
        self.dirty = false;
        Ok(())
    }
}
