//! Subscribers added or imported without consent, through the real binary
//! and a real SMTP server: `add` and `import` say that no mail went out
//! and when the purge removes them; `herald subscribers confirm-again`
//! mails their confirmation links through the configured transport,
//! respects `subscribers.resend_after`, and the links work in the daemon;
//! the purge counts from the last confirmation email.

use std::io::{Read, Write};

use chrono::Utc;

use super::digest_cli::{smtp_site, text};
use super::helpers::start_herald;
use super::smtp::SmtpServer;

/// The confirmation link in a received message (the plain-text part).
fn link_in(raw: &[u8]) -> String {
    let message = mail_parser::MessageParser::default().parse(raw).unwrap();
    let text = message.body_text(0).unwrap();
    let start = text
        .find("https://example.org/confirm?token=")
        .expect("a link");
    text[start..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn unconfirmed_rows_are_told_their_fate_and_confirm_again_mails_them() {
    let Some(mut smtp) = SmtpServer::start() else {
        return;
    };
    let mut site = smtp_site(&smtp, "", "");
    let csv = site.dir.path().join("list.csv");
    std::fs::write(
        &csv,
        "email,confirmed,consent_note\nann@example.org,,\nbo@example.org,,\ncy@example.org,yes,paper form\n",
    )
    .unwrap();
    let out = site.cli(&["subscribers", "import", csv.to_str().unwrap()]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let note = err
        .lines()
        .find(|l| l.starts_with("2 new rows are pending"))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(note.contains("no mail is sent"), "{note}");
    assert!(note.contains("confirm-again"), "{note}");
    assert!(note.contains("7 days") && note.contains("purge"), "{note}");
    let purge_day = (Utc::now() + chrono::Duration::days(7))
        .format("%Y-%m-%d")
        .to_string();
    assert!(note.contains(&purge_day), "{note}");
    assert!(
        err.lines().last().unwrap().starts_with("imported 3,"),
        "{err}"
    );

    let out = site.cli(&["subscribers", "add", "di@example.org"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(said.contains("no mail has been sent"), "{said}");
    assert!(
        said.contains("confirm-again") && said.contains(&purge_day),
        "{said}"
    );
    assert!(smtp.messages().is_empty());

    let out = site.cli(&["subscribers", "confirm-again"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", text(&out.stderr));
    assert_eq!(
        said.lines().filter(|l| l.starts_with("mailed ")).count(),
        3,
        "{said}"
    );
    let received: Vec<String> = smtp.messages().into_iter().map(|(r, _)| r).collect();
    assert_eq!(
        received.len(),
        3,
        "{received:?}: the confirmed subscriber gets none"
    );
    for who in ["ann@example.org", "bo@example.org", "di@example.org"] {
        assert!(received.iter().any(|r| r == who), "{who}: {received:?}");
    }

    // Again at once: within resend_after, nobody is mailed twice.
    let out = site.cli(&["subscribers", "confirm-again", "ann@example.org"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).starts_with("skipped ann@example.org"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(smtp.messages().len(), 3);

    // The link works in the daemon (same secret, same config).
    let (_, raw) = smtp
        .messages()
        .into_iter()
        .find(|(r, _)| r == "bo@example.org")
        .unwrap();
    let link = link_in(&raw);
    {
        let (_daemon, port) = start_herald(&mut site);
        let path = link.trim_start_matches("https://example.org");
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(conn, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.0 200"), "{response}");
        assert!(response.contains("You are subscribed"), "{response}");
    }
    let out = site.cli(&["subscribers", "list", "--status", "active"]);
    assert!(
        text(&out.stdout).contains("bo@example.org"),
        "{}",
        text(&out.stdout)
    );

    // A mail server that is down: said per address, exit 1, nothing lost.
    smtp.stop();
    let out = site.cli(&["subscribers", "add", "ed@example.org"]);
    assert!(out.status.success());
    let out = site.cli(&["subscribers", "confirm-again", "ed@example.org"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("failed ed@example.org"),
        "{}",
        text(&out.stderr)
    );
}
