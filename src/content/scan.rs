//! Walking the content directory: which files are articles. Hidden files and
//! folders, Zola section files (`_index.md`) and symlinks that lead outside
//! the content directory are skipped; other file types (images, …) are
//! ignored.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use std::collections::HashSet;
use std::sync::Mutex;

use anyhow::Context;
use rayon::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Markdown,
    Text,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceFile {
    /// Path relative to the content directory, with `/` separators.
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
    pub kind: Kind,
}

impl SourceFile {
    /// The folder part of `rel` (`posts/2024` for `posts/2024/a.md`).
    pub fn section(&self) -> &str {
        self.rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
    }

    /// File name without extension (`a` for `posts/a.md`).
    pub fn stem(&self) -> &str {
        let name = self.rel.rsplit('/').next().unwrap_or(&self.rel);
        name.rsplit_once('.').map(|(s, _)| s).unwrap_or(name)
    }

    /// The folder name for page bundles (`slug/index.md`), else the stem.
    pub fn name_for_slug(&self) -> &str {
        if self.stem() == "index" {
            self.section()
                .rsplit('/')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or("index")
        } else {
            self.stem()
        }
    }

    pub fn in_drafts_folder(&self) -> bool {
        self.rel.split('/').any(|seg| seg == "_drafts")
    }
}

pub struct Scan {
    pub files: Vec<SourceFile>,
    /// Things skipped that the user may want to know about.
    pub warnings: Vec<String>,
}

fn kind_of(name: &str) -> Option<Kind> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "md" | "markdown" => Some(Kind::Markdown),
        "txt" => Some(Kind::Text),
        _ => None,
    }
}

/// Lists the article files under `root`, sorted by relative path.
///
/// The walk uses the file type `read_dir` already knows (no stat per
/// entry), stats only article files, and walks sibling folders in
/// parallel: the daemon runs it on every rescan.
pub fn scan(root: &Path) -> anyhow::Result<Scan> {
    let canonical_root = root
        .canonicalize()
        .with_context(|| format!("content directory {} cannot be opened", root.display()))?;
    if !canonical_root.is_dir() {
        anyhow::bail!("content directory {} is not a directory", root.display());
    }
    let walk = Walk {
        root,
        canonical_root: &canonical_root,
        visited: Mutex::new(HashSet::from([canonical_root.clone()])),
    };
    let mut found = walk.dir(&canonical_root, "")?;
    found.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    found.warnings.sort();
    Ok(found)
}

struct Walk<'a> {
    root: &'a Path,
    canonical_root: &'a Path,
    /// Folders entered through symbolic links, so that a link loop is
    /// walked once.
    visited: Mutex<HashSet<PathBuf>>,
}

impl Walk<'_> {
    fn dir(&self, dir: &Path, rel_dir: &str) -> anyhow::Result<Scan> {
        let mut out = Scan {
            files: Vec::new(),
            warnings: Vec::new(),
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            // The top folder must be readable; a sub-folder that is not is
            // reported and skipped.
            Err(e) if !rel_dir.is_empty() => {
                out.warnings
                    .push(format!("{}: skipped: {e}", self.shown(rel_dir)));
                return Ok(out);
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("cannot read content directory {}", self.root.display())
                })
            }
        };
        let mut subdirs: Vec<(PathBuf, String)> = Vec::new();
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    out.warnings
                        .push(format!("{}: skipped an entry: {e}", self.shown(rel_dir)));
                    continue;
                }
            };
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let rel = if rel_dir.is_empty() {
                name.to_string()
            } else {
                format!("{rel_dir}/{name}")
            };
            let path = entry.path();
            let Ok(file_type) = entry.file_type() else {
                continue;
            };
            let (is_dir, meta) = if file_type.is_symlink() {
                match self.follow(&path) {
                    Some((true, _)) => (true, None),
                    Some((false, meta)) => (false, meta),
                    None => {
                        out.warnings.push(format!(
                            "{}: skipped: symbolic link leads outside the content directory",
                            self.shown(&rel)
                        ));
                        continue;
                    }
                }
            } else {
                (file_type.is_dir(), None)
            };
            if is_dir {
                subdirs.push((path, rel));
                continue;
            }
            if name == "_index.md" || name == "_index.markdown" {
                continue;
            }
            let Some(kind) = kind_of(&name) else { continue };
            let meta = match meta.map(Ok).unwrap_or_else(|| entry.metadata()) {
                Ok(m) if m.is_file() => m,
                Ok(_) => continue,
                Err(e) => {
                    out.warnings
                        .push(format!("{}: skipped: {e}", self.shown(&rel)));
                    continue;
                }
            };
            out.files.push(SourceFile {
                abs: self.root.join(&rel),
                size: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                kind,
                rel,
            });
        }
        let nested: Vec<anyhow::Result<Scan>> = subdirs
            .par_iter()
            .map(|(p, rel)| self.dir(p, rel))
            .collect();
        for n in nested {
            let n = n?;
            out.files.extend(n.files);
            out.warnings.extend(n.warnings);
        }
        Ok(out)
    }

    /// Where a symbolic link leads: `Some((true, _))` for a folder inside
    /// the content directory not yet walked, `Some((false, meta))` for a
    /// file inside it, `None` for anything outside (or a broken link).
    fn follow(&self, link: &Path) -> Option<(bool, Option<std::fs::Metadata>)> {
        let target = link.canonicalize().ok()?;
        if !target.starts_with(self.canonical_root) {
            return None;
        }
        let meta = std::fs::metadata(&target).ok()?;
        if meta.is_dir() {
            let first_visit = self.visited.lock().expect("visited lock").insert(target);
            // A second way into a folder already walked: skip it quietly
            // (its articles are found once).
            first_visit.then_some((true, None)).or(Some((false, None)))
        } else {
            Some((false, Some(meta)))
        }
    }

    fn shown(&self, rel: &str) -> String {
        self.root.join(rel).display().to_string()
    }
}
