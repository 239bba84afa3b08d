//! A template rendered once for many readers: the values that differ per
//! reader (an address, links with their token) are rendered as markers,
//! the output is cut at the markers into a [`Skeleton`], and each reader's
//! text is the skeleton filled with their values, byte for byte what a
//! full render with those values gives.
//!
//! Whether a template allows that is found out, not assumed: it is
//! rendered twice, with markers of different lengths, and both outputs
//! must cut into the same pieces. A template that transforms a value (a
//! helper that changes its case, counts it, or compares it) fails that
//! check, and the caller renders it per reader instead. Two ways of using
//! a value are understood:
//!
//! - inserted as it is, HTML-escaped or not: each marker holds a `&`, so
//!   the output shows which (`&amp;` when escaped);
//! - inside the text given to the `wrap` helper, whose line breaks depend
//!   on the value's length: with a marker in its text, `wrap` writes its
//!   arguments out (hex, which escaping leaves alone) instead of wrapping,
//!   and filling wraps the filled text. So the digest's footer ("This
//!   email was sent to {address}. …", wrapped) needs no render per reader.
//!
//! Markers are Unicode private-use characters with a random nonce per
//! process, so no content can be taken for one.

use std::sync::OnceLock;

use crate::base::text::escape_html;

const SLOT: char = '\u{E000}';
const SLOT_END: char = '\u{E001}';
const WRAP: char = '\u{E002}';
const WRAP_END: char = '\u{E003}';

/// The two marker prefixes, with this process's nonce.
struct Markers {
    slot: String,
    wrap: String,
}

fn markers() -> &'static Markers {
    static MARKERS: OnceLock<Markers> = OnceLock::new();
    MARKERS.get_or_init(|| {
        let nonce = format!("{:016x}", rand::random::<u64>());
        Markers {
            slot: format!("{SLOT}{nonce}"),
            wrap: format!("{WRAP}{nonce}"),
        }
    })
}

/// A piece of a rendered template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// The same for every reader.
    Text(String),
    /// Value number `index`, escaped for HTML or not.
    Slot { index: usize, escaped: bool },
    /// `wrap` of text holding values: filled, then wrapped (then escaped).
    Wrap {
        width: usize,
        first: String,
        indent: String,
        text: Vec<Piece>,
        escaped: bool,
    },
}

impl Piece {
    /// Appends this piece, filled with `values`.
    pub fn fill(&self, values: &[&str], out: &mut String) {
        match self {
            Piece::Text(t) => out.push_str(t),
            Piece::Slot { index, escaped } => {
                let value = values.get(*index).copied().unwrap_or("");
                if *escaped {
                    out.push_str(&escape_html(value));
                } else {
                    out.push_str(value);
                }
            }
            Piece::Wrap {
                width,
                first,
                indent,
                text,
                escaped,
            } => {
                let mut filled = String::new();
                for p in text {
                    p.fill(values, &mut filled);
                }
                let wrapped = super::helpers::wrap_text(&filled, *width, first, indent);
                if *escaped {
                    out.push_str(&escape_html(&wrapped));
                } else {
                    out.push_str(&wrapped);
                }
            }
        }
    }
}

/// A rendered template cut at the values that differ per reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skeleton {
    pieces: Vec<Piece>,
}

impl Skeleton {
    /// Renders through `render` (given one marker per value, to put where
    /// the values go) twice and cuts the output; `None` when the template
    /// does more with a value than insert or wrap it.
    pub fn build(
        values: usize,
        render: impl Fn(&[String]) -> anyhow::Result<String>,
    ) -> anyhow::Result<Option<Skeleton>> {
        let short = render(&marker_values(values, 0))?;
        let long = render(&marker_values(values, 29))?;
        Ok(match (parse(&short), parse(&long)) {
            (Some(a), Some(b)) if a == b => Some(Skeleton { pieces: a }),
            _ => None,
        })
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Whether every reader gets the same text.
    pub fn is_fixed(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Text(_)))
    }

    /// The text for one reader.
    pub fn fill(&self, values: &[&str]) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            p.fill(values, &mut out);
        }
        out
    }
}

/// One marker per value; `pad` sets their length.
fn marker_values(count: usize, pad: usize) -> Vec<String> {
    let slot = &markers().slot;
    (0..count)
        .map(|k| format!("{slot}{k:02}{}&{SLOT_END}", "~".repeat(pad)))
        .collect()
}

/// Whether `text` (given to `wrap`) holds markers.
pub(super) fn holds_markers(text: &str) -> bool {
    let m = markers();
    text.contains(&m.slot) || text.contains(&m.wrap)
}

