//! The content-side keys that are tables or choices of their own: which
//! front-matter keys feed which field, what to do with undated files, the
//! site's sections and the feed file names. Kept apart from `sections` so
//! that each file stays about one concern.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Undated {
    /// Published with the time herald first saw the file.
    Publish,
    /// Not an article: listed by `herald check --verbose` as skipped.
    Skip,
}

/// Front-matter keys read for each field, first to last. For `authors` the
/// first key present wins; `tags` gathers every key listed. A dotted name
/// (`params.author`) looks inside a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FieldsConfig {
    pub title: Vec<String>,
    pub date: Vec<String>,
    pub updated: Vec<String>,
    pub summary: Vec<String>,
    pub authors: Vec<String>,
    pub tags: Vec<String>,
}

impl Default for FieldsConfig {
    fn default() -> Self {
        let list = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect();
        FieldsConfig {
            title: list(&["title"]),
            date: list(&["date"]),
            updated: list(&["updated", "lastmod", "last_modified_at", "modified"]),
            summary: list(&["summary", "description"]),
            authors: list(&["authors", "author", "by"]),
            tags: list(&["tags", "categories", "category", "taxonomies"]),
        }
    }
}
