//! Sections: folders whose articles have feeds of their own. They come
//! from `_index.md` files (Zola, Hugo), from the top folders of the content
//! directory (Hugo's content sections) and from `[[feeds.section]]`; an
//! article belongs to the deepest section folder that holds it, or to the
//! root section (`""`) when none does.

use super::front_matter::{self, Value};
use super::Scan;
use crate::config::{Config, SectionsFrom};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Folder relative to the content directory, no slashes at either end.
    pub path: String,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Whether it asks for feeds of its own (config, or Zola's
    /// `generate_feeds = true`).
    pub wants_feeds: bool,
}

/// `"/inside-rust/"` -> `"inside-rust"`; `"/"` -> `""` (the root section).
pub fn normalize(path: &str) -> String {
    path.trim_matches('/').to_string()
}

/// The sections of this scan, sorted by path, with any problem reading an
/// `_index.md` as a warning.
pub fn find(config: &Config, scan: &Scan, warnings: &mut Vec<String>) -> Vec<Section> {
    let mut found: std::collections::BTreeMap<String, Section> = Default::default();
    let from = config.feeds.sections_from;
    if from != SectionsFrom::Config {
        for rel in &scan.section_files {
            let path = rel
                .rsplit_once('/')
                .map(|(d, _)| d)
                .unwrap_or("")
                .to_string();
            let abs = config.content.dir.join(rel);
            let section = match read_index(&abs, &path) {
                Ok(s) => s,
                Err(reason) => {
                    warnings.push(format!("{}: {reason}", abs.display()));
                    bare(&path)
                }
            };
            found.insert(path, section);
        }
    }
    if from == SectionsFrom::Top {
        for f in &scan.files {
            let Some((top, rest)) = f.rel.split_once('/') else {
                continue;
            };
            // A page bundle at the top is an article, not a section.
            let bundle = !rest.contains('/') && f.stem() == "index";
            if !bundle {
                found.entry(top.to_string()).or_insert_with(|| bare(top));
            }
        }
    }
    for c in &config.feeds.section {
        let path = normalize(&c.path);
        let s = found.entry(path.clone()).or_insert_with(|| bare(&path));
        s.wants_feeds = c.feeds;
        if c.title.is_some() {
            s.title.clone_from(&c.title);
        }
        if c.description.is_some() {
            s.description.clone_from(&c.description);
        }
    }
    found.into_values().collect()
}

fn bare(path: &str) -> Section {
    Section {
        path: path.to_string(),
        title: None,
        description: None,
        wants_feeds: false,
    }
}

fn read_index(abs: &std::path::Path, path: &str) -> Result<Section, String> {
    let text = std::fs::read_to_string(abs).map_err(|e| format!("cannot read: {e}"))?;
    let split = front_matter::split(&text).map_err(|e| e.reason)?;
    let mut s = bare(path);
    let Some(format) = split.format else {
        return Ok(s);
    };
    let t = front_matter::parse(format, split.front, 2).map_err(|e| e.reason)?;
    let text_of = |k: &str| t.get(k).and_then(|n| n.value.scalar_text());
    s.title = text_of("title");
    s.description = text_of("description");
    s.wants_feeds = ["generate_feeds", "generate_feed"]
        .iter()
        .any(|k| t.get(k).is_some_and(|n| n.value == Value::Bool(true)));
    Ok(s)
}

/// The section `source` (a path relative to the content directory)
/// belongs to: the longest section path that is one of its folders.
pub fn section_of<'a>(sections: &'a [Section], source: &str) -> &'a str {
    sections
        .iter()
        .map(|s| s.path.as_str())
        .filter(|p| {
            !p.is_empty()
                && source
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|p| p.len())
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_article_belongs_to_its_deepest_section() {
        let s = |p: &str| bare(p);
        let list = [s(""), s("blog"), s("blog/inside"), s("news")];
        assert_eq!(section_of(&list, "blog/inside/a/index.md"), "blog/inside");
        assert_eq!(section_of(&list, "blog/b.md"), "blog");
        assert_eq!(section_of(&list, "blogger/c.md"), "");
        assert_eq!(section_of(&list, "c.md"), "");
        assert_eq!(normalize("/inside-rust/"), "inside-rust");
    }
}
