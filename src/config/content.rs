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

/// The file name of each feed format, in every feed folder (the site's,
/// each section's, each tag's). Zola writes `feed.xml`, Hugo `index.xml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileNames {
    pub rss: String,
    pub atom: String,
    pub json: String,
}

impl Default for FileNames {
    fn default() -> Self {
        FileNames {
            rss: "rss.xml".into(),
            atom: "atom.xml".into(),
            json: "feed.json".into(),
        }
    }
}

impl FileNames {
    pub fn get(&self, format: crate::base::FeedFormat) -> &str {
        use crate::base::FeedFormat;
        match format {
            FeedFormat::Rss => &self.rss,
            FeedFormat::Atom => &self.atom,
            FeedFormat::Json => &self.json,
        }
    }
}

/// Which folders are sections besides those listed in `[[feeds.section]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionsFrom {
    /// Folders holding an `_index.md` (Zola, Hugo branch bundles).
    Index,
    /// Those, and every folder at the top of the content directory (Hugo's
    /// content sections).
    Top,
    /// Only the `[[feeds.section]]` list.
    Config,
}

/// Which sections get feeds of their own at `<section>/<file name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionFeeds {
    /// Sections listed in `[[feeds.section]]` (unless `feeds = false`) and
    /// those whose `_index.md` says `generate_feeds = true` (Zola).
    Declared,
    /// Every section (Hugo).
    All,
    None,
}

/// One section given in config: a folder under the content directory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSection {
    /// The folder, relative to the content directory (`inside-rust`).
    pub path: String,
    /// Feed title; default: the `_index.md` title, else the site title and
    /// the folder name.
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Write this section's feeds.
    #[serde(default = "yes")]
    pub feeds: bool,
}

fn yes() -> bool {
    true
}

/// Which template tags in article bodies herald handles (the rest stay
/// text): see the README's "Template tags".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateTags {
    /// Liquid in files with YAML front matter, Zola's shortcodes in files
    /// with TOML front matter, Hugo's shortcodes everywhere.
    Auto,
    /// Jekyll's Liquid in every file.
    Liquid,
    Hugo,
    Zola,
    /// Bodies are taken as they are.
    None,
}
