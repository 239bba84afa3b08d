//! Digests as they are sent: rendered once per run for each distinct set
//! of articles (a [`Variant`]; most subscribers of a schedule share one),
//! encoded once, and spliced per recipient with what is theirs alone: the
//! address, the links that carry their token, the headers, the DKIM
//! signature.
//!
//! A variant's parts are template [`Skeleton`]s (see `templates/skeleton.rs`
//! for how a template is checked to allow that); each piece every
//! recipient shares is quoted-printable encoded once, and, with DKIM, its
//! canonical form made once and the body hash state after the shared
//! start kept, so a recipient costs the encoding and hashing of their own
//! pieces only. A part whose template does more with a recipient's values
//! than show them is rendered per recipient, as `compose` does.
//!
//! Measured before this (issue 15): Handlebars rendering the same article
//! partials for every recipient took 46% of the CPU per message, lettre
//! building and encoding the whole body 22%.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use lettre::address::Envelope;
use lettre::Address;

use super::compose::{Composer, Data, Links, Recipient, RunContext};
use crate::config::DigestConfig;
use crate::mail::dkim::canonical_body;
use crate::mail::{
    encoded_header, from_header, push_header, qp, BodyHash, Stuffed, Wire, WireText,
};
use crate::store::Run;
use crate::templates::{Piece, Skeleton};

/// Distinct digests kept per run; past this the cache starts over, so a
/// run where nearly everybody gets different articles holds little.
pub(super) const MAX_VARIANTS: usize = 64;

/// The values that differ per recipient, in the order skeletons number
/// them: `subscriber.email`, `links.unsubscribe`, `links.preferences`.
const VALUES: usize = 3;

/// A digest ready for the wire, for one recipient.
#[derive(Debug)]
pub struct Prepared {
    pub wire: Wire,
    pub article_count: usize,
}

/// The header lines that are the same in every message of a run.
pub(super) struct RunHeaders {
    from_line: String,
    list_id_line: String,
    post_line: String,
    /// List-Archive, Auto-Submitted, MIME-Version.
    rest: String,
    /// The domain of Message-IDs.
    domain: String,
    /// The unsubscribe and preferences pages' URLs up to their token
    /// (`…?token=`): joining a URL per recipient took two URL parses.
    unsubscribe_page: String,
    preferences_page: String,
}

impl RunHeaders {
    /// `page` (one of the two above) with `token`, as
    /// `Config::page_url` writes it.
    fn page_url(page: &str, token: &str) -> String {
        let mut url = String::with_capacity(page.len() + token.len());
        url.push_str(page);
        // Tokens are URL-safe base64 and dots, which the form encoding
        // leaves as they are.
        if token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
        {
            url.push_str(token);
        } else {
            url.extend(url::form_urlencoded::byte_serialize(token.as_bytes()));
        }
        url
    }
}

/// One distinct digest of a run.
pub(super) struct Variant {
    picked: Vec<usize>,
    subject: Subject,
    content_type: String,
    body: Vec<Body>,
    /// Bytes of the shared body pieces.
    size: usize,
    /// With DKIM: the body hash state after the shared start of the body,
    /// and how many pieces that start has.
    prefix: Option<(BodyHash, usize)>,
}

enum Subject {
    /// The header line, the same for everybody.
    Fixed(String),
    Filled(Skeleton),
    Rendered,
}

enum Body {
    /// Encoded and dot-stuffed, and (with DKIM) in canonical form.
    Shared {
        wire: Stuffed,
        canonical: Vec<u8>,
    },
    Open(Piece),
    Rendered(Part),
}

#[derive(Debug, Clone, Copy)]
enum Part {
    Text,
    Html,
}

impl Part {
    fn template(self) -> &'static str {
        match self {
            Part::Text => "digest.txt",
            Part::Html => "digest.html",
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Part::Text => "text/plain",
            Part::Html => "text/html",
        }
    }
}

