//! Markdown to HTML (CommonMark with tables, footnotes and strikethrough),
//! collecting in the same pass what the summary and title fallbacks need.

use pulldown_cmark::{html, CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use url::Url;

use super::html::resolve_url;
use crate::base::text::{collapse_whitespace, truncate_text};

/// The marker that ends the summary part of an article.
const MORE_MARKERS: &[&str] = &["<!-- more -->", "<!--more-->"];
/// Longest summary derived from the body, in characters.
pub const SUMMARY_CHARS: usize = 400;

pub struct Rendered {
    pub html: String,
    /// Plain-text summary from `<!-- more -->` or the first paragraph.
    pub summary: String,
    /// Text of the first level-1 heading, for articles without a title.
    pub first_heading: Option<String>,
    /// The Markdown held raw HTML, whose URLs and scripts still need the
    /// HTML pass; links written in Markdown are already absolute.
    pub has_raw_html: bool,
}

fn options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_FOOTNOTES | Options::ENABLE_STRIKETHROUGH
}

/// Renders `body`, resolving link and image destinations against `base`
/// (the article's URL).
pub fn render(body: &str, base: &Url) -> Rendered {
    let more_at = MORE_MARKERS.iter().filter_map(|m| body.find(m)).min();

    let mut collector = Collector::default();
    let mut has_raw_html = false;
    let parser = Parser::new_ext(body, options())
        .inspect(|e| collector.see(e))
        .map(|e| match e {
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Link {
                link_type,
                dest_url: absolute(dest_url, base),
                title,
                id,
            }),
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => Event::Start(Tag::Image {
                link_type,
                dest_url: absolute(dest_url, base),
                title,
                id,
            }),
            // Footnote references come out as HTML links pulldown writes
            // itself, so they need the HTML pass too.
            Event::Html(_) | Event::InlineHtml(_) | Event::FootnoteReference(_) => {
                has_raw_html = true;
                e
            }
            e => e,
        });
    let mut out = String::with_capacity(body.len() + body.len() / 4);
    html::push_html(&mut out, parser);

    let summary = match more_at {
        Some(at) => text_of(&body[..at]),
        None => collapse_whitespace(&collector.first_paragraph),
    };
    Rendered {
        html: out,
        summary: truncate_text(&summary, SUMMARY_CHARS),
        first_heading: collector
            .heading
            .map(|h| collapse_whitespace(&h))
            .filter(|h| !h.is_empty()),
        has_raw_html,
    }
}

fn absolute<'a>(dest: CowStr<'a>, base: &Url) -> CowStr<'a> {
    match resolve_url(&dest, base) {
        Some(Ok(abs)) if abs != *dest => CowStr::from(abs),
        Some(_) => dest,
        // A script URL: the link keeps its text and loses its target.
        None => CowStr::Borrowed(""),
    }
}

/// The plain text of a Markdown fragment.
fn text_of(markdown: &str) -> String {
    let mut out = String::new();
    for event in Parser::new_ext(markdown, options()) {
        push_text(&mut out, &event);
        if let Event::End(TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item) = event {
            out.push(' ');
        }
    }
    collapse_whitespace(&out)
}

fn push_text(out: &mut String, event: &Event<'_>) {
    match event {
        Event::Text(t) | Event::Code(t) => out.push_str(t),
        Event::SoftBreak | Event::HardBreak => out.push(' '),
        _ => {}
    }
}

#[derive(Default)]
struct Collector {
    /// Nesting depth inside the first top-level paragraph; `None` before it.
    para_depth: Option<usize>,
    depth: usize,
    first_paragraph: String,
    para_done: bool,
    in_h1: bool,
    heading: Option<String>,
}

impl Collector {
    fn see(&mut self, event: &Event<'_>) {
        match event {
            Event::Start(tag) => {
                if matches!(tag, Tag::Paragraph) && self.depth == 0 && !self.para_done {
                    self.para_depth = Some(self.depth);
                }
                if matches!(
                    tag,
                    Tag::Heading {
                        level: HeadingLevel::H1,
                        ..
                    }
                ) && self.heading.is_none()
                {
                    self.in_h1 = true;
                    self.heading = Some(String::new());
                }
                self.depth += 1;
            }
            Event::End(end) => {
                self.depth = self.depth.saturating_sub(1);
                if matches!(end, TagEnd::Paragraph) && self.para_depth == Some(self.depth) {
                    self.para_depth = None;
                    self.para_done = true;
                }
                if matches!(end, TagEnd::Heading(_)) {
                    self.in_h1 = false;
                }
            }
            other => {
                if self.para_depth.is_some() {
                    push_text(&mut self.first_paragraph, other);
                }
                if self.in_h1 {
                    if let Some(h) = self.heading.as_mut() {
                        push_text(h, other);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://example.org/a/post/").unwrap()
    }

    #[test]
    fn links_and_images_become_absolute() {
        let r = render(
            "[x](../b/) ![i](p.png) [j](javascript:alert(1)) [k](https://k.org/)",
            &base(),
        );
        assert!(
            r.html.contains(r#"href="https://example.org/a/b/""#),
            "{}",
            r.html
        );
        assert!(
            r.html.contains(r#"src="https://example.org/a/post/p.png""#),
            "{}",
            r.html
        );
        assert!(r.html.contains(r#"<a href="">j</a>"#), "{}", r.html);
        assert!(r.html.contains(r#"href="https://k.org/""#), "{}", r.html);
        assert!(!r.has_raw_html);
        assert!(render("a <b>b</b>", &base()).has_raw_html);
    }

    #[test]
    fn renders_gfm_extensions() {
        let r = render(
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ new[^1]\n\n[^1]: note\n",
            &base(),
        );
        assert!(r.html.contains("<table>"), "{}", r.html);
        assert!(r.html.contains("<del>old</del>"), "{}", r.html);
        assert!(r.html.contains("footnote"), "{}", r.html);
    }

    #[test]
    fn summary_prefers_more_marker_then_first_paragraph() {
        let r = render("Intro *one*.\n\nTwo.\n\n<!-- more -->\n\nRest.", &base());
        assert_eq!(r.summary, "Intro one. Two.");
        let r = render("# Head\n\nFirst `code` para\nwrapped.\n\nSecond.", &base());
        assert_eq!(r.summary, "First code para wrapped.");
        assert_eq!(r.first_heading.as_deref(), Some("Head"));
    }
}
