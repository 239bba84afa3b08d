//! Walking the content directory: which files are articles. Files are
//! chosen by extension (`content.markdown_extensions`, `text_extensions`)
//! and by gitignore-style patterns (`content.include`, `content.exclude`
//! and `.heraldignore` files in any folder). Hidden files and folders,
//! symlinks that lead outside the content directory and the assets of page
//! bundles are left out; Zola and Hugo section files (`_index.md`) are
//! recorded as sections. Files with an article extension that are left out
//! are listed with the reason, for `herald check --verbose`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use std::collections::HashSet;
use std::sync::Mutex;

use anyhow::Context;
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;
use rayon::prelude::*;

use super::Skipped;
use crate::config::{Config, ContentConfig};

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

#[derive(Debug, Default)]
pub struct Scan {
    pub files: Vec<SourceFile>,
    /// Things skipped that the user may want to know about.
    pub warnings: Vec<String>,
    /// Files with an article extension that are not articles, and why.
    pub skipped: Vec<Skipped>,
    /// Section index files (`_index.md`), relative to the content
    /// directory; their folders are sections.
    pub section_files: Vec<String>,
    /// The sections, from those files and the config.
    pub sections: Vec<super::Section>,
}

/// Which files are articles: built once per scan from `[content]`.
pub struct Select {
    markdown: Vec<String>,
    text: Vec<String>,
    include: Option<Gitignore>,
    exclude: Gitignore,
}

impl Select {
    pub fn new(content: &ContentConfig) -> anyhow::Result<Select> {
        let lower = |v: &[String]| {
            v.iter()
                .map(|e| e.trim_start_matches('.').to_ascii_lowercase())
                .collect()
        };
        let include = if content.include.is_empty() {
            None
        } else {
            Some(patterns(&content.dir, &content.include).context("content.include")?)
        };
        Ok(Select {
            markdown: lower(&content.markdown_extensions),
            text: lower(&content.text_extensions),
            include,
            exclude: patterns(&content.dir, &content.exclude).context("content.exclude")?,
        })
    }

    fn kind_of(&self, name: &str) -> Option<Kind> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        if self.markdown.contains(&ext) {
            Some(Kind::Markdown)
        } else if self.text.contains(&ext) {
            Some(Kind::Text)
        } else {
            None
        }
    }
}

/// Gitignore-style patterns, matched without regard to case (`README*`
/// also leaves out `readme.md`).
pub fn patterns(root: &Path, lines: &[String]) -> anyhow::Result<Gitignore> {
    let mut b = GitignoreBuilder::new(root);
    b.case_insensitive(true)?;
    for l in lines {
        b.add_line(None, l)
            .with_context(|| format!("`{l}` is not a valid pattern"))?;
    }
    Ok(b.build()?)
}

/// An `index.md` that lists the folder's posts (a template with no date,
/// like the Go blog's) rather than being the article of a page bundle.
fn is_listing_page(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(split) = super::front_matter::split(&text) else {
        return false;
    };
    let Some(format) = split.format else {
        return false;
    };
    let Ok(t) = super::front_matter::parse(format, split.front, 2) else {
        return false;
    };
    let template = match t.get("template").map(|n| &n.value) {
        Some(super::front_matter::Value::Bool(b)) => *b,
        Some(super::front_matter::Value::Text(s)) => !s.is_empty(),
        _ => false,
    };
    template && t.get("date").is_none()
}

/// A `.heraldignore` file and the folder (relative path) it applies to.
struct IgnoreFile {
    dir: String,
    matcher: Gitignore,
}

/// Why `rel` is left out by the patterns, if it is.
fn excluded(
    select: &Select,
    ignores: &[Arc<IgnoreFile>],
    rel: &str,
    is_dir: bool,
) -> Option<String> {
    // The deepest .heraldignore that has a say decides, as with .gitignore;
    // its `!pattern` lines can bring back what content.exclude leaves out.
    for f in ignores.iter().rev() {
        let local = rel
            .strip_prefix(&f.dir)
            .unwrap_or(rel)
            .trim_start_matches('/');
        match f.matcher.matched(local, is_dir) {
            Match::Ignore(g) => {
                return Some(format!(
                    "excluded by `{}` in {}.heraldignore",
                    g.original(),
                    if f.dir.is_empty() {
                        String::new()
                    } else {
                        format!("{}/", f.dir)
                    }
                ))
            }
            Match::Whitelist(_) => return None,
            Match::None => {}
        }
    }
    if let Match::Ignore(g) = select.exclude.matched(rel, is_dir) {
        return Some(format!(
            "excluded by content.exclude pattern `{}`",
            g.original()
        ));
    }
    if let (Some(inc), false) = (&select.include, is_dir) {
        if !inc.matched_path_or_any_parents(rel, false).is_ignore() {
            return Some("matches no content.include pattern".into());
        }
    }
    None
}

