//! Addresses beyond ASCII, through the real binary and a real SMTP server:
//! an internationalized domain goes out as punycode to any server; a local
//! part with non-ASCII letters is refused at sign-up and import unless
//! `mail.smtputf8 = true`, and is then sent with SMTPUTF8; a server
//! without SMTPUTF8 is a permanent failure for that recipient, not eight
//! tries on the backoff.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use super::digest_cli::{send_news, smtp_site, text};
use super::helpers::{start_herald, TestSite};
use super::smtp::SmtpServer;

/// `digest_site` sending through `smtp`, with `mail.smtputf8` as given.
fn utf8_site(smtp: &SmtpServer, smtputf8: bool) -> TestSite {
    smtp_site(smtp, &format!("smtputf8 = {smtputf8}"), "")
}

fn add(site: &TestSite, email: &str) -> std::process::Output {
    site.cli(&["subscribers", "add", email, "--confirmed", "--note", "t"])
}

#[test]
fn an_international_domain_goes_out_as_punycode_to_a_server_without_smtputf8() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let site = utf8_site(&smtp, false);
    let out = add(&site, "user@Bücher.example");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("user@xn--bcher-kva.example is active"),
        "{}",
        text(&out.stdout)
    );
    let out = send_news(&site);
    assert!(
        text(&out.stdout).contains("sent: 1"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{}", smtp.log());
    assert_eq!(messages[0].0, "user@xn--bcher-kva.example");
    let raw = String::from_utf8_lossy(&messages[0].1);
    assert!(raw.contains("To: user@xn--bcher-kva.example"), "{raw}");
}

/// POSTs the subscribe form of a daemon on `port`: status and body.
fn post_subscribe(port: u16, email_form_encoded: &str) -> (u16, String) {
    let body = format!("email={email_form_encoded}");
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST /subscribe HTTP/1.0\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response)
}

#[test]
fn a_non_ascii_local_part_is_refused_at_sign_up_and_import_unless_smtputf8_is_on() {
    let Some(smtp) = SmtpServer::start_with(&["--smtputf8"]) else {
        return;
    };
    let mut site = utf8_site(&smtp, false);
    let out = site.cli(&["subscribers", "add", "jörg@example.org"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("jörg@example.org") && err.contains("mail.smtputf8"),
        "{err}"
    );

    let csv = site.dir.path().join("in.csv");
    std::fs::write(&csv, "email\nann@example.org\njörg@example.org\n").unwrap();
    let out = site.cli(&["subscribers", "import", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("line 3: email:") && err.contains("ASCII"),
        "{err}"
    );

    // The public form says why, too.
    {
        let (_daemon, port) = start_herald(&mut site);
        let (status, body) = post_subscribe(port, "j%C3%B6rg%40example.org");
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("ASCII"), "{body}");
    }

    // With SMTPUTF8 on, the address is taken and delivered with it.
    let site = utf8_site(&smtp, true);
    let out = add(&site, "jörg@example.org");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = send_news(&site);
    assert!(
        text(&out.stdout).contains("sent: 1"),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{}", smtp.log());
    let raw = String::from_utf8_lossy(&messages[0].1);
    assert!(raw.contains("To: jörg@example.org"), "{raw}");
}

#[test]
fn a_server_without_smtputf8_is_a_permanent_failure_for_that_recipient() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let site = utf8_site(&smtp, true);
    for email in ["jörg@example.org", "ann@example.org"] {
        let out = add(&site, email);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // The retry wait is 30 s by default: a retried failure would hold the
    // command far longer than this.
    let start = Instant::now();
    let out = send_news(&site);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(20));
    assert!(stdout.contains("sent: 1"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("jörg@example.org"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("bounced") && line.contains("attempts 1"),
        "{line}"
    );
    assert!(line.contains("SMTPUTF8"), "{line}");
    assert_eq!(smtp.messages().len(), 1, "only ann's digest");
}
