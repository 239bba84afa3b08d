//! Quoted-printable (RFC 2045 §6.7) for message bodies that are encoded
//! once and sent many times, piece by piece.
//!
//! Every piece is encoded on lines of its own: it starts at the beginning
//! of a line and, unless its text ends with a line break, ends with a soft
//! line break (`=` CRLF), which decodes to nothing. Pieces encoded apart
//! can therefore be joined in any order, and a per-recipient piece spliced
//! between two shared ones, without encoding the shared ones again.
//!
//! Beyond RFC 2045 the output never has a line that starts with `.` (it is
//! written `=2E`), so it goes to SMTP without dot-stuffing, and it never
//! holds `=_`, so a MIME boundary containing `=_` cannot occur in it.
//!
//! Hand-written rather than lettre's encoder: lettre encodes a whole body
//! at once and cannot encode pieces to be joined; encoding each digest
//! whole took 22% of herald's CPU per message (issue 15's profile).

/// Longest encoded line, without its CRLF (RFC 2045: 76).
pub const MAX_LINE: usize = 76;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Appends `text`, encoded as one piece, to `out`.
pub fn encode_piece(text: &str, out: &mut String) {
    // Everything pushed is ASCII, so the bytes stay UTF-8.
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + bytes.len() / 16 + 8);
    let mut column = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        // A run of characters written as they are, while the line has room
        // for each and for a soft break after it: what the loop below
        // would do one character at a time, copied at once (encoding
        // per-recipient pieces a byte at a time was 2% of a digest's CPU).
        let room = (MAX_LINE - 1).saturating_sub(column);
        let run = bytes[i..]
            .iter()
            .take(room)
            .take_while(|&&b| matches!(b, 33..=60 | 62..=126))
            .count();
        if run > 0 && !(column == 0 && bytes[i] == b'.') {
            out.push_str(&text[i..i + run]);
            column += run;
            i += run;
            continue;
        }
        let b = bytes[i];
        // A line break: CRLF or a lone LF (templates are written with LF).
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) == Some(&b'\n')) {
            out.push_str("\r\n");
            column = 0;
            i += if b == b'\r' { 2 } else { 1 };
            continue;
        }
        let before_break = matches!(bytes.get(i + 1), Some(b'\n'))
            || (bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n'));
        let literal = match b {
            // White space before a hard line break would be lost in transit.
            b' ' | b'\t' => !before_break,
            b'=' => false,
            33..=126 => true,
            _ => false,
        };
        let width = if literal { 1 } else { 3 };
        // Room for the `=` of a soft break after this character, unless a
        // hard break follows it.
        let limit = if before_break { MAX_LINE } else { MAX_LINE - 1 };
        if column + width > limit {
            out.push_str("=\r\n");
            column = 0;
        }
        if literal && !(b == b'.' && column == 0) {
            out.push(b as char);
            column += 1;
        } else {
            out.push('=');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
            column += 3;
        }
        i += 1;
    }
    if column > 0 {
        out.push_str("=\r\n");
    }
}

/// `text` encoded as one piece.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    encode_piece(text, &mut out);
    out
}

/// Decodes quoted-printable, for tests and checks: soft breaks vanish,
/// `=XX` becomes its byte, CRLF stays CRLF.
pub fn decode(encoded: &str) -> Vec<u8> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'=' {
            out.push(bytes[i]);
            i += 1;
        } else if bytes[i + 1..].starts_with(b"\r\n") {
            i += 3;
        } else {
            let hex = std::str::from_utf8(&bytes[i + 1..(i + 3).min(bytes.len())]).unwrap_or("");
            out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
            i += 3;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(encoded: &str) -> Vec<&str> {
        encoded.split("\r\n").collect()
    }

    #[test]
    fn round_trips_and_keeps_lines_short() {
        let long = "word ".repeat(40);
        let samples = [
            "plain text\n",
            "ünïcödé and = signs and\ttabs \nline with trailing space \n",
            ".starts with a dot\n.again\n",
            "no line break at the end",
            &long,
            "a\r\nwindows\r\nbreaks\r\n",
            "=_boundary-like =_ text\n",
            "",
        ];
        for text in samples {
            let encoded = encode(text);
            assert!(encoded.is_ascii());
            for line in lines(&encoded) {
                assert!(line.len() <= MAX_LINE, "{line:?} in {encoded:?}");
                assert!(!line.starts_with('.'), "{line:?}");
                assert!(!line.ends_with(' ') && !line.ends_with('\t'), "{line:?}");
            }
            assert!(!encoded.contains("=_"), "{encoded}");
            assert!(encoded.is_empty() || encoded.ends_with("\r\n"));
            let decoded = String::from_utf8(decode(&encoded)).unwrap();
            assert_eq!(decoded, text.replace("\r\n", "\n").replace('\n', "\r\n"));
        }
    }

    #[test]
    fn pieces_encoded_apart_join_into_the_whole() {
        let parts = [
            "<a href=\"",
            "https://example.org/u?token=abc.def",
            "\">x</a>\n",
        ];
        let mut joined = String::new();
        for p in parts {
            encode_piece(p, &mut joined);
        }
        assert_eq!(
            decode(&joined),
            parts.concat().replace('\n', "\r\n").as_bytes()
        );
    }

    #[test]
    fn a_break_never_splits_an_escape() {
        // 74 letters, then characters that need three places each.
        let text = format!("{}ééé\n", "x".repeat(74));
        let encoded = encode(&text);
        for line in lines(&encoded) {
            assert!(line.len() <= MAX_LINE);
        }
        assert!(
            encoded.starts_with(&format!("{}=\r\n=C3=A9", "x".repeat(74))),
            "{encoded}"
        );
        assert_eq!(decode(&encoded), text.replace('\n', "\r\n").as_bytes());
    }
}