/// Lists the article files under `content.dir`, sorted by relative path.
///
/// The walk uses the file type `read_dir` already knows (no stat per
/// entry), stats only article files, and walks sibling folders in
/// parallel: the daemon runs it on every rescan.
pub fn scan(config: &Config) -> anyhow::Result<Scan> {
    let content = &config.content;
    let root = content.dir.as_path();
    let select = Select::new(content)?;
    let canonical_root = root
        .canonicalize()
        .with_context(|| format!("content directory {} cannot be opened", root.display()))?;
    if !canonical_root.is_dir() {
        anyhow::bail!("content directory {} is not a directory", root.display());
    }
    let walk = Walk {
        root,
        select: &select,
        canonical_root: &canonical_root,
        visited: Mutex::new(HashSet::from([canonical_root.clone()])),
    };
    let mut found = walk.dir(&canonical_root, "", &[], None)?;
    found.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    found.warnings.sort();
    found.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    found.section_files.sort();
    let mut notes = Vec::new();
    found.sections = super::sections::find(config, &found, &mut notes);
    found.warnings.extend(notes);
    Ok(found)
}

struct Walk<'a> {
    root: &'a Path,
    select: &'a Select,
    canonical_root: &'a Path,
    /// Folders entered through symbolic links, so that a link loop is
    /// walked once.
    visited: Mutex<HashSet<PathBuf>>,
}

impl Walk<'_> {
    /// Walks one folder. `ignores` are the `.heraldignore` files above it;
    /// `asset_of` names the article whose assets this folder holds.
    fn dir(
        &self,
        dir: &Path,
        rel_dir: &str,
        ignores: &[Arc<IgnoreFile>],
        asset_of: Option<&str>,
    ) -> anyhow::Result<Scan> {
        let mut out = Scan::default();
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
        let join = |name: &str| {
            if rel_dir.is_empty() {
                name.to_string()
            } else {
                format!("{rel_dir}/{name}")
            }
        };
        let mut subdirs: Vec<(PathBuf, String)> = Vec::new();
        let mut files: Vec<(std::fs::DirEntry, String, Option<std::fs::Metadata>)> = Vec::new();
        let mut ignores = ignores.to_vec();
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
            if name == ".heraldignore" {
                let (matcher, err) = Gitignore::new(entry.path());
                if let Some(e) = err {
                    out.warnings
                        .push(format!("{}: {e}", self.shown(&join(&name))));
                }
                ignores.push(Arc::new(IgnoreFile {
                    dir: rel_dir.to_string(),
                    matcher,
                }));
                continue;
            }
            if name.starts_with('.') {
                continue;
            }
            let rel = join(&name);
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
            } else {
                files.push((entry, rel, meta));
            }
        }

        // A folder with an `index.md` is a page bundle: its other text
        // files are the article's assets. So is a folder beside `x.md`
        // named `x`.
        let bundle_index = (!rel_dir.is_empty())
            .then(|| {
                files.iter().find(|(_, rel, _)| {
                    let name = rel.rsplit('/').next().unwrap_or(rel);
                    name.rsplit_once('.')
                        .is_some_and(|(stem, _)| stem == "index")
                        && self.select.kind_of(name) == Some(Kind::Markdown)
                })
            })
            .flatten()
            .map(|(_, rel, _)| rel.clone())
            // Reading the index is needed only when something could be
            // its asset: the usual bundle (index.md and pictures) is not
            // read again on every rescan.
            .filter(|rel| {
                let others = subdirs.len()
                    + files
                        .iter()
                        .filter(|(_, r, _)| r != rel && self.select.kind_of(r).is_some())
                        .count();
                others == 0 || !is_listing_page(&self.root.join(rel))
            });
        let asset_of = asset_of.map(str::to_string).or(bundle_index.clone());

        for (entry, rel, meta) in files {
            let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
            let Some(kind) = self.select.kind_of(&name) else {
                continue;
            };
            if name
                .rsplit_once('.')
                .is_some_and(|(stem, _)| stem == "_index")
            {
                out.section_files.push(rel);
                continue;
            }
            if let Some(reason) = excluded(self.select, &ignores, &rel, false) {
                out.skipped.push(self.skip(&rel, reason));
                continue;
            }
            if let Some(owner) = asset_of.as_deref().filter(|o| **o != rel) {
                let of = if owner
                    .rsplit('/')
                    .next()
                    .is_some_and(|n| n.starts_with("index."))
                {
                    "the page bundle"
                } else {
                    "the article beside its folder,"
                };
                out.skipped
                    .push(self.skip(&rel, format!("asset of {of} {owner}")));
                continue;
            }
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

        // Stem -> file, for asset folders named like the article.
        let articles_here: std::collections::HashMap<String, String> = out
            .files
            .iter()
            .filter(|f| f.kind == Kind::Markdown)
            .map(|f| {
                let stem = f.rel.rsplit_once('.').map(|(s, _)| s).unwrap_or(&f.rel);
                (stem.to_string(), f.rel.clone())
            })
            .collect();
        let nested: Vec<anyhow::Result<Scan>> = subdirs
            .par_iter()
            .map(|(p, rel)| {
                if let Some(reason) = excluded(self.select, &ignores, rel, true) {
                    return Ok(Scan {
                        skipped: vec![self.skip(&format!("{rel}/"), reason)],
                        ..Scan::default()
                    });
                }
                let beside = articles_here.get(rel.as_str()).map(String::as_str);
                self.dir(p, rel, &ignores, asset_of.as_deref().or(beside))
            })
            .collect();
        for n in nested {
            let n = n?;
            out.files.extend(n.files);
            out.warnings.extend(n.warnings);
            out.skipped.extend(n.skipped);
            out.section_files.extend(n.section_files);
        }
        Ok(out)
    }

    fn skip(&self, rel: &str, reason: String) -> Skipped {
        Skipped {
            path: self.root.join(rel),
            reason,
        }
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
