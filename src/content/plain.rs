//! Plain-text articles (`.txt`), in the shape of the seed article: the first
//! non-empty line is the title, paragraphs are separated by blank lines.

use super::markdown::SUMMARY_CHARS;
use crate::base::text::{collapse_whitespace, escape_html, truncate_text};

pub struct PlainArticle {
    pub title: String,
    pub html: String,
    pub summary: String,
}

/// Returns `None` when the file holds no text at all.
pub fn parse(text: &str) -> Option<PlainArticle> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.lines();
    let title = lines
        .by_ref()
        .map(str::trim)
        .find(|l| !l.is_empty())?
        .to_string();

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

    let mut html = String::with_capacity(text.len() + paragraphs.len() * 8);
    for p in &paragraphs {
        html.push_str("<p>");
        html.push_str(&escape_html(p.trim()));
        html.push_str("</p>\n");
    }
    let summary = paragraphs
        .first()
        .map(|p| truncate_text(&collapse_whitespace(p), SUMMARY_CHARS))
        .unwrap_or_default();
    Some(PlainArticle {
        title: collapse_whitespace(&title),
        html,
        summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_non_empty_line_is_the_title() {
        let a = parse("\n\n  Café <b>news</b>  \n\nCredit © X\n\nPara one\nline two.\n\n\nPara 2")
            .unwrap();
        assert_eq!(a.title, "Café <b>news</b>");
        assert_eq!(
            a.html,
            "<p>Credit © X</p>\n<p>Para one\nline two.</p>\n<p>Para 2</p>\n"
        );
        assert_eq!(a.summary, "Credit © X");
        assert!(parse(" \n\n").is_none());
    }
}
