//! Small text helpers shared by the loaders: XML-safe characters, white
//! space, truncation, HTML escaping.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
