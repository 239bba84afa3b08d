//! Walking the content directory: which files are articles. Hidden files and
//! folders, Zola section files (`_index.md`) and symlinks that lead outside
//! the content directory are skipped; other file types (images, …) are
//! ignored.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use walkdir::WalkDir;

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
pub fn scan(root: &Path) -> anyhow::Result<Scan> {
    let canonical_root = root
        .canonicalize()
        .with_context(|| format!("content directory {} cannot be opened", root.display()))?;
    if !canonical_root.is_dir() {
        anyhow::bail!("content directory {} is not a directory", root.display());
    }
    let mut files = Vec::new();
    // Filled from inside `filter_entry`, which must also see symlinked
    // folders so that it can keep walkdir out of them.
    let skipped_links = std::cell::RefCell::new(Vec::new());
    let walker = WalkDir::new(&canonical_root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            if e.depth() == 0 {
                return true;
            }
            if e.file_name().to_string_lossy().starts_with('.') {
                return false;
            }
            if e.path_is_symlink() && !leads_inside(e.path(), &canonical_root) {
                skipped_links.borrow_mut().push(format!(
                    "{}: skipped: symbolic link leads outside the content directory",
                    display(root, &canonical_root, e.path())
                ));
                return false;
            }
            true
        });
    let mut warnings = Vec::new();
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let at = e
                    .path()
                    .map(|p| display(root, &canonical_root, p))
                    .unwrap_or_default();
                warnings.push(format!("{at}: skipped: {e}"));
                continue;
            }
        };
        if entry.depth() == 0 {
            continue;
        }
        let path = entry.path();
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        if name == "_index.md" || name == "_index.markdown" {
            continue;
        }
        let Some(kind) = kind_of(&name) else { continue };
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                warnings.push(format!(
                    "{}: skipped: {e}",
                    display(root, &canonical_root, path)
                ));
                continue;
            }
        };
        let rel = path
            .strip_prefix(&canonical_root)
            .expect("walkdir yields paths under its root")
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        files.push(SourceFile {
            abs: root.join(&rel),
            rel,
            size: meta.len(),
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            kind,
        });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    warnings.extend(skipped_links.into_inner());
    warnings.sort();
    Ok(Scan { files, warnings })
}

fn leads_inside(link: &Path, canonical_root: &Path) -> bool {
    link.canonicalize()
        .map(|target| target.starts_with(canonical_root))
        .unwrap_or(false)
}

fn display(root: &Path, canonical_root: &Path, p: &Path) -> String {
    match p.strip_prefix(canonical_root) {
        Ok(rel) => root.join(rel).display().to_string(),
        Err(_) => p.display().to_string(),
    }
}
