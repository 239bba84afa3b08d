//! Reports that come back to the envelope sender after a message was
//! accepted: delivery status notifications (RFC 3464, `multipart/report;
//! report-type=delivery-status`) and abuse reports (ARF, RFC 5965,
//! `report-type=feedback-report`), parsed with mail-parser into what
//! herald needs to find the delivery they are about.
//!
//! Nothing here trusts a report: it only collects the addresses that may
//! carry herald's signed envelope token, the Message-ID of the returned
//! message and the recipients with their status. Deciding what matches is
//! the caller's (see `subscribers::bounces`).

use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Largest report read; real DSNs and ARF reports are far smaller (the
/// returned message is often cut to its headers).
pub const MAX_REPORT: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// A delivery status notification.
    Dsn,
    /// An abuse (feedback) report.
    Arf,
}

/// One recipient of a DSN.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnRecipient {
    /// `Final-Recipient`, without its address type.
    pub final_recipient: Option<String>,
    pub original_recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed`, `expanded`.
    pub action: String,
    /// The enhanced status code (`5.1.1`).
    pub status: String,
    pub diagnostic: Option<String>,
}

impl DsnRecipient {
    /// A permanent failure: `Action: failed` with a 5.x.x status.
    pub fn is_hard_bounce(&self) -> bool {
        self.action.eq_ignore_ascii_case("failed") && self.status.starts_with('5')
    }

    /// The recipient as the report names it.
    pub fn address(&self) -> Option<&str> {
        self.final_recipient
            .as_deref()
            .or(self.original_recipient.as_deref())
    }

    /// Status and diagnostic in one line, for the ledger and the log.
    pub fn detail(&self) -> String {
        match &self.diagnostic {
            Some(d) => format!("{} {} ({d})", self.action, self.status),
            None => format!("{} {}", self.action, self.status),
        }
    }
}

/// What a report says, as far as herald cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub kind: ReportKind,
    /// The report's own Message-ID, without angle brackets.
    pub id: Option<String>,
    /// Addresses that may hold herald's envelope token: where the report
    /// was delivered (`Delivered-To`, `X-Original-To`, `Envelope-To`,
    /// `To`), the returned message's `Return-Path`, ARF's
    /// `Original-Mail-From`.
    pub token_addresses: Vec<String>,
    /// The Message-ID of the message the report is about, without angle
    /// brackets.
    pub original_message_id: Option<String>,
    /// DSN: one entry per recipient.
    pub recipients: Vec<DsnRecipient>,
    /// ARF: `Feedback-Type` (`abuse`, `fraud`, `not-spam`, …).
    pub feedback_type: Option<String>,
    /// ARF: `Original-Rcpt-To`, else the returned message's `To`.
    pub complainant: Option<String>,
}

impl Report {
    /// An abuse report that is a complaint (RFC 5965 `abuse` or `fraud`).
    pub fn is_complaint(&self) -> bool {
        self.kind == ReportKind::Arf
            && self
                .feedback_type
                .as_deref()
                .is_some_and(|t| t.eq_ignore_ascii_case("abuse") || t.eq_ignore_ascii_case("fraud"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("not an email message")]
    NotAMessage,
    #[error("larger than {MAX_REPORT} bytes")]
    TooLarge,
    #[error("not a delivery status notification or an abuse report (content type {0})")]
    NotAReport(String),
}

/// The header block of a DSN or ARF part: groups of `Name: value` fields
/// separated by blank lines, continuation lines folded in.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !groups.last().is_some_and(Vec::is_empty) {
                groups.push(Vec::new());
            }
            continue;
        }
        let group = groups.last_mut().expect("one group at least");
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; ann@example.org` -> `ann@example.org`; `<a@b>` -> `a@b`.
fn typed_address(value: &str) -> String {
    let v = value.split_once(';').map_or(value, |(_, a)| a).trim();
    v.trim_start_matches('<').trim_end_matches('>').to_string()
}

fn bare_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// The addresses in a header value such as `Delivered-To` or `To`.
fn addresses_in(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split([',', ' ', '<', '>', '"'])
        .filter(|s| s.contains('@'))
        .map(|s| s.trim().to_string())
}

