//! Plain-text articles (`.txt`), in the shape of the seed article: a title
//! line, a blank line, then paragraphs separated by blank lines. A short
//! photo credit right after the title is kept as a credit, not taken for
//! the story's first paragraph. Text files of another shape (one line, a
//! data dump) are not articles.

use super::markdown::SUMMARY_CHARS;
use crate::base::text::{collapse_whitespace, escape_html, truncate_text};

#[derive(Debug)]
pub struct PlainArticle {
    pub title: String,
    pub html: String,
    pub summary: String,
}

/// Longest first line taken for a title.
const TITLE_CHARS: usize = 200;
/// Longest line taken for a credit.
const CREDIT_CHARS: usize = 160;

/// Why a text file is not an article.
#[derive(Debug, PartialEq, Eq)]
pub enum NotArticle {
    /// Nothing but white space: a broken file, rejected.
    Empty,
    /// Another kind of text (one line, a data dump): skipped, with why.
    Other(String),
}

/// The article, or why the file is not one.
pub fn parse(text: &str) -> Result<PlainArticle, NotArticle> {
    parse_text(text).map_err(|e| match e {
        None => NotArticle::Empty,
        Some(reason) => NotArticle::Other(reason),
    })
}

/// `Err(None)`: no text at all.
fn parse_text(text: &str) -> Result<PlainArticle, Option<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let all: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    if all.len() > 1 && looks_like_data(&all) {
        return Err(Some(
            "looks like data (`key: value` lines, tables or benchmark output), not prose".into(),
        ));
    }
    let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
    let Some(title) = lines.next().map(str::trim) else {
        return Err(None);
    };
    if title.chars().count() > TITLE_CHARS {
        return Err(Some(format!(
            "first line is longer than {TITLE_CHARS} characters: not a title, so not an article"
        )));
    }
    if lines.next().is_some_and(|l| !l.trim().is_empty()) {
        return Err(Some(
            "no blank line after the first line: not a text article (a title line, a blank line, then text)"
                .into(),
        ));
    }

    let mut paragraphs: Vec<String> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            if !current.is_empty() {
                paragraphs.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line.trim_end());
        }
    }
    if !current.is_empty() {
        paragraphs.push(current.join("\n"));
    }
    if paragraphs.is_empty() {
        return Err(Some(
            "only one line of text: not an article (a title line, a blank line, then text)".into(),
        ));
    }

    let credit = is_credit(&paragraphs[0]).then(|| paragraphs.remove(0));
    let mut html = String::with_capacity(text.len() + paragraphs.len() * 8);
    if let Some(c) = &credit {
        // <small> is HTML's element for attributions and small print.
        html.push_str("<p class=\"credit\"><small>");
        html.push_str(&escape_html(c.trim()));
        html.push_str("</small></p>\n");
    }
    for p in &paragraphs {
        html.push_str("<p>");
        html.push_str(&escape_html(p.trim()));
        html.push_str("</p>\n");
    }
    let summary = paragraphs
        .first()
        .or(credit.as_ref())
        .map(|p| truncate_text(&collapse_whitespace(p), SUMMARY_CHARS))
        .unwrap_or_default();
    Ok(PlainArticle {
        title: collapse_whitespace(title),
        html,
        summary,
    })
}

/// A short single line that credits a picture: `Mexico 2021 © Yesika
/// Ocampo/MSF`, `Photo: …`, `Credit: …`.
fn is_credit(p: &str) -> bool {
    let p = p.trim();
    if p.contains('\n') || p.chars().count() > CREDIT_CHARS {
        return false;
    }
    let lower = p.to_lowercase();
    p.contains('©')
        || [
            "photo:",
            "photo by",
            "photograph",
            "credit:",
            "image:",
            "picture:",
        ]
        .iter()
        .any(|w| lower.starts_with(w))
}

/// Most lines are `key: value` pairs, tab-separated columns or benchmark
/// results (`goos: linux`, `BenchmarkX-8  100  12 ns/op`).
fn looks_like_data(lines: &[String]) -> bool {
    let data = lines
        .iter()
        .filter(|l| {
            let t = l.trim();
            let key_value = t.split_once(": ").is_some_and(|(k, _)| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            });
            key_value || t.contains('\t') || t.starts_with("Benchmark") || t.contains(" ns/op")
        })
        .count();
    data * 2 > lines.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_is_the_title_and_a_credit_is_not_the_summary() {
        let a = parse("\n\n  Café <b>news</b>  \n\nCredit © X\n\nPara one\nline two.\n\n\nPara 2")
            .unwrap();
        assert_eq!(a.title, "Café <b>news</b>");
        assert_eq!(
            a.html,
            "<p class=\"credit\"><small>Credit © X</small></p>\n<p>Para one\nline two.</p>\n<p>Para 2</p>\n"
        );
        assert_eq!(a.summary, "Para one line two.");
    }

    #[test]
    fn other_text_files_are_not_articles() {
        assert_eq!(parse(" \n\n").unwrap_err(), NotArticle::Empty);
        assert!(matches!(
            parse("Copyright 2024 Someone\n"),
            Err(NotArticle::Other(_))
        ));
        let dump =
            "goos: linux\n\ngoarch: amd64\npkg: x/y\ncpu: Intel\nBenchmarkA-8\t100\t12 ns/op\n";
        assert!(matches!(parse(dump), Err(NotArticle::Other(r)) if r.contains("data")));
        assert!(parse("goos: linux\ngoarch: amd64\n").is_err());
    }
}