impl Composer {
    /// The header lines every message of a run for `digest` shares.
    /// `archive`: the run's slug in the web archive, if it has one.
    pub(super) fn run_headers(
        &self,
        run: &Run,
        digest: &DigestConfig,
        archive: Option<&str>,
    ) -> RunHeaders {
        let archive = self.list_archive(&run.schedule, archive.is_some());
        let rest = format!(
            "{}{}MIME-Version: 1.0\r\n",
            encoded_header("List-Archive", &archive),
            encoded_header("Auto-Submitted", "auto-generated")
        );
        RunHeaders {
            from_line: from_header(&self.from),
            list_id_line: encoded_header("List-Id", &self.list_id(&digest.name)),
            post_line: encoded_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            rest,
            domain: self.from.email.domain().to_string(),
            unsubscribe_page: self.config.page_url("unsubscribe", Some("")).to_string(),
            preferences_page: self.config.page_url("preferences", Some("")).to_string(),
        }
    }

    /// The digest for `to` as it goes on the wire, or `None` when nothing
    /// in it is new to them. Byte for byte the text and HTML that
    /// [`Composer::compose`] renders (tests hold it to that).
    pub fn prepare(
        &self,
        ctx: &RunContext,
        to: Recipient<'_>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Prepared>> {
        let picked = self.pick(ctx, &to);
        if picked.is_empty() {
            return Ok(None);
        }
        let variant = self.variant(ctx, picked)?;
        let token = self.signer.manage_token(to.id, now);
        let headers = &ctx.headers;
        let unsubscribe = RunHeaders::page_url(&headers.unsubscribe_page, &token);
        let preferences = RunHeaders::page_url(&headers.preferences_page, &token);
        let values = [
            to.email.as_str(),
            unsubscribe.as_str(),
            preferences.as_str(),
        ];

        let mut dynamic = Vec::new();
        let mut filled = String::new();
        for item in &variant.body {
            let text = match item {
                Body::Shared { .. } => continue,
                Body::Open(piece) => {
                    filled.clear();
                    piece.fill(&values, &mut filled);
                    &filled
                }
                Body::Rendered(part) => {
                    filled = self.render_part(ctx, &variant, *part, &values)?;
                    &filled
                }
            };
            let mut encoded = String::with_capacity(text.len() + 16);
            qp::encode_piece(text, &mut encoded);
            dynamic.push(encoded);
        }

        let mut head = String::with_capacity(1200);
        head.push_str(&headers.from_line);
        push_header(&mut head, "To", to.email.as_str());
        match &variant.subject {
            Subject::Fixed(line) => head.push_str(line),
            Subject::Filled(skeleton) => head.push_str(&encoded_header(
                "Subject",
                &one_line(&skeleton.fill(&values)),
            )),
            Subject::Rendered => {
                let data = self.data_for(ctx, &variant, &values);
                head.push_str(&encoded_header("Subject", &self.subject(ctx, &data)?));
            }
        }
        push_header(&mut head, "Date", &mail_date(now));
        let id = Self::message_id_local(&ctx.run, to.id);
        push_header(
            &mut head,
            "Message-ID",
            &format!("<{id}@{}>", headers.domain),
        );
        head.push_str(&headers.list_id_line);
        let unsub = self.list_unsubscribe(&unsubscribe, &token);
        if unsub.is_ascii() {
            push_header(&mut head, "List-Unsubscribe", &unsub);
        } else {
            head.push_str(&encoded_header("List-Unsubscribe", &unsub));
        }
        head.push_str(&headers.post_line);
        head.push_str(&headers.rest);
        head.push_str(&variant.content_type);

        let open: usize = dynamic.iter().map(String::len).sum();
        let mut text = WireText::with_capacity(variant.size + open + head.len() + 700);
        if let Some(dkim) = &self.dkim {
            let hash = variant.body_hash(&dynamic);
            text.push_str(&dkim.sign(&head, &hash, now.timestamp()));
        }
        text.push_str(&head);
        text.push_str("\r\n");
        let mut open = dynamic.iter();
        for item in &variant.body {
            match item {
                Body::Shared { wire, .. } => text.push_stuffed(wire),
                _ => text.push_str(open.next().map_or("", String::as_str)),
            }
        }
        let address: Address = to
            .email
            .as_str()
            .parse()
            .with_context(|| format!("`{}` is not an address", to.email.as_str()))?;
        let sender = self.envelope_sender(&ctx.run, to.id)?;
        let envelope = Envelope::new(Some(sender), vec![address])?;
        Ok(Some(Prepared {
            wire: text.finish(envelope),
            article_count: variant.picked.len(),
        }))
    }

