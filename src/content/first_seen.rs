//! Dates herald gave to articles that carry none. An undated article is
//! dated by its file's modification time the first time herald sees it, and
//! keeps that date afterwards, so that touching or editing the file neither
//! reorders the feed nor changes its bytes.
//!
//! This is the record in memory; where it is kept is the caller's business
//! (the store shares it between replicas): it says what changed since it
//! was last asked ([`FirstSeen::take_changes`]) and takes the stored dates
//! back ([`FirstSeen::set`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, FixedOffset};

#[derive(Debug, Default, Clone)]
pub struct FirstSeen {
    dates: BTreeMap<String, DateTime<FixedOffset>>,
    /// Recorded or changed since the last `take_changes`.
    recorded: BTreeSet<String>,
    forgotten: BTreeSet<String>,
}

/// What changed in a [`FirstSeen`] since it was last asked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FirstSeenChanges {
    pub recorded: Vec<(String, DateTime<FixedOffset>)>,
    pub forgotten: Vec<String>,
}

impl FirstSeenChanges {
    pub fn is_empty(&self) -> bool {
        self.recorded.is_empty() && self.forgotten.is_empty()
    }
}

impl FirstSeen {
    /// An empty record.
    pub fn in_memory() -> FirstSeen {
        FirstSeen::default()
    }

    /// A record holding `dates` (as stored), with no changes.
    pub fn from_dates(
        dates: impl IntoIterator<Item = (String, DateTime<FixedOffset>)>,
    ) -> FirstSeen {
        FirstSeen {
            dates: dates.into_iter().collect(),
            ..FirstSeen::default()
        }
    }

    /// Reads `data_dir/first-seen.json`, where herald kept the record
    /// before the store did; `None` when there is no such file.
    pub fn read_legacy(data_dir: &Path) -> anyhow::Result<Option<FirstSeen>> {
        let path = data_dir.join("first-seen.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let dates: BTreeMap<String, DateTime<FixedOffset>> = serde_json::from_slice(&bytes)
                    .with_context(|| {
                        format!("{} is damaged; delete it to start afresh", path.display())
                    })?;
                Ok(Some(FirstSeen::from_dates(dates)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.dates.is_empty()
    }

    pub fn get(&self, rel: &str) -> Option<DateTime<FixedOffset>> {
        self.dates.get(rel).copied()
    }

    /// Every date, by source path.
    pub fn dates(&self) -> impl Iterator<Item = (&str, DateTime<FixedOffset>)> {
        self.dates.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn record(&mut self, rel: &str, date: DateTime<FixedOffset>) {
        if self.dates.get(rel) != Some(&date) {
            self.dates.insert(rel.to_string(), date);
            self.forgotten.remove(rel);
            self.recorded.insert(rel.to_string());
        }
    }

    /// Takes a date as stored elsewhere, without counting it as a change.
    pub fn set(&mut self, rel: &str, date: DateTime<FixedOffset>) {
        self.dates.insert(rel.to_string(), date);
        self.recorded.remove(rel);
    }

    /// Forgets files that are no longer undated articles.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        let gone: Vec<String> = self.dates.keys().filter(|k| !keep(k)).cloned().collect();
        for rel in gone {
            self.dates.remove(&rel);
            self.recorded.remove(&rel);
            self.forgotten.insert(rel);
        }
    }

    /// What was recorded and forgotten since the last call.
    pub fn take_changes(&mut self) -> FirstSeenChanges {
        let recorded = std::mem::take(&mut self.recorded)
            .into_iter()
            .filter_map(|rel| Some((rel.clone(), *self.dates.get(&rel)?)))
            .collect();
        FirstSeenChanges {
            recorded,
            forgotten: std::mem::take(&mut self.forgotten).into_iter().collect(),
        }
    }

    /// Puts changes back (the store could not take them; they are offered
    /// again next time).
    pub fn restore_changes(&mut self, changes: FirstSeenChanges) {
        for (rel, _) in changes.recorded {
            if self.dates.contains_key(&rel) {
                self.recorded.insert(rel);
            }
        }
        for rel in changes.forgotten {
            if !self.dates.contains_key(&rel) {
                self.forgotten.insert(rel);
            }
        }
    }
}
