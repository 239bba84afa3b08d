//! Parse results kept between rebuilds, so that a rescan reads and parses
//! only files that are new or whose size or modification time changed.

use std::path::Path;

use std::time::SystemTime;

use super::{parse_all, FirstSeen, Parsed, Section, SourceFile};
use crate::config::Config;

#[derive(Debug, Default)]
pub struct ContentCache {
    /// Sorted by `rel`, like a scan; a rescan is a merge of two sorted
    /// lists, with no hashing of every path.
    entries: Vec<Entry>,
    /// The sections the entries were parsed with: articles know their
    /// section, so a change of sections parses everything again.
    sections: Vec<Section>,
}

#[derive(Debug)]
struct Entry {
    rel: String,
    size: u64,
    modified: SystemTime,
    result: Parsed,
}

/// What one pass over the cache did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub parsed: usize,
    pub reused: usize,
    pub removed: usize,
}

impl CacheStats {
    pub fn changed(&self) -> bool {
        self.parsed > 0 || self.removed > 0
    }
}

impl ContentCache {
    pub fn new() -> ContentCache {
        ContentCache::default()
    }

    /// Drops the results for `rels`: their files are parsed again next time
    /// (their assigned date changed, say).
    pub fn forget(&mut self, rels: &[String]) {
        self.entries.retain(|e| !rels.contains(&e.rel));
    }

    /// Results for `files` (sorted by `rel`, as [`super::scan`] returns
    /// them), in order: cached where size and mtime match, parsed (in
    /// parallel) otherwise. Entries for files no longer present are dropped.
    pub fn parse(
        &mut self,
        files: &[SourceFile],
        config: &Config,
        content_dir: &Path,
        first_seen: &FirstSeen,
        sections: &[Section],
        now: chrono::DateTime<chrono::Utc>,
    ) -> (Vec<Parsed>, CacheStats) {
        if self.sections != sections {
            self.entries.clear();
            self.sections = sections.to_vec();
        }
        debug_assert!(
            files.windows(2).all(|w| w[0].rel < w[1].rel),
            "scan is sorted"
        );
        let mut stats = CacheStats::default();
        let mut old = std::mem::take(&mut self.entries).into_iter().peekable();
        let mut kept: Vec<Option<Entry>> = Vec::with_capacity(files.len());
        let mut stale: Vec<SourceFile> = Vec::new();
        for f in files {
            while old.next_if(|o| o.rel < f.rel).is_some() {
                stats.removed += 1;
            }
            match old.next_if(|o| o.rel == f.rel) {
                Some(o) if o.size == f.size && o.modified == f.modified => kept.push(Some(o)),
                _ => {
                    kept.push(None);
                    stale.push(f.clone());
                }
            }
        }
        stats.removed += old.count();
        stats.parsed = stale.len();
        stats.reused = files.len() - stale.len();

        let mut fresh = parse_all(&stale, config, content_dir, first_seen, sections, now)
            .into_iter()
            .zip(stale);
        self.entries = kept
            .into_iter()
            .map(|slot| {
                slot.unwrap_or_else(|| {
                    let (result, f) = fresh.next().expect("one parse per stale file");
                    Entry {
                        rel: f.rel,
                        size: f.size,
                        modified: f.modified,
                        result,
                    }
                })
            })
            .collect();
        let results = self.entries.iter().map(|e| e.result.clone()).collect();
        (results, stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::scan;
    use std::sync::Arc;

    #[test]
    fn only_new_or_changed_files_are_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let content = dir.path().join("content");
        std::fs::create_dir_all(&content).unwrap();
        let config = Config::parse(&format!(
            "[site]\ntitle = \"T\"\nbase_url = \"https://e.org/\"\nauthor = {{ name = \"A\" }}\n[content]\ndir = {:?}\n",
            content.display().to_string()
        ))
        .unwrap();
        let write = |name: &str, title: &str, secs: i64| {
            let p = content.join(name);
            std::fs::write(
                &p,
                format!("+++\ntitle = \"{title}\"\ndate = 2024-01-01\n+++\nx\n"),
            )
            .unwrap();
            filetime::set_file_mtime(&p, filetime::FileTime::from_unix_time(secs, 0)).unwrap();
        };
        write("a.md", "A", 1);
        write("b.md", "B", 1);
        write("c.md", "C", 1);
        let seen = FirstSeen::in_memory();
        let mut cache = ContentCache::new();
        let pass = |cache: &mut ContentCache| {
            let s = scan(&config).unwrap();
            cache.parse(
                &s.files,
                &config,
                &content,
                &seen,
                &s.sections,
                chrono::Utc::now(),
            )
        };
        let (r, st) = pass(&mut cache);
        assert_eq!((st.parsed, st.reused, st.removed), (3, 0, 0));
        let a_first = Arc::clone(r[0].article().unwrap());

        let (_, st) = pass(&mut cache);
        assert_eq!((st.parsed, st.reused, st.removed), (0, 3, 0));
        assert!(!st.changed());

        write("b.md", "B2", 2);
        std::fs::remove_file(content.join("c.md")).unwrap();
        write("0.md", "Zero", 1);
        let (r, st) = pass(&mut cache);
        assert_eq!((st.parsed, st.reused, st.removed), (2, 1, 1));
        let titles: Vec<&str> = r
            .iter()
            .map(|x| x.article().unwrap().title.as_str())
            .collect();
        assert_eq!(titles, ["Zero", "A", "B2"]);
        assert!(
            Arc::ptr_eq(&a_first, r[1].article().unwrap()),
            "unchanged articles are shared, not re-parsed"
        );
    }
}
