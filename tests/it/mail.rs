//! Mail through a real SMTP server on loopback (tests/smtp_server.py) and
//! through the file outbox; received bytes are read back with mail-parser.

use std::collections::HashSet;

use herald::base::SubscriberEmail;
use herald::config::Config;
use herald::mail::{Mailer, MessageError, SendError};
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::json;

use super::smtp::SmtpServer;

const SUBJECT: &str = "Café news 🎉: déjà vu";
const TEXT: &str = "Grüße! Le café est prêt ☕🎉\n\nhttps://example.org/a/\n";
const HTML: &str =
    "<p>Grüße! Le <b>café</b> est prêt ☕🎉</p>\n<p><a href=\"https://example.org/a/\">a</a></p>\n";

fn config(mail: &str) -> Config {
    let text = format!(
        r#"
[site]
title = "T"
base_url = "https://example.org/"
author = {{ name = "A" }}

[mail]
from = "Herald Tests <news@example.org>"
{mail}
"#
    );
    Config::parse(&text).expect("test config")
}

async fn smtp_mailer(port: u16, timeout: &str) -> Mailer {
    let c = config(&format!(
        "transport = \"smtp\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"{timeout}\"\npool_size = 2\n"
    ));
    Mailer::from_config(&c).await.expect("mailer")
}

fn email(s: &str) -> SubscriberEmail {
    SubscriberEmail::parse(s).expect("test address")
}

fn message(mailer: &Mailer, to: &str) -> lettre::Message {
    mailer
        .compose(&email(to), SUBJECT, TEXT, HTML)
        .expect("compose")
        .build()
        .expect("build")
}

