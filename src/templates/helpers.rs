//! The helpers every template gets besides Handlebars' own: `inc`
//! (n + 1, for numbering from `@index`), `concat` (joins its arguments as
//! text) and `wrap` (plain text wrapped at `width`, 72 by default, the first
//! line led by `first`, the others by `indent`).

use handlebars::handlebars_helper;
use serde_json::Value;

use super::TEXT_WIDTH;

handlebars_helper!(inc: |n: i64| n + 1);

handlebars_helper!(concat: |*args| args.iter().map(|v| match v {
    Value::String(s) => s.clone(),
    Value::Null => String::new(),
    other => other.to_string(),
}).collect::<String>());

// 72 is `TEXT_WIDTH`: the macro takes only a literal.
// Text holding a skeleton's markers is wrapped when the skeleton is filled
// (see `skeleton.rs`).
handlebars_helper!(wrap: |text: str, { width: u64 = 72, first: str = "", indent: str = "" }| {
    let width = usize::try_from(width).unwrap_or(TEXT_WIDTH);
    if super::skeleton::holds_markers(text) {
        super::skeleton::deferred_wrap(text, width, first, indent)
    } else {
        wrap_text(text, width, first, indent)
    }
});

/// Wraps plain text at `width` columns, never breaking a word (a long URL
/// keeps a line of its own). Paragraphs (separated by blank lines) stay
/// apart; lines within one are joined. The first line starts with `first`,
/// every other non-blank line with `indent`.
pub(super) fn wrap_text(text: &str, width: usize, first: &str, indent: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut lead = first;
    let mut paragraph: Vec<&str> = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.trim().is_empty() {
            paragraph.extend(line.split_whitespace());
        }
        let ends = line.trim().is_empty() || lines.peek().is_none();
        if ends && !paragraph.is_empty() {
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            push_wrapped(&mut out, &paragraph, width, lead, indent);
            paragraph.clear();
            lead = indent;
        }
    }
    out
}

fn push_wrapped(out: &mut String, words: &[&str], width: usize, first: &str, indent: &str) {
    out.push_str(first);
    let mut column = first.chars().count();
    let mut line_empty = true;
    for word in words {
        let len = word.chars().count();
        if !line_empty && column + 1 + len > width {
            out.push('\n');
            out.push_str(indent);
            column = indent.chars().count();
            line_empty = true;
        }
        if !line_empty {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += len;
        line_empty = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_paragraphs_long_words_and_hanging_indents() {
        let text = "one two three four five six\nseven\n\n  eight https://example.org/a-very-long-url nine";
        assert_eq!(
            wrap_text(text, 16, "1. ", "   "),
            "1. one two three\n   four five six\n   seven\n\n   eight\n   https://example.org/a-very-long-url\n   nine"
        );
        assert_eq!(wrap_text("", 72, "x", ""), "");
    }
}
