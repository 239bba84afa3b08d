//! The fields herald reads from a front-matter [`Table`], under the keys
//! `content.fields` names for each (authors from `author`, `authors` or
//! `by`; tags from `tags`, `categories`, …). Scalars of any kind are taken
//! as text where text is wanted (`tags: [go, 47]`); a value of the wrong
//! shape is an error naming the key, the item and the line
//! (`tags[3]: expected text, found a table`). Also spots the pages that are
//! not articles (redirect stubs, unrendered sections, …).

use super::front_matter::{Node, Table, Value};
use crate::config::FieldsConfig;

/// Most tags (and categories) one article may carry: each tag is a feed of
/// its own, and thousands of them would cost seconds per build.
pub const MAX_TAGS: usize = 100;

/// A field's error: the reason (starting with the key) and its line.
#[derive(Debug)]
pub struct FieldError {
    pub line: Option<usize>,
    pub reason: String,
}

/// A text value and where it was written.
#[derive(Debug, Clone, Default)]
pub struct Text {
    pub value: String,
    pub line: Option<usize>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RawAuthor {
    pub name: String,
    pub email: Option<String>,
    pub url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RawImage {
    pub src: String,
    pub mime: Option<String>,
    pub length: Option<u64>,
}

/// What one article's front matter says.
#[derive(Debug, Clone, Default)]
pub struct Fields {
    pub title: Option<Text>,
    pub date: Option<Text>,
    pub updated: Option<Text>,
    pub summary: Option<Text>,
    pub authors: Vec<RawAuthor>,
    pub tags: Vec<String>,
    /// Jekyll's `categories` and `category`, for `{categories}` in URLs.
    pub categories: Vec<String>,
    pub draft: bool,
    /// Jekyll's `published: false`.
    pub unpublished: bool,
    pub slug: Option<Text>,
    pub url: Option<Text>,
    pub path: Option<Text>,
    pub language: Option<Text>,
    pub image: Option<(RawImage, Option<usize>)>,
    pub id: Option<Text>,
    /// Set to `true` or a template name (Zola, Go's blog).
    pub template: bool,
    /// Why this page is not an article, whatever else it says.
    pub not_article: Option<String>,
    /// `aliases` without a title: a stub that only redirects.
    pub aliases_only: bool,
}

type R<T> = Result<T, FieldError>;

fn wrong(name: &str, node: &Node, want: &str) -> FieldError {
    FieldError {
        line: node.line,
        reason: format!("{name}: expected {want}, found {}", node.value.kind()),
    }
}

/// A scalar as text.
fn text(name: &str, node: &Node) -> R<String> {
    node.value
        .scalar_text()
        .ok_or_else(|| wrong(name, node, "a string"))
}

fn text_field(t: &Table, key: &str) -> R<Option<Text>> {
    t.get(key)
        .map(|n| {
            Ok(Text {
                value: text(key, n)?,
                line: n.line,
            })
        })
        .transpose()
}

/// The first of `keys` that is set.
fn first_text(t: &Table, keys: &[String]) -> R<Option<Text>> {
    for k in keys {
        if let Some(v) = text_field(t, k)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn boolean(name: &str, node: &Node) -> R<bool> {
    match &node.value {
        Value::Bool(b) => Ok(*b),
        _ => Err(wrong(name, node, "a boolean (true or false)")),
    }
}

/// Words of a list, or of one text value split at spaces as Jekyll does
/// (`tags: a b`).
fn words(name: &str, node: &Node, out: &mut Vec<String>) -> R<()> {
    match &node.value {
        Value::Text(s) => out.extend(s.split_whitespace().map(str::to_string)),
        Value::List(items) => {
            for (i, item) in items.iter().enumerate() {
                match &item.value {
                    Value::Null => {}
                    v => match v.scalar_text() {
                        Some(s) => out.push(s),
                        None => {
                            return Err(wrong(
                                &format!("{name}[{i}]"),
                                item,
                                "a string or a number",
                            ))
                        }
                    },
                }
                if out.len() > MAX_TAGS {
                    return Err(too_many(name, node));
                }
            }
        }
        Value::Table(t) => {
            // Zola's `[taxonomies]`: every taxonomy's terms.
            for (k, n) in &t.0 {
                words(&format!("{name}.{k}"), n, out)?;
            }
        }
        Value::Null => {}
        // A lone number is more likely a slip (`tags = 42`) than a tag.
        _ => return Err(wrong(name, node, "a string or a list")),
    }
    if out.len() > MAX_TAGS {
        return Err(too_many(name, node));
    }
    Ok(())
}

fn too_many(name: &str, node: &Node) -> FieldError {
    let n = match &node.value {
        Value::List(l) => l.len(),
        _ => MAX_TAGS + 1,
    };
    FieldError {
        line: node.line,
        reason: format!("{name}: {n} values; an article may carry at most {MAX_TAGS} tags"),
    }
}

fn author(name: &str, node: &Node) -> R<Option<RawAuthor>> {
    match &node.value {
        Value::Null => Ok(None),
        Value::Table(t) => {
            let get = |k: &str| -> R<Option<String>> {
                t.get(k)
                    .map(|n| text(&format!("{name}.{k}"), n))
                    .transpose()
            };
            let Some(full) = get("name")? else {
                return Err(FieldError {
                    line: node.line,
                    reason: format!("{name}: an author table needs a `name`"),
                });
            };
            Ok(Some(RawAuthor {
                name: full,
                email: get("email")?,
                url: get("url")?.or(get("uri")?),
            }))
        }
        v => match v.scalar_text() {
            Some(s) => Ok(Some(RawAuthor {
                name: s,
                email: None,
                url: None,
            })),
            None => Err(wrong(name, node, "a name or a table with `name`")),
        },
    }
}

fn authors(name: &str, node: &Node) -> R<Vec<RawAuthor>> {
    match &node.value {
        Value::List(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.extend(author(&format!("{name}[{i}]"), item)?);
            }
            Ok(out)
        }
        _ => Ok(author(name, node)?.into_iter().collect()),
    }
}

fn image(name: &str, node: &Node) -> R<RawImage> {
    match &node.value {
        Value::Table(t) => {
            let src = ["url", "src", "path"]
                .iter()
                .find_map(|k| t.get(k).map(|n| text(&format!("{name}.{k}"), n)))
                .ok_or_else(|| FieldError {
                    line: node.line,
                    reason: format!("{name}: an image table needs `url`"),
                })??;
            let mime = t
                .get("type")
                .map(|n| text(&format!("{name}.type"), n))
                .transpose()?;
            let length = match t.get("length") {
                None => None,
                Some(n) => Some(
                    n.value
                        .scalar_text()
                        .and_then(|s| s.parse::<u64>().ok())
                        .ok_or_else(|| {
                            wrong(&format!("{name}.length"), n, "a whole number of bytes")
                        })?,
                ),
            };
            Ok(RawImage { src, mime, length })
        }
        _ => Ok(RawImage {
            src: text(name, node)?,
            mime: None,
            length: None,
        }),
    }
}

/// Reads every field herald knows from `t`.
pub fn read(t: &Table, keys: &FieldsConfig) -> R<Fields> {
    let mut f = Fields {
        title: first_text(t, &keys.title)?,
        date: first_text(t, &keys.date)?,
        updated: first_text(t, &keys.updated)?,
        summary: first_text(t, &keys.summary)?,
        slug: text_field(t, "slug")?,
        url: text_field(t, "url")?,
        path: first_text(t, &["path".into(), "permalink".into()])?,
        language: first_text(t, &["language".into(), "lang".into()])?,
        id: first_text(t, &["id".into(), "guid".into()])?,
        ..Fields::default()
    };
    for k in &keys.authors {
        if let Some(n) = t.get(k) {
            let list = authors(k, n)?;
            if !list.is_empty() {
                f.authors = list;
                break;
            }
        }
    }
    for k in &keys.tags {
        if let Some(n) = t.get(k) {
            words(k, n, &mut f.tags)?;
        }
    }
    for k in ["categories", "category"] {
        if let Some(n) = t.get(k) {
            words(k, n, &mut f.categories)?;
        }
    }
    if let Some((k, n)) = ["image", "cover", "cover_image"]
        .iter()
        .find_map(|k| t.get(k).map(|n| (*k, n)))
    {
        f.image = Some((image(k, n)?, n.line));
    }
    if let Some(n) = t.get("draft") {
        f.draft = boolean("draft", n)?;
    }
    if let Some(n) = t.get("published") {
        // Only Jekyll's boolean; a date under `published` is another
        // generator's publication date and is left to `content.fields`.
        if let Ok(b) = boolean("published", n) {
            f.unpublished = !b;
        }
    }
    f.template = match t.get("template").map(|n| &n.value) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Text(s)) => !s.trim().is_empty() && s != "false",
        _ => false,
    };
    f.not_article = not_article(t);
    f.aliases_only = f.title.is_none() && t.get("aliases").is_some();
    Ok(f)
}

/// Front matter that marks a page as something other than an article,
/// whatever its other fields say.
fn not_article(t: &Table) -> Option<String> {
    let shown = |k: &str| {
        t.get(k)
            .and_then(|n| n.value.scalar_text())
            .unwrap_or_default()
    };
    for k in ["redirect", "redirect_to", "redirect_url"] {
        if t.get(k).is_some() {
            return Some(format!("redirect stub (`{k}: {}`)", shown(k)));
        }
    }
    if t.get("render")
        .is_some_and(|n| n.value == Value::Bool(false))
    {
        return Some("not rendered (`render = false`)".into());
    }
    for k in ["build.list", "_build.list"] {
        let never = t.get(k).is_some_and(|n| {
            matches!(&n.value, Value::Text(s) if s == "never") || n.value == Value::Bool(false)
        });
        if never {
            return Some(format!("never listed (`{k} = never`)"));
        }
    }
    if t.get("headless")
        .is_some_and(|n| n.value == Value::Bool(true))
    {
        return Some("headless bundle (`headless = true`)".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::front_matter::{parse, Format};

    fn fields(yaml: &str) -> R<Fields> {
        let t = parse(Format::Yaml, yaml, 2).map_err(|e| FieldError {
            line: e.line,
            reason: e.reason,
        })?;
        read(&t, &FieldsConfig::default())
    }

    #[test]
    fn numbers_and_booleans_are_tags_too() {
        let f = fields("title: x\ntags: [go, 47, true, 1.5]\n").unwrap();
        assert_eq!(f.tags, ["go", "47", "true", "1.5"]);
    }

    #[test]
    fn authors_come_from_by_as_a_list() {
        let f = fields("title: x\nby:\n  - Ann\n  - Bo\n").unwrap();
        let names: Vec<_> = f.authors.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["Ann", "Bo"]);
    }

    #[test]
    fn type_errors_name_the_item_and_its_line() {
        let e = fields("title: x\ntags:\n  - a\n  - b\n  - c\n  - {x: 1}\n").unwrap_err();
        assert_eq!(e.line, Some(7));
        assert_eq!(
            e.reason,
            "tags[3]: expected a string or a number, found a table"
        );
    }

    #[test]
    fn too_many_tags_is_an_error_not_a_slow_build() {
        let list: Vec<String> = (0..5000).map(|i| format!("t{i}")).collect();
        let e = fields(&format!("title: x\ntags: [{}]\n", list.join(", "))).unwrap_err();
        assert!(e.reason.contains("at most 100"), "{}", e.reason);
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn stubs_are_not_articles() {
        let f = fields("redirect: /new/url\n").unwrap();
        assert_eq!(
            f.not_article.unwrap(),
            "redirect stub (`redirect: /new/url`)"
        );
        let f = fields("title: t\n_build:\n  list: never\n").unwrap();
        assert!(f.not_article.unwrap().contains("never listed"));
        assert!(fields("aliases: [/a/]\n").unwrap().aliases_only);
        assert!(!fields("title: x\naliases: [/a/]\n").unwrap().aliases_only);
    }
}
