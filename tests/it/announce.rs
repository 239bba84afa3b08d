//! Announcements: `herald announce` queues a one-off message to 5,000
//! subscribers to the running daemon, which is SIGKILLed three times while
//! it sends and started again, with the same counts as the digest crash
//! test (`digest_crash.rs`): nobody gets it twice, what is recorded as sent
//! arrived once, the rest is `uncertain` (at most two batches per kill)
//! and `herald digest retry --uncertain` sends it; the announcement is then
//! in the web archive. Also: the audience, the subject from the first
//! heading and `--dry-run`; and a test send of a digest (`herald digest
//! send --to`) that goes to one address and leaves the ledger alone.

use chrono::{SecondsFormat, Utc};
use herald::store::{Ledger, Newsletter, SqliteStore, Store};

use super::digest_crash::crash_test;
use super::helpers::{herald_command, import_active, TestSite};
use super::smtp::SmtpServer;

#[test]
fn sigkill_during_an_announcement_to_5000_subscribers_never_duplicates_and_forgets_nobody() {
    let done = crash_test(|config, site| {
        let message = site.dir.path().join("moving.md");
        std::fs::write(
            &message,
            "+++\ntitle = \"We are moving\"\n+++\n\nFrom December on, read us at [our new home](/new/).\n",
        )
        .unwrap();
        herald_command(
            config,
            &["announce", message.to_str().unwrap(), "--to", "all"],
        )
        .output()
        .unwrap()
    });
    let Some((site, run_id)) = done else {
        return;
    };
    let db = site.config().database_path();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        let run = store.run(run_id).await.unwrap().unwrap();
        assert!(run.is_announcement() && run.done, "{run:?}");
        let issues = store.issues(Some("announcements"), 10).await.unwrap();
        assert_eq!(issues.len(), 1, "published once in the archive");
        assert_eq!(issues[0].subject, "We are moving");
        let page = store
            .issue("announcements", &issues[0].slug)
            .await
            .unwrap()
            .unwrap();
        assert!(
            page.html.contains("https://example.org/new/"),
            "links absolute"
        );
        assert!(!page.html.contains("token="));
        // No digest cursor moved.
        let page = store.candidates_page("news", None, 10).await.unwrap();
        assert!(page.iter().all(|c| c.received_through.is_none()));
        store.close().await;
    });
}

fn site(smtp: &SmtpServer) -> TestSite {
    let mut site = TestSite::new();
    let date = (Utc::now() - chrono::Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true);
    site.write(
        "a.md",
        format!("+++\ntitle = \"An article\"\ndate = {date}\ntags = [\"rust\"]\n+++\n\nText.\n"),
    );
    site.extra = format!(
        r#"
[mail]
transport = "smtp"
from = "News <news@example.org>"

[mail.smtp]
host = "127.0.0.1"
port = {}
tls = "none"

[[digest]]
name = "news"
schedule = "0 0 0 1 1 * 2099"
first_digest_articles = 3

[[digest]]
name = "weekly"
schedule = "0 0 0 1 1 * 2099"
"#,
        smtp.port()
    );
    import_active(
        &site.config().database_path(),
        &[
            ("ann@example.net", &["news"], &["rust"]),
            ("bob@example.net", &["news"], &["web"]),
            ("cat@example.net", &["weekly"], &["rust"]),
        ],
    );
    site
}

#[test]
fn an_announcement_reaches_its_audience_with_the_subject_of_its_heading() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let site = site(&smtp);
    let file = site.dir.path().join("note.md");
    std::fs::write(
        &file,
        "# Rust meetup on Friday\n\nSee you [there](/meetup/).\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = site.cli(&["announce", file, "--to", "tag:Rust", "--dry-run"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("would go to 2 subscribers (tag:rust)"),
        "{said}"
    );
    assert!(smtp.messages().is_empty(), "a dry run sends nothing");
    let out = site.cli(&["announce", file, "--to", "news"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut got: Vec<String> = smtp.messages().into_iter().map(|(r, _)| r).collect();
    got.sort();
    assert_eq!(got, ["ann@example.net", "bob@example.net"]);
    let (_, raw) = &smtp.messages()[0];
    let parsed = mail_parser::MessageParser::default().parse(raw).unwrap();
    assert_eq!(parsed.subject(), Some("Rust meetup on Friday"));
    assert!(parsed
        .header_raw("List-Unsubscribe")
        .unwrap()
        .contains("/unsubscribe?token="));
    assert!(parsed
        .body_html(0)
        .unwrap()
        .contains("href=\"https://example.org/meetup/\""));
    let bad = site.cli(&["announce", file, "--to", "monthly"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--to"));
    // A tag nobody follows (a typo) sends nothing and records no run.
    let runs = |site: &TestSite| {
        let out = site.cli(&["digest", "status"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(" announcements "))
            .count()
    };
    let runs_before = runs(&site);
    assert_eq!(runs_before, 1, "the announcement to `news`");
    let sent = smtp.messages().len();
    for dry in [false, true] {
        let mut args = vec!["announce", file, "--to", "tag:rsut"];
        if dry {
            args.push("--dry-run");
        }
        let nobody = site.cli(&args);
        let err = String::from_utf8_lossy(&nobody.stderr);
        assert_eq!(nobody.status.code(), Some(1), "{err}");
        assert!(err.contains("no active subscriber is in tag:rsut"), "{err}");
    }
    assert_eq!(smtp.messages().len(), sent);
    assert_eq!(runs(&site), runs_before, "no run for nobody");
}

#[test]
fn a_test_send_mails_one_address_and_records_nothing() {
    let Some(smtp) = SmtpServer::start() else {
        return;
    };
    let site = site(&smtp);
    // An address that subscribes to nothing gets a sample digest.
    let out = site.cli(&[
        "digest",
        "send",
        "--schedule",
        "news",
        "--to",
        "ops@example.org",
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("sample reader"), "{said}");
    // A subscriber gets what they would get, with their own links.
    let out = site.cli(&[
        "digest",
        "send",
        "--schedule",
        "news",
        "--to",
        "ann@example.net",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("as this subscriber gets it"));
    let got: Vec<String> = smtp.messages().into_iter().map(|(r, _)| r).collect();
    assert_eq!(got, ["ops@example.org", "ann@example.net"]);
    let db = site.config().database_path();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = SqliteStore::open(&db).await.unwrap();
        assert!(
            store.runs(10).await.unwrap().is_empty(),
            "outside the ledger"
        );
        store.close().await;
    });
    let status = site.cli(&["digest", "status"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains("no digest runs yet"));
}
