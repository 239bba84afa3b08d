//! Late bounces and complaints with real messages: a digest run goes out
//! through the real SMTP server with `mail.bounce_address` set, then
//! reports in the layouts Postfix, Exim, Gmail and Microsoft produce
//! (RFC 3464) and abuse reports (RFC 5965), written from the messages
//! that run really sent (`tests/reports/*.eml` with the blanks filled
//! in), are piped into `herald bounces ingest` (the real binary) as an
//! MTA alias would. Matched by the signed envelope token, or without it
//! by the returned Message-ID and Final-Recipient; a forged report and a
//! delay change nothing; a report ingested twice is applied once. Another
//! test drops a report into the Maildir the daemon watches.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use herald::store::{ListFilter, SqliteStore, Status, Store, SubscriberEmail, Subscribers};

use super::helpers::{herald_command, import_active, repo_root, wait_until, TestSite};
use super::smtp::SmtpServer;

const READERS: [&str; 8] = [
    "post", "exim", "gmail", "ms", "arf", "arf2", "keep", "maildir",
];

/// A site with three new articles, SMTP to `smtp`, bounce reports to
/// `bounces@example.org`, a bounce limit of one.
fn site(smtp: &SmtpServer, extra: &str) -> TestSite {
    let mut site = TestSite::new();
    let now = Utc::now();
    for i in 0..3 {
        let date =
            (now - chrono::Duration::hours(3 - i)).to_rfc3339_opts(SecondsFormat::Secs, true);
        site.write(
            &format!("a{i}.md"),
            format!("+++\ntitle = \"Article {i}\"\ndate = {date}\n+++\n\nText {i}.\n"),
        );
    }
    site.extra = format!(
        r#"
[rescan]
watch = false

[mail]
transport = "smtp"
from = "News <news@example.org>"
bounce_address = "bounces@example.org"
bounce_limit = 1
retry_base = "100ms"

[mail.smtp]
host = "127.0.0.1"
port = {port}
tls = "none"

{extra}

[[digest]]
name = "news"
schedule = "0 0 0 1 1 * 2099"
first_digest_articles = 3
"#,
        port = smtp.port()
    );
    site
}

fn import(site: &TestSite) {
    let rows: Vec<String> = READERS.iter().map(|r| format!("{r}@example.net")).collect();
    let rows: Vec<(&str, &[&str], &[&str])> = rows
        .iter()
        .map(|r| (r.as_str(), &["news"][..], &[][..]))
        .collect();
    import_active(&site.config().database_path(), &rows);
}

/// What each reader's message looked like: its header block, the whole
/// message (LF line ends), Message-ID, subject and envelope sender.
struct Sent {
    headers: String,
    whole: String,
    message_id: String,
    subject: String,
    envelope_from: String,
}

fn sent(smtp: &SmtpServer) -> BTreeMap<String, Sent> {
    let senders = smtp.envelope_senders();
    let mut out = BTreeMap::new();
    for (rcpt, bytes) in smtp.messages() {
        let whole = String::from_utf8(bytes).unwrap().replace("\r\n", "\n");
        let headers = whole.split("\n\n").next().unwrap().to_string();
        let header = |name: &str| {
            let parsed = mail_parser::MessageParser::default()
                .parse(whole.as_bytes())
                .unwrap();
            parsed.header_raw(name).unwrap_or("").trim().to_string()
        };
        let message_id = header("Message-ID").trim_matches(['<', '>']).to_string();
        let subject = header("Subject");
        let envelope_from = senders[&rcpt.to_lowercase()][0].clone();
        out.insert(
            rcpt.to_lowercase(),
            Sent {
                headers,
                whole,
                message_id,
                subject,
                envelope_from,
            },
        );
    }
    out
}