    /// The variant for `picked`, from the run's cache or made now.
    fn variant(&self, ctx: &RunContext, picked: Vec<usize>) -> anyhow::Result<Arc<Variant>> {
        if let Some(v) = ctx.variants.lock().expect("variants lock").get(&picked) {
            return Ok(Arc::clone(v));
        }
        let variant = Arc::new(self.build_variant(ctx, picked.clone())?);
        let mut cache = ctx.variants.lock().expect("variants lock");
        if cache.len() >= MAX_VARIANTS {
            cache.clear();
        }
        cache.insert(picked, Arc::clone(&variant));
        Ok(variant)
    }

    /// Template data with `values` in the places that differ per recipient.
    fn data_for<'a>(
        &'a self,
        ctx: &'a RunContext,
        variant: &Variant,
        values: &[&'a str],
    ) -> Data<'a> {
        let links = Links {
            unsubscribe: values[1].to_string(),
            preferences: values[2].to_string(),
            ..self.links(ctx, None)
        };
        self.data(ctx, self.views(ctx, &variant.picked), values[0], links)
    }

    fn render_part(
        &self,
        ctx: &RunContext,
        variant: &Variant,
        part: Part,
        values: &[&str],
    ) -> anyhow::Result<String> {
        let data = self.data_for(ctx, variant, values);
        self.templates.render(part.template(), &data)
    }

    fn build_variant(&self, ctx: &RunContext, picked: Vec<usize>) -> anyhow::Result<Variant> {
        let mut variant = Variant {
            picked,
            subject: Subject::Rendered,
            content_type: String::new(),
            body: Vec::new(),
            size: 0,
            prefix: None,
        };
        let subject = Skeleton::build(VALUES, |m| {
            let m: Vec<&str> = m.iter().map(String::as_str).collect();
            let data = self.data_for(ctx, &variant, &m);
            Ok(self.subjects.render(&ctx.digest.name, &data)?)
        })?;
        let mut parts = Vec::new();
        for part in [Part::Text, Part::Html] {
            let skeleton = Skeleton::build(VALUES, |m| {
                let m: Vec<&str> = m.iter().map(String::as_str).collect();
                self.templates
                    .render(part.template(), &self.data_for(ctx, &variant, &m))
            })?;
            if skeleton.is_none() {
                tracing::warn!(
                    run = ctx.run.id,
                    "the template {} does more with the subscriber's address or links than show them, so it is rendered for each recipient (slower)",
                    part.template()
                );
            }
            parts.push((part, skeleton));
        }
        variant.subject = match subject {
            Some(s) if s.is_fixed() => {
                Subject::Fixed(encoded_header("Subject", &one_line(&s.fill(&[]))))
            }
            Some(s) => Subject::Filled(s),
            None => Subject::Rendered,
        };

        // "=_" never occurs in quoted-printable text, so neither can the
        // boundary.
        let boundary = format!("=_herald_{:032x}", rand::random::<u128>());
        variant.content_type =
            format!("Content-Type: multipart/alternative;\r\n boundary=\"{boundary}\"\r\n");
        let mut body = Vec::new();
        for (i, (part, skeleton)) in parts.into_iter().enumerate() {
            let head = format!(
                "{}--{boundary}\r\nContent-Type: {}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
                if i == 0 { "" } else { "\r\n" },
                part.content_type()
            );
            push_shared(&mut body, &head);
            match skeleton {
                None => body.push(Joined::Other(Body::Rendered(part))),
                Some(s) => {
                    for piece in s.pieces() {
                        match piece {
                            Piece::Text(t) => push_shared(&mut body, &qp::encode(t)),
                            open => body.push(Joined::Other(Body::Open(open.clone()))),
                        }
                    }
                }
            }
        }
        push_shared(&mut body, &format!("\r\n--{boundary}--\r\n"));
        let body: Vec<Body> = body
            .into_iter()
            .map(|b| match b {
                Joined::Shared(text) => {
                    let mut canonical = Vec::new();
                    if self.dkim.is_some() {
                        canonical_body(text.as_bytes(), &mut canonical);
                    }
                    Body::Shared {
                        wire: Stuffed::new(&text),
                        canonical,
                    }
                }
                Joined::Other(b) => b,
            })
            .collect();
        variant.size = body
            .iter()
            .map(|b| match b {
                Body::Shared { wire, .. } => wire.len(),
                _ => 0,
            })
            .sum();
        if self.dkim.is_some() {
            let shared = body
                .iter()
                .take_while(|b| matches!(b, Body::Shared { .. }))
                .count();
            let mut hash = BodyHash::new();
            for item in &body[..shared] {
                if let Body::Shared { canonical, .. } = item {
                    hash.update_canonical(canonical);
                }
            }
            variant.prefix = Some((hash, shared));
        }
        variant.body = body;
        Ok(variant)
    }
}

