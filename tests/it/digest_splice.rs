//! Digests spliced from a once-per-run render (`Composer::prepare`, what
//! herald sends) against the straightforward way (`Composer::compose`,
//! one full render per recipient, kept as the oracle): for hundreds of
//! recipients with different articles, tags, first digests and
//! addresses, the decoded text and HTML parts are byte for byte the
//! oracle's, the headers say the same, and the message keeps RFC 5322's
//! and RFC 2045's line rules. Also with templates that defeat splicing
//! (rendered per recipient then) and with both kinds of digest content.

use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use herald::config::Config;
use herald::content::FirstSeen;
use herald::digest::{Composer, Published, Recipient};
use herald::store::{Run, SubscriberEmail};
use herald::subscribers::tokens::Signer;
use herald::templates::Templates;
use mail_parser::{HeaderValue, MessageParser, MimeHeaders};

use super::helpers::TestSite;

const TAGS: [&str; 4] = ["rust", "python", "email", "web"];

/// A site with fifteen articles a day apart, with what makes encoding
/// hard: non-ASCII, markup characters, lines starting with a dot, long
/// lines and trailing spaces.
fn site(now: DateTime<Utc>, templates: &str) -> TestSite {
    let mut site = TestSite::new();
    for i in 0..15 {
        let date = (now - Duration::days(i)).to_rfc3339_opts(SecondsFormat::Secs, true);
        let tags: Vec<String> = TAGS
            .iter()
            .enumerate()
            .filter(|(t, _)| (i as usize + t).is_multiple_of(3))
            .map(|(_, t)| format!("\"{t}\""))
            .collect();
        site.write(
            &format!("a{i:02}.md"),
            format!(
                "+++\ntitle = \"Ärticle {i}: <tags> & \\\"quotes\\\" — {}\"\ndate = {date}\ntags = [{}]\nsummary = \"Summary {i} with = signs, ünïcödé and a very long sentence that goes on and on so that no line of it fits in seventy-six characters.\"\n+++\n\n\
                 Paragraph one of {i} with a [link](/about/) and trailing space.  \n\
                 .a line that starts with a dot\n\n\
                 * item one\n* item ☃ two\n\n```\ncode   with    spaces\n.dot\n```\n\n{}\n",
                "long ".repeat(i as usize),
                tags.join(", "),
                "word ".repeat(60 + i as usize),
            ),
        );
    }
    site.extra = format!(
        r#"{templates}
[mail]
from = "Tëst Site <news@example.org>"
postal_address = "Test Site Ltd\n1 Main Street\nSpringfield"
unsubscribe_mailto = "unsubscribe@example.org"

[[digest]]
name = "weekly"
description = "Every Monday"
schedule = "0 0 8 * * Mon"
max_articles = 6
first_digest_articles = 2
subject = "{{{{site.title}}}}: {{{{count}}}} new, starting with {{{{first_title}}}}"

[[digest]]
name = "full"
schedule = "0 0 8 * * *"
content = "full"
"#
    );
    site
}

fn composer(config: &Arc<Config>, templates: Option<&std::path::Path>) -> Composer {
    let templates = Arc::new(Templates::load(templates).unwrap());
    let signer = Signer::new(b"a signing secret for the splice test").unwrap();
    Composer::new(Arc::clone(config), templates, signer).unwrap()
}

fn run(schedule: &str, now: DateTime<Utc>) -> Run {
    Run {
        id: 7,
        schedule: schedule.into(),
        tick: now,
        horizon: now,
        trigger: "manual".into(),
        nonce: "0123456789abcdef".into(),
        created_at: now,
        done: false,
        finished_at: None,
    }
}

/// Addresses of every kind a subscriber can have.
fn address(i: usize) -> SubscriberEmail {
    let local = match i % 5 {
        0 => format!("reader{i}"),
        1 => format!("o'brien.{i}+news"),
        2 => format!("a&b{i}"),
        3 => format!("jörg{i}"),
        _ => format!("{}{i}", "long".repeat(10)),
    };
    SubscriberEmail::parse(&format!("{local}@mail{}.example", i % 7)).unwrap()
}

/// The decoded text and HTML parts of a message, line breaks as LF.
fn parts(raw: &[u8]) -> (String, String) {
    let message = MessageParser::default().parse(raw).expect("a message");
    let mut text = None;
    let mut html = None;
    for part in &message.parts {
        let Some(ct) = part.content_type() else {
            continue;
        };
        let body = part.text_contents().map(|t| t.replace("\r\n", "\n"));
        match ct.subtype() {
            Some("plain") => text = body,
            Some("html") => html = body,
            _ => {}
        }
    }
    (text.expect("a text part"), html.expect("an HTML part"))
}

