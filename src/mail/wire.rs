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
}

/// What ends the DATA of a message whose text ends with CRLF.
const END_OF_DATA: &str = ".\r\n";

impl Wire {
    /// `text` as written by herald's own message builders. A line that
    /// starts with `.` is dot-stuffed here (a builder never writes one,
    /// so this costs one scan), and a missing final CRLF is added.
    pub fn new(envelope: Envelope, mut text: String) -> Wire {
        if text.starts_with('.') || memchr::memmem::find(text.as_bytes(), b"\n.").is_some() {
            text = stuff(&text);
        }
        if !text.ends_with("\r\n") {
            text.push_str("\r\n");
        }
        text.push_str(END_OF_DATA);
        Wire { envelope, text }
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

/// RFC 5321 §4.5.2: a line that starts with `.` gets one more.
fn stuff(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    out
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
