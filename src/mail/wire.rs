//! A message as it goes on the wire: its envelope and its bytes, built by
//! herald itself (the digest) or formatted by lettre (everything else).

use lettre::address::Envelope;
use lettre::message::header::{self, HeaderName, HeaderValue, Headers};
use lettre::message::Mailbox;
use lettre::Message;

/// A message ready to send: CRLF lines, none longer than 998 characters,
/// none starting with `.` (so SMTP needs no dot-stuffing), ending with
/// CRLF.
#[derive(Debug, Clone)]
pub struct Wire {
    envelope: Envelope,
    /// The message and the `.` CRLF that ends SMTP's DATA: one buffer,
    /// written to the server as it is.
    text: String,
    /// Whether `text` is all ASCII (else the server must offer 8BITMIME).
    ascii: bool,
}

/// What ends the DATA of a message whose text ends with CRLF.
const END_OF_DATA: &str = ".\r\n";

impl Wire {
    /// `text` as written by herald's own message builders. A line that
    /// starts with `.` is dot-stuffed here (a builder never writes one,
    /// so this costs one scan), and a missing final CRLF is added.
    pub fn new(envelope: Envelope, text: String) -> Wire {
        let ascii = text.is_ascii();
        let text =
            if text.starts_with('.') || memchr::memmem::find(text.as_bytes(), b"\n.").is_some() {
                let mut stuffed = WireText::with_capacity(text.len() + 64);
                stuffed.push_str(&text);
                stuffed.text
            } else {
                text
            };
        WireText { text, ascii }.finish(envelope)
    }

    /// A message lettre built.
    pub fn from_message(message: &Message) -> Wire {
        let text = String::from_utf8(message.formatted())
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        Wire::new(message.envelope().clone(), text)
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The bytes as sent (after dot-stuffing, without the final `.`).
    pub fn text(&self) -> &str {
        &self.text[..self.text.len() - END_OF_DATA.len()]
    }

    /// The text and the `.` CRLF after it, as SMTP's DATA takes it.
    pub(super) fn data(&self) -> &str {
        &self.text
    }

    /// Whether the text is all ASCII.
    pub(super) fn is_ascii(&self) -> bool {
        self.ascii
    }

    /// The message as a reader receives it (dot-stuffing undone).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.text.len());
        for line in self.text().split_inclusive('\n') {
            // After stuffing, every line that starts with `.` has one more.
            out.extend_from_slice(line.strip_prefix('.').unwrap_or(line).as_bytes());
        }
        out
    }
}

/// Text that goes into many messages (a digest's shared body), scanned
/// once: dot-stuffed inside, and what [`WireText`] needs to know about
/// its start and its characters. Measured with 100 KB digests (issue 15):
/// scanning every message whole for `.` and for non-ASCII took 4% of the
/// CPU per message.
#[derive(Debug, Clone)]
pub struct Stuffed {
    /// Every line start after the first stuffed.
    text: String,
    leading_dot: bool,
    ascii: bool,
}

impl Stuffed {
    pub fn new(text: &str) -> Stuffed {
        let leading_dot = text.starts_with('.');
        let mut out = String::with_capacity(text.len());
        push_stuffed_inside(&mut out, text);
        Stuffed {
            text: out,
            leading_dot,
            ascii: text.is_ascii(),
        }
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The text before stuffing.
    #[cfg(test)]
    fn unstuffed(&self) -> String {
        let mut out = String::with_capacity(self.text.len());
        for (i, line) in self.text.split_inclusive('\n').enumerate() {
            match line.strip_prefix('.') {
                Some(rest) if i > 0 => out.push_str(rest),
                _ => out.push_str(line),
            }
        }
        out
    }
}

/// A message's text put together piece by piece and dot-stuffed as it
/// goes, so that [`Wire`] need not scan it again.
#[derive(Debug)]
pub struct WireText {
    text: String,
    ascii: bool,
}

impl WireText {
    pub fn with_capacity(capacity: usize) -> WireText {
        WireText {
            text: String::with_capacity(capacity),
            ascii: true,
        }
    }

    fn at_line_start(&self) -> bool {
        self.text.is_empty() || self.text.ends_with('\n')
    }

    /// Appends `text`, stuffing it.
    pub fn push_str(&mut self, text: &str) {
        if text.starts_with('.') && self.at_line_start() {
            self.text.push('.');
        }
        push_stuffed_inside(&mut self.text, text);
        self.ascii &= text.is_ascii();
    }

    /// Appends text stuffed ahead: a copy, and no scan.
    pub fn push_stuffed(&mut self, text: &Stuffed) {
        if text.leading_dot && self.at_line_start() {
            self.text.push('.');
        }
        self.text.push_str(&text.text);
        self.ascii &= text.ascii;
    }