/// Parses a report. Anything that is not `multipart/report` of either kind
/// is [`ReportError::NotAReport`] (autoreplies, spam to the bounce
/// address).
pub fn parse_report(raw: &[u8]) -> Result<Report, ReportError> {
    if raw.len() > MAX_REPORT {
        return Err(ReportError::TooLarge);
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or(ReportError::NotAMessage)?;
    let ctype = message.content_type();
    let kind = match ctype {
        Some(c)
            if c.ctype().eq_ignore_ascii_case("multipart")
                && c.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("report")) =>
        {
            match c
                .attribute("report-type")
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                Some("delivery-status") | Some("global-delivery-status") => ReportKind::Dsn,
                Some("feedback-report") => ReportKind::Arf,
                other => {
                    return Err(ReportError::NotAReport(format!(
                        "multipart/report; report-type={}",
                        other.unwrap_or("?")
                    )))
                }
            }
        }
        Some(c) => {
            return Err(ReportError::NotAReport(format!(
                "{}/{}",
                c.ctype(),
                c.subtype().unwrap_or("")
            )))
        }
        None => return Err(ReportError::NotAReport("text/plain".into())),
    };
    let mut report = Report {
        kind,
        id: message.message_id().map(bare_id),
        token_addresses: Vec::new(),
        original_message_id: None,
        recipients: Vec::new(),
        feedback_type: None,
        complainant: None,
    };
    for name in ["Delivered-To", "X-Original-To", "Envelope-To", "To"] {
        for h in message.headers() {
            if h.name().eq_ignore_ascii_case(name) {
                let raw_value = &raw[(h.offset_start as usize).min(raw.len())
                    ..(h.offset_end as usize).min(raw.len())];
                report
                    .token_addresses
                    .extend(addresses_in(&String::from_utf8_lossy(raw_value)));
            }
        }
    }
    let mut original_to = None;
    for part in &message.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let full = format!(
            "{}/{}",
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or("").to_ascii_lowercase()
        );
        match (full.as_str(), &part.body) {
            ("message/delivery-status" | "message/global-delivery-status", _) => {
                let text = String::from_utf8_lossy(part.contents());
                let groups = field_groups(&text);
                for g in groups.iter().skip(1) {
                    report.recipients.push(DsnRecipient {
                        final_recipient: field(g, "final-recipient").map(typed_address),
                        original_recipient: field(g, "original-recipient").map(typed_address),
                        action: field(g, "action").unwrap_or("").to_ascii_lowercase(),
                        status: field(g, "status")
                            .unwrap_or("")
                            .split_whitespace()
                            .next()
                            .unwrap_or("")
                            .to_string(),
                        diagnostic: field(g, "diagnostic-code")
                            .map(|d| d.split_once(';').map_or(d, |(_, t)| t).trim().to_string()),
                    });
                }
            }
            ("message/feedback-report", _) => {
                let text = String::from_utf8_lossy(part.contents());
                let groups = field_groups(&text);
                let all: Vec<(String, String)> = groups.into_iter().flatten().collect();
                report.feedback_type = field(&all, "feedback-type").map(|t| t.to_ascii_lowercase());
                report.complainant = field(&all, "original-rcpt-to").map(typed_address);
                if let Some(from) = field(&all, "original-mail-from") {
                    report.token_addresses.push(typed_address(from));
                }
            }
            (_, PartType::Message(inner)) => note_original(&mut report, &mut original_to, inner),
            ("text/rfc822-headers" | "message/rfc822-headers", _) => {
                if let Some(inner) = MessageParser::default().parse_headers(part.contents()) {
                    note_original(&mut report, &mut original_to, &inner);
                }
            }
            _ => {}
        }
    }
    if report.original_message_id.is_none() {
        // Some relays paste the returned headers into the text part: the
        // first Message-ID of herald's own shape found anywhere will do
        // (it still has to name the run's secret nonce to match).
        report.original_message_id = find_herald_message_id(&String::from_utf8_lossy(raw));
    }
    if report.complainant.is_none() && kind == ReportKind::Arf {
        report.complainant = original_to;
    }
    Ok(report)
}

/// What the returned message (or its headers) tells: its Message-ID, its
/// envelope sender (`Return-Path`, with herald's token) and recipient.
fn note_original(
    report: &mut Report,
    original_to: &mut Option<String>,
    original: &mail_parser::Message<'_>,
) {
    if report.original_message_id.is_none() {
        report.original_message_id = original.message_id().map(bare_id);
    }
    if let Some(rp) = original.header_raw("Return-Path") {
        report.token_addresses.extend(addresses_in(rp));
    }
    if original_to.is_none() {
        *original_to = original
            .header_raw("To")
            .and_then(|t| addresses_in(t).next());
    }
}

/// The first `digest.<nonce>.<run>.<subscriber>@…` (herald's Message-ID
/// shape) in `text`.
fn find_herald_message_id(text: &str) -> Option<String> {
    let mut rest = text;
    while let Some(i) = rest.find("digest.") {
        let candidate: String = rest[i..]
            .chars()
            .take_while(|c| !matches!(c, '>' | ' ' | '\r' | '\n' | '\t' | '"'))
            .collect();
        if parse_message_id(&candidate).is_some() {
            return Some(candidate);
        }
        rest = &rest[i + 7..];
    }
    None
}

/// herald's Message-ID `digest.<nonce>.<run>.<subscriber>@domain`
/// (without angle brackets) -> `(nonce, run, subscriber)`.
pub fn parse_message_id(id: &str) -> Option<(String, i64, i64)> {
    let (local, _domain) = bare_id(id)
        .split_once('@')
        .map(|(l, d)| (l.to_string(), d.to_string()))?;
    let mut parts = local.split('.');
    let (Some("digest"), Some(nonce), Some(run), Some(sub), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    if nonce.len() != 16 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((nonce.to_string(), run.parse().ok()?, sub.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_of_herald_shape_are_recognised() {
        assert_eq!(
            parse_message_id("<digest.0123456789abcdef.12.345@example.org>"),
            Some(("0123456789abcdef".into(), 12, 345))
        );
        assert_eq!(parse_message_id("digest.xyz.12.345@example.org"), None);
        assert_eq!(parse_message_id("abc@example.org"), None);
        assert_eq!(
            find_herald_message_id("Message-ID: <digest.0123456789abcdef.1.2@x.org>\n"),
            Some("digest.0123456789abcdef.1.2@x.org".into())
        );
    }

    #[test]
    fn dsn_field_groups_fold_continuation_lines() {
        let groups = field_groups(
            "Reporting-MTA: dns; mx.example\n\nFinal-Recipient: rfc822; a@b.org\nAction: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 no\n  such user\n",
        );
        assert_eq!(groups.len(), 2);
        assert_eq!(
            field(&groups[1], "diagnostic-code"),
            Some("smtp; 550 5.1.1 no such user")
        );
    }
}
