//! Digests through a real SMTP server on loopback (tests/smtp_server.py),
//! with a real SQLite ledger: who gets which articles, the headers and MIME
//! structure of what arrives (read back with mail-parser), and delivery
//! under temporary failures, dropped connections, hard bounces and a
//! server that is down for a while.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use herald::base::clock::SystemClock;
use herald::base::metrics::Metrics;
use herald::base::shutdown::Shutdown;
use herald::config::Config;
use herald::content::FirstSeen;
use herald::digest::{Articles, Composer, Digests, Published};
use herald::mail::Mailer;
use herald::store::{
    DeliveryState, Ledger, NewSubscription, SqliteStore, Status, Store, SubscriberEmail,
    Subscribers, Trigger,
};
use herald::subscribers::tokens::Signer;
use herald::templates::Templates;
use mail_parser::{MessageParser, MimeHeaders};
use serde_json::json;

use super::helpers::TestSite;
use super::smtp::SmtpServer;

struct Harness {
    site: TestSite,
    smtp: SmtpServer,
    config: Arc<Config>,
    store: Arc<SqliteStore>,
    digests: Digests,
    now: DateTime<Utc>,
}

fn ago(now: DateTime<Utc>, hours: i64) -> String {
    (now - Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A site with articles around `now`, an SMTP server, and a digest
/// service on a fresh ledger; temporary failures are retried up to
/// `max_attempts` times, 50-200 ms apart.
async fn harness(max_attempts: u32) -> Option<Harness> {
    harness_with(max_attempts, "").await
}

/// [`harness`] with `extra` appended to the config (whole sections).
async fn harness_with(max_attempts: u32, extra: &str) -> Option<Harness> {
    let smtp = SmtpServer::start()?;
    let now = Utc::now();
    let mut site = TestSite::new();
    let article = |title: &str, date: String, tags: &str, extra: &str| {
        format!(
            "+++\ntitle = \"{title}\"\ndate = {date}\ntags = [{tags}]\n{extra}+++\n\nThe text of {title}, with a [link](/about/).\n"
        )
    };
    site.write(
        "old.md",
        article("Old news", ago(now, 24 * 30), "\"rust\"", ""),
    );
    site.write(
        "new-rust.md",
        article("Rust & <friends>", ago(now, 48), "\"rust\"", ""),
    );
    site.write(
        "new-python.md",
        article("Python today", ago(now, 24), "\"python\"", ""),
    );
    site.write("new-plain.md", article("Plain news", ago(now, 1), "", ""));
    site.write(
        "future.md",
        article("From the future", ago(now, -48), "\"rust\"", ""),
    );
    site.write(
        "draft.md",
        article("A draft", ago(now, 2), "\"rust\"", "draft = true\n"),
    );
    site.extra = format!(
        r#"
[mail]
transport = "smtp"
from = "Test Site <news@example.org>"
postal_address = "Test Site Ltd\n1 Main Street\nSpringfield"
unsubscribe_mailto = "unsubscribe@example.org"
max_attempts = {max_attempts}
retry_base = "50ms"
retry_max = "200ms"
bounce_limit = 1
batch_size = 8

[mail.smtp]
host = "127.0.0.1"
port = {port}
tls = "none"
timeout = "5s"
pool_size = 2

[[digest]]
name = "weekly"
description = "Every Monday"
schedule = "0 0 8 * * Mon"
content = "full"

{extra}
"#,
        port = smtp.port()
    );
    let config = Arc::new(site.config());
    let store = Arc::new(SqliteStore::open(&config.database_path()).await.unwrap());
    let mailer = Arc::new(Mailer::from_config(&config).await.unwrap());
    let templates = Arc::new(Templates::load(None).unwrap());
    let signer = Signer::from_config(&config).unwrap();
    let composer = Arc::new(Composer::new(Arc::clone(&config), templates, signer).unwrap());
    let digests = Digests::new(
        Arc::clone(&config),
        Arc::clone(&store) as Arc<dyn Store>,
        mailer,
        composer,
        Arc::new(Metrics::new()),
        Arc::new(SystemClock),
    );
    Some(Harness {
        site,
        smtp,
        config,
        store,
        digests,
        now,
    })
}

impl Harness {
    async fn articles(&self) -> Articles {
        let now = Utc::now();
        let (catalog, report) =
            herald::content::load(&self.config, now, &mut FirstSeen::in_memory()).unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        // Recorded as first seen now, as the daemon's rebuild would.
        let published = Published::observe(&*self.store, catalog.articles().to_vec(), now)
            .await
            .unwrap();
        Arc::new(published)
    }

    /// An active subscriber who confirmed `hours` ago.
    async fn subscriber(&self, email: &str, tags: &[&str], hours: i64) -> i64 {
        let outcome = self
            .store
            .subscribe(NewSubscription {
                email: SubscriberEmail::parse(email).unwrap(),
                name: None,
                schedules: vec!["weekly".into()],
                tags: tags.iter().map(|t| t.to_string()).collect(),
                at: self.now - Duration::hours(hours),
                ip: None,
                source: "cli".into(),
                confirmed_note: Some("test".into()),
            })
            .await
            .unwrap();
        match outcome {
            herald::store::SubscribeOutcome::Active(s) => s.id,
            other => panic!("{other:?}"),
        }
    }

    /// Plans a run for `tick` and sends it to the end, waiting out retries.
    /// The tick is taken before the articles are read: a tick before
    /// their first-seen time would rightly leave them to the next run.
    async fn run(&self, tick: DateTime<Utc>) -> herald::store::Run {
        let articles = self.articles().await;
        let tick = tick.max(articles.as_of);
        let run = self
            .digests
            .start_run("weekly", tick, Trigger::Manual, &articles)
            .await
            .unwrap()
            .expect("a new run");
        if run.done {
            return run;
        }
        let shutdown = Shutdown::new();
        for _ in 0..200 {
            let d = self
                .digests
                .drain(&run, &articles, &shutdown.signal())
                .await
                .unwrap();
            if d.done {
                return self.store.run(run.id).await.unwrap().unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!(
            "run {} did not finish: {:?}\n{}",
            run.id,
            self.store.run_status(run.id).await.unwrap(),
            self.smtp.log()
        );
    }

    /// Received messages by recipient.
    fn received(&self) -> BTreeMap<String, Vec<Vec<u8>>> {
        let mut by: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (rcpt, raw) in self.smtp.messages() {
            by.entry(rcpt).or_default().push(raw);
        }
        by
    }
}

fn titles_in(text: &str, titles: &[&str]) -> Vec<String> {
    titles
        .iter()
        .filter(|t| text.contains(*t))
        .map(|t| t.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_subscriber_gets_only_new_articles_of_their_tags_once() {
    let Some(h) = harness(4).await else {
        return;
    };
    h.subscriber("ann@example.net", &[], 24 * 7).await;
    h.subscriber("bob@example.net", &["rust"], 24 * 7).await;
    // Follows a tag with nothing new: no email at all.
    h.subscriber("cat@example.net", &["go"], 24 * 7).await;
    // Confirmed after every published article: nothing new either.
    h.subscriber("fay@example.net", &[], 0).await;
    let dan = h.subscriber("dan@example.net", &[], 24 * 7).await;
    h.store
        .unsubscribe(dan, Utc::now(), "one-click")
        .await
        .unwrap();
    // Pending (never confirmed).
    h.store
        .subscribe(NewSubscription {
            email: SubscriberEmail::parse("eve@example.net").unwrap(),
            name: None,
            schedules: vec!["weekly".into()],
            tags: vec![],
            at: h.now - Duration::hours(100),
            ip: None,
            source: "web-form".into(),
            confirmed_note: None,
        })
        .await
        .unwrap();

    let run = h.run(Utc::now()).await;
    let status = h.store.run_status(run.id).await.unwrap();
    assert_eq!(status.count(DeliveryState::Sent), 2, "{status:?}");
    assert_eq!(status.total(), 2, "{status:?}");

    let received = h.received();
    assert_eq!(
        received.keys().collect::<Vec<_>>(),
        ["ann@example.net", "bob@example.net"],
        "{}",
        h.smtp.log()
    );
    let all = [
        "Old news",
        "Rust &amp; &lt;friends&gt;",
        "Python today",
        "Plain news",
        "From the future",
        "A draft",
    ];
    for (rcpt, expected, first) in [
        (
            "ann@example.net",
            // Newest first.
            vec!["Plain news", "Python today", "Rust &amp; &lt;friends&gt;"],
            "Plain news",
        ),
        (
            "bob@example.net",
            vec!["Rust &amp; &lt;friends&gt;"],
            "Rust & <friends>",
        ),
    ] {
        let msgs = &received[rcpt];
        assert_eq!(msgs.len(), 1, "{rcpt} got {} copies", msgs.len());
        let raw = &msgs[0];
        let parsed = MessageParser::default().parse(raw).expect("parses");
        let html = parsed.body_html(0).expect("HTML part").to_string();
        let text = parsed.body_text(0).expect("text part").to_string();
        let mut wanted = expected.clone();
        wanted.sort();
        let mut found = titles_in(&html, &all);
        found.sort();
        assert_eq!(found, wanted, "{rcpt}:\n{html}");
        // Newest first, in the text part too (which is not HTML-escaped).
        let plain: Vec<&str> = expected
            .iter()
            .map(|t| match *t {
                "Rust &amp; &lt;friends&gt;" => "Rust & <friends>",
                other => other,
            })
            .collect();
        let positions: Vec<usize> = plain
            .iter()
            .map(|t| text.find(t).unwrap_or_else(|| panic!("{t} in {text}")))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert!(!text.contains("Old news") && !text.contains("A draft"));
        assert!(!text.contains("From the future"));

        // Headers.
        let subject = parsed.subject().expect("Subject");
        assert!(subject.starts_with("Test Site: "), "{subject}");
        assert!(subject.contains(first), "{subject}");
        assert!(parsed.date().is_some());
        let from = parsed.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.address(), Some("news@example.org"));
        assert_eq!(
            parsed.to().and_then(|a| a.first()).unwrap().address(),
            Some(rcpt)
        );
        let id = parsed.message_id().expect("Message-ID");
        assert!(id.ends_with("@example.org"), "{id}");
        let raw_text = String::from_utf8_lossy(raw);
        let header = |name: &str| -> String {
            let parsed = MessageParser::default().parse(raw).unwrap();
            parsed
                .header_raw(name)
                .unwrap_or_else(|| panic!("{name} missing:\n{raw_text}"))
                .trim()
                .replace("\r\n", "")
        };
        assert_eq!(
            header("List-Id"),
            "\"Test Site weekly digest\" <weekly.digest.example.org>"
        );
        let unsub = header("List-Unsubscribe");
        assert!(
            unsub.starts_with("<https://example.org/unsubscribe?token="),
            "{unsub}"
        );
        assert!(
            unsub.contains(", <mailto:unsubscribe@example.org?subject=unsubscribe%20"),
            "{unsub}"
        );
        assert_eq!(
            header("List-Unsubscribe-Post"),
            "List-Unsubscribe=One-Click"
        );
        // multipart/alternative, plain text first.
        let root = parsed.root_part();
        let ct = root.content_type().unwrap();
        assert_eq!(
            (ct.ctype(), ct.subtype()),
            ("multipart", Some("alternative"))
        );
        let kinds: Vec<String> = root
            .sub_parts()
            .unwrap()
            .iter()
            .map(|&i| {
                let ct = parsed.parts[i as usize].content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(kinds, ["text/plain", "text/html"]);
        // Footer: absolute links, the postal address, why they get it.
        assert!(
            text.contains("https://example.org/unsubscribe?token="),
            "{text}"
        );
        assert!(
            text.contains("https://example.org/preferences?token="),
            "{text}"
        );
        assert!(text.contains("1 Main Street"), "{text}");
        assert!(html.contains("1 Main Street"));
        assert!(!html.contains("href=\"/"), "relative link in {html}");
        // Full text: the article's relative link made absolute, in both
        // parts.
        assert!(html.contains("https://example.org/about/"), "{html}");
        assert!(text.contains("https://example.org/about/"), "{text}");
    }

    // Nothing new since: a second run sends nothing to anybody.
    let again = h.run(Utc::now() + Duration::seconds(1)).await;
    assert_eq!(h.store.run_status(again.id).await.unwrap().total(), 0);
    assert_eq!(h.smtp.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_failures_and_dropped_connections_still_deliver_each_digest_once() {
    let Some(h) = harness(4).await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(h.subscriber(&format!("r{i}@example.net"), &[], 24).await);
    }
    h.smtp.set_control(json!({
        "temp_fail_first": 3,
        "temp_fail_reply": "451 4.3.0 Greylisted, try again later",
        "drop_connection_first": 2
    }));
    let run = h.run(Utc::now()).await;
    let status = h.store.run_status(run.id).await.unwrap();
    assert_eq!(status.count(DeliveryState::Sent), 6, "{status:?}");
    let received = h.received();
    assert_eq!(received.len(), 6, "{}", h.smtp.log());
    for (rcpt, msgs) in &received {
        assert_eq!(msgs.len(), 1, "{rcpt} got {} copies", msgs.len());
    }
    let stats = h.smtp.stats();
    assert_eq!(stats["temp_failures"], 3, "{stats}");
    assert_eq!(stats["dropped"], 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_550_recipient_bounces_once_and_is_not_tried_again() {
    let Some(h) = harness(4).await else {
        return;
    };
    h.subscriber("good@example.net", &[], 24).await;
    let bad = h.subscriber("gone@example.net", &[], 24).await;
    h.smtp.set_control(json!({
        "rcpt_reject": {"gone@example.net": "550 5.1.1 No such user"}
    }));
    let run = h.run(Utc::now()).await;
    let status = h.store.run_status(run.id).await.unwrap();
    assert_eq!(status.count(DeliveryState::Sent), 1, "{status:?}");
    assert_eq!(status.count(DeliveryState::Bounced), 1, "{status:?}");
    let problem = &status.problems[0];
    assert_eq!(problem.email, "gone@example.net");
    assert_eq!(problem.attempts, 1, "a hard bounce is not retried");
    assert!(
        problem.reply.as_deref().unwrap().starts_with("550"),
        "{problem:?}"
    );
    assert_eq!(h.smtp.stats()["rejects"], 1);
    // bounce_limit = 1: the subscriber is now bounced and gets no more mail.
    let sub = h.store.get(bad).await.unwrap().unwrap();
    assert_eq!(sub.status, Status::Bounced);
    // The next run leaves them out.
    h.site.write(
        "newer.md",
        format!(
            "+++\ntitle = \"Newer\"\ndate = {}\n+++\n\nA newer article.\n",
            Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
    );
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let next = h.run(Utc::now()).await;
    let status = h.store.run_status(next.id).await.unwrap();
    assert_eq!(status.total(), 1, "{status:?}");
    assert_eq!(status.count(DeliveryState::Sent), 1);
    assert_eq!(h.received()["good@example.net"].len(), 2);
    assert_eq!(h.smtp.stats()["rejects"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_for_a_while_delays_delivery_and_loses_nothing() {
    // Enough attempts to outlast the outage.
    let Some(mut h) = harness(50).await else {
        return;
    };
    for i in 0..5 {
        h.subscriber(&format!("r{i}@example.net"), &[], 24).await;
    }
    h.smtp.stop();
    let articles = h.articles().await;
    let run = h
        .digests
        .start_run("weekly", Utc::now(), Trigger::Manual, &articles)
        .await
        .unwrap()
        .unwrap();
    let shutdown = Shutdown::new();
    let d = h
        .digests
        .drain(&run, &articles, &shutdown.signal())
        .await
        .unwrap();
    assert!(!d.done);
    assert!(d.next_retry.is_some(), "waiting for a retry");
    let status = h.store.run_status(run.id).await.unwrap();
    assert_eq!(status.count(DeliveryState::Pending), 5, "{status:?}");
    assert!(status.problems.iter().all(|p| p.reply.is_some()));
    // Still down through a few more retries.
    for _ in 0..3 {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        let _ = h
            .digests
            .drain(&run, &articles, &shutdown.signal())
            .await
            .unwrap();
    }
    h.smtp.restart();
    let mut done = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if h.digests
            .drain(&run, &articles, &shutdown.signal())
            .await
            .unwrap()
            .done
        {
            done = true;
            break;
        }
    }
    assert!(done, "{:?}", h.store.run_status(run.id).await.unwrap());
    let received = h.received();
    assert_eq!(received.len(), 5);
    assert!(received.values().all(|m| m.len() == 1));
    let status = h.store.run_status(run.id).await.unwrap();
    assert_eq!(status.count(DeliveryState::Sent), 5);
}

/// Runs a tool; `None` (SKIPPED) when it is missing outside CI.
fn tool(cmd: &mut std::process::Command, what: &str) -> Option<std::process::Output> {
    match cmd.output() {
        Ok(o) if o.status.code() == Some(3) && std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: {what}: {}", String::from_utf8_lossy(&o.stderr));
            None
        }
        Ok(o) => Some(o),
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED: {what} not runnable: {e}");
            None
        }
        Err(e) => panic!("{what} not runnable in CI: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_signatures_verify_and_cover_both_list_unsubscribe_headers() {
    let keys = tempfile::tempdir().unwrap();
    let private = keys.path().join("dkim.pem");
    let Some(gen) = tool(
        std::process::Command::new("openssl")
            .args(["genrsa", "-traditional", "-out"])
            .arg(&private)
            .arg("2048"),
        "openssl",
    ) else {
        return;
    };
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    let public = std::process::Command::new("openssl")
        .args(["rsa", "-pubout", "-outform", "DER", "-in"])
        .arg(&private)
        .output()
        .unwrap();
    assert!(public.status.success());
    use base64::Engine;
    let public_b64 = base64::engine::general_purpose::STANDARD.encode(&public.stdout);

    let extra = format!(
        "[mail.dkim]\ndomain = \"example.org\"\nselector = \"herald\"\nprivate_key_file = {:?}\n",
        private.display().to_string()
    );
    let Some(h) = harness_with(4, &extra).await else {
        return;
    };
    h.subscriber("ann@example.net", &[], 24 * 7).await;
    h.run(Utc::now()).await;
    let received = h.smtp.messages();
    assert_eq!(received.len(), 1);
    let eml = keys.path().join("received.eml");
    std::fs::write(&eml, &received[0].1).unwrap();
    let Some(out) = tool(
        std::process::Command::new("python3")
            .arg(super::helpers::repo_root().join("tests/dkim_verify.py"))
            .arg(&eml)
            .arg(&public_b64),
        "dkimpy",
    ) else {
        return;
    };
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["verified"], true, "dkimpy: {report}");
    let signed: Vec<String> = report["signed_headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for name in [
        "from",
        "subject",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(
            signed.contains(&name.to_string()),
            "{name} not signed: {signed:?}"
        );
    }

    // An announcement is not spliced: it is built whole and signed on its
    // way to the wire (`Composer::wire`). Its signature verifies too.
    let message = herald::digest::announce::announcement_from_markdown(
        "# We are moving\n\nFrom *Monday* the office is at the harbour.\n\n.A line with a dot.\n",
        &url::Url::parse("https://example.org/").unwrap(),
        herald::store::Audience::All,
        false,
    )
    .unwrap();
    let run = h.digests.start_announcement(&message).await.unwrap();
    let articles = h.articles().await;
    let shutdown = Shutdown::new();
    let drained = h
        .digests
        .drain(&run, &articles, &shutdown.signal())
        .await
        .unwrap();
    assert!(drained.done, "{}", h.smtp.log());
    let announced = h.smtp.messages();
    assert_eq!(announced.len(), 2, "{}", h.smtp.log());
    let announcement = keys.path().join("announcement.eml");
    std::fs::write(&announcement, &announced[1].1).unwrap();
    let out = std::process::Command::new("python3")
        .arg(super::helpers::repo_root().join("tests/dkim_verify.py"))
        .arg(&announcement)
        .arg(&public_b64)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(
        report["verified"], true,
        "dkimpy on the announcement: {report}"
    );

    // A tampered List-Unsubscribe no longer verifies.
    let text = String::from_utf8(received[0].1.clone()).unwrap();
    let tampered = text.replacen(
        "List-Unsubscribe: <https://example.org/",
        "List-Unsubscribe: <https://evil.example/",
        1,
    );
    assert_ne!(tampered, text);
    std::fs::write(&eml, tampered).unwrap();
    let out = std::process::Command::new("python3")
        .arg(super::helpers::repo_root().join("tests/dkim_verify.py"))
        .arg(&eml)
        .arg(&public_b64)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_runs_once_however_often_it_is_started() {
    let Some(h) = harness(4).await else {
        return;
    };
    h.subscriber("ann@example.net", &[], 24 * 7).await;
    let articles = h.articles().await;
    let tick = Utc::now();
    let first = h
        .digests
        .start_run("weekly", tick, Trigger::Schedule, &articles)
        .await
        .unwrap();
    assert!(first.is_some());
    // The same tick again (a second process, a restart, a catch-up).
    for trigger in [Trigger::Schedule, Trigger::CatchUp, Trigger::Manual] {
        let again = h
            .digests
            .start_run("weekly", tick, trigger, &articles)
            .await
            .unwrap();
        assert!(again.is_none(), "{trigger:?} started the tick twice");
    }
    assert_eq!(h.store.runs(10).await.unwrap().len(), 1);
    assert_eq!(
        h.store.last_scheduled_tick("weekly").await.unwrap(),
        Some(first.unwrap().tick)
    );
    // Catch-up reaches back to when the schedule was first armed, and no
    // further: arming again keeps the first time.
    let armed = h.store.arm_schedule("weekly", tick).await.unwrap();
    let later = h
        .store
        .arm_schedule("weekly", tick + Duration::days(3))
        .await
        .unwrap();
    assert_eq!(armed, later);
}

/// Issue 12: "new since the last digest" is decided by when herald first
/// published an article, not by the date the article gives itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_article_back_dated_before_the_last_run_but_added_after_it_is_in_the_next_run() {
    let Some(h) = harness(4).await else {
        return;
    };
    h.subscriber("ann@example.net", &[], 24 * 7).await;
    let first = h.run(Utc::now()).await;
    assert_eq!(h.store.run_status(first.id).await.unwrap().total(), 1);
    // Dated three hours before the run that just went out, added after it.
    h.site.write(
        "late.md",
        format!(
            "+++\ntitle = \"Written earlier, published late\"\ndate = {}\n+++\n\nLate.\n",
            ago(h.now, 3)
        ),
    );
    let second = h.run(Utc::now()).await;
    let status = h.store.run_status(second.id).await.unwrap();
    assert_eq!(status.count(DeliveryState::Sent), 1, "{status:?}");
    let received = h.received();
    let mails = &received["ann@example.net"];
    assert_eq!(mails.len(), 2);
    let text = String::from_utf8_lossy(&mails[1]).to_string();
    assert!(text.contains("Written earlier, published late"), "{text}");
    assert!(
        !text.contains("Plain news"),
        "the first digest's articles come once"
    );
    // Nothing new since: no third digest, and never an article twice.
    let third = h.run(Utc::now()).await;
    assert_eq!(h.store.run_status(third.id).await.unwrap().total(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_or_renaming_a_file_that_keeps_its_id_or_url_mails_nothing_again() {
    let Some(h) = harness(4).await else {
        return;
    };
    h.subscriber("ann@example.net", &[], 24 * 7).await;
    h.site.write(
        "with-id.md",
        format!(
            "+++\ntitle = \"Has an id\"\nid = \"urn:x:1\"\ndate = {}\n+++\n\nx\n",
            ago(h.now, 2)
        ),
    );
    let first = h.run(Utc::now()).await;
    assert_eq!(h.store.run_status(first.id).await.unwrap().total(), 1);
    // Moved into a folder (same slug and URL), and renamed (same id).
    let content = h.site.content.clone();
    std::fs::create_dir_all(content.join("archive")).unwrap();
    std::fs::rename(
        content.join("new-plain.md"),
        content.join("archive/new-plain.md"),
    )
    .unwrap();
    std::fs::rename(content.join("with-id.md"), content.join("renamed.md")).unwrap();
    let second = h.run(Utc::now()).await;
    let status = h.store.run_status(second.id).await.unwrap();
    assert_eq!(status.total(), 0, "nothing is new: {status:?}");
    assert_eq!(h.received()["ann@example.net"].len(), 1);
}
