//! One outgoing message: `multipart/alternative` with the plain text part
//! first and the HTML part last (RFC 2046 §5.1.4: the last part is the
//! richest), a fresh `Message-ID`, and extra headers whose names and
//! values are checked before they reach lettre.

use std::time::SystemTime;

use lettre::message::header::{self, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use crate::base::SubscriberEmail;

/// Longest extra header value accepted. A header line may not exceed 998
/// characters (RFC 5322 §2.1.1) and lettre folds only at spaces, so a
/// long URL stays on one line.
const MAX_HEADER_VALUE: usize = 900;

/// Headers herald sets itself, or that would change who receives the
/// message; an extra header may not replace them.
const RESERVED: &[&str] = &[
    "from",
    "sender",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "return-path",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("`{0}` is not a header name (printable ASCII without `:`, at most 76 characters)")]
    BadHeaderName(String),
    #[error("the header `{0}` is set by herald itself and cannot be added")]
    ReservedHeader(String),
    #[error("the value of header `{0}` contains a line break or another control character")]
    BadHeaderValue(String),
    #[error("the value of header `{0}` is longer than {MAX_HEADER_VALUE} characters")]
    HeaderValueTooLong(String),
    #[error("the subject contains a line break or another control character")]
    BadSubject,
    #[error("`{0}` cannot be used as a recipient address")]
    BadRecipient(String),
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// A message to one subscriber, validated piece by piece as it is put
/// together; [`Outgoing::build`] turns it into a lettre [`Message`].
#[derive(Debug, Clone)]
pub struct Outgoing {
    from: Mailbox,
    to: Mailbox,
    subject: String,
    text: String,
    html: String,
    message_id: String,
    date: Option<SystemTime>,
    extra: Vec<HeaderValue>,
    /// SMTP `MAIL FROM`, where bounce reports go; `from`'s address when
    /// `None`.
    envelope_from: Option<Address>,
}

impl Outgoing {
    /// `text` and `html` carry the same content; mail clients show the
    /// HTML where they can and the text elsewhere.
    pub fn new(
        from: &Mailbox,
        to: &SubscriberEmail,
        subject: &str,
        text: impl Into<String>,
        html: impl Into<String>,
    ) -> Result<Outgoing, MessageError> {
        if subject.chars().any(char::is_control) {
            return Err(MessageError::BadSubject);
        }
        // A SubscriberEmail is lettre-compatible by construction; the check
        // stays so that a future change there cannot turn into a panic here.
        let address: Address = to
            .as_str()
            .parse()
            .map_err(|_| MessageError::BadRecipient(to.as_str().to_string()))?;
        Ok(Outgoing {
            message_id: new_message_id(&from.email),
            from: from.clone(),
            to: Mailbox::new(None, address),
            subject: subject.to_string(),
            text: text.into(),
            html: html.into(),
            date: None,
            extra: Vec::new(),
            envelope_from: None,
        })
    }

    /// Adds a header such as `List-Id` or `List-Unsubscribe`. Refuses names
    /// that are not plain header names, the headers herald sets itself,
    /// and values with CR, LF or any other control character (refused,
    /// not cleaned: a line break in a value is an injection attempt).
    /// Non-ASCII values are encoded (RFC 2047) by lettre.
    pub fn header(mut self, name: &str, value: &str) -> Result<Outgoing, MessageError> {
        let valid_name = !name.is_empty()
            && name.len() <= 76
            && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if !valid_name {
            return Err(MessageError::BadHeaderName(name.escape_debug().to_string()));
        }
        if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(MessageError::ReservedHeader(name.to_string()));
        }
        if value.chars().any(char::is_control) {
            return Err(MessageError::BadHeaderValue(name.to_string()));
        }
        if value.chars().count() > MAX_HEADER_VALUE {
            return Err(MessageError::HeaderValueTooLong(name.to_string()));
        }
        let header_name = HeaderName::new_from_ascii(name.to_string())
            .map_err(|_| MessageError::BadHeaderName(name.to_string()))?;
        self.extra
            .push(HeaderValue::new(header_name, value.to_string()));
        Ok(self)
    }

    /// Sets the `Date` header; without it the message is dated when built.
    pub fn date(mut self, at: SystemTime) -> Outgoing {
        self.date = Some(at);
        self
    }

    /// Replaces the random `Message-ID` with `<{local}@domain-of-from>`, for
    /// messages that must keep one identity across attempts (a digest
    /// sent again after a crash). `local` must be a dot-atom (letters,
    /// digits, `.`, `-`).
    pub fn with_message_id(mut self, local: &str) -> Result<Outgoing, MessageError> {
        let ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && local
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !ok {
            return Err(MessageError::Build(format!(
                "`{local}` cannot be the left part of a Message-ID"
            )));
        }
        self.message_id = format!("<{local}@{}>", self.from.email.domain());
        Ok(self)
    }

    /// Sets the envelope sender (SMTP `MAIL FROM`, recorded by the
    /// receiver as `Return-Path`): bounce reports are mailed there, so a
    /// per-delivery address names the delivery that bounced. The `From`
    /// header is unchanged.
    pub fn envelope_from(mut self, address: &str) -> Result<Outgoing, MessageError> {
        let parsed: Address = address
            .parse()
            .map_err(|_| MessageError::Build(format!("`{address}` is not an envelope sender")))?;
        self.envelope_from = Some(parsed);
        Ok(self)
    }

    /// `<random@domain-of-from>`, with the angle brackets; what a ledger
    /// records to recognise the message later.
    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    pub fn to(&self) -> &Address {
        &self.to.email
    }

    pub fn build(self) -> Result<Message, MessageError> {
        // The envelope is given, not derived from the headers, so the
        // recipients are exactly the one subscriber.
        let sender = self
            .envelope_from
            .clone()
            .unwrap_or_else(|| self.from.email.clone());
        let envelope = lettre::address::Envelope::new(Some(sender), vec![self.to.email.clone()])
            .map_err(|e| MessageError::Build(e.to_string()))?;
        let mut builder = Message::builder()
            .from(self.from)
            .to(self.to)
            .subject(self.subject)
            .header(header::MessageId::from(self.message_id))
            .envelope(envelope);
        builder = match self.date {
            Some(at) => builder.date(at),
            None => builder.date_now(),
        };
        for value in self.extra {
            builder = builder.raw_header(value);
        }
        let body = MultiPart::alternative()
            .singlepart(SinglePart::plain(self.text))
            .singlepart(SinglePart::html(self.html));
        builder
            .multipart(body)
            .map_err(|e| MessageError::Build(e.to_string()))
    }
}