impl Variant {
    /// The DKIM body hash of the body with `dynamic` (the recipient's
    /// encoded pieces, in order) in its open places.
    fn body_hash(&self, dynamic: &[String]) -> [u8; 32] {
        let (mut hash, skip) = self.prefix.clone().unwrap_or_default();
        let mut open = dynamic.iter();
        for item in &self.body[skip..] {
            match item {
                Body::Shared { canonical, .. } => hash.update_canonical(canonical),
                _ => hash.update_lines(open.next().map_or(&[][..], |s| s.as_bytes())),
            }
        }
        hash.finish()
    }
}

/// A body while it is put together: shared text joined into one piece
/// until something else comes.
enum Joined {
    Shared(String),
    Other(Body),
}

/// Appends shared wire text, joined to the shared piece before it.
fn push_shared(body: &mut Vec<Joined>, text: &str) {
    if let Some(Joined::Shared(wire)) = body.last_mut() {
        wire.push_str(text);
    } else {
        body.push(Joined::Shared(text.to_string()));
    }
}

/// `now` as RFC 5322 writes a date, in UTC (`Mon, 30 Nov 2026 21:31:03
/// +0000`): the HTTP-date (RFC 9110) with `+0000` for `GMT`, which is
/// only obsolete syntax in mail. httpdate's formatter, not chrono's
/// `format`, which parses its pattern again for every message.
fn mail_date(now: DateTime<Utc>) -> String {
    let mut date = httpdate::fmt_http_date(now.into());
    date.truncate(date.len() - "GMT".len());
    date.push_str("+0000");
    date
}

/// A subject on one line, runs of white space as one space.
fn one_line(subject: &str) -> String {
    subject.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_dates_are_what_chrono_writes() {
        for secs in [0, 951_782_400, 1_796_074_263, 4_102_444_799] {
            let t = DateTime::<Utc>::from_timestamp(secs, 999_000_000).unwrap();
            assert_eq!(
                mail_date(t),
                t.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
            );
        }
    }

    #[test]
    fn page_urls_with_a_token_are_what_config_page_url_writes() {
        let config: crate::config::Config = crate::config::Config::parse(
            "[site]\ntitle = \"T\"\nbase_url = \"https://example.org/blog/\"\nauthor = { name = \"A\" }\n",
        )
        .unwrap();
        for page in ["unsubscribe", "preferences"] {
            let prefix = config.page_url(page, Some("")).to_string();
            for token in ["MS5tLjQyLjE3.c2ln_-", "a+b/c=d é", ""] {
                assert_eq!(
                    RunHeaders::page_url(&prefix, token),
                    config.page_url(page, Some(token)).to_string(),
                    "{page} {token}"
                );
            }
        }
    }
}