fn header(raw: &[u8], name: &str) -> String {
    let message = MessageParser::default().parse(raw).unwrap();
    match message.header(name) {
        Some(HeaderValue::Text(t)) => t.to_string(),
        Some(HeaderValue::Address(a)) => a
            .first()
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// RFC 5322 §2.1.1 and §2.3, RFC 2045 §6.7: CRLF only, no line over 998
/// characters, and every quoted-printable line within 76.
fn check_lines(raw: &[u8]) {
    let text = std::str::from_utf8(raw).unwrap();
    assert!(
        !text.replace("\r\n", "").contains(['\r', '\n']),
        "a bare CR or LF"
    );
    let body_at = text.find("\r\n\r\n").unwrap();
    for line in text.split("\r\n") {
        assert!(line.len() <= 998, "{line}");
    }
    for line in text[body_at..].split("\r\n") {
        assert!(line.len() <= 76, "a body line of {}: {line}", line.len());
        assert!(!line.starts_with('.'), "{line}");
    }
}

/// Compares the two ways for `count` recipients of `schedule`.
fn compare(
    composer: &Composer,
    articles: &Arc<Published>,
    schedule: &str,
    now: DateTime<Utc>,
    count: usize,
) -> usize {
    let ctx = composer
        .context(run(schedule, now), Arc::clone(articles))
        .unwrap();
    let mut compared = 0;
    for i in 0..count {
        let email = address(i);
        let tags: Vec<String> = TAGS
            .iter()
            .enumerate()
            .filter(|(t, _)| i % (t + 2) == 0)
            .map(|(_, t)| t.to_string())
            .collect();
        let to = Recipient {
            id: i as i64 + 1,
            email: &email,
            since: now - Duration::hours(12 * (i % 20) as i64 + 1),
            first: i % 4 == 0,
            tags: if i % 3 == 0 { &[] } else { &tags },
        };
        let oracle = composer.compose(&ctx, to, now).unwrap();
        let spliced = composer.prepare(&ctx, to, now).unwrap();
        let (oracle, spliced) = match (oracle, spliced) {
            (None, None) => continue,
            (Some(o), Some(s)) => (o, s),
            (o, s) => panic!(
                "recipient {i}: compose {} but prepare {}",
                o.is_some(),
                s.is_some()
            ),
        };
        assert_eq!(oracle.article_count, spliced.article_count);
        let raw = spliced.wire.to_bytes();
        check_lines(&raw);
        let (text, html) = parts(&raw);
        // A part's last line break belongs to the boundary after it when
        // the text has none of its own: compared as the oracle rendered.
        assert_eq!(
            text.trim_end_matches('\n'),
            oracle.text.trim_end_matches('\n'),
            "text of recipient {i}"
        );
        assert_eq!(text, oracle.text, "text of recipient {i}");
        assert_eq!(html, oracle.html, "HTML of recipient {i}");
        let formatted = oracle.message.formatted();
        for name in [
            "Subject",
            "To",
            "From",
            "Message-ID",
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "List-Archive",
            "Auto-Submitted",
        ] {
            assert_eq!(
                header(&raw, name),
                header(&formatted, name),
                "{name} of recipient {i}"
            );
        }
        assert_eq!(spliced.wire.envelope().to()[0].to_string(), email.as_str());
        compared += 1;
    }
    compared
}

fn articles(config: &Config, now: DateTime<Utc>) -> Arc<Published> {
    let (catalog, report) =
        herald::content::load(config, now, &mut FirstSeen::in_memory()).unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    // First seen an hour after their dates: every article is inside some
    // recipients' windows and outside others'.
    let list = catalog.articles().to_vec();
    let seen = list
        .iter()
        .map(|a| a.published.with_timezone(&Utc) + Duration::hours(1))
        .collect();
    Arc::new(Published::new(list, seen, now))
}

#[test]
fn spliced_digests_match_one_full_render_per_recipient_byte_for_byte() {
    let now: DateTime<Utc> = "2026-11-30T08:00:00Z".parse().unwrap();
    let site = site(now, "");
    let config = Arc::new(site.config());
    let composer = composer(&config, None);
    let articles = articles(&config, now);
    let summary = compare(&composer, &articles, "weekly", now, 400);
    let full = compare(&composer, &articles, "full", now, 120);
    assert!(summary > 300 && full > 90, "compared {summary} and {full}");
}

#[test]
fn templates_that_transform_a_recipients_values_are_rendered_per_recipient_and_still_match() {
    let now: DateTime<Utc> = "2026-11-30T08:00:00Z".parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The address's length and its upper case: no skeleton can hold that.
    std::fs::write(
        dir.path().join("digest.txt.hbs"),
        "{{count}} for {{subscriber.email}} ({{len subscriber.email}} characters)\n{{#each articles}}{{title}}\n{{/each}}{{links.unsubscribe}}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("digest.html.hbs"),
        "<p>{{len links.unsubscribe}}</p>{{#each articles}}<h2>{{title}}</h2>{{/each}}<a href=\"{{links.preferences}}\">{{subscriber.email}}</a>",
    )
    .unwrap();
    let templates = format!("templates_dir = {:?}\n", dir.path().display().to_string());
    let mut site = site(now, "");
    site.top = templates;
    let config = Arc::new(site.config());
    let composer = composer(&config, Some(dir.path()));
    let articles = articles(&config, now);
    assert!(compare(&composer, &articles, "weekly", now, 60) > 40);
}