/// Asserts the structure herald promises for every message and returns
/// its Message-ID (without angle brackets).
fn assert_well_formed(raw: &[u8], to: &str) -> String {
    let parsed = MessageParser::default()
        .parse(raw)
        .unwrap_or_else(|| panic!("mail-parser cannot read:\n{}", String::from_utf8_lossy(raw)));
    let from = parsed.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some("news@example.org"));
    assert_eq!(from.name(), Some("Herald Tests"));
    let rcpt = parsed.to().and_then(|a| a.first()).expect("To");
    assert_eq!(rcpt.address(), Some(to));
    assert_eq!(parsed.subject(), Some(SUBJECT));
    assert!(parsed.date().is_some(), "Date header missing");

    let root = parsed.root_part();
    let ct = root.content_type().expect("Content-Type");
    assert_eq!(
        (ct.ctype(), ct.subtype()),
        ("multipart", Some("alternative"))
    );
    let subparts: Vec<_> = root
        .sub_parts()
        .expect("parts")
        .iter()
        .map(|&id| {
            let ct = parsed.parts[id as usize]
                .content_type()
                .expect("part Content-Type");
            format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        subparts,
        ["text/plain", "text/html"],
        "RFC 2046: plain first, HTML last"
    );
    // Text parts travel with CRLF line ends (RFC 2046 §4.1.1).
    let lf = |s: std::borrow::Cow<str>| s.replace("\r\n", "\n");
    assert_eq!(parsed.body_text(0).map(lf).as_deref(), Some(TEXT));
    assert_eq!(parsed.body_html(0).map(lf).as_deref(), Some(HTML));
    parsed.message_id().expect("Message-ID").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_delivers_multipart_alternative_with_utf8_intact() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    let mailer = smtp_mailer(server.port(), "10s").await;
    let outgoing = mailer
        .compose(&email("ann@example.net"), SUBJECT, TEXT, HTML)
        .unwrap()
        .header("List-Id", "Herald Tests <news.example.org>")
        .unwrap()
        .header(
            "List-Unsubscribe",
            "<https://example.org/unsubscribe/abc123>",
        )
        .unwrap()
        .header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
        .unwrap();
    let id = outgoing.message_id().to_string();
    mailer.send(&outgoing.build().unwrap()).await.unwrap();

    let received = server.messages();
    assert_eq!(received.len(), 1, "{}", server.log());
    let (rcpt, raw) = &received[0];
    assert_eq!(rcpt, "ann@example.net");
    let got_id = assert_well_formed(raw, "ann@example.net");
    assert_eq!(format!("<{got_id}>"), id);

    let parsed = MessageParser::default().parse(raw).unwrap();
    assert_eq!(
        parsed.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(
        parsed.header_raw("List-Unsubscribe").map(str::trim),
        Some("<https://example.org/unsubscribe/abc123>")
    );
    assert!(parsed.header_raw("List-Id").is_some());
    mailer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn message_ids_are_unique_across_100_messages() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    let mailer = smtp_mailer(server.port(), "10s").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let mailer = mailer.clone();
        tasks.spawn(async move {
            let to = format!("reader{i}@example.net");
            mailer.send(&message(&mailer, &to)).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    let received = server.messages();
    assert_eq!(received.len(), 100);
    let ids: HashSet<String> = received
        .iter()
        .map(|(rcpt, raw)| assert_well_formed(raw, rcpt))
        .collect();
    assert_eq!(ids.len(), 100, "duplicate Message-IDs");
    assert!(ids.iter().all(|id| id.ends_with("@example.org")), "{ids:?}");
    // The pool reuses connections rather than opening one per message.
    let connections = server.stats()["connections"].as_u64().unwrap();
    assert!(
        connections < 100,
        "{connections} connections for 100 messages"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_451_reply_is_transient_and_the_next_attempt_delivers() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    server
        .set_control(json!({"temp_fail_first": 1, "temp_fail_reply": "451 4.3.0 Try again later"}));
    let mailer = smtp_mailer(server.port(), "10s").await;
    let m = message(&mailer, "ann@example.net");
    let err = mailer.send(&m).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.reply().starts_with("451"), "{err:?}");
    assert!(err.reply().contains("Try again later"), "{err:?}");
    assert!(server.messages().is_empty());

    mailer.send(&m).await.unwrap();
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.stats()["temp_failures"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_451_after_data_is_transient_too() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    server.set_control(json!({"temp_fail_first": 1, "temp_fail_stage": "data"}));
    let mailer = smtp_mailer(server.port(), "10s").await;
    let m = message(&mailer, "ann@example.net");
    let err = mailer.send(&m).await.unwrap_err();
    assert!(
        matches!(&err, SendError::Transient { reply } if reply.starts_with("451")),
        "{err:?}"
    );
    mailer.send(&m).await.unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_server_failed_the_content_is_reset_before_the_next_message() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    server.set_control(json!({"temp_fail_first": 1, "temp_fail_stage": "data_crash"}));
    let mailer = smtp_mailer(server.port(), "10s").await;
    let m = message(&mailer, "ann@example.net");
    let err = mailer.send(&m).await.unwrap_err();
    assert!(err.reply().starts_with("500"), "{err:?}");
    // The same pooled connection: without a RSET this server answers the
    // next MAIL with "503 nested MAIL command", which would count as a
    // hard bounce of the next recipient.
    mailer
        .send(&message(&mailer, "bob@example.net"))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 1);
    assert_eq!(
        server.stats()["connections"],
        1,
        "the connection was reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_550_for_a_recipient_is_permanent_and_keeps_the_reply_text() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    server.set_control(json!({"rcpt_reject": {"bounce@example.org": "550 5.1.1 No such user"}}));
    let mailer = smtp_mailer(server.port(), "10s").await;

    let err = mailer
        .send(&message(&mailer, "bounce@example.org"))
        .await
        .unwrap_err();
    match &err {
        SendError::Permanent { reply } => assert_eq!(reply, "550 5.1.1 No such user"),
        other => panic!("expected a permanent error, got {other:?}"),
    }
    assert!(!err.is_transient());

    // Other recipients are unaffected.
    mailer
        .send(&message(&mailer, "ann@example.net"))
        .await
        .unwrap();
    let received = server.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, "ann@example.net");
    assert_eq!(server.stats()["rejects"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_at_data_is_transient() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    server.set_control(json!({"drop_connection_first": 1}));
    let mailer = smtp_mailer(server.port(), "10s").await;
    let m = message(&mailer, "ann@example.net");
    let err = mailer.send(&m).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(server.messages().is_empty());

    mailer.send(&m).await.unwrap();
    assert_eq!(server.messages().len(), 1);
    assert_eq!(server.stats()["dropped"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_transient() {
    // A port that was free a moment ago: connecting is refused.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mailer = smtp_mailer(port, "5s").await;
    let err = mailer
        .send(&message(&mailer, "ann@example.net"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_for_a_while_is_transient_until_it_returns() {
    let Some(mut server) = SmtpServer::start() else {
        return;
    };
    let mailer = smtp_mailer(server.port(), "5s").await;
    let m = message(&mailer, "ann@example.net");
    // A first message leaves a connection in the pool, which the server
    // then takes down with it.
    mailer.send(&m).await.unwrap();
    server.stop();
    for _ in 0..2 {
        let err = mailer.send(&m).await.unwrap_err();
        assert!(err.is_transient(), "{err:?}");
    }
    server.restart();
    mailer.send(&m).await.unwrap();
    assert_eq!(server.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_times_out_as_transient() {
    let Some(server) = SmtpServer::start() else {
        return;
    };
    // The server takes the message, then sits on its reply.
    server.set_control(json!({"data_delay_ms": 30000}));
    let mailer = smtp_mailer(server.port(), "2s").await;
    let started = std::time::Instant::now();
    let err = mailer
        .send(&message(&mailer, "ann@example.net"))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.reply().contains("no reply"), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));

    // The stalled connection is not reused (its late reply would answer
    // the wrong command): the next message opens a fresh one.
    server.set_control(json!({}));
    mailer
        .send(&message(&mailer, "ben@example.net"))
        .await
        .unwrap();
    let received = server.messages();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].0, "ben@example.net");
    assert_eq!(server.stats()["connections"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_writes_one_eml_per_message_that_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("spool/outbox");
    let c = config(&format!(
        "transport = \"outbox\"\noutbox_dir = \"{}\"\n",
        outbox.display().to_string().replace('\\', "\\\\")
    ));
    let mailer = Mailer::from_config(&c).await.unwrap();
    assert!(outbox.is_dir(), "the outbox directory is created");
    assert!(
        mailer.describe().contains("outbox"),
        "{}",
        mailer.describe()
    );
    for to in ["a@example.net", "b@example.net", "c@example.net"] {
        mailer.send(&message(&mailer, to)).await.unwrap();
    }
    let mut files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    let mut recipients = Vec::new();
    for f in &files {
        assert_eq!(f.extension().and_then(|e| e.to_str()), Some("eml"));
        let raw = std::fs::read(f).unwrap();
        let parsed = MessageParser::default().parse(&raw).unwrap();
        let to = parsed
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap()
            .to_string();
        assert_well_formed(&raw, &to);
        recipients.push(to);
    }
    recipients.sort();
    assert_eq!(
        recipients,
        ["a@example.net", "b@example.net", "c@example.net"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_values_with_line_breaks_cannot_be_injected() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&format!(
        "outbox_dir = \"{}\"\n",
        dir.path().display().to_string().replace('\\', "\\\\")
    ));
    let mailer = Mailer::from_config(&c).await.unwrap();
    let to = email("ann@example.net");
    let compose = || mailer.compose(&to, "Hello", "text", "<p>html</p>").unwrap();

    for value in [
        "<https://example.org/u>\r\nBcc: victim@example.com",
        "x\nBcc: victim@example.com",
        "x\rBcc: victim@example.com",
    ] {
        let err = compose().header("List-Unsubscribe", value).unwrap_err();
        assert_eq!(err, MessageError::BadHeaderValue("List-Unsubscribe".into()));
    }
    assert!(matches!(
        compose().header("X-Evil\r\nBcc", "victim@example.com"),
        Err(MessageError::BadHeaderName(_))
    ));
    assert!(matches!(
        compose().header("Bcc", "victim@example.com"),
        Err(MessageError::ReservedHeader(_))
    ));
    assert!(matches!(
        mailer.compose(&to, "Hi\r\nBcc: victim@example.com", "t", "h"),
        Err(MessageError::BadSubject)
    ));
    // Addresses come only as SubscriberEmail, which refuses line breaks.
    assert!(SubscriberEmail::parse("ann@example.net\r\nBcc: victim@example.com").is_err());

    // Nothing of the attempts reached a message: the one sent has one
    // recipient and no Bcc.
    let m = compose().build().unwrap();
    assert_eq!(m.envelope().to().len(), 1);
    let text = String::from_utf8(m.formatted()).unwrap();
    assert!(!text.to_ascii_lowercase().contains("bcc"), "{text}");
}