/// What `wrap` writes for text holding markers: its arguments, to be
/// wrapped when filled.
pub(super) fn deferred_wrap(text: &str, width: usize, first: &str, indent: &str) -> String {
    let args = serde_json::json!([width, first, indent, text]).to_string();
    let mut out = markers().wrap.clone();
    for b in args.bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out.push('&');
    out.push(WRAP_END);
    out
}

/// Cuts `rendered` at markers; `None` when a marker is not whole (a
/// helper changed it).
fn parse(rendered: &str) -> Option<Vec<Piece>> {
    let m = markers();
    let mut pieces = Vec::new();
    let mut rest = rendered;
    loop {
        let next = [&m.slot, &m.wrap]
            .into_iter()
            .filter_map(|marker| rest.find(marker.as_str()).map(|at| (at, marker)))
            .min_by_key(|(at, _)| *at);
        let Some((at, marker)) = next else {
            push_text(&mut pieces, rest);
            return Some(pieces);
        };
        push_text(&mut pieces, &rest[..at]);
        let body = &rest[at + marker.len()..];
        let (piece, after) = if *marker == m.slot {
            parse_slot(body)?
        } else {
            parse_wrap(body)?
        };
        pieces.push(piece);
        rest = after;
    }
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if text.is_empty() {
        return;
    }
    match pieces.last_mut() {
        Some(Piece::Text(t)) => t.push_str(text),
        _ => pieces.push(Piece::Text(text.to_string())),
    }
}

/// After `&` and before the end character: `amp;` when the output was
/// escaped there.
fn escaped_end(body: &str, end: char) -> Option<(bool, &str)> {
    let body = body.strip_prefix('&')?;
    let (escaped, body) = match body.strip_prefix("amp;") {
        Some(b) => (true, b),
        None => (false, body),
    };
    Some((escaped, body.strip_prefix(end)?))
}

fn parse_slot(body: &str) -> Option<(Piece, &str)> {
    let index = body.get(..2)?.parse().ok()?;
    let (escaped, rest) = escaped_end(body[2..].trim_start_matches('~'), SLOT_END)?;
    Some((Piece::Slot { index, escaped }, rest))
}

fn parse_wrap(body: &str) -> Option<(Piece, &str)> {
    let hex_len = body.find('&')?;
    let hex = &body[..hex_len];
    let (escaped, rest) = escaped_end(&body[hex_len..], WRAP_END)?;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let (width, first, indent, text): (usize, String, String, String) =
        serde_json::from_slice(&bytes).ok()?;
    let piece = Piece::Wrap {
        width,
        first,
        indent,
        text: parse(&text)?,
        escaped,
    };
    Some((piece, rest))
}

#[cfg(test)]
mod tests {
    use handlebars::Handlebars;
    use serde_json::json;

    use super::*;

    fn registry(escape: bool) -> Handlebars<'static> {
        let mut r = super::super::registry();
        if escape {
            r.register_escape_fn(escape_html);
        } else {
            r.register_escape_fn(handlebars::no_escape);
        }
        r
    }

    fn check(template: &str, escape: bool) -> Option<Skeleton> {
        let r = registry(escape);
        let render = |v: &[String]| -> anyhow::Result<String> {
            Ok(r.render_template(template, &json!({"a": v[0], "b": v[1], "t": "<T&>"}))?)
        };
        let skeleton = Skeleton::build(2, render).unwrap()?;
        for (a, b) in [
            ("ann@example.net", "https://x.example/?t=1&u=2"),
            ("o'brien@x.example", ""),
        ] {
            let full = r
                .render_template(template, &json!({"a": a, "b": b, "t": "<T&>"}))
                .unwrap();
            assert_eq!(skeleton.fill(&[a, b]), full, "{template}");
        }
        Some(skeleton)
    }

    #[test]
    fn inserted_and_wrapped_values_are_filled_as_a_full_render_would() {
        for escape in [true, false] {
            check("{{t}} to {{a}}: <a href=\"{{b}}\">x</a> {{{b}}}", escape).unwrap();
            let long = "{{wrap (concat \"This email was sent to \" a \". \" t \" and some more words to wrap the line at seventy-two\") indent=\"  \"}}\n{{b}}";
            let s = check(long, escape).unwrap();
            assert!(matches!(s.pieces()[0], Piece::Wrap { .. }), "{s:?}");
            assert!(check("{{t}} only", escape).unwrap().is_fixed());
        }
    }

    #[test]
    fn a_template_that_transforms_a_value_is_refused() {
        // Used as it is, even twice or in a comparison: fine.
        assert!(check("{{concat a a}} {{#if (eq a \"x\")}}x{{/if}}", false).is_some());
        // Its length shown: the outputs differ, so no skeleton.
        assert!(check("{{len a}} characters", false).is_none());
        assert!(check("{{len a}} characters", true).is_none());
    }
}