    /// The message: ended with CRLF if it is not, and with SMTP's end of
    /// data.
    pub fn finish(mut self, envelope: Envelope) -> Wire {
        if !self.text.ends_with("\r\n") {
            self.text.push_str("\r\n");
        }
        self.text.push_str(END_OF_DATA);
        Wire {
            envelope,
            text: self.text,
            ascii: self.ascii,
        }
    }
}

/// Appends `text` with a `.` added after every line break followed by one
/// (not at its very start: that depends on what comes before).
fn push_stuffed_inside(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(at) = memchr::memmem::find(rest.as_bytes(), b"\n.") {
        out.push_str(&rest[..=at]);
        out.push('.');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Appends the header line `name: value` and CRLF, folded before a space
/// where the line would pass 78 characters (RFC 5322 §2.1.1; a word longer
/// than that, a URL, stays whole on its line). `value` must be free of
/// control characters and already encoded (RFC 2047) where it is not
/// ASCII.
pub fn push_header(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    let mut column = name.len() + 2;
    let mut first = true;
    for word in value.split(' ') {
        if !first {
            if column + 1 + word.len() > 78 && column > 1 {
                out.push_str("\r\n ");
                column = 1;
            } else {
                out.push(' ');
                column += 1;
            }
        }
        out.push_str(word);
        column += word.len();
        first = false;
    }
    out.push_str("\r\n");
}

/// The header line `name: value` as lettre writes it (RFC 2047 words for
/// text that is not ASCII, folded), for values that are the same in many
/// messages and so formatted once. `name` must be a valid header name.
pub fn encoded_header(name: &'static str, value: &str) -> String {
    let mut headers = Headers::new();
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str(name),
        value.to_string(),
    ));
    headers.to_string()
}

/// The `From:` line for `from`, as lettre writes it.
pub fn from_header(from: &Mailbox) -> String {
    let mut headers = Headers::new();
    headers.set(header::From::from(lettre::message::Mailboxes::from(
        from.clone(),
    )));
    headers.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> Envelope {
        Envelope::new(
            Some("a@example.org".parse().unwrap()),
            vec!["b@example.net".parse().unwrap()],
        )
        .unwrap()
    }

    #[test]
    fn dots_at_line_starts_are_stuffed_and_unstuffed() {
        let wire = Wire::new(envelope(), ".a\r\nb\r\n.c".into());
        assert_eq!(wire.text(), "..a\r\nb\r\n..c\r\n");
        assert_eq!(wire.to_bytes(), b".a\r\nb\r\n.c\r\n");
        let plain = Wire::new(envelope(), "a\r\n".into());
        assert_eq!(plain.text(), "a\r\n");
    }

    #[test]
    fn text_put_together_in_pieces_is_stuffed_as_if_whole() {
        let shared = Stuffed::new(".x\r\n.y\r\nz");
        assert_eq!(shared.unstuffed(), ".x\r\n.y\r\nz");
        let cases: [(&[&str], bool); 4] = [
            (&["a\r\n", "S", "\r\n.b"], true),
            (&["a", "S", ".\r\n"], true),
            (&["S", "é\r\n.", "S"], false),
            (&["", ".", "\n.", "S", "S"], true),
        ];
        for (pieces, ascii) in cases {
            let mut built = WireText::with_capacity(0);
            let mut whole = String::new();
            for piece in pieces {
                if *piece == "S" {
                    built.push_stuffed(&shared);
                    whole.push_str(".x\r\n.y\r\nz");
                } else {
                    built.push_str(piece);
                    whole.push_str(piece);
                }
            }
            let built = built.finish(envelope());
            let expected = Wire::new(envelope(), whole);
            assert_eq!(built.text(), expected.text(), "{pieces:?}");
            assert_eq!(built.is_ascii(), ascii, "{pieces:?}");
            assert_eq!(expected.is_ascii(), ascii, "{pieces:?}");
        }
    }

    #[test]
    fn long_headers_fold_before_spaces_only() {
        let mut out = String::new();
        let url = format!("<https://example.org/{}>", "x".repeat(100));
        push_header(
            &mut out,
            "List-Unsubscribe",
            &format!("{url}, <mailto:u@example.org>"),
        );
        assert_eq!(
            out,
            format!("List-Unsubscribe: {url},\r\n <mailto:u@example.org>\r\n")
        );
        let mut short = String::new();
        push_header(&mut short, "To", "b@example.net");
        assert_eq!(short, "To: b@example.net\r\n");
    }
}