/// Sends the run (the real binary) and returns what went out.
fn send(site: &TestSite, smtp: &SmtpServer) -> BTreeMap<String, Sent> {
    let out = site.cli(&["digest", "send", "--schedule", "news"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    sent(smtp)
}

/// `tests/reports/<name>` with its blanks filled in for `rcpt`, CRLF.
fn report(name: &str, rcpt: &str, s: &Sent) -> Vec<u8> {
    let template = std::fs::read_to_string(repo_root().join("tests/reports").join(name)).unwrap();
    let redacted: String = s
        .headers
        .lines()
        .map(|l| {
            if l.starts_with("To:") {
                "To: redacted".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    template
        .replace("{TOKEN_ADDRESS}", &s.envelope_from)
        .replace("{RECIPIENT}", rcpt)
        .replace("{MESSAGE_ID}", &s.message_id)
        .replace("{SUBJECT}", &s.subject)
        .replace("{ORIGINAL_HEADERS}", &s.headers)
        .replace("{REDACTED_HEADERS}", &redacted)
        .replace("{ORIGINAL}", &s.whole)
        .replace('\n', "\r\n")
        .into_bytes()
}

/// Pipes `bytes` into `herald bounces ingest`; its exit code and stderr.
fn ingest(site: &TestSite, bytes: &[u8]) -> (i32, String) {
    let mut child = herald_command(&site.config_path(), &["bounces", "ingest"])
        .env_remove("ORIGINAL_RECIPIENT")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn statuses(site: &TestSite) -> BTreeMap<String, Status> {
    let db = site.config().database_path();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let all = store.list(&ListFilter::default()).await.unwrap();
        store.close().await;
        all.into_iter()
            .map(|s| {
                (
                    s.email.as_str().split('@').next().unwrap().to_string(),
                    s.status,
                )
            })
            .collect()
    })
}

#[test]
fn reports_in_every_mtas_layout_are_matched_and_applied_once() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let site = site(&smtp, "");
    import(&site);
    let sent = send(&site, &smtp);
    assert_eq!(sent.len(), READERS.len());
    for (rcpt, s) in &sent {
        // The envelope sender names the delivery; the From header is
        // unchanged.
        assert!(
            s.envelope_from.starts_with("bounces+") && s.envelope_from.ends_with("@example.org"),
            "{rcpt}: {}",
            s.envelope_from
        );
        assert!(
            s.headers.contains("From: News <news@example.org>"),
            "{}",
            s.headers
        );
        assert!(s.message_id.starts_with("digest."), "{}", s.message_id);
    }
    let get = |r: &str| &sent[&format!("{r}@example.net")];

    let cases = [
        ("postfix-dsn.eml", "post", "applied 1"),
        ("exim-dsn.eml", "exim", "applied 1"),
        // No token: the relay rewrote the envelope sender, or mailed the
        // From address; the returned Message-ID and Final-Recipient match.
        ("gmail-dsn.eml", "gmail", "applied 1"),
        ("microsoft-ndr.eml", "ms", "applied 1"),
        ("arf-abuse.eml", "arf", "applied 1"),
        ("arf-redacted.eml", "arf2", "applied 1"),
        // A delay is no bounce.
        ("postfix-delayed.eml", "keep", "1 not bounces"),
    ];
    for (file, who, said) in cases {
        let rcpt = format!("{who}@example.net");
        let (code, err) = ingest(&site, &report(file, &rcpt, get(who)));
        assert_eq!(code, 0, "{file}: {err}");
        assert!(err.contains(said), "{file}: {err}");
    }
    // The same Postfix report again: applied once.
    let (code, err) = ingest(
        &site,
        &report("postfix-dsn.eml", "post@example.net", get("post")),
    );
    assert_eq!(code, 0);
    assert!(err.contains("1 seen before"), "{err}");
    // Forged: herald's Message-ID shape with a made-up nonce, and no
    // token; then a token whose MAC is wrong.
    let mut forged = sent
        .get("keep@example.net")
        .map(|s| Sent {
            headers: s.headers.clone(),
            whole: s.whole.clone(),
            message_id: s.message_id.clone(),
            subject: s.subject.clone(),
            envelope_from: "news@example.org".into(),
        })
        .unwrap();
    let real_nonce = forged.message_id.split('.').nth(1).unwrap().to_string();
    forged.message_id = forged.message_id.replace(&real_nonce, "0123456789abcdef");
    forged.headers = forged.headers.replace(&real_nonce, "0123456789abcdef");
    forged.whole = forged.whole.replace(&real_nonce, "0123456789abcdef");
    let (code, err) = ingest(&site, &report("gmail-dsn.eml", "keep@example.net", &forged));
    assert_eq!(code, 0);
    assert!(err.contains("1 unmatched"), "{err}");
    let mut bad_token = forged;
    let token = &get("keep").envelope_from;
    // The token's last character changed (to `0`, or to `1` when it is
    // `0` already: the same token would match, one run in sixteen).
    let (head, last) = token.split_at(token.len() - "0@example.org".len());
    let other = if last.starts_with('0') { '1' } else { '0' };
    bad_token.envelope_from = format!("{head}{other}@example.org");
    assert_ne!(&bad_token.envelope_from, token);
    let (_, err) = ingest(
        &site,
        &report("postfix-dsn.eml", "keep@example.net", &bad_token),
    );
    assert!(err.contains("1 unmatched"), "{err}");
    // Not a report at all: handled (exit 0), nothing changes.
    let (code, err) = ingest(
        &site,
        b"From: someone@example.net\r\nSubject: hi\r\n\r\nhello\r\n",
    );
    assert_eq!(code, 0);
    assert!(err.contains("not a bounce report"), "{err}");

    let st = statuses(&site);
    for who in ["post", "exim", "gmail", "ms"] {
        assert_eq!(st[who], Status::Bounced, "{who}: {st:?}");
    }
    for who in ["arf", "arf2"] {
        assert_eq!(st[who], Status::Complained, "{who}: {st:?}");
    }
    assert_eq!(st["keep"], Status::Active);
    assert_eq!(st["maildir"], Status::Active);

    // Recorded in the consent log (once), visible in the run's status
    // and in the export.
    let db = site.config().database_path();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let log = store
            .consent_log(&SubscriberEmail::parse("post@example.net").unwrap())
            .await
            .unwrap();
        let bounces: Vec<_> = log.iter().filter(|e| e.event == "bounce").collect();
        assert_eq!(bounces.len(), 1, "{log:?}");
        assert_eq!(bounces[0].source.as_deref(), Some("dsn"));
        assert!(
            bounces[0].note.as_deref().unwrap().contains("5.1.1"),
            "{bounces:?}"
        );
        let log = store
            .consent_log(&SubscriberEmail::parse("arf@example.net").unwrap())
            .await
            .unwrap();
        assert_eq!(
            log.iter().filter(|e| e.event == "complaint").count(),
            1,
            "{log:?}"
        );
        store.close().await;
    });
    let status = site.cli(&["digest", "status", "1"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("bounced: 4"), "{text}");
    assert!(text.contains("late bounce (dsn)"), "{text}");
    let export = site.cli(&["subscribers", "export"]);
    let csv = String::from_utf8_lossy(&export.stdout);
    assert_eq!(csv.matches(",complained,").count(), 2, "{csv}");
    let listed = site.cli(&["subscribers", "list", "--status", "complained"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains("arf@example.net") && text.contains("arf2@example.net"),
        "{text}"
    );
    // The export reads back: complained stays complained.
    let back = TestSite::new();
    let path = back.dir.path().join("export.csv");
    std::fs::write(&path, export.stdout).unwrap();
    let mut back = back;
    back.extra = "[[digest]]\nname = \"news\"\nschedule = \"0 0 0 1 1 * 2099\"\n".into();
    let out = back.cli(&["subscribers", "import", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(statuses(&back)["arf"], Status::Complained);
}

#[test]
fn the_daemon_applies_reports_delivered_to_its_maildir() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let mut site = site(&smtp, "");
    let maildir = site.dir.path().join("Maildir");
    // start_herald adds its own [rescan].
    site.extra = site.extra.replace("[rescan]\nwatch = false\n", "");
    site.extra = site.extra.replace(
        "[[digest]]",
        &format!(
            "[bounces]\nmaildir = {:?}\n\n[[digest]]",
            maildir.display().to_string()
        ),
    );
    import(&site);
    let sent = send(&site, &smtp);
    let s = &sent["maildir@example.net"];
    let (_daemon, _port) = super::helpers::start_herald(&mut site);
    wait_until(
        "the daemon made the Maildir",
        Duration::from_secs(30),
        || maildir.join("new").is_dir(),
    );
    let name = "1764489605.M1P2.mail.example.org";
    let tmp = maildir.join("tmp").join(name);
    std::fs::write(&tmp, report("exim-dsn.eml", "maildir@example.net", s)).unwrap();
    std::fs::rename(&tmp, maildir.join("new").join(name)).unwrap();
    wait_until("the report was read", Duration::from_secs(90), || {
        maildir.join("cur").join(format!("{name}:2,S")).is_file()
    });
    assert_eq!(statuses(&site)["maildir"], Status::Bounced);
}

#[test]
fn forgetting_an_address_erases_it_and_an_import_cannot_bring_it_back() {
    let mut site = TestSite::new();
    site.extra = "[[digest]]\nname = \"news\"\nschedule = \"0 0 0 1 1 * 2099\"\n".into();
    let add = site.cli(&[
        "subscribers",
        "add",
        "Zoe@Example.net",
        "--confirmed",
        "--note",
        "fair",
    ]);
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let out = site.cli(&["subscribers", "forget", "zoe@example.net"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("is erased"), "{said}");
    let export = site.cli(&["subscribers", "export"]);
    assert!(!String::from_utf8_lossy(&export.stdout)
        .to_lowercase()
        .contains("zoe"));
    let csv = site.dir.path().join("back.csv");
    std::fs::write(
        &csv,
        "email,confirmed,consent_note\nzoe@example.net,true,again\n",
    )
    .unwrap();
    let out = site.cli(&["subscribers", "import", csv.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("imported 0, already present 1"), "{said}");
    let add = site.cli(&["subscribers", "add", "zoe@example.net"]);
    assert!(!add.status.success());
    assert!(String::from_utf8_lossy(&add.stderr).contains("refused"));
    let list = site.cli(&["subscribers", "list"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains("zoe"));
}
