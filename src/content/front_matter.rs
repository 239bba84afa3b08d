//! Front matter: splitting a file into its TOML (`+++`) or YAML (`---`)
//! header and body, and reading the fields herald knows. Fields it does not
//! know (Jekyll's `layout`, Zola's `[extra]`, …) are ignored; a known field
//! with the wrong type is an error with its line.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What a front-matter parse error says: a reason and, where known, the
/// 1-based line in the whole file.
#[derive(Debug)]
pub struct FrontMatterError {
    pub line: Option<usize>,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

/// A file cut into its front matter and body.
pub struct Split<'a> {
    pub format: Option<Format>,
    pub front: &'a str,
    pub body: &'a str,
}

/// Cuts `text` into front matter and body. Files that open with neither
/// delimiter have no front matter.
pub fn split(text: &str) -> Result<Split<'_>, FrontMatterError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first_line_end = text.find('\n').map(|i| i + 1).unwrap_or(text.len());
    let first = text[..first_line_end].trim_end();
    let (format, closers): (Format, &[&str]) = match first {
        "+++" => (Format::Toml, &["+++"]),
        "---" => (Format::Yaml, &["---", "..."]),
        _ => {
            return Ok(Split {
                format: None,
                front: "",
                body: text,
            })
        }
    };
    let mut offset = first_line_end;
    while offset < text.len() {
        let end = text[offset..]
            .find('\n')
            .map(|i| offset + i + 1)
            .unwrap_or(text.len());
        let line = text[offset..end].trim_end();
        if closers.contains(&line) {
            return Ok(Split {
                format: Some(format),
                front: &text[first_line_end..offset],
                body: &text[end..],
            });
        }
        offset = end;
    }
    Err(FrontMatterError {
        line: Some(1),
        reason: format!(
            "front matter opened with `{first}` is never closed (add a `{}` line after it)",
            closers[0]
        ),
    })
}

/// A date as front matter holds it: a native TOML datetime or a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawDate {
    Toml(toml::value::Datetime),
    Text(String),
}

impl RawDate {
    pub fn as_text(&self) -> String {
        match self {
            RawDate::Toml(d) => d.to_string(),
            RawDate::Text(s) => s.clone(),
        }
    }
}

/// One value or a list of them (`author: jane` or `authors: [a, b]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// An author as a plain name or a table with name, email and URL.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawAuthor {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        email: Option<String>,
        #[serde(default)]
        url: Option<String>,
    },
}

/// A cover image: a path or URL, or a table that also gives its type and size.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawImage {
    Src(String),
    Full {
        #[serde(alias = "src", alias = "path")]
        url: String,
        #[serde(default, rename = "type")]
        mime: Option<String>,
        #[serde(default)]
        length: Option<u64>,
    },
}

/// The fields herald reads; see the README for what each one does.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct FrontMatter {
    pub title: Option<String>,
    pub date: Option<RawDate>,
    #[serde(alias = "lastmod", alias = "last_modified_at", alias = "modified")]
    pub updated: Option<RawDate>,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub author: Option<OneOrMany<RawAuthor>>,
    pub authors: Option<OneOrMany<RawAuthor>>,
    pub tags: Option<OneOrMany<String>>,
    pub categories: Option<OneOrMany<String>>,
    pub category: Option<String>,
    pub taxonomies: Option<BTreeMap<String, OneOrMany<String>>>,
    pub draft: Option<bool>,
    /// Jekyll's way of saying draft: `published: false`.
    pub published: Option<bool>,
    pub slug: Option<String>,
    pub url: Option<String>,
    #[serde(alias = "permalink")]
    pub path: Option<String>,
    #[serde(alias = "lang")]
    pub language: Option<String>,
    #[serde(alias = "cover", alias = "cover_image")]
    pub image: Option<RawImage>,
    #[serde(alias = "guid")]
    pub id: Option<String>,
}

/// Parses the front matter text cut out by [`split`]. `first_line` is the
/// 1-based line of the front matter's first line in the file, so that
/// errors point into the file, not into the header.
pub fn parse(
    format: Format,
    front: &str,
    first_line: usize,
) -> Result<FrontMatter, FrontMatterError> {
    match format {
        Format::Toml => toml::from_str::<FrontMatter>(front).map_err(|e| FrontMatterError {
            line: e.span().map(|s| first_line + line_of(front, s.start)),
            reason: format!("invalid TOML front matter: {}", e.message()),
        }),
        Format::Yaml => {
            if front.trim().is_empty() {
                return Ok(FrontMatter::default());
            }
            serde_yaml::from_str::<FrontMatter>(front).map_err(|e| {
                let line = e
                    .location()
                    .map(|l| first_line + l.line().saturating_sub(1));
                let msg = e.to_string();
                // serde_yaml appends " at line N column M"; we give the line ourselves.
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                FrontMatterError {
                    line,
                    reason: format!("invalid YAML front matter: {msg}"),
                }
            })
        }
    }
}

/// 0-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_front_matter_with_native_date() {
        let s =
            split("+++\ntitle = \"A\"\ndate = 2024-05-01\ntags = [\"x\"]\n+++\nBody\n").unwrap();
        assert_eq!(s.format, Some(Format::Toml));
        assert_eq!(s.body, "Body\n");
        let fm = parse(Format::Toml, s.front, 2).unwrap();
        assert_eq!(fm.title.as_deref(), Some("A"));
        assert_eq!(fm.date.unwrap().as_text(), "2024-05-01");
    }

    #[test]
    fn yaml_front_matter_with_jekyll_fields() {
        let text = "---\ntitle: \"J\"\ndate: 2013-05-06 02:12:52 +0200\nauthor: parkr\ncategory: release\n---\n\nHi";
        let s = split(text).unwrap();
        let fm = parse(Format::Yaml, s.front, 2).unwrap();
        assert_eq!(fm.date.unwrap().as_text(), "2013-05-06 02:12:52 +0200");
        assert_eq!(fm.category.as_deref(), Some("release"));
        assert!(matches!(fm.author, Some(OneOrMany::One(RawAuthor::Name(ref n))) if n == "parkr"));
    }

    #[test]
    fn errors_point_at_the_file_line() {
        let text = "+++\ntitle = \"A\"\ntags = 42\n+++\n";
        let s = split(text).unwrap();
        let e = parse(Format::Toml, s.front, 2).unwrap_err();
        assert_eq!(e.line, Some(3), "{}", e.reason);
        let e = split("---\ntitle: x\n").err().unwrap();
        assert!(e.reason.contains("never closed"));
    }
}