/// 128 random bits in hex at the sender's domain: unique without any
/// shared counter, and it names no host of ours.
fn new_message_id(from: &Address) -> String {
    let random: u128 = rand::random();
    format!("<{random:032x}@{}>", from.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from() -> Mailbox {
        "Herald <news@example.org>".parse().unwrap()
    }

    fn outgoing() -> Outgoing {
        let to = SubscriberEmail::parse("ann@example.net").unwrap();
        Outgoing::new(&from(), &to, "Hello", "text", "<p>html</p>").unwrap()
    }

    #[test]
    fn message_id_is_random_at_the_senders_domain() {
        let a = outgoing();
        let b = outgoing();
        assert_ne!(a.message_id(), b.message_id());
        assert!(a.message_id().starts_with('<'), "{}", a.message_id());
        assert!(
            a.message_id().ends_with("@example.org>"),
            "{}",
            a.message_id()
        );
    }

    #[test]
    fn line_breaks_and_reserved_names_are_refused() {
        let err = outgoing()
            .header("List-Id", "a\r\nBcc: x@evil.example")
            .unwrap_err();
        assert_eq!(err, MessageError::BadHeaderValue("List-Id".into()));
        assert!(outgoing().header("List-Id", "a\nb").is_err());
        assert!(outgoing().header("List-Id", "a\0b").is_err());
        assert!(outgoing().header("X-A\r\nBcc", "v").is_err());
        assert!(outgoing().header("X A", "v").is_err());
        assert!(outgoing().header("", "v").is_err());
        assert_eq!(
            outgoing().header("bcc", "x@evil.example").unwrap_err(),
            MessageError::ReservedHeader("bcc".into())
        );
        assert!(outgoing().header("List-Id", &"x".repeat(901)).is_err());
        let to = SubscriberEmail::parse("ann@example.net").unwrap();
        assert_eq!(
            Outgoing::new(&from(), &to, "Hi\r\nBcc: x@evil.example", "", "").unwrap_err(),
            MessageError::BadSubject
        );
    }

    #[test]
    fn extra_headers_and_envelope_reach_the_message() {
        let message = outgoing()
            .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
            .unwrap()
            .build()
            .unwrap();
        let text = String::from_utf8(message.formatted()).unwrap();
        assert!(
            text.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"),
            "{text}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
        let plain = text.find("text/plain").unwrap();
        let html = text.find("text/html").unwrap();
        assert!(plain < html, "{text}");
        assert_eq!(message.envelope().to().len(), 1);
        assert_eq!(message.envelope().to()[0].to_string(), "ann@example.net");
    }
}
