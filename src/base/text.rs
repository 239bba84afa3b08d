//! Small text helpers shared by the loaders and the digests: XML-safe
//! characters, white space, truncation, HTML escaping, HTML to plain text.

/// True for characters XML 1.0 allows (`Char` production).
fn xml_allowed(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// A fast byte scan: C0 controls other than tab, LF and CR, or the UTF-8
/// encoding of U+FFFE/U+FFFF (0xEF 0xBF 0xBE/0xBF). (Surrogates cannot occur
/// in a Rust string.) Branch-free over 64-byte blocks so that it vectorizes;
/// it runs over every article's HTML.
fn might_need_cleaning(b: &[u8]) -> bool {
    for block in b.chunks(64) {
        let mut suspect = false;
        for &c in block {
            suspect |= (c < 0x20) & (c != b'\t') & (c != b'\n') & (c != b'\r') | (c == 0xEF);
        }
        if suspect {
            return true;
        }
    }
    false
}

/// Removes characters that XML 1.0 forbids (NUL, form feed, other C0
/// controls, U+FFFE/U+FFFF). One stray control character in one article has
/// broken whole feeds in real readers.
pub fn xml_clean(s: String) -> String {
    if !might_need_cleaning(s.as_bytes()) || s.chars().all(xml_allowed) {
        return s;
    }
    s.chars().filter(|&c| xml_allowed(c)).collect()
}

/// Collapses runs of white space into single spaces and trims the ends.
pub fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// Cuts `s` to at most `max` characters at a word boundary, adding `…`.
pub fn truncate_text(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > max / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    format!("{}…", cut.trim_end_matches([',', ';', ':', ' ']))
}

/// Escapes text for use in HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Renders trusted article HTML as plain text for the text part of an
/// email: paragraphs wrapped at `width` columns, Markdown-like marks
/// (`## Heading`, `* item`, `*em*`, `**strong**`, `` `code` ``), images as
/// `[alt]`, and each link as `[text][n]`
/// with its URL listed as `[n]: https://…` at the end, so no URL is split
/// across lines. Lines carry no trailing white space and the result ends
/// without a blank line.
pub fn html_to_text(html: &str, width: usize) -> String {
    let rendered = html2text::config::plain()
        .link_footnotes(true)
        .no_link_wrapping()
        // A long word (a URL in the text) stays whole on a longer line
        // rather than failing the whole conversion.
        .allow_width_overflow()
        .string_from_read(html.as_bytes(), width.max(20));
    let text = match rendered {
        Ok(text) => text,
        // html2text fails only on pathological input (say, tables nested
        // too deep to fit the width). The words are still worth sending.
        Err(_) => return collapse_whitespace(&strip_tags(html)),
    };
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(line);
    }
    out
}

/// The text between tags, entities left as they are: the last resort of
/// [`html_to_text`].
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Lower-cases and turns every run of characters other than letters and
/// digits into one `-`.
pub fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut dash = false;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.extend(c.to_lowercase());
        } else {
            dash = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_attribute_specials() {
        assert_eq!(
            escape_html(r#"<a href="x">Tom & 'Jerry'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;"
        );
        assert_eq!(escape_html("café"), "café");
    }

    #[test]
    fn strips_only_forbidden_characters() {
        let s = "a\u{0}b\u{c}c\td\u{FFFE}é😀".to_string();
        assert_eq!(xml_clean(s), "abc\tdé😀");
    }

    #[test]
    fn truncates_on_words() {
        assert_eq!(truncate_text("one two three four", 9), "one two…");
        assert_eq!(truncate_text("short", 9), "short");
    }

    #[test]
    fn html_becomes_wrapped_text_with_link_footnotes() {
        let html = "<h2>Release notes</h2>\n<p>We shipped <strong>version 2</strong> of the \
            <a href=\"https://example.org/tool/\">tool</a> today, with faster builds &amp; \
            fewer surprises for everyone who uses it every day.</p>\n\
            <ul><li>one</li><li>two</li></ul>\
            <p><img src=\"https://example.org/a.png\" alt=\"A chart\"></p>";
        let text = html_to_text(html, 40);
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                "## Release notes",
                "",
                "We shipped **version 2** of the",
                "[tool][1] today, with faster builds &",
                "fewer surprises for everyone who uses it",
                "every day.",
                "* one",
                "* two",
                "",
                "[A chart]",
                "",
                "[1]: https://example.org/tool/",
            ],
            "{text}"
        );
        assert!(text.lines().all(|l| l.chars().count() <= 40));
    }

    #[test]
    fn long_urls_are_kept_whole_and_scripts_dropped() {
        let url = format!("https://example.org/{}", "x".repeat(90));
        let html = format!("<p>See <a href=\"{url}\">{url}</a>.</p><script>alert(1)</script>");
        let text = html_to_text(&html, 72);
        assert!(text.contains(&url), "{text}");
        assert!(!text.contains("alert"), "{text}");
        assert!(!text.ends_with('\n'));
        assert_eq!(html_to_text("", 72), "");
    }
}
